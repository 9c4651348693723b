//! Periodic renewal with a bounded overlap (R13), and the login data
//! policy (R12), with a `ManualClock` for every bound.

mod common;

use std::time::Duration;

use axum::Router;
use common::*;
use http::StatusCode;
use sessionware::{Session, SessionConfig, SessionError, SessionLayer};

const RENEW_AFTER: Duration = Duration::from_secs(600);
const OVERLAP: Duration = Duration::from_secs(20);

fn renewing(t: Transport, overlap: Duration) -> Harness {
    Harness::with_config(
        SessionConfig::builder()
            .idle_timeout(Duration::from_secs(3600))
            .absolute_timeout(Duration::from_secs(3 * 3600))
            .renew_after(RENEW_AFTER)
            .renew_overlap(overlap)
            .transport(t)
            .build()
            .unwrap(),
    )
}

fn routes(layer: &SessionLayer) -> Router {
    handlers::routes().layer(layer.clone())
}

/// Creates a session with n = 1 at `T0`.
async fn start(app: &Router) -> String {
    session_cookie(&send(app, req("POST", "/incr", None)).await).unwrap()
}

async fn a_session_in_use_is_renewed_once_its_id_is_old_enough(t: Transport) {
    let h = renewing(t, OVERLAP);
    let app = routes(&h.layer);
    let old = start(&app).await;
    h.clock.advance(RENEW_AFTER - Duration::from_secs(1));
    let res = send(&app, req("GET", "/read", Some(&old))).await;
    assert!(no_cookie(&res), "not yet");
    h.clock.advance(Duration::from_secs(1));
    let (n, set) = read(&app, &old).await;
    assert_eq!(n, "1");
    let new = set.expect("renewed: a new cookie");
    assert_ne!(new, old);
    assert_eq!(body(send(&app, req("GET", "/read", Some(&new))).await).await, "1", "same data");
    // The next renewal counts from this one.
    h.clock.advance(RENEW_AFTER - Duration::from_secs(1));
    assert!(no_cookie(&send(&app, req("GET", "/read", Some(&new))).await));
}

async fn the_old_id_works_during_the_overlap_and_writes_reach_the_successor(t: Transport) {
    let h = renewing(t, OVERLAP);
    let app = routes(&h.layer);
    let old = start(&app).await;
    h.clock.advance(RENEW_AFTER);
    let new = session_cookie(&send(&app, req("GET", "/read", Some(&old))).await).unwrap();
    // Another tab, still on the old cookie, within the overlap.
    h.clock.advance(OVERLAP - Duration::from_secs(1));
    let res = send(&app, req("POST", "/set/from-old-tab", Some(&old))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(no_cookie(&res), "an alias never sets a cookie (nor removes one)");
    assert_eq!(body(send(&app, req("GET", "/read", Some(&old))).await).await, "1");
    let keys = body(send(&app, req("GET", "/keys", Some(&new))).await).await;
    assert!(keys.contains("from-old-tab"), "the old tab's write is in the successor: {keys}");
}

async fn the_overlap_ends_after_its_bound(t: Transport) {
    let h = renewing(t, OVERLAP);
    let app = routes(&h.layer);
    let old = start(&app).await;
    h.clock.advance(RENEW_AFTER);
    let new = session_cookie(&send(&app, req("GET", "/read", Some(&old))).await).unwrap();
    h.clock.advance(OVERLAP);
    let res = send(&app, req("GET", "/read", Some(&old))).await;
    assert!(no_cookie(&res), "a retired ID gets no removal cookie");
    assert_eq!(body(res).await, "none", "past the overlap the old ID is no session");
    let res = send(&app, req("POST", "/incr", Some(&old))).await;
    assert!(no_cookie(&res), "and a write on it starts no session that would replace the new cookie");
    assert_eq!(body(send(&app, req("GET", "/read", Some(&new))).await).await, "1");
}

async fn the_overlap_ends_when_the_successor_is_first_used(t: Transport) {
    let h = renewing(t, OVERLAP);
    let app = routes(&h.layer);
    let old = start(&app).await;
    h.clock.advance(RENEW_AFTER);
    let new = session_cookie(&send(&app, req("GET", "/read", Some(&old))).await).unwrap();
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(body(send(&app, req("GET", "/read", Some(&new))).await).await, "1");
    let res = send(&app, req("GET", "/read", Some(&old))).await;
    assert_eq!(body(res).await, "none", "once the new ID was used, the old one is no session");
}

async fn an_overlap_of_zero_means_none(t: Transport) {
    let h = renewing(t, Duration::ZERO);
    let app = routes(&h.layer);
    let old = start(&app).await;
    h.clock.advance(RENEW_AFTER);
    let new = session_cookie(&send(&app, req("GET", "/read", Some(&old))).await).unwrap();
    let res = send(&app, req("GET", "/read", Some(&old))).await;
    assert!(no_cookie(&res));
    assert_eq!(body(res).await, "none");
    assert_eq!(body(send(&app, req("GET", "/read", Some(&new))).await).await, "1");
}

async fn renewal_never_extends_the_absolute_deadline(t: Transport) {
    let h = renewing(t, OVERLAP);
    let app = routes(&h.layer);
    let mut cookie = start(&app).await;
    // Renewed every 10 minutes for 3 hours: the session still ends at T0 + 3 h.
    for _ in 0..17 {
        h.clock.advance(RENEW_AFTER);
        let (n, set) = read(&app, &cookie).await;
        assert_eq!(n, "1");
        cookie = set.expect("renewed");
    }
    h.clock.advance(RENEW_AFTER); // T0 + 3 h
    let res = send(&app, req("GET", "/read", Some(&cookie))).await;
    assert_eq!(body(res).await, "none", "the absolute deadline holds through renewals");
}

async fn login_and_renew_have_no_overlap(t: Transport) {
    let h = renewing(t, OVERLAP);
    let app = routes(&h.layer);
    let anon = start(&app).await;
    let authed = session_cookie(&send(&app, req("POST", "/login/alice", Some(&anon))).await).unwrap();
    let res = send(&app, req("GET", "/me", Some(&anon))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the pre-login ID is dead at once");
    assert!(no_cookie(&res), "but gets no removal cookie");
    let renewed = session_cookie(&send(&app, req("POST", "/renew", Some(&authed))).await).unwrap();
    let res = send(&app, req("GET", "/me", Some(&authed))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the pre-renewal ID is dead at once");
    assert!(no_cookie(&res));
    assert_eq!(body(send(&app, req("GET", "/me", Some(&renewed))).await).await, "alice");
}

// ------------------------------------------------------ login data policy

async fn login_keeping_cart(session: Session) -> Result<(), SessionError> {
    session.login_keeping("alice", &["cart"]).await
}

fn policy_routes(layer: &SessionLayer) -> Router {
    handlers::routes().route("/login-keeping-cart", axum::routing::post(login_keeping_cart)).layer(layer.clone())
}

async fn visitor_with(app: &Router, keys: &[&str]) -> String {
    let cookie = start(app).await;
    for k in keys {
        send(app, req("POST", &format!("/set/{k}"), Some(&cookie))).await;
    }
    cookie
}

async fn pre_login_data_is_dropped_by_default(t: Transport) {
    let h = Harness::on(t);
    let app = policy_routes(&h.layer);
    let anon = visitor_with(&app, &["cart", "planted"]).await;
    let authed = session_cookie(&send(&app, req("POST", "/login/alice", Some(&anon))).await).unwrap();
    assert_eq!(body(send(&app, req("GET", "/keys", Some(&authed))).await).await, "");
}

async fn allow_listed_keys_survive_the_login(t: Transport) {
    let config = SessionConfig::builder().transport(t).keep_on_login(["n", "cart"]).build().unwrap();
    let h = Harness::with_config(config);
    let app = policy_routes(&h.layer);
    let anon = visitor_with(&app, &["cart", "planted"]).await;
    let authed = session_cookie(&send(&app, req("POST", "/login/alice", Some(&anon))).await).unwrap();
    assert_eq!(body(send(&app, req("GET", "/keys", Some(&authed))).await).await, "cart,n");
    // The per-call form replaces the configured list.
    let anon = visitor_with(&app, &["cart", "planted"]).await;
    let authed = session_cookie(&send(&app, req("POST", "/login-keeping-cart", Some(&anon))).await).unwrap();
    assert_eq!(body(send(&app, req("GET", "/keys", Some(&authed))).await).await, "cart");
}

async fn a_session_of_another_user_keeps_nothing_and_a_reauthentication_keeps_everything(t: Transport) {
    let config = SessionConfig::builder().transport(t).keep_on_login(["cart"]).build().unwrap();
    let h = Harness::with_config(config);
    let app = policy_routes(&h.layer);
    let anon = visitor_with(&app, &["cart"]).await;
    let alice = session_cookie(&send(&app, req("POST", "/login/alice", Some(&anon))).await).unwrap();
    send(&app, req("POST", "/set/private", Some(&alice))).await;
    // alice logs in again (step-up): her data stays.
    let again = session_cookie(&send(&app, req("POST", "/login/alice", Some(&alice))).await).unwrap();
    assert_eq!(body(send(&app, req("GET", "/keys", Some(&again))).await).await, "cart,private");
    // bob logs in on alice's session: nothing of hers carries over, not even the allow-listed cart.
    let bob = session_cookie(&send(&app, req("POST", "/login/bob", Some(&again))).await).unwrap();
    assert_eq!(body(send(&app, req("GET", "/keys", Some(&bob))).await).await, "");
    assert_eq!(body(send(&app, req("GET", "/me", Some(&bob))).await).await, "bob");
}

/// `GET /read`: its body and the new cookie it set, if any.
async fn read(app: &Router, cookie: &str) -> (String, Option<String>) {
    let res = send(app, req("GET", "/read", Some(cookie))).await;
    let set = session_cookie(&res);
    (body(res).await, set)
}

// ------------------------------------- interleavings around a periodic renewal

/// A write that loaded before a periodic renewal and commits after it
/// (its `apply` finds the key retired) lands in the successor: the pair
/// apply → lookup → apply is harmless because the second apply only merges
/// into a live record.
async fn a_write_that_loaded_before_a_periodic_renewal_lands_in_the_successor(t: Transport) {
    let h = renewing(t, OVERLAP);
    let app = routes(&h.layer);
    let old = start(&app).await;
    h.clock.advance(RENEW_AFTER - Duration::from_secs(1));
    let write = hold(&h, &app, "POST", "/set/late-write", &old).await;
    h.clock.advance(Duration::from_secs(1));
    let new = read(&app, &old).await.1.expect("renewed meanwhile");
    h.store.release.notify_one();
    let res = write.await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(no_cookie(&res), "the late write sets no cookie");
    let keys = body(send(&app, req("GET", "/keys", Some(&new))).await).await;
    assert!(keys.contains("late-write"), "the acknowledged write is in the successor: {keys}");
}

/// Two periodic renewals at once: the loser's changes join the winner's
/// successor, and it sets no cookie (the winner's response carries it).
async fn two_periodic_renewals_leave_one_session_with_both_writes(t: Transport) {
    let h = renewing(t, OVERLAP);
    let app = routes(&h.layer);
    let old = start(&app).await;
    h.clock.advance(RENEW_AFTER);
    let loser = hold(&h, &app, "POST", "/set/from-loser", &old).await;
    let res = send(&app, req("POST", "/set/from-winner", Some(&old))).await;
    let new = session_cookie(&res).expect("the winner renews");
    h.store.release.notify_one();
    let res = loser.await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(no_cookie(&res), "the loser sets no cookie");
    let keys = body(send(&app, req("GET", "/keys", Some(&new))).await).await;
    assert!(keys.contains("from-loser") && keys.contains("from-winner"), "{keys}");
    assert_eq!(h.store.inner.len(), 1, "one live session");
}

/// A login that loaded before a periodic renewal still gets its own new ID
/// (a second atomic rotation, from the successor): the periodic successor
/// is retired and the login's session is the only live one.
async fn a_login_racing_a_periodic_renewal_rotates_again(t: Transport) {
    let h = renewing(t, OVERLAP);
    let app = routes(&h.layer);
    let old = start(&app).await;
    h.clock.advance(RENEW_AFTER);
    let login = hold(&h, &app, "POST", "/login/alice", &old).await;
    let periodic = read(&app, &old).await.1.expect("renewed");
    h.store.release.notify_one();
    let res = login.await.unwrap();
    let authed = session_cookie(&res).expect("the login gets its own new ID");
    assert_ne!(authed, periodic);
    assert_eq!(body(send(&app, req("GET", "/me", Some(&authed))).await).await, "alice");
    let res = send(&app, req("GET", "/me", Some(&periodic))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the periodic successor was retired by the login");
    assert!(no_cookie(&res));
    assert_eq!(h.store.inner.len(), 1);
}

over_both_transports!(
    a_session_in_use_is_renewed_once_its_id_is_old_enough,
    the_old_id_works_during_the_overlap_and_writes_reach_the_successor,
    the_overlap_ends_after_its_bound,
    the_overlap_ends_when_the_successor_is_first_used,
    an_overlap_of_zero_means_none,
    renewal_never_extends_the_absolute_deadline,
    login_and_renew_have_no_overlap,
    pre_login_data_is_dropped_by_default,
    allow_listed_keys_survive_the_login,
    a_session_of_another_user_keeps_nothing_and_a_reauthentication_keeps_everything,
    a_write_that_loaded_before_a_periodic_renewal_lands_in_the_successor,
    two_periodic_renewals_leave_one_session_with_both_writes,
    a_login_racing_a_periodic_renewal_rotates_again,
);

//! The renewal path under concurrency, by construction: one request is held
//! inside the store between its lookup and its commit (the `MockStore`
//! pauses its lookup), and the racing request runs in that window.
//!
//! The promises: a logout stays ended, no acknowledged write is lost, one
//! session never forks into two, and a late request on a retired ID never
//! clobbers the successor's cookie.

mod common;

use axum::{
    routing::{get, post},
    Router,
};
use common::*;
use http::StatusCode;
use sessionware::{store::SessionStore, Session, SessionError, SessionLayer};

async fn revoke_others(session: Session) -> Result<String, SessionError> {
    Ok(session.revoke_others().await?.to_string())
}

async fn sessions(session: Session) -> Result<String, SessionError> {
    Ok(session.sessions().await?.len().to_string())
}

/// Inserts a key, then renews: a privilege change with data.
async fn elevate(session: Session) -> Result<(), SessionError> {
    session.insert("role", "admin").await?;
    session.renew().await
}

/// A logout whose handler reads the session first (so it can be held).
async fn read_then_logout(session: Session) -> Result<(), SessionError> {
    session.user().await?;
    session.purge().await
}

/// Stores 40 KB under `k`: alone within the 64 KiB default cap, two are not.
async fn big(session: Session, axum::extract::Path(k): axum::extract::Path<String>) -> Result<(), SessionError> {
    session.insert(&k, "x".repeat(40_000)).await
}

fn routes(layer: &SessionLayer) -> Router {
    handlers::routes()
        .route("/big/{k}", post(big))
        .route("/revoke-others", post(revoke_others))
        .route("/sessions", get(sessions))
        .route("/elevate", post(elevate))
        .route("/read-then-logout", post(read_then_logout))
        .layer(layer.clone())
}

async fn live_sessions(h: &Harness) -> usize {
    let mut live = 0;
    for key in h.store.inner.keys() {
        if h.store.inner.load(&key, h.clock.now_ms()).await.unwrap().is_some() {
            live += 1;
        }
    }
    live
}

async fn a_login_racing_a_logout_leaves_no_session_and_no_cookie(t: Transport) {
    let h = Harness::on(t);
    let app = routes(&h.layer);
    let anon = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let login = hold(&h, &app, "POST", "/login/mallory", &anon).await;
    let res = send(&app, req("POST", "/logout", Some(&anon))).await;
    assert!(is_removal(&res));
    release(&h);
    let res = login.await.unwrap();
    assert!(session_cookie(&res).is_none(), "no cookie for a live session after the logout won");
    assert_eq!(live_sessions(&h).await, 0, "the login must not bring the session back under a new ID");
}

async fn a_renewal_racing_a_logout_leaves_no_session(t: Transport) {
    let h = Harness::on(t);
    let app = routes(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    let renew = hold(&h, &app, "POST", "/elevate", &cookie).await;
    send(&app, req("POST", "/logout", Some(&cookie))).await;
    release(&h);
    let res = renew.await.unwrap();
    assert!(session_cookie(&res).is_none());
    assert_eq!(live_sessions(&h).await, 0);
}

/// The attack of the issue: a stolen cookie looping on a route that renews
/// cannot undo "log out other devices".
async fn a_renewal_racing_revoke_others_cannot_resurrect_the_revoked_session(t: Transport) {
    let h = Harness::on(t);
    let app = routes(&h.layer);
    let mine = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    let stolen = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    assert_eq!(body(send(&app, req("GET", "/sessions", Some(&mine))).await).await, "2");
    let attacker = hold(&h, &app, "POST", "/renew", &stolen).await;
    assert_eq!(body(send(&app, req("POST", "/revoke-others", Some(&mine))).await).await, "1");
    release(&h);
    let res = attacker.await.unwrap();
    assert!(session_cookie(&res).is_none(), "the revoked session gets no new ID");
    assert_eq!(body(send(&app, req("GET", "/sessions", Some(&mine))).await).await, "1", "only my session is left");
    assert_eq!(live_sessions(&h).await, 1);
    assert_eq!(send(&app, req("GET", "/me", Some(&stolen))).await.status(), StatusCode::UNAUTHORIZED);
}

async fn a_login_racing_a_revocation_by_handle_leaves_nothing(t: Transport) {
    let h = Harness::on(t);
    let app = routes(&h.layer);
    let victim = session_cookie(&send(&app, req("POST", "/login/bob", None)).await).unwrap();
    let login = hold(&h, &app, "POST", "/login/bob", &victim).await;
    // The record is revoked underneath (an admin, another device).
    for key in h.store.inner.keys() {
        h.store.inner.delete(&key, h.clock.now_ms()).await.unwrap();
    }
    release(&h);
    let res = login.await.unwrap();
    assert!(session_cookie(&res).is_none());
    assert_eq!(live_sessions(&h).await, 0);
}

async fn a_write_saved_while_a_renewal_was_in_flight_is_in_the_successor(t: Transport) {
    let h = Harness::on(t);
    let app = routes(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    // The renewal loads first and is held; the write completes (200) meanwhile.
    let renew = hold(&h, &app, "POST", "/elevate", &cookie).await;
    let res = send(&app, req("POST", "/set/written", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::OK);
    release(&h);
    let renewed = session_cookie(&renew.await.unwrap()).expect("the renewal lands");
    let keys: Vec<String> =
        body(send(&app, req("GET", "/keys", Some(&renewed))).await).await.split(',').map(String::from).collect();
    assert!(keys.contains(&"written".to_string()), "the acknowledged write survives the renewal: {keys:?}");
    assert!(keys.contains(&"role".to_string()), "and so does the renewal's own change");
}

async fn two_concurrent_renewals_leave_exactly_one_live_successor(t: Transport) {
    let h = Harness::on(t);
    let app = routes(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    let first = hold(&h, &app, "POST", "/renew", &cookie).await;
    let second = send(&app, req("POST", "/renew", Some(&cookie))).await;
    let winner = session_cookie(&second).expect("one renewal wins");
    release(&h);
    let res = first.await.unwrap();
    assert!(no_cookie(&res), "the loser sets no cookie: it would clobber the winner's");
    assert_eq!(live_sessions(&h).await, 1, "one session, not a fork");
    assert_eq!(body(send(&app, req("GET", "/sessions", Some(&winner))).await).await, "1");
    assert_eq!(body(send(&app, req("GET", "/me", Some(&winner))).await).await, "alice");
}

async fn a_late_request_on_a_retired_id_gets_no_removal_cookie(t: Transport) {
    let h = Harness::on(t);
    let app = routes(&h.layer);
    let anon = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    // In flight with the old cookie while the login happens.
    let late = hold(&h, &app, "POST", "/set/x", &anon).await;
    let authed = session_cookie(&send(&app, req("POST", "/login/alice", Some(&anon))).await).unwrap();
    release(&h);
    let res = late.await.unwrap();
    assert!(no_cookie(&res), "no removal (nor a new session) that would clobber the successor's cookie");
    // And after it, reads and writes on the old ID alike.
    for (method, uri) in [("GET", "/read"), ("POST", "/incr"), ("GET", "/me")] {
        let res = send(&app, req(method, uri, Some(&anon))).await;
        assert!(no_cookie(&res), "{method} {uri} on a retired ID set a cookie");
    }
    assert_eq!(body(send(&app, req("GET", "/me", Some(&authed))).await).await, "alice");
    assert_eq!(live_sessions(&h).await, 1);
}

async fn a_logout_on_a_just_retired_id_ends_the_successor_too(t: Transport) {
    let h = Harness::on(t);
    let app = routes(&h.layer);
    let anon = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let authed = session_cookie(&send(&app, req("POST", "/login/alice", Some(&anon))).await).unwrap();
    // The client has not seen the new cookie yet and clicks "log out".
    let res = send(&app, req("POST", "/logout", Some(&anon))).await;
    assert!(is_removal(&res));
    assert_eq!(send(&app, req("GET", "/me", Some(&authed))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(live_sessions(&h).await, 0, "logged out, whatever it raced");
}

async fn a_logout_racing_a_renewal_that_commits_first_ends_the_successor(t: Transport) {
    let h = Harness::on(t);
    let app = routes(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    // The logout reads the session first (its handler loads), is held, and
    // the renewal commits meanwhile.
    let logout = hold(&h, &app, "POST", "/read-then-logout", &cookie).await;
    let renewed = session_cookie(&send(&app, req("POST", "/renew", Some(&cookie))).await).unwrap();
    release(&h);
    assert!(is_removal(&logout.await.unwrap()));
    assert_eq!(send(&app, req("GET", "/me", Some(&renewed))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(live_sessions(&h).await, 0);
}

/// R56: the data cap holds on the merged record. Each of two concurrent
/// writers fits on its own view; together they would not, and the later
/// one is refused (413) instead of growing the record past the cap.
async fn concurrent_writers_cannot_grow_a_session_past_its_cap(t: Transport) {
    let h = Harness::on(t);
    let app = routes(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let second = hold(&h, &app, "POST", "/big/b", &cookie).await;
    assert_eq!(send(&app, req("POST", "/big/a", Some(&cookie))).await.status(), StatusCode::OK);
    release(&h);
    let res = second.await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let key = h.store.inner.keys()[0];
    let data = h.store.inner.load(&key, h.clock.now_ms()).await.unwrap().unwrap().data;
    assert!(data.size() <= 64 * 1024, "the stored record stays within the cap: {}", data.size());
    assert!(data.get("a").is_some() && data.get("b").is_none());
}

over_both_transports!(
    a_login_racing_a_logout_leaves_no_session_and_no_cookie,
    a_renewal_racing_a_logout_leaves_no_session,
    a_renewal_racing_revoke_others_cannot_resurrect_the_revoked_session,
    a_login_racing_a_revocation_by_handle_leaves_nothing,
    a_write_saved_while_a_renewal_was_in_flight_is_in_the_successor,
    two_concurrent_renewals_leave_exactly_one_live_successor,
    a_late_request_on_a_retired_id_gets_no_removal_cookie,
    a_logout_on_a_just_retired_id_ends_the_successor_too,
    a_logout_racing_a_renewal_that_commits_first_ends_the_successor,
    concurrent_writers_cannot_grow_a_session_past_its_cap,
);

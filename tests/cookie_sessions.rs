//! Encrypted cookie sessions (`SessionLayer::cookie_sessions`): the session
//! lives in the cookie, sealed with an AEAD; the same `Session` API; each
//! attack on the cookie (tamper, truncation, another key, another name,
//! replay after logout where the per-user epoch is kept) is no session.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::Path, routing::post, Router};
use common::*;
use http::{header, StatusCode};
use sessionware::{
    store::{Capability, MemoryStore},
    ConfigError, CookieSessions, EventKind, Key, Keys, LimitPolicy, ManualClock, Session, SessionConfig, SessionError,
    SessionLayer, Transport,
};

const MIN: Duration = Duration::from_secs(60);

fn layer(keys: Keys, config: SessionConfig, clock: &ManualClock) -> SessionLayer {
    SessionLayer::cookie_sessions(CookieSessions::new(keys)).with_config(config).with_clock(clock.clone())
}

/// The common routes plus `POST /big/{n}` (a value of `n` bytes) and
/// `GET /devices` (`Session::sessions`) and `POST /lock`.
fn routes(layer: &SessionLayer) -> Router {
    async fn big(session: Session, Path(n): Path<usize>) -> Result<(), SessionError> {
        session.insert("big", "x".repeat(n)).await
    }
    async fn devices(session: Session) -> Result<String, SessionError> {
        Ok(session.sessions().await?.len().to_string())
    }
    async fn lock(session: Session) -> Result<String, SessionError> {
        Ok(format!("{:?}", session.lock().await))
    }
    async fn changed(session: Session) -> Result<(), SessionError> {
        session.credentials_changed().await
    }
    handlers::routes()
        .route("/big/{n}", post(big))
        .route("/devices", axum::routing::get(devices))
        .route("/lock", post(lock))
        .route("/credentials-changed", post(changed))
        .layer(layer.clone())
}

struct Setup {
    clock: ManualClock,
    keys: Keys,
    app: Router,
}

fn setup(config: SessionConfig) -> Setup {
    let clock = ManualClock::new(T0);
    let keys = Keys::generate().unwrap();
    let app = routes(&layer(keys.clone(), config, &clock));
    Setup { clock, keys, app }
}

/// A layer with the per-user epoch kept by `epochs`.
fn with_epochs(keys: Keys, epochs: MemoryStore, clock: &ManualClock) -> Router {
    let sessions = CookieSessions::new(keys).with_cutoffs(epochs);
    routes(&SessionLayer::cookie_sessions(sessions).with_clock(clock.clone()))
}

async fn read(app: &Router, cookie: Option<&str>) -> String {
    body(send(app, req("GET", "/read", cookie)).await).await
}

#[tokio::test]
async fn the_data_travels_in_the_cookie_and_reading_creates_nothing() {
    let s = setup(SessionConfig::default());
    let res = send(&s.app, req("GET", "/read", None)).await;
    assert!(res.headers().get(header::SET_COOKIE).is_none(), "reading creates no session");
    assert_eq!(body(res).await, "none");
    let res = send(&s.app, req("POST", "/incr", None)).await;
    let one = session_cookie(&res).unwrap();
    assert_eq!(body(res).await, "1");
    let res = send(&s.app, req("POST", "/incr", Some(&one))).await;
    let two = session_cookie(&res).expect("every write sets the cookie: it holds the data");
    assert_eq!(body(res).await, "2");
    assert_eq!(read(&s.app, Some(&two)).await, "2");
    // The count is not readable in the cookie, and the cookie is locked down.
    assert!(!token_of(&two).contains("\"n\""));
    let res = send(&s.app, req("POST", "/incr", Some(&two))).await;
    let c = &set_cookies(&res)[0];
    assert_eq!(c.name(), "__Host-sid");
    assert_eq!((c.http_only(), c.secure(), c.path()), (Some(true), Some(true), Some("/")));
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    // A read-only request (before the touch share) sets nothing.
    let res = send(&s.app, req("GET", "/read", Some(&two))).await;
    assert!(no_cookie(&res));
}

#[tokio::test]
async fn tampered_truncated_oversized_and_garbage_cookies_are_no_session() {
    let s = setup(SessionConfig::default());
    let cookie = session_cookie(&send(&s.app, req("POST", "/incr", None)).await).unwrap();
    let (name, value) = cookie.split_once('=').unwrap();
    let mut bad = vec![
        tamper(&cookie),
        format!("{name}={}", &value[..value.len() - 1]),
        format!("{name}={}", &value[..value.len() / 2]),
        format!("{name}={value}A"),
        format!("{name}="),
        format!("{name}=garbage"),
        format!("{name}={}", "A".repeat(5000)),
        format!("{name}={}", &value[1..]),
    ];
    // Every character of the value changed, one at a time.
    for i in 0..value.len() {
        let mut v = value.as_bytes().to_vec();
        v[i] = if v[i] == b'A' { b'B' } else { b'A' };
        bad.push(format!("{name}={}", String::from_utf8(v).unwrap()));
    }
    for b in &bad {
        assert_eq!(read(&s.app, Some(b)).await, "none", "{b}");
        // A write on it starts a new session from nothing.
        assert_eq!(body(send(&s.app, req("POST", "/incr", Some(b))).await).await, "1", "{b}");
    }
    assert_eq!(read(&s.app, Some(&cookie)).await, "1", "the genuine cookie still works");
}

#[tokio::test]
async fn another_key_opens_nothing_and_rotation_reseals_under_the_first_key() {
    let clock = ManualClock::new(T0);
    let (old, new) = (Key::generate().unwrap(), Key::generate().unwrap());
    let app = routes(&layer(Keys::new(vec![old.clone()]).unwrap(), SessionConfig::default(), &clock));
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    // Another ring: no session.
    let other = routes(&layer(Keys::generate().unwrap(), SessionConfig::default(), &clock));
    assert_eq!(read(&other, Some(&cookie)).await, "none");
    // Rotation: a new key first, the old one behind it.
    let s = Setup { clock, keys: Keys::new(vec![new.clone(), old]).unwrap(), app };
    let rotated = routes(&layer(s.keys.clone(), SessionConfig::default(), &s.clock));
    let res = send(&rotated, req("GET", "/read", Some(&cookie))).await;
    let resealed = session_cookie(&res).expect("a cookie sealed by an older key is sealed again");
    assert_eq!(body(res).await, "1");
    // Only the new key left: the resealed cookie opens, the old one does not.
    let only_new = routes(&layer(Keys::new(vec![new]).unwrap(), SessionConfig::default(), &s.clock));
    assert_eq!(read(&only_new, Some(&resealed)).await, "1");
    assert_eq!(read(&only_new, Some(&cookie)).await, "none");
}

#[tokio::test]
async fn a_cookie_moved_to_another_name_does_not_open() {
    let s = setup(SessionConfig::default());
    let cookie = session_cookie(&send(&s.app, req("POST", "/incr", None)).await).unwrap();
    let value = token_of(&cookie);
    let renamed = SessionConfig::builder().cookie_name("__Host-other").build().unwrap();
    let app = routes(&layer(s.keys.clone(), renamed, &s.clock));
    assert_eq!(read(&app, Some(&format!("__Host-other={value}"))).await, "none");
    // The same value under its own name, on that layer: still its session.
    assert_eq!(read(&s.app, Some(&cookie)).await, "1");
}

#[tokio::test]
async fn two_different_valid_cookies_are_no_session() {
    let s = setup(SessionConfig::default());
    let a = session_cookie(&send(&s.app, req("POST", "/incr", None)).await).unwrap();
    let b = session_cookie(&send(&s.app, req("POST", "/login/bob", None)).await).unwrap();
    assert_eq!(read(&s.app, Some(&format!("{a}; {b}"))).await, "none");
    assert_eq!(read(&s.app, Some(&format!("{a}; {a}"))).await, "1", "the same cookie twice is one");
}

#[tokio::test]
async fn a_write_past_the_cookie_budget_is_413_and_keeps_the_previous_cookie() {
    let s = setup(SessionConfig::default());
    let cookie = session_cookie(&send(&s.app, req("POST", "/incr", None)).await).unwrap();
    let res = send(&s.app, req("POST", "/big/1000", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::OK, "a value that fits");
    let fits = session_cookie(&res).unwrap();
    let res = send(&s.app, req("POST", "/big/4000", Some(&fits))).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.headers().get(header::SET_COOKIE).is_none(), "no cookie the browser would drop");
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let err = res.extensions().get::<sessionware::SharedError>().expect("the typed error is attached");
    assert!(matches!(err.error(), SessionError::CookieTooLarge { max: 4096, len } if *len > 4096), "{:?}", err.error());
    // The client still holds a working session, as it was.
    assert_eq!(read(&s.app, Some(&fits)).await, "1");
    // A value just under the budget fits, the Set-Cookie never passes it.
    for n in [2000, 2400, 2600, 2800, 3000] {
        let res = send(&s.app, req("POST", &format!("/big/{n}"), Some(&cookie))).await;
        let len = res.headers().get(header::SET_COOKIE).map_or(0, |v| v.len());
        assert!(len <= 4096, "{n}: {len}");
        assert!(res.status() == StatusCode::OK || res.status() == StatusCode::PAYLOAD_TOO_LARGE, "{n}");
    }
}

#[tokio::test]
async fn the_data_cap_still_holds() {
    let config = SessionConfig::builder().max_data_bytes(100).build().unwrap();
    let s = setup(config);
    let res = send(&s.app, req("POST", "/big/200", None)).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn the_idle_deadline_inside_the_cookie_is_enforced() {
    let config = SessionConfig::builder().idle_timeout(10 * MIN).absolute_timeout(60 * MIN).build().unwrap();
    let s = setup(config);
    let cookie = session_cookie(&send(&s.app, req("POST", "/incr", None)).await).unwrap();
    s.clock.advance(10 * MIN - Duration::from_millis(1));
    assert_eq!(read(&s.app, Some(&cookie)).await, "1");
    s.clock.advance(Duration::from_millis(1));
    let res = send(&s.app, req("GET", "/read", Some(&cookie))).await;
    assert!(is_removal(&res), "an expired cookie is removed");
    assert_eq!(body(res).await, "none");
}

#[tokio::test]
async fn a_read_after_the_touch_share_slides_the_idle_deadline() {
    let config = SessionConfig::builder().idle_timeout(10 * MIN).absolute_timeout(60 * MIN).build().unwrap();
    let s = setup(config);
    let cookie = session_cookie(&send(&s.app, req("POST", "/incr", None)).await).unwrap();
    s.clock.advance(8 * MIN);
    let res = send(&s.app, req("GET", "/read", Some(&cookie))).await;
    let touched = session_cookie(&res).expect("the slid deadline is sealed into a new cookie");
    s.clock.advance(8 * MIN);
    assert_eq!(read(&s.app, Some(&touched)).await, "1", "alive 16 minutes in, thanks to the touch");
    assert_eq!(read(&s.app, Some(&cookie)).await, "none", "the untouched copy expired at 10 minutes");
}

#[tokio::test]
async fn the_absolute_deadline_inside_the_cookie_is_not_extended_by_activity() {
    let config = SessionConfig::builder().idle_timeout(10 * MIN).absolute_timeout(30 * MIN).build().unwrap();
    let s = setup(config);
    let mut cookie = session_cookie(&send(&s.app, req("POST", "/incr", None)).await).unwrap();
    for _ in 0..5 {
        s.clock.advance(5 * MIN);
        let res = send(&s.app, req("POST", "/incr", Some(&cookie))).await;
        cookie = session_cookie(&res).unwrap();
    }
    s.clock.advance(5 * MIN);
    let res = send(&s.app, req("POST", "/incr", Some(&cookie))).await;
    assert_eq!(body(res).await, "1", "30 minutes after creation the session is gone: a new one starts");
}

#[tokio::test]
async fn login_applies_the_login_data_policy_and_logout_removes_the_cookie() {
    let config = SessionConfig::builder().keep_on_login(["n"]).build().unwrap();
    let s = setup(config);
    let c = session_cookie(&send(&s.app, req("POST", "/incr", None)).await).unwrap();
    let c = session_cookie(&send(&s.app, req("POST", "/set/planted", Some(&c))).await).unwrap();
    let res = send(&s.app, req("POST", "/login/alice", Some(&c))).await;
    let alice = session_cookie(&res).expect("a login seals a new cookie");
    assert_ne!(alice, c);
    assert_eq!(who(&s.app, &alice).await, (StatusCode::OK, "alice".into()));
    let keys = body(send(&s.app, req("GET", "/keys", Some(&alice))).await).await;
    assert_eq!(keys, "n", "the listed key survives the login, the planted one does not");
    // A login as another user keeps nothing.
    let bob = session_cookie(&send(&s.app, req("POST", "/login/bob", Some(&alice))).await).unwrap();
    assert_eq!(body(send(&s.app, req("GET", "/keys", Some(&bob))).await).await, "");
    // Logout: the removal cookie.
    let res = send(&s.app, req("POST", "/logout", Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(is_removal(&res));
}

#[tokio::test]
async fn without_the_per_user_epoch_a_copied_cookie_outlives_logout() {
    // The documented revocation limit: nothing on the server remembers the
    // session, so a copy of the cookie stays valid until its deadlines.
    let s = setup(SessionConfig::default());
    let alice = login(&s.app, "alice").await;
    assert!(is_removal(&send(&s.app, req("POST", "/logout", Some(&alice))).await));
    assert_eq!(who(&s.app, &alice).await.0, StatusCode::OK);
}

#[tokio::test]
async fn with_the_per_user_epoch_a_cookie_replayed_after_logout_is_no_session() {
    let clock = ManualClock::new(T0);
    let keys = Keys::generate().unwrap();
    let app = with_epochs(keys, MemoryStore::default(), &clock);
    let alice = login(&app, "alice").await;
    let other_device = login(&app, "alice").await;
    let bob = login(&app, "bob").await;
    assert_eq!(who(&app, &alice).await, (StatusCode::OK, "alice".into()));
    let res = send(&app, req("POST", "/logout", Some(&alice))).await;
    assert!(is_removal(&res));
    let res = send(&app, req("GET", "/me", Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the replayed cookie is no session");
    assert!(is_removal(&res));
    assert_eq!(who(&app, &other_device).await.0, StatusCode::UNAUTHORIZED, "a logout ends all of the user's");
    assert_eq!(who(&app, &bob).await, (StatusCode::OK, "bob".into()), "another user's stay");
    // Signing in again works, and the new cookie is alive.
    let again = login(&app, "alice").await;
    assert_eq!(who(&app, &again).await, (StatusCode::OK, "alice".into()));
}

#[tokio::test]
async fn a_logout_then_a_login_of_the_same_user_in_one_request_stays_signed_in() {
    async fn relogin(session: Session) -> Result<(), SessionError> {
        session.purge().await?;
        session.login("alice").await
    }
    let clock = ManualClock::new(T0);
    let sessions = CookieSessions::new(Keys::generate().unwrap()).with_cutoffs(MemoryStore::default());
    let layer = SessionLayer::cookie_sessions(sessions).with_clock(clock);
    let app = handlers::routes().route("/relogin", post(relogin)).layer(layer);
    let old = login(&app, "alice").await;
    let res = send(&app, req("POST", "/relogin", Some(&old))).await;
    let new = session_cookie(&res).unwrap();
    assert_eq!(who(&app, &new).await, (StatusCode::OK, "alice".into()));
    assert_eq!(who(&app, &old).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn credentials_changed_and_session_control_end_other_cookie_sessions() {
    let clock = ManualClock::new(T0);
    let epochs = MemoryStore::default();
    let sessions = CookieSessions::new(Keys::generate().unwrap()).with_cutoffs(epochs);
    let layer = SessionLayer::cookie_sessions(sessions).with_clock(clock.clone());
    let app = routes(&layer);
    let here = login(&app, "alice").await;
    let there = login(&app, "alice").await;
    let res = send(&app, req("POST", "/credentials-changed", Some(&here))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let here = session_cookie(&res).expect("the caller is signed in again under the new epoch");
    assert_eq!(who(&app, &here).await, (StatusCode::OK, "alice".into()));
    assert_eq!(who(&app, &there).await.0, StatusCode::UNAUTHORIZED);
    // An administrator's cut of the user.
    layer.control().end_user_sessions("alice").await.unwrap();
    assert_eq!(who(&app, &here).await.0, StatusCode::UNAUTHORIZED);
    // Every session, visitors' included.
    let visitor = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    clock.advance(Duration::from_millis(1));
    layer.control().end_all_sessions().await.unwrap();
    assert_eq!(read(&app, Some(&visitor)).await, "none");
}

#[tokio::test]
async fn renew_and_periodic_renewal_reseal_the_cookie() {
    let config = SessionConfig::builder().renew_after(MIN).build().unwrap();
    let s = setup(config);
    let alice = login(&s.app, "alice").await;
    let res = send(&s.app, req("POST", "/renew", Some(&alice))).await;
    let renewed = session_cookie(&res).unwrap();
    assert_ne!(renewed, alice);
    assert_eq!(who(&s.app, &renewed).await, (StatusCode::OK, "alice".into()));
    s.clock.advance(2 * MIN);
    let res = send(&s.app, req("GET", "/me", Some(&renewed))).await;
    assert!(session_cookie(&res).is_some(), "periodic renewal seals a new cookie");
    assert_eq!(body(res).await, "alice");
}

#[tokio::test]
async fn what_needs_a_store_is_unsupported() {
    let s = setup(SessionConfig::default());
    let alice = login(&s.app, "alice").await;
    let res = send(&s.app, req("GET", "/devices", Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let res = send(&s.app, req("POST", "/lock", Some(&alice))).await;
    assert_eq!(body(res).await, format!("{:?}", Err::<(), _>(SessionError::Unsupported(Capability::Leases))));
    // Without the per-user epoch, no cutoffs.
    let res = send(&s.app, req("POST", "/credentials-changed", Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // Settings a cookie session cannot serve are refused when the layer is built.
    let sessions = || SessionLayer::cookie_sessions(CookieSessions::new(Keys::generate().unwrap()));
    let limit = SessionConfig::builder().max_sessions_per_user(2, LimitPolicy::default()).build().unwrap();
    assert!(matches!(
        sessions().try_with_config(limit),
        Err(ConfigError::MissingCapability { capability: Capability::UserIndex, .. })
    ));
    let header = SessionConfig::builder().transport(Transport::header()).build().unwrap();
    assert!(matches!(
        sessions().try_with_config(header),
        Err(ConfigError::NotForCookieSessions { setting: "transport" })
    ));
}

#[test]
fn debug_never_shows_key_material() {
    let keys = Keys::generate().unwrap();
    let sessions = CookieSessions::new(keys.clone());
    let text = format!("{sessions:?} {:?}", SessionLayer::cookie_sessions(sessions.clone()));
    assert!(text.contains("<redacted>") && !text.contains("cipher"), "{text}");
}

#[tokio::test]
async fn remember_me_gives_the_cookie_a_max_age_up_to_the_sealed_deadline() {
    let s = setup(SessionConfig::default());
    let alice = login(&s.app, "alice").await;
    let res = send(&s.app, req("POST", "/remember", Some(&alice))).await;
    let c = &set_cookies(&res)[0];
    let max_age = c.max_age().expect("a remembered session's cookie outlives the browser session");
    // Not signed in by this request: the absolute deadline stays the one
    // sealed at the login (12 hours), as on a store.
    assert_eq!(max_age.whole_seconds(), 12 * 3600, "{max_age:?}");
    let remembered = session_cookie(&res).unwrap();
    // Past the normal idle timeout (30 minutes), within the remembered one.
    s.clock.advance(2 * 3600 * Duration::from_secs(1));
    assert_eq!(who(&s.app, &remembered).await, (StatusCode::OK, "alice".into()));
    assert_eq!(who(&s.app, &alice).await.0, StatusCode::UNAUTHORIZED, "the copy before it keeps the normal limit");
}

#[tokio::test]
async fn concurrent_writes_do_not_merge_the_last_cookie_wins() {
    // Documented: no per-key merge across requests on cookie sessions.
    let s = setup(SessionConfig::default());
    let c = session_cookie(&send(&s.app, req("POST", "/incr", None)).await).unwrap();
    let a = session_cookie(&send(&s.app, req("POST", "/set/a", Some(&c))).await).unwrap();
    let b = session_cookie(&send(&s.app, req("POST", "/set/b", Some(&c))).await).unwrap();
    assert_eq!(body(send(&s.app, req("GET", "/keys", Some(&a))).await).await, "a,n");
    assert_eq!(body(send(&s.app, req("GET", "/keys", Some(&b))).await).await, "b,n");
}

#[tokio::test]
async fn lifecycle_events_name_a_fingerprint_never_the_cookie() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let clock = ManualClock::new(T0);
    let layer = layer(Keys::generate().unwrap(), SessionConfig::default(), &clock)
        .on_event(move |e| log.lock().unwrap().push((e.kind, e.session.clone(), e.user.clone())));
    let app = routes(&layer);
    let c = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let alice = session_cookie(&send(&app, req("POST", "/login/alice", Some(&c))).await).unwrap();
    send(&app, req("POST", "/logout", Some(&alice))).await;
    send(&app, req("GET", "/read", Some(&tamper(&alice)))).await;
    let seen = seen.lock().unwrap().clone();
    let kinds: Vec<EventKind> = seen.iter().map(|(k, _, _)| *k).collect();
    assert!(
        matches!(
            kinds[..],
            [
                EventKind::Created,
                EventKind::Renewed(sessionware::RenewReason::Login),
                EventKind::Purged,
                EventKind::Rejected(_)
            ]
        ),
        "{kinds:?}"
    );
    assert_eq!(seen[1].2.as_deref(), Some("alice"));
    for (_, session, _) in &seen {
        let Some(fp) = session else { continue };
        assert!(!c.contains(fp.as_str()) && !alice.contains(fp.as_str()) && fp.len() < 40, "{fp}");
    }
}

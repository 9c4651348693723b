//! Review of stores v2 (issue 9, point 7): MemoryStore's caps against an
//! attacker.

mod common;

use axum::{
    extract::Path,
    routing::{get, post},
    Router,
};
use common::*;
use http::StatusCode;
use sessionware::{store::MemoryStore, Keys, LimitPolicy, Session, SessionConfig, SessionError, SessionLayer};

const CAP: usize = 64;

fn app(store: MemoryStore) -> Router {
    Router::new()
        .route("/incr", post(handlers::incr))
        .route("/huge", post(huge))
        .route("/login/{user}", post(handlers::login))
        .route("/me", get(handlers::me))
        .route("/state/{v}", post(put_state))
        .route("/state", get(get_state))
        .layer(SessionLayer::new(store, Keys::generate().unwrap()))
}

/// Stores about 30 KB (under the default 64 KiB data cap).
async fn huge(session: Session) -> Result<(), SessionError> {
    session.insert("blob", "x".repeat(30_000)).await
}

/// Pre-login state of a multi-step login (an OAuth `state`, a CSRF token,
/// a pending second factor).
async fn put_state(session: Session, Path(v): Path<String>) -> Result<(), SessionError> {
    session.insert("oauth_state", v).await
}

async fn get_state(session: Session) -> Result<String, SessionError> {
    Ok(session.get::<String>("oauth_state").await?.unwrap_or_default())
}

/// The byte budget bounds memory only if every path that grows a session
/// respects it. `apply` never checks it and eviction runs only when a new
/// session is created, so a cookieless client that makes a few sessions and
/// then grows each (up to `max_data_bytes`) holds `max_sessions ×
/// max_data_bytes` (64 GB with the defaults) whatever `max_bytes` says.
#[tokio::test]
async fn growing_existing_sessions_passes_the_byte_budget_without_bound() {
    let budget = 64 * 1024;
    let store = MemoryStore::builder().max_bytes(budget).build();
    let app = app(store.clone());
    let mut cookies = Vec::new();
    for _ in 0..40 {
        cookies.push(session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap());
    }
    for c in &cookies {
        let _ = send(&app, req("POST", "/huge", Some(c))).await;
    }
    // "A write may pass it by its own size": one write, not forty.
    assert!(
        store.bytes() <= budget + 31_000,
        "{} bytes held under a budget of {budget} (len {})",
        store.bytes(),
        store.len()
    );
}

/// Signed-in sessions are never evicted: without a limit on how many one
/// user has, one account (a free sign-up) would fill the store, and then
/// nobody else could get a session or log in: the lockout point 7 was to
/// end. With `max_sessions_per_user`, the account's logins end its own
/// older sessions.
#[tokio::test]
async fn one_account_cannot_fill_the_store_under_a_per_user_limit() {
    let store = MemoryStore::builder().max_sessions(CAP).build();
    let config = SessionConfig::builder().max_sessions_per_user(4, LimitPolicy::default()).build().unwrap();
    let app = Router::new()
        .route("/login/{user}", post(handlers::login))
        .layer(SessionLayer::new(store.clone(), Keys::generate().unwrap()).with_config(config));
    for _ in 0..CAP {
        let res = send(&app, req("POST", "/login/mallory", None)).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = send(&app, req("POST", "/login/alice", None)).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "alice cannot log in: the store holds {} sessions of mallory",
        store.len()
    );
    assert!(session_cookie(&res).is_some(), "alice got no session");
}

/// A flood evicts the least recently used anonymous sessions: exactly the
/// ones of users in the middle of a multi-step login (state stored before
/// a redirect to an identity provider, a CSRF token of a login form, a
/// pending second factor). One cookieless client making `max_sessions` new
/// sessions during that step makes the login fail: logins that need
/// pre-login state do not "keep working".
#[tokio::test]
#[ignore = "open (design): LRU eviction of anonymous sessions also takes pre-login state (OAuth state, a pending second factor)"]
async fn a_flood_evicts_the_pre_login_state_of_a_login_in_progress() {
    let store = MemoryStore::builder().max_sessions(CAP).build();
    let app = app(store.clone());
    let alice = session_cookie(&send(&app, req("POST", "/state/s3cr3t", None)).await).unwrap();
    // Alice is at the identity provider; meanwhile a flood.
    for _ in 0..8 * CAP {
        send(&app, req("POST", "/incr", None)).await;
    }
    let res = send(&app, req("GET", "/state", Some(&alice))).await;
    assert_eq!(body(res).await, "s3cr3t", "alice's pre-login state was evicted by the flood");
}

/// A login whose anonymous session a flood evicts while the handler checks
/// the password: the handler's `login()` returned Ok and the response is a
/// 200, yet nobody is signed in (the rotation finds the session gone, the
/// write is dropped without an error and the cookie removed). The
/// application told the user "welcome" and cannot know.
#[tokio::test]
#[ignore = "open (design): a login whose anonymous session is evicted mid-request answers 200 with nobody signed in"]
async fn a_login_whose_session_is_evicted_in_flight_fails_silently() {
    use std::sync::Arc;
    use tokio::sync::Notify;
    let store = MemoryStore::builder().max_sessions(CAP).build();
    let go = Arc::new(Notify::new());
    let entered = Arc::new(Notify::new());
    let (g, e) = (go.clone(), entered.clone());
    let app = Router::new()
        .route("/incr", post(handlers::incr))
        .route("/me", get(handlers::me))
        .route("/state/{v}", post(put_state))
        .route(
            "/slow-login",
            post(move |session: Session| {
                let (g, e) = (g.clone(), e.clone());
                async move {
                    let _ = session.get::<String>("oauth_state").await?; // loaded
                    e.notify_one();
                    g.notified().await; // checking the password
                    session.login("alice").await
                }
            }),
        )
        .layer(SessionLayer::new(store.clone(), Keys::generate().unwrap()));
    let alice = session_cookie(&send(&app, req("POST", "/state/s3cr3t", None)).await).unwrap();
    let app2 = app.clone();
    let login = tokio::spawn(async move { send(&app2, req("POST", "/slow-login", Some(&alice))).await });
    entered.notified().await;
    for _ in 0..8 * CAP {
        send(&app, req("POST", "/incr", None)).await;
    }
    go.notify_one();
    let res = login.await.unwrap();
    let status = res.status();
    let cookie = session_cookie(&res);
    if status == StatusCode::OK {
        let cookie = cookie.expect("a 200 login without a session cookie: the login was dropped silently");
        assert_eq!(body(send(&app, req("GET", "/me", Some(&cookie))).await).await, "alice");
    }
}

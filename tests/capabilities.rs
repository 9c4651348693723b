//! A layer over a store with fewer capabilities: the missing ones answer a
//! typed error, everything else works.

mod common;

use axum::{
    routing::{get, post},
    Router,
};
use common::*;
use http::StatusCode;
use sessionware::{
    store::{Capabilities, Capability, MemoryStore},
    Keys, Session, SessionError, SessionLayer, SharedError,
};

async fn sessions(session: Session) -> Result<String, SessionError> {
    Ok(session.sessions().await?.len().to_string())
}

async fn revoke_others(session: Session) -> Result<String, SessionError> {
    Ok(session.revoke_others().await?.to_string())
}

async fn locked_incr(session: Session) -> Result<String, SessionError> {
    session.lock().await?;
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/login/{user}", post(handlers::login))
        .route("/me", get(handlers::me))
        .route("/sessions", get(sessions))
        .route("/logout-others", post(revoke_others))
        .route("/locked-incr", post(locked_incr))
        .layer(layer)
}

fn unsupported(res: &http::Response<axum::body::Body>) -> Option<Capability> {
    match res.extensions().get::<SharedError>()?.error() {
        SessionError::Unsupported(c) => Some(*c),
        _ => None,
    }
}

#[tokio::test]
async fn without_a_user_index_listing_and_revoking_answer_unsupported() {
    let store = Capabilities::new(MemoryStore::default()).with_leases();
    assert!(!store.has(Capability::UserIndex));
    let app = app(SessionLayer::with_capabilities(store, Keys::generate().unwrap()));
    let alice = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    assert_eq!(body(send(&app, req("GET", "/me", Some(&alice))).await).await, "alice", "logins work");

    for (method, path) in [("GET", "/sessions"), ("POST", "/logout-others")] {
        let res = send(&app, req(method, path, Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(unsupported(&res), Some(Capability::UserIndex), "{path}");
    }
    // Leases were given: exclusive sessions work.
    let res = send(&app, req("POST", "/locked-incr", Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, "1");
}

#[tokio::test]
async fn without_leases_lock_answers_unsupported_and_the_session_is_untouched() {
    let store = Capabilities::new(MemoryStore::default()).with_user_index();
    let app = app(SessionLayer::with_capabilities(store, Keys::generate().unwrap()));
    let alice = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    let res = send(&app, req("POST", "/locked-incr", Some(&alice))).await;
    assert_eq!(unsupported(&res), Some(Capability::Leases));
    assert_eq!(body(send(&app, req("GET", "/sessions", Some(&alice))).await).await, "1", "the index works");
}

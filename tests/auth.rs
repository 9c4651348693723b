//! Authentication helpers: freshness guard, login allow-list, logout then new data.

mod common;

use std::time::Duration;

use axum::{
    routing::{get, post},
    Router,
};
use common::*;
use http::StatusCode;
use sessionware::{Session, SessionError};

async fn sensitive(session: Session) -> Result<&'static str, SessionError> {
    session.require_recent_auth(Duration::from_secs(300)).await?;
    Ok("done")
}

async fn login_cart_only(session: Session) -> Result<(), SessionError> {
    session.login_keeping("carol", &["cart"]).await
}

async fn logout_with_flash(session: Session) -> Result<(), SessionError> {
    session.purge().await?;
    session.insert("flash", "bye").await
}

fn routes(h: &Harness) -> Router {
    Router::new()
        .route("/sensitive", get(sensitive))
        .route("/login-cart", post(login_cart_only))
        .route("/logout-flash", post(logout_with_flash))
        .merge(common::handlers::routes())
        .layer(h.layer.clone())
}

#[tokio::test]
async fn recent_auth_guard() {
    let h = Harness::new();
    let app = routes(&h);
    assert_eq!(send(&app, req("GET", "/sensitive", None)).await.status(), StatusCode::UNAUTHORIZED);
    let cookie = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    h.clock.advance(Duration::from_secs(299));
    assert_eq!(send(&app, req("GET", "/sensitive", Some(&cookie))).await.status(), StatusCode::OK);
    h.clock.advance(Duration::from_secs(2));
    let res = send(&app, req("GET", "/sensitive", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "stale authentication needs a new login");
}

#[tokio::test]
async fn login_keeping_drops_other_pre_login_data() {
    let h = Harness::new();
    let app = routes(&h);
    let anon = session_cookie(&send(&app, req("POST", "/set/cart", None)).await).unwrap();
    send(&app, req("POST", "/set/attacker_planted", Some(&anon))).await;
    let authed = session_cookie(&send(&app, req("POST", "/login-cart", Some(&anon))).await).unwrap();
    let h2 = routes(&h);
    let res = send(&h2, req("GET", "/me", Some(&authed))).await;
    assert_eq!(body(res).await, "carol");
    let record = {
        let key = h.store.inner.keys()[0];
        sessionware::store::SessionStore::load(&h.store.inner, &key, h.clock.now_ms()).await.unwrap().unwrap()
    };
    let keys: Vec<_> = record.data.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, vec!["cart"]);
}

#[tokio::test]
async fn data_written_after_purge_starts_a_new_session() {
    let h = Harness::new();
    let app = routes(&h);
    let cookie = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    let res = send(&app, req("POST", "/logout-flash", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let fresh = session_cookie(&res).expect("a new session carries the flash");
    assert_ne!(fresh, cookie);
    assert_eq!(send(&app, req("GET", "/me", Some(&cookie))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&app, req("GET", "/me", Some(&fresh))).await.status(),
        StatusCode::UNAUTHORIZED,
        "the new session is anonymous"
    );
    assert_eq!(h.store.inner.len(), 1);
}

#[tokio::test]
async fn a_failed_touch_does_not_fail_the_read() {
    let config = sessionware::SessionConfig::builder().touch_after(0.0).build().unwrap();
    let h = Harness::with_config(config);
    let app = routes(&h);
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    h.store.fail(Op::Touch);
    h.clock.advance(Duration::from_secs(1));
    let res = send(&app, req("GET", "/read", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h.store.count(Op::Touch), 1);
    assert_eq!(body(res).await, "1");
}

//! Store failures fail closed (R43, R51 to R53, R86).

mod common;

use std::time::Duration;

use common::*;
use http::{header, Response, StatusCode};
use sessionware::{Session, SessionConfig, SessionError, SharedError};

#[tokio::test]
async fn load_failure_is_503_never_a_fresh_session() {
    let h = Harness::new();
    let app = app(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    h.store.fail(Op::Load);
    for path in ["/me", "/careless", "/read"] {
        let res = send(&app, req("GET", path, Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        let err = res.extensions().get::<SharedError>().expect("error attached");
        assert!(matches!(err.error(), SessionError::Load(_)));
        let text = body(res).await;
        assert!(!text.contains("hunter2") && !text.contains("10.0.0.1"), "generic body: {text}");
    }
    // Writes under a failed load create nothing either.
    let res = send(&app, req("POST", "/incr", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h.store.count(Op::Create), 1, "only the login created a record");
    // Recovery without a restart.
    h.store.heal();
    assert_eq!(body(send(&app, req("GET", "/me", Some(&cookie))).await).await, "alice");
}

#[tokio::test]
async fn save_failure_is_500_without_cookie() {
    let h = Harness::new();
    let app = app(&h.layer);
    h.store.fail(Op::Create);
    let res = send(&app, req("POST", "/incr", None)).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    assert!(matches!(res.extensions().get::<SharedError>().unwrap().error(), SessionError::Save(_)));
    h.store.heal();
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    h.store.fail(Op::Apply);
    let res = send(&app, req("POST", "/incr", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    h.store.heal();
    assert_eq!(body(send(&app, req("GET", "/read", Some(&cookie))).await).await, "1", "the failed write did not land");
}

#[tokio::test]
async fn logout_failure_is_reported() {
    let h = Harness::new();
    let app = app(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    h.store.fail(Op::Delete);
    let res = send(&app, req("POST", "/logout", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.headers().get(header::SET_COOKIE).is_none(), "no removal cookie pretends success");
    h.store.heal();
    assert_eq!(body(send(&app, req("GET", "/me", Some(&cookie))).await).await, "alice");
}

#[tokio::test]
async fn renewal_that_the_store_cannot_rotate_fails_closed() {
    let h = Harness::new();
    let app = app(&h.layer);
    let anon = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    h.store.fail(Op::Rotate);
    let res = send(&app, req("POST", "/login/alice", Some(&anon))).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.headers().get(header::SET_COOKIE).is_none(), "no cookie for a session that was not rotated");
    h.store.heal();
    // Nothing half-done: the old session is as it was, and not logged in.
    assert_eq!(send(&app, req("GET", "/me", Some(&anon))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(send(&app, req("GET", "/read", Some(&anon))).await).await, "1");
    assert_eq!(h.store.inner.len(), 1, "no successor was left behind");
}

#[tokio::test]
async fn responses_are_configurable() {
    let h = Harness::new();
    let layer = h.layer.clone().on_load_error(|_| {
        let mut r = Response::new("<!doctype html><h1>Please try again</h1>");
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        r.headers_mut().insert("x-session", "down".parse().unwrap());
        r.headers_mut().insert(header::CONTENT_TYPE, "text/html; charset=utf-8".parse().unwrap());
        r
    });
    let app = app(&layer);
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    h.store.fail(Op::Load);
    let res = send(&app, req("GET", "/read", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()["x-session"], "down");
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(body(res).await, "<!doctype html><h1>Please try again</h1>", "the hook's page reaches the client");
}

/// The default error responses are not a blank page: a short plain-text
/// body says what failed, and never carries the store's detail (the
/// injected error names a password and a host), with `no-store`.
#[tokio::test]
async fn default_error_responses_have_a_short_body_without_store_detail() {
    let h = Harness::new();
    let app = app(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let check = |res: Response<axum::body::Body>, status: StatusCode, text: &'static str| async move {
        assert_eq!(res.status(), status);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        assert_eq!(body(res).await, text);
    };
    h.store.fail(Op::Load);
    check(
        send(&app, req("GET", "/read", Some(&cookie))).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "Session store unavailable",
    )
    .await;
    h.store.heal();
    h.store.fail(Op::Apply);
    check(
        send(&app, req("POST", "/incr", Some(&cookie))).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Session could not be saved",
    )
    .await;
    h.store.heal();
}

/// Through a plain Tower service whose body is `http_body_util::Full<Bytes>`
/// (hyper without axum), the default body reaches the client too.
#[tokio::test]
async fn default_error_body_reaches_a_plain_tower_service() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use tower::{Service, ServiceBuilder, ServiceExt};
    let h = Harness::new();
    async fn handler(req: http::Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
        let session = req.extensions().get::<Session>().cloned().expect("layer installed");
        let _ = session.get::<u64>("n").await;
        Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
    }
    let mut svc = ServiceBuilder::new().layer(h.layer.clone()).service_fn(handler);
    let cookie = h.credential_for(&sessionware::SessionId::generate().unwrap());
    h.store.fail(Op::Load);
    let req = http::Request::builder().header(header::COOKIE, cookie).body(Full::new(Bytes::new())).unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "Session store unavailable");
}

#[tokio::test(start_paused = true)]
async fn slow_store_times_out() {
    let config = SessionConfig::builder().store_timeout(Duration::from_millis(100)).build().unwrap();
    let h = Harness::with_config(config);
    let app = app(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    h.store.stall(Op::Load);
    let start = tokio::time::Instant::now();
    let res = send(&app, req("GET", "/read", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(start.elapsed() < Duration::from_secs(1), "answered after the 100 ms timeout");
    let err = res.extensions().get::<SharedError>().unwrap();
    assert!(matches!(err.error(), SessionError::Load(sessionware::store::StoreError::Timeout)));
}

#[tokio::test]
async fn oversized_data_is_refused() {
    use axum::{routing::post, Router};
    use sessionware::Session;
    let config = SessionConfig::builder().max_data_bytes(1024).build().unwrap();
    let h = Harness::with_config(config);
    async fn big(session: Session) -> Result<(), SessionError> {
        session.insert("big", "x".repeat(2048)).await
    }
    let app: Router = Router::new().route("/big", post(big)).layer(h.layer.clone());
    let res = send(&app, req("POST", "/big", None)).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    assert!(h.store.inner.is_empty());
}

#[tokio::test]
async fn memory_store_capacity_is_a_typed_error() {
    use sessionware::{
        store::{MemoryStore, WhenFull},
        Keys, SessionLayer,
    };
    // The default policy evicts anonymous sessions instead: refuse here.
    let store = MemoryStore::builder().max_sessions(2).when_full(WhenFull::Refuse).build();
    let app = app(&SessionLayer::new(store.clone(), Keys::generate().unwrap()));
    for _ in 0..2 {
        assert_eq!(send(&app, req("POST", "/incr", None)).await.status(), StatusCode::OK);
    }
    let res = send(&app, req("POST", "/incr", None)).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(matches!(
        res.extensions().get::<SharedError>().unwrap().error(),
        SessionError::Save(sessionware::store::StoreError::Capacity)
    ));
    assert_eq!(store.len(), 2);
}

/// `purge` after the response was committed fails instead of pretending to
/// log the user out.
#[tokio::test]
async fn purge_after_the_commit_is_an_error() {
    let h = Harness::new();
    let (tx, rx) = tokio::sync::oneshot::channel::<Session>();
    let tx = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
    let app = axum::Router::new()
        .route(
            "/keep",
            axum::routing::post(move |session: Session| {
                let tx = tx.lock().unwrap().take();
                async move {
                    session.insert("n", 1).await?;
                    if let Some(tx) = tx {
                        let _ = tx.send(session.clone());
                    }
                    Ok::<_, SessionError>(())
                }
            }),
        )
        .layer(h.layer.clone());
    let res = send(&app, req("POST", "/keep", None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let kept = rx.await.unwrap();
    assert!(matches!(kept.purge().await, Err(SessionError::Committed)));
    assert!(matches!(kept.insert("m", 2).await, Err(SessionError::Committed)));
    assert_eq!(h.store.inner.len(), 1, "the session was not touched after its commit");
}

/// The `Set-Cookie` value is marked sensitive (HTTP/2 never indexes it in
/// its header compression table).
#[tokio::test]
async fn the_set_cookie_value_is_sensitive() {
    let h = Harness::new();
    let app = app(&h.layer);
    let res = send(&app, req("POST", "/incr", None)).await;
    assert!(res.headers().get(header::SET_COOKIE).unwrap().is_sensitive());
    let cookie = session_cookie(&res).unwrap();
    let res = send(&app, req("POST", "/logout", Some(&cookie))).await;
    assert!(res.headers().get(header::SET_COOKIE).unwrap().is_sensitive(), "the removal cookie too");
}

//! Cross-origin protection through the layer (issue 10 point 1, R58, R61):
//! a browser's state-changing request from another origin is refused with a
//! typed 403 before the handler runs (login CSRF included); same-origin
//! requests and non-browser clients pass.

mod common;

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use axum::{routing::post, Router};
use common::*;
use http::{header, Request, StatusCode};
use sessionware::{CrossOriginReason, CrossOriginRefused, EventKind, Keys, Session, SessionConfig};

/// The app, and how many times a handler ran.
fn app_counting(h: &Harness) -> (Router, Arc<AtomicUsize>) {
    let ran = Arc::new(AtomicUsize::new(0));
    let (a, b) = (Arc::clone(&ran), Arc::clone(&ran));
    let app = Router::new()
        .route(
            "/counted-login/{user}",
            post(move |session: Session, axum::extract::Path(user): axum::extract::Path<String>| {
                a.fetch_add(1, Ordering::SeqCst);
                async move { session.login(user).await }
            }),
        )
        .route(
            "/hooks/payment",
            post(move || {
                b.fetch_add(1, Ordering::SeqCst);
                async { "ok" }
            }),
        )
        .merge(handlers::routes())
        .layer(h.layer.clone());
    (app, ran)
}

fn post_from(uri: &str, cookie: Option<&str>, headers: &[(&str, &str)]) -> Request<axum::body::Body> {
    let mut req = req("POST", uri, cookie);
    req.headers_mut().insert(header::HOST, "app.example".parse().unwrap());
    for (k, v) in headers {
        req.headers_mut().append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    req
}

fn refusal(res: &http::Response<axum::body::Body>) -> Option<CrossOriginReason> {
    res.extensions().get::<CrossOriginRefused>().map(|r| r.reason)
}

#[tokio::test]
async fn a_cross_site_login_is_refused_before_the_handler_and_creates_nothing() {
    let h = Harness::new();
    let (app, ran) = app_counting(&h);
    let res = send(&app, post_from("/counted-login/mallory", None, &[("sec-fetch-site", "cross-site")])).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(refusal(&res), Some(CrossOriginReason::CrossSite));
    assert!(no_cookie(&res), "no session is planted (login CSRF)");
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the handler never ran");
    assert_eq!(h.store.total(), 0, "no store call");
    assert_eq!(res.headers()[header::VARY], "Origin, Sec-Fetch-Site");
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn a_cross_site_form_cannot_act_with_the_victims_session() {
    let h = Harness::new();
    let (app, _) = app_counting(&h);
    let res = send(&app, post_from("/counted-login/alice", None, &[("sec-fetch-site", "same-origin")])).await;
    let alice = session_cookie(&res).expect("a same-origin login works");
    for attack in [
        vec![("sec-fetch-site", "cross-site"), ("origin", "https://evil.test")],
        vec![("sec-fetch-site", "same-site"), ("origin", "https://evil.app.example")],
        vec![("origin", "https://evil.test")],
        vec![("origin", "https://app.example.evil.test")],
        vec![("origin", "http://app.example")],
        vec![("origin", "null")],
    ] {
        for uri in ["/incr", "/logout", "/renew"] {
            let res = send(&app, post_from(uri, Some(&alice), &attack)).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{uri} {attack:?}");
            assert!(no_cookie(&res), "{uri} {attack:?}");
        }
    }
    let res = send(&app, post_from("/incr", Some(&alice), &[])).await;
    assert_eq!(body(res).await, "1", "none of the attacks changed the session");
    let res = send(&app, req("GET", "/me", Some(&alice))).await;
    assert_eq!(body(res).await, "alice", "nor logged alice out");
}

#[tokio::test]
async fn same_origin_requests_and_non_browser_clients_pass() {
    let h = Harness::new();
    let (app, ran) = app_counting(&h);
    for headers in [
        vec![("sec-fetch-site", "same-origin")],
        vec![("sec-fetch-site", "none")],
        vec![("origin", "https://app.example")],
        vec![],
    ] {
        let res = send(&app, post_from("/counted-login/alice", None, &headers)).await;
        assert_eq!(res.status(), StatusCode::OK, "{headers:?}");
        assert!(session_cookie(&res).is_some(), "{headers:?}");
    }
    assert_eq!(ran.load(Ordering::SeqCst), 4);
    // Safe methods are never checked.
    let mut get = req("GET", "/read", None);
    get.headers_mut().insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(send(&app, get).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn trusted_origins_and_exempt_paths_pass_and_nothing_else() {
    let config = SessionConfig::builder()
        .trusted_origin("https://admin.example")
        .cross_origin_exempt("/hooks/*")
        .build()
        .unwrap();
    let h = Harness::with(config, Keys::generate().unwrap());
    let (app, ran) = app_counting(&h);
    let trusted = [("sec-fetch-site", "cross-site"), ("origin", "https://admin.example")];
    assert_eq!(send(&app, post_from("/counted-login/alice", None, &trusted)).await.status(), StatusCode::OK);
    let hook = [("sec-fetch-site", "cross-site"), ("origin", "https://payments.test")];
    assert_eq!(send(&app, post_from("/hooks/payment", None, &hook)).await.status(), StatusCode::OK);
    assert_eq!(send(&app, post_from("/counted-login/alice", None, &hook)).await.status(), StatusCode::FORBIDDEN);
    let near = [("sec-fetch-site", "cross-site"), ("origin", "https://admin.example:8443")];
    assert_eq!(send(&app, post_from("/counted-login/alice", None, &near)).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn refusals_are_events_and_the_check_can_be_turned_off() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let h = Harness::new();
    let events = Arc::clone(&seen);
    let layer = h.layer.clone().on_event(move |e| events.lock().unwrap().push((e.kind, e.path.clone())));
    let app = handlers::routes().layer(layer);
    let res = send(&app, post_from("/incr", None, &[("origin", "null")])).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(EventKind::CrossOriginRefused(CrossOriginReason::NullOrigin), Some("/incr".to_string()))]
    );

    let open = SessionConfig::builder().dangerous_allow_cross_origin().build().unwrap();
    let h = Harness::with(open, Keys::generate().unwrap());
    let app = common::app(&h.layer);
    let res = send(&app, post_from("/incr", None, &[("sec-fetch-site", "cross-site")])).await;
    assert_eq!(res.status(), StatusCode::OK, "off means off");
}

//! Synchronizer CSRF tokens (issue 10 point 2; R11, R58–R60, R64): every
//! attack of the issue fails (wrong token, another session's token, a token
//! from before login, a cross-site form, a missing header), valid tokens
//! pass by header and by form field, and the secret never leaks.

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    body::Body,
    routing::{any, get, post},
    Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use common::*;
use http::{header, Request, Response, StatusCode};
use proptest::prelude::{proptest, ProptestConfig};
use sessionware::{
    CsrfLayer, CsrfReason, CsrfRefused, EventKind, Keys, Session, SessionConfig, SessionError, SharedError,
};

/// The app under a `SessionLayer` (outside) and `csrf` (inside), and how
/// many times `/act` or `/echo` ran.
fn app_with(h: &Harness, csrf: CsrfLayer) -> (Router, Arc<AtomicUsize>) {
    let ran = Arc::new(AtomicUsize::new(0));
    let (a, b) = (Arc::clone(&ran), Arc::clone(&ran));
    let app = Router::new()
        .route("/token", get(|s: Session| async move { Ok::<_, SessionError>(s.csrf_token().await?.to_string()) }))
        .route(
            "/act",
            any(move || {
                a.fetch_add(1, Ordering::SeqCst);
                async { "acted" }
            }),
        )
        .route(
            "/echo",
            post(move |body: String| {
                b.fetch_add(1, Ordering::SeqCst);
                async move { body }
            }),
        )
        .route("/password", post(|s: Session| async move { s.credentials_changed().await }))
        .route("/step-up", post(|s: Session| async move { s.step_up(sessionware::AuthMethod::Totp).await }))
        .route(
            "/json",
            get(|s: Session| async move {
                Ok::<_, SessionError>(serde_json::Value::Object(s.to_json().await?).to_string())
            }),
        )
        .route(
            "/reserved",
            get(|s: Session| async move {
                let key = "__sessionware.csrf";
                format!(
                    "empty={} contains={} insert={:?} get={:?} remove={:?} take={:?}",
                    s.is_empty().await.unwrap(),
                    s.contains(key).await.unwrap(),
                    s.insert(key, "mine").await.err(),
                    s.get::<String>(key).await.err(),
                    s.remove(key).await.err(),
                    s.take::<String>(key).await.err(),
                )
            }),
        )
        .merge(handlers::routes())
        .layer(csrf)
        .layer(h.layer.clone());
    (app, ran)
}

/// A POST with an optional cookie, headers and a URL-encoded form body.
fn post_with(uri: &str, cookie: Option<&str>, headers: &[(&str, &str)], form: Option<&str>) -> Request<Body> {
    let mut req = req("POST", uri, cookie);
    for (k, v) in headers {
        req.headers_mut().append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    if let Some(form) = form {
        req.headers_mut().insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        *req.body_mut() = Body::from(form.to_string());
    }
    req
}

/// `POST /act` with the token in the header.
fn act(cookie: &str, token: &str) -> Request<Body> {
    post_with("/act", Some(cookie), &[("x-csrf-token", token)], None)
}

/// A token for the session of `cookie` (or a new pre-session): the cookie
/// to use from now on, and the token.
async fn token(app: &Router, cookie: Option<&str>) -> (String, String) {
    let res = send(app, req("GET", "/token", cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = session_cookie(&res).or(cookie.map(str::to_string)).expect("a session");
    (cookie, body(res).await)
}

fn refusal(res: &Response<Body>) -> Option<CsrfReason> {
    res.extensions().get::<CsrfRefused>().map(|r| r.reason)
}

/// A refusal before the handler: the status, no body, not cached, typed.
async fn assert_refused(res: Response<Body>, reason: CsrfReason, ran: &AtomicUsize) {
    assert_eq!(res.status(), reason.status(), "{reason:?}");
    assert_eq!(refusal(&res), Some(reason));
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the handler never ran");
    assert_eq!(body(res).await, "", "no body");
}

/// One character of `token` changed (not the last: it carries unused bits).
fn bent(token: &str) -> String {
    let mut b = token.as_bytes().to_vec();
    b[10] = if b[10] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

#[tokio::test]
async fn a_token_round_trips_in_the_header_and_in_a_form_field() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new().require_token());
    let (cookie, t) = token(&app, None).await;
    assert_eq!(t.len(), 86);
    let res = send(&app, act(&cookie, &t)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    // The form body reaches the handler byte for byte.
    let form = format!("a=1&csrf_token={t}&b=%C3%A9+x");
    let res = send(&app, post_with("/echo", Some(&cookie), &[], Some(&form))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, form);
}

#[tokio::test]
async fn every_call_masks_afresh_and_every_token_verifies() {
    let h = Harness::new();
    let (app, _) = app_with(&h, CsrfLayer::new().require_token());
    let (cookie, a) = token(&app, None).await;
    let (_, b) = token(&app, Some(&cookie)).await;
    assert_ne!(a, b, "a fresh mask per call (BREACH)");
    assert_eq!(send(&app, act(&cookie, &a)).await.status(), StatusCode::OK);
    assert_eq!(send(&app, act(&cookie, &b)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_or_forged_token_is_refused_in_either_mode() {
    for csrf in [CsrfLayer::new(), CsrfLayer::new().require_token()] {
        let h = Harness::new();
        let (app, ran) = app_with(&h, csrf);
        let (cookie, t) = token(&app, None).await;
        assert_refused(send(&app, act(&cookie, &bent(&t))).await, CsrfReason::Invalid, &ran).await;
        // A well-formed token of random bytes.
        let random = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>().repeat(2));
        assert_eq!(random.len(), 86);
        assert_refused(send(&app, act(&cookie, &random)).await, CsrfReason::Invalid, &ran).await;
        // Garbage, empty, and the right token with padding or a prefix.
        for bad in ["", "x", &format!("{t}=="), &format!("a{t}")] {
            assert_refused(send(&app, act(&cookie, bad)).await, CsrfReason::Invalid, &ran).await;
        }
        let form = format!("csrf_token={}", bent(&t));
        let res = send(&app, post_with("/echo", Some(&cookie), &[], Some(&form))).await;
        assert_refused(res, CsrfReason::Invalid, &ran).await;
        // A repeated header or field is never resolved by position.
        let twice = post_with("/act", Some(&cookie), &[("x-csrf-token", &t), ("x-csrf-token", "x")], None);
        assert_refused(send(&app, twice).await, CsrfReason::Duplicate, &ran).await;
        let form = format!("csrf_token={t}&csrf_token={t}");
        let res = send(&app, post_with("/echo", Some(&cookie), &[], Some(&form))).await;
        assert_refused(res, CsrfReason::Duplicate, &ran).await;
        // A token on a request without a session verifies nothing.
        assert_refused(
            send(&app, post_with("/act", None, &[("x-csrf-token", &t)], None)).await,
            CsrfReason::Invalid,
            &ran,
        )
        .await;
    }
}

#[tokio::test]
async fn a_token_of_another_session_is_refused() {
    // R59: the attacker's own (valid) token, with the victim's cookie.
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new());
    let (victim, _) = token(&app, None).await;
    let (_, attackers) = token(&app, None).await;
    assert_refused(send(&app, act(&victim, &attackers)).await, CsrfReason::Invalid, &ran).await;
}

#[tokio::test]
async fn a_token_from_before_login_is_dead_after_it_and_a_new_one_works() {
    // R11: login replaces the secret (a new session, and a re-authentication
    // of the same user, which keeps the data).
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new());
    let (pre, before) = token(&app, None).await;
    let res = send(&app, req("POST", "/login/alice", Some(&pre))).await;
    let authed = session_cookie(&res).unwrap();
    assert_refused(send(&app, act(&authed, &before)).await, CsrfReason::Invalid, &ran).await;
    let (_, after) = token(&app, Some(&authed)).await;
    assert_eq!(send(&app, act(&authed, &after)).await.status(), StatusCode::OK);
    send(&app, post_with("/set/kept", Some(&authed), &[("x-csrf-token", &after)], None)).await;
    let again = session_cookie(&send(&app, post_with("/login/alice", Some(&authed), &[], None)).await).unwrap();
    assert!(body(send(&app, req("GET", "/keys", Some(&again))).await).await.contains("kept"), "same-user data kept");
    let res = send(&app, act(&again, &after)).await;
    assert_eq!(refusal(&res), Some(CsrfReason::Invalid), "but not the secret");
}

#[tokio::test]
async fn a_token_is_dead_after_renew_and_credentials_changed() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new());
    let cookie = login(&app, "alice").await;
    let (cookie, t) = token(&app, Some(&cookie)).await;
    let renewed = session_cookie(&send(&app, post_with("/renew", Some(&cookie), &[("x-csrf-token", &t)], None)).await)
        .expect("renewed");
    ran.store(0, Ordering::SeqCst);
    assert_refused(send(&app, act(&renewed, &t)).await, CsrfReason::Invalid, &ran).await;
    let (_, t) = token(&app, Some(&renewed)).await;
    let res = send(&app, post_with("/password", Some(&renewed), &[("x-csrf-token", &t)], None)).await;
    let changed = session_cookie(&res).expect("re-signed in under a new ID");
    assert_refused(send(&app, act(&changed, &t)).await, CsrfReason::Invalid, &ran).await;
}

// R11: a step-up is a sign-in too: the token from before it is dead.
#[tokio::test]
async fn a_token_is_dead_after_a_step_up() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new());
    let cookie = login(&app, "alice").await;
    let (cookie, t) = token(&app, Some(&cookie)).await;
    let res = send(&app, post_with("/step-up", Some(&cookie), &[("x-csrf-token", &t)], None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let stepped = session_cookie(&res).expect("a new ID");
    ran.store(0, Ordering::SeqCst);
    assert_refused(send(&app, act(&stepped, &t)).await, CsrfReason::Invalid, &ran).await;
    let (_, t) = token(&app, Some(&stepped)).await;
    assert_eq!(send(&app, act(&stepped, &t)).await.status(), StatusCode::OK, "a new token works");
}

#[tokio::test]
async fn a_token_survives_the_periodic_renewal() {
    let renew_after = Duration::from_secs(600);
    let config = SessionConfig::builder()
        .idle_timeout(Duration::from_secs(3600))
        .absolute_timeout(Duration::from_secs(3 * 3600))
        .renew_after(renew_after)
        .build()
        .unwrap();
    let h = Harness::with_config(config);
    let (app, _) = app_with(&h, CsrfLayer::new().require_token());
    let (old, t) = token(&app, None).await;
    h.clock.advance(renew_after);
    let new = session_cookie(&send(&app, req("GET", "/read", Some(&old))).await).expect("periodically renewed");
    assert_ne!(new, old);
    assert_eq!(send(&app, act(&new, &t)).await.status(), StatusCode::OK, "an open page keeps working");
}

#[tokio::test]
async fn a_token_only_in_a_cookie_or_the_query_is_refused() {
    // R60: only the header or the form field counts.
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new().require_token());
    let (cookie, t) = token(&app, None).await;
    let in_cookie = format!("{cookie}; csrf_token={t}; x-csrf-token={t}");
    assert_refused(send(&app, req("POST", "/act", Some(&in_cookie))).await, CsrfReason::Missing, &ran).await;
    let in_query = req("POST", &format!("/act?csrf_token={t}&x-csrf-token={t}"), Some(&cookie));
    assert_refused(send(&app, in_query).await, CsrfReason::Missing, &ran).await;
    // In a body that is not a URL-encoded form.
    let mut json = post_with("/act", Some(&cookie), &[("content-type", "application/json")], None);
    *json.body_mut() = Body::from(format!("{{\"csrf_token\":\"{t}\"}}"));
    assert_refused(send(&app, json).await, CsrfReason::Missing, &ran).await;
}

#[tokio::test]
async fn require_mode_refuses_every_unsafe_request_without_a_token() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new().require_token());
    let (cookie, t) = token(&app, None).await;
    for method in ["POST", "PUT", "PATCH", "DELETE", "PURGE"] {
        // R58: a custom method is unsafe too.
        assert_refused(send(&app, req(method, "/act", Some(&cookie))).await, CsrfReason::Missing, &ran).await;
        assert_refused(send(&app, req(method, "/act", None)).await, CsrfReason::Missing, &ran).await;
    }
    let res = send(&app, post_with("/echo", Some(&cookie), &[], Some("a=1"))).await;
    assert_refused(res, CsrfReason::Missing, &ran).await;
    let mut purge = act(&cookie, &t);
    *purge.method_mut() = http::Method::from_bytes(b"PURGE").unwrap();
    assert_eq!(send(&app, purge).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_default_mode_lets_a_request_without_a_token_through() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new());
    let (cookie, _) = token(&app, None).await;
    assert_eq!(send(&app, req("POST", "/act", Some(&cookie))).await.status(), StatusCode::OK);
    let res = send(&app, post_with("/echo", Some(&cookie), &[], Some("a=1&b=2"))).await;
    assert_eq!(body(res).await, "a=1&b=2", "a form without the field reaches the handler whole");
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn safe_methods_pass_untouched() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new().require_token());
    for method in ["GET", "HEAD", "OPTIONS", "TRACE"] {
        let mut r = req(method, "/act", None);
        r.headers_mut().insert("x-csrf-token", "forged".parse().unwrap());
        let res = send(&app, r).await;
        assert_eq!(res.status(), StatusCode::OK, "{method}");
        assert_eq!(refusal(&res), None);
    }
    assert_eq!(ran.load(Ordering::SeqCst), 4);
    assert_eq!(h.store.total(), 0, "no session was loaded");
}

#[tokio::test]
async fn a_cross_site_form_post_is_refused_by_either_defence() {
    let cross_site = |cookie: &str| {
        let mut r = post_with("/echo", Some(cookie), &[("sec-fetch-site", "cross-site")], Some("amount=100"));
        r.headers_mut().insert(header::HOST, "app.example".parse().unwrap());
        r
    };
    // The default: the cross-origin check refuses it first.
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new());
    let (cookie, _) = token(&app, None).await;
    let res = send(&app, cross_site(&cookie)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    // Without it, the required token refuses it.
    let h = Harness::with_config(SessionConfig::builder().dangerous_allow_cross_origin().build().unwrap());
    let (app, ran) = app_with(&h, CsrfLayer::new().require_token());
    let (cookie, _) = token(&app, None).await;
    assert_refused(send(&app, cross_site(&cookie)).await, CsrfReason::Missing, &ran).await;
}

#[tokio::test]
async fn login_csrf_needs_a_pre_session_token() {
    // R64, with the cross-origin check off to show the tokens alone hold.
    let h = Harness::with_config(SessionConfig::builder().dangerous_allow_cross_origin().build().unwrap());
    let (app, _) = app_with(&h, CsrfLayer::new().require_token());
    let res = send(&app, post_with("/login/mallory", None, &[("sec-fetch-site", "cross-site")], None)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(refusal(&res), Some(CsrfReason::Missing));
    assert!(no_cookie(&res), "nobody was signed in");
    assert_eq!(h.store.total(), 0, "nothing was created");
    // The login form's page gets a pre-session and its token.
    let (pre, t) = token(&app, None).await;
    let res = send(&app, post_with("/login/alice", Some(&pre), &[("x-csrf-token", &t)], None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let authed = session_cookie(&res).expect("a new ID");
    assert_ne!(authed, pre);
    assert_eq!(who(&app, &authed).await, (StatusCode::OK, "alice".into()));
    let res = send(&app, act(&authed, &t)).await;
    assert_eq!(refusal(&res), Some(CsrfReason::Invalid), "the pre-session's token is dead");
}

#[tokio::test]
async fn a_form_past_the_cap_is_refused_with_413() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new().max_form_bytes(1024));
    let (cookie, t) = token(&app, None).await;
    let big = format!("csrf_token={t}&pad={}", "x".repeat(2048));
    assert_refused(send(&app, post_with("/echo", Some(&cookie), &[], Some(&big))).await, CsrfReason::TooLarge, &ran)
        .await;
    let small = format!("csrf_token={t}&pad=x");
    assert_eq!(send(&app, post_with("/echo", Some(&cookie), &[], Some(&small))).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_secret_is_hidden_from_handlers() {
    let h = Harness::new();
    let (app, _) = app_with(&h, CsrfLayer::new());
    let (cookie, _) = token(&app, None).await;
    assert_eq!(body(send(&app, req("GET", "/keys", Some(&cookie))).await).await, "");
    assert_eq!(body(send(&app, req("GET", "/json", Some(&cookie))).await).await, "{}");
    let seen = body(send(&app, req("GET", "/reserved", Some(&cookie))).await).await;
    assert_eq!(
        seen,
        "empty=true contains=false insert=Some(InvalidDataKey) get=Some(InvalidDataKey) remove=Some(InvalidDataKey) take=Some(InvalidDataKey)"
    );
}

#[tokio::test]
async fn concurrent_first_calls_leave_one_token_dead() {
    // The documented race: both requests make a secret; the store keeps
    // the last write, so the token the other one handed out stops verifying.
    let h = Harness::new();
    let (app, _) = app_with(&h, CsrfLayer::new());
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let first = hold(&h, &app, "GET", "/token", &cookie).await; // loaded, no secret yet
    let (_, second) = token(&app, Some(&cookie)).await; // makes and stores a secret
    release(&h);
    let first = body(first.await.unwrap()).await; // made another, stored last
    assert_eq!(send(&app, act(&cookie, &first)).await.status(), StatusCode::OK);
    let res = send(&app, act(&cookie, &second)).await;
    assert_eq!(refusal(&res), Some(CsrfReason::Invalid), "one 403: the page fetches a new token");
    // Once a secret exists, later calls share it.
    let (_, third) = token(&app, Some(&cookie)).await;
    assert_eq!(send(&app, act(&cookie, &third)).await.status(), StatusCode::OK);
}

/// A privilege renewal held between its load (no secret yet) and its
/// commit while another request creates the secret: the successor does not
/// keep that secret (the renewal records its removal in the rotation's
/// change set, applied to the data as stored then), so the token handed out
/// meanwhile is dead after the renewal (R11).
#[tokio::test]
async fn a_secret_created_while_a_renewal_runs_does_not_survive_it() {
    let h = Harness::new();
    let (app, _) = app_with(&h, CsrfLayer::new());
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let renewal = hold(&h, &app, "POST", "/renew", &cookie).await; // loaded, no secret yet
    let (_, meanwhile) = token(&app, Some(&cookie)).await; // makes and stores a secret
    release(&h);
    let renewed = session_cookie(&renewal.await.unwrap()).expect("the renewal issued a new ID");
    let res = send(&app, act(&renewed, &meanwhile)).await;
    assert_eq!(refusal(&res), Some(CsrfReason::Invalid), "the secret made during the renewal is gone");
    let (_, fresh) = token(&app, Some(&renewed)).await;
    assert_eq!(send(&app, act(&renewed, &fresh)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_the_session_layer_unsafe_requests_get_a_typed_500() {
    let app = Router::new().route("/act", any(|| async { "acted" })).layer(CsrfLayer::new());
    let res = send(&app, req("POST", "/act", None)).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let err = res.extensions().get::<SharedError>().expect("typed");
    assert!(matches!(err.error(), SessionError::MissingLayer));
    assert_eq!(send(&app, req("GET", "/act", None)).await.status(), StatusCode::OK, "safe methods pass");
}

#[tokio::test]
async fn a_store_failure_while_verifying_fails_closed() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new());
    let (cookie, t) = token(&app, None).await;
    h.store.fail(Op::Load);
    let res = send(&app, act(&cookie, &t)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

/// The process-wide log of this test binary. A global subscriber, not a
/// thread-local one: with `set_default`, a callsite first hit by a parallel
/// test on another thread (no subscriber) can be cached as "never", and
/// this test then sees no line (a flake, not a finding). Every test's lines
/// land here; the test below looks for its own session's.
fn global_log() -> LogCapture {
    static LOG: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let capture = LogCapture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(capture.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber of this binary");
        capture
    })
    .clone()
}

#[tokio::test]
async fn refusals_are_events_and_the_token_is_never_logged() {
    let capture = global_log();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let (log, seen) = (Arc::clone(&events), Arc::clone(&sessions));
    let mut h = Harness::new();
    h.layer = h.layer.clone().on_event(move |e| {
        log.lock().unwrap().push(format!("{e:?}"));
        seen.lock().unwrap().extend(e.session.clone());
    });
    let (app, _) = app_with(&h, CsrfLayer::new().require_token());
    let (cookie, t) = token(&app, None).await;
    send(&app, act(&cookie, &t)).await;
    send(&app, act(&cookie, &bent(&t))).await;
    send(&app, post_with("/echo", Some(&cookie), &[], Some(&format!("csrf_token={}", bent(&t))))).await;
    send(&app, req("POST", "/act", Some(&cookie))).await;
    let events = events.lock().unwrap().join("\n");
    assert!(events.contains(&format!("{:?}", EventKind::CsrfRefused(CsrfReason::Invalid))), "{events}");
    assert!(events.contains(&format!("{:?}", EventKind::CsrfRefused(CsrfReason::Missing))), "{events}");
    let fingerprint = sessions.lock().unwrap().first().cloned().expect("the session's fingerprint");
    let log = capture.text();
    let ours = log
        .lines()
        .any(|l| l.contains("session.csrf_refused") && l.contains("reason=\"invalid\"") && l.contains(&*fingerprint));
    assert!(ours, "no refusal logged for session {fingerprint}:\n{log}");
    for text in [&events, &log] {
        for token in [&t, &bent(&t)] {
            assert!(!text.contains(token.as_str()) && !text.contains(&token[20..50]), "a token leaked");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Bad input is a refusal, never a panic: any header value, any form
    /// body (R59: and never a pass).
    #[test]
    fn malformed_tokens_and_bodies_are_refused_without_panicking(
        header_token in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
        form in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let h = Harness::with(SessionConfig::default(), Keys::generate().unwrap());
            let (app, ran) = app_with(&h, CsrfLayer::new().require_token());
            let (cookie, _) = token(&app, None).await;
            if let Ok(value) = http::HeaderValue::from_bytes(&header_token) {
                let mut r = req("POST", "/act", Some(&cookie));
                r.headers_mut().insert("x-csrf-token", value);
                assert_eq!(send(&app, r).await.status(), StatusCode::FORBIDDEN);
            }
            let mut r = post_with("/echo", Some(&cookie), &[], Some(""));
            *r.body_mut() = Body::from(form.clone());
            assert_eq!(send(&app, r).await.status(), StatusCode::FORBIDDEN);
            assert_eq!(ran.load(Ordering::SeqCst), 0);
        });
    }
}

/// A header-transport session is no ambient credential (a browser never
/// attaches it on its own): the CSRF check does not apply to it, even in
/// require mode, while the same requests on a cookie layer are refused.
#[tokio::test]
async fn a_header_session_needs_no_csrf_token() {
    let h = Harness::on(sessionware::Transport::header());
    let (app, ran) = app_with(&h, CsrfLayer::new().require_token());
    let res = send(&app, req("POST", "/incr", None)).await;
    assert_eq!(res.status(), StatusCode::OK, "no token, no session yet: passes");
    let credential = session_cookie(&res).expect("a header session was created");
    assert!(credential.starts_with(TOKEN_HEADER), "{credential}");
    for method in ["POST", "PUT", "DELETE", "PURGE"] {
        let res = send(&app, req(method, "/act", Some(&credential))).await;
        assert_eq!(res.status(), StatusCode::OK, "{method}");
        assert_eq!(refusal(&res), None);
    }
    assert_eq!(ran.load(Ordering::SeqCst), 4);
    // The control: the same requests on a cookie layer are refused.
    let cookie_h = Harness::new();
    let (cookie_app, cookie_ran) = app_with(&cookie_h, CsrfLayer::new().require_token());
    let res = send(&cookie_app, req("POST", "/act", None)).await;
    assert_refused(res, CsrfReason::Missing, &cookie_ran).await;
}

//! Review of issue 10's web protections, as an attacker: CSRF tokens and
//! their layer, the header transport, soft client binding, the reserved
//! data key and the new extractors. Each test is one attack: `Holds` when
//! it fails as it should, `Finding` when it succeeded (then the test
//! asserts the secure behaviour; an open one is ignored).

mod common;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    body::Body,
    extract::ConnectInfo,
    routing::{any, get, post},
    Router,
};
use bytes::Bytes;
use common::*;
use http::{header, HeaderName, HeaderValue, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use sessionware::{
    BindingPolicy, CsrfLayer, CsrfReason, CsrfRefused, EventKind, Session, SessionConfig, SessionError, SessionLayer,
    SessionValue, Transport, Typed,
};

const SECRET_KEY: &str = "__sessionware.csrf";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

/// A value typed onto the CSRF secret's key: what a handler would use to
/// steal or plant it through the typed API.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stolen(String);

impl SessionValue for Stolen {
    const KEY: &'static str = SECRET_KEY;
}

/// The app under `layer` (outside) and `csrf` (inside), and how many times
/// a state-changing handler (`/act`, `/echo`) ran.
fn app_on(layer: &SessionLayer, csrf: CsrfLayer) -> (Router, Arc<AtomicUsize>) {
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
        .route("/get-echo", get(|body: String| async move { body }))
        .route("/clear", post(|s: Session| async move { s.clear().await }))
        .route("/login-keeping-secret", post(|s: Session| async move { s.login_keeping("alice", &[SECRET_KEY]).await }))
        .route(
            "/token-then-login",
            post(|s: Session| async move {
                let t = s.csrf_token().await?;
                s.login_keeping("alice", &[SECRET_KEY]).await?;
                Ok::<_, SessionError>(t.to_string())
            }),
        )
        .route(
            "/typed-reserved",
            post(|s: Session| async move {
                let t = s.typed::<String>(SECRET_KEY);
                let v = s.value::<Stolen>();
                let refused = |r: Result<_, SessionError>| matches!(r, Err(SessionError::InvalidDataKey));
                let all = [
                    refused(t.get().await.map(drop)),
                    refused(t.insert("planted".into()).await),
                    refused(t.update(|x| x.push('!')).await),
                    refused(t.update_or(|| "planted".into(), |_| ()).await),
                    refused(t.remove().await.map(drop)),
                    refused(v.get().await.map(drop)),
                    refused(v.update(|x| x.0.push('!')).await),
                    refused(s.typed::<String>("__sessionware.").get().await.map(drop)),
                    refused(s.typed::<String>("__sessionware.other").insert("x".into()).await),
                ];
                let listed = format!(
                    "{:?}|{}|{}",
                    s.keys().await?,
                    serde_json::Value::Object(s.to_json().await?),
                    s.is_empty().await?
                );
                Ok::<_, SessionError>(format!("{all:?}|{listed}"))
            }),
        )
        .route("/typed-extractor", post(|v: Typed<Stolen>| async move { format!("{:?}", v.get().await.err()) }))
        .merge(handlers::routes())
        .layer(csrf)
        .layer(layer.clone());
    (app, ran)
}

fn app_with(h: &Harness, csrf: CsrfLayer) -> (Router, Arc<AtomicUsize>) {
    app_on(&h.layer, csrf)
}

/// A POST with an optional credential, extra headers, and a body of the
/// given content type (`None`: no body, no `Content-Type`).
fn post_raw(uri: &str, cookie: Option<&str>, headers: &[(&str, &str)], body: Option<(&str, &str)>) -> Request<Body> {
    let mut r = req("POST", uri, cookie);
    for (k, v) in headers {
        r.headers_mut().append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    if let Some((ct, body)) = body {
        r.headers_mut().append(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        *r.body_mut() = Body::from(body.to_string());
    }
    r
}

const FORM: &str = "application/x-www-form-urlencoded";

fn form(uri: &str, cookie: &str, body: &str) -> Request<Body> {
    post_raw(uri, Some(cookie), &[], Some((FORM, body)))
}

fn act(cookie: &str, token: &str) -> Request<Body> {
    post_raw("/act", Some(cookie), &[("x-csrf-token", token)], None)
}

/// A token for the session of `cookie` (or a new pre-session): the
/// credential to use from now on, and the token.
async fn token(app: &Router, cookie: Option<&str>) -> (String, String) {
    let res = send(app, req("GET", "/token", cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = session_cookie(&res).or(cookie.map(str::to_string)).expect("a session");
    (cookie, body(res).await)
}

fn refusal(res: &Response<Body>) -> Option<CsrfReason> {
    res.extensions().get::<CsrfRefused>().map(|r| r.reason)
}

/// Sends `request`; asserts it was refused for `reason` before any
/// state-changing handler ran.
async fn refused(app: &Router, request: Request<Body>, reason: CsrfReason, ran: &AtomicUsize, what: &str) {
    let before = ran.load(Ordering::SeqCst);
    let res = send(app, request).await;
    assert_eq!(refusal(&res), Some(reason), "{what}");
    assert_eq!(res.status(), reason.status(), "{what}");
    assert_eq!(ran.load(Ordering::SeqCst), before, "{what}: the handler never ran");
}

async fn passes(app: &Router, request: Request<Body>, what: &str) -> Response<Body> {
    let res = send(app, request).await;
    assert_eq!(res.status(), StatusCode::OK, "{what}: {:?}", refusal(&res));
    res
}

/// One character of `token` changed (not the last: it carries unused bits).
fn bent(token: &str) -> String {
    let mut b = token.as_bytes().to_vec();
    b[10] = if b[10] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

// ---------------------------------------------------------------------------
// CSRF tokens: where a token is read from.
// ---------------------------------------------------------------------------

/// Holds: a valid token in the query string, a cookie (by the field's name or
/// the header's), a JSON body, a multipart body or a `text/plain` body (the
/// cross-site form's `enctype`) is never read: require mode refuses them all
/// as missing (R60).
#[tokio::test]
async fn holds_a_token_anywhere_but_the_header_or_an_urlencoded_field_is_missing() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new().require_token());
    let (cookie, t) = token(&app, None).await;
    let missing = CsrfReason::Missing;
    let query = req("POST", &format!("/act?csrf_token={t}&x-csrf-token={t}"), Some(&cookie));
    refused(&app, query, missing, &ran, "query").await;
    let cookies = format!("{cookie}; csrf_token={t}; X-CSRF-Token={t}; x-csrf-token={t}");
    refused(&app, req("POST", "/act", Some(&cookies)), missing, &ran, "cookie").await;
    let json = format!(r#"{{"csrf_token":"{t}"}}"#);
    refused(&app, post_raw("/act", Some(&cookie), &[], Some(("application/json", &json))), missing, &ran, "json").await;
    let multipart = format!("--b\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{t}\r\n--b--\r\n");
    let mp = post_raw("/act", Some(&cookie), &[], Some(("multipart/form-data; boundary=b", &multipart)));
    refused(&app, mp, missing, &ran, "multipart").await;
    let plain = post_raw("/act", Some(&cookie), &[], Some(("text/plain", &format!("csrf_token={t}"))));
    refused(&app, plain, missing, &ran, "text/plain").await;
    // Another header that looks like it.
    for name in ["x-xsrf-token", "csrf-token", "x-csrf-token-2"] {
        refused(&app, post_raw("/act", Some(&cookie), &[(name, &t)], None), missing, &ran, name).await;
    }
    // The control: the same token in the header passes.
    passes(&app, act(&cookie, &t), "header").await;
}

/// Holds: a repeated field (a second one, one under a percent-encoded name,
/// an empty one), a repeated header, or a header plus a valid form field is
/// never resolved by position: a duplicate, or the header's verdict.
#[tokio::test]
async fn holds_a_repeated_or_encoded_token_is_never_resolved_by_position() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new().require_token());
    let (cookie, t) = token(&app, None).await;
    let b = bent(&t);
    let dup = CsrfReason::Duplicate;
    for body in [
        format!("csrf_token={t}&csrf%5Ftoken={t}"),
        format!("csrf%5Ftoken={b}&csrf_token={t}"),
        format!("csrf_token=&csrf_token={t}"),
        format!("csrf_token={t}&a=1&csrf_token={b}"),
        format!("csrf%5ftoken={t}&%63srf_token={t}"),
    ] {
        refused(&app, form("/echo", &cookie, &body), dup, &ran, &body).await;
    }
    let two = post_raw("/act", Some(&cookie), &[("x-csrf-token", &t), ("x-csrf-token", &t)], None);
    refused(&app, two, dup, &ran, "two headers").await;
    let two = post_raw("/act", Some(&cookie), &[("x-csrf-token", &b), ("X-CSRF-Token", &t)], None);
    refused(&app, two, dup, &ran, "two headers, other case").await;
    // A bad header is not rescued by a good form field.
    let both = post_raw("/echo", Some(&cookie), &[("x-csrf-token", &b)], Some((FORM, &format!("csrf_token={t}"))));
    refused(&app, both, CsrfReason::Invalid, &ran, "bad header, good field").await;
    // Field names are compared after decoding, as a browser encodes them,
    // and case-sensitively.
    passes(&app, form("/echo", &cookie, &format!("csrf%5Ftoken={t}")), "an encoded name").await;
    refused(&app, form("/echo", &cookie, &format!("CSRF_TOKEN={t}")), CsrfReason::Missing, &ran, "case").await;
    refused(&app, form("/echo", &cookie, &format!("csrf_token={b}")), CsrfReason::Invalid, &ran, "bent").await;
}

/// Holds: the form is recognised by its media type without case or
/// parameters, but a doubled `Content-Type`, a lookalike media type or one
/// hidden in a parameter is not read as a form: no token, refused in
/// require mode (fail closed).
#[tokio::test]
async fn holds_odd_content_types_fail_closed() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new().require_token());
    let (cookie, t) = token(&app, None).await;
    let body = format!("csrf_token={t}");
    let res = passes(
        &app,
        post_raw("/echo", Some(&cookie), &[], Some(("Application/X-WWW-Form-URLEncoded ; charset=UTF-8", &body))),
        "odd case",
    )
    .await;
    assert_eq!(common::body(res).await, body, "the handler gets the body byte for byte");
    for ct in [
        "application/x-www-form-urlencoded-x",
        "application/x-www-form-urlencoded, text/plain",
        "text/plain; x=application/x-www-form-urlencoded",
        "multipart/x-www-form-urlencoded",
        "",
    ] {
        let r = post_raw("/echo", Some(&cookie), &[], Some((ct, &body)));
        refused(&app, r, CsrfReason::Missing, &ran, ct).await;
    }
    let doubled = post_raw("/echo", Some(&cookie), &[("content-type", FORM)], Some((FORM, &body)));
    refused(&app, doubled, CsrfReason::Missing, &ran, "two Content-Type headers").await;
}

/// Holds: a form body streamed without a length past the cap is refused
/// with `413` after reading at most the cap (plus one chunk): no unbounded
/// buffering, in either mode, and the handler never runs.
#[tokio::test]
async fn holds_a_streamed_body_past_the_cap_is_cut_off() {
    for csrf in [CsrfLayer::new(), CsrfLayer::new().require_token()] {
        let h = Harness::new();
        let (app, ran) = app_with(&h, csrf.max_form_bytes(4096));
        let (cookie, _) = token(&app, None).await;
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&pulled);
        let stream = futures::stream::repeat_with(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; 1024]))
        });
        let mut r = req("POST", "/echo", Some(&cookie));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FORM));
        *r.body_mut() = Body::from_stream(stream);
        refused(&app, r, CsrfReason::TooLarge, &ran, "endless body").await;
        assert!(pulled.load(Ordering::SeqCst) <= 6, "read {} KiB of an endless body", pulled.load(Ordering::SeqCst));
    }
}

/// Holds: safe methods are never checked and their body is not read (no
/// buffering, no allocation for the check on `GET`), even with a bogus
/// token in a form body.
#[tokio::test]
async fn holds_safe_methods_are_not_checked_and_their_body_untouched() {
    let h = Harness::new();
    let (app, _) = app_with(&h, CsrfLayer::new().require_token());
    let (cookie, _) = token(&app, None).await;
    let mut r = form("/get-echo", &cookie, "csrf_token=forged&x=1");
    *r.method_mut() = http::Method::GET;
    r.headers_mut().insert("x-csrf-token", HeaderValue::from_static("forged"));
    let res = passes(&app, r, "GET").await;
    assert_eq!(body(res).await, "csrf_token=forged&x=1");
}

/// Holds: a header token with trailing or leading whitespace, a scheme,
/// quotes, non-UTF-8 bytes or a megabyte of text is invalid, never a panic;
/// the header name's case does not matter (HTTP names have none).
#[tokio::test]
async fn holds_a_bent_header_token_is_invalid_and_never_panics() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new());
    let (cookie, t) = token(&app, None).await;
    let big = "A".repeat(1 << 20);
    // The standard alphabet differs from the token only if the token holds a
    // `-` or `_` (about 1 in 15 random tokens holds neither: then it is the
    // valid token itself, and the case is left out rather than flake).
    let standard = t.replace('-', "+").replace('_', "/");
    let standard = (standard != t).then_some(standard);
    for v in [
        format!("{t} "),
        format!(" {t}"),
        format!("{t}\t"),
        format!("Bearer {t}"),
        format!("\"{t}\""),
        format!("{t},{t}"),
        format!("{t}="),
        String::new(),
        big,
    ]
    .into_iter()
    .chain(standard)
    {
        refused(&app, act(&cookie, &v), CsrfReason::Invalid, &ran, &v[..v.len().min(20)]).await;
    }
    let mut r = req("POST", "/act", Some(&cookie));
    let mut raw = t.clone().into_bytes();
    raw[3] = 0xff;
    r.headers_mut().insert("x-csrf-token", HeaderValue::from_bytes(&raw).unwrap());
    refused(&app, r, CsrfReason::Invalid, &ran, "obs-text").await;
    let upper = post_raw("/act", Some(&cookie), &[("X-CSRF-TOKEN", &t)], None);
    passes(&app, upper, "upper-case name").await;
}

// ---------------------------------------------------------------------------
// CSRF tokens: lifecycle and the reserved key.
// ---------------------------------------------------------------------------

/// Holds: a token dies with logout, and no earlier token (pre-login or
/// signed-in) verifies on the session the browser gets next.
#[tokio::test]
async fn holds_tokens_die_with_logout_and_do_not_carry_to_the_next_session() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new());
    let (pre, t0) = token(&app, None).await;
    let res = passes(&app, post_raw("/login/alice", Some(&pre), &[("x-csrf-token", &t0)], None), "login").await;
    let signed_in = session_cookie(&res).expect("the login renews the ID");
    let (signed_in, t1) = token(&app, Some(&signed_in)).await;
    passes(&app, post_raw("/logout", Some(&signed_in), &[("x-csrf-token", &t1)], None), "logout").await;
    refused(&app, act(&signed_in, &t1), CsrfReason::Invalid, &ran, "after logout, old cookie").await;
    let (next, _) = token(&app, None).await;
    for (t, what) in [(&t0, "pre-login token"), (&t1, "signed-in token")] {
        refused(&app, act(&next, t), CsrfReason::Invalid, &ran, what).await;
    }
}

/// Holds: `login_keeping` with the secret's key, or `keep_on_login` naming
/// it, keeps no secret: the pre-login token dies with the login, on a live
/// pre-session and on a session created in the login's own request.
#[tokio::test]
async fn holds_keeping_the_reserved_key_across_login_keeps_no_token_alive() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new());
    // A live pre-session (the login renews it).
    let (pre, t0) = token(&app, None).await;
    let res =
        passes(&app, post_raw("/login-keeping-secret", Some(&pre), &[("x-csrf-token", &t0)], None), "login").await;
    let after = session_cookie(&res).unwrap();
    refused(&app, act(&after, &t0), CsrfReason::Invalid, &ran, "login_keeping, live").await;
    // A token handed out in the request that creates the session and logs in.
    let res = passes(&app, post_raw("/token-then-login", None, &[], None), "new").await;
    let after = session_cookie(&res).unwrap();
    let t = body(res).await;
    refused(&app, act(&after, &t), CsrfReason::Invalid, &ran, "login_keeping, created").await;
    // The same in the renewal of a live one.
    let (pre, _) = token(&app, None).await;
    let res = passes(&app, post_raw("/token-then-login", Some(&pre), &[], None), "live").await;
    let after = session_cookie(&res).unwrap();
    let t = body(res).await;
    refused(&app, act(&after, &t), CsrfReason::Invalid, &ran, "login_keeping, same request").await;
    // The configuration's keep list.
    if let Ok(config) = SessionConfig::builder().keep_on_login([SECRET_KEY]).build() {
        let h = Harness::with_config(config);
        let (app, ran) = app_with(&h, CsrfLayer::new());
        let (pre, t0) = token(&app, None).await;
        let res = passes(&app, post_raw("/login/alice", Some(&pre), &[("x-csrf-token", &t0)], None), "login").await;
        let after = session_cookie(&res).unwrap();
        refused(&app, act(&after, &t0), CsrfReason::Invalid, &ran, "keep_on_login").await;
    }
}

/// Holds: `clear()` drops the secret: every token from before is dead.
#[tokio::test]
async fn holds_clear_kills_every_earlier_token() {
    let h = Harness::new();
    let (app, ran) = app_with(&h, CsrfLayer::new());
    let (cookie, t) = token(&app, None).await;
    passes(&app, post_raw("/clear", Some(&cookie), &[("x-csrf-token", &t)], None), "clear").await;
    refused(&app, act(&cookie, &t), CsrfReason::Invalid, &ran, "after clear").await;
}

/// Holds: the typed API (`typed`, `value`, the `Typed<T>` extractor with
/// `KEY` set to the secret's key) can neither read, write, update nor
/// remove the secret, nor any key under the reserved prefix; `keys`,
/// `to_json` and `is_empty` do not show it, and the token still verifies
/// after every attempt (nothing was planted).
#[tokio::test]
async fn holds_the_reserved_key_is_out_of_reach_of_the_typed_api() {
    let h = Harness::new();
    let (app, _) = app_with(&h, CsrfLayer::new());
    let (cookie, t) = token(&app, None).await;
    let res = passes(&app, post_raw("/typed-reserved", Some(&cookie), &[("x-csrf-token", &t)], None), "typed").await;
    let out = body(res).await;
    assert_eq!(out, "[true, true, true, true, true, true, true, true, true]|[]|{}|true", "{out}");
    let res = passes(&app, post_raw("/typed-extractor", Some(&cookie), &[("x-csrf-token", &t)], None), "x").await;
    assert_eq!(body(res).await, "Some(InvalidDataKey)");
    passes(&app, act(&cookie, &t), "the secret is intact").await;
}

// ---------------------------------------------------------------------------
// The header transport next to a cookie layer.
// ---------------------------------------------------------------------------

/// The header layer over the same store, keys and clock as `h`'s cookie layer.
fn header_layer(h: &Harness) -> SessionLayer {
    SessionLayer::new(h.store.clone(), h.keys.clone())
        .with_config(config_on(Transport::header()))
        .with_clock(h.clock.clone())
}

/// Holds: over one store and one key ring, a cookie session cannot be
/// driven through the header API (its cookie value as `X-Session-Token`,
/// or a cookie named like the header, is no session there), nor a header
/// session through the cookie layer; and a CSRF token of a header session
/// is refused on a cookie session (another session's secret).
#[tokio::test]
async fn holds_sessions_and_tokens_do_not_cross_transports() {
    let h = Harness::new();
    let (cookie_app, ran) = app_with(&h, CsrfLayer::new());
    let (header_app, _) = app_on(&header_layer(&h), CsrfLayer::new().require_token());
    let cookie = login(&cookie_app, "alice").await;
    let value = token_of(&cookie).to_string();
    // The cookie's value as the header token.
    let (status, _) = who(&header_app, &format!("{TOKEN_HEADER}: {value}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a cookie value is no header token");
    // A cookie named like the header, or the session cookie itself, on the header layer.
    for c in [format!("{TOKEN_HEADER}={value}"), cookie.clone()] {
        let (status, _) = who(&header_app, &c).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a header layer reads no cookie: {c}");
    }
    // A state-changing request on the header layer with the cookie: no
    // session, so the handler sees a new anonymous one, never alice's.
    let res = send(&header_app, post_raw("/incr", Some(&cookie), &[], None)).await;
    assert_eq!(body(res).await, "1");
    // The reverse: a header session's token as the cookie.
    let res = send(&header_app, req("POST", "/login/bob", None)).await;
    let header_cred = session_cookie(&res).unwrap();
    let as_cookie = format!("{}={}", h.layer.config().cookie_name(), token_of(&header_cred));
    assert_eq!(who(&cookie_app, &as_cookie).await.0, StatusCode::UNAUTHORIZED);
    // A CSRF token of the header session, on alice's cookie session.
    let (_, header_csrf) = token(&header_app, Some(&header_cred)).await;
    refused(&cookie_app, act(&cookie, &header_csrf), CsrfReason::Invalid, &ran, "cross-transport token").await;
}

/// Holds: no cookie name can produce a header token's MAC input (`header:`
/// is no cookie-name text), and no header name a browser attaches by
/// itself (credentials included) can carry a header session.
#[test]
fn holds_cookie_and_header_purposes_cannot_collide() {
    for name in ["header:x-session-token", "__Host-header:x", "header:", "a:b"] {
        assert!(SessionConfig::builder().cookie_name(name).build().is_err(), "{name}");
    }
    for name in ["authorization", "cookie", "proxy-authorization", "content-type", "accept", "sec-x", "origin"] {
        let t = Transport::Header(HeaderName::from_static(name));
        assert!(SessionConfig::builder().transport(t).build().is_err(), "{name}");
    }
}

// ---------------------------------------------------------------------------
// Client binding.
// ---------------------------------------------------------------------------

type Seen = Arc<Mutex<Vec<EventKind>>>;

/// A cookie app with client binding `config`, recording every event.
fn bound(config: SessionConfig) -> (Harness, Router, Seen) {
    let h = Harness::with_config(config);
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let layer = h.layer.clone().on_event(move |e| log.lock().unwrap().push(e.kind));
    let app = handlers::routes()
        .route(
            "/many",
            get(|s: Session| async move {
                s.user().await?;
                s.get::<u64>("n").await?;
                s.keys().await?;
                s.client_changed().await?;
                s.verify_csrf("x").await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .layer(layer);
    (h, app, seen)
}

fn from(mut r: Request<Body>, ua: Option<&str>, peer: &str, xff: Option<&str>) -> Request<Body> {
    if let Some(ua) = ua {
        r.headers_mut().insert(header::USER_AGENT, HeaderValue::from_str(ua).unwrap());
    }
    if let Some(xff) = xff {
        r.headers_mut().insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
    }
    r.extensions_mut().insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 40_000)));
    r
}

fn client_changes(seen: &Seen) -> Vec<(bool, bool)> {
    let mut seen = seen.lock().unwrap();
    let out = seen
        .iter()
        .filter_map(|k| match k {
            EventKind::ClientChanged { user_agent, network } => Some((*user_agent, *network)),
            _ => None,
        })
        .collect();
    seen.clear();
    out
}

async fn login_from(app: &Router, ua: &str, peer: &str, xff: Option<&str>) -> String {
    let res = send(app, from(req("POST", "/login/alice", None), Some(ua), peer, xff)).await;
    assert_eq!(res.status(), StatusCode::OK);
    session_cookie(&res).unwrap()
}

/// Holds: a thief on another network who copies the user agent and names
/// the victim's address in `X-Forwarded-For` (from a peer that is no
/// trusted proxy) is seen as another network; under `End` the stolen
/// session ends.
#[tokio::test]
async fn holds_a_spoofed_forwarded_for_from_an_untrusted_peer_ends_the_session() {
    let (_, app, seen) = bound(SessionConfig::builder().client_binding(BindingPolicy::End).build().unwrap());
    for xff in ["203.0.113.5", "203.0.113.5, 203.0.113.6", "::ffff:203.0.113.5", "garbage", "203.0.113.5:443"] {
        let cookie = login_from(&app, FIREFOX, "203.0.113.5", None).await;
        let stolen = from(req("GET", "/me", Some(&cookie)), Some(FIREFOX), "198.51.100.9", Some(xff));
        let res = send(&app, stolen).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{xff}");
        assert!(is_removal(&res), "{xff}");
        assert_eq!(client_changes(&seen), [(false, true)], "{xff}");
        let res = send(&app, from(req("GET", "/me", Some(&cookie)), Some(FIREFOX), "203.0.113.5", None)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{xff}: the stolen session is gone for good");
    }
}

/// Holds: an IPv4-mapped IPv6 peer is its IPv4 address: the same /24 is the
/// same network, another /24 is not (no way around the prefix by the
/// address family).
#[tokio::test]
async fn holds_ipv4_mapped_peers_compare_as_ipv4() {
    let (_, app, seen) = bound(SessionConfig::default());
    let cookie = login_from(&app, FIREFOX, "203.0.113.5", None).await;
    send(&app, from(req("GET", "/me", Some(&cookie)), Some(FIREFOX), "::ffff:203.0.113.77", None)).await;
    assert!(client_changes(&seen).is_empty(), "the same /24, mapped");
    send(&app, from(req("GET", "/me", Some(&cookie)), Some(FIREFOX), "::ffff:198.51.100.1", None)).await;
    assert_eq!(client_changes(&seen), [(false, true)]);
    // Logged in over a mapped address, compared as IPv4.
    let cookie = login_from(&app, FIREFOX, "::ffff:198.51.100.1", None).await;
    send(&app, from(req("GET", "/me", Some(&cookie)), Some(FIREFOX), "198.51.100.200", None)).await;
    assert!(client_changes(&seen).is_empty());
}

/// Finding (low; fixed): a trusted proxy range written in IPv4-mapped
/// IPv6 form (`::ffff:10.0.0.0/104`, as some tools print addresses) was
/// accepted by the configuration but matched no peer, because peers are
/// compared as IPv4: every client then had the proxy's address, and the
/// network half of the binding was silently blind (a stolen cookie used
/// from anywhere raised no signal). A single mapped address was already
/// canonicalized; ranges now are too (`binding.rs`, `Binding::new`).
#[tokio::test]
async fn finding_a_v4_mapped_proxy_range_trusts_its_v4_peers() {
    let config = SessionConfig::builder()
        .trusted_proxies(["::ffff:10.0.0.0/104"])
        .client_binding(BindingPolicy::Event)
        .build()
        .unwrap();
    let (h, app, seen) = bound(config);
    let cookie = login_from(&app, FIREFOX, "10.1.1.1", Some("203.0.113.5")).await;
    let listed = h.store.list_user("alice", T0, 10).await.unwrap();
    assert_eq!(listed[0].ip.as_deref(), Some("203.0.113.0/24"), "the forwarded client, not the proxy");
    send(&app, from(req("GET", "/me", Some(&cookie)), Some(FIREFOX), "10.1.1.1", Some("198.51.100.9"))).await;
    assert_eq!(client_changes(&seen), [(false, true)], "a thief behind the same proxy is another network");
}

/// Holds: `End` racing the owner's request held inside its lookup: the
/// thief's request ends the session; the owner's held write, released
/// afterwards, does not bring the signed-in session back, and the stolen
/// cookie never shows the user again.
#[tokio::test]
async fn holds_end_racing_a_held_request_gives_the_thief_nothing() {
    let (h, app, seen) = bound(SessionConfig::builder().client_binding(BindingPolicy::End).build().unwrap());
    let cookie = login_from(&app, FIREFOX, "203.0.113.5", None).await;
    // The owner's write, held after its lookup read the live record.
    h.store.pause_load.store(true, Ordering::SeqCst);
    let owner = {
        let app = app.clone();
        let r = from(req("POST", "/incr", Some(&cookie)), Some(FIREFOX), "203.0.113.5", None);
        tokio::spawn(async move { send(&app, r).await })
    };
    tokio::time::timeout(Duration::from_secs(5), h.store.loaded.notified()).await.expect("held");
    h.store.pause_load.store(false, Ordering::SeqCst);
    // The thief, meanwhile.
    let thief = |uri: &str| from(req("GET", uri, Some(&cookie)), Some(FIREFOX), "198.51.100.9", None);
    let res = send(&app, thief("/me")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    release(&h);
    let _ = owner.await.unwrap();
    assert_eq!(client_changes(&seen), [(false, true)]);
    let res = send(&app, thief("/me")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the thief never gets the user back");
    assert!(
        h.store.list_user("alice", T0 + 1, 10).await.unwrap().is_empty(),
        "the held write did not resurrect the ended session"
    );
}

/// Holds: however often a handler (and the CSRF check) loads a mismatched
/// session, one request makes one event: a flood of events needs a flood
/// of requests.
#[tokio::test]
async fn holds_one_client_event_per_request() {
    let (_, app, seen) = bound(SessionConfig::default());
    let cookie = login_from(&app, FIREFOX, "203.0.113.5", None).await;
    for _ in 0..5 {
        let res = send(&app, from(req("GET", "/many", Some(&cookie)), None, "198.51.100.9", None)).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(client_changes(&seen), [(true, true); 5]);
}

// ---------------------------------------------------------------------------
// Hostile input and the extractors.
// ---------------------------------------------------------------------------

/// A small deterministic generator (xorshift), so the cases are the same
/// on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, alphabet: &[u8], max: usize) -> Vec<u8> {
        let n = (self.next() % max as u64) as usize;
        (0..n).map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize]).collect()
    }
}

/// Holds: hostile form bodies, CSRF headers, user agents and forwarded
/// chains (behind a trusted proxy, with binding on) never panic: every
/// request gets an answer, and a garbage token is never accepted.
#[tokio::test]
async fn holds_hostile_bytes_never_panic() {
    let config = SessionConfig::builder()
        .trusted_proxies(["10.0.0.0/8", "::1"])
        .client_binding(BindingPolicy::End)
        .build()
        .unwrap();
    let h = Harness::with_config(config);
    let (app, ran) = app_with(&h, CsrfLayer::new().max_form_bytes(512));
    let res = send(&app, from(req("POST", "/login/alice", None), Some(FIREFOX), "10.0.0.1", Some("203.0.113.5"))).await;
    let cookie = session_cookie(&res).unwrap();
    let (cookie, _) = token(&app, Some(&cookie)).await;
    let form_alphabet = b"csrf_token=&%+;5F2fAZaz09-_\xff\xfe\x00 \t.";
    let header_alphabet = b"AZaz09-_=+/ ,.:[]\"\t\x80\xff";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..300 {
        let body = rng.bytes(form_alphabet, 700);
        let hv = rng.bytes(header_alphabet, 120);
        let xff = rng.bytes(b"0123456789abcdef.:,[] ", 80);
        let ua = rng.bytes(b"Mozilla/5.0 ()x;\x80\xff", 300);
        let mut r = req("POST", "/echo", Some(&cookie));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FORM));
        if i % 2 == 0 {
            if let Ok(v) = HeaderValue::from_bytes(&hv) {
                r.headers_mut().insert("x-csrf-token", v);
            }
        }
        if let Ok(v) = HeaderValue::from_bytes(&xff) {
            r.headers_mut().insert("x-forwarded-for", v);
        }
        if let Ok(v) = HeaderValue::from_bytes(&ua) {
            r.headers_mut().insert(header::USER_AGENT, v);
        }
        r.extensions_mut().insert(ConnectInfo(SocketAddr::new("10.0.0.1".parse().unwrap(), 1)));
        *r.body_mut() = Body::from(body);
        let res = send(&app, r).await;
        assert!(res.status() != StatusCode::INTERNAL_SERVER_ERROR, "case {i}: {}", res.status());
    }
    // A garbage header token never verified: the random ones are never
    // 86 base64url characters of this session's secret.
    assert!(ran.load(Ordering::SeqCst) <= 300);
    for bad in
        ["", " ", "/", "10.0.0.0/", "/8", "::/129", "1.2.3.4/-1", "[::1]", "\0", "10.0.0.0/8/8", "::ffff:1.2.3.4/200"]
    {
        assert!(SessionConfig::builder().trusted_proxies([bad]).build().is_err(), "{bad:?}");
    }
    let long = "1".repeat(10_000);
    assert!(SessionConfig::builder().trusted_proxies([long]).build().is_err());
}

/// Holds: `Option<Session>` without a layer is `None` (the handler runs,
/// nothing panics), a `Typed<T>` without one is the narrow typed `500`,
/// and the CSRF layer without one refuses unsafe requests (fail closed).
#[tokio::test]
async fn holds_the_extractors_and_the_csrf_layer_without_a_session_layer() {
    let app = Router::new()
        .route("/opt", post(|s: Option<Session>| async move { s.is_none().to_string() }))
        .route("/typed", post(|_: Typed<Stolen>| async { "ran" }));
    let res = send(&app, req("POST", "/opt", None)).await;
    assert_eq!(body(res).await, "true");
    let res = send(&app, req("POST", "/typed", None)).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.extensions().get::<sessionware::SharedError>().is_some());
    let guarded = Router::new().route("/act", post(|| async { "acted" })).layer(CsrfLayer::new());
    let res = send(&guarded, req("POST", "/act", None)).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_ne!(body(res).await, "acted");
}

/// Holds: a header session's token is taken exactly: with whitespace
/// around it, a scheme, or twice it is no session, never resolved by
/// position; the header name has no case.
#[tokio::test]
async fn holds_a_header_session_token_is_taken_exactly() {
    let h = Harness::on(Transport::header());
    let app = app(&h.layer);
    let cred = login(&app, "alice").await;
    let t = token_of(&cred).to_string();
    let me = |values: &[(&str, String)]| {
        let mut r = req("GET", "/me", None);
        for (name, v) in values {
            r.headers_mut().append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        r
    };
    for (what, values) in [
        ("trailing space", vec![(TOKEN_HEADER, format!("{t} "))]),
        ("leading tab", vec![(TOKEN_HEADER, format!("\t{t}"))]),
        ("scheme", vec![(TOKEN_HEADER, format!("Bearer {t}"))]),
        ("twice", vec![(TOKEN_HEADER, t.clone()), (TOKEN_HEADER, t.clone())]),
        ("twice, other case", vec![(TOKEN_HEADER, "x".into()), ("X-Session-Token", t.clone())]),
        ("one line, two tokens", vec![(TOKEN_HEADER, format!("{t}, {t}"))]),
        ("a cookie", vec![("cookie", format!("{TOKEN_HEADER}={t}"))]),
        ("authorization", vec![("authorization", format!("Bearer {t}"))]),
    ] {
        let res = send(&app, me(&values)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
    }
    let res = send(&app, me(&[("X-SESSION-TOKEN", t.clone())])).await;
    assert_eq!(body(res).await, "alice", "header names have no case");
}

/// Holds: a thief's requests whose handler never uses the session do not
/// keep the stolen session alive (no touch, no renewal, no cookie): the
/// binding check cannot be sidestepped by only hitting routes that skip it.
#[tokio::test]
async fn holds_requests_that_skip_the_session_do_not_keep_a_stolen_one_alive() {
    let config = SessionConfig::builder()
        .client_binding(BindingPolicy::End)
        .idle_timeout(Duration::from_secs(600))
        .renew_after(Duration::from_secs(60))
        .build()
        .unwrap();
    let (h, app, _) = bound(config);
    let cookie = login_from(&app, FIREFOX, "203.0.113.5", None).await;
    let (touches, rotations) = (h.store.count(Op::Touch), h.store.count(Op::Rotate));
    for _ in 0..3 {
        h.clock.advance(Duration::from_secs(300));
        let res = send(&app, from(req("GET", "/untouched", Some(&cookie)), Some(FIREFOX), "198.51.100.9", None)).await;
        assert!(no_cookie(&res));
    }
    assert_eq!((h.store.count(Op::Touch), h.store.count(Op::Rotate)), (touches, rotations));
    let res = send(&app, from(req("GET", "/me", Some(&cookie)), Some(FIREFOX), "203.0.113.5", None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "idle-expired: the thief's pings did not extend it");
}

/// Holds: a thief holding the predecessor cookie of a periodic renewal,
/// inside its overlap, is checked like any other: under `End` the session
/// ends, and the owner's renewed cookie is dead too (as by a logout).
#[tokio::test]
async fn holds_end_through_a_renewal_overlap_ends_the_successor() {
    let config = SessionConfig::builder()
        .client_binding(BindingPolicy::End)
        .renew_after(Duration::from_secs(60))
        .renew_overlap(Duration::from_secs(30))
        .build()
        .unwrap();
    let (h, app, seen) = bound(config);
    let stolen = login_from(&app, FIREFOX, "203.0.113.5", None).await;
    h.clock.advance(Duration::from_secs(120));
    let res = send(&app, from(req("GET", "/me", Some(&stolen)), Some(FIREFOX), "203.0.113.5", None)).await;
    let renewed = session_cookie(&res).expect("a periodic renewal");
    assert_ne!(renewed, stolen);
    let res = send(&app, from(req("GET", "/me", Some(&stolen)), Some(FIREFOX), "198.51.100.9", None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the thief inside the overlap");
    assert_eq!(client_changes(&seen), [(false, true)]);
    let res = send(&app, from(req("GET", "/me", Some(&renewed)), Some(FIREFOX), "203.0.113.5", None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the session ended everywhere");
}

//! The header transport (R65 to R67, for a custom header): the token's MAC
//! binds its transport, the header is read strictly, cookies mean nothing
//! to a header layer, and a header layer never sets a cookie. The session
//! lifecycle over this transport is tested by the lifecycle suites (each
//! runs over both transports).

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::Router;
use common::*;
use http::{header, HeaderName, StatusCode};
use sessionware::{EventKind, Key, Keys, RejectReason, SessionConfig, SessionId, SessionLayer, Transport};

/// A layer's events, as the hook saw them.
type Seen = Arc<Mutex<Vec<EventKind>>>;

fn watched(layer: &SessionLayer) -> (Router, Seen) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let layer = layer.clone().on_event(move |e| log.lock().unwrap().push(e.kind));
    (app(&layer), seen)
}

fn rejected(seen: &Seen) -> Vec<RejectReason> {
    seen.lock()
        .unwrap()
        .iter()
        .filter_map(|k| match k {
            EventKind::Rejected(r) => Some(*r),
            _ => None,
        })
        .collect()
}

/// A request carrying `values` as session header fields, one each.
fn with_fields(method: &str, uri: &str, values: &[&str]) -> http::Request<axum::body::Body> {
    let mut r = req(method, uri, None);
    for v in values {
        r.headers_mut().append(TOKEN_HEADER, v.parse().unwrap());
    }
    r
}

/// A header layer and a cookie layer whose cookie has the header's name,
/// over one store and one ring: only the transport differs.
fn twins() -> (Harness, Router, Router) {
    let h = Harness::on(Transport::header());
    let cookie_config = SessionConfig::builder().cookie_name(TOKEN_HEADER).build().unwrap();
    let cookie_layer =
        SessionLayer::new(h.store.clone(), h.keys.clone()).with_config(cookie_config).with_clock(h.clock.clone());
    let header_app = app(&h.layer);
    (h, header_app, app(&cookie_layer))
}

// R66: the MAC binds the transport, both ways.
#[tokio::test]
async fn a_cookie_token_is_refused_as_a_header_token() {
    let (h, _, cookie_app) = twins();
    let cookie = session_cookie(&send(&cookie_app, req("POST", "/incr", None)).await).unwrap();
    assert!(cookie.starts_with("x-session-token="));
    assert_eq!(body(send(&cookie_app, req("GET", "/read", Some(&cookie))).await).await, "1");
    let (watched_header, seen) = watched(&h.layer);
    let as_header = format!("{TOKEN_HEADER}: {}", token_of(&cookie));
    let res = send(&watched_header, req("GET", "/read", Some(&as_header))).await;
    assert!(no_cookie(&res), "as for a tampered cookie: no reply");
    assert_eq!(body(res).await, "none", "a live session's cookie token is no header session");
    assert_eq!(rejected(&seen), [RejectReason::BadSignature]);
}

#[tokio::test]
async fn a_header_token_is_refused_as_a_cookie() {
    let (h, header_app, _) = twins();
    let credential = session_cookie(&send(&header_app, req("POST", "/incr", None)).await).unwrap();
    assert_eq!(body(send(&header_app, req("GET", "/read", Some(&credential))).await).await, "1");
    let cookie_config = SessionConfig::builder().cookie_name(TOKEN_HEADER).build().unwrap();
    let cookie_layer =
        SessionLayer::new(h.store.clone(), h.keys.clone()).with_config(cookie_config).with_clock(h.clock.clone());
    let (cookie_app, seen) = watched(&cookie_layer);
    let as_cookie = format!("{TOKEN_HEADER}={}", token_of(&credential));
    let res = send(&cookie_app, req("GET", "/read", Some(&as_cookie))).await;
    assert_eq!(body(res).await, "none", "a live session's header token is no cookie session");
    assert_eq!(rejected(&seen), [RejectReason::BadSignature]);
}

/// A header token is bound to its header's name too: a layer on another
/// header, with the same keys and store, refuses it.
#[tokio::test]
async fn a_token_for_another_header_name_is_refused() {
    let h = Harness::on(Transport::header());
    let credential = session_cookie(&send(&app(&h.layer), req("POST", "/incr", None)).await).unwrap();
    let other = Transport::Header(HeaderName::from_static("x-api-session"));
    let layer = SessionLayer::new(h.store.clone(), h.keys.clone()).with_config(config_on(other));
    let other_app = app(&layer);
    let res = send(&other_app, req("GET", "/read", Some(&format!("x-api-session: {}", token_of(&credential))))).await;
    assert_eq!(body(res).await, "none");
    // Its own sessions come back in its own header.
    let res = send(&other_app, req("POST", "/incr", None)).await;
    assert!(res.headers().get("x-api-session").is_some_and(|v| v.len() == 71));
    assert!(res.headers().get(TOKEN_HEADER).is_none() && res.headers().get(header::SET_COOKIE).is_none());
}

// R65, translated: exactly one field; never resolved by position.
#[tokio::test]
async fn two_session_headers_are_no_session() {
    let h = Harness::on(Transport::header());
    let (app, seen) = watched(&h.layer);
    let mine = token_of(&session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap()).to_string();
    let other = token_of(&session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap()).to_string();
    for fields in [[&mine, &other], [&other, &mine], [&mine, &mine]] {
        let res = send(&app, with_fields("GET", "/read", &[fields[0], fields[1]])).await;
        assert_eq!(body(res).await, "none", "two fields are no session, whichever comes first");
    }
    assert_eq!(rejected(&seen), [RejectReason::DuplicateHeader; 3]);
    // Nor does a list in one field work.
    let res = send(&app, with_fields("GET", "/read", &[&format!("{mine}, {other}")])).await;
    assert_eq!(body(res).await, "none");
    assert_eq!(body(send(&app, with_fields("GET", "/read", &[&mine])).await).await, "1", "alone, it is the session");
}

// R65, translated: the value is exactly a token.
#[tokio::test]
async fn padded_prefixed_tampered_and_oversized_values_are_no_session() {
    let h = Harness::on(Transport::header());
    let (app, seen) = watched(&h.layer);
    let token = token_of(&session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap()).to_string();
    let values = [
        (format!("Bearer {token}"), RejectReason::Malformed),
        (format!("{token} "), RejectReason::Malformed),
        (format!("\t{token}"), RejectReason::Malformed),
        (format!("\"{token}\""), RejectReason::Malformed),
        (format!("{token}{}", "A".repeat(64 * 1024)), RejectReason::Malformed),
        (String::new(), RejectReason::Malformed),
        (tamper(&token), RejectReason::BadSignature),
    ];
    for (value, reason) in &values {
        let mut r = req("GET", "/read", None);
        // `http` trims nothing it is given; hyper would have trimmed the
        // outer whitespace of a received field (RFC 9110 §5.5).
        r.headers_mut().insert(TOKEN_HEADER, http::HeaderValue::from_str(value).unwrap());
        let res = send(&app, r).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body(res).await, "none", "{reason:?}");
    }
    assert_eq!(rejected(&seen), values.iter().map(|(_, r)| *r).collect::<Vec<_>>());
    // Never from the query string.
    let res = send(&app, req("GET", &format!("/read?{TOKEN_HEADER}={token}&token={token}"), None)).await;
    assert_eq!(body(res).await, "none");
}

/// A cookie cannot smuggle a session into a header layer: cookies are not
/// read at all (no event, no removal cookie), whatever their name.
#[tokio::test]
async fn cookies_are_ignored_on_a_header_layer() {
    let (h, header_app, cookie_app) = twins();
    let browser = session_cookie(&send(&cookie_app, req("POST", "/incr", None)).await).unwrap();
    let api = session_cookie(&send(&header_app, req("POST", "/incr", None)).await).unwrap();
    let default_cookie = Harness::with(SessionConfig::default(), h.keys.clone());
    let host_cookie = session_cookie(&send(&app(&default_cookie.layer), req("POST", "/incr", None)).await).unwrap();
    let (app, seen) = watched(&h.layer);
    for cookie in [browser.clone(), format!("{TOKEN_HEADER}={}", token_of(&api)), host_cookie] {
        let res = send(&app, req("GET", "/read", Some(&cookie))).await;
        assert!(no_cookie(&res), "not even a removal cookie");
        assert_eq!(body(res).await, "none");
    }
    assert!(seen.lock().unwrap().is_empty(), "nothing was read: {:?}", seen.lock().unwrap());
    // R67, no fallback: a bad header beside a valid cookie is no session.
    let mut r = req("GET", "/read", Some(&format!("{TOKEN_HEADER}: garbage")));
    r.headers_mut().insert(header::COOKIE, browser.parse().unwrap());
    assert_eq!(body(send(&app, r).await).await, "none");
    // Beside a valid header, a cookie changes nothing either.
    let mut r = req("GET", "/read", Some(&api));
    r.headers_mut().insert(header::COOKIE, browser.parse().unwrap());
    assert_eq!(body(send(&app, r).await).await, "1");
}

/// Every way a session gets a token, and the logout: the token travels in
/// the header, never in a `Set-Cookie` (`session_cookie` and `is_removal`
/// check that on every response).
#[tokio::test]
async fn a_header_layer_never_sets_a_cookie() {
    let old_key = Key::generate().unwrap();
    let config =
        SessionConfig::builder().transport(Transport::header()).renew_after(Duration::from_secs(600)).build().unwrap();
    let h = Harness::with(config.clone(), Keys::new(vec![old_key.clone()]).unwrap());
    let app = app(&h.layer);
    let mut seen = Vec::new();
    let mut step = |res: &http::Response<axum::body::Body>| {
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        let token = session_cookie(res).expect("a new token in the header");
        assert!(!seen.contains(&token), "a new token each time");
        seen.push(token.clone());
        token
    };
    let created = step(&send(&app, req("POST", "/incr", None)).await);
    let authed = step(&send(&app, req("POST", "/login/alice", Some(&created))).await);
    let renewed = step(&send(&app, req("POST", "/renew", Some(&authed))).await);
    h.clock.advance(Duration::from_secs(600));
    let periodic = step(&send(&app, req("GET", "/read", Some(&renewed))).await);
    // A new signing key: the token is re-issued under it, in the header.
    let rotated = SessionLayer::new(h.store.clone(), Keys::new(vec![Key::generate().unwrap(), old_key]).unwrap())
        .with_config(config)
        .with_clock(h.clock.clone());
    let app = common::app(&rotated);
    let res = send(&app, req("GET", "/me", Some(&periodic))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let reissued = step(&res);
    // "Remember me" has no cookie to give a lifetime: the token comes again, nothing else.
    let res = send(&app, req("POST", "/remember", Some(&reissued))).await;
    assert_eq!(session_cookie(&res).as_deref(), Some(reissued.as_str()));
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    // Used without a change: no token, no cookie, and the response varies on the header.
    let res = send(&app, req("GET", "/me", Some(&reissued))).await;
    assert!(no_cookie(&res));
    assert_eq!(res.headers()[header::VARY], TOKEN_HEADER);
    assert!(res.headers().get(header::CACHE_CONTROL).is_none());
    // Logout: an empty token header (drop the token), no removal cookie.
    let res = send(&app, req("POST", "/logout", Some(&reissued))).await;
    assert!(is_removal(&res) && res.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(send(&app, req("GET", "/me", Some(&reissued))).await.status(), StatusCode::UNAUTHORIZED);
    // A route that never touches the session gets none of these headers.
    let res = send(&app, req("GET", "/untouched", Some(&created))).await;
    assert!(no_cookie(&res) && res.headers().get(header::VARY).is_none());
}

/// R67: a header session needs no CSRF check. The same cross-site POST is
/// refused on a cookie layer and served on a header layer.
#[tokio::test]
async fn a_cross_site_post_with_a_header_token_is_not_refused() {
    let (_h, header_app, cookie_app) = twins();
    let cross_site = |credential: &str| {
        let mut r = req("POST", "/incr", Some(credential));
        r.headers_mut().insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        r.headers_mut().insert("sec-fetch-site", "cross-site".parse().unwrap());
        r
    };
    let cookie = session_cookie(&send(&cookie_app, req("POST", "/incr", None)).await).unwrap();
    assert_eq!(send(&cookie_app, cross_site(&cookie)).await.status(), StatusCode::FORBIDDEN, "the check is on");
    let token = session_cookie(&send(&header_app, req("POST", "/incr", None)).await).unwrap();
    let res = send(&header_app, cross_site(&token)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, "2");
}

/// Strict mode: a well-signed token naming no session is never adopted and
/// creates nothing; a write on it starts a session under a new ID.
#[tokio::test]
async fn an_unknown_well_signed_token_creates_nothing() {
    let h = Harness::on(Transport::header());
    let (app, seen) = watched(&h.layer);
    let unknown = h.credential_for(&SessionId::generate().unwrap());
    let res = send(&app, req("GET", "/read", Some(&unknown))).await;
    assert!(is_removal(&res), "the client is told to drop it");
    assert_eq!(body(res).await, "none");
    assert!(h.store.inner.is_empty(), "nothing was created");
    assert_eq!(rejected(&seen), [RejectReason::Unknown]);
    let res = send(&app, req("POST", "/incr", Some(&unknown))).await;
    let fresh = session_cookie(&res).expect("a write starts a session");
    assert_ne!(fresh, unknown, "under a new ID, never the presented one");
    assert_eq!(h.store.inner.len(), 1);
    assert_eq!(body(send(&app, req("GET", "/read", Some(&unknown))).await).await, "none");
    assert_eq!(body(send(&app, req("GET", "/read", Some(&fresh))).await).await, "1");
}

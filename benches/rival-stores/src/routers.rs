//! The axum routers of the store benchmarks, and the request helpers.
//!
//! The handlers are the ones of `benches/rivals/src/lib.rs`: both include
//! `benches/common/handlers.rs`, because `benches/rivals` builds them for
//! tower-sessions 0.15 and the Redis and SQL stores of tower-sessions
//! implement tower-sessions-core 0.14, so the two cannot share a crate.
//!
//! | path | handler |
//! |---|---|
//! | `/plain` | returns `"ok"`, never touches the session |
//! | `/read` | reads `n` |
//! | `/write` | reads `n`, writes `n + 1` |
//! | `/new` | inserts `n = 1` (sent without a cookie: creates a session) |
//! | `/renew` | gives the session a new ID (`renew` / `cycle_id`) |

use axum::{body::Body, http::StatusCode, routing::get, Router};
use http::{header, HeaderValue, Request, Response};
use tower::ServiceExt;

include!("../../common/handlers.rs");

/// sessionware with its default (secure) configuration, on any store.
pub mod ours {
    use super::*;
    use sessionware::{store::FullStore, Keys, Session, SessionLayer};

    handlers!(Session, renew);

    /// The routes under a fresh layer (fresh key) on `store`.
    pub fn router<S: FullStore>(store: S) -> Router {
        routes().layer(SessionLayer::new(store, Keys::generate().expect("OS RNG")))
    }
}

/// tower-sessions 0.14 with a signed cookie, on any of its stores.
pub mod theirs {
    use super::*;
    use tower_sessions::{cookie::Key, Session, SessionManagerLayer, SessionStore};

    handlers!(Session, cycle_id);

    /// The routes under a fresh signed-cookie layer (fresh key) on `store`.
    pub fn router<S: SessionStore + Clone>(store: S) -> Router {
        routes().layer(SessionManagerLayer::new(store).with_signed(Key::generate()))
    }
}

/// A GET request for `path`, with `cookie` as the `Cookie` header.
pub fn request(path: &'static str, cookie: Option<&HeaderValue>) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    *req.uri_mut() = http::Uri::from_static(path);
    if let Some(c) = cookie {
        req.headers_mut().insert(header::COOKIE, c.clone());
    }
    req
}

/// The `name=value` part of the response's first `Set-Cookie`.
pub fn cookie_from<B>(res: &Response<B>) -> Option<HeaderValue> {
    let v = res.headers().get(header::SET_COOKIE)?.as_bytes();
    let end = v.iter().position(|b| *b == b';').unwrap_or(v.len());
    HeaderValue::from_bytes(&v[..end]).ok()
}

/// Sends one request and returns its status, cookie and body.
pub async fn send(
    router: &Router,
    path: &'static str,
    cookie: Option<&HeaderValue>,
) -> (StatusCode, Option<HeaderValue>, String) {
    let res = router.clone().oneshot(request(path, cookie)).await.expect("infallible");
    let status = res.status();
    let c = cookie_from(&res);
    let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.expect("body");
    (status, c, String::from_utf8_lossy(&body).into_owned())
}

/// Creates a session with `n = 1` through `/new` and returns its cookie,
/// after checking that `/read` sees it.
pub async fn make_session(router: &Router) -> Result<HeaderValue, String> {
    let (status, cookie, _) = send(router, "/new", None).await;
    if status != StatusCode::OK {
        return Err(format!("/new answered {status}"));
    }
    let cookie = cookie.ok_or("/new set no cookie")?;
    let (status, _, body) = send(router, "/read", Some(&cookie)).await;
    if (status, body.as_str()) != (StatusCode::OK, "1") {
        return Err(format!("/read of a new session answered {status} {body:?}"));
    }
    Ok(cookie)
}

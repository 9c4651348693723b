//! Cookie attributes users ask for: `Partitioned` (CHIPS) for embedded
//! use, and the `SameSite=Strict` pitfall of sign-in callbacks with the
//! two-cookie setup that avoids it (R16, R17).

mod common;

use std::collections::HashMap;

use axum::{
    extract::{Query, Request},
    middleware::{self, Next},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
    Router,
};
use common::*;
use cookie::Cookie;
use http::{header, StatusCode};
use sessionware::{ConfigError, Keys, SameSite, Session, SessionConfig, SessionError, SessionLayer};

fn partitioned_config() -> SessionConfig {
    SessionConfig::builder().partitioned().same_site(SameSite::None).allow_cross_site().build().unwrap()
}

#[tokio::test]
async fn partitioned_is_on_the_session_cookie_and_on_its_removal() {
    let h = Harness::with_config(partitioned_config());
    let app = app(&h.layer);
    let res = send(&app, req("POST", "/incr", None)).await;
    let set = &set_cookies(&res)[0];
    assert_eq!(set.partitioned(), Some(true));
    assert_eq!(set.secure(), Some(true));
    assert_eq!(set.same_site(), Some(SameSite::None.into()));
    assert!(set.name().starts_with("__Host-"));
    let cookie = session_cookie(&res).unwrap();
    // A removal without `Partitioned` would not delete a partitioned cookie.
    let res = send(&app, req("POST", "/logout", Some(&cookie))).await;
    assert!(is_removal(&res));
    assert_eq!(set_cookies(&res)[0].partitioned(), Some(true));
    // The removal of a stale cookie too.
    let res = send(&app, req("GET", "/read", Some(&cookie))).await;
    assert!(is_removal(&res));
    assert_eq!(set_cookies(&res)[0].partitioned(), Some(true));
}

#[tokio::test]
async fn partitioned_is_opt_in() {
    let h = Harness::new();
    let res = send(&app(&h.layer), req("POST", "/incr", None)).await;
    assert_eq!(set_cookies(&res)[0].partitioned(), None);
    let raw = res.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(!raw.contains("Partitioned"));
}

#[test]
fn partitioned_without_secure_is_refused() {
    let insecure = SessionConfig::builder().cookie_name("sid").dangerous_insecure_cookies().partitioned().build();
    assert_eq!(insecure.unwrap_err(), ConfigError::PartitionedNeedsSecure);
    // The prefix rules still apply first.
    let host = SessionConfig::builder().cookie_name("__Host-sid").dangerous_insecure_cookies().partitioned().build();
    assert!(matches!(host.unwrap_err(), ConfigError::HostPrefix { .. }));
    // Without a chosen name, the default drops its prefix, and Partitioned is refused.
    let default = SessionConfig::builder().dangerous_insecure_cookies().partitioned().build();
    assert_eq!(default.unwrap_err(), ConfigError::PartitionedNeedsSecure);
    assert!(SessionConfig::builder().cookie_name("__Secure-sid").partitioned().build().is_ok());
}

/// How a request reaches the site, for the browser model.
#[derive(Clone, Copy)]
enum Context {
    /// Started on the site itself: every cookie is sent.
    SameSite,
    /// A top-level `GET` navigation from another site (an identity
    /// provider's redirect, a link in an e-mail): `Lax` and `None`
    /// cookies are sent, `Strict` ones are not.
    CrossSiteTopLevelGet,
}

/// A browser's cookie jar for one site, with the `SameSite` rule of
/// RFC 6265bis §5.8.3 for the two contexts above.
#[derive(Default)]
struct Jar(Vec<Cookie<'static>>);

impl Jar {
    fn header(&self, context: Context) -> Option<String> {
        let sent: Vec<String> = self
            .0
            .iter()
            .filter(|c| match context {
                Context::SameSite => true,
                Context::CrossSiteTopLevelGet => c.same_site() != Some(cookie::SameSite::Strict),
            })
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect();
        (!sent.is_empty()).then(|| sent.join("; "))
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|c| c.name() == name)
    }

    fn store(&mut self, res: &Response) {
        for set in set_cookies(res) {
            self.0.retain(|c| c.name() != set.name());
            if !set.value().is_empty() {
                self.0.push(set);
            }
        }
    }

    async fn visit(&mut self, app: &Router, method: &str, uri: &str, context: Context) -> (StatusCode, String) {
        let res = send(app, req(method, uri, self.header(context).as_deref())).await;
        self.store(&res);
        (res.status(), body(res).await)
    }
}

/// The main session, kept in an extension of its own before the sign-in
/// layer puts its session in the request.
#[derive(Clone)]
struct Main(Session);

async fn keep_main(mut req: Request, next: Next) -> Response {
    if let Some(main) = req.extensions().get::<Session>().cloned() {
        req.extensions_mut().insert(Main(main));
    }
    next.run(req).await
}

async fn add_to_cart(session: Session) -> Result<(), SessionError> {
    session.insert("cart", ["book"]).await
}

async fn whoami(session: Session) -> Result<String, SessionError> {
    let user = session.user().await?.unwrap_or_else(|| "anonymous".into());
    let cart: Vec<String> = session.get("cart").await?.unwrap_or_default();
    Ok(format!("{user} cart={}", cart.join(",")))
}

/// The start of the sign-in: the flow state, kept for the callback.
async fn start(flow: Session) -> Result<String, SessionError> {
    flow.insert("state", "s-123").await?;
    Ok("s-123".into())
}

/// The provider's redirect back: the state must be found; the verified
/// user waits in the flow session for the same-site step.
async fn callback(flow: Session, Query(q): Query<HashMap<String, String>>) -> Result<Response, SessionError> {
    let expected: Option<String> = flow.take("state").await?;
    if expected.is_none() || expected != q.get("state").cloned() {
        return Ok((StatusCode::BAD_REQUEST, "lost the sign-in state").into_response());
    }
    flow.insert("verified", q.get("user").cloned().unwrap_or_default()).await?;
    // A redirect would still be a cross-site navigation: a page of this
    // site starts the next one.
    Ok(Html(r#"<meta http-equiv="refresh" content="0;url=/oauth/complete">"#).into_response())
}

/// The same-site step: both cookies arrive; the main session signs in.
async fn complete(flow: Session, axum::Extension(Main(main)): axum::Extension<Main>) -> Result<String, SessionError> {
    let Some(user) = flow.take::<String>("verified").await? else {
        return Err(SessionError::NotAuthenticated);
    };
    flow.purge().await?;
    main.login(user.clone()).await?;
    Ok(user)
}

/// The main session `Strict`; the sign-in routes under a second layer
/// (another cookie name, `Lax`) that holds the flow state.
fn two_cookie_app() -> Router {
    let strict = SessionConfig::builder().same_site(SameSite::Strict).keep_on_login(["cart"]).build().unwrap();
    let lax = SessionConfig::builder().cookie_name("__Host-signin").same_site(SameSite::Lax).build().unwrap();
    let main =
        SessionLayer::new(sessionware::store::MemoryStore::default(), Keys::generate().unwrap()).with_config(strict);
    let flow =
        SessionLayer::new(sessionware::store::MemoryStore::default(), Keys::generate().unwrap()).with_config(lax);
    let signin = Router::new()
        .route("/oauth/start", get(start))
        .route("/oauth/callback", get(callback))
        .route("/oauth/complete", get(complete))
        .layer(flow)
        .layer(middleware::from_fn(keep_main));
    Router::new().route("/cart", post(add_to_cart)).route("/me", get(whoami)).merge(signin).layer(main)
}

// The documented pitfall, modelled: a `Strict` cookie that holds the flow
// state is not sent on the provider's redirect back, and the state is lost.
#[tokio::test]
async fn a_strict_session_loses_the_sign_in_state_on_the_callback() {
    let strict = SessionConfig::builder().same_site(SameSite::Strict).build().unwrap();
    let layer =
        SessionLayer::new(sessionware::store::MemoryStore::default(), Keys::generate().unwrap()).with_config(strict);
    let app = Router::new().route("/oauth/start", get(start)).route("/oauth/callback", get(callback)).layer(layer);
    let mut browser = Jar::default();
    browser.visit(&app, "GET", "/oauth/start", Context::SameSite).await;
    assert!(browser.has("__Host-sid"));
    let (status, text) =
        browser.visit(&app, "GET", "/oauth/callback?state=s-123&user=alice", Context::CrossSiteTopLevelGet).await;
    assert_eq!((status, text.as_str()), (StatusCode::BAD_REQUEST, "lost the sign-in state"));
}

// The recommended setup: the flow state survives the cross-site callback in
// the `Lax` cookie, and the same-site step signs the `Strict` session in,
// keeping what it held.
#[tokio::test]
async fn the_two_cookie_setup_survives_the_callback() {
    let app = two_cookie_app();
    let mut browser = Jar::default();
    browser.visit(&app, "POST", "/cart", Context::SameSite).await;
    assert!(browser.has("__Host-sid"));
    browser.visit(&app, "GET", "/oauth/start", Context::SameSite).await;
    assert!(browser.has("__Host-signin"));
    // The provider redirects back: only the `Lax` sign-in cookie comes along.
    assert_eq!(browser.header(Context::CrossSiteTopLevelGet).unwrap().matches("__Host-sid=").count(), 0);
    let main_before = browser.header(Context::SameSite);
    let (status, _) =
        browser.visit(&app, "GET", "/oauth/callback?state=s-123&user=alice", Context::CrossSiteTopLevelGet).await;
    assert_eq!(status, StatusCode::OK, "the state was found");
    assert_eq!(browser.header(Context::SameSite), main_before, "the callback left the main session alone");
    let (status, user) = browser.visit(&app, "GET", "/oauth/complete", Context::SameSite).await;
    assert_eq!((status, user.as_str()), (StatusCode::OK, "alice"));
    assert!(!browser.has("__Host-signin"), "the flow state is gone");
    let (_, me) = browser.visit(&app, "GET", "/me", Context::SameSite).await;
    assert_eq!(me, "alice cart=book");
    // A forged callback (another state) finds nothing to sign in.
    browser.visit(&app, "GET", "/oauth/start", Context::SameSite).await;
    let (status, _) =
        browser.visit(&app, "GET", "/oauth/callback?state=forged&user=mallory", Context::CrossSiteTopLevelGet).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

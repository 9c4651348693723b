//! The auth guards (issue 12 point 2): the `SignedIn` and `User<U>`
//! extractors, the `RequireSignIn` / `RequireRecentAuth` layers in both
//! modes, and `safe_next` against open redirects.

mod common;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{routing::get, Router};
use common::*;
use http::{header, StatusCode};
use sessionware::{
    guard::{safe_next, AuthReason, LoadUser, RequireRecentAuth, RequireSignIn, SignedIn, User},
    SharedError,
};

/// The application's user store, as the `LoadUser` hook sees it.
#[derive(Clone, Default)]
struct Db {
    users: Arc<Mutex<HashMap<String, String>>>,
    broken: Arc<AtomicBool>,
}

impl Db {
    fn with(users: &[(&str, &str)]) -> Self {
        let db = Self::default();
        db.users.lock().unwrap().extend(users.iter().map(|(id, name)| (id.to_string(), name.to_string())));
        db
    }
}

struct Account {
    name: String,
}

impl LoadUser<Db> for Account {
    type Error = String;
    async fn load(user_id: &str, db: &Db) -> Result<Option<Self>, Self::Error> {
        if db.broken.load(Ordering::SeqCst) {
            return Err("connection to db.internal:5432 (password=hunter2) refused".into());
        }
        Ok(db.users.lock().unwrap().get(user_id).map(|name| Account { name: name.clone() }))
    }
}

async fn whoami(user: SignedIn) -> String {
    user.into_user_id()
}
async fn home(user: Option<SignedIn>) -> String {
    user.map_or_else(|| "guest".into(), |u| u.into_user_id())
}
async fn profile(User(account): User<Account>) -> String {
    account.name
}
async fn maybe_profile(account: Option<User<Account>>) -> String {
    account.map_or_else(|| "guest".into(), |User(a)| a.name)
}

/// Unguarded routes with the extractors, the login route of
/// `common::handlers`, and the user store.
fn routes(h: &Harness, db: &Db) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/home", get(home))
        .route("/profile", get(profile))
        .route("/maybe-profile", get(maybe_profile))
        .with_state(db.clone())
        .merge(common::handlers::routes())
        .layer(h.layer.clone())
}

/// `/page` behind the guard `protect` adds (its handler counts its
/// calls), plus the login route; inside the session layer.
fn guarded(h: &Harness, calls: &Arc<AtomicUsize>, protect: impl FnOnce(Router) -> Router) -> Router {
    let calls = Arc::clone(calls);
    let page = get(move || async move {
        calls.fetch_add(1, Ordering::SeqCst);
        "secret page"
    })
    .post(|| async { "posted" });
    protect(Router::new().route("/page", page).route("/any/{*rest}", get(|| async { "any" })))
        .merge(common::handlers::routes())
        .layer(h.layer.clone())
}

fn refused_as(res: &http::Response<axum::body::Body>) -> Option<String> {
    res.extensions().get::<SharedError>().map(|e| format!("{:?}", e.error()))
}

// The extractor gives the signed-in user, and refuses anonymous and
// expired sessions with 401.
#[tokio::test]
async fn signed_in_extractor_refuses_anonymous_and_expired_sessions() {
    let h = Harness::new();
    let app = routes(&h, &Db::default());
    let res = send(&app, req("GET", "/whoami", None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused_as(&res).as_deref(), Some("NotAuthenticated"));
    assert_eq!(body(res).await, "Sign-in required");

    let cookie = login(&app, "alice").await;
    let res = send(&app, req("GET", "/whoami", Some(&cookie))).await;
    assert_eq!((res.status(), body(res).await), (StatusCode::OK, "alice".to_string()));

    // A tampered cookie is nobody.
    let res = send(&app, req("GET", "/whoami", Some(&tamper(&cookie)))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Past the idle timeout the session is gone, and so is the user.
    h.clock.advance(Duration::from_secs(30 * 60 + 1));
    let res = send(&app, req("GET", "/whoami", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

// `Option<SignedIn>` is `None` for nobody, but a store failure is not
// mistaken for an anonymous visitor (R51: fail closed).
#[tokio::test]
async fn optional_signed_in_is_none_for_anonymous_but_fails_on_store_failure() {
    let h = Harness::new();
    let app = routes(&h, &Db::default());
    assert_eq!(body(send(&app, req("GET", "/home", None)).await).await, "guest");
    let cookie = login(&app, "alice").await;
    assert_eq!(body(send(&app, req("GET", "/home", Some(&cookie))).await).await, "alice");

    h.store.fail(Op::Load);
    let res = send(&app, req("GET", "/home", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_ne!(body(res).await, "guest");
}

#[tokio::test]
async fn extractors_without_a_session_layer() {
    let app: Router = Router::new().route("/whoami", get(whoami)).route("/home", get(home));
    let res = send(&app, req("GET", "/whoami", None)).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body(res).await.contains("SessionLayer"), "the body names the fix");
    assert_eq!(body(send(&app, req("GET", "/home", None)).await).await, "guest");
}

// The API guard answers 401 and never runs the handler of a request from nobody.
#[tokio::test]
async fn require_sign_in_api_keeps_anonymous_requests_from_the_handler() {
    let h = Harness::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = guarded(&h, &calls, |r| r.route_layer(RequireSignIn::api()));
    let res = send(&app, req("GET", "/page", None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get(header::LOCATION).is_none());
    assert_eq!(body(res).await, "Sign-in required");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the guarded handler never ran");

    let cookie = login(&app, "alice").await;
    let res = send(&app, req("GET", "/page", Some(&cookie))).await;
    assert_eq!((res.status(), body(res).await), (StatusCode::OK, "secret page".into()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // An unguarded route of the same router stays open.
    assert_eq!(send(&app, req("GET", "/untouched", None)).await.status(), StatusCode::OK);
}

// The HTML guard redirects to the login page with the request's own path
// as `next`, which a login handler's `safe_next` accepts and which decodes
// back to the path.
#[tokio::test]
async fn require_sign_in_redirects_with_a_safe_next() {
    let h = Harness::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = guarded(&h, &calls, |r| r.route_layer(RequireSignIn::redirect_to("/login")));
    let res = send(&app, req("GET", "/page?tab=a%20b&x=1", None)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(refused_as(&res).as_deref(), Some("NotAuthenticated"));
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_string();
    assert_eq!(location, "/login?next=%2Fpage%3Ftab%3Da%2520b%26x%3D1");
    let query = location.split_once('?').unwrap().1;
    let next: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    assert_eq!(safe_next(&next["next"]), Some("/page?tab=a%20b&x=1"));
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // A form post cannot be replayed by a redirect: no `next`.
    let res = send(&app, req("POST", "/page", None)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/login");
}

// `next` comes from the request's own path only: a Host, X-Forwarded-Host
// or Referer header, or an absolute-form request target, never puts
// another host into it; a path that is itself an open-redirect shape gets
// no `next` at all.
#[tokio::test]
async fn redirect_next_never_points_to_another_host() {
    let h = Harness::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = guarded(&h, &calls, |r| r.route_layer(RequireSignIn::redirect_to("/login")));
    let mut request = req("GET", "http://evil.com/page", None);
    for (name, value) in [("host", "evil.com"), ("x-forwarded-host", "evil.com"), ("referer", "https://evil.com/")] {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    let res = send(&app, request).await;
    assert_eq!(res.headers()[header::LOCATION], "/login?next=%2Fpage");

    // Paths the guarded wildcard route matches, each an open-redirect
    // shape once a browser or a second decoding is done with it.
    assert_eq!(send(&app, req("GET", "/any/x", None)).await.headers()[header::LOCATION], "/login?next=%2Fany%2Fx");
    for path in ["/any/..//evil.com", "/any/%2e%2e/%2F%2Fevil.com", "/any/%5C..%5C..%5Cevil.com"] {
        let res = send(&app, req("GET", path, None)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(res.headers()[header::LOCATION], "/login", "{path}: no next");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// Inside a nested router, `next` is the full path the client asked for.
#[tokio::test]
async fn redirect_next_in_a_nested_router_is_the_original_path() {
    let h = Harness::new();
    let inner: Router =
        Router::new().route("/orders", get(|| async { "orders" })).route_layer(RequireSignIn::redirect_to("/login"));
    let app = Router::new().nest("/shop", inner).layer(h.layer.clone());
    let res = send(&app, req("GET", "/shop/orders", None)).await;
    assert_eq!(res.headers()[header::LOCATION], "/login?next=%2Fshop%2Forders");
}

// R40: the recent-auth guard lets a fresh sign-in through and refuses a
// stale one once the clock moves, in both modes.
#[tokio::test]
async fn require_recent_auth_after_the_clock_moves() {
    let h = Harness::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let guard = RequireRecentAuth::within(Duration::from_secs(300));
    let api = guarded(&h, &calls, |r| r.route_layer(guard.clone()));
    let html = guarded(&h, &calls, |r| r.route_layer(guard.redirect_to("/login?reauth=1")));

    let res = send(&api, req("GET", "/page", None)).await;
    assert_eq!((res.status(), body(res).await), (StatusCode::UNAUTHORIZED, "Sign-in required".into()));

    let cookie = login(&api, "alice").await;
    h.clock.advance(Duration::from_secs(299));
    assert_eq!(send(&api, req("GET", "/page", Some(&cookie))).await.status(), StatusCode::OK);
    assert_eq!(send(&html, req("GET", "/page", Some(&cookie))).await.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    h.clock.advance(Duration::from_secs(2));
    let res = send(&api, req("GET", "/page", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused_as(&res).as_deref(), Some("ReauthRequired"));
    assert_eq!(body(res).await, "Recent sign-in required");
    let res = send(&html, req("GET", "/page", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/login?reauth=1&next=%2Fpage");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "a stale sign-in never reached the handler");

    // Still signed in: only the fresh-sign-in routes are refused.
    assert_eq!(who(&api, &cookie).await, (StatusCode::OK, "alice".into()));
    // A new sign-in lets it through again.
    let cookie = login(&api, "alice").await;
    assert_eq!(send(&api, req("GET", "/page", Some(&cookie))).await.status(), StatusCode::OK);
}

// The guard without a session layer is a setup bug: 500 naming the fix,
// never a pass.
#[tokio::test]
async fn guard_without_a_session_layer_fails_closed() {
    let app: Router = Router::new().route("/page", get(|| async { "secret" })).route_layer(RequireSignIn::api());
    let res = send(&app, req("GET", "/page", None)).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body(res).await.contains("SessionLayer"));
}

// The typed user: the hook's user when found.
#[tokio::test]
async fn typed_user_is_loaded_by_the_hook() {
    let h = Harness::new();
    let app = routes(&h, &Db::with(&[("alice", "Alice A.")]));
    assert_eq!(send(&app, req("GET", "/profile", None)).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(send(&app, req("GET", "/maybe-profile", None)).await).await, "guest");
    let cookie = login(&app, "alice").await;
    let res = send(&app, req("GET", "/profile", Some(&cookie))).await;
    assert_eq!((res.status(), body(res).await), (StatusCode::OK, "Alice A.".into()));
    assert_eq!(body(send(&app, req("GET", "/maybe-profile", Some(&cookie))).await).await, "Alice A.");
}

// R44: a user the hook no longer finds (a deleted account) is signed out,
// and the session ends, so an account created later under the same id
// never inherits this client.
#[tokio::test]
async fn typed_user_no_longer_found_is_signed_out_and_the_session_ends() {
    let h = Harness::new();
    let db = Db::with(&[("alice", "Alice")]);
    let app = routes(&h, &db);
    let cookie = login(&app, "alice").await;
    db.users.lock().unwrap().remove("alice");
    let res = send(&app, req("GET", "/profile", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(is_removal(&res), "the client is told to drop the cookie");

    // The account comes back (an id reused): the old cookie is still nobody.
    db.users.lock().unwrap().insert("alice".into(), "New Alice".into());
    assert_eq!(send(&app, req("GET", "/profile", Some(&cookie))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::UNAUTHORIZED);

    // The Option form: `None`, and the session ends too.
    let cookie = login(&app, "bob").await;
    let res = send(&app, req("GET", "/maybe-profile", Some(&cookie))).await;
    assert!(is_removal(&res));
    assert_eq!(body(res).await, "guest");
    assert_eq!(who(&app, &cookie).await.0, StatusCode::UNAUTHORIZED);
}

// A failing hook is a bare 500: nothing of its error reaches the client,
// the session stays, and the Option form fails too (never "guest").
#[tokio::test]
async fn typed_user_hook_error_is_a_bare_500() {
    let h = Harness::new();
    let db = Db::with(&[("alice", "Alice")]);
    let app = routes(&h, &db);
    let cookie = login(&app, "alice").await;
    db.broken.store(true, Ordering::SeqCst);
    for path in ["/profile", "/maybe-profile"] {
        let res = send(&app, req("GET", path, Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        let text = body(res).await;
        assert_eq!(text, "Internal Server Error");
    }
    db.broken.store(false, Ordering::SeqCst);
    assert_eq!(body(send(&app, req("GET", "/profile", Some(&cookie))).await).await, "Alice");
}

// Under a redirecting guard, the typed extractor's refusal redirects too.
#[tokio::test]
async fn typed_user_under_a_redirecting_guard_redirects() {
    let h = Harness::new();
    let db = Db::with(&[("alice", "Alice")]);
    let app = Router::new()
        .route("/profile", get(profile))
        .route_layer(RequireSignIn::redirect_to("/login"))
        .with_state(db.clone())
        .merge(common::handlers::routes())
        .layer(h.layer.clone());
    let cookie = login(&app, "alice").await;
    db.users.lock().unwrap().clear();
    let res = send(&app, req("GET", "/profile", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/login?next=%2Fprofile");
}

#[tokio::test]
async fn rejection_reason_is_typed() {
    let h = Harness::new();
    let app = Router::new()
        .route(
            "/r",
            get(|user: Result<SignedIn, sessionware::guard::AuthRejection>| async move {
                match user {
                    Err(r) if matches!(r.reason(), AuthReason::SignedOut) => "signed out".to_string(),
                    other => format!("{other:?}"),
                }
            }),
        )
        .layer(h.layer.clone());
    assert_eq!(body(send(&app, req("GET", "/r", None)).await).await, "signed out");
}

/// Known open-redirect payloads (PayloadsAllTheThings "Open Redirect",
/// OWASP's unvalidated-redirects cheat sheet, and browser URL-parser
/// quirks): none is a safe `next`.
const OPEN_REDIRECTS: &[&str] = &[
    "//evil.com",
    "///evil.com",
    "////evil.com",
    "/\\evil.com",
    "\\/evil.com",
    "\\\\evil.com",
    "/\\/evil.com",
    "/%2F%2Fevil.com",
    "/%2f%2fevil.com",
    "/%252F%252Fevil.com",
    "/%5Cevil.com",
    "/%5cevil.com",
    "/%2F%5Cevil.com",
    "%2F%2Fevil.com",
    "https://evil.com",
    "http://evil.com",
    "HTTPS://evil.com",
    "http:evil.com",
    "http:/evil.com",
    "https:\\\\evil.com",
    "//evil.com/%2F..",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/\t/evil.com",
    "/\n/evil.com",
    "/\r\n/evil.com",
    " /evil",
    "/ /evil.com",
    "%0d%0a",
    "/%0d%0aSet-Cookie:%20x=y",
    "/%0aLocation:%20https://evil.com",
    "/%09/evil.com",
    "/%00/evil.com",
    "/%E3%80%82evil.com/..",
    "/\u{3002}evil.com",
    "/\u{FF0F}evil.com",
    "/../evil.com",
    "/.//evil.com",
    "/%2e%2e//evil.com",
    "/%2E/%2Fevil.com",
    "evil.com",
    "@evil.com",
    "?next=//evil.com",
    "#//evil.com",
    "",
];

#[test]
fn safe_next_refuses_every_open_redirect_payload() {
    for payload in OPEN_REDIRECTS {
        assert_eq!(safe_next(payload), None, "{payload:?} was accepted");
    }
    let long = format!("/{}", "a".repeat(4096));
    assert_eq!(safe_next(&long), None, "an oversized next");
}

#[test]
fn safe_next_accepts_same_origin_paths() {
    for path in [
        "/",
        "/cart",
        "/orders/42?page=2&sort=asc",
        "/search?q=a%20b",
        "/search?q=a%2Fb",
        "/docs#section-2",
        "/@alice",
        "/files/report.v2.pdf",
        "/a:b",
    ] {
        assert_eq!(safe_next(path), Some(path), "{path:?} was refused");
    }
}

//! The newcomer's whole first hour, as proof that it works from the public
//! API alone: one small shop app (login with "remember me", a typed cart, a
//! flash message shown once, a devices page with "sign out other devices",
//! a settings page behind a recent-login guard that redirects), driven as a
//! browser would (a cookie jar that honours `Max-Age`) on a `ManualClock`,
//! on the memory store and on Redis.
//!
//! Only `sessionware::…` public items are used: no `tests/common` helpers.

use std::time::Duration;

use axum::{
    body::{to_bytes, Body},
    extract::Query,
    response::Redirect,
    routing::{get, post},
    Form, Router,
};
use http::{header, Request, StatusCode};
use serde::{Deserialize, Serialize};
use sessionware::guard::{safe_next, RequireRecentAuth, RequireSignIn, SignedIn};
use sessionware::{
    store::MemoryStore, Clock, Keys, ManualClock, Session, SessionConfig, SessionError, SessionLayer, SessionValue,
    Typed,
};
use tower::ServiceExt;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

// ---- the app, as a newcomer writes it ----

#[derive(Default, Serialize, Deserialize)]
struct Cart {
    items: Vec<String>,
}

impl SessionValue for Cart {
    const KEY: &'static str = "cart";
}

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
    remember: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct Item {
    item: String,
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

async fn home(user: Option<SignedIn>, session: Session) -> Result<String, SessionError> {
    let flash: Option<String> = session.take("flash").await?;
    let who = user.map_or("guest".to_string(), |u| format!("hello {}", u.user_id()));
    Ok(format!("{who}\n{}", flash.unwrap_or_default()))
}

async fn login_page(Query(q): Query<Next>) -> String {
    format!("login form, next={}", q.next.as_deref().and_then(safe_next).unwrap_or("/"))
}

async fn login(session: Session, Form(form): Form<Login>) -> Result<Redirect, SessionError> {
    if form.password != format!("{}-password", form.user) {
        return Ok(Redirect::to("/login"));
    }
    session.login(form.user).await?;
    session.set_persistent(form.remember.is_some()).await?;
    Ok(Redirect::to(form.next.as_deref().and_then(safe_next).unwrap_or("/")))
}

async fn logout(session: Session) -> Result<Redirect, SessionError> {
    session.purge().await?;
    Ok(Redirect::to("/"))
}

async fn add_to_cart(cart: Typed<Cart>, session: Session, Form(form): Form<Item>) -> Result<Redirect, SessionError> {
    session.insert("flash", format!("Added {}.", form.item)).await?;
    cart.update(|c| c.items.push(form.item)).await?;
    Ok(Redirect::to("/"))
}

async fn show_cart(cart: Typed<Cart>) -> Result<String, SessionError> {
    Ok(cart.get().await?.unwrap_or_default().items.join(","))
}

async fn devices(session: Session) -> Result<String, SessionError> {
    let lines: Vec<String> = session
        .sessions()
        .await?
        .into_iter()
        .map(|s| format!("{} {}{}", s.handle, s.user_agent.unwrap_or_default(), if s.current { " (this)" } else { "" }))
        .collect();
    Ok(lines.join("\n"))
}

async fn sign_out_others(session: Session) -> Result<String, SessionError> {
    Ok(format!("signed out {}", session.revoke_others().await?))
}

async fn settings(user: SignedIn) -> String {
    format!("settings of {}", user.user_id())
}

fn app(layer: SessionLayer) -> Router {
    let signed_in = Router::new()
        .route("/devices", get(devices))
        .route("/devices/sign-out-others", post(sign_out_others))
        .route_layer(RequireSignIn::redirect_to("/login"));
    let recent = Router::new()
        .route("/settings", get(settings))
        .route_layer(RequireRecentAuth::within(5 * MINUTE).redirect_to("/login"));
    Router::new()
        .merge(signed_in)
        .merge(recent)
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/cart", get(show_cart).post(add_to_cart))
        .layer(layer)
}

fn config() -> SessionConfig {
    SessionConfig::builder().development().keep_on_login(["cart"]).build().expect("valid config")
}

// ---- a browser ----

/// One browser: its user agent and its session cookie, which it drops when
/// the cookie's `Max-Age` runs out (on the test's clock) or the server
/// clears it.
struct Browser {
    agent: &'static str,
    cookie: Option<(String, Option<u64>)>,
    clock: ManualClock,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    max_age: Option<u64>,
    body: String,
}

impl Browser {
    fn new(agent: &'static str, clock: &ManualClock) -> Self {
        Self { agent, cookie: None, clock: clock.clone() }
    }

    async fn send(&mut self, app: &Router, method: &str, uri: &str, form: &str) -> Page {
        let now = self.clock.now_ms();
        if matches!(&self.cookie, Some((_, Some(expires)))if *expires <= now) {
            self.cookie = None;
        }
        let mut req = Request::builder().method(method).uri(uri).header(header::USER_AGENT, self.agent);
        if let Some((cookie, _)) = &self.cookie {
            req = req.header(header::COOKIE, cookie);
        }
        if !form.is_empty() {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let res = app.clone().oneshot(req.body(Body::from(form.to_string())).unwrap()).await.unwrap();
        let mut max_age = None;
        if let Some(set) = res.headers().get(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap().trim().to_string();
            max_age = set.split(';').find_map(|a| a.trim().strip_prefix("Max-Age=")).map(|s| s.parse::<u64>().unwrap());
            self.cookie = match max_age {
                Some(0) => None,
                _ if pair.ends_with('=') => None,
                Some(secs) => Some((pair, Some(now + secs * 1000))),
                None => Some((pair, None)),
            };
        }
        let status = res.status();
        let location = res.headers().get(header::LOCATION).map(|l| l.to_str().unwrap().to_string());
        let body = String::from_utf8(to_bytes(res.into_body(), 1 << 16).await.unwrap().to_vec()).unwrap();
        Page { status, location, max_age, body }
    }

    async fn get(&mut self, app: &Router, uri: &str) -> Page {
        self.send(app, "GET", uri, "").await
    }

    async fn post(&mut self, app: &Router, uri: &str, form: &str) -> Page {
        self.send(app, "POST", uri, form).await
    }
}

fn redirected(page: &Page, to: &str) {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some(to));
}

// ---- the flow ----

async fn first_hour(layer: SessionLayer, clock: &ManualClock) {
    let app = app(layer);
    let mut laptop = Browser::new("Laptop", clock);
    let mut phone = Browser::new("Phone", clock);

    // A visitor: the devices page sends them to the login, with `next`.
    redirected(&laptop.get(&app, "/devices").await, "/login?next=%2Fdevices");
    assert_eq!(laptop.get(&app, "/login?next=%2Fdevices").await.body, "login form, next=/devices");
    assert_eq!(laptop.get(&app, "/login?next=%2F%2Fevil.com").await.body, "login form, next=/");

    // A cart before signing in, and a flash message shown once.
    redirected(&laptop.post(&app, "/cart", "item=tea").await, "/");
    assert_eq!(laptop.get(&app, "/").await.body, "guest\nAdded tea.");
    assert_eq!(laptop.get(&app, "/").await.body, "guest\n");

    // A wrong password signs nobody in; an open redirect through `next` fails.
    redirected(&laptop.post(&app, "/login", "user=alice&password=guess&next=%2Fdevices").await, "/login");
    redirected(&laptop.get(&app, "/devices").await, "/login?next=%2Fdevices");
    let page = laptop.post(&app, "/login", "user=alice&password=alice-password&next=https%3A%2F%2Fevil.com").await;
    redirected(&page, "/");

    // Signed in with "remember me": back to `next`, the cart kept, a cookie
    // that lasts (the remembered limits, not the 30-minute idle timeout).
    let page = laptop.post(&app, "/login", "user=alice&password=alice-password&remember=on&next=%2Fdevices").await;
    redirected(&page, "/devices");
    assert!(page.max_age.expect("a remembered session's cookie has a Max-Age") >= 29 * 24 * 3600);
    assert_eq!(laptop.get(&app, "/").await.body, "hello alice\n");
    assert_eq!(laptop.get(&app, "/cart").await.body, "tea");
    redirected(&laptop.post(&app, "/cart", "item=jam").await, "/");
    assert_eq!(laptop.get(&app, "/").await.body, "hello alice\nAdded jam.");
    assert_eq!(laptop.get(&app, "/cart").await.body, "tea,jam");

    // A second device, not remembered.
    redirected(&phone.post(&app, "/login", "user=alice&password=alice-password").await, "/");
    let list = laptop.get(&app, "/devices").await.body;
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains("Laptop (this)") && list.contains("Phone"), "{list}");

    // Two idle hours: the plain session ended, the remembered one did not.
    clock.advance(2 * HOUR);
    assert_eq!(phone.get(&app, "/").await.body, "guest\n");
    assert_eq!(laptop.get(&app, "/").await.body, "hello alice\n");
    assert_eq!(laptop.get(&app, "/cart").await.body, "tea,jam");
    assert_eq!(laptop.get(&app, "/devices").await.body.lines().count(), 1);

    // The settings need a recent sign-in: to the login with `next`, then back.
    redirected(&laptop.get(&app, "/settings").await, "/login?next=%2Fsettings");
    let page = laptop.post(&app, "/login", "user=alice&password=alice-password&remember=on&next=%2Fsettings").await;
    redirected(&page, "/settings");
    let page = laptop.get(&app, "/settings").await;
    assert_eq!((page.status, page.body.as_str()), (StatusCode::OK, "settings of alice"));
    clock.advance(6 * MINUTE);
    redirected(&laptop.get(&app, "/settings").await, "/login?next=%2Fsettings");

    // Sign out the other devices: the phone's new session ends, the laptop stays.
    redirected(&phone.post(&app, "/login", "user=alice&password=alice-password").await, "/");
    assert_eq!(phone.get(&app, "/").await.body, "hello alice\n");
    assert_eq!(laptop.post(&app, "/devices/sign-out-others", "").await.body, "signed out 1");
    assert_eq!(phone.get(&app, "/").await.body, "guest\n");
    redirected(&phone.get(&app, "/devices").await, "/login?next=%2Fdevices");
    assert_eq!(laptop.get(&app, "/devices").await.body.lines().count(), 1);

    // The remembered session ends at its own idle limit (30 days by default).
    clock.advance(29 * DAY);
    assert_eq!(laptop.get(&app, "/").await.body, "hello alice\n");
    clock.advance(31 * DAY);
    assert_eq!(laptop.get(&app, "/").await.body, "guest\n");
    redirected(&laptop.get(&app, "/devices").await, "/login?next=%2Fdevices");

    // Sign out.
    laptop.post(&app, "/login", "user=alice&password=alice-password").await;
    assert_eq!(laptop.get(&app, "/").await.body, "hello alice\n");
    redirected(&laptop.post(&app, "/logout", "").await, "/");
    assert_eq!(laptop.get(&app, "/").await.body, "guest\n");
}

/// A clock near the real time (Redis expires keys by the real clock).
fn clock() -> ManualClock {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    ManualClock::new(u64::try_from(now.as_millis()).unwrap())
}

#[tokio::test]
async fn the_first_hour_on_the_memory_store() {
    let clock = clock();
    let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap())
        .with_config(config())
        .with_clock(clock.clone());
    first_hour(layer, &clock).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn the_first_hour_on_redis() {
    use std::io::Write;

    use sessionware::store::RedisStore;

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = match tokio::time::timeout(Duration::from_secs(3), RedisStore::connect(&url)).await {
        Ok(Ok(store)) => store,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            };
            // The URL may hold a password: only the error is printed.
            assert!(std::env::var("SESSIONWARE_REQUIRE_STORES").as_deref() != Ok("1"), "no Redis (REDIS_URL): {why}");
            let _ = writeln!(std::io::stderr(), "SKIPPED: newcomer on Redis (no server at REDIS_URL: {why})");
            return;
        }
    };
    let prefix = format!("sessionware-newcomer-{}-{:x}:", std::process::id(), rand::random::<u32>());
    let store = store.with_prefix(&prefix).unwrap();
    let clock = clock();
    let layer = SessionLayer::new(store, Keys::generate().unwrap()).with_config(config()).with_clock(clock.clone());
    first_hour(layer, &clock).await;

    let mut conn = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let left: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap();
    if !left.is_empty() {
        let _: () = redis::cmd("DEL").arg(&left).query_async(&mut conn).await.unwrap();
    }
}

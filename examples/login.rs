//! Sign-in with the auth guards and "remember me": a login form that sends
//! the user back where the guard found them (`next`, checked by
//! `safe_next`), a page for signed-in users, a settings page that needs a
//! sign-in within the last 5 minutes, and sign-out.
//!
//! Run it with `cargo run --example login`, open <http://127.0.0.1:3000/account>
//! and sign in as `alice` / `wonderland`. `cargo test --example login` runs its
//! test module (the example itself, without the tests, is about 80 lines).

use std::{io::IsTerminal, time::Duration};

use axum::{
    extract::Query,
    response::{Html, Redirect},
    routing::{get, post},
    Form, Router,
};
use serde::Deserialize;
use sessionware::guard::{safe_next, RequireRecentAuth, RequireSignIn, SignedIn};
use sessionware::{store::MemoryStore, Keys, Session, SessionConfig, SessionError, SessionLayer};

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

#[derive(Deserialize)]
struct Credentials {
    user: String,
    password: String,
    remember: Option<String>, // the checkbox: present when ticked
    next: Option<String>,
}

async fn login_form(Query(q): Query<Next>) -> Html<String> {
    // Only a value `safe_next` accepts goes into the page, HTML-escaped.
    let next = q.next.as_deref().and_then(safe_next).unwrap_or("/").replace('&', "&amp;").replace('"', "&quot;");
    Html(format!(
        r#"<form method="post" action="/login"><input type="hidden" name="next" value="{next}">
<input name="user"> <input name="password" type="password">
<label><input type="checkbox" name="remember"> remember me</label> <button>Sign in</button></form>"#
    ))
}

async fn login(session: Session, Form(form): Form<Credentials>) -> Result<Redirect, SessionError> {
    // Verify a password hash (argon2, …) from your user store here.
    if form.user != "alice" || form.password != "wonderland" {
        return Ok(Redirect::to("/login"));
    }
    session.login(form.user).await?; // a new session ID, the sign-in time now
    session.set_persistent(form.remember.is_some()).await?; // 30 days idle instead of 30 minutes
    Ok(Redirect::to(form.next.as_deref().and_then(safe_next).unwrap_or("/")))
}

async fn logout(session: Session) -> Result<Redirect, SessionError> {
    session.purge().await?;
    Ok(Redirect::to("/"))
}

fn app(sessions: SessionLayer) -> Router {
    let signed_in = Router::new().route("/account", get(|u: SignedIn| async move { format!("hello {}", u.user_id()) }));
    let recent = Router::new()
        .route("/settings", get(|u: SignedIn| async move { format!("settings of {}", u.user_id()) }))
        .route_layer(RequireRecentAuth::within(Duration::from_secs(5 * 60)).redirect_to("/login"));
    Router::new()
        .merge(signed_in.route_layer(RequireSignIn::redirect_to("/login")))
        .merge(recent)
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .layer(sessions)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_ansi(std::io::stdout().is_terminal()).init();
    let keys = Keys::from_env_or_generate("SESSION_KEYS")?;
    let sessions = SessionLayer::new(MemoryStore::default(), keys).with_config(SessionConfig::development());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000/account");
    axum::serve(listener, app(sessions)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body};
    use http::{header, Request, Response, StatusCode};
    use sessionware::ManualClock;
    use tower::ServiceExt;

    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    async fn send(app: &Router, method: &str, uri: &str, cookie: &str, form: &str) -> Response<Body> {
        let req = Request::builder().method(method).uri(uri).header(header::COOKIE, cookie);
        let req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        app.clone().oneshot(req.body(Body::from(form.to_string())).unwrap()).await.unwrap()
    }

    fn location(res: &Response<Body>) -> &str {
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        res.headers()[header::LOCATION].to_str().unwrap()
    }

    /// Signs alice in: the session cookie (`sid=…`) and where the login sent her.
    async fn sign_in(app: &Router, form: &str) -> (String, String) {
        let res = send(app, "POST", "/login", "", &format!("user=alice&password=wonderland&{form}")).await;
        let set = res.headers()[header::SET_COOKIE].to_str().unwrap();
        (set.split(';').next().unwrap().to_string(), location(&res).to_string())
    }

    fn setup() -> (Router, ManualClock) {
        let clock = ManualClock::new(1_700_000_000_000);
        let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap())
            .with_config(SessionConfig::development())
            .with_clock(clock.clone());
        (app(layer), clock)
    }

    #[tokio::test]
    async fn the_guard_sends_a_visitor_to_the_login_and_the_login_sends_them_back() {
        let (app, _) = setup();
        let res = send(&app, "GET", "/account", "", "").await;
        assert_eq!(location(&res), "/login?next=%2Faccount");
        let page = send(&app, "GET", "/login?next=%2Faccount", "", "").await;
        let page = to_bytes(page.into_body(), 4096).await.unwrap();
        assert!(String::from_utf8_lossy(&page).contains(r#"name="next" value="/account""#));
        let (cookie, to) = sign_in(&app, "next=%2Faccount").await;
        assert_eq!(to, "/account");
        assert_eq!(send(&app, "GET", "/account", &cookie, "").await.status(), StatusCode::OK);
        // Signed out: the guard redirects again.
        let res = send(&app, "POST", "/logout", &cookie, "").await;
        assert_eq!(location(&res), "/");
        assert_eq!(location(&send(&app, "GET", "/account", &cookie, "").await), "/login?next=%2Faccount");
    }

    #[tokio::test]
    async fn an_open_redirect_through_next_fails() {
        let (app, _) = setup();
        for evil in ["https%3A%2F%2Fevil.com", "%2F%2Fevil.com", "%2F%5Cevil.com", "%2F%252F%252Fevil.com"] {
            assert_eq!(sign_in(&app, &format!("next={evil}")).await.1, "/", "{evil}");
            let page = send(&app, "GET", &format!("/login?next={evil}"), "", "").await;
            let page = to_bytes(page.into_body(), 4096).await.unwrap();
            assert!(String::from_utf8_lossy(&page).contains(r#"name="next" value="/""#), "{evil}");
        }
        let res = send(&app, "POST", "/login", "", "user=alice&password=wrong&next=%2Faccount").await;
        assert_eq!(location(&res), "/login");
        assert!(res.headers().get(header::SET_COOKIE).is_none(), "a wrong password signs nobody in");
    }

    #[tokio::test]
    async fn remember_me_outlives_the_idle_timeout_and_a_plain_sign_in_does_not() {
        let (app, clock) = setup();
        let (remembered, _) = sign_in(&app, "remember=on").await;
        let (plain, _) = sign_in(&app, "").await;
        clock.advance(2 * 60 * MINUTE); // past the 30-minute idle timeout
        assert_eq!(send(&app, "GET", "/account", &remembered, "").await.status(), StatusCode::OK);
        assert_eq!(location(&send(&app, "GET", "/account", &plain, "").await), "/login?next=%2Faccount");
    }

    #[tokio::test]
    async fn settings_need_a_recent_sign_in() {
        let (app, clock) = setup();
        let (cookie, _) = sign_in(&app, "remember=on").await;
        assert_eq!(send(&app, "GET", "/settings", &cookie, "").await.status(), StatusCode::OK);
        clock.advance(6 * MINUTE);
        assert_eq!(send(&app, "GET", "/account", &cookie, "").await.status(), StatusCode::OK);
        let res = send(&app, "GET", "/settings", &cookie, "").await;
        assert_eq!(location(&res), "/login?next=%2Fsettings");
        let (cookie, to) = sign_in(&app, "next=%2Fsettings").await;
        assert_eq!(to, "/settings");
        assert_eq!(send(&app, "GET", "/settings", &cookie, "").await.status(), StatusCode::OK);
    }
}

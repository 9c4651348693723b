//! A visit counter: the smallest app with a session.
//!
//! Run it with `cargo run --example counter`, open <http://127.0.0.1:3000> and
//! reload. `cargo test --example counter` runs its test module (the example
//! itself, without the tests, is under 80 lines).

use std::io::IsTerminal;

use axum::{routing::get, Router};
use sessionware::{store::MemoryStore, Keys, Session, SessionConfig, SessionError, SessionLayer};

/// Counts this browser's visits.
async fn count(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(format!("visits: {visits}"))
}

fn app(keys: Keys) -> Router {
    // `development()`: the cookie `sid` without `Secure`, for plain HTTP on
    // localhost. Production keeps the default `SessionConfig` (`__Host-sid`).
    let sessions = SessionLayer::new(MemoryStore::default(), keys).with_config(SessionConfig::development());
    Router::new().route("/", get(count)).layer(sessions)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_ansi(std::io::stdout().is_terminal()).init();
    // Production: `export SESSION_KEYS="$(openssl rand -base64 64)"`.
    let keys = Keys::from_env_or_generate("SESSION_KEYS")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000");
    axum::serve(listener, app(keys)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body};
    use http::{header, Request};
    use tower::ServiceExt;

    use super::*;

    /// One request with an optional cookie: its body and its new cookie.
    async fn visit(app: &Router, cookie: Option<&str>) -> (String, Option<String>) {
        let mut req = Request::get("/");
        if let Some(cookie) = cookie {
            req = req.header(header::COOKIE, cookie);
        }
        let res = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), 200);
        let set =
            res.headers().get(header::SET_COOKIE).map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
        let body = to_bytes(res.into_body(), 1024).await.unwrap();
        (String::from_utf8(body.to_vec()).unwrap(), set)
    }

    #[tokio::test]
    async fn each_browser_counts_its_own_visits() {
        let app = app(Keys::generate().unwrap());
        let (body, cookie) = visit(&app, None).await;
        assert_eq!(body, "visits: 1");
        let cookie = cookie.expect("the first visit sets the session cookie");
        assert!(cookie.starts_with("sid="));
        assert_eq!(visit(&app, Some(&cookie)).await.0, "visits: 2");
        assert_eq!(visit(&app, Some(&cookie)).await.0, "visits: 3");
        // Another browser (no cookie) starts at 1; a forged cookie is no session.
        assert_eq!(visit(&app, None).await.0, "visits: 1");
        assert_eq!(visit(&app, Some("sid=forged")).await.0, "visits: 1");
    }
}

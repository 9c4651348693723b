//! Sessions in Redis: the counter of the `counter` example on a
//! [`RedisStore`], so sessions outlive the process and every instance of the
//! app shares them (with the same `SESSION_KEYS`).
//!
//! Run it with `cargo run --example redis --features redis` (the server in
//! `REDIS_URL`, by default `redis://127.0.0.1:6379`) and open
//! <http://127.0.0.1:3000>. `cargo test --example redis --features redis` runs
//! its test module, which is skipped with a message when no Redis server
//! answers (the example itself, without the tests, is under 80 lines).

use std::io::IsTerminal;

use axum::{routing::get, Router};
use sessionware::{store::RedisStore, Keys, Session, SessionConfig, SessionError, SessionLayer};

/// Counts this browser's visits.
async fn count(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(format!("visits: {visits}"))
}

fn app(store: RedisStore, keys: Keys) -> Router {
    let sessions = SessionLayer::new(store, keys).with_config(SessionConfig::development());
    Router::new().route("/", get(count)).layer(sessions)
}

/// The Redis server's URL: `REDIS_URL`, or the local default.
fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_ansi(std::io::stdout().is_terminal()).init();
    // Several instances must share the keys: set SESSION_KEYS for them.
    let keys = Keys::from_env_or_generate("SESSION_KEYS")?;
    // Keys are `sessionware:…` by default; `with_prefix` to share a database.
    let store = RedisStore::connect(&redis_url()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000");
    axum::serve(listener, app(store, keys)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{io::Write, time::Duration};

    use axum::body::{to_bytes, Body};
    use http::{header, Request};
    use tower::ServiceExt;

    use super::*;

    async fn visit(app: &Router, cookie: &str) -> (String, Option<String>) {
        let req = Request::get("/").header(header::COOKIE, cookie).body(Body::empty()).unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let set = res.headers().get(header::SET_COOKIE).map(|v| v.to_str().unwrap().split(';').next().unwrap().into());
        (String::from_utf8(to_bytes(res.into_body(), 1024).await.unwrap().to_vec()).unwrap(), set)
    }

    #[tokio::test]
    async fn the_count_lives_in_redis_and_survives_a_restart() {
        let url = redis_url();
        let store = match tokio::time::timeout(Duration::from_secs(3), RedisStore::connect(&url)).await {
            Ok(Ok(store)) => store,
            failed => {
                let why = failed
                    .map_or_else(|_| "timed out".to_string(), |r| r.err().map(|e| e.to_string()).unwrap_or_default());
                // The URL may hold a password: only the error is printed.
                assert!(
                    std::env::var("SESSIONWARE_REQUIRE_STORES").as_deref() != Ok("1"),
                    "no Redis (REDIS_URL): {why}"
                );
                let _ = writeln!(std::io::stderr(), "SKIPPED: example redis (no Redis server at REDIS_URL: {why})");
                return;
            }
        };
        // A prefix of this run's own, so parallel runs never share keys.
        let prefix = format!("sessionware-example-{}-{:x}:", std::process::id(), rand::random::<u32>());
        let store = store.with_prefix(&prefix).unwrap();
        let keys = Keys::generate().unwrap();
        let (body, cookie) = visit(&app(store.clone(), keys.clone()), "").await;
        assert_eq!(body, "visits: 1");
        let cookie = cookie.expect("a session cookie");
        // A new app (a restart, or another instance) with the same keys and
        // server continues the same session.
        assert_eq!(visit(&app(store.clone(), keys.clone()), &cookie).await.0, "visits: 2");
        // Other keys cannot read it: a forged or foreign cookie is no session.
        assert_eq!(visit(&app(store, Keys::generate().unwrap()), &cookie).await.0, "visits: 1");

        let mut conn = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
        let left: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap();
        assert!(!left.is_empty(), "the sessions are in Redis under the prefix");
        let _: () = redis::cmd("DEL").arg(&left).query_async(&mut conn).await.unwrap();
    }
}

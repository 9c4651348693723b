//! Exclusive sessions on real stores: two app instances (two `SessionLayer`s
//! on two independent store objects that share one server, database or
//! file) increment one session's counter 200 times under `Session::lock`,
//! and no increment is lost.
//!
//! Redis: `REDIS_URL` (default `redis://127.0.0.1:6379`). PostgreSQL:
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! Without a server those tests print `SKIPPED: ...` and pass, unless
//! `SESSIONWARE_REQUIRE_STORES=1`. SQLite uses a file in the temp directory.
//! Each test prints its wall time (`--nocapture` shows it).
#![cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]

mod common;

use std::{io::Write, time::Duration};

use axum::{
    routing::{get, post},
    Router,
};
use common::*;
use http::StatusCode;
use sessionware::{Keys, Session, SessionConfig, SessionError, SessionLayer, SessionStore};

/// Requests in all, the first one included.
const INCREMENTS: u64 = 200;

/// The stores take turns: each run has the two cores to itself, so the wall
/// times compare and no run starves another's lock waiters.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn locked_incr(session: Session) -> Result<String, SessionError> {
    session.lock().await?;
    let n: u64 = session.get("n").await?.unwrap_or(0);
    session.insert("n", n + 1).await?;
    Ok((n + 1).to_string())
}

async fn read(session: Session) -> Result<String, SessionError> {
    Ok(session.get::<u64>("n").await?.map_or("none".into(), |n| n.to_string()))
}

/// 199 requests queue for one lease: give them time.
fn config() -> SessionConfig {
    SessionConfig::builder().lock_wait(Duration::from_secs(30)).build().expect("config")
}

/// One "app instance": its own layer on its own store object.
fn instance(store: impl SessionStore, keys: Keys) -> Router {
    Router::new()
        .route("/incr", post(locked_incr))
        .route("/n", get(read))
        .layer(SessionLayer::new(store, keys).with_config(config()))
}

fn skip_or_fail(what: &str, host: &str, err: &str) {
    if std::env::var("SESSIONWARE_REQUIRE_STORES").as_deref() == Ok("1") {
        panic!("{what} store tests: no server at {host}: {err}");
    }
    // Straight to stderr: the test harness captures `eprintln!`.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what} exclusive-session tests (no server at {host}: {err})");
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{:x}", std::process::id(), rand::random::<u32>())
}

/// Creates the session through `a`, then fires the other increments at once,
/// alternating between `a` and `b`; checks that every one succeeded and that
/// the counter ends at exactly [`INCREMENTS`]. Returns the wall time.
async fn two_instances_count_to_200(name: &'static str, a: Router, b: Router) -> Duration {
    let _turn = SERIAL.lock().await;
    let started = std::time::Instant::now();
    let res = send(&a, req("POST", "/incr", None)).await;
    assert_eq!(res.status(), StatusCode::OK, "{name}: creating the session");
    let cookie = session_cookie(&res).expect("a session cookie");
    assert_eq!(body(res).await, "1");

    let tasks: Vec<_> = (1..INCREMENTS)
        .map(|i| {
            let app = if i % 2 == 0 { a.clone() } else { b.clone() };
            let cookie = cookie.clone();
            tokio::spawn(async move {
                let sent = std::time::Instant::now();
                let res = send(&app, req("POST", "/incr", Some(&cookie))).await;
                let status = res.status();
                let set_cookie = res.headers().contains_key(http::header::SET_COOKIE);
                (status, set_cookie, body(res).await, sent.elapsed())
            })
        })
        .collect();
    let mut seen = Vec::with_capacity(tasks.len());
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (status, set_cookie, text, took) = t.await.expect("task");
        slowest = slowest.max(took);
        assert_eq!(status, StatusCode::OK, "{name}: an increment failed: {text}");
        assert!(!set_cookie, "{name}: an increment changed the cookie");
        seen.push(text.parse::<u64>().expect("a number"));
    }
    let elapsed = started.elapsed();
    // Serialised: every request saw a different predecessor.
    seen.sort_unstable();
    assert_eq!(seen, (2..=INCREMENTS).collect::<Vec<_>>(), "{name}: two requests read the same value");
    for app in [&a, &b] {
        assert_eq!(body(send(app, req("GET", "/n", Some(&cookie))).await).await, INCREMENTS.to_string(), "{name}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "{name}: {INCREMENTS} locked increments through two instances in {elapsed:.2?} (slowest request {slowest:.2?})"
    );
    elapsed
}

/// Runs the scenario on a task of its own so that the caller cleans up even
/// when it fails, then re-raises the failure.
async fn scenario(name: &'static str, a: Router, b: Router) -> Result<(), Box<dyn std::any::Any + Send>> {
    tokio::spawn(two_instances_count_to_200(name, a, b)).await.map(|_| ()).map_err(|e| e.into_panic())
}

// --------------------------------------------------------------------- Redis

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_instances_lose_no_increment() {
    use sessionware::RedisStore;
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let host = url.rsplit('@').next().unwrap_or_default().to_string();
    let prefix = format!("sw-excl-{}-{:x}:", std::process::id(), rand::random::<u64>());
    let connect = || async {
        let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
        // One quick attempt first, without the connection manager's retries.
        match tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("connection timed out".to_string()),
        }
        let store = RedisStore::connect(&url).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(store.with_prefix(&prefix).expect("valid prefix"))
    };
    let (first, second) = match (connect().await, connect().await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return skip_or_fail("redis", &host, &e),
    };
    let keys = Keys::generate().expect("keys");
    let a = instance(first, keys.clone());
    let b = instance(second.clone(), keys);
    let outcome = scenario("redis", a, b).await;

    // Clean up: the session and any lease left behind.
    let client = redis::Client::open(url.as_str()).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.expect("keys");
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.expect("del");
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(keys.len(), 1, "only the session is left (every lease was released): {keys:?}");
}

// ---------------------------------------------------------------- PostgreSQL

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_lose_no_increment() {
    use sessionware::SqlStore;
    use sqlx::Connection;
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let host = url.rsplit('@').next().unwrap_or_default().to_string();
    let table = unique("sw_excl");
    let connect = || async {
        // One quick attempt first, without the pool's retries.
        match tokio::time::timeout(Duration::from_secs(3), sqlx::postgres::PgConnection::connect(&url)).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
            }
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("connection timed out".to_string()),
        }
        let store = SqlStore::postgres(&url).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(store.with_table(&table).expect("table name"))
    };
    let (first, second) = match (connect().await, connect().await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return skip_or_fail("postgres", &host, &e),
    };
    first.migrate().await.expect("migrate");
    let keys = Keys::generate().expect("keys");
    let a = instance(first.clone(), keys.clone());
    let b = instance(second, keys);
    let outcome = scenario("postgres", a, b).await;

    let pool = first.postgres_pool().expect("postgres");
    let sessions: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\"")).fetch_one(pool).await.expect("count");
    let leases: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}_locks\"")).fetch_one(pool).await.expect("count");
    let _ = sqlx::raw_sql(&format!("DROP TABLE IF EXISTS \"{table}\", \"{table}_locks\"")).execute(pool).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert_eq!((sessions, leases), (1, 0), "one session, every lease released");
}

// -------------------------------------------------------------------- SQLite

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_instances_lose_no_increment() {
    use sessionware::SqlStore;
    let path = std::env::temp_dir().join(format!("{}.db", unique("sessionware-excl")));
    let path_text = path.to_str().expect("utf-8 temp dir").to_string();
    let table = unique("sw_excl");
    let open =
        || async { SqlStore::sqlite(&path_text).await.expect("open sqlite").with_table(&table).expect("table name") };
    let first = open().await;
    first.migrate().await.expect("migrate");
    let second = open().await;
    let keys = Keys::generate().expect("keys");
    let a = instance(first.clone(), keys.clone());
    let b = instance(second.clone(), keys);
    let outcome = scenario("sqlite", a, b).await;

    let pool = first.sqlite_pool().expect("sqlite");
    let sessions: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\"")).fetch_one(pool).await.expect("count");
    let leases: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}_locks\"")).fetch_one(pool).await.expect("count");
    for store in [&first, &second] {
        if let Some(pool) = store.sqlite_pool() {
            pool.close().await;
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert_eq!((sessions, leases), (1, 0), "one session, every lease released");
}

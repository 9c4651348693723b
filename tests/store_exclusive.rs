//! Exclusive sessions on real stores: two app instances (two `SessionLayer`s
//! on two independent store objects that share one server, database or
//! file) increment one session's counter 200 times under `Session::lock`,
//! and no increment is lost; every lease is released when its request ends.
//!
//! Redis: `REDIS_URL` (default `redis://127.0.0.1:6379`). PostgreSQL:
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! MySQL/MariaDB: `MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`).
//! Without a server those tests print `SKIPPED: ...` and pass, unless
//! `SESSIONWARE_REQUIRE_STORES=1`. SQLite uses a file in the temp directory.
//! Each test prints its wall time (`--nocapture` shows it).
#![cfg(any(feature = "redis", feature = "postgres", feature = "sqlite", feature = "mysql"))]

mod common;
#[path = "common/store_fixtures.rs"]
mod store_fixtures;

#[cfg(feature = "redis")]
use store_fixtures::redis_keys;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use store_fixtures::unique;

use std::{io::Write, sync::Arc, time::Duration};

use axum::{
    routing::{get, post},
    Router,
};
use common::*;
use http::StatusCode;
use sessionware::{store::FullStore, Keys, Session, SessionConfig, SessionError, SessionLayer};

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

/// Locks, reads, writes nothing.
async fn locked_read(session: Session) -> Result<String, SessionError> {
    session.lock().await?;
    Ok(session.get::<u64>("n").await?.map_or("none".into(), |n| n.to_string()))
}

async fn read(session: Session) -> Result<String, SessionError> {
    Ok(session.get::<u64>("n").await?.map_or("none".into(), |n| n.to_string()))
}

/// 199 requests queue for one lease, and waiters are not served in order: the
/// unluckiest waits about as long as the whole run (PostgreSQL took up to 26 s
/// on a loaded 2-core machine; the default `lock_wait` of 5 s is too short).
fn config() -> SessionConfig {
    SessionConfig::builder().lock_wait(Duration::from_secs(120)).build().expect("config")
}

/// One "app instance": its own layer on its own store object.
fn instance(store: impl FullStore, keys: Keys) -> Router {
    Router::new()
        .route("/incr", post(locked_incr))
        .route("/n", get(read))
        .route("/locked-n", get(locked_read))
        .layer(SessionLayer::new(store, keys).with_config(config()))
}

fn skip_or_fail(what: &str, host: &str, err: &str) {
    store_fixtures::skip_or_fail(what, "exclusive-session tests", host, err);
}

/// Creates the session through `a`, then fires the other increments at once,
/// alternating between `a` and `b`; checks that every one succeeded and that
/// the counter ends at exactly [`INCREMENTS`]. Returns the wall time.
async fn two_instances_count_to_200(name: &'static str, a: Router, b: Router) {
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
}

/// A request that locks the session and answers without writing releases the
/// lease: the next locking request (on the other instance) gets it at once,
/// not after `lock_lease` (10 s).
async fn a_read_only_lock_is_released(name: &'static str, a: Router, b: Router) {
    let res = send(&a, req("POST", "/incr", None)).await;
    let cookie = session_cookie(&res).expect("a session cookie");
    let res = send(&a, req("GET", "/locked-n", Some(&cookie))).await;
    assert_eq!((res.status(), body(res).await), (StatusCode::OK, "1".to_string()), "{name}");
    let started = std::time::Instant::now();
    let res = send(&b, req("POST", "/incr", Some(&cookie))).await;
    let waited = started.elapsed();
    assert_eq!((res.status(), body(res).await), (StatusCode::OK, "2".to_string()), "{name}");
    assert!(
        waited < Duration::from_secs(2),
        "{name}: the next locking request waited {waited:.2?} for the lease of a request that had already answered"
    );
}

// ------------------------------------------------------------------ fixtures

/// Two independent store objects on one server, database or file.
struct Pair {
    name: &'static str,
    a: Arc<dyn FullStore>,
    b: Arc<dyn FullStore>,
    backend: Backend,
}

enum Backend {
    Memory(sessionware::store::MemoryStore),
    #[cfg(feature = "redis")]
    Redis {
        url: String,
        prefix: String,
    },
    #[cfg(feature = "postgres")]
    Postgres(sessionware::store::SqlStore),
    #[cfg(feature = "sqlite")]
    Sqlite(sessionware::store::SqlStore, sessionware::store::SqlStore, std::path::PathBuf),
    #[cfg(feature = "mysql")]
    Mysql(sessionware::store::SqlStore),
}

impl Pair {
    /// One process, one `MemoryStore` shared by both layers.
    fn memory() -> Self {
        let store = sessionware::store::MemoryStore::default();
        Self { name: "memory", a: Arc::new(store.clone()), b: Arc::new(store.clone()), backend: Backend::Memory(store) }
    }

    #[cfg(feature = "redis")]
    async fn redis(tag: &str) -> Option<Self> {
        use sessionware::store::RedisStore;
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let host = url.rsplit('@').next().unwrap_or_default().to_string();
        let prefix = format!("sw-{tag}-{}-{:x}:", std::process::id(), rand::random::<u64>());
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
        match (connect().await, connect().await) {
            (Ok(a), Ok(b)) => {
                Some(Self { name: "redis", a: Arc::new(a), b: Arc::new(b), backend: Backend::Redis { url, prefix } })
            }
            (Err(e), _) | (_, Err(e)) => {
                skip_or_fail("redis", &host, &e);
                None
            }
        }
    }

    #[cfg(feature = "postgres")]
    async fn postgres(tag: &str) -> Option<Self> {
        use sessionware::store::SqlStore;
        use sqlx::Connection;
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let host = url.rsplit('@').next().unwrap_or_default().to_string();
        let table = unique(&format!("sw_{tag}"));
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
        match (connect().await, connect().await) {
            (Ok(a), Ok(b)) => {
                a.migrate().await.expect("migrate");
                Some(Self { name: "postgres", a: Arc::new(a.clone()), b: Arc::new(b), backend: Backend::Postgres(a) })
            }
            (Err(e), _) | (_, Err(e)) => {
                skip_or_fail("postgres", &host, &e);
                None
            }
        }
    }

    /// Two pools on one MySQL/MariaDB database, one table.
    #[cfg(feature = "mysql")]
    async fn mysql(tag: &str) -> Option<Self> {
        let connect = || async {
            let a = store_fixtures::mysql_store(&format!("sw_{tag}")).await?;
            let b = sessionware::store::SqlStore::mysql(&store_fixtures::mysql_url())
                .await
                .map_err(|e| e.to_string())?
                .with_table(a.table())
                .expect("table name");
            Ok::<_, String>((a, b))
        };
        match connect().await {
            Ok((a, b)) => {
                Some(Self { name: "mysql", a: Arc::new(a.clone()), b: Arc::new(b), backend: Backend::Mysql(a) })
            }
            Err(e) => {
                skip_or_fail("mysql", &store_fixtures::mysql_host(), &e);
                None
            }
        }
    }

    #[cfg(feature = "sqlite")]
    async fn sqlite(tag: &str) -> Self {
        use sessionware::store::SqlStore;
        let path = std::env::temp_dir().join(format!("{}.db", unique(&format!("sessionware-{tag}"))));
        let path_text = path.to_str().expect("utf-8 temp dir").to_string();
        let table = unique(&format!("sw_{tag}"));
        let open = || async {
            SqlStore::sqlite(&path_text).await.expect("open sqlite").with_table(&table).expect("table name")
        };
        let a = open().await;
        a.migrate().await.expect("migrate");
        let b = open().await;
        Self { name: "sqlite", a: Arc::new(a.clone()), b: Arc::new(b.clone()), backend: Backend::Sqlite(a, b, path) }
    }

    /// Sessions and leases the store holds.
    async fn counts(&self) -> (usize, usize) {
        match &self.backend {
            Backend::Memory(store) => {
                let keys = store.keys();
                let mut leases = 0;
                for key in &keys {
                    // A free lease can be taken (and is given back at once).
                    if store.try_lock(key, "probe", 1_000, SystemClock.now_ms()).await.expect("try_lock") {
                        store.unlock(key, "probe", SystemClock.now_ms()).await.expect("unlock");
                    } else {
                        leases += 1;
                    }
                }
                (keys.len(), leases)
            }
            #[cfg(feature = "redis")]
            Backend::Redis { url, prefix } => {
                let keys = redis_keys(url, prefix).await;
                let leases = keys.iter().filter(|k| k.ends_with(":lock")).count();
                (keys.len() - leases, leases)
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(store) => {
                let pool = store.postgres_pool().expect("postgres");
                let count = |sql: String| async move {
                    let n: i64 = sqlx::query_scalar(&sql).fetch_one(pool).await.expect("count");
                    usize::try_from(n).expect("count")
                };
                let t = store.table();
                (
                    count(format!("SELECT count(*) FROM \"{t}\"")).await,
                    count(format!("SELECT count(*) FROM \"{t}_locks\"")).await,
                )
            }
            #[cfg(feature = "mysql")]
            Backend::Mysql(store) => {
                let pool = store.mysql_pool().expect("mysql");
                let count = |sql: String| async move {
                    let n: i64 = sqlx::query_scalar(&sql).fetch_one(pool).await.expect("count");
                    usize::try_from(n).expect("count")
                };
                let t = store.table();
                (
                    count(format!("SELECT count(*) FROM `{t}`")).await,
                    count(format!("SELECT count(*) FROM `{t}_locks`")).await,
                )
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(store, _, _) => {
                let pool = store.sqlite_pool().expect("sqlite");
                let count = |sql: String| async move {
                    let n: i64 = sqlx::query_scalar(&sql).fetch_one(pool).await.expect("count");
                    usize::try_from(n).expect("count")
                };
                let t = store.table();
                (
                    count(format!("SELECT count(*) FROM \"{t}\"")).await,
                    count(format!("SELECT count(*) FROM \"{t}_locks\"")).await,
                )
            }
        }
    }

    async fn cleanup(&self) {
        match &self.backend {
            Backend::Memory(_) => {}
            #[cfg(feature = "redis")]
            Backend::Redis { url, prefix } => store_fixtures::drop_redis_prefix(url, prefix).await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(store) => store_fixtures::drop_postgres_tables(store).await,
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(a, b, path) => store_fixtures::remove_sqlite(&[a, b], path).await,
            #[cfg(feature = "mysql")]
            Backend::Mysql(store) => store_fixtures::drop_mysql_tables(store).await,
        }
    }

    /// Runs `scenario` with one app instance on each store object, on a task
    /// of its own; then counts what the store holds, cleans up (whatever
    /// happened), re-raises a failure, and checks that exactly one session
    /// and no lease are left.
    async fn run<Fut>(self, scenario: fn(&'static str, Router, Router) -> Fut)
    where
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let keys = Keys::generate().expect("keys");
        let a = instance(Arc::clone(&self.a), keys.clone());
        let b = instance(Arc::clone(&self.b), keys);
        let outcome = tokio::spawn(scenario(self.name, a, b)).await;
        let counts = self.counts().await;
        self.cleanup().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
        assert_eq!(counts, (1, 0), "{}: one session and no lease are left (sessions, leases)", self.name);
    }
}

// --------------------------------------------------------------------- tests

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_instances_lose_no_increment() {
    let Some(pair) = Pair::redis("excl").await else { return };
    pair.run(two_instances_count_to_200).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_lose_no_increment() {
    let Some(pair) = Pair::postgres("excl").await else { return };
    pair.run(two_instances_count_to_200).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_instances_lose_no_increment() {
    Pair::sqlite("excl").await.run(two_instances_count_to_200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_locked_request_that_writes_nothing_releases_its_lease() {
    Pair::memory().run(a_read_only_lock_is_released).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_locked_request_that_writes_nothing_releases_its_lease() {
    let Some(pair) = Pair::redis("lease").await else { return };
    pair.run(a_read_only_lock_is_released).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_locked_request_that_writes_nothing_releases_its_lease() {
    let Some(pair) = Pair::postgres("lease").await else { return };
    pair.run(a_read_only_lock_is_released).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_locked_request_that_writes_nothing_releases_its_lease() {
    Pair::sqlite("lease").await.run(a_read_only_lock_is_released).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_two_instances_lose_no_increment() {
    let Some(pair) = Pair::mysql("excl").await else { return };
    pair.run(two_instances_count_to_200).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_a_locked_request_that_writes_nothing_releases_its_lease() {
    let Some(pair) = Pair::mysql("lease").await else { return };
    pair.run(a_read_only_lock_is_released).await;
}

//! Fixture pieces shared by the store-backed layer tests
//! (`tests/store_exclusive.rs`, `tests/store_sessions.rs`).
#![allow(dead_code, unreachable_pub)]

use std::io::Write;

/// Prints `SKIPPED: {what} {suite} …` (or panics under
/// `SESSIONWARE_REQUIRE_STORES=1`) when a store server is unreachable.
pub fn skip_or_fail(what: &str, suite: &str, host: &str, err: &str) {
    if std::env::var("SESSIONWARE_REQUIRE_STORES").as_deref() == Ok("1") {
        panic!("{what} store tests: no server at {host}: {err}");
    }
    // Straight to stderr: the test harness captures `eprintln!`.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what} {suite} (no server at {host}: {err})");
}

/// A name no concurrent test uses (prefixes, tables, files).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{:x}", std::process::id(), rand::random::<u32>())
}

/// The Redis keys under `prefix`.
#[cfg(feature = "redis")]
pub async fn redis_keys(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.expect("keys")
}

/// Deletes every Redis key under `prefix`.
#[cfg(feature = "redis")]
pub async fn drop_redis_prefix(url: &str, prefix: &str) {
    let keys = redis_keys(url, prefix).await;
    if !keys.is_empty() {
        let client = redis::Client::open(url).expect("url");
        let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.expect("del");
    }
}

/// Drops the store's session and lease tables.
#[cfg(feature = "postgres")]
pub async fn drop_postgres_tables(store: &sessionware::store::SqlStore) {
    let t = store.table();
    let sql = format!("DROP TABLE IF EXISTS \"{t}\", \"{t}_locks\", \"{t}_cutoffs\"");
    let _ = sqlx::raw_sql(&sql).execute(store.postgres_pool().expect("postgres")).await;
}

/// Closes the stores' pools and removes the SQLite file with its WAL files.
#[cfg(feature = "sqlite")]
pub async fn remove_sqlite(stores: &[&sessionware::store::SqlStore], path: &std::path::Path) {
    for store in stores {
        if let Some(pool) = store.sqlite_pool() {
            pool.close().await;
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.to_path_buf().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// The MySQL/MariaDB test database: `MYSQL_URL`, by default the local
/// MariaDB's `test` database as root.
#[cfg(feature = "mysql")]
pub fn mysql_url() -> String {
    std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// A migrated MySQL store on a table of its own (`tag` and a random
/// suffix), after one quick connection attempt without the pool's retries.
#[cfg(feature = "mysql")]
pub async fn mysql_store(tag: &str) -> Result<sessionware::store::SqlStore, String> {
    use sqlx::Connection;
    let url = mysql_url();
    match tokio::time::timeout(std::time::Duration::from_secs(3), sqlx::mysql::MySqlConnection::connect(&url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
        }
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("connection timed out".into()),
    }
    let store = sessionware::store::SqlStore::mysql(&url).await.map_err(|e| e.to_string())?;
    let store = store.with_table(&unique(tag)).expect("table name");
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(store)
}

/// The host part of [`mysql_url`], for skip messages.
#[cfg(feature = "mysql")]
pub fn mysql_host() -> String {
    mysql_url().rsplit('@').next().unwrap_or_default().to_string()
}

/// Drops the store's session and lease tables (MySQL).
#[cfg(feature = "mysql")]
pub async fn drop_mysql_tables(store: &sessionware::store::SqlStore) {
    let t = store.table();
    let sql = format!("DROP TABLE IF EXISTS `{t}`, `{t}_locks`, `{t}_cutoffs`");
    let _ = sqlx::raw_sql(&sql).execute(store.mysql_pool().expect("mysql")).await;
}

/// A store under test, on a prefix, table or file of its own, and how to
/// clean up after it ([`every_store`]).
pub struct TestStore {
    pub name: &'static str,
    pub store: std::sync::Arc<dyn sessionware::store::FullStore>,
    cleanup: Cleanup,
}

enum Cleanup {
    Nothing,
    #[cfg(feature = "redis")]
    Redis(String, String),
    #[cfg(feature = "postgres")]
    Postgres(sessionware::store::SqlStore),
    #[cfg(feature = "sqlite")]
    Sqlite(sessionware::store::SqlStore, std::path::PathBuf),
    #[cfg(feature = "mysql")]
    Mysql(sessionware::store::SqlStore),
}

impl TestStore {
    /// Drops what the store's tests left (keys, tables, the file).
    pub async fn cleanup(self) {
        match self.cleanup {
            Cleanup::Nothing => {}
            #[cfg(feature = "redis")]
            Cleanup::Redis(url, prefix) => drop_redis_prefix(&url, &prefix).await,
            #[cfg(feature = "postgres")]
            Cleanup::Postgres(store) => drop_postgres_tables(&store).await,
            #[cfg(feature = "sqlite")]
            Cleanup::Sqlite(store, path) => remove_sqlite(&[&store], &path).await,
            #[cfg(feature = "mysql")]
            Cleanup::Mysql(store) => drop_mysql_tables(&store).await,
        }
    }
}

/// Every store this build and this machine have: memory always, and each
/// server store whose feature is on (a server that does not answer is
/// skipped with `SKIPPED: … {suite}`, or fails under
/// `SESSIONWARE_REQUIRE_STORES=1`). `tag` names the tables.
pub async fn every_store(suite: &str, tag: &str) -> Vec<TestStore> {
    use std::sync::Arc;
    let _ = (suite, tag);
    #[allow(unused_mut)] // nothing is added without a store feature
    let mut out = vec![TestStore {
        name: "memory",
        store: Arc::new(sessionware::store::MemoryStore::default()),
        cleanup: Cleanup::Nothing,
    }];
    #[cfg(feature = "redis")]
    {
        use std::time::Duration;
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("sw-{tag}-{}-{:x}:", std::process::id(), rand::random::<u64>());
        let probe = async {
            let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
            // One quick attempt first, without the connection manager's retries.
            match tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err("connection timed out".to_string()),
            }
            sessionware::store::RedisStore::connect(&url).await.map_err(|e| e.to_string())
        };
        match probe.await {
            Ok(store) => {
                let store = store.with_prefix(&prefix).expect("valid prefix");
                out.push(TestStore { name: "redis", store: Arc::new(store), cleanup: Cleanup::Redis(url, prefix) });
            }
            Err(e) => skip_or_fail("redis", suite, &url, &e),
        }
    }
    #[cfg(feature = "postgres")]
    {
        use sqlx::Connection;
        use std::time::Duration;
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let host = url.rsplit('@').next().unwrap_or_default().to_string();
        let probe = async {
            // One quick attempt first, without the pool's retries.
            match tokio::time::timeout(Duration::from_secs(3), sqlx::postgres::PgConnection::connect(&url)).await {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                }
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err("connection timed out".to_string()),
            }
            sessionware::store::SqlStore::postgres(&url).await.map_err(|e| e.to_string())
        };
        match probe.await {
            Ok(store) => {
                let store = store.with_table(&unique(tag)).expect("table name");
                store.migrate().await.expect("migrate");
                out.push(TestStore {
                    name: "postgres",
                    store: Arc::new(store.clone()),
                    cleanup: Cleanup::Postgres(store),
                });
            }
            Err(e) => skip_or_fail("postgres", suite, &host, &e),
        }
    }
    #[cfg(feature = "sqlite")]
    {
        let path = std::env::temp_dir().join(format!("{}.db", unique(&format!("sessionware-{tag}"))));
        let store = sessionware::store::SqlStore::sqlite(path.to_str().expect("utf-8 temp dir"))
            .await
            .expect("open sqlite")
            .with_table(&unique(tag))
            .expect("table name");
        store.migrate().await.expect("migrate");
        out.push(TestStore { name: "sqlite", store: Arc::new(store.clone()), cleanup: Cleanup::Sqlite(store, path) });
    }
    #[cfg(feature = "mysql")]
    match mysql_store(tag).await {
        Ok(store) => {
            out.push(TestStore { name: "mysql", store: Arc::new(store.clone()), cleanup: Cleanup::Mysql(store) })
        }
        Err(e) => skip_or_fail("mysql", suite, &mysql_host(), &e),
    }
    let names: Vec<&str> = out.iter().map(|s| s.name).collect();
    eprintln!("stores: {names:?}");
    out
}

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
    let sql = format!("DROP TABLE IF EXISTS \"{t}\", \"{t}_locks\"");
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

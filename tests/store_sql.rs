//! `SqlStore` against PostgreSQL, SQLite and MySQL/MariaDB: the conformance suite, the row
//! layout (retired rows included), rotation edge cases and races, cleanup,
//! and (ignored) timings of `delete_expired` over 1M rows.
//!
//! PostgreSQL: `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! Without a server the PostgreSQL tests print `SKIPPED: ...` and pass, unless
//! `SESSIONWARE_REQUIRE_STORES=1`. SQLite uses a file in the temp directory.
//! MySQL/MariaDB: `MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`),
//! skipped or required like PostgreSQL.
#![cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]

#[cfg(feature = "sqlite")]
use std::path::PathBuf;
use std::{io::Write, num::NonZeroUsize, sync::Arc, time::Duration};

use serde_json::value::to_raw_value;
use sessionware::{
    store::{
        conformance, Auth, ChangeSet, LimitPolicy, Login, Metadata, Record, Rotated, Rotation, SessionLimit,
        SessionStore, SqlStore, StorageKey, StoreError, Stored, UserIndex,
    },
    Clock, SessionId, SystemClock,
};

#[path = "store_sql/apply.rs"]
mod apply;

const MINUTE: u64 = 60_000;

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{:x}", std::process::id(), rand::random::<u32>())
}

fn record_at(now: u64) -> Record {
    let mut r = Record::new(Metadata::new(now, 30 * MINUTE, 120 * MINUTE));
    r.data.insert("greeting", &to_raw_value("hello").expect("json"));
    r
}

fn key() -> StorageKey {
    SessionId::generate().expect("rng").storage_key()
}

// ---------------------------------------------------------------- PostgreSQL

#[cfg(feature = "postgres")]
mod pg {
    use super::*;

    /// A migrated store on a table of its own; dropped with [`Pg::drop`].
    pub(crate) struct Pg {
        pub(crate) store: SqlStore,
    }

    impl Pg {
        pub(crate) async fn drop(self) {
            let pool = self.store.postgres_pool().expect("postgres");
            let t = self.store.table();
            let _ = sqlx::raw_sql(&format!("DROP TABLE IF EXISTS \"{t}\", \"{t}_locks\", \"{t}_cutoffs\""))
                .execute(pool)
                .await;
        }
    }

    pub(crate) async fn store() -> Option<Pg> {
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let err = match probe(&url).await {
            Err(e) => e,
            Ok(()) => match SqlStore::postgres(&url).await {
                Ok(store) => {
                    let store = store.with_table(&unique("sw_test")).expect("table name");
                    store.migrate().await.expect("migrate");
                    return Some(Pg { store });
                }
                Err(e) => e.to_string(),
            },
        };
        let host = url.rsplit('@').next().unwrap_or_default();
        if std::env::var("SESSIONWARE_REQUIRE_STORES").as_deref() == Ok("1") {
            panic!("postgres store tests: no server at {host}: {err}");
        }
        // Straight to stderr: the test harness captures `eprintln!`.
        let _ = writeln!(std::io::stderr(), "SKIPPED: postgres store tests (no server at {host}: {err})");
        None
    }

    /// One connection attempt, without the pool's retries.
    async fn probe(url: &str) -> Result<(), String> {
        use sqlx::Connection;
        match tokio::time::timeout(Duration::from_secs(3), sqlx::postgres::PgConnection::connect(url)).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connection timed out".into()),
        }
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_conformance() {
    let Some(pg) = pg::store().await else { return };
    conformance::run_all(Arc::new(pg.store.clone())).await;
    pg.drop().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_rows_hold_the_digest_never_the_id() {
    let Some(pg) = pg::store().await else { return };
    let pool = pg.store.postgres_pool().expect("postgres").clone();
    let id = SessionId::generate().expect("rng");
    assert!(pg
        .store
        .create(&id.storage_key(), &record_at(SystemClock.now_ms()), SystemClock.now_ms())
        .await
        .expect("create"));
    let rows: Vec<(Vec<u8>, String)> = sqlx::query_as(&format!("SELECT id, record FROM \"{}\"", pg.store.table()))
        .fetch_all(&pool)
        .await
        .expect("select");
    check_rows(&id, rows);
    pg.drop().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_delete_expired_and_skew() {
    let Some(pg) = pg::store().await else { return };
    delete_expired_removes_only_expired(&pg.store).await;
    cleanup_forgets_cutoffs_after_keep_until(&pg.store).await;
    own_clock_decides_expiry(&pg.store).await;
    oversized_records_are_refused(&pg.store).await;
    pg.drop().await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_retired_rows_and_rotation_races() {
    let Some(pg) = pg::store().await else { return };
    retired_rows(&pg.store).await;
    rotation_edges(&pg.store).await;
    delete_chain_is_bounded(&pg.store).await;
    revocations_on_retired_rows(&pg.store).await;
    logout_racing_a_rotation_of_the_successor(&pg.store, 30).await;
    writes_racing_a_rotation_land_in_the_successor(&pg.store, 4).await;
    pg.drop().await;
}

/// PostgreSQL, deterministic: a revocation (by handle, or of the other
/// devices) or a logout queues behind a rotation of the session's row (a
/// third connection holds the row's lock until both wait for it). The
/// rotation commits first; the revocation or logout still ends the session
/// it renewed. In the other order, the rotation finds nothing to rotate.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revocations_and_logouts_queued_behind_a_rotation_end_it() {
    let Some(pg) = pg::store().await else { return };
    for rotation_first in [true, false] {
        for ending in [Ending::Handle, Ending::Others, Ending::Logout, Ending::LogoutRetired] {
            ending_queued_with_a_rotation(&pg.store, ending, rotation_first).await;
        }
    }
    pg.drop().await;
}

/// PostgreSQL, deterministic: two logins of one user under a limit queue
/// behind the user's lock (held by a third connection); each counts the
/// user's sessions only once it holds the lock, after the other committed.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_limited_logins_take_turns_on_the_users_lock() {
    let Some(pg) = pg::store().await else { return };
    for policy in [LimitPolicy::RefuseNew, LimitPolicy::EvictLeastRecent] {
        limited_logins_queued_on_the_users_lock(&pg.store, policy).await;
    }
    pg.drop().await;
}

/// How a session is ended in [`ending_queued_with_a_rotation`].
#[cfg(any(feature = "postgres", feature = "mysql"))]
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// `delete_by_handle` of the session.
    Handle,
    /// `delete_user`, keeping another session of the user.
    Others,
    /// `delete` of the key being rotated.
    Logout,
    /// `delete` of the key that an earlier rotation retired (the one being
    /// rotated is its unused successor).
    LogoutRetired,
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn ending_queued_with_a_rotation(store: &SqlStore, ending: Ending, rotation_first: bool) {
    let now = SystemClock.now_ms();
    let user = unique("queued");
    let (mine, retired, old, new) = (key(), key(), key(), key());
    let kept = user_record_at(now, &user);
    assert!(store.create(&mine, &kept, SystemClock.now_ms()).await.expect("create"));
    let record = user_record_at(now, &user);
    assert!(store.create(&retired, &record, SystemClock.now_ms()).await.expect("create"));
    assert_eq!(store.rotate(&retired, &old, &plain_rotation(now)).await.expect("rotate"), Rotated::Done);

    let held = Held::lock(store, &old).await;
    let rotate = {
        let store = store.clone();
        async move { store.rotate(&old, &new, &plain_rotation(now)).await.expect("rotate") }
    };
    let end = {
        let (store, user, handle, keep) = (store.clone(), user.clone(), record.meta.handle, kept.meta.handle);
        async move {
            match ending {
                Ending::Handle => assert!(store
                    .delete_by_handle(&user, &handle, SystemClock.now_ms())
                    .await
                    .expect("delete_by_handle")),
                Ending::Others => assert_eq!(
                    store.delete_user(&user, Some(&keep), SystemClock.now_ms()).await.expect("delete_user"),
                    1
                ),
                Ending::Logout => store.delete(&old, SystemClock.now_ms()).await.expect("delete"),
                Ending::LogoutRetired => store.delete(&retired, SystemClock.now_ms()).await.expect("delete"),
            }
        }
    };
    let (rotate, end) = if rotation_first {
        let rotate = tokio::spawn(rotate);
        waiters(store, 1).await;
        let end = tokio::spawn(end);
        waiters(store, 2).await;
        (rotate, end)
    } else {
        let end = tokio::spawn(end);
        waiters(store, 1).await;
        let rotate = tokio::spawn(rotate);
        waiters(store, 2).await;
        (rotate, end)
    };
    held.release().await;
    end.await.expect("task");
    let rotated = rotate.await.expect("task");
    let what = format!("{ending:?}, rotation first: {rotation_first}");
    assert_eq!(rotated, if rotation_first { Rotated::Done } else { Rotated::Gone }, "{what}");
    for k in [&retired, &old, &new] {
        assert!(store.load(k, SystemClock.now_ms()).await.expect("load").is_none(), "a session survived ({what})");
    }
    let listed: Vec<_> = store
        .list_user(&user, SystemClock.now_ms(), usize::MAX)
        .await
        .expect("list_user")
        .into_iter()
        .map(|m| m.handle)
        .collect();
    assert_eq!(listed, vec![kept.meta.handle], "only the other session is left ({what})");
    for k in [&mine, &retired, &old, &new] {
        store.delete(k, SystemClock.now_ms()).await.expect("delete");
    }
}

/// A login of `user` under a limit of 2 with `policy`, as the layer
/// commits it (an anonymous session, then its rotation with the login):
/// the successor's key and what the rotation answered.
async fn limited_login(store: &SqlStore, user: &str, policy: LimitPolicy) -> (StorageKey, Rotated) {
    let now = SystemClock.now_ms();
    let (old, new) = (key(), key());
    assert!(store.create(&old, &record_at(now), now).await.expect("create"));
    let mut login = Login::new(Auth::new(user, now), now + 120 * MINUTE);
    login.limit = Some(SessionLimit::new(NonZeroUsize::new(2).expect("2"), policy));
    let mut rotation = plain_rotation(now);
    rotation.login = Some(login);
    (new, store.rotate(&old, &new, &rotation).await.expect("rotate"))
}

/// The user has one session; a third connection holds the user's lock
/// while two more logins queue behind it. Were a login to count before it
/// holds the lock, both would count one session and both would go
/// through: three sessions under a limit of 2. They take turns: refusing,
/// one goes through and one is refused; evicting, both go through and the
/// first session ends. Two sessions are left either way.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn limited_logins_queued_on_the_users_lock(store: &SqlStore, policy: LimitPolicy) {
    let user = unique("limited");
    let (first, rotated) = limited_login(store, &user, policy).await;
    assert_eq!(rotated, Rotated::Done);
    let held = Held::lock_user(store, &user).await;
    let login = || {
        let (store, user) = (store.clone(), user.clone());
        tokio::spawn(async move { limited_login(&store, &user, policy).await })
    };
    let a = login();
    waiters(store, 1).await;
    let b = login();
    waiters(store, 2).await;
    held.release().await;
    let (a, b) = (a.await.expect("task"), b.await.expect("task"));
    let mut answers = vec![format!("{:?}", a.1), format!("{:?}", b.1)];
    answers.sort();
    let expected = match policy {
        LimitPolicy::RefuseNew => ["Done", "Refused"],
        _ => ["Done", "Evicted { count: 1 }"],
    };
    assert_eq!(answers, expected, "{policy:?}: the second login counts the first one's session");
    let live = store.list_user(&user, SystemClock.now_ms(), usize::MAX).await.expect("list_user");
    assert_eq!(live.len(), 2, "{policy:?}: two sessions are left");
    let first_live = store.load(&first, SystemClock.now_ms()).await.expect("load").is_some();
    assert_eq!(first_live, policy == LimitPolicy::RefuseNew, "{policy:?}: the first session ends only by eviction");
    store.delete_user(&user, None, SystemClock.now_ms()).await.expect("delete_user");
}

/// A row of the store's table locked by a transaction of a connection of
/// its own (`SELECT ... FOR UPDATE`) until [`Held::release`].
#[cfg(any(feature = "postgres", feature = "mysql"))]
enum Held {
    #[cfg(feature = "postgres")]
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
    #[cfg(feature = "mysql")]
    My(sqlx::Transaction<'static, sqlx::MySql>),
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl Held {
    /// Locks the session row under `key`.
    async fn lock(store: &SqlStore, key: &StorageKey) -> Self {
        Self::select(store, "", "id", Row::Key(key)).await
    }

    /// Locks the user's row of the cutoffs table: the lock that the
    /// limited logins of the user take first.
    async fn lock_user(store: &SqlStore, user: &str) -> Self {
        Self::select(store, "_cutoffs", "scope = 1 AND user_id", Row::User(user)).await
    }

    /// `SELECT ... FOR UPDATE` of the row of `<table><suffix>` whose
    /// `column` is `row`.
    async fn select(store: &SqlStore, suffix: &str, column: &str, row: Row<'_>) -> Self {
        let t = store.table();
        #[cfg(feature = "postgres")]
        if let Some(pool) = store.postgres_pool() {
            let mut tx = pool.begin().await.expect("begin");
            let sql = format!("SELECT 1 FROM \"{t}{suffix}\" WHERE {column} = $1 FOR UPDATE");
            let query = match row {
                Row::Key(key) => sqlx::query(&sql).bind(key.as_bytes().as_slice()),
                Row::User(user) => sqlx::query(&sql).bind(user),
            };
            assert!(query.fetch_optional(&mut *tx).await.expect("lock").is_some(), "the row to hold");
            return Self::Pg(tx);
        }
        #[cfg(feature = "mysql")]
        if let Some(pool) = store.mysql_pool() {
            let mut tx = pool.begin().await.expect("begin");
            // The cutoffs are keyed by the user's digest (see `SqlStore`'s migration).
            let value = if let Row::User(_) = row { "UNHEX(SHA2(?, 256))" } else { "?" };
            let sql = format!("SELECT 1 FROM `{t}{suffix}` WHERE {column} = {value} FOR UPDATE");
            let query = match row {
                Row::Key(key) => sqlx::query(&sql).bind(key.as_bytes().as_slice()),
                Row::User(user) => sqlx::query(&sql).bind(user),
            };
            assert!(query.fetch_optional(&mut *tx).await.expect("lock").is_some(), "the row to hold");
            return Self::My(tx);
        }
        panic!("no pool");
    }

    async fn release(self) {
        match self {
            #[cfg(feature = "postgres")]
            Self::Pg(tx) => tx.commit().await.expect("commit"),
            #[cfg(feature = "mysql")]
            Self::My(tx) => tx.commit().await.expect("commit"),
        }
    }
}

/// Which row [`Held::select`] locks.
#[cfg(any(feature = "postgres", feature = "mysql"))]
#[derive(Clone, Copy)]
enum Row<'a> {
    Key(&'a StorageKey),
    User(&'a str),
}

/// How many statements on the store's table wait for a row lock.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn waiting(store: &SqlStore) -> i64 {
    let pattern = format!("%{}%", store.table());
    #[cfg(feature = "postgres")]
    if let Some(pool) = store.postgres_pool() {
        return sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
        )
        .bind(&pattern)
        .fetch_one(pool)
        .await
        .expect("pg_stat_activity");
    }
    // MariaDB does not always list a statement that waits for a row lock
    // while it plans (a primary-key lookup reads the row then) in
    // `innodb_trx` as `LOCK WAIT`: count the statements on the table that
    // have been running for 200 ms, as only a waiting one does. (Counting
    // every running statement let a short one of the first caller, before
    // the one that waits, pass for its wait: the second caller then queued
    // first, and CI saw the other order.)
    #[cfg(feature = "mysql")]
    if let Some(pool) = store.mysql_pool() {
        return sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.processlist WHERE command <> 'Sleep' AND info LIKE ? \
             AND info NOT LIKE '%processlist%' AND time_ms >= 200",
        )
        .bind(&pattern)
        .fetch_one(pool)
        .await
        .expect("processlist");
    }
    panic!("no pool");
}

/// Waits until `n` statements on the store's table wait for a lock.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn waiters(store: &SqlStore, n: i64) {
    for _ in 0..500 {
        let waiting = waiting(store).await;
        if waiting >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} statements never waited for the held row");
}

/// `SqlStore::postgres` does not ping a connection as it leaves the pool:
/// a connection whose server process died meanwhile fails its next
/// statement with `StoreError::Backend` (never "no such session": the layer
/// fails closed), is not put back, and the next call gets a new connection.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_dead_connections_fail_closed_then_recover() {
    let Some(pg) = pg::store().await else { return };
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let app = unique("sw_dead");
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = SqlStore::postgres(&format!("{url}{sep}application_name={app}"))
        .await
        .expect("connect")
        .with_table(pg.store.table())
        .expect("table");
    let admin = pg.store.postgres_pool().expect("postgres").clone();
    let kill = || async {
        // Let released connections finish their ping and go idle first.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let killed: Vec<bool> =
            sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1")
                .bind(&app)
                .fetch_all(&admin)
                .await
                .expect("terminate");
        assert!(!killed.is_empty() && killed.iter().all(|k| *k), "the store's connections are terminated");
        for _ in 0..100 {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(&app)
                .fetch_one(&admin)
                .await
                .expect("count");
            if left == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("terminated backends did not exit");
    };
    let recovers = |what: &'static str| {
        let (store, k) = (store.clone(), key());
        async move {
            for _ in 0..10 {
                if store.load(&k, SystemClock.now_ms()).await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the pool does not recover after a failed {what}");
        }
    };

    let k = key();
    assert!(store.create(&k, &record_at(SystemClock.now_ms()), SystemClock.now_ms()).await.expect("create"));
    kill().await;
    match store.load(&k, SystemClock.now_ms()).await {
        Err(StoreError::Backend(_)) => {}
        other => panic!("a load on a dead connection must fail, got {other:?}"),
    }
    recovers("load").await;
    assert!(store.load(&k, SystemClock.now_ms()).await.expect("load").is_some(), "the session is still there");

    kill().await;
    let now = SystemClock.now_ms();
    let mut c = ChangeSet::new(now, now + MINUTE);
    c.set("after", to_raw_value(&1).expect("json"));
    match store.apply(&k, &c, SystemClock.now_ms()).await {
        Err(StoreError::Backend(_)) => {}
        other => panic!("an apply on a dead connection must fail, got {other:?}"),
    }
    recovers("apply").await;
    assert!(store.apply(&k, &c, SystemClock.now_ms()).await.expect("apply"));
    assert_eq!(
        store.load(&k, SystemClock.now_ms()).await.expect("load").expect("live").data.get("after").map(|v| v.get()),
        Some("1")
    );
    store.postgres_pool().expect("postgres").close().await;
    pg.drop().await;
}

// ------------------------------------------------------------- MySQL/MariaDB

#[cfg(feature = "mysql")]
mod my {
    use super::*;

    pub(crate) fn url() -> String {
        std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
    }

    /// A migrated store on a table of its own; dropped with [`My::drop`].
    pub(crate) struct My {
        pub(crate) store: SqlStore,
    }

    impl My {
        pub(crate) async fn drop(self) {
            let pool = self.store.mysql_pool().expect("mysql");
            let t = self.store.table();
            let _ =
                sqlx::raw_sql(&format!("DROP TABLE IF EXISTS `{t}`, `{t}_locks`, `{t}_cutoffs`")).execute(pool).await;
        }
    }

    pub(crate) async fn store() -> Option<My> {
        let url = url();
        let err = match probe(&url).await {
            Err(e) => e,
            Ok(()) => match SqlStore::mysql(&url).await {
                Ok(store) => {
                    let store = store.with_table(&unique("sw_test")).expect("table name");
                    store.migrate().await.expect("migrate");
                    return Some(My { store });
                }
                Err(e) => e.to_string(),
            },
        };
        let host = url.rsplit('@').next().unwrap_or_default();
        if std::env::var("SESSIONWARE_REQUIRE_STORES").as_deref() == Ok("1") {
            panic!("mysql store tests: no server at {host}: {err}");
        }
        // Straight to stderr: the test harness captures `eprintln!`.
        let _ = writeln!(std::io::stderr(), "SKIPPED: mysql store tests (no server at {host}: {err})");
        None
    }

    /// One connection attempt, without the pool's retries.
    async fn probe(url: &str) -> Result<(), String> {
        use sqlx::Connection;
        match tokio::time::timeout(Duration::from_secs(3), sqlx::mysql::MySqlConnection::connect(url)).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connection timed out".into()),
        }
    }
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_store_passes_conformance() {
    let Some(my) = my::store().await else { return };
    conformance::run_all(Arc::new(my.store.clone())).await;
    my.drop().await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_rows_hold_the_digest_never_the_id() {
    let Some(my) = my::store().await else { return };
    let pool = my.store.mysql_pool().expect("mysql").clone();
    let id = SessionId::generate().expect("rng");
    assert!(my
        .store
        .create(&id.storage_key(), &record_at(SystemClock.now_ms()), SystemClock.now_ms())
        .await
        .expect("create"));
    let rows: Vec<(Vec<u8>, String)> = sqlx::query_as(&format!("SELECT id, record FROM `{}`", my.store.table()))
        .fetch_all(&pool)
        .await
        .expect("select");
    check_rows(&id, rows);
    my.store.migrate().await.expect("migrate is idempotent");
    my.drop().await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_delete_expired_and_skew() {
    let Some(my) = my::store().await else { return };
    delete_expired_removes_only_expired(&my.store).await;
    cleanup_forgets_cutoffs_after_keep_until(&my.store).await;
    own_clock_decides_expiry(&my.store).await;
    oversized_records_are_refused(&my.store).await;
    my.drop().await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_retired_rows_and_rotation_races() {
    let Some(my) = my::store().await else { return };
    retired_rows(&my.store).await;
    rotation_edges(&my.store).await;
    delete_chain_is_bounded(&my.store).await;
    revocations_on_retired_rows(&my.store).await;
    logout_racing_a_rotation_of_the_successor(&my.store, 30).await;
    writes_racing_a_rotation_land_in_the_successor(&my.store, 4).await;
    my.drop().await;
}

/// MySQL, deterministic: as on PostgreSQL, a revocation or a logout queued
/// behind a rotation (or ahead of it) on a locked row still ends the
/// session (locking reads see the row the rotation committed).
#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_revocations_and_logouts_queued_behind_a_rotation_end_it() {
    let Some(my) = my::store().await else { return };
    for rotation_first in [true, false] {
        for ending in [Ending::Handle, Ending::Others, Ending::Logout, Ending::LogoutRetired] {
            ending_queued_with_a_rotation(&my.store, ending, rotation_first).await;
        }
    }
    my.drop().await;
}

/// MySQL, deterministic: as on PostgreSQL, limited logins of one user take
/// turns on the user's lock, and each counts after the other committed.
#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_limited_logins_take_turns_on_the_users_lock() {
    let Some(my) = my::store().await else { return };
    for policy in [LimitPolicy::RefuseNew, LimitPolicy::EvictLeastRecent] {
        limited_logins_queued_on_the_users_lock(&my.store, policy).await;
    }
    my.drop().await;
}

/// The user and the handle are compared byte for byte: under MySQL's
/// default collations `'Alice' = 'alice '`, and a revocation of one user
/// must never end another's sessions.
#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_users_and_handles_compare_byte_for_byte() {
    let Some(my) = my::store().await else { return };
    let store = &my.store;
    let now = SystemClock.now_ms();
    let base = unique("Alice");
    let (upper, lower, padded) = (base.clone(), base.to_lowercase(), format!("{base} "));
    let mut keys = Vec::new();
    for user in [&upper, &lower, &padded] {
        let k = key();
        assert!(store.create(&k, &user_record_at(now, user), now).await.expect("create"));
        keys.push(k);
    }
    for user in [&upper, &lower, &padded] {
        assert_eq!(store.list_user(user, now, usize::MAX).await.expect("list_user").len(), 1, "{user:?}");
    }
    assert_eq!(store.delete_user(&lower, None, now).await.expect("delete_user"), 1);
    assert!(store.load(&keys[0], now).await.expect("load").is_some(), "another user's session survives");
    assert!(store.load(&keys[2], now).await.expect("load").is_some(), "another user's session survives");
    let handle = store.load(&keys[0], now).await.expect("load").expect("live").meta.handle;
    let twisted = handle.to_string().to_lowercase();
    if twisted != handle.to_string() {
        if let Some(twisted) = sessionware::SessionHandle::parse(&twisted) {
            assert!(!store.delete_by_handle(&upper, &twisted, now).await.expect("delete_by_handle"));
        }
    }
    assert!(store.delete_by_handle(&upper, &handle, now).await.expect("delete_by_handle"));
    my.drop().await;
}

// -------------------------------------------------------------------- SQLite

#[cfg(feature = "sqlite")]
struct Lite {
    store: SqlStore,
    path: PathBuf,
}

#[cfg(feature = "sqlite")]
impl Lite {
    async fn new() -> Self {
        let path = std::env::temp_dir().join(format!("{}.db", unique("sessionware-test")));
        let store = SqlStore::sqlite(path.to_str().expect("utf-8 temp dir"))
            .await
            .expect("open sqlite")
            .with_table(&unique("sw_test"))
            .expect("table name");
        store.migrate().await.expect("migrate");
        Self { store, path }
    }

    async fn drop(self) {
        if let Some(pool) = self.store.sqlite_pool() {
            pool.close().await;
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_conformance() {
    let lite = Lite::new().await;
    conformance::run_all(Arc::new(lite.store.clone())).await;
    lite.drop().await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_opens_urls_and_creates_missing_files() {
    let path = std::env::temp_dir().join(format!("{}.db", unique("sessionware-url")));
    let url = format!("sqlite://{}", path.display());
    let store = SqlStore::sqlite(&url).await.expect("open");
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("migrate is idempotent");
    assert!(path.exists());
    let k = key();
    assert!(store.create(&k, &record_at(SystemClock.now_ms()), SystemClock.now_ms()).await.expect("create"));
    assert!(store.load(&k, SystemClock.now_ms()).await.expect("load").is_some());
    if let Some(pool) = store.sqlite_pool() {
        pool.close().await;
    }
    Lite { store, path }.drop().await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_rows_hold_the_digest_never_the_id() {
    let lite = Lite::new().await;
    let pool = lite.store.sqlite_pool().expect("sqlite").clone();
    let id = SessionId::generate().expect("rng");
    assert!(lite
        .store
        .create(&id.storage_key(), &record_at(SystemClock.now_ms()), SystemClock.now_ms())
        .await
        .expect("create"));
    let rows: Vec<(Vec<u8>, String)> = sqlx::query_as(&format!("SELECT id, record FROM \"{}\"", lite.store.table()))
        .fetch_all(&pool)
        .await
        .expect("select");
    check_rows(&id, rows);
    lite.drop().await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_delete_expired_and_skew() {
    let lite = Lite::new().await;
    delete_expired_removes_only_expired(&lite.store).await;
    cleanup_forgets_cutoffs_after_keep_until(&lite.store).await;
    own_clock_decides_expiry(&lite.store).await;
    oversized_records_are_refused(&lite.store).await;
    lite.drop().await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_retired_rows_and_rotation_races() {
    let lite = Lite::new().await;
    retired_rows(&lite.store).await;
    rotation_edges(&lite.store).await;
    delete_chain_is_bounded(&lite.store).await;
    revocations_on_retired_rows(&lite.store).await;
    logout_racing_a_rotation_of_the_successor(&lite.store, 30).await;
    writes_racing_a_rotation_land_in_the_successor(&lite.store, 4).await;
    lite.drop().await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn cleanup_task_survives_errors() {
    let lite = Lite::new().await;
    let store = lite.store.clone();
    let pool = store.sqlite_pool().expect("sqlite").clone();
    // The table disappears: every run fails, and the task keeps going.
    sqlx::raw_sql(&format!("DROP TABLE \"{}\"", store.table())).execute(&pool).await.expect("drop");
    let task = store.spawn_cleanup(Duration::from_millis(20), SystemClock);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!task.is_finished(), "the cleanup task stopped after an error");
    // It comes back: the next runs remove expired rows again.
    store.migrate().await.expect("migrate");
    let expired = key();
    let live = key();
    let past = SystemClock.now_ms() - 200 * MINUTE;
    store.create(&expired, &record_at(past), SystemClock.now_ms()).await.expect("create");
    store.create(&live, &record_at(SystemClock.now_ms()), SystemClock.now_ms()).await.expect("create");
    let table = store.table().to_string();
    let mut left = i64::MAX;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\"")).fetch_one(&pool).await.expect("count");
        if left == 1 {
            break;
        }
    }
    assert_eq!(left, 1, "the cleanup task did not remove the expired row");
    assert!(store.load(&live, SystemClock.now_ms()).await.expect("load").is_some());
    task.abort();
    lite.drop().await;
}

// ------------------------------------------------------------ shared checks

fn check_rows(id: &SessionId, rows: Vec<(Vec<u8>, String)>) {
    let secret = id.expose_secret();
    assert_eq!(rows.len(), 1);
    for (raw_id, record) in rows {
        assert_eq!(raw_id.as_slice(), id.storage_key().as_bytes(), "rows are keyed by the digest");
        assert!(!String::from_utf8_lossy(&raw_id).contains(&secret));
        assert_ne!(raw_id.as_slice(), id.as_bytes().as_slice(), "a row is keyed by the raw session ID");
        assert!(!record.contains(&secret), "a row holds the raw session ID");
        serde_json::from_str::<serde_json::Value>(&record).expect("the record column is JSON");
    }
}

/// `delete_expired` forgets a cutoff once past its `keep_until`, and not
/// before: until then it keeps ending the sessions it ended.
async fn cleanup_forgets_cutoffs_after_keep_until(store: &SqlStore) {
    use sessionware::store::{Cutoffs, Scope};
    let now = SystemClock.now_ms();
    let user = format!("cleanup-cut-{:x}", rand::random::<u64>());
    let key = SessionId::generate().expect("rng").storage_key();
    let mut record = Record::new(Metadata::new(now, 60_000, 3_600_000));
    record.meta.auth = Some(Auth::new(user.as_str(), now - 1));
    assert!(store.create(&key, &record, now).await.expect("create"));
    store.cut(Scope::User(&user), now, now + 1_000, now).await.expect("cut");
    store.delete_expired(now + 999).await.expect("cleanup");
    assert_eq!(store.cutoff(Some(&user), now).await.expect("cutoff").user, now, "kept until keep_until");
    assert!(store.load(&key, now).await.expect("load").is_none());
    store.delete_expired(now + 1_000).await.expect("cleanup");
    assert_eq!(store.cutoff(Some(&user), now).await.expect("cutoff").user, 0, "forgotten after keep_until");
    store.delete(&key, now).await.expect("delete");
}

async fn delete_expired_removes_only_expired(store: &SqlStore) {
    let now = SystemClock.now_ms();
    let live: Vec<_> = (0..5).map(|_| key()).collect();
    let expired: Vec<_> = (0..25).map(|_| key()).collect();
    for k in &live {
        assert!(store.create(k, &record_at(now), SystemClock.now_ms()).await.expect("create"));
    }
    for k in &expired {
        store.create(k, &record_at(now - 200 * MINUTE), SystemClock.now_ms()).await.expect("create");
    }
    // Small batches: several statements.
    let removed =
        store.clone().with_cleanup_batch(7).delete_expired(SystemClock.now_ms()).await.expect("delete_expired");
    assert_eq!(removed, 25);
    assert_eq!(store.delete_expired(SystemClock.now_ms()).await.expect("delete_expired"), 0);
    for k in &live {
        assert!(store.load(k, SystemClock.now_ms()).await.expect("load").is_some(), "a live session was cleaned up");
    }
    for k in live.iter().chain(&expired) {
        store.delete(k, SystemClock.now_ms()).await.expect("delete");
    }
}

async fn own_clock_decides_expiry(store: &SqlStore) {
    let k = key();
    let record = record_at(SystemClock.now_ms());
    assert!(store.create(&k, &record, SystemClock.now_ms()).await.expect("create"));
    let later = record.meta.expires_at;
    assert!(store.load(&k, later).await.expect("load").is_none());
    assert!(!store.apply(&k, &ChangeSet::new(0, u64::MAX), later).await.expect("apply"));
    assert!(!store.touch(&k, later, u64::MAX).await.expect("touch"));
    // An expired row may be replaced by `create`; a live one never.
    let mut replacement = record_at(record.meta.expires_at);
    replacement.data.insert("new", &to_raw_value(&true).expect("json"));
    assert!(!store.create(&k, &replacement, SystemClock.now_ms()).await.expect("create"));
    assert!(store.create(&k, &replacement, later).await.expect("create"));
    let loaded = store.load(&k, later).await.expect("load").expect("replaced");
    assert_eq!(loaded.data, replacement.data);
    // Touch moves only the time columns, capped at the absolute deadline.
    let t = record.meta.expires_at + 1;
    assert!(store.touch(&k, t, u64::MAX).await.expect("touch"));
    let touched = store.load(&k, later).await.expect("load").expect("live");
    assert_eq!(touched.meta.last_seen, t);
    assert_eq!(touched.meta.expires_at, replacement.meta.absolute_deadline);
    assert_eq!(touched.data, replacement.data);
    store.delete(&k, SystemClock.now_ms()).await.expect("delete");
}

async fn oversized_records_are_refused(store: &SqlStore) {
    let small = store.clone().with_max_record_bytes(1_000);
    let k = key();
    let mut record = record_at(SystemClock.now_ms());
    record.data.insert("big", &to_raw_value(&"x".repeat(2_000)).expect("json"));
    assert!(matches!(small.create(&k, &record, SystemClock.now_ms()).await, Err(StoreError::Codec(_))));
    assert!(store.create(&k, &record, SystemClock.now_ms()).await.expect("create"));
    assert!(matches!(small.load(&k, SystemClock.now_ms()).await, Err(StoreError::Codec(_))));
    // A change set that would grow a record past the cap is refused, and the
    // row stays as it was.
    let k2 = key();
    assert!(small.create(&k2, &record_at(SystemClock.now_ms()), SystemClock.now_ms()).await.expect("create"));
    let now = SystemClock.now_ms();
    let mut grow = ChangeSet::new(now, now + MINUTE);
    grow.set("big", to_raw_value(&"x".repeat(2_000)).expect("json"));
    assert!(matches!(small.apply(&k2, &grow, SystemClock.now_ms()).await, Err(StoreError::Codec(_))));
    assert!(small.load(&k2, SystemClock.now_ms()).await.expect("load").expect("live").data.get("big").is_none());
    store.delete(&k, SystemClock.now_ms()).await.expect("delete");
    store.delete(&k2, SystemClock.now_ms()).await.expect("delete");
}

/// The columns of the row under `key`: `expires_at, absolute_deadline,
/// user_id, handle, record`.
type RawRow = (i64, i64, Option<String>, String, String);

async fn raw_row(store: &SqlStore, key: &StorageKey) -> Option<RawRow> {
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(unused_variables))]
    let sql = format!(
        "SELECT expires_at, absolute_deadline, user_id, handle, record FROM \"{}\" WHERE id = $1",
        store.table()
    );
    #[cfg(feature = "postgres")]
    if let Some(pool) = store.postgres_pool() {
        return sqlx::query_as(&sql).bind(key.as_bytes().as_slice()).fetch_optional(pool).await.expect("select");
    }
    #[cfg(feature = "sqlite")]
    if let Some(pool) = store.sqlite_pool() {
        let sql = sql.replace('$', "?");
        return sqlx::query_as(&sql).bind(key.as_bytes().as_slice()).fetch_optional(pool).await.expect("select");
    }
    // The user and the handle are binary strings there.
    #[cfg(feature = "mysql")]
    if let Some(pool) = store.mysql_pool() {
        let sql = format!(
            "SELECT expires_at, absolute_deadline, CAST(user_id AS CHAR), CAST(handle AS CHAR), record FROM `{}` \
             WHERE id = ?",
            store.table()
        );
        return sqlx::query_as(&sql).bind(key.as_bytes().as_slice()).fetch_optional(pool).await.expect("select");
    }
    panic!("no pool");
}

fn plain_rotation(now: u64) -> Rotation {
    Rotation::new(now, ChangeSet::new(now, now + 30 * MINUTE))
}

fn user_record_at(now: u64, user: &str) -> Record {
    let mut r = record_at(now);
    r.meta.auth = Some(Auth::new(user, now));
    r
}

/// The retired row: a pointer in the record text, the successor's user and
/// handle (never listed: an absolute deadline of 0 marks it), and
/// `expires_at` = `until`; a reader of an earlier version takes it for an
/// expired session. It blocks `create` and `rotate` onto its key until
/// `until`, then is replaced or cleaned up.
async fn retired_rows(store: &SqlStore) {
    let now = SystemClock.now_ms();
    let user = unique("retired");
    let (old, new) = (key(), key());
    let record = user_record_at(now, &user);
    assert!(store.create(&old, &record, SystemClock.now_ms()).await.expect("create"));
    let mut rotation = plain_rotation(now);
    rotation.overlap_until = now + 30_000;
    assert_eq!(store.rotate(&old, &new, &rotation).await.expect("rotate"), Rotated::Done);
    let retired = rotation.retired(new);

    let (expires_at, deadline, user_id, handle, text) = raw_row(store, &old).await.expect("the retired row");
    assert_eq!(expires_at, i64::try_from(retired.until).expect("time"));
    assert_eq!(deadline, 0, "a retired row has no absolute deadline: touch never matches it");
    assert_eq!(user_id.as_deref(), Some(user.as_str()), "a retired row carries its successor's user");
    assert_eq!(handle, record.meta.handle.to_string(), "and its handle");
    let before: Record = serde_json::from_str(&text).expect("an earlier version reads a record");
    assert!(before.is_expired(now) && before.data.is_empty(), "an earlier version sees an expired session");
    match store.lookup(&old, SystemClock.now_ms()).await.expect("lookup") {
        Some(Stored::Retired(r)) => assert_eq!(r, retired),
        other => panic!("expected the pointer, found {other:?}"),
    }
    let (_, _, user_id, handle, _) = raw_row(store, &new).await.expect("the successor's row");
    assert_eq!(user_id.as_deref(), Some(user.as_str()), "the successor is indexed under its user");
    assert_eq!(handle, record.meta.handle.to_string());
    assert_eq!(store.list_user(&user, SystemClock.now_ms(), usize::MAX).await.expect("list_user").len(), 1);

    // Until `until`, nothing is created over it.
    let other = key();
    assert!(store.create(&other, &record_at(now), SystemClock.now_ms()).await.expect("create"));
    assert_eq!(store.rotate(&other, &old, &plain_rotation(now)).await.expect("rotate"), Rotated::Taken);
    assert!(!store.create(&old, &record_at(now), SystemClock.now_ms()).await.expect("create"));
    // From `until` on, it is gone: a rotation may replace it, and cleanup removes it.
    let later = retired.until;
    assert!(store.lookup(&old, later).await.expect("lookup").is_none());
    assert_eq!(store.rotate(&old, &key(), &plain_rotation(retired.until)).await.expect("rotate"), Rotated::Gone);
    assert_eq!(store.rotate(&other, &old, &plain_rotation(retired.until)).await.expect("rotate"), Rotated::Done);
    assert!(matches!(store.lookup(&old, later).await.expect("lookup"), Some(Stored::Live(_))));
    let (successor, gone) = (key(), key());
    assert_eq!(store.rotate(&old, &successor, &plain_rotation(retired.until)).await.expect("rotate"), Rotated::Done);
    assert!(store.create(&gone, &record_at(now), SystemClock.now_ms()).await.expect("create"));
    assert_eq!(store.rotate(&gone, &key(), &plain_rotation(now)).await.expect("rotate"), Rotated::Done);
    let much_later = retired.until + 2 * MINUTE + 1;
    store.delete_expired(much_later).await.expect("delete_expired");
    assert!(raw_row(store, &gone).await.is_none(), "cleanup removes a retired row after its until");
    for k in [&old, &new, &successor, &other] {
        store.delete(k, SystemClock.now_ms()).await.expect("delete");
    }
}

/// `Taken` is answered before a refused successor; an expired old record,
/// an unknown key and `old == new` create nothing.
async fn rotation_edges(store: &SqlStore) {
    let now = SystemClock.now_ms();
    let (old, taken) = (key(), key());
    assert!(store.create(&old, &record_at(now), SystemClock.now_ms()).await.expect("create"));
    assert!(store.create(&taken, &record_at(now), SystemClock.now_ms()).await.expect("create"));
    let mut big = ChangeSet::new(now, now + 30 * MINUTE);
    big.set("big", to_raw_value(&"x".repeat(100)).expect("json"));
    big.max_data_bytes = 50;
    let big = Rotation::new(now, big);
    assert_eq!(store.rotate(&old, &taken, &big).await.expect("rotate"), Rotated::Taken);
    assert!(matches!(store.rotate(&old, &key(), &big).await, Err(StoreError::TooLarge)));
    // The record size cap of the store refuses a successor too, and changes nothing.
    let small = store.clone().with_max_record_bytes(300);
    let mut long = ChangeSet::new(now, now + 30 * MINUTE);
    long.set("long", to_raw_value(&"x".repeat(400)).expect("json"));
    let fresh = key();
    assert!(matches!(small.rotate(&old, &fresh, &Rotation::new(now, long)).await, Err(StoreError::Codec(_))));
    assert!(store.lookup(&fresh, SystemClock.now_ms()).await.expect("lookup").is_none());
    assert_eq!(store.rotate(&old, &old, &plain_rotation(now)).await.expect("rotate"), Rotated::Taken);
    assert_eq!(store.rotate(&key(), &key(), &plain_rotation(now)).await.expect("rotate"), Rotated::Gone);
    let expired = now + 30 * MINUTE;
    assert_eq!(store.rotate(&old, &fresh, &plain_rotation(expired)).await.expect("rotate"), Rotated::Gone);
    assert!(
        matches!(store.lookup(&old, SystemClock.now_ms()).await.expect("lookup"), Some(Stored::Live(_))),
        "nothing changed"
    );
    store.delete(&old, SystemClock.now_ms()).await.expect("delete");
    store.delete(&taken, SystemClock.now_ms()).await.expect("delete");
}

/// `delete` follows at most 16 rows of a chain of retired keys.
async fn delete_chain_is_bounded(store: &SqlStore) {
    let now = SystemClock.now_ms();
    let keys: Vec<StorageKey> = (0..18).map(|_| key()).collect();
    assert!(store.create(&keys[0], &record_at(now), SystemClock.now_ms()).await.expect("create"));
    for pair in keys.windows(2) {
        assert_eq!(store.rotate(&pair[0], &pair[1], &plain_rotation(now)).await.expect("rotate"), Rotated::Done);
    }
    store.delete(&keys[0], SystemClock.now_ms()).await.expect("delete");
    for k in &keys[..16] {
        assert!(raw_row(store, k).await.is_none(), "the first 16 rows of the chain are deleted");
    }
    assert!(matches!(store.lookup(&keys[16], SystemClock.now_ms()).await.expect("lookup"), Some(Stored::Retired(_))));
    assert!(matches!(store.lookup(&keys[17], SystemClock.now_ms()).await.expect("lookup"), Some(Stored::Live(_))));
    store.delete(&keys[16], SystemClock.now_ms()).await.expect("delete");
    assert!(raw_row(store, &keys[17]).await.is_none());
}

/// Revocations on retired rows: a retired row carries its successor's user
/// and handle, goes with the user's sessions, is followed, and counts for
/// nothing; the kept session's pointer stays; a session that a login gave
/// to another user is not revoked; a stale pointer (expired at once, its
/// successor logged out) goes and counts for nothing; a chain is followed.
async fn revocations_on_retired_rows(store: &SqlStore) {
    let now = SystemClock.now_ms();
    let (user, other) = (unique("revoker"), unique("taker"));
    // The kept session, renewed: its pointer carries the kept handle.
    let (keep, keep2) = (key(), key());
    let kept = user_record_at(now, &user);
    assert!(store.create(&keep, &kept, SystemClock.now_ms()).await.expect("create"));
    assert_eq!(store.rotate(&keep, &keep2, &plain_rotation(now)).await.expect("rotate"), Rotated::Done);
    // A chain a -> b -> c.
    let (a, b, c) = (key(), key(), key());
    assert!(store.create(&a, &user_record_at(now, &user), SystemClock.now_ms()).await.expect("create"));
    assert_eq!(store.rotate(&a, &b, &plain_rotation(now)).await.expect("rotate"), Rotated::Done);
    assert_eq!(store.rotate(&b, &c, &plain_rotation(now)).await.expect("rotate"), Rotated::Done);
    // A session that a login gave to another user.
    let (d, d2) = (key(), key());
    assert!(store.create(&d, &user_record_at(now, &user), SystemClock.now_ms()).await.expect("create"));
    let mut login = plain_rotation(now);
    login.login = Some(Login::new(Auth::new(other.clone(), now), now + 60 * MINUTE));
    assert_eq!(store.rotate(&d, &d2, &login).await.expect("rotate"), Rotated::Done);
    assert_eq!(raw_row(store, &d).await.expect("row").2.as_deref(), Some(other.as_str()), "the successor's user");
    // A stale pointer: expired at once, its successor logged out.
    let (e, e2) = (key(), key());
    assert!(store.create(&e, &user_record_at(now, &user), SystemClock.now_ms()).await.expect("create"));
    let mut dead = plain_rotation(now);
    dead.retired_until = now;
    assert_eq!(store.rotate(&e, &e2, &dead).await.expect("rotate"), Rotated::Done);
    store.delete(&e2, SystemClock.now_ms()).await.expect("delete");
    assert!(raw_row(store, &e).await.is_some(), "the stale pointer waits for cleanup");

    assert_eq!(
        store.list_user(&user, SystemClock.now_ms(), usize::MAX).await.expect("list_user").len(),
        2,
        "pointers are never listed"
    );
    let revoked = store.delete_user(&user, Some(&kept.meta.handle), SystemClock.now_ms()).await.expect("delete_user");
    assert_eq!(revoked, 1, "one live session ended (the chain); pointers count for nothing");
    for k in [&a, &b, &c, &e] {
        assert!(raw_row(store, k).await.is_none(), "the user's rows are gone");
    }
    assert!(
        matches!(store.lookup(&keep, SystemClock.now_ms()).await.expect("lookup"), Some(Stored::Retired(_))),
        "the kept pointer stays"
    );
    assert!(store.load(&keep2, SystemClock.now_ms()).await.expect("load").is_some(), "the kept session stays");
    assert!(store.load(&d2, SystemClock.now_ms()).await.expect("load").is_some(), "another user's session stays");
    assert_eq!(store.list_user(&other, SystemClock.now_ms(), usize::MAX).await.expect("list_user").len(), 1);

    // By handle, through a pointer: the live session counts once.
    let (f, f2) = (key(), key());
    let record = user_record_at(now, &user);
    assert!(store.create(&f, &record, SystemClock.now_ms()).await.expect("create"));
    assert_eq!(store.rotate(&f, &f2, &plain_rotation(now)).await.expect("rotate"), Rotated::Done);
    assert!(store.delete_by_handle(&user, &record.meta.handle, SystemClock.now_ms()).await.expect("delete_by_handle"));
    assert!(raw_row(store, &f).await.is_none() && raw_row(store, &f2).await.is_none());
    assert!(
        !store.delete_by_handle(&user, &record.meta.handle, SystemClock.now_ms()).await.expect("delete_by_handle"),
        "nothing left"
    );
    assert!(
        !store.delete_by_handle(&other, &kept.meta.handle, SystemClock.now_ms()).await.expect("delete_by_handle"),
        "not theirs"
    );
    assert_eq!(
        store.delete_user(&user, None, SystemClock.now_ms()).await.expect("delete_user"),
        1,
        "the kept session, at last"
    );
    assert!(raw_row(store, &keep).await.is_none() && raw_row(store, &keep2).await.is_none());
    store.delete(&d, SystemClock.now_ms()).await.expect("delete");
    assert!(
        store.load(&d2, SystemClock.now_ms()).await.expect("load").is_none(),
        "a logout on the retired key ended its unused successor"
    );
}

/// A logout on a retired key while its successor is being rotated ends the
/// session, whichever commits first.
async fn logout_racing_a_rotation_of_the_successor(store: &SqlStore, rounds: usize) {
    let user = unique("race");
    for _ in 0..rounds {
        let now = SystemClock.now_ms();
        let (a, b, c) = (key(), key(), key());
        assert!(store.create(&a, &user_record_at(now, &user), SystemClock.now_ms()).await.expect("create"));
        assert_eq!(store.rotate(&a, &b, &plain_rotation(now)).await.expect("rotate"), Rotated::Done);
        let (s1, s2) = (store.clone(), store.clone());
        let logout = tokio::spawn(async move { s1.delete(&a, SystemClock.now_ms()).await });
        let rotate = tokio::spawn(async move { s2.rotate(&b, &c, &plain_rotation(now)).await });
        logout.await.expect("task").expect("delete");
        let rotated = rotate.await.expect("task").expect("rotate");
        assert!(matches!(rotated, Rotated::Done | Rotated::Gone), "{rotated:?}");
        for k in [&a, &b, &c] {
            assert!(
                store.load(k, SystemClock.now_ms()).await.expect("load").is_none(),
                "a session survived its logout ({rotated:?})"
            );
        }
        assert!(store.list_user(&user, SystemClock.now_ms(), usize::MAX).await.expect("list_user").is_empty());
        for k in [&a, &b, &c] {
            store.delete(k, SystemClock.now_ms()).await.expect("delete");
        }
    }
}

/// Writes that race a rotation either land before it (and are in the
/// successor) or find the key retired (and write nothing): each writer
/// writes new keys until one of its writes is refused.
async fn writes_racing_a_rotation_land_in_the_successor(store: &SqlStore, writers: usize) {
    let now = SystemClock.now_ms();
    let (old, new) = (key(), key());
    assert!(store.create(&old, &record_at(now), SystemClock.now_ms()).await.expect("create"));
    let tasks: Vec<_> = (0..writers)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut landed = Vec::new();
                for n in 0..1_000 {
                    let name = format!("w{i}_{n}");
                    let mut c = ChangeSet::new(now, now + 30 * MINUTE);
                    c.set(&name, to_raw_value(&n).expect("json"));
                    if !store.apply(&old, &c, SystemClock.now_ms()).await.expect("apply") {
                        break;
                    }
                    landed.push(name);
                }
                landed
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(store.rotate(&old, &new, &plain_rotation(now)).await.expect("rotate"), Rotated::Done);
    let mut landed = Vec::new();
    for t in tasks {
        landed.extend(t.await.expect("task"));
    }
    assert!(!landed.is_empty(), "no write landed before the rotation");
    let data = store.load(&new, SystemClock.now_ms()).await.expect("load").expect("the successor").data;
    for name in &landed {
        assert!(data.get(name).is_some(), "an acknowledged write {name} is missing from the successor");
    }
    assert_eq!(data.len(), landed.len() + 1, "only acknowledged writes (and the seed) are in the successor");
    store.delete(&old, SystemClock.now_ms()).await.expect("delete");
}

// ------------------------------------------------ timings (ignored by default)

#[cfg(any(feature = "postgres", feature = "sqlite"))]
const BULK_RECORD: &str = r#"{"v":1,"m":{"created_at":1000,"last_seen":1000,"absolute_deadline":2000,"expires_at":1500},"d":{"cart":[1,2,3],"theme":"dark","user_pref":{"lang":"en","tz":"UTC"}}}"#;

/// `cargo test --release --features postgres --test store_sql -- --ignored --nocapture postgres_delete_expired_1m`
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run with --ignored --nocapture"]
async fn postgres_delete_expired_1m() {
    let Some(pg) = pg::store().await else { return };
    let pool = pg.store.postgres_pool().expect("postgres").clone();
    let table = pg.store.table().to_string();
    for (label, batch) in [("batches of 10,000", 10_000u32), ("one statement", 0)] {
        let started = std::time::Instant::now();
        sqlx::query(&format!(
            "INSERT INTO \"{table}\" (id, expires_at, absolute_deadline, last_seen, handle, record) \
             SELECT sha256(int8send(g)), 1500, 2000, 1000, 'AAAAAAAAAAAAAAAAAAAAAA', $1 \
             FROM generate_series(1, 1000000) g"
        ))
        .bind(BULK_RECORD)
        .execute(&pool)
        .await
        .expect("bulk insert");
        sqlx::raw_sql(&format!("VACUUM ANALYZE \"{table}\"")).execute(&pool).await.expect("analyze");
        let _ = writeln!(std::io::stderr(), "postgres: inserted 1,000,000 expired rows in {:.2?}", started.elapsed());
        let store = pg.store.clone().with_cleanup_batch(batch);
        let started = std::time::Instant::now();
        let removed = store.delete_expired(SystemClock.now_ms()).await.expect("delete_expired");
        let elapsed = started.elapsed();
        assert_eq!(removed, 1_000_000);
        let _ =
            writeln!(std::io::stderr(), "postgres: delete_expired ({label}) removed {removed} rows in {elapsed:.2?}");
    }
    pg.drop().await;
}

/// `cargo test --release --features sqlite --test store_sql -- --ignored --nocapture sqlite_delete_expired_1m`
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run with --ignored --nocapture"]
async fn sqlite_delete_expired_1m() {
    let lite = Lite::new().await;
    let pool = lite.store.sqlite_pool().expect("sqlite").clone();
    let table = lite.store.table().to_string();
    for (label, batch) in [("batches of 10,000", 10_000u32), ("one statement", 0)] {
        let started = std::time::Instant::now();
        sqlx::query(&format!(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1000000) \
             INSERT INTO \"{table}\" (id, expires_at, absolute_deadline, last_seen, handle, record) \
             SELECT randomblob(32), 1500, 2000, 1000, 'AAAAAAAAAAAAAAAAAAAAAA', ?1 FROM s"
        ))
        .bind(BULK_RECORD)
        .execute(&pool)
        .await
        .expect("bulk insert");
        let _ = writeln!(std::io::stderr(), "sqlite: inserted 1,000,000 expired rows in {:.2?}", started.elapsed());
        let store = lite.store.clone().with_cleanup_batch(batch);
        let started = std::time::Instant::now();
        let removed = store.delete_expired(SystemClock.now_ms()).await.expect("delete_expired");
        let elapsed = started.elapsed();
        assert_eq!(removed, 1_000_000);
        let _ = writeln!(std::io::stderr(), "sqlite: delete_expired ({label}) removed {removed} rows in {elapsed:.2?}");
    }
    lite.drop().await;
}

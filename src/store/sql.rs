//! [`SqlStore`]: sessions in PostgreSQL or SQLite (through `sqlx`).
//!
//! # Schema
//!
//! One row per session (see [`SqlStore::migration_sql`]; the default table is
//! `sessionware_sessions`, and `migrations/` holds the same text as files):
//!
//! | column | type | what |
//! |---|---|---|
//! | `id` | `BYTEA` / `BLOB`, primary key | the 32-byte SHA-256 digest of the session ID, never the ID |
//! | `expires_at` | `BIGINT`, indexed | ms since the Unix epoch: the earlier of the idle and absolute deadlines |
//! | `absolute_deadline` | `BIGINT` | ms since the Unix epoch |
//! | `last_seen` | `BIGINT` | ms since the Unix epoch |
//! | `user_id` | `TEXT`, indexed, `NULL` when anonymous | the logged-in user (the per-user index) |
//! | `handle` | `TEXT` | the session's public [`SessionHandle`] |
//! | `record` | `TEXT` | the JSON of the [`Record`], byte for byte |
//!
//! The time columns are authoritative: `touch` updates only them, and a loaded
//! record takes its times from them. Times past `i64::MAX` are stored as
//! `i64::MAX`.
//!
//! # Retired keys
//!
//! A key that [`rotate`](SessionStore::rotate) retired keeps its row, turned
//! into the [`Retired`] pointer, with no schema change (no migration: a table
//! created by an earlier version is used as it is):
//!
//! - `record` holds `{"r":{<the Retired pointer>},"v":1,"m":{...},"d":{}}`.
//!   A record's JSON always starts with `{"v":`, so the `{"r":` prefix tells
//!   a pointer apart at no cost on the hot paths (`load`, `apply` read the
//!   same row as before). The rest is an empty record that expired at 0: a
//!   process still on an earlier version reads the row as an expired
//!   session (no session, and no decoding error) during a rolling upgrade.
//! - `absolute_deadline` is 0: this marks a pointer in SQL. `touch` (and
//!   any expiry check) never takes the row for a session, and every query on
//!   sessions leaves it out (`list_user`: `absolute_deadline <> 0`; the
//!   counts of the revocations and of cleanup count only session rows).
//! - `user_id` and `handle` are the **successor's** (for a rotation without
//!   a login, the old row's): a revocation that found the old row as a
//!   session of the user and waited for the rotation's lock still matches
//!   the row the rotation left, and follows it (see *Revocations* below).
//!   An earlier version's `delete_user` deletes such rows too (and counts
//!   them) during a rolling upgrade.
//! - `expires_at` is the pointer's [`until`](Retired::until): `load` returns
//!   it until then, `create` and `rotate` do not overwrite it until then, and
//!   cleanup removes it afterwards like an expired session.
//!
//! # Logout on a retired key
//!
//! [`delete`](SessionStore::delete) follows a retired pointer only while it
//! is live (`expires_at`, its `until`, after the store's clock), from pointer
//! to pointer (at most 16 rows visited); the pointers it visits are deleted,
//! live or not. The live session at the end is deleted only if its
//! `predecessor` (in the record's JSON) is the last pointer followed: a
//! successor that its client has used (the layer's `close_overlap` cleared
//! the predecessor) survives a logout through the old ID, and so does any
//! session once the pointer expired.
//!
//! # Revocations
//!
//! `delete_user` and `delete_by_handle` must end a session even when a
//! rotation moves it to a new key while they run. A single `DELETE ... WHERE
//! user_id = ?` cannot: in PostgreSQL it sees the rows of its snapshot, so
//! it finds the old row, waits for the rotation's lock, and never sees the
//! successor, inserted after its snapshot. So a revocation is one
//! transaction (PostgreSQL: `READ COMMITTED`, whatever the server's default;
//! SQLite: `BEGIN IMMEDIATE`):
//!
//! 1. one `DELETE ... RETURNING` of the rows that carry the user (and the
//!    handle, or not the handle to keep): the live sessions, which it
//!    counts, and the retired pointers, whatever their `until`;
//! 2. for each pointer deleted whose successor step 1 did not delete, one
//!    `DELETE ... RETURNING` of the successor's row under the same
//!    conditions (user, handle), a statement of its own, that sees what
//!    committed before it; a pointer there is followed in turn (at most 16
//!    hops). Its live session is counted.
//!
//! Every row deleted matches the revocation when it is deleted: a session
//! that became another user's by a login is not ended. A rotation racing
//! the revocation either commits before step 1's snapshot (step 1 sees the
//! successor), or step 1 reaches the old row after the rotation locked it:
//! PostgreSQL waits for the rotation, then checks step 1's conditions again
//! on the row the rotation left (READ COMMITTED), which still matches
//! (same user and handle, a pointer), deletes it, and step 2 deletes the
//! successor. A rotation that locks the row after step 1 finds it deleted
//! and creates nothing. In SQLite, writers run one at a time, so step 1
//! sees either the rotation's result or the session as it was.
//!
//! Two such transactions (or one and a logout's chain) may lock shared rows
//! in different orders; PostgreSQL then aborts one of them (a deadlock,
//! SQLSTATE `40P01`), which changed nothing and runs again (3 attempts).
//!
//! # Operations
//!
//! Round trips are to the server (PostgreSQL); in SQLite each is a call
//! into the library on the connection's thread.
//!
//! - `create`: `INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE expires_at <= now`,
//!   so a live row (a live retired pointer included) is never overwritten
//!   and an expired one may be replaced. 1 statement.
//! - `load` / `lookup`: `SELECT ... WHERE id = ? AND expires_at > now`; the
//!   row is a record or a pointer. 1 statement.
//! - `apply`: the record is merged in Rust with [`Record::try_apply`] (which
//!   refuses a merged record past [`ChangeSet::max_data_bytes`] with
//!   [`StoreError::TooLarge`], writing nothing) and written back with one
//!   `UPDATE`, only if the row exists, is not expired and is no pointer. In
//!   PostgreSQL, without a transaction, as a compare-and-set on the row
//!   version: `SELECT ..., xmin` then `UPDATE ... WHERE id = ? AND xmin = ?`
//!   (2 statements), read again when another write got in between, and after
//!   3 such attempts one transaction that locks the row (`BEGIN` + `SELECT
//!   ... FOR UPDATE` + `UPDATE` + `COMMIT`). In SQLite, always the
//!   transaction (`BEGIN IMMEDIATE` + `SELECT` + `UPDATE` + `COMMIT`). Both
//!   run on one pooled connection.
//! - `touch`: one `UPDATE` of `last_seen` and `expires_at` (capped at
//!   `absolute_deadline` in SQL), only on a live row (never a pointer).
//! - `rotate`: one transaction on one pooled connection: `BEGIN` (SQLite:
//!   `BEGIN IMMEDIATE`, the write lock), `SELECT ... FOR UPDATE` of the old
//!   row (a live record, or the answer is [`Rotated::Gone`] /
//!   [`Rotated::Retired`]), the successor built in Rust by
//!   [`Rotation::successor`] from that row, `INSERT` of the successor with
//!   the statement of `create` (a live row or live pointer there:
//!   [`Rotated::Taken`]), an `UPDATE` that turns the old row into the
//!   pointer, `COMMIT`: 5 round trips. `Gone` and `Retired` take 3 (`BEGIN`,
//!   `SELECT`, `ROLLBACK`), `Taken` 4; a successor refused by the data cap
//!   (or the record size cap) takes 4 too: a `SELECT` of the new key
//!   answers `Taken` first, as the contract orders it.
//! - `delete`: `DELETE ... WHERE id = ? AND absolute_deadline <> 0`: a
//!   session's row goes in 1 statement (in PostgreSQL, a rotation that
//!   commits while the statement waits for the row leaves a pointer, which
//!   the statement then skips). When nothing was deleted (the key is absent
//!   or retired), one transaction follows the chain (see *Logout on a
//!   retired key*): `BEGIN`, `DELETE ... RETURNING` of the key's row, then
//!   per row followed `SELECT ... FOR UPDATE` (which waits for a rotation of
//!   it under way, and reads its result) and, if it goes, `DELETE`;
//!   `COMMIT`. An absent key or an expired pointer: 4 round trips in all; a
//!   retired key and its unused successor: 6; a used successor: 5; each
//!   further pointer of a chain: 2 more. All or nothing.
//! - `list_user`: 1 `SELECT` on `user_id`, of session rows only.
//! - `delete_by_handle`, `delete_user`: `BEGIN`, 1 `DELETE ... RETURNING`,
//!   `COMMIT` (3 round trips), plus 1 `DELETE ... RETURNING` per hop from a
//!   deleted pointer whose successor the first statement did not delete (a
//!   rotation that committed meanwhile; a successor already gone, until
//!   cleanup removes its pointer; a successor that is another user's).
//!
//! Expired rows (and retired ones past their `until`) are removed by
//! [`SqlStore::delete_expired`] (in batches) or by the task of
//! [`SqlStore::spawn_cleanup`]; it counts the sessions among them.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use sqlx::Row;

use crate::{
    ChangeSet, Clock, Metadata, Record, Retired, Rotated, Rotation, SessionHandle, SessionStore, StorageKey,
    StoreError, Stored, SystemClock,
};

#[cfg(feature = "postgres")]
use sqlx::postgres::{PgPool, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// The default table name.
///
/// ```
/// assert_eq!(sessionware::store::sql::DEFAULT_TABLE, "sessionware_sessions");
/// ```
pub const DEFAULT_TABLE: &str = "sessionware_sessions";

/// The default cap on the size of one record's JSON, in bytes (1 MiB).
///
/// ```
/// assert_eq!(sessionware::store::sql::DEFAULT_MAX_RECORD_BYTES, 1 << 20);
/// ```
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// The default number of rows [`SqlStore::delete_expired`] deletes per statement.
///
/// ```
/// assert!(sessionware::store::sql::DEFAULT_CLEANUP_BATCH > 0);
/// ```
pub const DEFAULT_CLEANUP_BATCH: u32 = 10_000;

/// The PostgreSQL migration for the default table (the text of
/// `migrations/postgres/0001_sessionware_sessions.sql`).
///
/// ```
/// assert!(sessionware::store::sql::POSTGRES_MIGRATION.contains("BYTEA PRIMARY KEY"));
/// ```
#[cfg(feature = "postgres")]
pub const POSTGRES_MIGRATION: &str = include_str!("../../migrations/postgres/0001_sessionware_sessions.sql");

/// The SQLite migration for the default table (the text of
/// `migrations/sqlite/0001_sessionware_sessions.sql`).
///
/// ```
/// assert!(sessionware::store::sql::SQLITE_MIGRATION.contains("BLOB PRIMARY KEY"));
/// ```
#[cfg(feature = "sqlite")]
pub const SQLITE_MIGRATION: &str = include_str!("../../migrations/sqlite/0001_sessionware_sessions.sql");

/// Which database a [`SqlStore`] talks to.
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// assert_eq!(format!("{:?}", sessionware::store::sql::Dialect::Sqlite), "Sqlite");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// PostgreSQL (feature `postgres`).
    #[cfg(feature = "postgres")]
    Postgres,
    /// SQLite (feature `sqlite`).
    #[cfg(feature = "sqlite")]
    Sqlite,
}

impl Dialect {
    /// The migration that creates `table` and its index in this dialect.
    /// `table` must be a plain identifier: ASCII letters, digits and `_`, not
    /// starting with a digit, at most 48 bytes.
    ///
    /// ```
    /// # #[cfg(feature = "postgres")] {
    /// use sessionware::store::sql::{Dialect, POSTGRES_MIGRATION};
    /// assert_eq!(Dialect::Postgres.migration("sessionware_sessions").unwrap(), POSTGRES_MIGRATION);
    /// assert!(Dialect::Postgres.migration("x; DROP TABLE users").is_err());
    /// # }
    /// ```
    pub fn migration(self, table: &str) -> Result<String, StoreError> {
        validate_table(table)?;
        let (id, blob, text) = match self {
            #[cfg(feature = "postgres")]
            Self::Postgres => ("BYTEA PRIMARY KEY CHECK (octet_length(id) = 32)", "BYTEA", "TEXT"),
            #[cfg(feature = "sqlite")]
            Self::Sqlite => ("BLOB PRIMARY KEY CHECK (length(id) = 32)", "BLOB", "TEXT"),
        };
        Ok(format!(
            "-- sessionware session tables. Times are milliseconds since the Unix epoch.\n\
             CREATE TABLE IF NOT EXISTS \"{table}\" (\n    \
             -- SHA-256 digest of the session ID (32 bytes), never the ID itself\n    \
             id                {id},\n    \
             -- the earlier of the idle and absolute deadlines\n    \
             expires_at        BIGINT NOT NULL,\n    \
             absolute_deadline BIGINT NOT NULL,\n    \
             last_seen         BIGINT NOT NULL,\n    \
             -- the logged-in user (NULL when anonymous) and the session's public handle\n    \
             user_id           TEXT,\n    \
             handle            TEXT NOT NULL,\n    \
             -- JSON of the record (format, metadata, data); the columns above are authoritative\n    \
             record            {text} NOT NULL\n\
             );\n\
             CREATE INDEX IF NOT EXISTS \"{table}_expires_at_idx\" ON \"{table}\" (expires_at);\n\
             CREATE INDEX IF NOT EXISTS \"{table}_user_id_idx\" ON \"{table}\" (user_id) WHERE user_id IS NOT NULL;\n\
             -- exclusive leases of sessions (Session::lock), keyed like the sessions\n\
             CREATE TABLE IF NOT EXISTS \"{table}_locks\" (\n    \
             id          {blob} PRIMARY KEY,\n    \
             token       TEXT NOT NULL,\n    \
             lease_until BIGINT NOT NULL\n\
             );\n"
        ))
    }
}

fn validate_table(table: &str) -> Result<(), StoreError> {
    let mut chars = table.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && table.len() <= 48 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(StoreError::Backend(
            "invalid table name: use ASCII letters, digits and '_', not starting with a digit, at most 48 bytes".into(),
        ))
    }
}

#[derive(Clone)]
enum Pool {
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$p` bound to the pool, whatever the backend: the body's
/// tokens are compiled once per backend.
macro_rules! dispatch {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres($p) => $body,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite($p) => $body,
        }
    };
}

#[derive(Debug)]
struct Queries {
    begin: &'static str,
    create: String,
    load: String,
    select_for_update: String,
    update: String,
    /// PostgreSQL only: the row with its version (`xmin`, the transaction
    /// that wrote it), and the update that writes only over that version.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    select_versioned: String,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    update_versioned: String,
    touch: String,
    /// Turns a row into a retired pointer (see [`encode_retired`]).
    retire: String,
    /// Deletes a row unless it is a retired pointer.
    delete: String,
    /// The transaction of `delete`'s chain and of the revocations:
    /// PostgreSQL's READ COMMITTED whatever the server's default (each
    /// statement sees what committed before it), SQLite's write lock.
    begin_follow: &'static str,
    /// Deletes a row, whatever it holds, and returns its `expires_at` and,
    /// for a retired pointer, its text.
    delete_first: String,
    /// Deletes a row, whatever it holds.
    delete_key: String,
    /// Deletes expired rows (see [`SqlStore::delete_expired`]); answers how
    /// many rows, and how many of them were sessions.
    delete_expired_batch: String,
    delete_expired_all: String,
    delete_expired_locks: String,
    list_user: String,
    /// The revocations: `delete_user` without and with a handle to keep,
    /// and `delete_by_handle`.
    revoke_user: Revoke,
    revoke_others: Revoke,
    revoke_handle: Revoke,
    try_lock_insert: String,
    try_lock_update: String,
    unlock: String,
}

/// One revocation's statements: `main` deletes the rows it matches, and
/// `follow` deletes one more row (its key bound last) if it matches too.
#[derive(Debug)]
struct Revoke {
    main: String,
    follow: String,
}

/// What differs between the dialects: `BEGIN` and the transaction of the
/// chains, `FOR UPDATE`, `GREATEST`, `LEAST`, the batch cleanup, how a
/// cleanup statement counts what it deleted, and the placeholders.
type Dialected = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    String,
    fn(String) -> String,
    fn(String) -> String,
);

impl Queries {
    fn new(dialect: Dialect, table: &str) -> Self {
        let t = format!("\"{table}\"");
        let locks = format!("\"{table}_locks\"");
        let cols = "expires_at, absolute_deadline, last_seen, record";
        let (begin, begin_follow, for_update, greatest, least, batch, counted, sql): Dialected = match dialect {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => (
                "BEGIN",
                "BEGIN ISOLATION LEVEL READ COMMITTED",
                " FOR UPDATE",
                "GREATEST",
                "LEAST",
                // By ctid: a TID scan of the locked rows, not a join over the
                // table (20x faster per batch).
                format!(
                    "DELETE FROM {t} WHERE ctid = ANY(ARRAY(\
                     SELECT ctid FROM {t} WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)) \
                     AND expires_at <= $1"
                ),
                // One row back: how many rows, how many of them sessions.
                |delete| {
                    format!(
                        "WITH d AS ({delete} RETURNING absolute_deadline) \
                         SELECT count(*), count(*) FILTER (WHERE absolute_deadline <> 0) FROM d"
                    )
                },
                |s| s,
            ),
            // SQLite numbers its parameters `?1`, `?2`, ...
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => (
                "BEGIN IMMEDIATE",
                "BEGIN IMMEDIATE",
                "",
                "MAX",
                "MIN",
                format!("DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} WHERE expires_at <= $1 LIMIT $2)"),
                // No DELETE in a WITH: a row per deleted row (in process).
                |delete| format!("{delete} RETURNING absolute_deadline"),
                |s| s.replace('$', "?"),
            ),
        };
        // A revocation deletes the rows of the user's sessions (live ones:
        // those it counts) and the retired pointers that carry the user
        // (whatever their `until`: a pointer names the session it points
        // to, not a session), and follows each pointer (see `revoke`).
        let revoke = |filter: &str, id: &str| {
            let rows = format!("user_id = $1 AND (expires_at > $2 OR absolute_deadline = 0){filter}");
            let returning =
                "RETURNING id, expires_at, absolute_deadline, CASE WHEN absolute_deadline = 0 THEN record END";
            Revoke {
                main: sql(format!("DELETE FROM {t} WHERE {rows} {returning}")),
                follow: sql(format!("DELETE FROM {t} WHERE id = {id} AND {rows} {returning}")),
            }
        };
        Self {
            begin,
            create: sql(format!(
                "INSERT INTO {t} (id, {cols}, user_id, handle) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, \
                 absolute_deadline = excluded.absolute_deadline, last_seen = excluded.last_seen, \
                 record = excluded.record, user_id = excluded.user_id, handle = excluded.handle \
                 WHERE {t}.expires_at <= $8"
            )),
            load: sql(format!("SELECT {cols} FROM {t} WHERE id = $1 AND expires_at > $2")),
            select_for_update: sql(format!("SELECT {cols} FROM {t} WHERE id = $1{for_update}")),
            update: sql(format!("UPDATE {t} SET expires_at = $2, last_seen = $3, record = $4 WHERE id = $1")),
            select_versioned: sql(format!("SELECT {cols}, xmin::text FROM {t} WHERE id = $1")),
            update_versioned: sql(format!(
                "UPDATE {t} SET expires_at = $2, last_seen = $3, record = $4 WHERE id = $1 AND xmin::text = $5"
            )),
            touch: sql(format!(
                "UPDATE {t} SET last_seen = {greatest}(last_seen, $2), \
                 expires_at = {least}($3, absolute_deadline) \
                 WHERE id = $1 AND expires_at > $4 AND absolute_deadline > $4"
            )),
            // A retired row: an absolute deadline of 0, so that `touch` (and
            // `Record::is_expired`) never take it for a session, and every
            // query on sessions leaves it out; `expires_at` is when it may
            // be forgotten; the user and handle of the successor, so that a
            // revocation blocked on this row while it was retired still
            // matches it (see `revoke`).
            retire: sql(format!(
                "UPDATE {t} SET expires_at = $2, absolute_deadline = 0, last_seen = $3, record = $4, \
                 user_id = $5, handle = $6 WHERE id = $1"
            )),
            delete: sql(format!("DELETE FROM {t} WHERE id = $1 AND absolute_deadline <> 0")),
            begin_follow,
            delete_first: sql(format!(
                "DELETE FROM {t} WHERE id = $1 RETURNING expires_at, CASE WHEN absolute_deadline = 0 THEN record END"
            )),
            delete_key: sql(format!("DELETE FROM {t} WHERE id = $1")),
            delete_expired_batch: sql(counted(batch)),
            delete_expired_all: sql(counted(format!("DELETE FROM {t} WHERE expires_at <= $1"))),
            delete_expired_locks: sql(format!("DELETE FROM {locks} WHERE lease_until <= $1")),
            // Sessions only: a retired pointer carries a user too.
            list_user: sql(format!(
                "SELECT {cols} FROM {t} WHERE user_id = $1 AND expires_at > $2 AND absolute_deadline <> 0"
            )),
            revoke_user: revoke("", "$3"),
            revoke_others: revoke(" AND handle <> $3", "$4"),
            revoke_handle: revoke(" AND handle = $3", "$4"),
            // Two statements, so that a poll that fails writes nothing: an
            // upsert whose condition is false still locks and logs the row
            // in PostgreSQL (a WAL flush per failed poll).
            try_lock_insert: sql(format!(
                "INSERT INTO {locks} (id, token, lease_until) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING"
            )),
            try_lock_update: sql(format!(
                "UPDATE {locks} SET token = $2, lease_until = $3 WHERE id = $1 AND (lease_until <= $4 OR token = $2)"
            )),
            unlock: sql(format!("DELETE FROM {locks} WHERE id = $1 AND token = $2")),
        }
    }
}

/// A [`SessionStore`] on PostgreSQL or SQLite, through a `sqlx` pool.
///
/// One type for both databases: the SQL differs in a handful of words
/// (placeholders, `FOR UPDATE`, `GREATEST`), so an internal enum picks the
/// dialect and everything else (encoding, expiry checks, cleanup) is shared.
/// See the [module documentation](self) for the schema and the statements.
///
/// Run [`migrate`](Self::migrate) once (it is idempotent), or apply
/// [`migration_sql`](Self::migration_sql) with your own migration tool.
///
/// ```no_run
/// use std::time::Duration;
/// use sessionware::{Keys, SessionLayer, SqlStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SqlStore::postgres("postgres://app@localhost/app").await?;
/// store.migrate().await?;
/// let _cleanup = store.spawn_cleanup(Duration::from_secs(300));
/// let layer = SessionLayer::new(store, Keys::generate()?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqlStore {
    pool: Pool,
    dialect: Dialect,
    table: Arc<str>,
    queries: Arc<Queries>,
    clock: Arc<dyn Clock>,
    max_record_bytes: usize,
    cleanup_batch: u32,
    secret: Option<Arc<str>>,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("dialect", &self.dialect)
            .field("table", &self.table)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("cleanup_batch", &self.cleanup_batch)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    fn with_pool(pool: Pool, dialect: Dialect) -> Self {
        Self {
            pool,
            dialect,
            table: Arc::from(DEFAULT_TABLE),
            queries: Arc::new(Queries::new(dialect, DEFAULT_TABLE)),
            clock: Arc::new(SystemClock),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            cleanup_batch: DEFAULT_CLEANUP_BATCH,
            secret: None,
        }
    }

    /// Connects a pool (10 connections, 5 s acquire timeout) to the
    /// PostgreSQL database at `url`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::SqlStore::postgres("postgres://postgres@127.0.0.1:5432/test").await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    pub async fn postgres(url: &str) -> Result<Self, StoreError> {
        let secret = url_password(url);
        // No ping when a connection leaves the pool (`test_before_acquire`,
        // on by default in sqlx): it costs a round trip per statement. A
        // connection that died while idle (server restart, idle timeout of
        // a proxy) fails its next statement instead, which surfaces as
        // `StoreError::Backend` (the layer fails closed: an error, never a
        // fresh session), and sqlx closes it rather than return it to the
        // pool, whose ping on release fails; the next acquisition opens a
        // new connection.
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            .connect(url)
            .await
            .map_err(|e| db_err(&e, secret.as_deref()))?;
        let mut store = Self::from_postgres_pool(pool);
        store.secret = secret;
        Ok(store)
    }

    /// A store on an existing PostgreSQL pool.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect("postgres://localhost/app").await?;
    /// let store = sessionware::SqlStore::from_postgres_pool(pool);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    pub fn from_postgres_pool(pool: PgPool) -> Self {
        Self::with_pool(Pool::Postgres(pool), Dialect::Postgres)
    }

    /// Opens (and creates if missing) the SQLite database file at `path`:
    /// a plain path, or a URL such as `sqlite://sessions.db` or
    /// `sqlite:///var/lib/app/sessions.db`. The database is switched to WAL
    /// mode, and a connection waits up to 5 s for a locked database.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::SqlStore::sqlite("sqlite://sessions.db").await?;
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sqlite")]
    pub async fn sqlite(path: &str) -> Result<Self, StoreError> {
        let options = if path.starts_with("sqlite:") {
            path.parse::<SqliteConnectOptions>().map_err(|e| db_err(&e, None))?
        } else {
            SqliteConnectOptions::new().filename(path)
        };
        let options =
            options.create_if_missing(true).journal_mode(SqliteJournalMode::Wal).busy_timeout(Duration::from_secs(5));
        // A SQLite connection is a file handle in this process: there is no
        // peer to lose, so the pool skips its ping on acquire (a hop to the
        // connection's worker thread per statement).
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| db_err(&e, None))?;
        Ok(Self::from_sqlite_pool(pool))
    }

    /// A store on an existing SQLite pool. Give it a busy timeout: `apply`
    /// takes the write lock with `BEGIN IMMEDIATE` and waits for it.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::sqlite::SqlitePoolOptions::new().connect("sqlite://sessions.db?mode=rwc").await?;
    /// let store = sessionware::SqlStore::from_sqlite_pool(pool);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sqlite")]
    pub fn from_sqlite_pool(pool: SqlitePool) -> Self {
        Self::with_pool(Pool::Sqlite(pool), Dialect::Sqlite)
    }

    /// Uses `table` instead of `sessionware_sessions` (validated as a plain
    /// identifier, see [`Dialect::migration`]).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::SqlStore::sqlite("sessions.db").await?.with_table("app_sessions")?;
    /// assert_eq!(store.table(), "app_sessions");
    /// assert!(store.clone().with_table("a-b").is_err());
    /// # Ok(()) }
    /// ```
    pub fn with_table(mut self, table: &str) -> Result<Self, StoreError> {
        validate_table(table)?;
        self.table = Arc::from(table);
        self.queries = Arc::new(Queries::new(self.dialect, table));
        Ok(self)
    }

    /// Sets the clock used for expiry (share it with the layer in tests).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::SqlStore::sqlite("sessions.db").await?.with_clock(sessionware::ManualClock::new(0));
    /// # Ok(()) }
    /// ```
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets the largest record JSON, in bytes, that the store writes or
    /// accepts when reading (default 1 MiB); larger ones fail with
    /// [`StoreError::Codec`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::SqlStore::sqlite("sessions.db").await?.with_max_record_bytes(64 * 1024);
    /// # Ok(()) }
    /// ```
    pub fn with_max_record_bytes(mut self, max: usize) -> Self {
        self.max_record_bytes = max;
        self
    }

    /// Sets how many rows one statement of [`delete_expired`](Self::delete_expired)
    /// deletes (default 10,000), so that a large cleanup never holds locks
    /// (or SQLite's write lock) for long. `0` deletes everything in one statement.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::SqlStore::sqlite("sessions.db").await?.with_cleanup_batch(1_000);
    /// # Ok(()) }
    /// ```
    pub fn with_cleanup_batch(mut self, rows: u32) -> Self {
        self.cleanup_batch = rows;
        self
    }

    /// The table name.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// assert_eq!(sessionware::SqlStore::sqlite("sessions.db").await?.table(), "sessionware_sessions");
    /// # Ok(()) }
    /// ```
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The database this store talks to.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// use sessionware::store::sql::Dialect;
    /// assert_eq!(sessionware::SqlStore::sqlite("sessions.db").await?.dialect(), Dialect::Sqlite);
    /// # Ok(()) }
    /// ```
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The PostgreSQL pool, if this store is on PostgreSQL.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::SqlStore::postgres("postgres://localhost/app").await?;
    /// assert!(store.postgres_pool().is_some());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p),
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_) => None,
        }
    }

    /// The SQLite pool, if this store is on SQLite.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::SqlStore::sqlite("sessions.db").await?;
    /// assert!(store.sqlite_pool().is_some());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sqlite")]
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(p) => Some(p),
            #[cfg(feature = "postgres")]
            Pool::Postgres(_) => None,
        }
    }

    /// The migration for this store's dialect and table: one
    /// `CREATE TABLE IF NOT EXISTS` and one `CREATE INDEX IF NOT EXISTS`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::SqlStore::sqlite("sessions.db").await?.with_table("s")?;
    /// assert!(store.migration_sql().contains("CREATE TABLE IF NOT EXISTS \"s\""));
    /// # Ok(()) }
    /// ```
    pub fn migration_sql(&self) -> String {
        // The table name was validated when it was set.
        self.dialect.migration(&self.table).unwrap_or_default()
    }

    /// Runs [`migration_sql`](Self::migration_sql) (idempotent).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// sessionware::SqlStore::sqlite("sessions.db").await?.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let sql = self.dialect.migration(&self.table)?;
        dispatch!(&self.pool, p => sqlx::raw_sql(&sql).execute(p).await.map(|_| ())).map_err(|e| self.err(&e))
    }

    /// Deletes every expired session row, retired pointer past its `until`
    /// and expired lease, and returns how many sessions (not pointers) were
    /// deleted. Runs in
    /// batches (see [`with_cleanup_batch`](Self::with_cleanup_batch)); in
    /// PostgreSQL, rows locked by a concurrent `apply` or another cleanup are
    /// skipped, so several processes can clean up at once.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let removed = sessionware::SqlStore::sqlite("sessions.db").await?.delete_expired().await?;
    /// println!("{removed} expired sessions removed");
    /// # Ok(()) }
    /// ```
    pub async fn delete_expired(&self) -> Result<u64, StoreError> {
        let now = to_i64(self.clock.now_ms());
        let q = &*self.queries;
        dispatch!(&self.pool, p => sqlx::query(&q.delete_expired_locks).bind(now).execute(p).await.map(|_| ()))
            .map_err(|e| self.err(&e))?;
        if self.cleanup_batch == 0 {
            return self.delete_expired_step(&q.delete_expired_all, now, None).await.map(|(_, sessions)| sessions);
        }
        let batch = i64::from(self.cleanup_batch);
        let mut total = 0u64;
        loop {
            let (rows, sessions) = self.delete_expired_step(&q.delete_expired_batch, now, Some(batch)).await?;
            total += sessions;
            if rows < u64::from(self.cleanup_batch) {
                return Ok(total);
            }
        }
    }

    /// One cleanup statement: how many rows it deleted, and how many of
    /// them were sessions (not retired pointers).
    async fn delete_expired_step(&self, sql: &str, now: i64, batch: Option<i64>) -> Result<(u64, u64), StoreError> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => {
                let mut query = sqlx::query_as::<_, (i64, i64)>(sql).bind(now);
                if let Some(batch) = batch {
                    query = query.bind(batch);
                }
                let (rows, sessions) = query.fetch_one(p).await.map_err(|e| self.err(&e))?;
                let count = |n: i64| u64::try_from(n).unwrap_or(0);
                Ok((count(rows), count(sessions)))
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => {
                let mut query = sqlx::query_scalar::<_, i64>(sql).bind(now);
                if let Some(batch) = batch {
                    query = query.bind(batch);
                }
                let deadlines = query.fetch_all(p).await.map_err(|e| self.err(&e))?;
                let sessions = deadlines.iter().filter(|d| **d != 0).count();
                Ok((deadlines.len() as u64, sessions as u64))
            }
        }
    }

    /// Spawns a Tokio task that calls [`delete_expired`](Self::delete_expired)
    /// every `every` (first call right away). A failed run is logged (a
    /// `tracing` warning) and the task carries on; abort the returned handle
    /// to stop it. Must be called within a Tokio runtime.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::SqlStore::sqlite("sessions.db").await?;
    /// let task = store.spawn_cleanup(std::time::Duration::from_secs(600));
    /// // at shutdown:
    /// task.abort();
    /// # Ok(()) }
    /// ```
    pub fn spawn_cleanup(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match store.delete_expired().await {
                    Ok(n) => tracing::debug!(removed = n, table = %store.table, "expired sessions removed"),
                    Err(e) => tracing::warn!(error = %e, table = %store.table, "session cleanup failed; will retry"),
                }
            }
        })
    }

    fn err(&self, e: &sqlx::Error) -> StoreError {
        db_err(e, self.secret.as_deref())
    }

    fn encode(&self, record: &Record) -> Result<String, StoreError> {
        let text = serde_json::to_string(record).map_err(|e| StoreError::Codec(format!("sql record: {e}")))?;
        if text.len() > self.max_record_bytes {
            return Err(StoreError::Codec(format!("sql record: larger than {} bytes", self.max_record_bytes)));
        }
        Ok(text)
    }

    /// The record of a row, with the times of its columns.
    fn decode(&self, expires_at: i64, deadline: i64, last_seen: i64, text: &str) -> Result<Record, StoreError> {
        let codec = |what: &dyn fmt::Display| StoreError::Codec(format!("sql record: {what}"));
        if text.len() > self.max_record_bytes {
            return Err(codec(&format_args!("larger than {} bytes", self.max_record_bytes)));
        }
        let mut record: Record = serde_json::from_str(text).map_err(|e| codec(&e))?;
        if record.format != crate::RECORD_FORMAT {
            return Err(codec(&format_args!("unsupported record format {}", record.format)));
        }
        let time = |v: i64| u64::try_from(v).map_err(|_| codec(&"negative time"));
        record.meta.expires_at = time(expires_at)?;
        record.meta.absolute_deadline = time(deadline)?;
        record.meta.last_seen = time(last_seen)?;
        Ok(record)
    }

    /// What a row holds: a retired pointer (its text starts with
    /// [`RETIRED_PREFIX`]; `until` is the `expires_at` column) or a record
    /// (see [`decode`](Self::decode)).
    fn decode_row(&self, expires_at: i64, deadline: i64, last_seen: i64, text: &str) -> Result<Stored, StoreError> {
        if !text.starts_with(RETIRED_PREFIX) {
            return self.decode(expires_at, deadline, last_seen, text).map(Stored::Live);
        }
        let mut retired = decode_retired(text)?;
        retired.until = u64::try_from(expires_at).map_err(|_| StoreError::Codec("sql record: negative time".into()))?;
        Ok(Stored::Retired(retired))
    }
}

/// How the text of a retired row starts. A record's JSON never does: it is
/// written by `serde_json` from [`Record`], whose first field is `"v"`.
const RETIRED_PREFIX: &str = "{\"r\":";

/// The `record` text of a retired row: the pointer under `"r"`, followed by
/// the fields of an empty record that expired at 0, so that a process of an
/// earlier version (which reads it as a record, ignoring `"r"`) takes the
/// retired key for an expired session.
fn encode_retired(retired: &Retired) -> Result<String, StoreError> {
    let pointer = serde_json::to_string(retired).map_err(|e| StoreError::Codec(format!("sql retired key: {e}")))?;
    let at = retired.at;
    Ok(format!(
        "{RETIRED_PREFIX}{pointer},\"v\":{format},\"m\":{{\"created_at\":{at},\"last_seen\":{at},\
         \"absolute_deadline\":0,\"expires_at\":0}},\"d\":{{}}}}",
        format = crate::RECORD_FORMAT
    ))
}

/// The pointer of a retired row's text.
fn decode_retired(text: &str) -> Result<Retired, StoreError> {
    #[derive(serde::Deserialize)]
    struct Text {
        r: Retired,
    }
    serde_json::from_str::<Text>(text).map(|t| t.r).map_err(|e| StoreError::Codec(format!("sql retired key: {e}")))
}

/// The body of the locking `apply`, for one backend's connection type.
macro_rules! apply_locked {
    ($store:ident, $conn:ident, $key:ident, $changes:ident) => {{
        use sqlx::Connection as _;
        let q = &*$store.queries;
        let id = $key.as_bytes().as_slice();
        let mut tx = $conn.begin_with(q.begin).await.map_err(|e| $store.err(&e))?;
        let row =
            sqlx::query(&q.select_for_update).bind(id).fetch_optional(&mut *tx).await.map_err(|e| $store.err(&e))?;
        let Some(row) = row else {
            tx.rollback().await.map_err(|e| $store.err(&e))?;
            return Ok(false);
        };
        let (expires_at, deadline, last_seen, text) = columns(&row).map_err(|e| $store.err(&e))?;
        let mut record = match $store.decode_row(expires_at, deadline, last_seen, &text)? {
            Stored::Live(record) if !record.is_expired($store.clock.now_ms()) => record,
            // Expired, or a retired key: no session to write to.
            _ => {
                tx.rollback().await.map_err(|e| $store.err(&e))?;
                return Ok(false);
            }
        };
        let merged = record.try_apply($changes).and_then(|()| $store.encode(&record));
        let text = match merged {
            Ok(text) => text,
            Err(e) => {
                tx.rollback().await.map_err(|e| $store.err(&e))?;
                return Err(e);
            }
        };
        sqlx::query(&q.update)
            .bind(id)
            .bind(to_i64(record.meta.expires_at))
            .bind(to_i64(record.meta.last_seen))
            .bind(&text)
            .execute(&mut *tx)
            .await
            .map_err(|e| $store.err(&e))?;
        tx.commit().await.map_err(|e| $store.err(&e))?;
        Ok(true)
    }};
}

/// The body of `rotate`, for one backend's connection type: one
/// transaction that locks the old row (`SELECT ... FOR UPDATE` in
/// PostgreSQL, `BEGIN IMMEDIATE` in SQLite), builds the successor in Rust,
/// inserts it with the statement of `create` (which never overwrites a live
/// row, a retired one included) and turns the old row into the pointer.
macro_rules! rotate_locked {
    ($store:ident, $conn:ident, $old:ident, $new:ident, $rotation:ident) => {{
        use sqlx::Connection as _;
        let q = &*$store.queries;
        let now = $store.clock.now_ms();
        let (old_id, new_id) = ($old.as_bytes().as_slice(), $new.as_bytes().as_slice());
        let mut tx = $conn.begin_with(q.begin).await.map_err(|e| $store.err(&e))?;
        let row = sqlx::query(&q.select_for_update)
            .bind(old_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| $store.err(&e))?;
        let stored = match row {
            Some(row) => {
                let (expires_at, deadline, last_seen, text) = columns(&row).map_err(|e| $store.err(&e))?;
                Some($store.decode_row(expires_at, deadline, last_seen, &text)?)
            }
            None => None,
        };
        let current = match stored {
            Some(Stored::Live(record)) if !record.is_expired(now) => record,
            other => {
                tx.rollback().await.map_err(|e| $store.err(&e))?;
                return Ok(match other {
                    Some(Stored::Retired(retired)) if !retired.is_expired(now) => Rotated::Retired(retired),
                    _ => Rotated::Gone,
                });
            }
        };
        let built = $rotation.successor(&current, $old).and_then(|next| Ok(($store.encode(&next)?, next)));
        let (text, next) = match built {
            Ok(built) => built,
            Err(e) => {
                // A taken key is answered first, as if it had been checked
                // before the successor was built (the order of the contract).
                let taken = sqlx::query(&q.load)
                    .bind(new_id)
                    .bind(to_i64(now))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| $store.err(&e))?
                    .is_some();
                tx.rollback().await.map_err(|e| $store.err(&e))?;
                return if taken { Ok(Rotated::Taken) } else { Err(e) };
            }
        };
        let meta = &next.meta;
        let inserted = sqlx::query(&q.create)
            .bind(new_id)
            .bind(to_i64(meta.expires_at.min(meta.absolute_deadline)))
            .bind(to_i64(meta.absolute_deadline))
            .bind(to_i64(meta.last_seen))
            .bind(&text)
            .bind(meta.user())
            .bind(meta.handle.to_string())
            .bind(to_i64(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| $store.err(&e))?
            .rows_affected();
        if inserted != 1 {
            tx.rollback().await.map_err(|e| $store.err(&e))?;
            return Ok(Rotated::Taken);
        }
        let retired = $rotation.retired(*$new);
        sqlx::query(&q.retire)
            .bind(old_id)
            .bind(to_i64(retired.until))
            .bind(to_i64(retired.at))
            .bind(encode_retired(&retired)?)
            .bind(meta.user())
            .bind(meta.handle.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| $store.err(&e))?;
        tx.commit().await.map_err(|e| $store.err(&e))?;
        Ok(Rotated::Done)
    }};
}

/// The longest chain of retired keys a `delete` follows (rows visited, the
/// first included), and the most hops a revocation follows from one
/// retired pointer it deleted.
const MAX_CHAIN: usize = 16;

/// How many times `delete`'s chain and a revocation run their transaction
/// when PostgreSQL aborts it to break a deadlock (two of them, or one and a
/// logout, locking the same rows in another order): an aborted transaction
/// changed nothing.
const TX_ATTEMPTS: usize = 3;

/// An error in one of the transactions that [`TX_ATTEMPTS`] runs again.
enum TxError {
    Db(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl TxError {
    /// PostgreSQL aborted the transaction (a deadlock, or a serialization
    /// failure): it changed nothing, and may run again.
    fn retryable(&self) -> bool {
        let code = match self {
            Self::Db(e) => e.as_database_error().and_then(|d| d.code()),
            Self::Store(_) => None,
        };
        code.is_some_and(|c| c == "40P01" || c == "40001")
    }
}

/// Runs `$run` (an expression that runs one transaction and answers a
/// `Result<_, TxError>`) up to [`TX_ATTEMPTS`] times while it fails with a
/// retryable error; the error of the last attempt is mapped for the caller.
macro_rules! retrying {
    ($store:ident, $run:expr) => {{
        let mut attempt = 1;
        loop {
            match $run {
                Err(e) if attempt < TX_ATTEMPTS && e.retryable() => attempt += 1,
                done => break done.map_err(|e| $store.tx_err(e)),
            }
        }
    }};
}

/// The successor of a retired pointer deleted by `delete`'s chain, if it
/// is to be followed: the row was a pointer (`text` is its text) that is
/// still live (`until`, its `expires_at`, is after `now`).
fn live_pointer(until: i64, text: Option<&str>, now: u64) -> Option<StorageKey> {
    let text = text.filter(|t| t.starts_with(RETIRED_PREFIX))?;
    match decode_retired(text) {
        Ok(retired) => (until > to_i64(now)).then_some(retired.successor),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable retired session row");
            None
        }
    }
}

/// The body of `delete` for a key that may be retired, for one backend's
/// connection type: one transaction (PostgreSQL: READ COMMITTED, so that
/// each statement sees what committed before it; SQLite: the write lock).
///
/// - The first key's row goes, whatever it holds (`DELETE ... RETURNING`);
///   the chain goes on only if it was a live retired pointer.
/// - Each successor is read and locked (`SELECT ... FOR UPDATE`: a
///   rotation of it that is under way is waited for, and its result
///   read): a retired pointer goes, and is followed while live; a session
///   goes only if its `predecessor` is the last pointer followed (its
///   client never used it), and the chain ends there.
///
/// At most [`MAX_CHAIN`] rows are visited.
macro_rules! delete_chain {
    ($store:ident, $conn:ident, $key:ident) => {{
        use sqlx::Connection as _;
        let q = &*$store.queries;
        let now = $store.clock.now_ms();
        let mut tx = $conn.begin_with(q.begin_follow).await?;
        let first: Option<(i64, Option<String>)> =
            sqlx::query_as(&q.delete_first).bind($key.as_bytes().as_slice()).fetch_optional(&mut *tx).await?;
        let mut next = first.and_then(|(until, text)| live_pointer(until, text.as_deref(), now));
        let mut pointer = *$key;
        for _ in 1..MAX_CHAIN {
            let Some(key) = next.take() else { break };
            let id = key.as_bytes().as_slice();
            let Some(row) = sqlx::query(&q.select_for_update).bind(id).fetch_optional(&mut *tx).await? else {
                break;
            };
            let (expires_at, deadline, last_seen, text) = columns(&row)?;
            match $store.decode_row(expires_at, deadline, last_seen, &text) {
                Ok(Stored::Retired(retired)) => {
                    sqlx::query(&q.delete_key).bind(id).execute(&mut *tx).await?;
                    if !retired.is_expired(now) {
                        pointer = key;
                        next = Some(retired.successor);
                    }
                }
                // Unused: the logout on the old ID ends it. Used (or another
                // session's): it stays.
                Ok(Stored::Live(record)) => {
                    if record.meta.predecessor == Some(pointer) {
                        sqlx::query(&q.delete_key).bind(id).execute(&mut *tx).await?;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "unreadable session row left by a logout on a retired key"),
            }
        }
        tx.commit().await?;
        Ok(())
    }};
}

/// Which sessions of a user a revocation ends.
#[derive(Debug, Clone, Copy)]
enum Revocation<'a> {
    /// All (`delete_user` without a handle to keep).
    All,
    /// All but the one with this handle (`delete_user`).
    AllBut(&'a str),
    /// The one with this handle (`delete_by_handle`).
    Only(&'a str),
}

/// A row a revocation deleted: `id, expires_at, absolute_deadline`, and the
/// text of a retired pointer.
type RevokedRow = (Vec<u8>, i64, i64, Option<String>);

/// What a revocation did so far: the live sessions it deleted, the keys it
/// deleted or visited, and the successors of the retired pointers it
/// deleted that it has still to visit (with the hops from the first).
struct Revoked {
    now: u64,
    live: usize,
    visited: std::collections::HashSet<StorageKey>,
    pending: Vec<(StorageKey, usize)>,
}

impl Revoked {
    fn new(now: u64) -> Self {
        Self { now, live: 0, visited: std::collections::HashSet::new(), pending: Vec::new() }
    }

    /// Counts a deleted row if it was a live session; a retired pointer's
    /// successor is to be visited (unless `hops` reached [`MAX_CHAIN`]).
    fn deleted(&mut self, (id, expires_at, deadline, text): RevokedRow, hops: usize) {
        if let Ok(id) = <[u8; 32]>::try_from(id) {
            self.visited.insert(StorageKey::from_bytes(id));
        }
        match text.filter(|t| t.starts_with(RETIRED_PREFIX)) {
            Some(text) => match decode_retired(&text) {
                Ok(retired) if hops < MAX_CHAIN => self.pending.push((retired.successor, hops + 1)),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "unreadable retired session row"),
            },
            None if deadline != 0 && expires_at > to_i64(self.now) => self.live += 1,
            None => {}
        }
    }

    /// The next successor to visit: one that no statement of this
    /// revocation deleted or visited yet.
    fn next(&mut self) -> Option<(StorageKey, usize)> {
        while let Some((key, hops)) = self.pending.pop() {
            if self.visited.insert(key) {
                return Some((key, hops));
            }
        }
        None
    }
}

/// The body of a revocation (`delete_user`, `delete_by_handle`), for one
/// backend's connection type: one transaction (PostgreSQL: READ
/// COMMITTED; SQLite: the write lock) of
///
/// 1. one `DELETE ... RETURNING` of the rows that carry the user (and the
///    handle, or not the handle to keep): the live sessions, and the
///    retired pointers, which carry the user and handle of their successor;
/// 2. for each retired pointer deleted whose successor step 1 did not
///    delete, one `DELETE ... RETURNING` of the successor's row if it
///    matches the same conditions, following on from a pointer found there
///    (at most [`MAX_CHAIN`] hops).
///
/// Every row deleted matches the revocation, when it is deleted. Answers
/// how many live sessions were deleted.
///
/// Why a rotation cannot save a session from a revocation that saw it: in
/// PostgreSQL, the rotation holds the old row's lock from its `SELECT ...
/// FOR UPDATE` to its commit, and makes the successor and the retired
/// pointer visible at once. If it commits before step 1's snapshot, step 1
/// sees the successor and deletes it. If not, step 1 sees the old row as a
/// session of the user; reaching it, it waits for the rotation's lock (or
/// finds the row updated since its snapshot) and, in READ COMMITTED,
/// checks its conditions again on the row as the rotation left it (the
/// pointer, which still matches: the user, the handle, `absolute_deadline =
/// 0`), deletes it and returns its text; step 2, a statement of its own,
/// sees what committed before it, the successor included, and deletes it. A
/// rotation that comes after step 1 reached the row finds it deleted and
/// creates nothing. In SQLite, writers run one at a time: step 1 sees the
/// rotation's result or the rotation sees nothing.
macro_rules! revoke {
    ($store:ident, $conn:ident, $user:ident, $which:ident) => {{
        use sqlx::Connection as _;
        let q = &*$store.queries;
        let now = $store.clock.now_ms();
        let (statements, handle) = match $which {
            Revocation::All => (&q.revoke_user, None),
            Revocation::AllBut(h) => (&q.revoke_others, Some(h)),
            Revocation::Only(h) => (&q.revoke_handle, Some(h)),
        };
        let mut tx = $conn.begin_with(q.begin_follow).await?;
        let mut main = sqlx::query_as::<_, RevokedRow>(&statements.main).bind($user).bind(to_i64(now));
        if let Some(h) = handle {
            main = main.bind(h);
        }
        let mut revoked = Revoked::new(now);
        for row in main.fetch_all(&mut *tx).await? {
            revoked.deleted(row, 0);
        }
        while let Some((key, hops)) = revoked.next() {
            let mut follow = sqlx::query_as::<_, RevokedRow>(&statements.follow).bind($user).bind(to_i64(now));
            if let Some(h) = handle {
                follow = follow.bind(h);
            }
            if let Some(row) = follow.bind(key.as_bytes().as_slice()).fetch_optional(&mut *tx).await? {
                revoked.deleted(row, hops);
            }
        }
        tx.commit().await?;
        Ok(revoked.live)
    }};
}

/// How many times `apply` on PostgreSQL reads and conditionally writes a
/// row that keeps changing under it before it falls back to the row lock.
#[cfg(feature = "postgres")]
const OPTIMISTIC_ATTEMPTS: usize = 3;

impl SqlStore {
    /// `apply` as a compare-and-set on the row version, two statements and
    /// no transaction: read the row and its `xmin`, merge in Rust, and
    /// write only if the row still has that `xmin`. Any write in between
    /// (another `apply`, a `touch`, a `delete`, a replacing `create`) gives
    /// the row a new version (or removes it), so the update then matches
    /// nothing and `None` says "read again": no change set is lost, and a
    /// deleted row is never written back. An `UPDATE` that finds the row
    /// locked by a writer waits for it and re-checks `xmin` on the version
    /// that writer committed (PostgreSQL's read-committed rule).
    #[cfg(feature = "postgres")]
    async fn apply_optimistic(
        &self,
        conn: &mut sqlx::PgConnection,
        key: &StorageKey,
        changes: &ChangeSet,
    ) -> Result<Option<bool>, StoreError> {
        let q = &*self.queries;
        let id = key.as_bytes().as_slice();
        let row =
            sqlx::query(&q.select_versioned).bind(id).fetch_optional(&mut *conn).await.map_err(|e| self.err(&e))?;
        let Some(row) = row else { return Ok(Some(false)) };
        let (expires_at, deadline, last_seen, text) = columns(&row).map_err(|e| self.err(&e))?;
        let version: String = row.try_get(4).map_err(|e| self.err(&e))?;
        let mut record = match self.decode_row(expires_at, deadline, last_seen, &text)? {
            Stored::Live(record) if !record.is_expired(self.clock.now_ms()) => record,
            // Expired, or a retired key: no session to write to.
            _ => return Ok(Some(false)),
        };
        // The cap is checked on the record as read; a write that got in
        // between makes the update below miss, and the next attempt checks
        // the cap again on the newer record.
        record.try_apply(changes)?;
        let text = self.encode(&record)?;
        let n = sqlx::query(&q.update_versioned)
            .bind(id)
            .bind(to_i64(record.meta.expires_at))
            .bind(to_i64(record.meta.last_seen))
            .bind(&text)
            .bind(&version)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.err(&e))?
            .rows_affected();
        Ok((n == 1).then_some(true))
    }

    /// `apply` in one transaction that locks the row (`SELECT ... FOR
    /// UPDATE` in PostgreSQL, `BEGIN IMMEDIATE` in SQLite): merge in Rust,
    /// one `UPDATE`, commit.
    #[cfg(feature = "postgres")]
    async fn apply_locked_pg(
        &self,
        conn: &mut sqlx::PgConnection,
        key: &StorageKey,
        changes: &ChangeSet,
    ) -> Result<bool, StoreError> {
        apply_locked!(self, conn, key, changes)
    }

    /// See [`apply_locked_pg`](Self::apply_locked_pg).
    #[cfg(feature = "sqlite")]
    async fn apply_locked_sqlite(
        &self,
        conn: &mut sqlx::SqliteConnection,
        key: &StorageKey,
        changes: &ChangeSet,
    ) -> Result<bool, StoreError> {
        apply_locked!(self, conn, key, changes)
    }

    /// `delete` of a key that may be retired, on PostgreSQL (see [`delete_chain`]).
    #[cfg(feature = "postgres")]
    async fn delete_chain_pg(&self, conn: &mut sqlx::PgConnection, key: &StorageKey) -> Result<(), TxError> {
        delete_chain!(self, conn, key)
    }

    /// `delete` of a key that may be retired, on SQLite (see [`delete_chain`]).
    #[cfg(feature = "sqlite")]
    async fn delete_chain_sqlite(&self, conn: &mut sqlx::SqliteConnection, key: &StorageKey) -> Result<(), TxError> {
        delete_chain!(self, conn, key)
    }

    /// A revocation on PostgreSQL (see [`revoke`]).
    #[cfg(feature = "postgres")]
    async fn revoke_pg(
        &self,
        conn: &mut sqlx::PgConnection,
        user: &str,
        which: Revocation<'_>,
    ) -> Result<usize, TxError> {
        revoke!(self, conn, user, which)
    }

    /// A revocation on SQLite (see [`revoke`]).
    #[cfg(feature = "sqlite")]
    async fn revoke_sqlite(
        &self,
        conn: &mut sqlx::SqliteConnection,
        user: &str,
        which: Revocation<'_>,
    ) -> Result<usize, TxError> {
        revoke!(self, conn, user, which)
    }

    /// A revocation, run again when PostgreSQL aborts it to break a deadlock.
    async fn revoke(&self, user: &str, which: Revocation<'_>) -> Result<usize, StoreError> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                retrying!(self, self.revoke_pg(&mut conn, user, which).await)
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                retrying!(self, self.revoke_sqlite(&mut conn, user, which).await)
            }
        }
    }

    fn tx_err(&self, e: TxError) -> StoreError {
        match e {
            TxError::Db(e) => self.err(&e),
            TxError::Store(e) => e,
        }
    }

    /// `rotate` on PostgreSQL (see [`rotate_locked`]).
    #[cfg(feature = "postgres")]
    async fn rotate_pg(
        &self,
        conn: &mut sqlx::PgConnection,
        old: &StorageKey,
        new: &StorageKey,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        rotate_locked!(self, conn, old, new, rotation)
    }

    /// `rotate` on SQLite (see [`rotate_locked`]).
    #[cfg(feature = "sqlite")]
    async fn rotate_sqlite(
        &self,
        conn: &mut sqlx::SqliteConnection,
        old: &StorageKey,
        new: &StorageKey,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        rotate_locked!(self, conn, old, new, rotation)
    }
}

/// The four columns every `SELECT` of this module reads, in order:
/// `expires_at, absolute_deadline, last_seen, record`.
fn columns<R>(row: &R) -> Result<(i64, i64, i64, String), sqlx::Error>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The password of a `scheme://user:password@host` or `...?password=` URL,
/// to scrub it from errors.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn url_password(url: &str) -> Option<Arc<str>> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let in_userinfo = authority
        .split('/')
        .next()
        .and_then(|a| a.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password);
    let in_query = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("password=")));
    in_userinfo.or(in_query).filter(|p| !p.is_empty()).map(Arc::from)
}

fn db_err(e: &sqlx::Error, secret: Option<&str>) -> StoreError {
    let mut text = format!("sql: {e}");
    if let Some(s) = secret {
        text = text.replace(s, "<redacted>");
    }
    StoreError::Backend(text)
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn create(&self, key: &StorageKey, record: &Record) -> Result<bool, StoreError> {
        let text = self.encode(record)?;
        let meta = &record.meta;
        let now = to_i64(self.clock.now_ms());
        let id = key.as_bytes().as_slice();
        let q = &*self.queries;
        let n = dispatch!(&self.pool, p => sqlx::query(&q.create)
            .bind(id)
            .bind(to_i64(meta.expires_at.min(meta.absolute_deadline)))
            .bind(to_i64(meta.absolute_deadline))
            .bind(to_i64(meta.last_seen))
            .bind(&text)
            .bind(meta.user())
            .bind(meta.handle.to_string())
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| self.err(&e))?;
        Ok(n == 1)
    }

    async fn lookup(&self, key: &StorageKey) -> Result<Option<Stored>, StoreError> {
        let now = self.clock.now_ms();
        let q = &*self.queries;
        let row = dispatch!(&self.pool, p => {
            let row = sqlx::query(&q.load)
                .bind(key.as_bytes().as_slice())
                .bind(to_i64(now))
                .fetch_optional(p)
                .await;
            row.and_then(|row| row.as_ref().map(columns).transpose())
        })
        .map_err(|e| self.err(&e))?;
        let Some((expires_at, deadline, last_seen, text)) = row else {
            return Ok(None);
        };
        Ok(match self.decode_row(expires_at, deadline, last_seen, &text)? {
            Stored::Live(record) if record.is_expired(now) => None,
            Stored::Retired(retired) if retired.is_expired(now) => None,
            stored => Some(stored),
        })
    }

    async fn rotate(&self, old: &StorageKey, new: &StorageKey, rotation: &Rotation) -> Result<Rotated, StoreError> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                self.rotate_pg(&mut conn, old, new, rotation).await
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                self.rotate_sqlite(&mut conn, old, new, rotation).await
            }
        }
    }

    async fn apply(&self, key: &StorageKey, changes: &ChangeSet) -> Result<bool, StoreError> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                for _ in 0..OPTIMISTIC_ATTEMPTS {
                    if let Some(applied) = self.apply_optimistic(&mut conn, key, changes).await? {
                        return Ok(applied);
                    }
                }
                // Contended: wait for the row lock instead of reading again.
                self.apply_locked_pg(&mut conn, key, changes).await
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                self.apply_locked_sqlite(&mut conn, key, changes).await
            }
        }
    }

    async fn touch(&self, key: &StorageKey, last_seen: u64, expires_at: u64) -> Result<bool, StoreError> {
        let now = to_i64(self.clock.now_ms());
        let q = &*self.queries;
        let n = dispatch!(&self.pool, p => sqlx::query(&q.touch)
            .bind(key.as_bytes().as_slice())
            .bind(to_i64(last_seen))
            .bind(to_i64(expires_at))
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| self.err(&e))?;
        Ok(n == 1)
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        let q = &*self.queries;
        // The common case, a session's row, in one statement; it leaves a
        // retired row alone (also one that a rotation committed while this
        // statement waited for its lock).
        let n = dispatch!(&self.pool, p => sqlx::query(&q.delete)
            .bind(key.as_bytes().as_slice())
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| self.err(&e))?;
        if n > 0 {
            return Ok(());
        }
        // Absent or retired: follow the pointers, all or nothing.
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                retrying!(self, self.delete_chain_pg(&mut conn, key).await)
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                retrying!(self, self.delete_chain_sqlite(&mut conn, key).await)
            }
        }
    }

    async fn list_user(&self, user: &str) -> Result<Vec<Metadata>, StoreError> {
        let now = self.clock.now_ms();
        let q = &*self.queries;
        let rows = dispatch!(&self.pool, p => {
            let rows = sqlx::query(&q.list_user).bind(user).bind(to_i64(now)).fetch_all(p).await;
            rows.and_then(|rows| rows.iter().map(columns).collect::<Result<Vec<_>, _>>())
        })
        .map_err(|e| self.err(&e))?;
        let mut list = Vec::with_capacity(rows.len());
        for (expires_at, deadline, last_seen, text) in rows {
            // One unreadable row does not hide the user's other sessions.
            match self.decode(expires_at, deadline, last_seen, &text) {
                Ok(r) if !r.is_expired(now) && r.meta.user() == Some(user) => list.push(r.meta),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "unreadable session row of a user"),
            }
        }
        list.sort_by_key(|m| m.created_at);
        Ok(list)
    }

    async fn delete_by_handle(&self, user: &str, handle: &SessionHandle) -> Result<bool, StoreError> {
        let handle = handle.to_string();
        Ok(self.revoke(user, Revocation::Only(&handle)).await? > 0)
    }

    async fn delete_user(&self, user: &str, keep: Option<&SessionHandle>) -> Result<usize, StoreError> {
        match keep {
            None => self.revoke(user, Revocation::All).await,
            Some(keep) => self.revoke(user, Revocation::AllBut(&keep.to_string())).await,
        }
    }

    async fn try_lock(&self, key: &StorageKey, token: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let q = &*self.queries;
        let until = to_i64(now.saturating_add(ttl_ms));
        let inserted = dispatch!(&self.pool, p => sqlx::query(&q.try_lock_insert)
            .bind(key.as_bytes().as_slice())
            .bind(token)
            .bind(until)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| self.err(&e))?;
        if inserted == 1 {
            return Ok(true);
        }
        // A lease exists: take it over only if it ran out (or is ours).
        let updated = dispatch!(&self.pool, p => sqlx::query(&q.try_lock_update)
            .bind(key.as_bytes().as_slice())
            .bind(token)
            .bind(until)
            .bind(to_i64(now))
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| self.err(&e))?;
        Ok(updated == 1)
    }

    async fn unlock(&self, key: &StorageKey, token: &str) -> Result<(), StoreError> {
        let q = &*self.queries;
        dispatch!(&self.pool, p => sqlx::query(&q.unlock)
            .bind(key.as_bytes().as_slice())
            .bind(token)
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(|e| self.err(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        for ok in ["sessions", "_s", "App_Sessions_2", &"a".repeat(48)] {
            assert!(validate_table(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1s", "a-b", "a b", "a\"b", "s;drop", "schema.table", "é", &"a".repeat(49)] {
            assert!(validate_table(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn migration_files_match_the_generated_sql() {
        #[cfg(feature = "postgres")]
        assert_eq!(Dialect::Postgres.migration(DEFAULT_TABLE).unwrap(), POSTGRES_MIGRATION);
        #[cfg(feature = "sqlite")]
        assert_eq!(Dialect::Sqlite.migration(DEFAULT_TABLE).unwrap(), SQLITE_MIGRATION);
    }

    #[test]
    fn retired_text_is_a_pointer_here_and_an_expired_record_before() {
        let retired = Retired::new(StorageKey::from_bytes([7; 32]), 1_000, 31_000, 121_000);
        let text = encode_retired(&retired).unwrap();
        assert!(text.starts_with(RETIRED_PREFIX));
        assert_eq!(decode_retired(&text).unwrap(), retired);
        // What a reader of an earlier version (a `Record`) makes of it.
        let before: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(before.format, crate::RECORD_FORMAT);
        assert!(before.is_expired(0));
        assert!(before.data.is_empty());
        assert!(before.meta.user().is_none());
        // A record's JSON never starts like a pointer.
        let mut record = Record::new(Metadata::new(0, 1, 2));
        record.meta.auth = Some(crate::Auth::new("r", 0));
        assert!(!serde_json::to_string(&record).unwrap().starts_with(RETIRED_PREFIX));
    }

    #[test]
    fn a_logout_follows_live_pointers_only() {
        let to = StorageKey::from_bytes([2; 32]);
        let text = encode_retired(&Retired::new(to, 0, 0, 5_000)).unwrap();
        assert_eq!(live_pointer(5_000, Some(&text), 4_999), Some(to));
        assert_eq!(live_pointer(5_000, Some(&text), 5_000), None, "expired at its until");
        assert_eq!(live_pointer(5_000, None, 0), None, "a session's row");
        assert_eq!(live_pointer(5_000, Some("{\"r\":{}}"), 0), None, "an unreadable pointer");
    }

    #[test]
    fn a_revocation_counts_live_sessions_and_follows_each_pointer_once() {
        let k = |b: u8| StorageKey::from_bytes([b; 32]);
        let id = |b: u8| vec![b; 32];
        let pointer = |to: u8| Some(encode_retired(&Retired::new(k(to), 0, 0, 10)).unwrap());
        let mut revoked = Revoked::new(1_000);
        revoked.deleted((id(1), 0, 0, pointer(2)), 0); // a pointer to 2, deleted by the same statement
        revoked.deleted((id(2), 2_000, 3_000, None), 0); // a live session
        revoked.deleted((id(3), 1_000, 3_000, None), 0); // an expired session
        revoked.deleted((id(4), 0, 0, pointer(5)), 0); // a pointer to a row not deleted yet
        revoked.deleted((id(6), 0, 0, pointer(5)), 0); // another pointer to it
        revoked.deleted((id(7), 0, 0, None), 0); // a record with no deadline: no session
        assert_eq!(revoked.live, 1, "pointers and expired rows count for nothing");
        assert_eq!(revoked.next(), Some((k(5), 1)));
        assert_eq!(revoked.next(), None, "2 was deleted, 5 is visited once");
        revoked.deleted((id(5), 0, 0, pointer(8)), MAX_CHAIN);
        assert_eq!(revoked.next(), None, "no hop past the bound");
        revoked.deleted((id(9), 0, 0, pointer(8)), MAX_CHAIN - 1);
        assert_eq!(revoked.next(), Some((k(8), MAX_CHAIN)));
    }

    #[test]
    fn passwords_are_found_for_scrubbing() {
        assert_eq!(url_password("postgres://u:s3cret@h/db").as_deref(), Some("s3cret"));
        assert_eq!(url_password("postgres://u:p@ss@h:5432/db?x=1").as_deref(), Some("p@ss"));
        assert_eq!(url_password("postgres://u@h/db"), None);
        assert_eq!(url_password("postgres://h/db?sslmode=disable&password=xyz").as_deref(), Some("xyz"));
        let e = db_err(&sqlx::Error::Protocol("auth failed for s3cret".into()), Some("s3cret"));
        assert!(!e.to_string().contains("s3cret"));
    }
}

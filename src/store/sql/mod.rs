//! [`SqlStore`]: sessions in PostgreSQL, SQLite or MySQL/MariaDB (through `sqlx`).

mod apply;
mod cleanup;
mod codec;
mod connection;
mod cutoffs;
mod delete;
mod dialect;
mod lease;
#[cfg(feature = "postgres")]
mod merge;
mod queries;
mod rotate;
mod row;
mod tx;
mod user_index;

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;

#[cfg(doc)]
use crate::store::Retired;
use crate::{
    store::{
        ChangeSet, Cutoff, Cutoffs, Leases, Metadata, Record, Rotated, Rotation, Scope, SessionStore, StorageKey,
        StoreError, Stored, UserIndex,
    },
    Clock, SessionHandle,
};
use connection::{dispatch, Pool};
use dialect::validate_table;
pub use dialect::Dialect;
use queries::Queries;
use user_index::Revocation;

#[cfg(feature = "mysql")]
use sqlx::mysql::MySqlPool;
#[cfg(feature = "postgres")]
use sqlx::postgres::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::sqlite::SqlitePool;

const DEFAULT_TABLE: &str = "sessionware_sessions";

const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

const DEFAULT_CLEANUP_BATCH: u32 = 10_000;

#[cfg(feature = "postgres")]
const POSTGRES_MIGRATION: &str = include_str!("../../../migrations/postgres/0001_sessionware_sessions.sql");

#[cfg(feature = "sqlite")]
const SQLITE_MIGRATION: &str = include_str!("../../../migrations/sqlite/0001_sessionware_sessions.sql");

#[cfg(feature = "mysql")]
const MYSQL_MIGRATION: &str = include_str!("../../../migrations/mysql/0001_sessionware_sessions.sql");

/// A [`SessionStore`] on PostgreSQL, SQLite or MySQL/MariaDB, through a
/// `sqlx` pool.
///
/// One type for all three databases: the SQL differs in a handful of words
/// (placeholders, `FOR UPDATE`, `GREATEST`), so an internal enum picks the
/// dialect and everything else (encoding, expiry checks, cleanup) is shared.
/// The sections below describe the schema and the statements.
///
/// Run [`migrate`](Self::migrate) once (it is idempotent), or apply
/// [`migration_sql`](Self::migration_sql) with your own migration tool.
///
/// ```no_run
/// use std::time::Duration;
/// use sessionware::{Keys, SessionLayer, store::SqlStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SqlStore::postgres("postgres://app@localhost/app").await?;
/// store.migrate().await?;
/// let _cleanup = store.spawn_cleanup(Duration::from_secs(300), sessionware::SystemClock);
/// let layer = SessionLayer::new(store, Keys::generate()?);
/// # Ok(()) }
/// ```
///
/// # Schema
///
/// One row per session (see [`SqlStore::migration_sql`]; the default table is
/// `sessionware_sessions`, and `migrations/` holds the same text as files):
///
/// | column | type | what |
/// |---|---|---|
/// | `id` | `BYTEA` / `BLOB`, primary key | the 32-byte SHA-256 digest of the session ID, never the ID |
/// | `expires_at` | `BIGINT`, indexed | ms since the Unix epoch: the earlier of the idle and absolute deadlines |
/// | `absolute_deadline` | `BIGINT` | ms since the Unix epoch |
/// | `last_seen` | `BIGINT` | ms since the Unix epoch |
/// | `user_id` | `TEXT`, indexed, `NULL` when anonymous | the logged-in user (the per-user index) |
/// | `handle` | `TEXT` | the session's public [`SessionHandle`] |
/// | `record` | `TEXT` | the JSON of the [`Record`], byte for byte |
///
/// The time columns are authoritative: `touch` updates only them, and a loaded
/// record takes its times from them. Times past `i64::MAX` are stored as
/// `i64::MAX`.
///
/// # Retired keys
///
/// A key that [`rotate`](SessionStore::rotate) retired keeps its row, turned
/// into the [`Retired`] pointer, with no schema change (no migration: a table
/// created by an earlier version is used as it is):
///
/// - `record` holds `{"r":{<the Retired pointer>},"v":1,"m":{...},"d":{}}`.
///   A record's JSON always starts with `{"v":`, so the `{"r":` prefix tells
///   a pointer apart at no cost on the hot paths (`load`, `apply` read the
///   same row as before). The rest is an empty record that expired at 0: a
///   process still on an earlier version reads the row as an expired
///   session (no session, and no decoding error) during a rolling upgrade.
/// - `absolute_deadline` is 0: this marks a pointer in SQL. `touch` (and
///   any expiry check) never takes the row for a session, and every query on
///   sessions leaves it out (`list_user`: `absolute_deadline <> 0`; the
///   counts of the revocations and of cleanup count only session rows).
/// - `user_id` and `handle` are the **successor's** (for a rotation without
///   a login, the old row's): a revocation that found the old row as a
///   session of the user and waited for the rotation's lock still matches
///   the row the rotation left, and follows it (see *Revocations* below).
///   An earlier version's `delete_user` deletes such rows too (and counts
///   them) during a rolling upgrade.
/// - `expires_at` is the pointer's [`until`](Retired::until): `load` returns
///   it until then, `create` and `rotate` do not overwrite it until then, and
///   cleanup removes it afterwards like an expired session.
///
/// # Logout on a retired key
///
/// [`delete`](SessionStore::delete) follows a retired pointer only while it
/// is live (`expires_at`, its `until`, after the request's time), from pointer
/// to pointer (at most 16 rows visited); the pointers it visits are deleted,
/// live or not. The live session at the end is deleted only if its
/// `predecessor` (in the record's JSON) is the last pointer followed: a
/// successor that its client has used (the layer's `close_overlap` cleared
/// the predecessor) survives a logout through the old ID, and so does any
/// session once the pointer expired.
///
/// # Revocations
///
/// `delete_user` and `delete_by_handle` must end a session even when a
/// rotation moves it to a new key while they run. A single `DELETE ... WHERE
/// user_id = ?` cannot: in PostgreSQL it sees the rows of its snapshot, so
/// it finds the old row, waits for the rotation's lock, and never sees the
/// successor, inserted after its snapshot. So a revocation is one
/// transaction (PostgreSQL: `READ COMMITTED`, whatever the server's default;
/// SQLite: `BEGIN IMMEDIATE`):
///
/// 1. one `DELETE ... RETURNING` of the rows that carry the user (and the
///    handle, or not the handle to keep): the live sessions, which it
///    counts, and the retired pointers, whatever their `until`;
/// 2. for each pointer deleted whose successor step 1 did not delete, one
///    `DELETE ... RETURNING` of the successor's row under the same
///    conditions (user, handle), a statement of its own, that sees what
///    committed before it; a pointer there is followed in turn (at most 16
///    hops). Its live session is counted.
///
/// Every row deleted matches the revocation when it is deleted: a session
/// that became another user's by a login is not ended. A rotation racing
/// the revocation either commits before step 1's snapshot (step 1 sees the
/// successor), or step 1 reaches the old row after the rotation locked it:
/// PostgreSQL waits for the rotation, then checks step 1's conditions again
/// on the row the rotation left (READ COMMITTED), which still matches
/// (same user and handle, a pointer), deletes it, and step 2 deletes the
/// successor. A rotation that locks the row after step 1 finds it deleted
/// and creates nothing. In SQLite, writers run one at a time, so step 1
/// sees either the rotation's result or the session as it was.
///
/// Two such transactions (or one and a logout's chain) may lock shared rows
/// in different orders; PostgreSQL then aborts one of them (a deadlock,
/// SQLSTATE `40P01`), which changed nothing and runs again (3 attempts).
///
/// # Operations
///
/// Round trips are to the server (PostgreSQL); in SQLite each is a call
/// into the library on the connection's thread.
///
/// - `create`: `INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE expires_at <= now`,
///   so a live row (a live retired pointer included) is never overwritten
///   and an expired one may be replaced. 1 statement.
/// - `load` / `lookup`: `SELECT ... WHERE id = ? AND expires_at > now`; the
///   row is a record or a pointer. 1 statement.
/// - `apply`: the result is always [`Record::try_apply`]'s on the row as
///   stored (it refuses a merged record past [`ChangeSet::max_data_bytes`]
///   with [`StoreError::TooLarge`], writing nothing), and only a live
///   session's row is written (never an expired row, a retired pointer or
///   a deleted key).
///   - A change set that changes neither data nor flags (`persistent`,
///     `close_overlap`) is the `UPDATE` of `touch`: 1 statement, every
///     dialect.
///   - PostgreSQL, any other change set: **1 statement**, an `UPDATE` of
///     the row whose new `record` the server builds from the row's own
///     JSON text: the stored entries the change set does not touch, copied
///     as they are written (`json_each` on the `json` type hands back each
///     value's exact text), then the raw JSON it sets; `persistent` and
///     `close_overlap` rewrite the metadata's fields the same way. It
///     writes only a live session's row, and only one whose text is short
///     enough that the merged data surely fits the cap (the text is at
///     least as long as its data's [`Data::size`](crate::store::Data::size))
///     and the new text the record size of
///     [`with_max_record_bytes`](Self::with_max_record_bytes). A writer
///     that holds the row is waited for, then PostgreSQL evaluates the
///     conditions and the new text again on the row as that writer
///     committed it (READ COMMITTED), so a concurrent write is never lost,
///     and a row that became a pointer or was deleted meanwhile is not
///     written. No schema change: `record` stays `TEXT`, and rows of every
///     release are read and written as they are. When the statement writes
///     nothing (no live session there; a text too long for the shortcut,
///     so the cap is checked exactly below; a record of another format; a
///     key with `\u0000`, which a PostgreSQL text cannot hold), the general
///     path below runs and gives the answer: 1 more statement for an
///     absent, expired or retired key or a refusal at the cap, 2 for a
///     write that lands.
///   - The general path: the record is merged in Rust with
///     [`Record::try_apply`] and written back with one `UPDATE`, only if
///     the row exists, is not expired and is no pointer. In PostgreSQL,
///     without a transaction, as a compare-and-set on the row version:
///     `SELECT ..., xmin` then `UPDATE ... WHERE id = ? AND xmin = ?`
///     (2 statements), read again when another write got in between, and
///     after 3 such attempts one transaction that locks the row (`BEGIN` +
///     `SELECT ... FOR UPDATE` + `UPDATE` + `COMMIT`). In SQLite and MySQL,
///     always the transaction (SQLite: `BEGIN IMMEDIATE` + `SELECT` +
///     `UPDATE` + `COMMIT`). Both run on one pooled connection.
/// - `touch`: one `UPDATE` of `last_seen` and `expires_at` (capped at
///   `absolute_deadline` in SQL), only on a live row (never a pointer).
/// - `rotate`: one transaction on one pooled connection: `BEGIN` (SQLite:
///   `BEGIN IMMEDIATE`, the write lock), `SELECT ... FOR UPDATE` of the old
///   row (a live record, or the answer is [`Rotated::Gone`] /
///   [`Rotated::Retired`]), the successor built in Rust by
///   [`Rotation::successor`] from that row, `INSERT` of the successor with
///   the statement of `create` (a live row or live pointer there:
///   [`Rotated::Taken`]), an `UPDATE` that turns the old row into the
///   pointer, `COMMIT`: 5 round trips. `Gone` and `Retired` take 3 (`BEGIN`,
///   `SELECT`, `ROLLBACK`), `Taken` 4; a successor refused by the data cap
///   (or the record size cap) takes 4 too: a `SELECT` of the new key
///   answers `Taken` first, as the contract orders it.
/// - `rotate` of a login under a per-user limit
///   ([`Login::limit`](crate::store::Login::limit)): the same transaction in
///   READ COMMITTED (PostgreSQL, whatever the server's default), which first
///   locks the user's row of `<table>_cutoffs` (the upsert of `cut` with a
///   credential epoch of 0, which moves nothing: the limited logins of one
///   user take turns on it),
///   then, after the `SELECT ... FOR UPDATE` of the old row, reads the
///   user's sessions (the statement of `list_user`, a plain read in a
///   snapshot taken after the lock), and, after the successor's `INSERT`
///   and the pointer's `UPDATE`, ends the least recently used ones with the
///   statements of `delete_by_handle`: 2 more round trips, and 1 (or, on
///   MySQL, 2) per session ended. A refusal rolls back after the read.
/// - `delete`: `DELETE ... WHERE id = ? AND absolute_deadline <> 0`: a
///   session's row goes in 1 statement (in PostgreSQL, a rotation that
///   commits while the statement waits for the row leaves a pointer, which
///   the statement then skips). When nothing was deleted (the key is absent
///   or retired), one transaction follows the chain (see *Logout on a
///   retired key*): `BEGIN`, `DELETE ... RETURNING` of the key's row, then
///   per row followed `SELECT ... FOR UPDATE` (which waits for a rotation of
///   it under way, and reads its result) and, if it goes, `DELETE`;
///   `COMMIT`. An absent key or an expired pointer: 4 round trips in all; a
///   retired key and its unused successor: 6; a used successor: 5; each
///   further pointer of a chain: 2 more. All or nothing.
/// - `list_user`: 1 `SELECT` on `user_id`, of session rows only.
/// - `delete_by_handle`, `delete_user`: `BEGIN`, 1 `DELETE ... RETURNING`,
///   `COMMIT` (3 round trips), plus 1 `DELETE ... RETURNING` per hop from a
///   deleted pointer whose successor the first statement did not delete (a
///   rotation that committed meanwhile; a successor already gone, until
///   cleanup removes its pointer; a successor that is another user's).
///
/// # MySQL and MariaDB
///
/// The same rows and guarantees, with what MySQL 8 and MariaDB 10.5+ both
/// have (see [`MYSQL_MIGRATION`](SqlStore::MYSQL_MIGRATION) for the InnoDB schema; the user, handle
/// and lease token are binary strings, compared byte for byte):
///
/// - No `ON CONFLICT`: `create` (and a rotation's successor) is an
///   `INSERT`; on a duplicate key, a `DELETE` of that row only if it
///   expired, and, if it went, the `INSERT` again (a duplicate key then
///   means another writer took the key: nothing written). 1 statement when
///   the key is free.
/// - No `xmin`, and no JSON function that keeps a value's text: `apply` of
///   a change set with data or flags is always the locking transaction
///   (`BEGIN` + `SELECT ... FOR UPDATE` + `UPDATE` + `COMMIT`). MariaDB's
///   `JSON_SET`, `JSON_REMOVE` and `JSON_MERGE_PATCH` print the whole
///   document again (`{"z":1}` comes back as `{"z": 1}`), and MySQL 8's
///   parse it into their binary form (which, per MySQL's manual, drops
///   duplicate keys, sorts object keys and keeps numbers as integers or
///   doubles), so a merge in the server would not give the values back
///   byte for byte.
/// - No `RETURNING`: each `DELETE ... RETURNING` of `delete`'s chain and of
///   the revocations is a `SELECT ... FOR UPDATE` of the same rows, then a
///   `DELETE` of each by key, in the same transaction; cleanup deletes
///   expired sessions and expired pointers by two batched statements
///   (`DELETE ... LIMIT`; no `SKIP LOCKED`: a row locked by a writer is
///   waited for).
/// - Every transaction runs in READ COMMITTED (`SET TRANSACTION ISOLATION
///   LEVEL READ COMMITTED; BEGIN`): its reads are locking reads, which see
///   the latest committed row (what PostgreSQL's READ COMMITTED re-check
///   gives a revocation queued behind a rotation), and no gap locks are
///   taken. A transaction that InnoDB aborts for a deadlock (1213) or a
///   lock wait timeout (1205) runs again (3 attempts); a lease poll that
///   is a deadlock's victim takes nothing, and is polled again.
///
/// Expired rows (and retired ones past their `until`) are removed by
/// [`SqlStore::delete_expired`] (in batches) or by the task of
/// [`SqlStore::spawn_cleanup`]; it counts the sessions among them.
#[derive(Clone)]
pub struct SqlStore {
    pool: Pool,
    dialect: Dialect,
    table: Arc<str>,
    queries: Arc<Queries>,
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
    /// The default table name.
    ///
    /// ```
    /// assert_eq!(sessionware::store::SqlStore::DEFAULT_TABLE, "sessionware_sessions");
    /// ```
    pub const DEFAULT_TABLE: &'static str = DEFAULT_TABLE;

    /// The default cap on the size of one record's JSON, in bytes (1 MiB).
    ///
    /// ```
    /// assert_eq!(sessionware::store::SqlStore::DEFAULT_MAX_RECORD_BYTES, 1 << 20);
    /// ```
    pub const DEFAULT_MAX_RECORD_BYTES: usize = DEFAULT_MAX_RECORD_BYTES;

    /// The default number of rows [`SqlStore::delete_expired`] deletes per statement.
    ///
    /// ```
    /// assert!(sessionware::store::SqlStore::DEFAULT_CLEANUP_BATCH > 0);
    /// ```
    pub const DEFAULT_CLEANUP_BATCH: u32 = DEFAULT_CLEANUP_BATCH;

    /// The PostgreSQL migration for the default table (the text of
    /// `migrations/postgres/0001_sessionware_sessions.sql`).
    ///
    /// ```
    /// assert!(sessionware::store::SqlStore::POSTGRES_MIGRATION.contains("BYTEA PRIMARY KEY"));
    /// ```
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub const POSTGRES_MIGRATION: &'static str = POSTGRES_MIGRATION;

    /// The SQLite migration for the default table (the text of
    /// `migrations/sqlite/0001_sessionware_sessions.sql`).
    ///
    /// ```
    /// assert!(sessionware::store::SqlStore::SQLITE_MIGRATION.contains("BLOB PRIMARY KEY"));
    /// ```
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub const SQLITE_MIGRATION: &'static str = SQLITE_MIGRATION;

    /// The MySQL/MariaDB migration for the default table (the text of
    /// `migrations/mysql/0001_sessionware_sessions.sql`).
    ///
    /// ```
    /// assert!(sessionware::store::SqlStore::MYSQL_MIGRATION.contains("BINARY(32) NOT NULL PRIMARY KEY"));
    /// ```
    #[cfg(feature = "mysql")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
    pub const MYSQL_MIGRATION: &'static str = MYSQL_MIGRATION;

    fn with_pool(pool: Pool, dialect: Dialect) -> Self {
        Self {
            pool,
            dialect,
            table: Arc::from(DEFAULT_TABLE),
            queries: Arc::new(Queries::new(dialect, DEFAULT_TABLE)),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            cleanup_batch: DEFAULT_CLEANUP_BATCH,
            secret: None,
        }
    }

    /// Connects a pool (10 connections, 5 s acquire timeout) to the
    /// PostgreSQL database at `url`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::SqlStore::postgres("postgres://postgres@127.0.0.1:5432/test").await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn postgres(url: &str) -> Result<Self, StoreError> {
        let secret = connection::url_password(url);
        let pool = connection::postgres(url, secret.as_deref()).await?;
        let mut store = Self::from_postgres_pool(pool);
        store.secret = secret;
        Ok(store)
    }

    /// A store on an existing PostgreSQL pool.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect("postgres://localhost/app").await?;
    /// let store = sessionware::store::SqlStore::from_postgres_pool(pool);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub fn from_postgres_pool(pool: PgPool) -> Self {
        Self::with_pool(Pool::Postgres(pool), Dialect::Postgres)
    }

    /// Opens (and creates if missing) the SQLite database file at `path`:
    /// a plain path, or a URL such as `sqlite://sessions.db` or
    /// `sqlite:///var/lib/app/sessions.db`. The database is switched to WAL
    /// mode, and a connection waits up to 5 s for a locked database.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::SqlStore::sqlite("sqlite://sessions.db").await?;
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub async fn sqlite(path: &str) -> Result<Self, StoreError> {
        Ok(Self::from_sqlite_pool(connection::sqlite(path).await?))
    }

    /// A store on an existing SQLite pool. Give it a busy timeout: `apply`
    /// takes the write lock with `BEGIN IMMEDIATE` and waits for it.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::sqlite::SqlitePoolOptions::new().connect("sqlite://sessions.db?mode=rwc").await?;
    /// let store = sessionware::store::SqlStore::from_sqlite_pool(pool);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub fn from_sqlite_pool(pool: SqlitePool) -> Self {
        Self::with_pool(Pool::Sqlite(pool), Dialect::Sqlite)
    }

    /// Connects a pool (10 connections, 5 s acquire timeout) to the MySQL
    /// 8 or MariaDB 10.5+ database at `url` (`mysql://user:password@host:3306/db`;
    /// `mariadb://` is accepted for `mysql://`). The tables are InnoDB; the
    /// store's transactions run in READ COMMITTED.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::SqlStore::mysql("mysql://root@127.0.0.1:3306/test").await?;
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "mysql")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
    pub async fn mysql(url: &str) -> Result<Self, StoreError> {
        let secret = connection::url_password(url);
        let pool = connection::mysql(url, secret.as_deref()).await?;
        let mut store = Self::from_mysql_pool(pool);
        store.secret = secret;
        Ok(store)
    }

    /// A store on an existing MySQL/MariaDB pool.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::mysql::MySqlPoolOptions::new().max_connections(4).connect("mysql://app@localhost/app").await?;
    /// let store = sessionware::store::SqlStore::from_mysql_pool(pool);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "mysql")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
    pub fn from_mysql_pool(pool: MySqlPool) -> Self {
        Self::with_pool(Pool::Mysql(pool), Dialect::Mysql)
    }

    /// Uses `table` instead of `sessionware_sessions` (validated as a plain
    /// identifier, see [`Dialect::migration`]).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::SqlStore::sqlite("sessions.db").await?.with_table("app_sessions")?;
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

    /// Sets the largest record JSON, in bytes, that the store writes or
    /// accepts when reading (default 1 MiB); larger ones fail with
    /// [`StoreError::Codec`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::SqlStore::sqlite("sessions.db").await?.with_max_record_bytes(64 * 1024);
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
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::SqlStore::sqlite("sessions.db").await?.with_cleanup_batch(1_000);
    /// # Ok(()) }
    /// ```
    pub fn with_cleanup_batch(mut self, rows: u32) -> Self {
        self.cleanup_batch = rows;
        self
    }

    /// The table name.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// assert_eq!(sessionware::store::SqlStore::sqlite("sessions.db").await?.table(), "sessionware_sessions");
    /// # Ok(()) }
    /// ```
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The database this store talks to.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// use sessionware::store::Dialect;
    /// assert_eq!(sessionware::store::SqlStore::sqlite("sessions.db").await?.dialect(), Dialect::Sqlite);
    /// # Ok(()) }
    /// ```
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The PostgreSQL pool, if this store is on PostgreSQL.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::SqlStore::postgres("postgres://localhost/app").await?;
    /// assert!(store.postgres_pool().is_some());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The SQLite pool, if this store is on SQLite.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::SqlStore::sqlite("sessions.db").await?;
    /// assert!(store.sqlite_pool().is_some());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(p) => Some(p),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The MySQL/MariaDB pool, if this store is on MySQL or MariaDB.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::SqlStore::mysql("mysql://root@127.0.0.1:3306/test").await?;
    /// assert!(store.mysql_pool().is_some());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "mysql")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
    pub fn mysql_pool(&self) -> Option<&MySqlPool> {
        match &self.pool {
            Pool::Mysql(p) => Some(p),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The migration for this store's dialect and table: one
    /// `CREATE TABLE IF NOT EXISTS` and one `CREATE INDEX IF NOT EXISTS`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::SqlStore::sqlite("sessions.db").await?.with_table("s")?;
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
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// sessionware::store::SqlStore::sqlite("sessions.db").await?.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let sql = self.dialect.migration(&self.table)?;
        dispatch!(&self.pool, p => sqlx::raw_sql(&sql).execute(p).await.map(|_| ())).map_err(|e| self.err(&e))
    }

    /// Deletes every session row expired at `now` (ms since the epoch),
    /// retired pointer past its `until` and expired lease, and returns how many sessions (not pointers) were
    /// deleted. Runs in
    /// batches (see [`with_cleanup_batch`](Self::with_cleanup_batch)); in
    /// PostgreSQL, rows locked by a concurrent `apply` or another cleanup are
    /// skipped, so several processes can clean up at once.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// use sessionware::{Clock, SystemClock};
    /// let store = sessionware::store::SqlStore::sqlite("sessions.db").await?;
    /// let removed = store.delete_expired(SystemClock.now_ms()).await?;
    /// println!("{removed} expired sessions removed");
    /// # Ok(()) }
    /// ```
    pub async fn delete_expired(&self, now: u64) -> Result<u64, StoreError> {
        self.delete_expired_rows(now).await
    }

    /// Spawns a Tokio task that calls [`delete_expired`](Self::delete_expired)
    /// every `every` (first call right away), with the time `clock` gives
    /// (the store keeps no clock; pass [`SystemClock`](crate::SystemClock),
    /// or the layer's clock in tests). A failed run is logged (a
    /// `tracing` warning) and the task carries on; abort the returned handle
    /// to stop it. Must be called within a Tokio runtime.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::SqlStore::sqlite("sessions.db").await?;
    /// let task = store.spawn_cleanup(std::time::Duration::from_secs(600), sessionware::SystemClock);
    /// // at shutdown:
    /// task.abort();
    /// # Ok(()) }
    /// ```
    pub fn spawn_cleanup(&self, every: Duration, clock: impl Clock) -> tokio::task::JoinHandle<()> {
        self.spawn_cleanup_task(every, Arc::new(clock))
    }
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn create(&self, key: &StorageKey, record: &Record, now: u64) -> Result<bool, StoreError> {
        self.insert_row(key, record, now).await
    }

    async fn lookup(&self, key: &StorageKey, now: u64) -> Result<Option<Stored>, StoreError> {
        self.select_row(key, now).await
    }

    async fn rotate(&self, old: &StorageKey, new: &StorageKey, rotation: &Rotation) -> Result<Rotated, StoreError> {
        self.rotate_tx(old, new, rotation).await
    }

    async fn apply(&self, key: &StorageKey, changes: &ChangeSet, now: u64) -> Result<bool, StoreError> {
        self.apply_changes(key, changes, now).await
    }

    async fn touch(&self, key: &StorageKey, now: u64, expires_at: u64) -> Result<bool, StoreError> {
        self.touch_row(key, now, expires_at, now).await
    }

    async fn delete(&self, key: &StorageKey, now: u64) -> Result<(), StoreError> {
        self.delete_with_chain(key, now).await
    }
}

#[async_trait]
impl Cutoffs for SqlStore {
    async fn cut(&self, scope: Scope<'_>, not_before: u64, keep_until: u64, _now: u64) -> Result<(), StoreError> {
        self.cut_scope(scope, not_before, keep_until).await
    }

    async fn cutoff(&self, user: Option<&str>, _now: u64) -> Result<Cutoff, StoreError> {
        self.read_cutoff(user).await
    }
}

#[async_trait]
impl UserIndex for SqlStore {
    async fn list_user(&self, user: &str, now: u64, limit: usize) -> Result<Vec<Metadata>, StoreError> {
        self.list_sessions(user, now, limit).await
    }

    async fn delete_by_handle(&self, user: &str, handle: &SessionHandle, now: u64) -> Result<bool, StoreError> {
        let handle = handle.to_string();
        Ok(self.revoke(user, Revocation::Only(&handle), now).await? > 0)
    }

    async fn delete_user(&self, user: &str, keep: Option<&SessionHandle>, now: u64) -> Result<usize, StoreError> {
        match keep {
            None => self.revoke(user, Revocation::All, now).await,
            Some(keep) => self.revoke(user, Revocation::AllBut(&keep.to_string()), now).await,
        }
    }
}

#[async_trait]
impl Leases for SqlStore {
    async fn try_lock(&self, key: &StorageKey, token: &str, ttl_ms: u64, now: u64) -> Result<bool, StoreError> {
        self.take_lease(key, token, ttl_ms, now).await
    }

    async fn unlock(&self, key: &StorageKey, token: &str, _now: u64) -> Result<(), StoreError> {
        self.release_lease(key, token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_files_match_the_generated_sql() {
        #[cfg(feature = "postgres")]
        assert_eq!(Dialect::Postgres.migration(DEFAULT_TABLE).unwrap(), POSTGRES_MIGRATION);
        #[cfg(feature = "sqlite")]
        assert_eq!(Dialect::Sqlite.migration(DEFAULT_TABLE).unwrap(), SQLITE_MIGRATION);
        #[cfg(feature = "mysql")]
        assert_eq!(Dialect::Mysql.migration(DEFAULT_TABLE).unwrap(), MYSQL_MIGRATION);
    }
}

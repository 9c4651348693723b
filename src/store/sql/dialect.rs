//! [`Dialect`]: which database a [`SqlStore`](super::SqlStore) talks to, the
//! words of SQL that differ between them, and the migration.

use crate::store::StoreError;

/// Which database a [`SqlStore`](super::SqlStore) talks to.
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// assert_eq!(format!("{:?}", sessionware::store::Dialect::Sqlite), "Sqlite");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// PostgreSQL (feature `postgres`).
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    Postgres,
    /// SQLite (feature `sqlite`).
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    Sqlite,
    /// MySQL 8 or MariaDB 10.5+ (feature `mysql`), on InnoDB.
    #[cfg(feature = "mysql")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
    Mysql,
}

impl Dialect {
    /// The migration that creates `table` and its index in this dialect.
    /// `table` must be a plain identifier: ASCII letters, digits and `_`, not
    /// starting with a digit, at most 48 bytes.
    ///
    /// ```
    /// # #[cfg(feature = "postgres")] {
    /// use sessionware::store::{Dialect, SqlStore};
    /// assert_eq!(Dialect::Postgres.migration("sessionware_sessions").unwrap(), SqlStore::POSTGRES_MIGRATION);
    /// assert!(Dialect::Postgres.migration("x; DROP TABLE users").is_err());
    /// # }
    /// ```
    pub fn migration(self, table: &str) -> Result<String, StoreError> {
        validate_table(table)?;
        #[cfg(feature = "mysql")]
        if self == Self::Mysql {
            return Ok(mysql_migration(table));
        }
        let Syntax { id, blob, text, .. } = self.syntax();
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
             );\n\
             -- cutoffs (store::Cutoffs): scope 0 ends every session created before not_before (user_id ''),\n\
             -- scope 1 the sessions user_id signed in to before it; kept until keep_until\n\
             CREATE TABLE IF NOT EXISTS \"{table}_cutoffs\" (\n    \
             scope      SMALLINT NOT NULL,\n    \
             user_id    TEXT NOT NULL,\n    \
             not_before BIGINT NOT NULL,\n    \
             keep_until BIGINT NOT NULL,\n    \
             PRIMARY KEY (scope, user_id)\n\
             );\n"
        ))
    }

    /// The words of SQL that differ in this dialect.
    pub(super) fn syntax(self) -> &'static Syntax {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres => &POSTGRES,
            #[cfg(feature = "sqlite")]
            Self::Sqlite => &SQLITE,
            #[cfg(feature = "mysql")]
            Self::Mysql => &MYSQL,
        }
    }
}

/// The MySQL/MariaDB migration: the same columns in InnoDB, with the
/// indexes inside `CREATE TABLE` (MySQL has no `CREATE INDEX IF NOT
/// EXISTS`). The user, the handle and the lease token are binary strings,
/// compared byte for byte: under the default collations `'Alice' =
/// 'alice '` holds, and a revocation must never match another user's
/// sessions. The user ID has no length limit; its index covers the first
/// 255 bytes.
#[cfg(feature = "mysql")]
fn mysql_migration(table: &str) -> String {
    format!(
        "-- sessionware session tables (MySQL 8, MariaDB 10.5+). Times are milliseconds since the Unix epoch.\n\
         CREATE TABLE IF NOT EXISTS `{table}` (\n    \
         -- SHA-256 digest of the session ID (32 bytes), never the ID itself\n    \
         id                BINARY(32) NOT NULL PRIMARY KEY,\n    \
         -- the earlier of the idle and absolute deadlines\n    \
         expires_at        BIGINT NOT NULL,\n    \
         absolute_deadline BIGINT NOT NULL,\n    \
         last_seen         BIGINT NOT NULL,\n    \
         -- the logged-in user (NULL when anonymous) and the session's public handle, compared byte for byte\n    \
         user_id           BLOB,\n    \
         handle            VARBINARY(255) NOT NULL,\n    \
         -- JSON of the record (format, metadata, data); the columns above are authoritative\n    \
         record            LONGTEXT CHARACTER SET utf8mb4 NOT NULL,\n    \
         INDEX `{table}_expires_at_idx` (expires_at),\n    \
         INDEX `{table}_user_id_idx` (user_id(255))\n\
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\
         -- exclusive leases of sessions (Session::lock), keyed like the sessions\n\
         CREATE TABLE IF NOT EXISTS `{table}_locks` (\n    \
         id          BINARY(32) NOT NULL PRIMARY KEY,\n    \
         token       VARBINARY(255) NOT NULL,\n    \
         lease_until BIGINT NOT NULL\n\
         ) ENGINE=InnoDB;\n\
         -- cutoffs (store::Cutoffs): scope 0 ends every session created before not_before (user_id ''),\n\
         -- scope 1 the sessions user_id signed in to before it; kept until keep_until.\n\
         -- user_id is the SHA-256 digest of the user (UNHEX(SHA2(user, 256))): a user ID has no length limit\n\
         CREATE TABLE IF NOT EXISTS `{table}_cutoffs` (\n    \
         scope      SMALLINT NOT NULL,\n    \
         user_id    BINARY(32) NOT NULL,\n    \
         not_before BIGINT NOT NULL,\n    \
         keep_until BIGINT NOT NULL,\n    \
         PRIMARY KEY (scope, user_id)\n\
         ) ENGINE=InnoDB;\n"
    )
}

pub(super) fn validate_table(table: &str) -> Result<(), StoreError> {
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

/// What differs between the dialects: the column types of the migration,
/// `BEGIN` and the transaction of the chains, `FOR UPDATE`, `GREATEST`,
/// `LEAST`, the batch cleanup, how a cleanup statement counts what it
/// deleted, and the placeholders. Everything else in
/// [`Queries`](super::queries::Queries) is shared.
pub(super) struct Syntax {
    /// How identifiers are quoted (`"` or MySQL's backtick).
    pub(super) quote: char,
    /// Whether `DELETE` has `RETURNING` and `INSERT` has `ON CONFLICT`
    /// (PostgreSQL, SQLite). Without them (MySQL), a deletion that must see
    /// what it deletes is a `SELECT ... FOR UPDATE` then a `DELETE` in the
    /// same transaction, and `create` is an `INSERT` that, on a duplicate
    /// key, deletes the row only if it expired and inserts once more.
    pub(super) returning: bool,
    /// The migration's `id` column (type and constraints), the type of the
    /// leases' `id`, and the type of `record`.
    pub(super) id: &'static str,
    pub(super) blob: &'static str,
    pub(super) text: &'static str,
    pub(super) begin: &'static str,
    pub(super) begin_follow: &'static str,
    pub(super) for_update: &'static str,
    pub(super) greatest: &'static str,
    pub(super) least: &'static str,
    /// The batch cleanup of the (quoted) table: `$1` is now, `$2` the batch.
    pub(super) batch: fn(&str) -> String,
    pub(super) counted: fn(String) -> String,
    pub(super) sql: fn(String) -> String,
    /// The cutoffs table's key of the user that an expression names: the
    /// user itself, or (MySQL) its SHA-256 digest, since a user ID has no
    /// length limit there and an index key has.
    pub(super) cut_key: fn(&str) -> String,
}

#[cfg(feature = "postgres")]
const POSTGRES: Syntax = Syntax {
    quote: '"',
    returning: true,
    id: "BYTEA PRIMARY KEY CHECK (octet_length(id) = 32)",
    blob: "BYTEA",
    text: "TEXT",
    begin: "BEGIN",
    begin_follow: "BEGIN ISOLATION LEVEL READ COMMITTED",
    for_update: " FOR UPDATE",
    greatest: "GREATEST",
    least: "LEAST",
    // By ctid: a TID scan of the locked rows, not a join over the
    // table (20x faster per batch).
    batch: |t| {
        format!(
            "DELETE FROM {t} WHERE ctid = ANY(ARRAY(\
             SELECT ctid FROM {t} WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)) \
             AND expires_at <= $1"
        )
    },
    // One row back: how many rows, how many of them sessions.
    counted: |delete| {
        format!(
            "WITH d AS ({delete} RETURNING absolute_deadline) \
             SELECT count(*), count(*) FILTER (WHERE absolute_deadline <> 0) FROM d"
        )
    },
    sql: |s| s,
    cut_key: |user| user.to_string(),
};

// SQLite numbers its parameters `?1`, `?2`, ...
#[cfg(feature = "sqlite")]
const SQLITE: Syntax = Syntax {
    quote: '"',
    returning: true,
    id: "BLOB PRIMARY KEY CHECK (length(id) = 32)",
    blob: "BLOB",
    text: "TEXT",
    begin: "BEGIN IMMEDIATE",
    begin_follow: "BEGIN IMMEDIATE",
    for_update: "",
    greatest: "MAX",
    least: "MIN",
    batch: |t| format!("DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} WHERE expires_at <= $1 LIMIT $2)"),
    // No DELETE in a WITH: a row per deleted row (in process).
    counted: |delete| format!("{delete} RETURNING absolute_deadline"),
    sql: |s| s.replace('$', "?"),
    cut_key: |user| user.to_string(),
};

// MySQL and MariaDB: InnoDB, one `?` per parameter in the order they are
// bound (see `positional`). Every transaction runs in READ COMMITTED:
// each of its reads that a guarantee depends on is a locking read (`FOR
// UPDATE`, `UPDATE`, `DELETE`), which reads the latest committed row in
// any isolation level, and READ COMMITTED takes no gap locks, so a
// revocation's scan of a user's rows does not block the insertion of a
// rotation's successor (a deadlock in REPEATABLE READ).
#[cfg(feature = "mysql")]
const MYSQL: Syntax = Syntax {
    quote: '`',
    returning: false,
    id: "",
    blob: "",
    text: "",
    begin: "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; BEGIN",
    begin_follow: "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; BEGIN",
    for_update: " FOR UPDATE",
    greatest: "GREATEST",
    least: "LEAST",
    // Sessions only: the statement of retired pointers is
    // `Queries::delete_retired_batch` (no `RETURNING` to tell them apart).
    batch: |t| format!("DELETE FROM {t} WHERE expires_at <= $1 AND absolute_deadline <> 0 LIMIT $2"),
    counted: |delete| delete,
    sql: positional,
    cut_key: |user| format!("UNHEX(SHA2({user}, 256))"),
};

/// MySQL's placeholders: `$1`, `$2`, ... become `?`, which must therefore
/// appear in the order they are bound, each once.
#[cfg(feature = "mysql")]
pub(super) fn positional(s: String) -> String {
    let mut out = String::with_capacity(s.len());
    let mut expected = 1;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut n = 0u32;
        while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
            n = n * 10 + d;
            chars.next();
        }
        assert_eq!(n, expected, "MySQL parameters must be bound in order, each once: {s}");
        expected += 1;
        out.push('?');
    }
    out
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
}

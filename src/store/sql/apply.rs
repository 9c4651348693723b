//! `apply`: a change set that moves only the times is the `UPDATE` of
//! `touch`; on PostgreSQL, any other is first the one statement of
//! [`merge`](super::merge). Otherwise (SQLite, MySQL, and what that
//! statement leaves to it) the general path: the change set merged in Rust
//! and written back, on PostgreSQL as a compare-and-set on the row version
//! (then, when contended, in a transaction that locks the row), on SQLite
//! and MySQL in a transaction.

#[cfg(feature = "postgres")]
use sqlx::Row;

use super::{
    codec::{columns, to_i64},
    connection::Pool,
    tx::{retrying, TxError, TX_ATTEMPTS},
    SqlStore,
};
use crate::store::{ChangeSet, StorageKey, StoreError, Stored};

/// How many times `apply` on PostgreSQL reads and conditionally writes a
/// row that keeps changing under it before it falls back to the row lock.
#[cfg(feature = "postgres")]
const OPTIMISTIC_ATTEMPTS: usize = 3;

/// The body of the locking `apply`, for one backend's connection type.
macro_rules! apply_locked {
    ($store:ident, $conn:ident, $key:ident, $changes:ident, $now:ident) => {{
        use sqlx::Connection as _;
        let q = &*$store.queries;
        let id = $key.as_bytes().as_slice();
        let mut tx = $conn.begin_with(q.begin).await?;
        let row = sqlx::query(&q.select_for_update).bind(id).fetch_optional(&mut *tx).await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        let (expires_at, deadline, last_seen, text) = columns(&row)?;
        let mut record = match $store.decode_row(expires_at, deadline, last_seen, &text)? {
            Stored::Live(record) if !record.is_expired($now) => record,
            // Expired, or a retired key: no session to write to.
            _ => {
                tx.rollback().await?;
                return Ok(false);
            }
        };
        let merged = record.try_apply($changes).and_then(|()| $store.encode(&record));
        let text = match merged {
            Ok(text) => text,
            Err(e) => {
                tx.rollback().await?;
                return Err(e.into());
            }
        };
        sqlx::query(&q.update)
            .bind(to_i64(record.meta.expires_at))
            .bind(to_i64(record.meta.last_seen))
            .bind(&text)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }};
}

impl SqlStore {
    /// `apply`: a change set that changes neither data nor flags is the
    /// `UPDATE` of `touch` (the same conditions: a live session's row, never
    /// a pointer; the same columns). Any other runs on one pooled
    /// connection: on PostgreSQL, the merge statement, and when it leaves
    /// the answer to the general path, up to `OPTIMISTIC_ATTEMPTS`
    /// compare-and-sets, then the locking transaction; on SQLite and
    /// MySQL, the transaction.
    pub(super) async fn apply_changes(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        now: u64,
    ) -> Result<bool, StoreError> {
        if changes.is_empty() {
            return self.touch_row(key, changes.last_seen, changes.expires_at, now).await;
        }
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                if let Some(applied) = self.apply_merged(&mut conn, key, changes, now).await? {
                    return Ok(applied);
                }
                for _ in 0..OPTIMISTIC_ATTEMPTS {
                    if let Some(applied) = self.apply_optimistic(&mut conn, key, changes, now).await? {
                        return Ok(applied);
                    }
                }
                // Contended: wait for the row lock instead of reading again.
                retrying!(self, self.apply_locked_pg(&mut conn, key, changes, now).await)
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                retrying!(self, self.apply_locked_sqlite(&mut conn, key, changes, now).await)
            }
            // No row version to compare (no `xmin`): the transaction that
            // locks the row, every time.
            #[cfg(feature = "mysql")]
            Pool::Mysql(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                retrying!(self, self.apply_locked_mysql(&mut conn, key, changes, now).await)
            }
        }
    }

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
        now: u64,
    ) -> Result<Option<bool>, StoreError> {
        let q = &*self.queries;
        let id = key.as_bytes().as_slice();
        let row =
            sqlx::query(&q.select_versioned).bind(id).fetch_optional(&mut *conn).await.map_err(|e| self.err(&e))?;
        let Some(row) = row else { return Ok(Some(false)) };
        let (expires_at, deadline, last_seen, text) = columns(&row).map_err(|e| self.err(&e))?;
        let version: String = row.try_get(4).map_err(|e| self.err(&e))?;
        let mut record = match self.decode_row(expires_at, deadline, last_seen, &text)? {
            Stored::Live(record) if !record.is_expired(now) => record,
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
    /// UPDATE` in PostgreSQL and MySQL, `BEGIN IMMEDIATE` in SQLite): merge
    /// in Rust, one `UPDATE`, commit. Run again (see [`retrying`]) when
    /// the database aborts it to break a deadlock.
    #[cfg(feature = "postgres")]
    async fn apply_locked_pg(
        &self,
        conn: &mut sqlx::PgConnection,
        key: &StorageKey,
        changes: &ChangeSet,
        now: u64,
    ) -> Result<bool, TxError> {
        apply_locked!(self, conn, key, changes, now)
    }

    /// See [`apply_locked_pg`](Self::apply_locked_pg).
    #[cfg(feature = "sqlite")]
    async fn apply_locked_sqlite(
        &self,
        conn: &mut sqlx::SqliteConnection,
        key: &StorageKey,
        changes: &ChangeSet,
        now: u64,
    ) -> Result<bool, TxError> {
        apply_locked!(self, conn, key, changes, now)
    }

    /// See [`apply_locked_pg`](Self::apply_locked_pg).
    #[cfg(feature = "mysql")]
    async fn apply_locked_mysql(
        &self,
        conn: &mut sqlx::MySqlConnection,
        key: &StorageKey,
        changes: &ChangeSet,
        now: u64,
    ) -> Result<bool, TxError> {
        apply_locked!(self, conn, key, changes, now)
    }
}

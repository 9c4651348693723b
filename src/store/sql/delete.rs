//! `delete`: a session's row in one statement, or, for a key that may be
//! retired, the chain of pointers in one transaction.

use super::{
    codec::{columns, live_pointer},
    connection::{dispatch, Pool},
    tx::{retrying, TxError, MAX_CHAIN, TX_ATTEMPTS},
    SqlStore,
};
use crate::store::{StorageKey, StoreError, Stored};

/// The body of `delete` for a key that may be retired, for one backend's
/// connection type: one transaction (PostgreSQL: READ COMMITTED, so that
/// each statement sees what committed before it; SQLite: the write lock;
/// MySQL: every read is a locking read, which sees the latest committed
/// row).
///
/// - The first key's row goes, whatever it holds (`DELETE ... RETURNING`;
///   MySQL: `SELECT ... FOR UPDATE`, then `DELETE`); the chain goes on
///   only if it was a live retired pointer.
/// - Each successor is read and locked (`SELECT ... FOR UPDATE`: a
///   rotation of it that is under way is waited for, and its result
///   read): a retired pointer goes, and is followed while live; a session
///   goes only if its `predecessor` is the last pointer followed (its
///   client never used it), and the chain ends there.
///
/// At most [`MAX_CHAIN`] rows are visited.
macro_rules! delete_chain {
    ($store:ident, $conn:ident, $key:ident, $now:ident) => {{
        use sqlx::Connection as _;
        let q = &*$store.queries;
        let now = $now;
        let mut tx = $conn.begin_with(q.begin_follow).await?;
        let first_id = $key.as_bytes().as_slice();
        let first: Option<(i64, Option<String>)> =
            sqlx::query_as(&q.delete_first).bind(first_id).fetch_optional(&mut *tx).await?;
        if !q.returning && first.is_some() {
            // Read and locked: now deleted.
            sqlx::query(&q.delete_key).bind(first_id).execute(&mut *tx).await?;
        }
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

impl SqlStore {
    /// `delete`: the common case in one statement, else the chain.
    pub(super) async fn delete_with_chain(&self, key: &StorageKey, now: u64) -> Result<(), StoreError> {
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
                retrying!(self, self.delete_chain_pg(&mut conn, key, now).await)
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                retrying!(self, self.delete_chain_sqlite(&mut conn, key, now).await)
            }
            #[cfg(feature = "mysql")]
            Pool::Mysql(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                retrying!(self, self.delete_chain_mysql(&mut conn, key, now).await)
            }
        }
    }

    /// `delete` of a key that may be retired, on PostgreSQL (see [`delete_chain`]).
    #[cfg(feature = "postgres")]
    async fn delete_chain_pg(&self, conn: &mut sqlx::PgConnection, key: &StorageKey, now: u64) -> Result<(), TxError> {
        delete_chain!(self, conn, key, now)
    }

    /// `delete` of a key that may be retired, on SQLite (see [`delete_chain`]).
    #[cfg(feature = "sqlite")]
    async fn delete_chain_sqlite(
        &self,
        conn: &mut sqlx::SqliteConnection,
        key: &StorageKey,
        now: u64,
    ) -> Result<(), TxError> {
        delete_chain!(self, conn, key, now)
    }

    /// `delete` of a key that may be retired, on MySQL (see [`delete_chain`]).
    #[cfg(feature = "mysql")]
    async fn delete_chain_mysql(
        &self,
        conn: &mut sqlx::MySqlConnection,
        key: &StorageKey,
        now: u64,
    ) -> Result<(), TxError> {
        delete_chain!(self, conn, key, now)
    }
}

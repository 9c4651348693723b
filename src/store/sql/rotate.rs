//! `rotate`: the successor and the retired pointer, in one transaction
//! that locks the old row; for a login under a per-user limit, the user's
//! lock, the count and the evictions too.

use super::{
    codec::{columns, encode_retired, to_i64},
    connection::{duplicate_key, Pool},
    queries::Queries,
    row::insert_new,
    tx::{retrying, TxError, TX_ATTEMPTS},
    user_index::{revoke_in, user_rows, Revocation, Revoked, RevokedRow},
    SqlStore,
};
use crate::store::{Rotated, Rotation, StorageKey, StoreError, Stored};

/// The body of `rotate`, for one backend's connection type: one
/// transaction that locks the old row (`SELECT ... FOR UPDATE` in
/// PostgreSQL, `BEGIN IMMEDIATE` in SQLite), builds the successor in Rust,
/// inserts it with the statement of `create` (which never overwrites a live
/// row, a retired one included) and turns the old row into the pointer.
///
/// A login under a per-user limit ([`Login::limit`](crate::store::Login::limit))
/// runs in READ COMMITTED (PostgreSQL, whatever the server's default; MySQL
/// always), and first takes the user's lock: the upsert of `cut` with a
/// credential epoch of 0 (which moves nothing) on the user's row of the
/// `_cutoffs` table, which it holds until the commit. The limited logins of
/// one user therefore run one after the other; a statement that follows
/// the upsert sees what the previous one committed (a new snapshot per
/// statement in READ COMMITTED; SQLite's write lock serialises every
/// writer anyway). After the old row is locked, it reads the user's other
/// live sessions with the statement of `list_user` (a plain read: a
/// renewal committing meanwhile shows either the old session or its
/// successor, never neither; a locking read would re-check the old row,
/// find it retired and skip it, while the successor stays out of the
/// statement's snapshot), applies [`SessionLimit::admit`](crate::store::SessionLimit::admit)
/// (a refusal rolls back), and, after the successor is inserted, ends the
/// sessions it named with the statements of `delete_by_handle` (which
/// follow a session renewed meanwhile to its new row).
macro_rules! rotate_locked {
    ($store:ident, $conn:ident, $old:ident, $new:ident, $rotation:ident) => {{
        use sqlx::Connection as _;
        let q: &Queries = &$store.queries;
        let now = $rotation.now;
        let (old_id, new_id) = ($old.as_bytes().as_slice(), $new.as_bytes().as_slice());
        let limited = $rotation.login.as_ref().and_then(|l| Some((l.auth.user.as_str(), l.limit?)));
        let mut tx = $conn.begin_with(if limited.is_some() { q.begin_follow } else { q.begin }).await?;
        if let Some((user, _)) = limited {
            // Kept until now: cleanup forgets a row that holds no epoch, and
            // a user's epoch keeps its own (later) `keep_until`.
            sqlx::query(&q.cut).bind(1i16).bind(user).bind(0i64).bind(to_i64(now)).execute(&mut *tx).await?;
        }
        let row = sqlx::query(&q.select_for_update).bind(old_id).fetch_optional(&mut *tx).await?;
        let stored = match row {
            Some(row) => {
                let (expires_at, deadline, last_seen, text) = columns(&row)?;
                Some($store.decode_row(expires_at, deadline, last_seen, &text)?)
            }
            None => None,
        };
        let current = match stored {
            Some(Stored::Live(record)) if !record.is_expired(now) => record,
            other => {
                tx.rollback().await?;
                return Ok(match other {
                    Some(Stored::Retired(retired)) if !retired.is_expired(now) => Rotated::Retired(retired),
                    _ => Rotated::Gone,
                });
            }
        };
        let evict = match limited {
            Some((user, limit)) => {
                let rows = sqlx::query(&q.list_user).bind(user).bind(to_i64(now)).fetch_all(&mut *tx).await?;
                let mine = current.meta.handle;
                let others = $store.live_of(user, user_rows(&rows)?, now).into_iter().filter(|m| m.handle != mine);
                match limit.admit(others.collect()) {
                    Some(evict) => evict,
                    None => {
                        tx.rollback().await?;
                        return Ok(Rotated::Refused);
                    }
                }
            }
            None => Vec::new(),
        };
        let built = $rotation.successor(&current, $old).and_then(|next| Ok(($store.encode(&next)?, next)));
        let (text, next) = match built {
            Ok(built) => built,
            Err(e) => {
                // A taken key is answered first, as if it had been checked
                // before the successor was built (the order of the contract).
                let taken =
                    sqlx::query(&q.load).bind(new_id).bind(to_i64(now)).fetch_optional(&mut *tx).await?.is_some();
                tx.rollback().await?;
                return if taken { Ok(Rotated::Taken) } else { Err(e.into()) };
            }
        };
        let meta = &next.meta;
        let inserted = insert_new!(q, &mut *tx, new_id, meta, &text, to_i64(now))?;
        if !inserted {
            tx.rollback().await?;
            return Ok(Rotated::Taken);
        }
        let retired = $rotation.retired(*$new);
        sqlx::query(&q.retire)
            .bind(to_i64(retired.until))
            .bind(to_i64(retired.at))
            .bind(encode_retired(&retired)?)
            .bind(meta.user())
            .bind(meta.handle.to_string())
            .bind(old_id)
            .execute(&mut *tx)
            .await?;
        let mut count = 0;
        if let Some((user, _)) = limited {
            for handle in evict {
                let handle = handle.to_string();
                count += revoke_in!(q, tx, user, Revocation::Only(&handle), now);
            }
        }
        tx.commit().await?;
        Ok(if count == 0 { Rotated::Done } else { Rotated::Evicted { count } })
    }};
}

impl SqlStore {
    /// `rotate` on one pooled connection, run again when the database
    /// aborts it to break a deadlock.
    pub(super) async fn rotate_tx(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                retrying!(self, self.rotate_pg(&mut conn, old, new, rotation).await)
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                retrying!(self, self.rotate_sqlite(&mut conn, old, new, rotation).await)
            }
            #[cfg(feature = "mysql")]
            Pool::Mysql(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                retrying!(self, self.rotate_mysql(&mut conn, old, new, rotation).await)
            }
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
    ) -> Result<Rotated, TxError> {
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
    ) -> Result<Rotated, TxError> {
        rotate_locked!(self, conn, old, new, rotation)
    }

    /// `rotate` on MySQL (see [`rotate_locked`]).
    #[cfg(feature = "mysql")]
    async fn rotate_mysql(
        &self,
        conn: &mut sqlx::MySqlConnection,
        old: &StorageKey,
        new: &StorageKey,
        rotation: &Rotation,
    ) -> Result<Rotated, TxError> {
        rotate_locked!(self, conn, old, new, rotation)
    }
}

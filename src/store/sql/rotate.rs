//! `rotate`: the successor and the retired pointer, in one transaction
//! that locks the old row.

use super::{
    codec::{columns, encode_retired, to_i64},
    connection::{duplicate_key, Pool},
    row::insert_new,
    tx::{retrying, TxError, TX_ATTEMPTS},
    SqlStore,
};
use crate::store::{Rotated, Rotation, StorageKey, StoreError, Stored};

/// The body of `rotate`, for one backend's connection type: one
/// transaction that locks the old row (`SELECT ... FOR UPDATE` in
/// PostgreSQL, `BEGIN IMMEDIATE` in SQLite), builds the successor in Rust,
/// inserts it with the statement of `create` (which never overwrites a live
/// row, a retired one included) and turns the old row into the pointer.
macro_rules! rotate_locked {
    ($store:ident, $conn:ident, $old:ident, $new:ident, $rotation:ident) => {{
        use sqlx::Connection as _;
        let q = &*$store.queries;
        let now = $rotation.now;
        let (old_id, new_id) = ($old.as_bytes().as_slice(), $new.as_bytes().as_slice());
        let mut tx = $conn.begin_with(q.begin).await?;
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
        tx.commit().await?;
        Ok(Rotated::Done)
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

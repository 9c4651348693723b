//! One statement on one session's row: `create`, `lookup`, `touch` (and
//! `apply` of a change set that only moves the times).

use super::{
    codec::{columns, to_i64},
    connection::{dispatch, duplicate_key, Pool},
    cutoffs::cut_columns,
    SqlStore,
};
use crate::store::{Record, StorageKey, StoreError, Stored};

/// The insert of `create` (and of a rotation's successor) on one executor
/// (`$exec`, written again for each statement: a pool, or `&mut *tx`):
/// a new row, or the replacement of an expired one, never of a live one
/// (a live retired pointer included). Answers `Ok(true)` if the row was
/// written.
///
/// - With `ON CONFLICT` (PostgreSQL, SQLite): one upsert whose update
///   applies only if the row there expired at `now`.
/// - Without (MySQL): one `INSERT`; on a duplicate key, a `DELETE` of the
///   row there only if it expired at `now`, and, if it went, the `INSERT`
///   again. A concurrent writer that takes the key in between makes the
///   second `INSERT` fail on the duplicate key: `false`, nothing written.
///   (An `INSERT ... ON DUPLICATE KEY UPDATE` cannot answer: sqlx connects
///   with `CLIENT_FOUND_ROWS`, so an insert and an update that changed
///   nothing both count 1.)
macro_rules! insert_new {
    ($q:expr, $exec:expr, $id:expr, $meta:expr, $text:expr, $now:expr) => {{
        let (q, id, meta, text, now) = ($q, $id, $meta, $text, $now);
        let insert = || {
            sqlx::query(&q.create)
                .bind(id)
                .bind(to_i64(meta.expires_at.min(meta.absolute_deadline)))
                .bind(to_i64(meta.absolute_deadline))
                .bind(to_i64(meta.last_seen))
                .bind(text)
                .bind(meta.user())
                .bind(meta.handle.to_string())
        };
        if q.returning {
            insert().bind(now).execute($exec).await.map(|r| r.rows_affected() == 1)
        } else {
            match insert().execute($exec).await {
                Ok(_) => Ok(true),
                Err(e) if duplicate_key(&e) => {
                    match sqlx::query(&q.delete_dead).bind(id).bind(now).execute($exec).await {
                        Ok(dead) if dead.rows_affected() == 0 => Ok(false),
                        Ok(_) => match insert().execute($exec).await {
                            Ok(_) => Ok(true),
                            Err(e) if duplicate_key(&e) => Ok(false),
                            Err(e) => Err(e),
                        },
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        }
    }};
}
pub(super) use insert_new;

impl SqlStore {
    /// `create`: an insert that replaces only an expired row.
    pub(super) async fn insert_row(&self, key: &StorageKey, record: &Record, now: u64) -> Result<bool, StoreError> {
        let text = self.encode(record)?;
        let meta = &record.meta;
        let now = to_i64(now);
        let id = key.as_bytes().as_slice();
        let q = &*self.queries;
        dispatch!(&self.pool, p => insert_new!(q, p, id, meta, &text, now)).map_err(|e| self.err(&e))
    }

    /// `lookup`: the live record or the live retired pointer at `key`;
    /// nothing for a session a cutoff ended (read in the same statement).
    pub(super) async fn select_row(&self, key: &StorageKey, now: u64) -> Result<Option<Stored>, StoreError> {
        let q = &*self.queries;
        let row = dispatch!(&self.pool, p => {
            let row = sqlx::query(&q.load)
                .bind(key.as_bytes().as_slice())
                .bind(to_i64(now))
                .fetch_optional(p)
                .await;
            row.and_then(|row| row.as_ref().map(|r| Ok((columns(r)?, cut_columns(r)?))).transpose())
        })
        .map_err(|e| self.err(&e))?;
        let Some(((expires_at, deadline, last_seen, text), cutoff)) = row else {
            return Ok(None);
        };
        Ok(match self.decode_row(expires_at, deadline, last_seen, &text)? {
            Stored::Live(record) if record.is_expired(now) || cutoff.ends(&record.meta) => None,
            Stored::Retired(retired) if retired.is_expired(now) => None,
            stored => Some(stored),
        })
    }

    /// `touch`: the time columns of a live session's row (`last_seen` at
    /// least `last_seen`, `expires_at` capped at the absolute deadline);
    /// `false` if the row is absent, expired at `now` or a retired pointer.
    /// Also `apply` of a change set that changes nothing but the times.
    pub(super) async fn touch_row(
        &self,
        key: &StorageKey,
        last_seen: u64,
        expires_at: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let now = to_i64(now);
        let q = &*self.queries;
        let n = dispatch!(&self.pool, p => sqlx::query(&q.touch)
            .bind(to_i64(last_seen))
            .bind(to_i64(expires_at))
            .bind(key.as_bytes().as_slice())
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| self.err(&e))?;
        Ok(n == 1)
    }
}

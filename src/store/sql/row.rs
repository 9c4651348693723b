//! One statement on one session's row: `create`, `lookup`, `touch`.

use super::{
    codec::{columns, to_i64},
    connection::{dispatch, Pool},
    SqlStore,
};
use crate::store::{Record, StorageKey, StoreError, Stored};

impl SqlStore {
    /// `create`: an insert that replaces only an expired row.
    pub(super) async fn insert_row(&self, key: &StorageKey, record: &Record, now: u64) -> Result<bool, StoreError> {
        let text = self.encode(record)?;
        let meta = &record.meta;
        let now = to_i64(now);
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

    /// `lookup`: the live record or the live retired pointer at `key`.
    pub(super) async fn select_row(&self, key: &StorageKey, now: u64) -> Result<Option<Stored>, StoreError> {
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

    /// `touch`: the time columns of a live session's row.
    pub(super) async fn touch_row(&self, key: &StorageKey, now: u64, expires_at: u64) -> Result<bool, StoreError> {
        let last_seen = now;
        let now = to_i64(now);
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
}

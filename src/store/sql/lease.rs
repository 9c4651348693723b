//! The exclusive leases of sessions (`try_lock`, `unlock`), in the
//! `<table>_locks` table.

use super::{
    codec::to_i64,
    connection::{dispatch, duplicate_key, Pool},
    tx::{aborted, TX_ATTEMPTS},
    SqlStore,
};
use crate::store::{StorageKey, StoreError};

impl SqlStore {
    /// `try_lock`: takes a free, expired or own lease.
    pub(super) async fn take_lease(
        &self,
        key: &StorageKey,
        token: &str,
        ttl_ms: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let q = &*self.queries;
        let until = to_i64(now.saturating_add(ttl_ms));
        // MySQL has no `ON CONFLICT DO NOTHING`: a duplicate key is a lease
        // there. InnoDB may also pick a poll as the victim of a deadlock
        // (an insert over a lease just deleted, racing an update of it):
        // it changed nothing, and the lease is not taken this time.
        let inserted = dispatch!(&self.pool, p => match sqlx::query(&q.try_lock_insert)
            .bind(key.as_bytes().as_slice())
            .bind(token)
            .bind(until)
            .execute(p)
            .await
        {
            Ok(r) => Ok(r.rows_affected()),
            Err(e) if duplicate_key(&e) || aborted(&e) => Ok(0),
            Err(e) => Err(e),
        })
        .map_err(|e| self.err(&e))?;
        if inserted == 1 {
            return Ok(true);
        }
        // A lease exists: take it over only if it ran out (or is ours).
        let updated = dispatch!(&self.pool, p => match sqlx::query(&q.try_lock_update)
            .bind(token)
            .bind(until)
            .bind(key.as_bytes().as_slice())
            .bind(to_i64(now))
            .bind(token)
            .execute(p)
            .await
        {
            Ok(r) => Ok(r.rows_affected()),
            Err(e) if aborted(&e) => Ok(0),
            Err(e) => Err(e),
        })
        .map_err(|e| self.err(&e))?;
        Ok(updated == 1)
    }

    /// `unlock`: releases the lease if it is still `token`'s; run again
    /// when the database aborts it to break a deadlock.
    pub(super) async fn release_lease(&self, key: &StorageKey, token: &str) -> Result<(), StoreError> {
        let q = &*self.queries;
        let mut attempt = 1;
        loop {
            let done = dispatch!(&self.pool, p => sqlx::query(&q.unlock)
                .bind(key.as_bytes().as_slice())
                .bind(token)
                .execute(p)
                .await
                .map(|_| ()));
            match done {
                Err(e) if attempt < TX_ATTEMPTS && aborted(&e) => attempt += 1,
                done => return done.map_err(|e| self.err(&e)),
            }
        }
    }
}

//! Cleanup: deleting expired rows (sessions, retired pointers past their
//! `until`, leases), in batches, once or from a task.

use std::{sync::Arc, time::Duration};

use super::{
    codec::to_i64,
    connection::{dispatch, Pool},
    SqlStore,
};
use crate::{store::StoreError, Clock};

impl SqlStore {
    /// See [`delete_expired`](Self::delete_expired).
    pub(super) async fn delete_expired_rows(&self, now: u64) -> Result<u64, StoreError> {
        let now = to_i64(now);
        let q = &*self.queries;
        for sql in [&q.delete_expired_locks, &q.delete_expired_cutoffs] {
            dispatch!(&self.pool, p => sqlx::query(sql).bind(now).execute(p).await.map(|_| ()))
                .map_err(|e| self.err(&e))?;
        }
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
            // No `RETURNING`: `sql` deletes expired sessions, and a second
            // statement retired pointers past their `until`; the step
            // counts the larger of the two as its rows, so that the batches
            // go on while either is full.
            #[cfg(feature = "mysql")]
            Pool::Mysql(p) => {
                let q = &*self.queries;
                let retired_sql = if batch.is_some() { &q.delete_retired_batch } else { &q.delete_retired_all };
                let mut counts = [0u64; 2];
                for (count, sql) in counts.iter_mut().zip([sql, retired_sql.as_str()]) {
                    let mut query = sqlx::query(sql).bind(now);
                    if let Some(batch) = batch {
                        query = query.bind(batch);
                    }
                    *count = query.execute(p).await.map_err(|e| self.err(&e))?.rows_affected();
                }
                Ok((counts[0].max(counts[1]), counts[0]))
            }
        }
    }

    /// See [`spawn_cleanup`](Self::spawn_cleanup).
    pub(super) fn spawn_cleanup_task(&self, every: Duration, clock: Arc<dyn Clock>) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match store.delete_expired(clock.now_ms()).await {
                    Ok(n) => tracing::debug!(removed = n, table = %store.table, "expired sessions removed"),
                    Err(e) => tracing::warn!(error = %e, table = %store.table, "session cleanup failed; will retry"),
                }
            }
        })
    }
}

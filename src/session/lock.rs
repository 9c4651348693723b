//! Exclusive sessions: a lease in the store that serialises
//! read-modify-write requests of one session, across processes.

use std::{sync::Arc, time::Duration};

use super::Session;
use crate::{
    lifecycle::{
        expiry,
        lease::Lease,
        state::{Intent, Renewal},
    },
    EventKind, SessionError,
};

impl Session {
    /// Takes the session's exclusive lock for the rest of the request, so
    /// that read-modify-write sequences (`n = n + 1`) are serialised with
    /// every other request of this session that also locks it, in this
    /// process and in others sharing the store. After the lock is taken the
    /// session is re-read, so the handler sees the previous holder's writes.
    /// The lock is released after this request's changes are saved, or when
    /// the lease ([`lock_lease`](crate::SessionConfigBuilder::lock_lease))
    /// runs out if the holder dies. A request without a live session has
    /// nothing to serialise and returns at once.
    ///
    /// Locking is cooperative: handlers that do not call `lock` are not
    /// blocked (their per-key writes still merge safely).
    ///
    /// # Errors
    ///
    /// [`SessionError::LockTimeout`] after
    /// [`lock_wait`](crate::SessionConfigBuilder::lock_wait), or a store failure.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn increment(session: Session) -> Result<String, SessionError> {
    ///     session.lock().await?;
    ///     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    ///     session.insert("n", n).await?;
    ///     Ok(n.to_string())
    /// }
    /// ```
    pub async fn lock(&self) -> Result<(), SessionError> {
        let key = {
            let state = self.ensure_loaded().await?;
            match state.working_key(self.incoming().map(|i| &i.key)) {
                Some(key) if state.is_live() && state.lease.is_none() => key,
                _ => return Ok(()),
            }
        };
        let shared = self.shared();
        let leases = shared.leases()?;
        let token = crate::record::SessionHandle::generate().to_string();
        let deadline = tokio::time::Instant::now() + shared.config.lock_wait;
        let mut backoff = Duration::from_millis(1);
        loop {
            let taken = shared
                .timed(
                    self.emitter(),
                    "try_lock",
                    Some(&key),
                    leases.try_lock(&key, &token, shared.config.lock_lease_ms, shared.clock.now_ms()),
                )
                .await
                .map_err(SessionError::Store)?;
            if taken {
                break;
            }
            if tokio::time::Instant::now() + backoff > deadline {
                self.emitter().emit(EventKind::LockTimeout, Some(&key), None);
                return Err(SessionError::LockTimeout);
            }
            let jitter = Duration::from_micros(rand::random::<u64>() % 1000);
            tokio::time::sleep(backoff + jitter).await;
            backoff = (backoff * 2).min(Duration::from_millis(20));
        }
        // From here the lease is released after the commit, or when the
        // request is dropped before it.
        if let Some(leases) = &shared.leases {
            self.state().lease = Some(Lease::new(Arc::clone(leases), Arc::clone(&shared.clock), key, token));
        }
        // Re-read under the lock: the previous holder may have written.
        let fresh = shared
            .timed(self.emitter(), "load", Some(&key), shared.store().load(&key, self.now()))
            .await
            .map_err(SessionError::Store)?;
        let now = self.now();
        let mut state = self.state();
        match fresh {
            Some(mut record) if expiry::check(&record.meta, now, &shared.config).is_ok() => {
                // A login in this request drops what its policy drops, from
                // the fresh copy too (the store's rotation will).
                if let Intent::Renew(Renewal::Login { retain: Some(keep) }) = &state.intent {
                    record.data.retain(keep);
                }
                record.data.merge(&state.changes);
                if let Some(mine) = &state.view {
                    // Keep this request's own auth and persistence changes.
                    record.meta.auth.clone_from(&mine.meta.auth);
                    record.meta.persistent = mine.meta.persistent;
                    record.meta.absolute_deadline = mine.meta.absolute_deadline;
                    record.meta.user_agent.clone_from(&mine.meta.user_agent);
                    record.meta.ip.clone_from(&mine.meta.ip);
                }
                state.view = Some(record);
            }
            // Ended (or renewed) by another request meanwhile.
            _ => state.ended_meanwhile(),
        }
        Ok(())
    }
}

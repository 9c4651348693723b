//! The per-user session limit on Redis (see
//! [`SessionStore::rotate`](crate::store::SessionStore::rotate)): a limited
//! login holds the user's login lease, a key in the slot of the user's index
//! (`{prefix}user:{<hex SHA-256 of the user>}:login`), while it lists the
//! user's other live sessions, applies [`SessionLimit::admit`], rotates and
//! ends the sessions it evicts. The user index and the sessions live in
//! other slots on a cluster, so no script can span them; the lease makes the
//! limited logins of one user take turns instead, on one server and on a
//! cluster alike.

use std::time::Duration;

use super::{user_index::Listed, RedisStore};
use crate::store::{Rotated, Rotation, SessionLimit, StorageKey, StoreError, Stored};

/// How long a login lease lasts at most, if its holder dies: far longer than
/// a login's few round trips, short enough that a crashed process blocks
/// that user's logins only briefly.
const LEASE_MS: u64 = 10_000;
/// How long a login waits for another login of the same user.
const WAIT: Duration = Duration::from_secs(5);

impl RedisStore {
    fn login_lock_key(&self, user: &str) -> String {
        let mut key = self.user_index_key(user);
        key.push_str(":login");
        key
    }

    /// A limited login: see the module documentation.
    pub(super) async fn rotate_limited(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        rotation: &Rotation,
        user: &str,
        limit: &SessionLimit,
    ) -> Result<Rotated, StoreError> {
        let lock = self.login_lock_key(user);
        let token =
            crate::SessionId::generate().map_err(|e| StoreError::Backend(e.to_string()))?.storage_key().to_hex();
        let started = tokio::time::Instant::now();
        loop {
            if self.take_lease(&lock, &token, LEASE_MS).await? {
                break;
            }
            if started.elapsed() >= WAIT {
                return Err(StoreError::Backend("another login of this user holds its login lease".into()));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let outcome = self.rotate_admitted(old, new, rotation, user, limit).await;
        if let Err(e) = self.release_lease(&lock, &token).await {
            // The lease expires by itself.
            tracing::warn!(error = %e, "a login lease was not released");
        }
        outcome
    }

    /// Under the user's login lease: count, admit, rotate, evict.
    async fn rotate_admitted(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        rotation: &Rotation,
        user: &str,
        limit: &SessionLimit,
    ) -> Result<Rotated, StoreError> {
        let now = rotation.now;
        // The session being rotated does not count against its own login.
        let rotated = match crate::store::SessionStore::lookup(self, old, now).await? {
            Some(Stored::Live(record)) => record.meta.handle,
            Some(Stored::Retired(r)) => return Ok(Rotated::Retired(r)),
            None => return Ok(Rotated::Gone),
        };
        let cutoff = self.read_cutoffs(Some(user)).await?;
        let listed = self.user_sessions(user, now).await?;
        let others: Vec<&Listed> =
            listed.iter().filter(|l| l.record.meta.handle != rotated && !cutoff.ends(&l.record.meta)).collect();
        let Some(evict) = limit.admit(others.iter().map(|l| l.record.meta.clone()).collect()) else {
            return Ok(Rotated::Refused);
        };
        let outcome = self.rotate_record(old, new, rotation).await?;
        if outcome != Rotated::Done || evict.is_empty() {
            return Ok(outcome);
        }
        let victims: Vec<&Listed> = others.into_iter().filter(|l| evict.contains(&l.record.meta.handle)).collect();
        let count = self.end_sessions(user, &victims, now).await?;
        Ok(if count > 0 { Rotated::Evicted { count } } else { Rotated::Done })
    }
}

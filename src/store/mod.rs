//! The store contract and the stores that implement it.
//!
//! Every store keys records by [`StorageKey`] (a digest of the session ID,
//! never the ID) and must keep these promises, which the
//! [`conformance`](crate::conformance) suite checks:
//!
//! - [`create`](SessionStore::create) inserts only if absent: it never
//!   overwrites another session.
//! - [`lookup`](SessionStore::lookup) returns the live record, the
//!   [`Retired`](crate::Retired) pointer a rotation left, or `None` if the key
//!   is absent or expired.
//! - [`apply`](SessionStore::apply) merges one request's change set into the
//!   stored record atomically, per key, and **only if the record still
//!   exists**: a request that loaded the session before a logout cannot bring
//!   it back, and two requests writing different keys both keep their writes.
//! - [`touch`](SessionStore::touch) moves the activity times without rewriting
//!   the data.
//! - [`rotate`](SessionStore::rotate) gives a session a new key in one
//!   atomic step: only while the old record is live, from its current stored
//!   data merged with the request's changes ([`Rotation::successor`](crate::Rotation::successor)),
//!   leaving a [`Retired`](crate::Retired) pointer under the old key. See
//!   [`rotation`](crate::Rotation) for why this is one step.
//! - [`delete`](SessionStore::delete) is final, and follows a retired key to
//!   its successor: a logout through an ID a rotation just retired ends the
//!   session it became.
//! - `apply` and `rotate` keep the merged data within
//!   [`ChangeSet::max_data_bytes`](crate::ChangeSet::max_data_bytes).
//!
//! Two capabilities have default methods that answer
//! [`StoreError::Unsupported`], so that a minimal third-party store still
//! compiles; every store of this crate implements them:
//!
//! - the **per-user index**: a record whose metadata names a user
//!   ([`Metadata::auth`]) is listed by [`list_user`](SessionStore::list_user)
//!   until it is deleted or expires, and can be deleted by its public handle;
//! - **exclusive leases** ([`try_lock`](SessionStore::try_lock) /
//!   [`unlock`](SessionStore::unlock)) that serialise read-modify-write
//!   requests of one session across processes.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{ChangeSet, Metadata, Record, Rotated, Rotation, SessionHandle, StorageKey, StoreError, Stored};

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub mod sql;

/// An async session store.
///
/// Implement it for a new backend and run
/// [`conformance::run_all`](crate::conformance::run_all) against it.
///
/// ```
/// use sessionware::{MemoryStore, Metadata, Record, SessionId, SessionStore};
/// # tokio_test_block_on(async {
/// let store = MemoryStore::default();
/// let key = SessionId::generate().unwrap().storage_key();
/// let now = sessionware::Clock::now_ms(&sessionware::SystemClock);
/// let record = Record::new(Metadata::new(now, 60_000, 3_600_000));
/// assert!(store.create(&key, &record).await.unwrap());
/// assert!(!store.create(&key, &record).await.unwrap()); // never overwrites
/// assert!(store.load(&key).await.unwrap().is_some());
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts `record` under `key` only if no live record has that key.
    /// Returns `Ok(false)` (and changes nothing) when one exists.
    async fn create(&self, key: &StorageKey, record: &Record) -> Result<bool, StoreError>;

    /// What the store holds under `key`: the live record, the pointer a
    /// rotation left ([`Stored::Retired`], until its
    /// [`until`](crate::Retired::until)), or `None` if the key is absent or
    /// expired.
    async fn lookup(&self, key: &StorageKey) -> Result<Option<Stored>, StoreError>;

    /// The live record under `key`, or `None` if it is absent, retired or expired.
    async fn load(&self, key: &StorageKey) -> Result<Option<Record>, StoreError> {
        Ok(self.lookup(key).await?.and_then(Stored::live))
    }

    /// Answers [`lookup`](Self::lookup) at once, for a store that can do so
    /// without waiting (one that keeps its records in process): `Some` with
    /// the result. The default, `None`, makes the layer call `lookup`. `now`
    /// is the request's time (ms since the epoch), which the store uses for
    /// its expiry check instead of reading its own clock.
    ///
    /// ```
    /// use sessionware::{MemoryStore, SessionId, SessionStore};
    /// let key = SessionId::generate().unwrap().storage_key();
    /// assert!(matches!(MemoryStore::default().lookup_now(&key, 0), Some(Ok(None))));
    /// ```
    fn lookup_now(&self, key: &StorageKey, now: u64) -> Option<Result<Option<Stored>, StoreError>> {
        let _ = (key, now);
        None
    }

    /// Rotates the session under `old` to `new` in one atomic step:
    ///
    /// - if `old` holds no live record, nothing changes: [`Rotated::Gone`],
    ///   or [`Rotated::Retired`] with the pointer if another rotation
    ///   retired it first;
    /// - if `new` holds anything, nothing changes: [`Rotated::Taken`];
    /// - otherwise the record built by
    ///   [`rotation.successor(current, old)`](Rotation::successor) from the
    ///   *current* stored record is created under `new` (and indexed under
    ///   its user), and `old` is replaced by
    ///   [`rotation.retired(new)`](Rotation::retired): [`Rotated::Done`].
    ///
    /// A successor that would exceed the data cap fails with
    /// [`StoreError::TooLarge`] and changes nothing.
    async fn rotate(&self, old: &StorageKey, new: &StorageKey, rotation: &Rotation) -> Result<Rotated, StoreError>;

    /// Whether `new` may succeed `old` in a [`rotate`](Self::rotate). The
    /// layer draws new IDs until one is accepted. The default accepts every
    /// key; a store that can only rotate atomically between co-located keys
    /// (Redis Cluster: one slot) accepts those only.
    ///
    /// ```
    /// use sessionware::{MemoryStore, SessionId, SessionStore};
    /// let (a, b) = (SessionId::generate().unwrap().storage_key(), SessionId::generate().unwrap().storage_key());
    /// assert!(MemoryStore::default().accepts_successor(&a, &b));
    /// ```
    fn accepts_successor(&self, old: &StorageKey, new: &StorageKey) -> bool {
        let _ = (old, new);
        true
    }

    /// Merges `changes` into the record under `key` atomically (see
    /// [`Record::try_apply`] for the semantics, the data cap included).
    /// Returns `Ok(false)` and creates nothing when no live record is under
    /// `key` (any more; a retired key included).
    async fn apply(&self, key: &StorageKey, changes: &ChangeSet) -> Result<bool, StoreError>;

    /// Moves `last_seen` and `expires_at` (capped at the absolute deadline)
    /// without rewriting the data. Returns `Ok(false)` when the record is gone.
    async fn touch(&self, key: &StorageKey, last_seen: u64, expires_at: u64) -> Result<bool, StoreError>;

    /// Deletes the record under `key` (no error if it is absent). When `key`
    /// holds a live retired pointer, its successor is deleted too, following
    /// the pointers (a chain of at most 16), as long as the live successor
    /// at the end still names the last pointer as its
    /// [`predecessor`](crate::Metadata::predecessor): a logout on an ID that
    /// a rotation retired moments ago ends the session it became, but once
    /// the new ID was used (or the pointer expired), the old ID ends nothing.
    ///
    /// [`delete_user`](Self::delete_user) and
    /// [`delete_by_handle`](Self::delete_by_handle) also follow a listed key
    /// that a rotation retired meanwhile to its live successor (whatever its
    /// predecessor): a revocation racing a renewal ends the renewed session.
    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError>;

    /// The metadata of every live session of `user`.
    async fn list_user(&self, user: &str) -> Result<Vec<Metadata>, StoreError> {
        let _ = user;
        Err(StoreError::Unsupported("a per-user session index"))
    }

    /// Deletes the live session of `user` named `handle`. `Ok(false)` when
    /// `user` has no such session (another user's handle included).
    async fn delete_by_handle(&self, user: &str, handle: &SessionHandle) -> Result<bool, StoreError> {
        let _ = (user, handle);
        Err(StoreError::Unsupported("a per-user session index"))
    }

    /// Deletes every session of `user` except the one named `keep`, and
    /// returns how many were deleted.
    async fn delete_user(&self, user: &str, keep: Option<&SessionHandle>) -> Result<usize, StoreError> {
        let _ = (user, keep);
        Err(StoreError::Unsupported("a per-user session index"))
    }

    /// Takes the exclusive lease of the session under `key` for `ttl_ms`
    /// milliseconds with `token`, unless another token holds a live lease
    /// (`Ok(false)`). A holder that dies blocks nobody beyond its lease.
    async fn try_lock(&self, key: &StorageKey, token: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let _ = (key, token, ttl_ms);
        Err(StoreError::Unsupported("exclusive session locks"))
    }

    /// Releases the lease of `key` if `token` still holds it (compare and delete).
    async fn unlock(&self, key: &StorageKey, token: &str) -> Result<(), StoreError> {
        let _ = (key, token);
        Err(StoreError::Unsupported("exclusive session locks"))
    }
}

#[async_trait]
impl<T: SessionStore + ?Sized> SessionStore for Arc<T> {
    async fn create(&self, key: &StorageKey, record: &Record) -> Result<bool, StoreError> {
        (**self).create(key, record).await
    }
    async fn lookup(&self, key: &StorageKey) -> Result<Option<Stored>, StoreError> {
        (**self).lookup(key).await
    }
    async fn load(&self, key: &StorageKey) -> Result<Option<Record>, StoreError> {
        (**self).load(key).await
    }
    fn lookup_now(&self, key: &StorageKey, now: u64) -> Option<Result<Option<Stored>, StoreError>> {
        (**self).lookup_now(key, now)
    }
    async fn rotate(&self, old: &StorageKey, new: &StorageKey, rotation: &Rotation) -> Result<Rotated, StoreError> {
        (**self).rotate(old, new, rotation).await
    }
    fn accepts_successor(&self, old: &StorageKey, new: &StorageKey) -> bool {
        (**self).accepts_successor(old, new)
    }
    async fn apply(&self, key: &StorageKey, changes: &ChangeSet) -> Result<bool, StoreError> {
        (**self).apply(key, changes).await
    }
    async fn touch(&self, key: &StorageKey, last_seen: u64, expires_at: u64) -> Result<bool, StoreError> {
        (**self).touch(key, last_seen, expires_at).await
    }
    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        (**self).delete(key).await
    }
    async fn list_user(&self, user: &str) -> Result<Vec<Metadata>, StoreError> {
        (**self).list_user(user).await
    }
    async fn delete_by_handle(&self, user: &str, handle: &SessionHandle) -> Result<bool, StoreError> {
        (**self).delete_by_handle(user, handle).await
    }
    async fn delete_user(&self, user: &str, keep: Option<&SessionHandle>) -> Result<usize, StoreError> {
        (**self).delete_user(user, keep).await
    }
    async fn try_lock(&self, key: &StorageKey, token: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        (**self).try_lock(key, token, ttl_ms).await
    }
    async fn unlock(&self, key: &StorageKey, token: &str) -> Result<(), StoreError> {
        (**self).unlock(key, token).await
    }
}

//! The store contract and the stores that implement it.
//!
//! Every store keys records by [`StorageKey`] (a digest of the session ID,
//! never the ID) and must keep these promises, which the
//! [`conformance`](crate::conformance) suite checks:
//!
//! - [`create`](SessionStore::create) inserts only if absent: it never
//!   overwrites another session.
//! - [`load`](SessionStore::load) returns the record, or `None` if it is absent
//!   or expired.
//! - [`apply`](SessionStore::apply) merges one request's change set into the
//!   stored record atomically, per key, and **only if the record still
//!   exists**: a request that loaded the session before a logout cannot bring
//!   it back, and two requests writing different keys both keep their writes.
//! - [`touch`](SessionStore::touch) moves the activity times without rewriting
//!   the data.
//! - [`delete`](SessionStore::delete) is final.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{ChangeSet, Record, StorageKey, StoreError};

pub mod memory;

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

    /// The record under `key`, or `None` if it is absent or expired.
    async fn load(&self, key: &StorageKey) -> Result<Option<Record>, StoreError>;

    /// Merges `changes` into the record under `key` atomically (see
    /// [`Record::apply`] for the semantics). Returns `Ok(false)` and creates
    /// nothing when the record does not exist (any more).
    async fn apply(&self, key: &StorageKey, changes: &ChangeSet) -> Result<bool, StoreError>;

    /// Moves `last_seen` and `expires_at` (capped at the absolute deadline)
    /// without rewriting the data. Returns `Ok(false)` when the record is gone.
    async fn touch(&self, key: &StorageKey, last_seen: u64, expires_at: u64) -> Result<bool, StoreError>;

    /// Deletes the record under `key` (no error if it is absent).
    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError>;
}

#[async_trait]
impl<T: SessionStore + ?Sized> SessionStore for Arc<T> {
    async fn create(&self, key: &StorageKey, record: &Record) -> Result<bool, StoreError> {
        (**self).create(key, record).await
    }
    async fn load(&self, key: &StorageKey) -> Result<Option<Record>, StoreError> {
        (**self).load(key).await
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
}

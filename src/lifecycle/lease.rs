//! An exclusive lease held by a request: released after its commit, or,
//! when the request is dropped first (client gone, handler panicked), by a
//! task spawned from `Drop`, so a lost request never blocks its session
//! until the lease runs out.

use std::sync::Arc;

use crate::{shared::Shared, store::Leases, Clock, StorageKey};

/// The lease one request holds on a session.
pub(crate) struct Lease {
    store: Arc<dyn Leases>,
    clock: Arc<dyn Clock>,
    key: StorageKey,
    token: String,
    released: bool,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("key", &self.key).finish_non_exhaustive()
    }
}

impl Lease {
    /// A lease taken with `token` on `key`.
    pub(crate) fn new(store: Arc<dyn Leases>, clock: Arc<dyn Clock>, key: StorageKey, token: String) -> Self {
        Self { store, clock, key, token, released: false }
    }

    /// Releases the lease (compare and delete in the store). A failed
    /// unlock only delays others until the lease runs out.
    pub(crate) async fn release(mut self, shared: &Shared) {
        self.released = true;
        let _ = shared
            .timed(
                crate::events::Emitter::SILENT,
                "unlock",
                Some(&self.key),
                self.store.unlock(&self.key, &self.token, self.clock.now_ms()),
            )
            .await;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let store = Arc::clone(&self.store);
            let now = self.clock.now_ms();
            let key = self.key;
            let token = std::mem::take(&mut self.token);
            handle.spawn(async move {
                let _ = store.unlock(&key, &token, now).await;
            });
        }
    }
}

//! `tracing` events of the session life cycle.
//!
//! Every event has target `sessionware` and a `session` field holding a short
//! fingerprint of the storage digest, never the ID. Client-driven events
//! (rejected tokens, unknown or expired sessions, creation) are `DEBUG`, the
//! security-relevant life cycle (renewal, login, purge) is `INFO`, and store
//! failures are `ERROR`: nothing a client sends can flood warn-level logs.

use crate::{StorageKey, StoreError};

pub(crate) fn created(key: &StorageKey, login: bool) {
    if login {
        tracing::info!(target: "sessionware", event = "session.login", session = %key.fingerprint());
    } else {
        tracing::debug!(target: "sessionware", event = "session.created", session = %key.fingerprint());
    }
}

pub(crate) fn renewed(old: &StorageKey, new: &StorageKey, login: bool) {
    tracing::info!(
        target: "sessionware",
        event = if login { "session.login" } else { "session.renewed" },
        session = %new.fingerprint(),
        previous = %old.fingerprint()
    );
}

pub(crate) fn purged(key: &StorageKey) {
    tracing::info!(target: "sessionware", event = "session.purged", session = %key.fingerprint());
}

pub(crate) fn expired(key: &StorageKey, reason: &'static str) {
    tracing::debug!(target: "sessionware", event = "session.expired", session = %key.fingerprint(), reason);
}

pub(crate) fn unknown(key: &StorageKey) {
    tracing::debug!(target: "sessionware", event = "session.rejected", reason = "unknown", session = %key.fingerprint());
}

pub(crate) fn rejected(reason: &'static str, len: usize) {
    tracing::debug!(target: "sessionware", event = "session.rejected", reason, len);
}

pub(crate) fn lost(key: &StorageKey) {
    tracing::debug!(
        target: "sessionware",
        event = "session.write_dropped",
        reason = "session ended by a concurrent request",
        session = %key.fingerprint()
    );
}

pub(crate) fn store_error(op: &'static str, key: Option<&StorageKey>, err: &StoreError) {
    let fp = key.map(StorageKey::fingerprint).unwrap_or_default();
    tracing::error!(target: "sessionware", event = "session.store_error", op, session = %fp, error = %err);
}

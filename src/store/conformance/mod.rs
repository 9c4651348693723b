//! The store conformance suite: the contract every [`SessionStore`] must keep.
//!
//! Third-party stores can run it too:
//!
//! ```
//! use std::sync::Arc;
//! use sessionware::store::{conformance, MemoryStore};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! conformance::run_all(Arc::new(MemoryStore::default())).await;
//! # });
//! ```
//!
//! Each check panics with a message naming the broken promise.

use std::sync::Arc;

use serde_json::value::{to_raw_value, RawValue};

use crate::{
    store::{Cutoffs, Leases, UserIndex},
    Auth, ChangeSet, Clock, Metadata, Record, SessionHandle, SessionId, SessionStore, StorageKey, SystemClock,
};

const MINUTE: u64 = 60_000;

fn raw<T: serde::Serialize>(v: T) -> Box<RawValue> {
    to_raw_value(&v).unwrap_or_else(|e| panic!("serialize: {e}"))
}

fn now() -> u64 {
    SystemClock.now_ms()
}

fn fresh_key() -> StorageKey {
    SessionId::generate().unwrap_or_else(|e| panic!("rng: {e}")).storage_key()
}

fn live_record() -> Record {
    let mut r = Record::new(Metadata::new(now(), 30 * MINUTE, 120 * MINUTE));
    r.data.insert("seed", &raw("value"));
    r
}

fn change(key: &str, value: Option<Box<RawValue>>) -> ChangeSet {
    let t = now();
    let mut c = ChangeSet::new(t, t + 30 * MINUTE);
    match value {
        Some(v) => c.set(key, v),
        None => c.remove(key),
    }
    c
}

/// Runs every check against a store with every capability: the core
/// contract ([`run_core`]), the per-user index ([`run_user_index`]),
/// leases ([`run_leases`]), cutoffs ([`run_cutoffs`]) and the per-user
/// session limit ([`run_session_limit`]).
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::run_all(Arc::new(MemoryStore::default())).await;
/// # });
/// ```
pub async fn run_all<S: UserIndex + Leases + Cutoffs>(store: Arc<S>) {
    run_core(store.clone()).await;
    run_user_index(store.clone()).await;
    run_leases(&*store).await;
    run_cutoffs(&*store).await;
    run_session_limit(store).await;
}

/// Runs the checks of the core [`SessionStore`] contract: create, lookup,
/// apply, touch, delete, rotation and the data cap.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::run_core(Arc::new(MemoryStore::default())).await;
/// # });
/// ```
pub async fn run_core(store: Arc<dyn SessionStore>) {
    create_never_overwrites(&*store).await;
    load_of_unknown_is_none(&*store).await;
    expired_is_absent(&*store).await;
    apply_merges_per_key(&*store).await;
    apply_never_resurrects(&*store).await;
    touch_keeps_data(&*store).await;
    delete_is_final(&*store).await;
    concurrent_change_sets_all_land(Arc::clone(&store), 100).await;
    logout_racing_writers_leaves_nothing(Arc::clone(&store), 50).await;
    lookup_ready_agrees_with_lookup(&*store).await;
    rotation::run_core(Arc::clone(&store)).await;
    rotation::apply_keeps_the_data_cap(&*store).await;
    rotation::concurrent_writers_cannot_pass_the_data_cap(Arc::clone(&store), 20).await;
}

/// Runs the checks of the [`UserIndex`] capability, rotations racing
/// revocations and the sign-in's authentication context ([`sign_in`])
/// included.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::run_user_index(Arc::new(MemoryStore::default())).await;
/// # });
/// ```
pub async fn run_user_index(store: Arc<dyn UserIndex>) {
    user_index_follows_create_and_delete(&*store).await;
    user_index_drops_expired(&*store).await;
    revoking_is_scoped_to_the_user(&*store).await;
    user_index_under_concurrency(Arc::clone(&store), 50).await;
    sign_in::run(Arc::clone(&store)).await;
    rotation::run_user_index(store).await;
}

/// Runs the checks of the [`Leases`] capability.
///
/// ```
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::run_leases(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn run_leases(store: &dyn Leases) {
    leases_are_exclusive_and_expire(store).await;
}

fn user_record(user: &str) -> Record {
    let mut r = live_record();
    r.meta.auth = Some(Auth::new(user, now()));
    r
}

fn unique_user(tag: &str) -> String {
    format!("{tag}-{}", SessionHandle::generate())
}

async fn handles(store: &dyn UserIndex, user: &str) -> Vec<SessionHandle> {
    let mut h: Vec<_> =
        ok(store.list_user(user, now(), usize::MAX).await, "list_user").await.into_iter().map(|m| m.handle).collect();
    h.sort_by_key(ToString::to_string);
    h
}

/// The per-user index lists exactly the live records of a user.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::user_index_follows_create_and_delete(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn user_index_follows_create_and_delete(store: &dyn UserIndex) {
    let user = unique_user("index");
    let mut made = Vec::new();
    for _ in 0..3 {
        let key = fresh_key();
        let r = user_record(&user);
        ok(store.create(&key, &r, now()).await, "create").await;
        made.push((key, r.meta.handle));
    }
    // An anonymous session and another user's are not listed.
    let (anon, other) = (fresh_key(), fresh_key());
    ok(store.create(&anon, &live_record(), now()).await, "create").await;
    ok(store.create(&other, &user_record(&unique_user("other")), now()).await, "create").await;
    let mut expected: Vec<_> = made.iter().map(|(_, h)| *h).collect();
    expected.sort_by_key(ToString::to_string);
    assert_eq!(handles(store, &user).await, expected, "list_user lists exactly the user's sessions");
    let listed = ok(store.list_user(&user, now(), usize::MAX).await, "list_user").await;
    assert!(listed.iter().all(|m| m.user() == Some(user.as_str())));
    ok(store.delete(&made[0].0, now()).await, "delete").await;
    expected.retain(|h| *h != made[0].1);
    assert_eq!(handles(store, &user).await, expected, "a deleted session leaves the index");
    for (key, _) in &made {
        ok(store.delete(key, now()).await, "delete").await;
    }
    assert!(handles(store, &user).await.is_empty());
    ok(store.delete(&anon, now()).await, "delete").await;
    ok(store.delete(&other, now()).await, "delete").await;
}

/// Expired sessions are not listed.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::user_index_drops_expired(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn user_index_drops_expired(store: &dyn UserIndex) {
    let user = unique_user("expiry");
    let key = fresh_key();
    let mut r = Record::new(Metadata::new(now().saturating_sub(10 * MINUTE), MINUTE, 120 * MINUTE));
    r.meta.auth = Some(Auth::new(&user, now()));
    let _ = ok(store.create(&key, &r, now()).await, "create").await;
    assert!(handles(store, &user).await.is_empty(), "an expired session must not be listed");
    ok(store.delete(&key, now()).await, "delete").await;
}

/// Revoking by handle works only on the user's own sessions; revoking all keeps the one asked for.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::revoking_is_scoped_to_the_user(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn revoking_is_scoped_to_the_user(store: &dyn UserIndex) {
    let alice = unique_user("alice");
    let bob = unique_user("bob");
    let (ka, ra) = (fresh_key(), user_record(&alice));
    let (kb, rb) = (fresh_key(), user_record(&bob));
    ok(store.create(&ka, &ra, now()).await, "create").await;
    ok(store.create(&kb, &rb, now()).await, "create").await;
    assert!(
        !ok(store.delete_by_handle(&alice, &rb.meta.handle, now()).await, "delete_by_handle").await,
        "another user's handle must not revoke"
    );
    assert!(ok(store.load(&kb, now()).await, "load").await.is_some());
    assert!(ok(store.delete_by_handle(&bob, &rb.meta.handle, now()).await, "delete_by_handle").await);
    assert!(ok(store.load(&kb, now()).await, "load").await.is_none(), "revoked by handle");
    let mut keys = vec![ka];
    for _ in 0..3 {
        let k = fresh_key();
        ok(store.create(&k, &user_record(&alice), now()).await, "create").await;
        keys.push(k);
    }
    let n = ok(store.delete_user(&alice, Some(&ra.meta.handle), now()).await, "delete_user").await;
    assert_eq!(n, 3, "all but the kept session are revoked");
    assert!(ok(store.load(&ka, now()).await, "load").await.is_some(), "the kept session stays");
    for k in &keys[1..] {
        assert!(ok(store.load(k, now()).await, "load").await.is_none());
    }
    assert_eq!(ok(store.delete_user(&alice, None, now()).await, "delete_user").await, 1);
    assert!(ok(store.load(&ka, now()).await, "load").await.is_none());
    assert!(handles(store, &alice).await.is_empty());
}

/// `n` concurrent logins and logouts of one user leave the index equal to the live set.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::user_index_under_concurrency(Arc::new(MemoryStore::default()), 10).await;
/// # });
/// ```
pub async fn user_index_under_concurrency(store: Arc<dyn UserIndex>, n: usize) {
    let user = unique_user("race");
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = Arc::clone(&store);
            let user = user.clone();
            tokio::spawn(async move {
                let key = fresh_key();
                let r = user_record(&user);
                store.create(&key, &r, now()).await.map(|_| ())?;
                if i % 2 == 0 {
                    store.delete(&key, now()).await?;
                    Ok::<_, crate::StoreError>(None)
                } else {
                    Ok(Some(r.meta.handle))
                }
            })
        })
        .collect();
    let mut live = Vec::new();
    for t in tasks {
        if let Some(h) = ok(t.await.unwrap_or_else(|e| panic!("task: {e}")), "race").await {
            live.push(h);
        }
    }
    live.sort_by_key(ToString::to_string);
    assert_eq!(handles(&*store, &user).await, live, "the index equals the live set");
    ok(store.delete_user(&user, None, now()).await, "delete_user").await;
}

/// A lease excludes other tokens until released or expired; unlock is compare-and-delete.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::leases_are_exclusive_and_expire(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn leases_are_exclusive_and_expire(store: &dyn Leases) {
    let key = fresh_key();
    ok(store.create(&key, &live_record(), now()).await, "create").await;
    assert!(ok(store.try_lock(&key, "token-a", 60_000, now()).await, "try_lock").await);
    assert!(
        !ok(store.try_lock(&key, "token-b", 60_000, now()).await, "try_lock").await,
        "a held lease excludes others"
    );
    ok(store.unlock(&key, "token-b", now()).await, "unlock").await;
    assert!(
        !ok(store.try_lock(&key, "token-b", 60_000, now()).await, "try_lock").await,
        "unlock by a non-holder does nothing"
    );
    ok(store.unlock(&key, "token-a", now()).await, "unlock").await;
    assert!(ok(store.try_lock(&key, "token-b", 300, now()).await, "try_lock").await, "released lease can be taken");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(
        ok(store.try_lock(&key, "token-c", 60_000, now()).await, "try_lock").await,
        "an expired lease blocks nobody"
    );
    ok(store.unlock(&key, "token-c", now()).await, "unlock").await;
    ok(store.delete(&key, now()).await, "delete").await;
}

async fn ok<T>(r: Result<T, crate::StoreError>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: store error {e}"))
}

/// `create` inserts only if absent and never overwrites.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::create_never_overwrites(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn create_never_overwrites(store: &dyn SessionStore) {
    let key = fresh_key();
    let first = live_record();
    assert!(ok(store.create(&key, &first, now()).await, "create").await, "create of a new key must succeed");
    let mut other = live_record();
    other.data.insert("intruder", &raw(true));
    assert!(!ok(store.create(&key, &other, now()).await, "create").await, "create must report an existing key");
    let loaded = ok(store.load(&key, now()).await, "load").await.unwrap_or_else(|| panic!("record vanished"));
    assert_eq!(loaded.data, first.data, "create must never overwrite another session");
    ok(store.delete(&key, now()).await, "delete").await;
}

/// `load` of a key never created is `None`.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::load_of_unknown_is_none(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn load_of_unknown_is_none(store: &dyn SessionStore) {
    assert!(ok(store.load(&fresh_key(), now()).await, "load").await.is_none());
}

/// A store that answers [`SessionStore::lookup_ready`] gives what `lookup` gives:
/// the live record, `None` for an unknown key, and `None` once `now` is past
/// the record's expiry. Stores without it (`None`) pass trivially.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::lookup_ready_agrees_with_lookup(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn lookup_ready_agrees_with_lookup(store: &dyn SessionStore) {
    let key = fresh_key();
    let record = live_record();
    assert!(ok(store.create(&key, &record, now()).await, "create").await);
    let t = now();
    if let Some(answer) = store.lookup_ready(&key, t) {
        let loaded = ok(store.lookup(&key, now()).await, "lookup").await;
        let answered = ok(answer, "lookup_now").await;
        assert_eq!(answered, loaded, "lookup_now must give what lookup gives");
        assert!(answered.is_some());
        let unknown = store.lookup_ready(&fresh_key(), t).expect("a store that answers lookup_now answers every key");
        assert!(ok(unknown, "lookup_now").await.is_none());
        let expired = store.lookup_ready(&key, record.meta.expires_at).expect("answers");
        assert!(ok(expired, "lookup_now").await.is_none(), "past its expiry the record is absent");
    }
    ok(store.delete(&key, now()).await, "delete").await;
}

/// A record past its expiry is absent, and `apply`/`touch` do not revive it.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::expired_is_absent(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn expired_is_absent(store: &dyn SessionStore) {
    let key = fresh_key();
    let t = now();
    let mut record = Record::new(Metadata::new(t.saturating_sub(10 * MINUTE), MINUTE, 120 * MINUTE));
    record.data.insert("k", &raw(1));
    // Some stores refuse to create an already-expired record; either is fine.
    let _ = ok(store.create(&key, &record, now()).await, "create").await;
    assert!(ok(store.load(&key, now()).await, "load").await.is_none(), "expired record must be absent");
    assert!(
        !ok(store.apply(&key, &change("k", Some(raw(2))), now()).await, "apply").await,
        "apply must not revive an expired record"
    );
    assert!(ok(store.load(&key, now()).await, "load").await.is_none());
    ok(store.delete(&key, now()).await, "delete").await;
}

/// `apply` merges keys and leaves untouched keys as they are.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::apply_merges_per_key(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn apply_merges_per_key(store: &dyn SessionStore) {
    let key = fresh_key();
    ok(store.create(&key, &live_record(), now()).await, "create").await;
    assert!(ok(store.apply(&key, &change("a", Some(raw(1))), now()).await, "apply").await);
    assert!(ok(store.apply(&key, &change("b", Some(raw(2))), now()).await, "apply").await);
    assert!(ok(store.apply(&key, &change("seed", None), now()).await, "apply").await);
    let r = ok(store.load(&key, now()).await, "load").await.unwrap_or_else(|| panic!("record vanished"));
    assert_eq!(r.data.get("a").map(RawValue::get), Some("1"));
    assert_eq!(r.data.get("b").map(RawValue::get), Some("2"));
    assert!(r.data.get("seed").is_none(), "removal must apply");
    let mut clear = ChangeSet::new(now(), now() + MINUTE);
    clear.clear();
    clear.set("c", raw(3));
    assert!(ok(store.apply(&key, &clear, now()).await, "apply").await);
    let r = ok(store.load(&key, now()).await, "load").await.unwrap_or_else(|| panic!("record vanished"));
    assert_eq!(r.data.len(), 1, "clear must remove every other key");
    ok(store.delete(&key, now()).await, "delete").await;
}

/// `apply` on a deleted record creates nothing.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::apply_never_resurrects(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn apply_never_resurrects(store: &dyn SessionStore) {
    let key = fresh_key();
    ok(store.create(&key, &live_record(), now()).await, "create").await;
    ok(store.delete(&key, now()).await, "delete").await;
    assert!(
        !ok(store.apply(&key, &change("a", Some(raw(1))), now()).await, "apply").await,
        "apply must report a missing record"
    );
    assert!(ok(store.load(&key, now()).await, "load").await.is_none(), "apply must never resurrect a deleted record");
    assert!(!ok(store.touch(&key, now(), now() + MINUTE).await, "touch").await);
    assert!(ok(store.load(&key, now()).await, "load").await.is_none(), "touch must never resurrect a deleted record");
}

/// `touch` moves the times and keeps the data, capped at the absolute deadline.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::touch_keeps_data(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn touch_keeps_data(store: &dyn SessionStore) {
    let key = fresh_key();
    let record = live_record();
    ok(store.create(&key, &record, now()).await, "create").await;
    let later = now() + 1_000;
    assert!(ok(store.touch(&key, later, later + 30 * MINUTE).await, "touch").await);
    let r = ok(store.load(&key, now()).await, "load").await.unwrap_or_else(|| panic!("record vanished"));
    assert_eq!(r.data, record.data, "touch must not change data");
    assert_eq!(r.meta.last_seen, later);
    assert_eq!(r.meta.expires_at, later + 30 * MINUTE);
    assert!(ok(store.touch(&key, later, later + 1_000 * MINUTE).await, "touch").await);
    let r = ok(store.load(&key, now()).await, "load").await.unwrap_or_else(|| panic!("record vanished"));
    assert_eq!(r.meta.expires_at, record.meta.absolute_deadline, "expiry is capped at the absolute deadline");
    ok(store.delete(&key, now()).await, "delete").await;
}

/// `delete` is final and idempotent.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::delete_is_final(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn delete_is_final(store: &dyn SessionStore) {
    let key = fresh_key();
    ok(store.create(&key, &live_record(), now()).await, "create").await;
    ok(store.delete(&key, now()).await, "delete").await;
    ok(store.delete(&key, now()).await, "delete twice").await;
    assert!(ok(store.load(&key, now()).await, "load").await.is_none());
}

/// `n` concurrent change sets on different keys of one session all land.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::concurrent_change_sets_all_land(Arc::new(MemoryStore::default()), 10).await;
/// # });
/// ```
pub async fn concurrent_change_sets_all_land(store: Arc<dyn SessionStore>, n: usize) {
    let key = fresh_key();
    ok(store.create(&key, &live_record(), now()).await, "create").await;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.apply(&key, &change(&format!("k{i}"), Some(raw(i))), now()).await })
        })
        .collect();
    for t in tasks {
        let applied = t.await.unwrap_or_else(|e| panic!("task: {e}"));
        assert!(ok(applied, "apply").await);
    }
    let r = ok(store.load(&key, now()).await, "load").await.unwrap_or_else(|| panic!("record vanished"));
    for i in 0..n {
        assert_eq!(
            r.data.get(&format!("k{i}")).map(RawValue::get),
            Some(i.to_string().as_str()),
            "lost update of k{i}"
        );
    }
    ok(store.delete(&key, now()).await, "delete").await;
}

/// A delete racing `n` writers leaves no record behind.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::logout_racing_writers_leaves_nothing(Arc::new(MemoryStore::default()), 10).await;
/// # });
/// ```
pub async fn logout_racing_writers_leaves_nothing(store: Arc<dyn SessionStore>, n: usize) {
    let key = fresh_key();
    ok(store.create(&key, &live_record(), now()).await, "create").await;
    let mut tasks = Vec::new();
    for i in 0..n {
        let writer = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            writer.apply(&key, &change(&format!("w{i}"), Some(raw(i))), now()).await.map(|_| ())
        }));
        if i == n / 2 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move { store.delete(&key, now()).await }));
        }
    }
    for t in tasks {
        ok(t.await.unwrap_or_else(|e| panic!("task: {e}")), "race").await;
    }
    assert!(ok(store.load(&key, now()).await, "load").await.is_none(), "a writer resurrected a deleted session");
}

pub mod cutoffs;
pub mod limit;
pub mod rotation;
pub mod sign_in;

pub use cutoffs::run_cutoffs;
pub use limit::run_session_limit;

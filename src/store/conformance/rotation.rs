//! Conformance of [`SessionStore::rotate`] and what it leaves behind: the
//! rotation races of the lifecycle (a logout, a revocation, "log out other
//! devices", expiry, a concurrent write, a second rotation), the retired
//! key, and the data cap on merged records.

use std::sync::Arc;

use serde_json::value::RawValue;

use super::{change, fresh_key, handles, live_record, now, ok, raw, unique_user, user_record, MINUTE};
use crate::{
    store::UserIndex, Auth, ChangeSet, Login, Rotated, Rotation, SessionStore, StorageKey, StoreError, Stored,
};

/// Runs the rotation checks of the core contract against `store`.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::run_core(Arc::new(MemoryStore::default())).await;
/// # });
/// ```
pub async fn run_core(store: Arc<dyn SessionStore>) {
    rotate_builds_from_current_data(&*store).await;
    rotate_after_logout_creates_nothing(&*store).await;
    rotate_after_expiry_creates_nothing(&*store).await;
    second_rotation_finds_the_key_retired(&*store).await;
    rotate_never_overwrites(&*store).await;
    delete_follows_retired_keys(&*store).await;
    delete_stops_at_a_used_successor(&*store).await;
    delete_ignores_an_expired_pointer(&*store).await;
    overlap_is_recorded_and_closed(&*store).await;
    rotate_keeps_the_data_cap(&*store).await;
    concurrent_rotations_leave_one_successor(Arc::clone(&store), 8).await;
}

/// The rotation checks that need a [`UserIndex`]: revocations racing
/// rotations, and a login moving the index.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::run_user_index(Arc::new(MemoryStore::default())).await;
/// # });
/// ```
pub async fn run_user_index(store: Arc<dyn UserIndex>) {
    rotate_after_revoke_creates_nothing(&*store).await;
    rotate_after_revoke_others_creates_nothing(&*store).await;
    revocation_follows_a_rotation(&*store).await;
    login_rotation_moves_the_user_index(&*store).await;
    rotated_session_is_listed_once(&*store).await;
    concurrent_rotations_list_one_session(Arc::clone(&store), 8).await;
    revocations_racing_rotations_end_them(store, 30).await;
}

fn rotation(changes: ChangeSet) -> Rotation {
    Rotation::new(now(), changes)
}

fn plain() -> Rotation {
    let t = now();
    rotation(ChangeSet::new(t, t + 30 * MINUTE))
}

async fn lookup<S: SessionStore + ?Sized>(store: &S, key: &StorageKey) -> Option<Stored> {
    ok(store.lookup(key, now()).await, "lookup").await
}

pub(super) async fn live<S: SessionStore + ?Sized>(store: &S, key: &StorageKey) -> crate::Record {
    match lookup(store, key).await {
        Some(Stored::Live(r)) => r,
        other => panic!("expected a live record, found {other:?}"),
    }
}

/// A fresh key that `store` accepts as a successor of `old` (as the layer
/// draws one: until [`SessionStore::accepts_successor`] says yes).
pub(super) fn successor_key<S: SessionStore + ?Sized>(store: &S, old: &StorageKey) -> StorageKey {
    loop {
        let key = fresh_key();
        if store.accepts_successor(old, &key) {
            return key;
        }
    }
}

pub(super) async fn rotate<S: SessionStore + ?Sized>(
    store: &S,
    old: &StorageKey,
    new: &StorageKey,
    r: &Rotation,
) -> Rotated {
    ok(store.rotate(old, new, r).await, "rotate").await
}

/// The successor is built from the record as it is stored *now* (a write
/// that landed after this request loaded is kept), merged with the
/// rotation's changes; the old key is retired and points at the successor;
/// the handle carries over.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::rotate_builds_from_current_data(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn rotate_builds_from_current_data(store: &dyn SessionStore) {
    let old = fresh_key();
    let new = successor_key(store, &old);
    let record = live_record();
    assert!(ok(store.create(&old, &record, now()).await, "create").await);
    // Another request writes after "our" request loaded.
    assert!(ok(store.apply(&old, &change("other", Some(raw(7))), now()).await, "apply").await);
    let t = now();
    let mut mine = ChangeSet::new(t, t + 30 * MINUTE);
    mine.set("mine", raw(1));
    mine.remove("seed");
    assert_eq!(rotate(store, &old, &new, &rotation(mine)).await, Rotated::Done);
    let next = live(store, &new).await;
    assert_eq!(next.data.get("other").map(RawValue::get), Some("7"), "a concurrent write must survive the rotation");
    assert_eq!(next.data.get("mine").map(RawValue::get), Some("1"), "the rotation's own change lands");
    assert!(next.data.get("seed").is_none(), "the rotation's own removal lands");
    assert_eq!(next.meta.handle, record.meta.handle, "a rotation keeps the session's handle");
    assert_eq!(next.meta.created_at, record.meta.created_at);
    assert!(next.meta.renewed_at.is_some(), "the successor records when its ID was issued");
    match lookup(store, &old).await {
        Some(Stored::Retired(r)) => assert_eq!(r.successor, new, "the old key points at its successor"),
        other => panic!("the old key must be retired, found {other:?}"),
    }
    assert!(ok(store.load(&old, now()).await, "load").await.is_none(), "a retired key is no session");
    assert!(
        !ok(store.apply(&old, &change("late", Some(raw(1))), now()).await, "apply").await,
        "apply on a retired key"
    );
    assert!(!ok(store.touch(&old, now(), now() + MINUTE).await, "touch").await, "touch on a retired key");
    assert!(live(store, &new).await.data.get("late").is_none());
    ok(store.delete(&new, now()).await, "delete").await;
    ok(store.delete(&old, now()).await, "delete").await;
}

async fn assert_nothing_created<S: SessionStore + ?Sized>(store: &S, old: &StorageKey, what: &str) {
    let new = successor_key(store, old);
    assert_eq!(rotate(store, old, &new, &plain()).await, Rotated::Gone, "rotate after {what}");
    assert!(lookup(store, &new).await.is_none(), "a rotation after {what} must create nothing");
    assert!(ok(store.load(old, now()).await, "load").await.is_none(), "a rotation after {what} must not revive it");
}

/// A rotation that comes after a logout creates nothing.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::rotate_after_logout_creates_nothing(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn rotate_after_logout_creates_nothing(store: &dyn SessionStore) {
    let old = fresh_key();
    ok(store.create(&old, &user_record(&unique_user("logout")), now()).await, "create").await;
    ok(store.delete(&old, now()).await, "delete").await;
    assert_nothing_created(store, &old, "a logout").await;
}

/// A rotation that comes after a revocation by handle creates nothing.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::rotate_after_revoke_creates_nothing(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn rotate_after_revoke_creates_nothing(store: &dyn UserIndex) {
    let user = unique_user("revoke");
    let old = fresh_key();
    let record = user_record(&user);
    ok(store.create(&old, &record, now()).await, "create").await;
    assert!(ok(store.delete_by_handle(&user, &record.meta.handle, now()).await, "delete_by_handle").await);
    assert_nothing_created(store, &old, "a revocation").await;
    assert!(handles(store, &user).await.is_empty(), "nothing is listed for the user");
}

/// A rotation that comes after "log out other devices" creates nothing.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::rotate_after_revoke_others_creates_nothing(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn rotate_after_revoke_others_creates_nothing(store: &dyn UserIndex) {
    let user = unique_user("others");
    let (mine, other) = (fresh_key(), fresh_key());
    let keep = user_record(&user);
    ok(store.create(&mine, &keep, now()).await, "create").await;
    ok(store.create(&other, &user_record(&user), now()).await, "create").await;
    assert_eq!(ok(store.delete_user(&user, Some(&keep.meta.handle), now()).await, "delete_user").await, 1);
    assert_nothing_created(store, &other, "revoke_others").await;
    assert_eq!(handles(store, &user).await, vec![keep.meta.handle]);
    ok(store.delete(&mine, now()).await, "delete").await;
}

/// A rotation of a record that expired creates nothing.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::rotate_after_expiry_creates_nothing(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn rotate_after_expiry_creates_nothing(store: &dyn SessionStore) {
    let old = fresh_key();
    ok(store.create(&old, &live_record(), now()).await, "create").await;
    // Move the idle deadline into the past: the record expired.
    let t = now();
    let _ = ok(store.touch(&old, t, t.saturating_sub(1)).await, "touch").await;
    assert_nothing_created(store, &old, "expiry").await;
    ok(store.delete(&old, now()).await, "delete").await;
}

/// A second rotation of the same key finds it retired and changes nothing:
/// one session never forks into two.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::second_rotation_finds_the_key_retired(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn second_rotation_finds_the_key_retired(store: &dyn SessionStore) {
    let old = fresh_key();
    let (first, second) = (successor_key(store, &old), successor_key(store, &old));
    ok(store.create(&old, &live_record(), now()).await, "create").await;
    assert_eq!(rotate(store, &old, &first, &plain()).await, Rotated::Done);
    match rotate(store, &old, &second, &plain()).await {
        Rotated::Retired(r) => assert_eq!(r.successor, first, "the second rotation learns the successor"),
        other => panic!("a second rotation must find the key retired, got {other:?}"),
    }
    assert!(lookup(store, &second).await.is_none(), "a second rotation must create nothing");
    live(store, &first).await;
    ok(store.delete(&old, now()).await, "delete").await;
    assert!(lookup(store, &first).await.is_none());
}

/// A rotation onto a key that is in use changes nothing.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::rotate_never_overwrites(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn rotate_never_overwrites(store: &dyn SessionStore) {
    let old = fresh_key();
    let taken = successor_key(store, &old);
    ok(store.create(&old, &live_record(), now()).await, "create").await;
    let mut other = live_record();
    other.data.insert("owner", &raw("someone else"));
    ok(store.create(&taken, &other, now()).await, "create").await;
    assert_eq!(rotate(store, &old, &taken, &plain()).await, Rotated::Taken);
    assert_eq!(live(store, &taken).await.data, other.data, "rotate must never overwrite another session");
    live(store, &old).await;
    ok(store.delete(&old, now()).await, "delete").await;
    ok(store.delete(&taken, now()).await, "delete").await;
}

/// `delete` of a retired key ends its successor, along a chain of rotations.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::delete_follows_retired_keys(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn delete_follows_retired_keys(store: &dyn SessionStore) {
    let (a, b, c) = rotated_twice(store, &unique_user("chain")).await;
    ok(store.delete(&a, now()).await, "delete").await;
    for key in [&a, &b, &c] {
        assert!(lookup(store, key).await.is_none(), "a logout on a retired key ends the whole chain");
    }
}

/// A session rotated twice is listed once, and a logout on its first key
/// takes it off the list.
///
/// ```
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::rotated_session_is_listed_once(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn rotated_session_is_listed_once(store: &dyn UserIndex) {
    let user = unique_user("chain");
    let (a, _, _) = rotated_twice(store, &user).await;
    assert_eq!(handles(store, &user).await.len(), 1, "one session, listed once");
    ok(store.delete(&a, now()).await, "delete").await;
    assert!(handles(store, &user).await.is_empty());
}

/// A session of `user` created under `a`, rotated to `b`, then to `c`.
async fn rotated_twice<S: SessionStore + ?Sized>(store: &S, user: &str) -> (StorageKey, StorageKey, StorageKey) {
    let a = fresh_key();
    let b = successor_key(store, &a);
    let c = successor_key(store, &b);
    ok(store.create(&a, &user_record(user), now()).await, "create").await;
    assert_eq!(rotate(store, &a, &b, &plain()).await, Rotated::Done);
    assert_eq!(rotate(store, &b, &c, &plain()).await, Rotated::Done);
    (a, b, c)
}

/// Once the successor was used (`close_overlap`), a logout on the retired
/// ID ends nothing but the pointer: someone who still holds the old ID (a
/// fixation attacker) cannot log the user out.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::delete_stops_at_a_used_successor(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn delete_stops_at_a_used_successor(store: &dyn SessionStore) {
    let old = fresh_key();
    ok(store.create(&old, &live_record(), now()).await, "create").await;
    let new = successor_key(store, &old);
    assert_eq!(rotate(store, &old, &new, &plain()).await, Rotated::Done);
    assert_eq!(live(store, &new).await.meta.predecessor, Some(old), "unused: it names its predecessor");
    let t = now();
    let mut used = ChangeSet::new(t, t + 30 * MINUTE);
    used.close_overlap = true;
    assert!(ok(store.apply(&new, &used, now()).await, "apply").await);
    ok(store.delete(&old, now()).await, "delete").await;
    assert!(lookup(store, &old).await.is_none(), "the pointer is gone");
    live(store, &new).await;
    ok(store.delete(&new, now()).await, "delete").await;
}

/// A pointer past its `until` is followed by nothing: an old ID that
/// expired ends no session.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::delete_ignores_an_expired_pointer(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn delete_ignores_an_expired_pointer(store: &dyn SessionStore) {
    let old = fresh_key();
    ok(store.create(&old, &live_record(), now()).await, "create").await;
    let new = successor_key(store, &old);
    let mut r = plain();
    r.retired_until = r.now; // the pointer is dead at once
    assert_eq!(rotate(store, &old, &new, &r).await, Rotated::Done);
    assert!(lookup(store, &old).await.is_none(), "an expired pointer is absent");
    ok(store.delete(&old, now()).await, "delete").await;
    live(store, &new).await;
    ok(store.delete(&new, now()).await, "delete").await;
}

/// A revocation by handle and "log out other devices" reach a session
/// through the key it was listed under before a rotation.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::revocation_follows_a_rotation(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn revocation_follows_a_rotation(store: &dyn UserIndex) {
    let user = unique_user("follow");
    let (mine, other) = (fresh_key(), fresh_key());
    let keep = user_record(&user);
    ok(store.create(&mine, &keep, now()).await, "create").await;
    let record = user_record(&user);
    ok(store.create(&other, &record, now()).await, "create").await;
    let next = successor_key(store, &other);
    assert_eq!(rotate(store, &other, &next, &plain()).await, Rotated::Done);
    assert_eq!(handles(store, &user).await.len(), 2, "both sessions listed once");
    assert!(ok(store.delete_by_handle(&user, &record.meta.handle, now()).await, "delete_by_handle").await);
    assert!(lookup(store, &next).await.is_none(), "the renewed session was revoked");
    let third = fresh_key();
    ok(store.create(&third, &user_record(&user), now()).await, "create").await;
    let fourth = successor_key(store, &third);
    assert_eq!(rotate(store, &third, &fourth, &plain()).await, Rotated::Done);
    assert_eq!(ok(store.delete_user(&user, Some(&keep.meta.handle), now()).await, "delete_user").await, 1);
    assert!(lookup(store, &fourth).await.is_none(), "log out other devices ended the renewed session");
    assert_eq!(handles(store, &user).await, vec![keep.meta.handle]);
    ok(store.delete(&mine, now()).await, "delete").await;
}

/// `n` rounds of "log out other devices" racing a rotation of the session
/// it ends: the revoked session never survives under its new key.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::revocations_racing_rotations_end_them(Arc::new(MemoryStore::default()), 5).await;
/// # });
/// ```
pub async fn revocations_racing_rotations_end_them(store: Arc<dyn UserIndex>, n: usize) {
    for _ in 0..n {
        let user = unique_user("race");
        let (mine, other) = (fresh_key(), fresh_key());
        let keep = user_record(&user);
        ok(store.create(&mine, &keep, now()).await, "create").await;
        ok(store.create(&other, &user_record(&user), now()).await, "create").await;
        let next = successor_key(store.as_ref(), &other);
        let revoker = Arc::clone(&store);
        let handle = keep.meta.handle;
        let u = user.clone();
        let revoke = tokio::spawn(async move { revoker.delete_user(&u, Some(&handle), now()).await });
        let rotator = Arc::clone(&store);
        let rotate = tokio::spawn(async move { rotator.rotate(&other, &next, &plain()).await });
        ok(revoke.await.unwrap_or_else(|e| panic!("task: {e}")), "delete_user").await;
        ok(rotate.await.unwrap_or_else(|e| panic!("task: {e}")), "rotate").await;
        assert!(ok(store.load(&next, now()).await, "load").await.is_none(), "a revoked session survived its renewal");
        assert_eq!(handles(store.as_ref(), &user).await, vec![keep.meta.handle]);
        ok(store.delete(&mine, now()).await, "delete").await;
    }
}

/// A login rotation indexes the successor under the new user (and the old
/// key nowhere), keeps only the retained keys, and sets the new deadline.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::login_rotation_moves_the_user_index(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn login_rotation_moves_the_user_index(store: &dyn UserIndex) {
    let (before, after) = (unique_user("before"), unique_user("after"));
    let old = fresh_key();
    let new = successor_key(store, &old);
    let mut record = user_record(&before);
    record.data.insert("cart", &raw(2));
    ok(store.create(&old, &record, now()).await, "create").await;
    let t = now();
    let mut r = rotation(ChangeSet::new(t, t + 30 * MINUTE));
    r.retain = Some(vec!["cart".into()]);
    let mut login = Login::new(Auth::new(after.clone(), t), t + 60 * MINUTE);
    login.user_agent = Some("agent".into());
    r.login = Some(login);
    assert_eq!(rotate(store, &old, &new, &r).await, Rotated::Done);
    let next = live(store, &new).await;
    assert_eq!(next.meta.user(), Some(after.as_str()));
    assert_eq!(next.meta.absolute_deadline, t + 60 * MINUTE);
    assert_eq!(next.meta.user_agent.as_deref(), Some("agent"));
    assert_eq!(next.data.keys().collect::<Vec<_>>(), ["cart"], "only retained keys survive a login");
    assert_eq!(handles(store, &after).await, vec![next.meta.handle], "the successor is listed under its user");
    assert!(handles(store, &before).await.is_empty(), "the retired key is listed under nobody");
    ok(store.delete(&old, now()).await, "delete").await;
    assert!(handles(store, &after).await.is_empty());
}

/// A rotation with an overlap records the predecessor in the successor;
/// `apply` with `close_overlap` clears it.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::overlap_is_recorded_and_closed(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn overlap_is_recorded_and_closed(store: &dyn SessionStore) {
    let old = fresh_key();
    let new = successor_key(store, &old);
    ok(store.create(&old, &live_record(), now()).await, "create").await;
    let mut r = plain();
    r.overlap_until = r.now + 30_000;
    assert_eq!(rotate(store, &old, &new, &r).await, Rotated::Done);
    assert_eq!(live(store, &new).await.meta.predecessor, Some(old), "the successor names its predecessor");
    match lookup(store, &old).await {
        Some(Stored::Retired(retired)) => {
            assert_eq!(retired.overlap_until, r.overlap_until);
            assert!(retired.until >= r.overlap_until, "the retired key outlives its overlap");
        }
        other => panic!("the old key must be retired, found {other:?}"),
    }
    let t = now();
    let mut close = ChangeSet::new(t, t + 30 * MINUTE);
    close.close_overlap = true;
    assert!(ok(store.apply(&new, &close, now()).await, "apply").await);
    let next = live(store, &new).await;
    assert_eq!(next.meta.predecessor, None, "close_overlap clears the predecessor");
    assert_eq!(next.data.get("seed").map(RawValue::get), Some("\"value\""), "and keeps the data");
    ok(store.delete(&old, now()).await, "delete").await;
}

/// A rotation whose merged data would pass the cap fails and changes nothing.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::rotate_keeps_the_data_cap(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn rotate_keeps_the_data_cap(store: &dyn SessionStore) {
    let old = fresh_key();
    let new = successor_key(store, &old);
    let record = live_record(); // "seed": "\"value\"" = 11 bytes
    ok(store.create(&old, &record, now()).await, "create").await;
    let t = now();
    let mut big = ChangeSet::new(t, t + 30 * MINUTE);
    big.set("big", raw("x".repeat(40)));
    big.max_data_bytes = 40;
    match store.rotate(&old, &new, &rotation(big)).await {
        Err(StoreError::TooLarge) => {}
        other => panic!("a rotation past the cap must fail with TooLarge, got {other:?}"),
    }
    assert!(lookup(store, &new).await.is_none(), "nothing is created");
    assert_eq!(live(store, &old).await.data, record.data, "the old record is untouched");
    ok(store.delete(&old, now()).await, "delete").await;
}

/// `n` concurrent rotations of one key: exactly one succeeds, the others
/// find the key retired, and exactly one live successor remains.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::concurrent_rotations_leave_one_successor(Arc::new(MemoryStore::default()), 4).await;
/// # });
/// ```
pub async fn concurrent_rotations_leave_one_successor(store: Arc<dyn SessionStore>, n: usize) {
    let old = concurrent_rotations(Arc::clone(&store), &unique_user("fork"), n).await;
    ok(store.delete(&old, now()).await, "delete").await;
}

/// After concurrent rotations of one session, its user sees one session.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::concurrent_rotations_list_one_session(Arc::new(MemoryStore::default()), 4).await;
/// # });
/// ```
pub async fn concurrent_rotations_list_one_session(store: Arc<dyn UserIndex>, n: usize) {
    let user = unique_user("fork");
    let old = concurrent_rotations(Arc::clone(&store), &user, n).await;
    assert_eq!(handles(store.as_ref(), &user).await.len(), 1, "the user sees one session");
    ok(store.delete(&old, now()).await, "delete").await;
}

/// Runs `n` concurrent rotations of one new session of `user` and checks
/// that exactly one succeeded; returns the session's first key.
async fn concurrent_rotations<S: SessionStore + ?Sized>(store: Arc<S>, user: &str, n: usize) -> StorageKey {
    let old = fresh_key();
    ok(store.create(&old, &user_record(user), now()).await, "create").await;
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let store = Arc::clone(&store);
            let new = successor_key(store.as_ref(), &old);
            tokio::spawn(async move { (new, store.rotate(&old, &new, &plain()).await) })
        })
        .collect();
    let mut done = Vec::new();
    let mut keys = Vec::new();
    for t in tasks {
        let (new, outcome) = t.await.unwrap_or_else(|e| panic!("task: {e}"));
        keys.push(new);
        if ok(outcome, "rotate").await == Rotated::Done {
            done.push(new);
        }
    }
    assert_eq!(done.len(), 1, "exactly one of {n} concurrent rotations succeeds");
    let mut alive = 0;
    for key in &keys {
        if matches!(lookup(store.as_ref(), key).await, Some(Stored::Live(_))) {
            alive += 1;
        }
    }
    assert_eq!(alive, 1, "exactly one live successor");
    old
}

/// `apply` refuses a change set that would pass its data cap.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::apply_keeps_the_data_cap(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn apply_keeps_the_data_cap(store: &dyn SessionStore) {
    let key = fresh_key();
    let record = live_record();
    ok(store.create(&key, &record, now()).await, "create").await;
    let mut big = change("big", Some(raw("x".repeat(40))));
    big.max_data_bytes = 40;
    match store.apply(&key, &big, now()).await {
        Err(StoreError::TooLarge) => {}
        other => panic!("an apply past the cap must fail with TooLarge, got {other:?}"),
    }
    assert_eq!(live(store, &key).await.data, record.data, "nothing changed");
    let mut fits = change("small", Some(raw(1)));
    fits.max_data_bytes = 40;
    assert!(ok(store.apply(&key, &fits, now()).await, "apply").await, "a change within the cap lands");
    ok(store.delete(&key, now()).await, "delete").await;
}

/// `n` concurrent writers, each within the cap on its own, cannot together
/// grow a record past it: the cap holds on the merged record.
///
/// ```
/// # use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::rotation::concurrent_writers_cannot_pass_the_data_cap(Arc::new(MemoryStore::default()), 10).await;
/// # });
/// ```
pub async fn concurrent_writers_cannot_pass_the_data_cap(store: Arc<dyn SessionStore>, n: usize) {
    const CAP: usize = 100;
    let key = fresh_key();
    ok(store.create(&key, &live_record(), now()).await, "create").await;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                // Each value is 20 bytes with its key: alone, well within the cap.
                let mut c = change(&format!("k{i:02}"), Some(raw("x".repeat(15))));
                c.max_data_bytes = CAP;
                store.apply(&key, &c, now()).await
            })
        })
        .collect();
    let mut landed = 0;
    for t in tasks {
        match t.await.unwrap_or_else(|e| panic!("task: {e}")) {
            Ok(true) => landed += 1,
            Err(StoreError::TooLarge) => {}
            other => panic!("unexpected apply outcome {other:?}"),
        }
    }
    let data = live(store.as_ref(), &key).await.data;
    assert!(data.size() <= CAP, "merged data is {} bytes, past the cap of {CAP}", data.size());
    assert_eq!(data.len(), landed + 1, "every acknowledged write is present");
    assert!(landed >= 1 && landed < n, "some writes fit, the rest were refused ({landed} of {n})");
    ok(store.delete(&key, now()).await, "delete").await;
}

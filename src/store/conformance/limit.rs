//! The checks of the per-user session limit: a login under
//! [`Login::limit`] is admitted, evicting the least recently used, or
//! refused, in the same atomic step as its rotation (see the [store
//! contract](crate::store#the-per-user-session-limit)).
//!
//! Each login is what the layer commits: an anonymous session created
//! under a fresh key, then rotated to another one with the login.

use std::{num::NonZeroUsize, sync::Arc};

use tokio::sync::Barrier;

use super::{fresh_key, handles, live_record, now, ok, rotation::successor_key, unique_user, MINUTE};
use crate::{
    store::{Cutoffs, LimitPolicy, Scope, SessionLimit, UserIndex},
    Auth, ChangeSet, Login, Record, Rotated, Rotation, SessionHandle, SessionStore, StorageKey, Stored,
};

/// Runs every check of the per-user session limit against `store`, which
/// needs the per-user index and cutoffs (sessions a cutoff ended do not
/// count).
///
/// ```
/// use std::sync::Arc;
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::run_session_limit(Arc::new(MemoryStore::default())).await;
/// # });
/// ```
pub async fn run_session_limit<S: UserIndex + Cutoffs>(store: Arc<S>) {
    a_login_past_the_limit_evicts_the_least_recently_used(&*store).await;
    a_login_past_the_limit_is_refused_and_changes_nothing(&*store).await;
    only_the_users_other_live_sessions_count(&*store).await;
    parallel_logins_never_pass_the_limit(Arc::clone(&store), 10, LimitPolicy::EvictLeastRecent).await;
    parallel_logins_never_pass_the_limit(store, 10, LimitPolicy::RefuseNew).await;
}

fn limit(max: usize, policy: LimitPolicy) -> SessionLimit {
    SessionLimit::new(NonZeroUsize::new(max).unwrap_or(NonZeroUsize::MIN), policy)
}

/// A login as [`login`] made it.
struct Made {
    /// The anonymous session's key.
    anonymous: StorageKey,
    /// The key the login rotated it to.
    key: StorageKey,
    /// The session's handle.
    handle: SessionHandle,
    /// What the rotation answered.
    rotated: Rotated,
}

/// One login of `user` at `at` under `limit`, as the layer commits it: an
/// anonymous session, then its rotation with the login (under the user's
/// first credential epoch).
async fn login<S: SessionStore + ?Sized>(store: &S, user: &str, limit: SessionLimit, at: u64) -> Made {
    login_as(store, Auth::new(user, at), limit, at).await
}

/// [`login`] with `auth`.
async fn login_as<S: SessionStore + ?Sized>(store: &S, auth: Auth, limit: SessionLimit, at: u64) -> Made {
    let mut record = live_record();
    record.meta.created_at = at;
    record.meta.last_seen = at;
    let anonymous = fresh_key();
    assert!(ok(store.create(&anonymous, &record, at).await, "create").await, "create of a new key must succeed");
    let key = successor_key(store, &anonymous);
    let mut rotation = Rotation::new(at, ChangeSet::new(at, at + 30 * MINUTE));
    let mut signed_in = Login::new(auth, at + 120 * MINUTE);
    signed_in.limit = Some(limit);
    rotation.login = Some(signed_in);
    let rotated = ok(store.rotate(&anonymous, &key, &rotation).await, "rotate").await;
    Made { anonymous, key, handle: record.meta.handle, rotated }
}

/// Three logins of a new user under a limit of 2 with `policy`, a second
/// apart; and what their rotations answered.
async fn three_logins<S: UserIndex>(store: &S, tag: &str, policy: LimitPolicy) -> (String, Vec<Made>, Vec<Rotated>) {
    let user = unique_user(tag);
    let t = now();
    let mut made = Vec::new();
    for i in 0..3 {
        made.push(login(store, &user, limit(2, policy), t + i * 1_000).await);
    }
    let answers = made.iter().map(|m| m.rotated).collect();
    (user, made, answers)
}

async fn stored<S: SessionStore + ?Sized>(store: &S, key: &StorageKey) -> Option<Stored> {
    ok(store.lookup(key, now()).await, "lookup").await
}

async fn is_live<S: SessionStore + ?Sized>(store: &S, key: &StorageKey) -> bool {
    matches!(stored(store, key).await, Some(Stored::Live(_)))
}

async fn delete_all<S: SessionStore + ?Sized>(store: &S, keys: &[StorageKey]) {
    for key in keys {
        ok(store.delete(key, now()).await, "delete").await;
    }
}

async fn delete_made<S: SessionStore + ?Sized>(store: &S, made: &[Made]) {
    let keys: Vec<StorageKey> = made.iter().flat_map(|m| [m.anonymous, m.key]).collect();
    delete_all(store, &keys).await;
}

fn sorted(mut handles: Vec<SessionHandle>) -> Vec<SessionHandle> {
    handles.sort_by_key(ToString::to_string);
    handles
}

/// Limit 2, evicting: after three logins the first session is gone, the
/// second and third are live, and only the third evicted (one session).
///
/// ```
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::limit::a_login_past_the_limit_evicts_the_least_recently_used(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn a_login_past_the_limit_evicts_the_least_recently_used<S: UserIndex>(store: &S) {
    let (user, made, answers) = three_logins(store, "limit-evict", LimitPolicy::EvictLeastRecent).await;
    assert_eq!(
        answers,
        [Rotated::Done, Rotated::Done, Rotated::Evicted { count: 1 }],
        "the third login past a limit of 2 evicts one session"
    );
    assert!(stored(store, &made[0].key).await.is_none(), "the least recently used session must be gone");
    assert!(is_live(store, &made[1].key).await && is_live(store, &made[2].key).await, "the two newest stay");
    let newest = sorted(vec![made[1].handle, made[2].handle]);
    assert_eq!(handles(store, &user).await, newest, "the user lists the two newest");
    delete_made(store, &made).await;
}

/// Limit 2, refusing: the third login answers `Refused` and changes
/// nothing (its anonymous session stays live and anonymous, its new key
/// empty); the first two stay.
///
/// ```
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::limit::a_login_past_the_limit_is_refused_and_changes_nothing(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn a_login_past_the_limit_is_refused_and_changes_nothing<S: UserIndex>(store: &S) {
    let (user, made, answers) = three_logins(store, "limit-refuse", LimitPolicy::RefuseNew).await;
    assert_eq!(answers, [Rotated::Done, Rotated::Done, Rotated::Refused], "the third login past a limit of 2");
    match stored(store, &made[2].anonymous).await {
        Some(Stored::Live(r)) => assert!(r.meta.auth.is_none(), "a refused login must not sign the session in"),
        other => panic!("a refused login must leave its session as it was, found {other:?}"),
    }
    assert!(stored(store, &made[2].key).await.is_none(), "a refused login must create nothing");
    assert!(is_live(store, &made[0].key).await && is_live(store, &made[1].key).await, "the first two stay");
    assert_eq!(handles(store, &user).await, sorted(vec![made[0].handle, made[1].handle]));
    delete_made(store, &made).await;
}

/// Only the user's other live sessions count: not another user's, not one
/// a cutoff ended, not a retired pointer, not the session being rotated
/// (a re-login of a session of the user).
///
/// ```
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::limit::only_the_users_other_live_sessions_count(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn only_the_users_other_live_sessions_count<S: UserIndex + Cutoffs>(store: &S) {
    let user = unique_user("limit-count");
    let two = limit(2, LimitPolicy::RefuseNew);
    let t = now();
    // A session signed in under the user's first credential epoch, which
    // the user's cutoff then ends (it moves the epoch to 1); the user's
    // logins below sign in under epoch 1.
    let ended = fresh_key();
    let mut old_sign_in = live_record();
    old_sign_in.meta.auth = Some(Auth::new(user.as_str(), t));
    ok(store.create(&ended, &old_sign_in, t).await, "create").await;
    ok(store.cut(Scope::User(&user), 1, u64::MAX, t).await, "cut").await;
    let user_login = |at: u64| login_as(store, Auth::new(user.as_str(), at).with_epoch(1), two, at);
    // Another user's sessions.
    let other = unique_user("limit-other");
    let mut made = Vec::new();
    for i in 0..2 {
        made.push(login(store, &other, two, t + i).await);
    }
    // A session of the user, renewed: its old key is a retired pointer.
    let first = user_login(t).await;
    assert_eq!(first.rotated, Rotated::Done, "the user's first login: nothing else counts");
    let renewed = successor_key(store, &first.key);
    let plain = Rotation::new(t + 1, ChangeSet::new(t + 1, t + 30 * MINUTE));
    assert_eq!(ok(store.rotate(&first.key, &renewed, &plain).await, "rotate").await, Rotated::Done);
    let second = user_login(t + 2).await;
    assert_eq!(
        second.rotated,
        Rotated::Done,
        "one live session of the user counts (not its pointer, the ended or others')"
    );
    // A re-login of a session of the user at the limit: it is not counted
    // against itself.
    let relogged = successor_key(store, &second.key);
    let mut again = Rotation::new(t + 3, ChangeSet::new(t + 3, t + 30 * MINUTE));
    let mut signed_in = Login::new(Auth::new(user.as_str(), t + 3).with_epoch(1), t + 120 * MINUTE);
    signed_in.limit = Some(two);
    again.login = Some(signed_in);
    assert_eq!(ok(store.rotate(&second.key, &relogged, &again).await, "rotate").await, Rotated::Done);
    let third = user_login(t + 4).await;
    assert_eq!(third.rotated, Rotated::Refused, "two live sessions of the user count against a limit of 2");
    made.extend([first, second, third]);
    delete_made(store, &made).await;
    delete_all(store, &[ended, renewed, relogged]).await;
}

/// `n` logins of one user at once (a barrier lines them up) under a limit
/// of 2: at most 2 live sessions are left, whatever the interleaving.
/// Evicting: every login goes through and exactly 2 stay; refusing:
/// exactly 2 logins go through.
///
/// ```
/// use std::sync::Arc;
/// use sessionware::store::{conformance, LimitPolicy, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let store = Arc::new(MemoryStore::default());
/// conformance::limit::parallel_logins_never_pass_the_limit(store, 10, LimitPolicy::EvictLeastRecent).await;
/// # });
/// ```
pub async fn parallel_logins_never_pass_the_limit<S: UserIndex>(store: Arc<S>, n: usize, policy: LimitPolicy) {
    let user = unique_user("limit-race");
    let two = limit(2, policy);
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (store, barrier, user) = (Arc::clone(&store), Arc::clone(&barrier), user.clone());
            tokio::spawn(async move {
                let old = fresh_key();
                let record: Record = live_record();
                let created = store.create(&old, &record, now()).await;
                let new = successor_key(&*store, &old);
                let t = now();
                let mut rotation = Rotation::new(t, ChangeSet::new(t, t + 30 * MINUTE));
                let mut signed_in = Login::new(Auth::new(user.as_str(), t), t + 120 * MINUTE);
                signed_in.limit = Some(two);
                rotation.login = Some(signed_in);
                barrier.wait().await;
                (old, new, created, store.rotate(&old, &new, &rotation).await)
            })
        })
        .collect();
    let mut keys = Vec::new();
    let (mut admitted, mut evicted, mut live) = (0, 0, 0);
    for task in tasks {
        let (old, new, created, rotated) = task.await.unwrap_or_else(|e| panic!("task: {e}"));
        assert!(ok(created, "create").await);
        match ok(rotated, "rotate").await {
            Rotated::Done => admitted += 1,
            Rotated::Evicted { count } => {
                admitted += 1;
                evicted += count;
            }
            Rotated::Refused => assert_eq!(policy, LimitPolicy::RefuseNew, "only a refusing limit refuses"),
            other => panic!("a login of a live anonymous session answered {other:?}"),
        }
        keys.extend([old, new]);
    }
    // Once every login is done: the signed-in sessions (the odd keys).
    for new in keys.iter().skip(1).step_by(2) {
        if is_live(&*store, new).await {
            live += 1;
        }
    }
    assert_eq!(handles(&*store, &user).await.len(), live, "the user lists the live sessions");
    assert_eq!(live, 2, "{n} parallel logins under a limit of 2 ({policy:?}) must leave exactly 2 live sessions");
    match policy {
        LimitPolicy::RefuseNew => assert_eq!(admitted, 2, "exactly 2 of {n} parallel logins go through"),
        _ => assert_eq!((admitted, evicted), (n, n - 2), "every login goes through, evicting the others"),
    }
    delete_all(&*store, &keys).await;
}

//! The checks of the [`Cutoffs`] capability.
//!
//! The records here carry creation and sign-in times ten years in the past
//! (with live deadlines), and the cutoffs they set are of that time:
//! a store shared with other tests, or with real sessions, keeps serving
//! those, since a cutoff never moves back.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{fresh_key, handles, live_record, now, ok, rotation::successor_key, unique_user, MINUTE};
use crate::{
    store::{Cutoffs, Scope, UserIndex},
    Auth, ChangeSet, Login, Record, Rotated, Rotation, SessionStore, StorageKey,
};

/// A check's base time: ten years ago, so that its cutoffs never touch a
/// real session, and at least a second past the previous check's in this
/// process, so that the cutoffs an earlier check left on the same store
/// (which stay) end none of this check's sessions.
fn base() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    const TEN_YEARS: u64 = 10 * 365 * 24 * 60 * MINUTE;
    let floor = now().saturating_sub(TEN_YEARS);
    let next = |last: u64| floor.max(last.saturating_add(1_000));
    match LAST.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(next(last))) {
        Ok(last) | Err(last) => next(last),
    }
}

/// A live record created at `created_at`, signed in to by `user` under
/// the credential epoch `epoch`.
fn record_at(created_at: u64, signed_in: Option<(&str, u64)>) -> Record {
    let mut r = live_record();
    r.meta.created_at = created_at;
    r.meta.auth = signed_in.map(|(user, epoch)| Auth::new(user, now()).with_epoch(epoch));
    r
}

async fn made<S: SessionStore + ?Sized>(store: &S, record: &Record) -> StorageKey {
    let key = fresh_key();
    assert!(ok(store.create(&key, record, now()).await, "create").await, "create of a new key must succeed");
    key
}

async fn is_live<S: SessionStore + ?Sized>(store: &S, key: &StorageKey) -> bool {
    ok(store.lookup(key, now()).await, "lookup").await.and_then(crate::Stored::live).is_some()
}

/// Runs every check of the [`Cutoffs`] capability.
///
/// ```
/// use sessionware::store::{conformance, MemoryStore};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// conformance::run_cutoffs(&MemoryStore::default()).await;
/// # });
/// ```
pub async fn run_cutoffs<S: Cutoffs + UserIndex>(store: &S) {
    a_user_cutoff_ends_that_users_earlier_sign_ins_only(store).await;
    a_cutoff_reaches_successors_but_not_a_new_sign_in(store).await;
    the_global_cutoff_ends_sessions_created_before_it(store).await;
}

/// A user's epoch ends the sessions that user signed in to under an
/// earlier one, at once and in listings; sign-ins under it, other users
/// (compared byte for byte) and visitors are untouched; it never moves
/// back.
pub async fn a_user_cutoff_ends_that_users_earlier_sign_ins_only<S: Cutoffs + UserIndex>(store: &S) {
    let t = base();
    let user = unique_user("cut");
    let (other, look_alike) = (unique_user("cut-other"), format!("{} ", user.to_uppercase()));
    let before_record = record_at(t, Some((&user, 1)));
    let before = made(store, &before_record).await;
    let at_cutoff = made(store, &record_at(t, Some((&user, 2)))).await;
    let others = made(store, &record_at(t, Some((&other, 0)))).await;
    let similar = made(store, &record_at(t, Some((&look_alike, 0)))).await;
    let visitor = made(store, &record_at(t, None)).await;
    let keep = now() + 10 * MINUTE;
    ok(store.cut(Scope::User(&user), 2, keep, now()).await, "cut").await;
    assert!(!is_live(store, &before).await, "a session signed in under an earlier epoch must be gone");
    assert!(is_live(store, &at_cutoff).await, "a session signed in under the epoch must stay");
    for (key, what) in [(&others, "another user's"), (&similar, "a look-alike user's"), (&visitor, "a visitor's")] {
        assert!(is_live(store, key).await, "{what} session must stay");
    }
    let listed = handles(store, &user).await;
    assert_eq!(listed.len(), 1, "the user's listing must leave the ended session out");
    assert_eq!(ok(store.cutoff(Some(&user), now()).await, "cutoff").await.user, 2);
    ok(store.cut(Scope::User(&user), 1, keep, now()).await, "cut").await;
    assert!(!is_live(store, &before).await, "an epoch must never move back");
    assert_eq!(ok(store.cutoff(Some(&user), now()).await, "cutoff").await.user, 2, "an epoch never moves back");
    let n = now();
    let handle = before_record.meta.handle;
    assert!(
        !ok(store.delete_by_handle(&user, &handle, n).await, "delete_by_handle").await,
        "a session a cutoff ended is not the user's to revoke any more"
    );
    assert_eq!(
        ok(store.delete_user(&user, None, n).await, "delete_user").await,
        1,
        "a revocation counts the live sessions it ends, not one a cutoff ended"
    );
    for key in [before, at_cutoff, others, similar, visitor] {
        ok(store.delete(&key, now()).await, "delete").await;
    }
}

/// A rotation of an ended session leaves nothing live (its successor keeps
/// the creation time and the sign-in the cutoffs compare); a login under
/// the new epoch is a new sign-in, which the cutoff does not end.
pub async fn a_cutoff_reaches_successors_but_not_a_new_sign_in<S: Cutoffs + UserIndex>(store: &S) {
    let t = base();
    let user = unique_user("cut-rotate");
    let ended = made(store, &record_at(t, Some((&user, 0)))).await;
    let relogged = made(store, &record_at(t, Some((&user, 0)))).await;
    ok(store.cut(Scope::User(&user), 1, now() + 10 * MINUTE, now()).await, "cut").await;
    let n = now();
    let successor = successor_key(store, &ended);
    let plain = Rotation::new(n, ChangeSet::new(n, n + 30 * MINUTE));
    let rotated = ok(store.rotate(&ended, &successor, &plain).await, "rotate").await;
    assert!(
        matches!(rotated, Rotated::Done | Rotated::Gone),
        "a rotation of an ended session must find it gone or carry its times over, got {rotated:?}"
    );
    assert!(!is_live(store, &successor).await, "the successor of an ended session must be ended too");
    let mut login = Rotation::new(n, ChangeSet::new(n, n + 30 * MINUTE));
    login.login = Some(Login::new(Auth::new(user.as_str(), n).with_epoch(1), n + 120 * MINUTE));
    let signed_in = successor_key(store, &relogged);
    match ok(store.rotate(&relogged, &signed_in, &login).await, "rotate").await {
        Rotated::Done => assert!(is_live(store, &signed_in).await, "a sign-in under the new epoch must stay"),
        // A store may refuse to rotate an ended session at all; then a
        // login creates a new session, which a create shows.
        Rotated::Gone => {
            let fresh = made(store, &record_at(t, Some((&user, 1)))).await;
            assert!(is_live(store, &fresh).await, "a sign-in under the new epoch must stay");
            ok(store.delete(&fresh, now()).await, "delete").await;
        }
        other => panic!("rotation of a live key: {other:?}"),
    }
    for key in [ended, successor, relogged, signed_in] {
        ok(store.delete(&key, now()).await, "delete").await;
    }
}

/// The global cutoff ends every session created before it, signed in or
/// not, and none created at or after it.
pub async fn the_global_cutoff_ends_sessions_created_before_it<S: Cutoffs + UserIndex>(store: &S) {
    let t = base();
    let user = unique_user("cut-all");
    let visitor = made(store, &record_at(t + 10, None)).await;
    let signed_in = made(store, &record_at(t + 10, Some((&user, 0)))).await;
    let later = made(store, &record_at(t + 20, None)).await;
    let real = made(store, &live_record()).await;
    ok(store.cut(Scope::All, t + 20, now() + 10 * MINUTE, now()).await, "cut").await;
    assert!(!is_live(store, &visitor).await, "a visitor's session created before the cutoff must be gone");
    assert!(!is_live(store, &signed_in).await, "a signed-in session created before the cutoff must be gone");
    assert!(handles(store, &user).await.is_empty(), "listings must leave ended sessions out");
    assert!(is_live(store, &later).await, "a session created at the cutoff must stay");
    assert!(is_live(store, &real).await, "a session created after the cutoff must stay");
    let cutoff = ok(store.cutoff(None, now()).await, "cutoff").await;
    assert!(
        cutoff.all >= t + 20 && cutoff.user == 0,
        "the global cutoff is reported, a visitor has no user's: {cutoff:?}"
    );
    for key in [visitor, signed_in, later, real] {
        ok(store.delete(&key, now()).await, "delete").await;
    }
}

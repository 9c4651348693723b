//! Cutoffs: ending sessions at once, without listing them (R49 "end
//! everything", and the per-user credential epoch of R44).
//!
//! Two values, both only moving forward:
//!
//! - the **global cutoff**, a not-before time: it ends every session
//!   *created* before it (its [`created_at`](Metadata::created_at), which a
//!   renewal keeps);
//! - a user's **credential epoch**, a counter: every sign-in is stamped with
//!   the user's epoch at that moment ([`Auth::epoch`](crate::store::Auth::epoch),
//!   read by the layer before the login), and a session signed in under a
//!   lower epoch than the user's current one is ended. A password change
//!   moves the epoch one past the value it read, and signs its caller in
//!   under that new value. No clock is compared, so a process whose clock
//!   runs ahead cannot sign a session in "after" a password change that
//!   ended it.
//!
//! [`Cutoff::ends`] is the one rule;
//! a store that implements [`Cutoffs`] applies it in
//! [`lookup`](crate::store::SessionStore::lookup) and
//! [`list_user`](crate::store::UserIndex::list_user), in the same atomic read
//! as the record, so a session a cutoff ended is gone on its next request,
//! on every process, without its key ever being listed.
//!
//! An ended session's record may linger until it expires; it is never
//! served again: a renewal or a write carries its `created_at` and sign-in
//! time over unchanged, so whatever it leaves behind is ended too. Only a
//! new sign-in (a login after the cutoff, with credentials checked again)
//! gives a session that the user's cutoff no longer ends.

use async_trait::async_trait;

use crate::store::{Metadata, SessionStore, StoreError};

/// Which sessions a cut ends.
///
/// ```
/// use sessionware::store::Scope;
/// assert_ne!(Scope::All, Scope::User("alice"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope<'a> {
    /// Every session, signed in or not; the value is a not-before time,
    /// compared with the session's creation time.
    All,
    /// The sessions this user signed in to (users compare byte for byte);
    /// the value is the user's credential epoch, compared with the epoch
    /// each sign-in was stamped with.
    User(&'a str),
}

/// The cutoffs that apply to one session: the global not-before time (ms,
/// 0 when none was set) and its user's credential epoch (0 until the first
/// cut).
///
/// ```
/// use sessionware::store::{Auth, Cutoff, Metadata};
/// let mut meta = Metadata::new(1_000, 60_000, 3_600_000);
/// meta.auth = Some(Auth::new("alice", 2_000).with_epoch(4));
/// assert!(!Cutoff::new(1_000, 4).ends(&meta)); // created at the cutoff, signed in under the epoch
/// assert!(Cutoff::new(1_001, 0).ends(&meta)); // created before the global cutoff
/// assert!(Cutoff::new(0, 5).ends(&meta)); // signed in under an older epoch
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cutoff {
    /// Every session created before this time is ended.
    pub all: u64,
    /// The user's current credential epoch: the user's sessions signed in
    /// under a lower one are ended.
    pub user: u64,
}

impl Cutoff {
    /// No cutoff: nothing is ended.
    pub const NONE: Cutoff = Cutoff { all: 0, user: 0 };

    /// The global cutoff `all` and the user's epoch `user`.
    pub fn new(all: u64, user: u64) -> Self {
        Self { all, user }
    }

    /// Whether these cutoffs end the session `meta` describes (the user's
    /// epoch must be the one of `meta`'s user).
    pub fn ends(&self, meta: &Metadata) -> bool {
        self.ends_parts(meta.created_at, meta.auth.as_ref().map(|a| a.epoch))
    }

    /// [`ends`](Self::ends) from the two values it compares: the session's
    /// creation time and, when signed in, the epoch of its sign-in.
    ///
    /// ```
    /// use sessionware::store::Cutoff;
    /// assert!(!Cutoff::new(0, 5).ends_parts(1_000, None)); // a visitor has no user epoch
    /// assert!(Cutoff::new(0, 5).ends_parts(1_000, Some(4)));
    /// assert!(!Cutoff::new(0, 5).ends_parts(1_000, Some(5)));
    /// ```
    pub fn ends_parts(&self, created_at: u64, signed_in_epoch: Option<u64>) -> bool {
        created_at < self.all || signed_in_epoch.is_some_and(|epoch| epoch < self.user)
    }
}

/// A store that can end sessions by cutoff: a not-before time per
/// [`Scope`], which [`Cutoff::ends`] applies.
///
/// The contract, checked by
/// [`conformance::run_cutoffs`](crate::store::conformance::run_cutoffs):
///
/// - [`cut`](Self::cut) moves the scope's value (a time for
///   [`Scope::All`], an epoch for [`Scope::User`]) to `value` unless it is
///   already higher (it never moves back), and keeps it at least until
///   `keep_until` (the layer keeps its cutoffs for good: `u64::MAX`);
/// - from the moment `cut` returns, [`lookup`](SessionStore::lookup) answers
///   `None` for a live record that [`Cutoff::ends`], and
///   [`list_user`](crate::store::UserIndex::list_user) leaves it out, with
///   the cutoffs read in the same atomic step as the record;
/// - [`cutoff`](Self::cutoff) answers the cutoffs that apply to a user's
///   sessions (for a session held outside the store, such as a token).
#[async_trait]
pub trait Cutoffs: SessionStore {
    /// Ends every session of `scope` that began before `value` (see
    /// [`Scope`]), at `now`.
    async fn cut(&self, scope: Scope<'_>, value: u64, keep_until: u64, now: u64) -> Result<(), StoreError>;

    /// The cutoffs that apply at `now` to the sessions of `user` (`None`: to
    /// a visitor's, which only the global one ends).
    async fn cutoff(&self, user: Option<&str>, now: u64) -> Result<Cutoff, StoreError>;
}

#[async_trait]
impl<T: Cutoffs + ?Sized> Cutoffs for std::sync::Arc<T> {
    async fn cut(&self, scope: Scope<'_>, value: u64, keep_until: u64, now: u64) -> Result<(), StoreError> {
        (**self).cut(scope, value, keep_until, now).await
    }
    async fn cutoff(&self, user: Option<&str>, now: u64) -> Result<Cutoff, StoreError> {
        (**self).cutoff(user, now).await
    }
}

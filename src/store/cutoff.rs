//! Cutoffs: ending sessions at once by when they began, without listing
//! them (R49 "end everything", and the per-user credential epoch of R44).
//!
//! A cutoff is a not-before time. The global one ends every session
//! *created* before it (its [`created_at`](Metadata::created_at), which a
//! renewal keeps); a user's ends every session that user *signed in to*
//! before it (its [`Auth::at_ms`](crate::store::Auth::at_ms), which a
//! login sets). Both only move forward. [`Cutoff::ends`] is the one rule;
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
    /// Every session, signed in or not: compared with its creation time.
    All,
    /// The sessions this user signed in to (users compare byte for byte):
    /// compared with the sign-in time.
    User(&'a str),
}

/// The cutoffs that apply to one session: not-before times in
/// milliseconds, 0 when none was set.
///
/// ```
/// use sessionware::store::{Auth, Cutoff, Metadata};
/// let mut meta = Metadata::new(1_000, 60_000, 3_600_000);
/// meta.auth = Some(Auth::new("alice", 2_000));
/// assert!(!Cutoff::new(1_000, 2_000).ends(&meta)); // created and signed in at the cutoffs
/// assert!(Cutoff::new(1_001, 0).ends(&meta)); // created before the global cutoff
/// assert!(Cutoff::new(0, 2_001).ends(&meta)); // signed in before the user's
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cutoff {
    /// Every session created before this time is ended.
    pub all: u64,
    /// The user's sessions signed in to before this time are ended.
    pub user: u64,
}

impl Cutoff {
    /// No cutoff: nothing is ended.
    pub const NONE: Cutoff = Cutoff { all: 0, user: 0 };

    /// The global cutoff `all` and the user's cutoff `user`.
    pub fn new(all: u64, user: u64) -> Self {
        Self { all, user }
    }

    /// Whether these cutoffs end the session `meta` describes (the user's
    /// cutoff must be the one of `meta`'s user).
    pub fn ends(&self, meta: &Metadata) -> bool {
        self.ends_times(meta.created_at, meta.auth.as_ref().map(|a| a.at_ms))
    }

    /// [`ends`](Self::ends) from the two times it compares: the session's
    /// creation and, when signed in, its sign-in.
    ///
    /// ```
    /// use sessionware::store::Cutoff;
    /// assert!(!Cutoff::new(0, 5_000).ends_times(1_000, None)); // a visitor has no user cutoff
    /// assert!(Cutoff::new(0, 5_000).ends_times(1_000, Some(4_999)));
    /// ```
    pub fn ends_times(&self, created_at: u64, signed_in_at: Option<u64>) -> bool {
        created_at < self.all || signed_in_at.is_some_and(|at| at < self.user)
    }
}

/// A store that can end sessions by cutoff (see the [module
/// documentation](self)).
///
/// The contract, checked by
/// [`conformance::run_cutoffs`](crate::store::conformance::run_cutoffs):
///
/// - [`cut`](Self::cut) moves the scope's not-before time to `not_before`
///   unless it is already later (it never moves back), and keeps it at least
///   until `keep_until` (the layer passes a time by which every session it
///   ends is past its absolute deadline anyway);
/// - from the moment `cut` returns, [`lookup`](SessionStore::lookup) answers
///   `None` for a live record that [`Cutoff::ends`], and
///   [`list_user`](crate::store::UserIndex::list_user) leaves it out, with
///   the cutoffs read in the same atomic step as the record;
/// - [`cutoff`](Self::cutoff) answers the cutoffs that apply to a user's
///   sessions (for a session held outside the store, such as a token).
#[async_trait]
pub trait Cutoffs: SessionStore {
    /// Ends every session of `scope` that began before `not_before` (see
    /// [`Scope`]), at `now`.
    async fn cut(&self, scope: Scope<'_>, not_before: u64, keep_until: u64, now: u64) -> Result<(), StoreError>;

    /// The cutoffs that apply at `now` to the sessions of `user` (`None`: to
    /// a visitor's, which only the global one ends).
    async fn cutoff(&self, user: Option<&str>, now: u64) -> Result<Cutoff, StoreError>;
}

#[async_trait]
impl<T: Cutoffs + ?Sized> Cutoffs for std::sync::Arc<T> {
    async fn cut(&self, scope: Scope<'_>, not_before: u64, keep_until: u64, now: u64) -> Result<(), StoreError> {
        (**self).cut(scope, not_before, keep_until, now).await
    }
    async fn cutoff(&self, user: Option<&str>, now: u64) -> Result<Cutoff, StoreError> {
        (**self).cutoff(user, now).await
    }
}

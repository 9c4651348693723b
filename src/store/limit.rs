//! The per-user session limit (R46): how many live sessions one user may
//! have ([`SessionLimit`]), what a login past it does ([`LimitPolicy`]), and
//! the one rule every store applies in its atomic login step
//! ([`SessionLimit::admit`]).
//!
//! The layer asks for it on every login it commits
//! ([`Login::limit`](crate::store::Login::limit)); the store enforces it in
//! [`rotate`](crate::store::SessionStore::rotate), in the same atomic step as
//! the rotation, with the logins of one user serialised (see the
//! [store contract](crate::store#the-per-user-session-limit)).

use std::num::NonZeroUsize;

use crate::{store::Metadata, SessionHandle};

/// What a login does when the user already has as many live sessions as
/// the limit allows.
///
/// ```
/// use sessionware::LimitPolicy;
/// assert_eq!(LimitPolicy::default(), LimitPolicy::EvictLeastRecent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LimitPolicy {
    /// The login goes through, and the user's least recently used sessions
    /// end until the user is within the limit (the default). The newest
    /// login wins: a user who signs in is never locked out by sessions left
    /// on other devices, or by an attacker's.
    #[default]
    EvictLeastRecent,
    /// The login is refused and nothing changes: the user must end another
    /// session first. Beware that the first sessions then win, which may be
    /// an attacker's (ASVS 4 V3.7).
    RefuseNew,
}

/// The most live sessions one user may have, and what a login past it does.
///
/// ```
/// use std::num::NonZeroUsize;
/// use sessionware::store::{LimitPolicy, SessionLimit};
/// let limit = SessionLimit::new(NonZeroUsize::new(2).unwrap(), LimitPolicy::RefuseNew);
/// assert_eq!(limit.max.get(), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionLimit {
    /// The most live sessions of one user, the one a login creates included.
    pub max: NonZeroUsize,
    /// What a login does when the user is at the limit.
    pub policy: LimitPolicy,
}

impl SessionLimit {
    /// A limit of `max` sessions per user with `policy`.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use sessionware::store::{LimitPolicy, SessionLimit};
    /// let limit = SessionLimit::new(NonZeroUsize::MIN, LimitPolicy::default());
    /// assert_eq!(limit.policy, LimitPolicy::EvictLeastRecent);
    /// ```
    pub fn new(max: NonZeroUsize, policy: LimitPolicy) -> Self {
        Self { max, policy }
    }

    /// The rule of a login under this limit, given `others`: the live
    /// sessions of the login's user other than the one being rotated
    /// (sessions a cutoff ended left out). `None`: the login is refused.
    /// Otherwise the handles of the sessions to end so that, with the
    /// login's own, the user is within the limit: the least recently used
    /// (smallest [`last_seen`](Metadata::last_seen), ties by
    /// [`created_at`](Metadata::created_at)), none when already within it.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use sessionware::store::{LimitPolicy, Metadata, SessionLimit};
    /// let sessions: Vec<Metadata> = (1..=3).map(|t| Metadata::new(t, 60_000, 600_000)).collect();
    /// let two = NonZeroUsize::new(2).unwrap();
    /// let evict = SessionLimit::new(two, LimitPolicy::EvictLeastRecent).admit(sessions.clone()).unwrap();
    /// assert_eq!(evict, [sessions[0].handle, sessions[1].handle]); // the two least recent make room for one
    /// assert!(SessionLimit::new(two, LimitPolicy::RefuseNew).admit(sessions).is_none());
    /// assert_eq!(SessionLimit::new(two, LimitPolicy::RefuseNew).admit(Vec::new()), Some(Vec::new()));
    /// ```
    pub fn admit(&self, mut others: Vec<Metadata>) -> Option<Vec<SessionHandle>> {
        // Room for the login's own session: at most `max - 1` others stay.
        let excess = (others.len() + 1).saturating_sub(self.max.get());
        if excess == 0 {
            return Some(Vec::new());
        }
        match self.policy {
            LimitPolicy::RefuseNew => None,
            LimitPolicy::EvictLeastRecent => {
                others.sort_unstable_by(|a, b| a.last_seen.cmp(&b.last_seen).then(a.created_at.cmp(&b.created_at)));
                Some(others.into_iter().take(excess).map(|m| m.handle).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(last_seen: u64, created_at: u64) -> Metadata {
        let mut m = Metadata::new(created_at, 60_000, 600_000);
        m.last_seen = last_seen;
        m
    }

    #[test]
    fn eviction_takes_the_least_recently_used_ties_by_creation() {
        let limit = SessionLimit::new(NonZeroUsize::new(2).unwrap(), LimitPolicy::EvictLeastRecent);
        let (old, tie_older, tie_newer, recent) = (seen(10, 1), seen(20, 2), seen(20, 3), seen(30, 0));
        let evict = limit.admit(vec![recent.clone(), tie_newer.clone(), old.clone(), tie_older.clone()]).unwrap();
        assert_eq!(evict, [old.handle, tie_older.handle, tie_newer.handle], "one other may stay: the most recent");
        assert_eq!(limit.admit(vec![recent]).unwrap(), [], "within the limit: nothing ends");
    }

    #[test]
    fn a_limit_of_one_ends_every_other_session_or_refuses_while_one_is_left() {
        let evict = SessionLimit::new(NonZeroUsize::MIN, LimitPolicy::EvictLeastRecent);
        let refuse = SessionLimit::new(NonZeroUsize::MIN, LimitPolicy::RefuseNew);
        let others = vec![seen(1, 1), seen(2, 2)];
        assert_eq!(evict.admit(others.clone()).unwrap().len(), 2);
        assert_eq!(refuse.admit(others), None);
        assert_eq!(refuse.admit(Vec::new()), Some(Vec::new()));
    }
}

//! The memory store's [`Cutoffs`](crate::store::Cutoffs): the global
//! not-before time in one atomic, the users' in a sharded map beside the
//! user index.

use std::{
    collections::{hash_map::DefaultHasher, HashMap},
    hash::{Hash, Hasher},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex,
    },
};

use crate::store::{Auth, Cutoff, Scope};

const SHARDS: usize = 16;

/// A user's not-before time, and until when it must be kept.
#[derive(Debug, Clone, Copy)]
struct UserCut {
    not_before: u64,
    keep_until: u64,
}

/// The users' cutoffs of one shard.
type UserCuts = HashMap<Box<str>, UserCut>;

/// The cutoffs of one [`MemoryStore`](super::MemoryStore).
#[derive(Debug)]
pub(super) struct Cuts {
    all: AtomicU64,
    /// Whether any user was ever cut: until then, a lookup of a signed-in
    /// session takes no lock for its user's cutoff.
    any_user: AtomicBool,
    users: Box<[Mutex<UserCuts>]>,
}

impl Default for Cuts {
    fn default() -> Self {
        Self {
            all: AtomicU64::new(0),
            any_user: AtomicBool::new(false),
            users: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Cuts {
    fn shard(&self, user: &str) -> std::sync::MutexGuard<'_, UserCuts> {
        let mut h = DefaultHasher::new();
        user.hash(&mut h);
        let i = usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0);
        self.users[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves `scope`'s not-before time forward to `not_before`; forgets the
    /// users' cutoffs of the same shard that are past their `keep_until`.
    pub(super) fn cut(&self, scope: Scope<'_>, not_before: u64, keep_until: u64, now: u64) {
        match scope {
            Scope::All => {
                self.all.fetch_max(not_before, Ordering::SeqCst);
            }
            Scope::User(user) => {
                let mut users = self.shard(user);
                users.retain(|_, c| c.keep_until > now);
                let cut = users.entry(user.into()).or_insert(UserCut { not_before: 0, keep_until: 0 });
                cut.not_before = cut.not_before.max(not_before);
                cut.keep_until = cut.keep_until.max(keep_until);
                self.any_user.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Whether any cutoff was ever made (until then, none ends anything).
    pub(super) fn any(&self) -> bool {
        self.all.load(Ordering::SeqCst) > 0 || self.any_user.load(Ordering::SeqCst)
    }

    /// The cutoffs that apply to `user`'s sessions.
    pub(super) fn cutoff(&self, user: Option<&str>) -> Cutoff {
        let all = self.all.load(Ordering::SeqCst);
        let user = match user {
            Some(user) if self.any_user.load(Ordering::SeqCst) => {
                self.shard(user).get(user).map_or(0, |c| c.not_before)
            }
            _ => 0,
        };
        Cutoff::new(all, user)
    }

    /// Whether the cutoffs end a session created at `created_at` and signed
    /// in to as `auth`.
    pub(super) fn ends(&self, created_at: u64, auth: Option<&Auth>) -> bool {
        self.cutoff(auth.map(|a| a.user.as_str())).ends_parts(created_at, auth.map(|a| a.epoch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_only_move_forward_and_users_are_separate() {
        let cuts = Cuts::default();
        let alice = Auth::new("alice", 100);
        assert!(!cuts.ends(50, Some(&alice)));
        cuts.cut(Scope::User("alice"), 101, 1_000, 0);
        cuts.cut(Scope::User("alice"), 90, 1_000, 0);
        assert_eq!(cuts.cutoff(Some("alice")), Cutoff::new(0, 101));
        assert!(cuts.ends(50, Some(&alice)));
        assert!(!cuts.ends(50, Some(&Auth::new("Alice", 100))), "users compare byte for byte");
        assert!(!cuts.ends(50, None), "a visitor has no user cutoff");
        cuts.cut(Scope::All, 60, 1_000, 0);
        cuts.cut(Scope::All, 10, 1_000, 0);
        assert!(cuts.ends(50, None) && !cuts.ends(60, None));
    }

    #[test]
    fn a_users_cutoff_is_forgotten_after_keep_until() {
        let cuts = Cuts::default();
        cuts.cut(Scope::User("alice"), 101, 1_000, 0);
        // A later cut in the same shard drops it once past its keep_until.
        cuts.cut(Scope::User("alice"), 5, 2_000, 1_000);
        assert_eq!(cuts.cutoff(Some("alice")).user, 5);
    }
}

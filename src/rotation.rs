//! ID rotation as one store operation: what a store holds under a key
//! ([`Stored`]), what a rotation asks for ([`Rotation`]), what it did
//! ([`Rotated`]), and the merge every store performs ([`Rotation::successor`]).
//!
//! A rotation (a login, [`Session::renew`](crate::Session::renew), or the
//! layer's periodic renewal) gives a session a new ID. It is one atomic step
//! in the store, never a create followed by a delete:
//!
//! 1. it acts only while the old record is **live** (a logout, a revocation
//!    or expiry that came first wins: nothing is created);
//! 2. the successor is built from the old record's **current stored** data
//!    merged with this request's change set (a write that another request
//!    saved meanwhile is kept);
//! 3. the old key is **retired**: it keeps a forward pointer to its
//!    successor ([`Retired`]) instead of a session. A late request on the old
//!    ID is then told apart from an unknown one (it gets no removal cookie
//!    that would clobber the successor's cookie), a logout on it ends the
//!    successor too ([`SessionStore::delete`](crate::SessionStore::delete)
//!    follows the pointer), and a second rotation of the same session finds
//!    it retired instead of forking it.

use crate::{store::SessionLimit, Auth, ChangeSet, Record, StorageKey, StoreError};

/// What a store holds under a storage key.
///
/// ```
/// use sessionware::store::{Metadata, Record, Stored};
/// let stored = Stored::Live(Record::new(Metadata::new(0, 10, 20)));
/// assert!(stored.live().is_some());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Stored {
    /// A live session.
    Live(Record),
    /// A key that a rotation retired: no session, a pointer to its successor.
    Retired(Retired),
}

impl Stored {
    /// The live record, if this is one.
    ///
    /// ```
    /// use sessionware::store::{Retired, StorageKey, Stored};
    /// let gone = Stored::Retired(Retired::new(StorageKey::from_bytes([1; 32]), 0, 0, 10));
    /// assert!(gone.live().is_none());
    /// ```
    pub fn live(self) -> Option<Record> {
        match self {
            Stored::Live(r) => Some(r),
            Stored::Retired(_) => None,
        }
    }
}

/// A retired key: where its session went, and until when the old ID may
/// still be used in its place. Times are milliseconds since the Unix epoch.
///
/// ```
/// use sessionware::store::{Retired, StorageKey};
/// let r = Retired::new(StorageKey::from_bytes([1; 32]), 1_000, 31_000, 121_000);
/// assert!(r.overlaps(30_999));
/// assert!(!r.overlaps(31_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Retired {
    /// The successor's storage key.
    pub successor: StorageKey,
    /// When the rotation happened.
    pub at: u64,
    /// The old ID may be used as an alias of the successor before this time,
    /// and only while the successor still names this key as its
    /// [`predecessor`](crate::Metadata::predecessor). `at` or earlier: no overlap.
    pub overlap_until: u64,
    /// When the store may forget the retired key (its TTL).
    pub until: u64,
}

impl Retired {
    /// A retired key pointing at `successor`.
    ///
    /// ```
    /// use sessionware::store::{Retired, StorageKey};
    /// assert_eq!(Retired::new(StorageKey::from_bytes([1; 32]), 5, 5, 9).until, 9);
    /// ```
    pub fn new(successor: StorageKey, at: u64, overlap_until: u64, until: u64) -> Self {
        Self { successor, at, overlap_until, until }
    }

    /// True while the overlap window is open at `now`.
    ///
    /// ```
    /// use sessionware::store::{Retired, StorageKey};
    /// assert!(!Retired::new(StorageKey::from_bytes([1; 32]), 5, 5, 9).overlaps(5));
    /// ```
    pub fn overlaps(&self, now: u64) -> bool {
        now < self.overlap_until
    }

    /// True when the store may drop it at `now`.
    ///
    /// ```
    /// use sessionware::store::{Retired, StorageKey};
    /// assert!(Retired::new(StorageKey::from_bytes([1; 32]), 5, 5, 9).is_expired(9));
    /// ```
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.until
    }
}

/// A login carried by a rotation: it replaces the successor's user, the
/// client it was seen from, and restarts the absolute timeout.
///
/// ```
/// use sessionware::store::{Auth, Login};
/// let login = Login::new(Auth::new("alice", 5), 1_000);
/// assert_eq!(login.absolute_deadline, 1_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Login {
    /// The user and when they authenticated.
    pub auth: Auth,
    /// The new absolute deadline.
    pub absolute_deadline: u64,
    /// The user agent at login (truncated by the layer).
    pub user_agent: Option<Box<str>>,
    /// The coarse IP at login.
    pub ip: Option<Box<str>>,
    /// The per-user session limit the store enforces in the same atomic
    /// step as the rotation (see [`SessionStore::rotate`](crate::store::SessionStore::rotate));
    /// `None`: no limit.
    pub limit: Option<SessionLimit>,
}

impl Login {
    /// A login without client details and without a session limit.
    ///
    /// ```
    /// use sessionware::store::{Auth, Login};
    /// let login = Login::new(Auth::new("bob", 0), 9);
    /// assert!(login.ip.is_none() && login.limit.is_none());
    /// ```
    pub fn new(auth: Auth, absolute_deadline: u64) -> Self {
        Self { auth, absolute_deadline, user_agent: None, ip: None, limit: None }
    }
}

/// One rotation, as the layer asks a store to perform it.
///
/// ```
/// use sessionware::store::{ChangeSet, Metadata, Record, Rotation, StorageKey};
/// let old = Record::new(Metadata::new(0, 60_000, 3_600_000));
/// let rotation = Rotation::new(1_000, ChangeSet::new(1_000, 61_000));
/// let next = rotation.successor(&old, &StorageKey::from_bytes([1; 32])).unwrap();
/// assert_eq!(next.meta.handle, old.meta.handle); // the same session, a new ID
/// assert_eq!(next.meta.last_seen, 1_000);
/// assert_eq!(next.meta.predecessor, Some(StorageKey::from_bytes([1; 32]))); // until first used
/// assert_eq!(next.meta.renewed_at, Some(1_000)); // the new ID's age counts from here
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Rotation {
    /// The request's time.
    pub now: u64,
    /// Keep only these keys of the stored data before applying `changes`
    /// (the login data policy); `None` keeps every key.
    pub retain: Option<Vec<String>>,
    /// This request's changes, merged into the current stored data after
    /// `retain`, and the successor's activity times.
    pub changes: ChangeSet,
    /// A login: the successor's new user, client and absolute deadline.
    pub login: Option<Login>,
    /// The old ID may be used as an alias until then (periodic renewal);
    /// `now` or earlier means no overlap: the old ID is dead at once.
    pub overlap_until: u64,
    /// How long the retired key is kept (at least `overlap_until`).
    pub retired_until: u64,
}

impl Rotation {
    /// A rotation at `now` with `changes`, no overlap, no login, and the
    /// retired key kept for [`RETIRED_KEEP_MS`].
    ///
    /// ```
    /// use sessionware::store::{ChangeSet, Rotation};
    /// let r = Rotation::new(10, ChangeSet::new(10, 20));
    /// assert_eq!(r.overlap_until, 10);
    /// ```
    pub fn new(now: u64, changes: ChangeSet) -> Self {
        Self {
            now,
            retain: None,
            changes,
            login: None,
            overlap_until: now,
            retired_until: now.saturating_add(RETIRED_KEEP_MS),
        }
    }

    /// The retired record a store leaves under the old key.
    ///
    /// ```
    /// use sessionware::store::{ChangeSet, Rotation, StorageKey};
    /// let r = Rotation::new(10, ChangeSet::new(10, 20));
    /// assert_eq!(r.retired(StorageKey::from_bytes([2; 32])).at, 10);
    /// ```
    pub fn retired(&self, successor: StorageKey) -> Retired {
        Retired {
            successor,
            at: self.now,
            overlap_until: self.overlap_until,
            until: self.retired_until.max(self.overlap_until),
        }
    }

    /// Builds the successor from the old record's current stored state:
    /// the semantics every store's [`rotate`](crate::SessionStore::rotate)
    /// must have. The handle and creation time carry over (it is the same
    /// session; `renewed_at` becomes `now`); the data is the stored data, filtered by `retain`, merged
    /// with `changes`; a login replaces the user, the client and the
    /// absolute deadline; the idle deadline never passes the absolute one;
    /// the successor names `old_key` as its
    /// [`predecessor`](crate::Metadata::predecessor) until it is first used.
    ///
    /// # Errors
    ///
    /// [`StoreError::TooLarge`] when the merged data would exceed
    /// [`ChangeSet::max_data_bytes`].
    ///
    /// ```
    /// use sessionware::store::{Auth, ChangeSet, Login, Metadata, Record, Rotation, StorageKey};
    /// let mut old = Record::new(Metadata::new(0, 60_000, 3_600_000));
    /// old.data.insert("cart", &serde_json::value::to_raw_value(&3).unwrap());
    /// old.data.insert("theme", &serde_json::value::to_raw_value(&"dark").unwrap());
    /// let mut rotation = Rotation::new(1_000, ChangeSet::new(1_000, 61_000));
    /// rotation.retain = Some(vec!["cart".into()]);
    /// rotation.login = Some(Login::new(Auth::new("alice", 1_000), 7_201_000));
    /// let next = rotation.successor(&old, &StorageKey::from_bytes([1; 32])).unwrap();
    /// assert_eq!(next.data.keys().collect::<Vec<_>>(), ["cart"]);
    /// assert_eq!(next.meta.user(), Some("alice"));
    /// assert_eq!(next.meta.absolute_deadline, 7_201_000);
    /// ```
    pub fn successor(&self, old: &Record, old_key: &StorageKey) -> Result<Record, StoreError> {
        self.successor_of(old.clone(), old_key)
    }

    /// [`successor`](Self::successor), from an owned copy of the old record
    /// (no second copy for a store that already made one).
    pub(crate) fn successor_of(&self, mut next: Record, old_key: &StorageKey) -> Result<Record, StoreError> {
        if let Some(keep) = &self.retain {
            next.data.retain(keep);
        }
        if let Some(login) = &self.login {
            next.meta.auth = Some(login.auth.clone());
            next.meta.absolute_deadline = login.absolute_deadline;
            next.meta.user_agent.clone_from(&login.user_agent);
            next.meta.ip.clone_from(&login.ip);
        }
        next.meta.predecessor = None;
        next.meta.renewed_at = Some(self.now);
        next.try_apply(&self.changes)?;
        next.meta.last_seen = self.now.max(self.changes.last_seen);
        next.meta.expires_at = self.changes.expires_at.min(next.meta.absolute_deadline);
        // Until the successor is first used: within an overlap the old ID is
        // its alias, and a logout on the old ID ends it.
        next.meta.predecessor = Some(*old_key);
        Ok(next)
    }
}

/// How long a store keeps a retired key by default after the rotation (or
/// after its overlap): 2 minutes. Long enough for every request that was in
/// flight with the old ID to come back without a removal cookie; short
/// enough that a stolen old ID is useless soon after.
///
/// ```
/// assert_eq!(sessionware::store::RETIRED_KEEP_MS, 120_000);
/// ```
pub const RETIRED_KEEP_MS: u64 = 120_000;

/// What [`SessionStore::rotate`](crate::SessionStore::rotate) did.
///
/// ```
/// use sessionware::store::Rotated;
/// assert_ne!(Rotated::Done, Rotated::Gone);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotated {
    /// The successor was created and the old key retired.
    Done,
    /// The old key was already retired by another rotation: nothing changed.
    Retired(Retired),
    /// No live record under the old key (logged out, revoked, expired or
    /// unknown): nothing was created.
    Gone,
    /// A record already exists under the new key: nothing changed; the
    /// caller retries with another ID.
    Taken,
    /// A login under a per-user limit ([`Login::limit`],
    /// [`LimitPolicy::EvictLeastRecent`](crate::store::LimitPolicy::EvictLeastRecent)):
    /// the rotation was done, and `count` of the user's least recently used
    /// sessions were ended to keep the user within the limit.
    Evicted {
        /// How many sessions were ended (at least one).
        count: usize,
    },
    /// A login under a per-user limit
    /// ([`LimitPolicy::RefuseNew`](crate::store::LimitPolicy::RefuseNew))
    /// found the user at the limit: nothing changed.
    Refused,
}

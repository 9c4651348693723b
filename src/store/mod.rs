//! The store contract, the stores that implement it, and what you need to
//! write your own.
//!
//! # The contract
//!
//! Every store keys records by [`StorageKey`] (a digest of the session ID,
//! never the ID) and keeps these promises, which the [`conformance`] suite
//! checks:
//!
//! - [`create`](SessionStore::create) inserts only if absent: it never
//!   overwrites another session.
//! - [`lookup`](SessionStore::lookup) returns the live record, the
//!   [`Retired`] pointer a rotation left, or `None` if the key is absent or
//!   expired at the request's time.
//! - [`apply`](SessionStore::apply) merges one request's change set into the
//!   stored record atomically, per key, and **only if the record still
//!   exists**: a request that loaded the session before a logout cannot bring
//!   it back, and two requests writing different keys both keep their writes.
//!   [`Record::try_apply`] is that merge.
//! - [`rotate`](SessionStore::rotate) gives a session a new key in one
//!   atomic step: only while the old record is live, from its current stored
//!   data merged with the request's changes ([`Rotation::successor`]),
//!   leaving a [`Retired`] pointer under the old key. See [`Rotation`] for why
//!   this is one step.
//! - [`delete`](SessionStore::delete) is final, and follows a retired key to
//!   a successor nobody used yet: a logout through an ID a rotation just
//!   retired ends the session it became.
//! - `apply` and `rotate` keep the merged data within
//!   [`ChangeSet::max_data_bytes`].
//! - Every call gets the request's time, `now`: stores judge expiry by it
//!   and keep no clock of their own.
//! - A login under a per-user session limit is admitted or refused, and
//!   the user's least recently used sessions ended, in the same atomic step
//!   as its rotation (see [below](#the-per-user-session-limit)).
//!
//! Three capabilities are separate traits: [`UserIndex`] (list and revoke a
//! user's sessions), [`Leases`] (exclusive sessions) and [`Cutoffs`] (end
//! every session, or all of a user's, at once, without listing them). Every
//! store of this crate has all three;
//! [`SessionLayer::new`](crate::SessionLayer::new) needs all three, and
//! [`SessionLayer::with_capabilities`](crate::SessionLayer::with_capabilities)
//! takes a store with fewer, chosen when the layer is built.
//!
//! # The per-user session limit
//!
//! A layer configured with
//! [`max_sessions_per_user`](crate::SessionConfigBuilder::max_sessions_per_user)
//! commits every login as a [`rotate`](SessionStore::rotate) whose
//! [`Login::limit`] is set (a login on a request without a session first
//! creates the session anonymous, then rotates it). In the same atomic step
//! as that rotation, the store:
//!
//! 1. serialises it with the other limited logins of the same user (a lock
//!    per user, taken before anything is counted), so that N parallel
//!    logins cannot each count the same sessions;
//! 2. lists the user's *other* live sessions: not the one being rotated,
//!    not a retired pointer, not a session that a [cutoff](Cutoffs) ended;
//! 3. applies [`SessionLimit::admit`] to them: the login is refused
//!    ([`Rotated::Refused`], nothing changes), or admitted, and the
//!    sessions it names are ended (deleted as a revocation by handle
//!    would: a session renewed meanwhile ends under its new key), and the
//!    rotation answers [`Rotated::Evicted`] with how many ended (or
//!    [`Rotated::Done`] when none had to).
//!
//! A store that keeps the limit needs a per-user index ([`UserIndex`]);
//! [`conformance::run_session_limit`] checks it, 10 parallel logins
//! included. Every store of this crate keeps it (`RedisStore` serialises a
//! user's limited logins on a lease in the slot of the user's index, since
//! no script spans slots on a cluster).
//!
//! # Writing a store
//!
//! A whole store: records in a `HashMap` behind a mutex, with leases, run
//! through the conformance suite and put behind a layer. A real backend
//! does the same steps, each as one atomic operation of its own (a
//! transaction, a script); the types it needs to encode records are all
//! public: [`Record`], [`Metadata`], [`Data`] (its
//! [`packed`](Data::packed) form is one byte string, and
//! [`Data::from_pairs`] or `collect()` build it in one allocation), and
//! [`Retired`].
//!
//! ```
//! use std::{collections::HashMap, sync::{Arc, Mutex}};
//! use async_trait::async_trait;
//! use sessionware::store::{
//!     conformance, Capabilities, ChangeSet, Leases, Record, Rotated, Rotation, SessionStore, StorageKey,
//!     StoreError, Stored,
//! };
//! use sessionware::{Keys, SessionLayer};
//!
//! #[derive(Debug, Default)]
//! struct MapStore {
//!     map: Mutex<HashMap<StorageKey, Stored>>,
//!     leases: Mutex<HashMap<StorageKey, (String, u64)>>,
//! }
//!
//! /// What is under `key` at `now`; an expired entry is dropped.
//! fn live(map: &mut HashMap<StorageKey, Stored>, key: &StorageKey, now: u64) -> Option<Stored> {
//!     let expired = match map.get(key)? {
//!         Stored::Live(r) => r.is_expired(now),
//!         Stored::Retired(p) => p.is_expired(now),
//!         _ => true,
//!     };
//!     if expired {
//!         map.remove(key);
//!         return None;
//!     }
//!     map.get(key).cloned()
//! }
//!
//! #[async_trait]
//! impl SessionStore for MapStore {
//!     async fn create(&self, key: &StorageKey, record: &Record, now: u64) -> Result<bool, StoreError> {
//!         let mut map = self.map.lock().unwrap();
//!         if live(&mut map, key, now).is_some() {
//!             return Ok(false); // never overwrite
//!         }
//!         map.insert(*key, Stored::Live(record.clone()));
//!         Ok(true)
//!     }
//!
//!     async fn lookup(&self, key: &StorageKey, now: u64) -> Result<Option<Stored>, StoreError> {
//!         Ok(live(&mut self.map.lock().unwrap(), key, now))
//!     }
//!
//!     async fn apply(&self, key: &StorageKey, changes: &ChangeSet, now: u64) -> Result<bool, StoreError> {
//!         let mut map = self.map.lock().unwrap();
//!         if !matches!(live(&mut map, key, now), Some(Stored::Live(_))) {
//!             return Ok(false); // ended or retired: never resurrect
//!         }
//!         match map.get_mut(key) {
//!             Some(Stored::Live(record)) => record.try_apply(changes).map(|()| true),
//!             _ => Ok(false),
//!         }
//!     }
//!
//!     async fn rotate(&self, old: &StorageKey, new: &StorageKey, rotation: &Rotation) -> Result<Rotated, StoreError> {
//!         let now = rotation.now;
//!         let mut map = self.map.lock().unwrap();
//!         let current = match live(&mut map, old, now) {
//!             Some(Stored::Live(record)) => record,
//!             Some(Stored::Retired(pointer)) => return Ok(Rotated::Retired(pointer)),
//!             _ => return Ok(Rotated::Gone),
//!         };
//!         if live(&mut map, new, now).is_some() {
//!             return Ok(Rotated::Taken);
//!         }
//!         // Built from the record as stored now, not as the request loaded it.
//!         let successor = rotation.successor(&current, old)?;
//!         map.insert(*new, Stored::Live(successor));
//!         map.insert(*old, Stored::Retired(rotation.retired(*new)));
//!         Ok(Rotated::Done)
//!     }
//!
//!     async fn delete(&self, key: &StorageKey, now: u64) -> Result<(), StoreError> {
//!         let mut map = self.map.lock().unwrap();
//!         let mut next = live(&mut map, key, now);
//!         let mut pointer = *key;
//!         map.remove(key);
//!         // Follow retired keys to a successor that was not used yet.
//!         for _ in 0..16 {
//!             let Some(Stored::Retired(r)) = next else { break };
//!             next = live(&mut map, &r.successor, now);
//!             let ends = match &next {
//!                 Some(Stored::Live(s)) => s.meta.predecessor == Some(pointer),
//!                 _ => true,
//!             };
//!             if ends {
//!                 map.remove(&r.successor);
//!             }
//!             pointer = r.successor;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! #[async_trait]
//! impl Leases for MapStore {
//!     async fn try_lock(&self, key: &StorageKey, token: &str, ttl_ms: u64, now: u64) -> Result<bool, StoreError> {
//!         let mut leases = self.leases.lock().unwrap();
//!         if let Some((holder, until)) = leases.get(key) {
//!             if *until > now && holder != token {
//!                 return Ok(false);
//!             }
//!         }
//!         leases.insert(*key, (token.to_string(), now + ttl_ms));
//!         Ok(true)
//!     }
//!
//!     async fn unlock(&self, key: &StorageKey, token: &str, _now: u64) -> Result<(), StoreError> {
//!         let mut leases = self.leases.lock().unwrap();
//!         if leases.get(key).is_some_and(|(holder, _)| holder == token) {
//!             leases.remove(key);
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! // The suite panics, naming the broken promise, if the store breaks one.
//! conformance::run_core(Arc::new(MapStore::default())).await;
//! conformance::run_leases(&MapStore::default()).await;
//!
//! // No per-user index: `SessionLayer::new` would not compile. The layer
//! // is built with what the store has; `Session::sessions()` and the
//! // revocations then answer `SessionError::Unsupported`.
//! let store = Capabilities::new(MapStore::default()).with_leases();
//! let layer = SessionLayer::with_capabilities(store, Keys::generate().unwrap());
//! # let _ = layer;
//! # });
//! ```

use std::sync::Arc;

use async_trait::async_trait;

use crate::SessionHandle;

pub mod conformance;
mod cutoff;
mod limit;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
mod sql;

pub use crate::error::{ConnectError, StoreError};
pub use crate::id::StorageKey;
pub use crate::record::{Auth, ChangeSet, Data, Metadata, Record, RECORD_FORMAT};
pub use crate::rotation::{Login, Retired, Rotated, Rotation, Stored, RETIRED_KEEP_MS};
pub use cutoff::{Cutoff, Cutoffs, Scope};
pub use limit::{LimitPolicy, SessionLimit};
pub use memory::{MemoryStore, MemoryStoreBuilder, WhenFull};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisStore;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))))]
pub use sql::{Dialect, SqlStore};

/// What every store implements: the session records themselves.
///
/// Five methods are required ([`create`](Self::create),
/// [`lookup`](Self::lookup), [`apply`](Self::apply),
/// [`rotate`](Self::rotate), [`delete`](Self::delete)); the rest have
/// defaults. Every call receives the request's time, `now` (milliseconds since
/// the Unix epoch, from the layer's [`Clock`](crate::Clock)): a store judges
/// expiry by it and never reads a clock of its own, so a test's
/// [`ManualClock`](crate::ManualClock) given to the layer reaches every store.
///
/// The per-user index and exclusive leases are separate traits,
/// [`UserIndex`] and [`Leases`]; [`SessionLayer::new`](crate::SessionLayer::new)
/// needs a store with both, and
/// [`SessionLayer::with_capabilities`](crate::SessionLayer::with_capabilities)
/// takes one with fewer, so that a missing capability is a compile error or
/// a choice made when the layer is built, never a failure found at run time.
///
/// ```
/// use sessionware::store::{MemoryStore, Metadata, Record, SessionStore};
/// use sessionware::SessionId;
/// # tokio_test_block_on(async {
/// let store = MemoryStore::default();
/// let key = SessionId::generate().unwrap().storage_key();
/// let now = 1_700_000_000_000;
/// let record = Record::new(Metadata::new(now, 60_000, 3_600_000));
/// assert!(store.create(&key, &record, now).await.unwrap());
/// assert!(!store.create(&key, &record, now).await.unwrap()); // never overwrites
/// assert!(store.load(&key, now).await.unwrap().is_some());
/// assert!(store.load(&key, now + 60_000).await.unwrap().is_none()); // idle: expired
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts `record` under `key` only if no live record (and no live
    /// retired pointer) has that key at `now`. Returns `Ok(false)` (and
    /// changes nothing) when one exists.
    async fn create(&self, key: &StorageKey, record: &Record, now: u64) -> Result<bool, StoreError>;

    /// What the store holds under `key` at `now`: the live record, the
    /// pointer a rotation left ([`Stored::Retired`], until its
    /// [`until`](crate::store::Retired::until)), or `None` if the key is
    /// absent or expired.
    async fn lookup(&self, key: &StorageKey, now: u64) -> Result<Option<Stored>, StoreError>;

    /// Merges `changes` into the live record under `key` atomically (see
    /// [`Record::try_apply`] for the semantics, the data cap included).
    /// Returns `Ok(false)` and creates nothing when no live record is under
    /// `key` at `now` (any more; a retired key included).
    async fn apply(&self, key: &StorageKey, changes: &ChangeSet, now: u64) -> Result<bool, StoreError>;

    /// Rotates the session under `old` to `new` in one atomic step, at
    /// [`rotation.now`](Rotation::now):
    ///
    /// - if `old` holds no live record, nothing changes: [`Rotated::Gone`],
    ///   or [`Rotated::Retired`] with the pointer if another rotation
    ///   retired it first;
    /// - if `new` holds anything, nothing changes: [`Rotated::Taken`];
    /// - otherwise the record built by
    ///   [`rotation.successor(current, old)`](Rotation::successor) from the
    ///   *current* stored record is created under `new` (and indexed under
    ///   its user), and `old` is replaced by
    ///   [`rotation.retired(new)`](Rotation::retired): [`Rotated::Done`].
    ///
    /// When [`rotation.login`](Rotation::login) carries a
    /// [`limit`](Login::limit), in the same atomic step, with the limited
    /// logins of the same user serialised: the store counts the user's live
    /// sessions other than `old` (a retired pointer and a session that a
    /// cutoff ended do not count) and applies [`SessionLimit::admit`] to
    /// them. A refusal changes nothing: [`Rotated::Refused`] (answered only
    /// while `old` is live). Otherwise, if the rotation is done, the sessions
    /// `admit` named are ended, following a rotation of theirs as a
    /// revocation does: [`Rotated::Evicted`] with how many (or
    /// [`Rotated::Done`] when none). See the
    /// [module documentation](self#the-per-user-session-limit).
    ///
    /// A successor that would exceed the data cap fails with
    /// [`StoreError::TooLarge`] and changes nothing.
    async fn rotate(&self, old: &StorageKey, new: &StorageKey, rotation: &Rotation) -> Result<Rotated, StoreError>;

    /// Deletes the record under `key` (no error if it is absent). When `key`
    /// holds a live retired pointer, its successor is deleted too, following
    /// the pointers (a chain of at most 16), as long as the live successor
    /// at the end still names the last pointer as its
    /// [`predecessor`](crate::store::Metadata::predecessor): a logout on an
    /// ID that a rotation retired moments ago ends the session it became, but
    /// once the new ID was used (or the pointer expired), the old ID ends
    /// nothing.
    async fn delete(&self, key: &StorageKey, now: u64) -> Result<(), StoreError>;

    /// Moves `last_seen` to `now` and `expires_at` (capped at the absolute
    /// deadline) without rewriting the data. Returns `Ok(false)` when the
    /// record is gone. The default applies an empty [`ChangeSet`]; stores
    /// override it when they have a cheaper way.
    async fn touch(&self, key: &StorageKey, now: u64, expires_at: u64) -> Result<bool, StoreError> {
        self.apply(key, &ChangeSet::new(now, expires_at), now).await
    }

    /// The live record under `key` at `now`, or `None` if it is absent,
    /// retired or expired.
    async fn load(&self, key: &StorageKey, now: u64) -> Result<Option<Record>, StoreError> {
        Ok(self.lookup(key, now).await?.and_then(Stored::live))
    }

    /// Answers [`lookup`](Self::lookup) at once, for a store that can do so
    /// without waiting (one that keeps its records in process): `Some` with
    /// the result. The default, `None`, makes the layer call `lookup`.
    ///
    /// ```
    /// use sessionware::store::{MemoryStore, SessionStore};
    /// use sessionware::SessionId;
    /// let key = SessionId::generate().unwrap().storage_key();
    /// assert!(matches!(MemoryStore::default().lookup_ready(&key, 0), Some(Ok(None))));
    /// ```
    fn lookup_ready(&self, key: &StorageKey, now: u64) -> Option<Result<Option<Stored>, StoreError>> {
        let _ = (key, now);
        None
    }

    /// Whether `new` may succeed `old` in a [`rotate`](Self::rotate). The
    /// layer draws new IDs until one is accepted. The default accepts every
    /// key; a store that can only rotate atomically between co-located keys
    /// (Redis Cluster: one slot) accepts those only.
    ///
    /// ```
    /// use sessionware::store::{MemoryStore, SessionStore};
    /// use sessionware::SessionId;
    /// let (a, b) = (SessionId::generate().unwrap().storage_key(), SessionId::generate().unwrap().storage_key());
    /// assert!(MemoryStore::default().accepts_successor(&a, &b));
    /// ```
    fn accepts_successor(&self, old: &StorageKey, new: &StorageKey) -> bool {
        let _ = (old, new);
        true
    }
}

/// A store that keeps a per-user index: the sessions of each signed-in user
/// can be listed and revoked ([`Session::sessions`](crate::Session::sessions),
/// [`revoke`](crate::Session::revoke),
/// [`revoke_others`](crate::Session::revoke_others)).
///
/// A record whose metadata names a user ([`Metadata::auth`]) is listed until
/// it is deleted or expires. Revocations also follow a listed key that a
/// rotation retired meanwhile to the same user's live successor (whatever its
/// predecessor): a revocation racing a renewal ends the renewed session.
#[async_trait]
pub trait UserIndex: SessionStore {
    /// The metadata of at most `limit` live sessions of `user` at `now`, the
    /// most recently seen first.
    async fn list_user(&self, user: &str, now: u64, limit: usize) -> Result<Vec<Metadata>, StoreError>;

    /// Deletes the live session of `user` named `handle`. `Ok(false)` when
    /// `user` has no such session (another user's handle included).
    async fn delete_by_handle(&self, user: &str, handle: &SessionHandle, now: u64) -> Result<bool, StoreError>;

    /// Deletes every session of `user` except the one named `keep`, and
    /// returns how many were deleted.
    async fn delete_user(&self, user: &str, keep: Option<&SessionHandle>, now: u64) -> Result<usize, StoreError>;

    /// Deletes every live session of `user` whose sign-in is linked to the
    /// identity provider's session `sid` at `issuer`
    /// ([`ProviderSession::matches`](crate::ProviderSession::matches); with
    /// `sid` `None`, every session of `user` signed in through `issuer`),
    /// and returns how many were deleted: a back-channel logout. The
    /// default lists the user's sessions ([`list_user`](Self::list_user))
    /// and deletes the linked ones by handle
    /// ([`delete_by_handle`](Self::delete_by_handle), which follows a
    /// rotation made meanwhile); a store may do it in fewer steps. The
    /// default is not one atomic step: a linked session that the same
    /// user signs in to again (another way) between the listing and its
    /// deletion is still ended, which errs on the side of logging out; a
    /// session linked after the listing is not.
    async fn delete_provider_sessions(
        &self,
        user: &str,
        issuer: &str,
        sid: Option<&str>,
        now: u64,
    ) -> Result<usize, StoreError> {
        let listed = self.list_user(user, now, usize::MAX).await?;
        let mut ended = 0;
        for meta in listed {
            let provider = meta.auth.as_ref().and_then(|a| a.provider());
            if provider.is_some_and(|p| p.matches(issuer, sid))
                && self.delete_by_handle(user, &meta.handle, now).await?
            {
                ended += 1;
            }
        }
        Ok(ended)
    }
}

/// A store that grants exclusive leases, which serialise the
/// read-modify-write requests of one session across processes
/// ([`Session::lock`](crate::Session::lock)).
#[async_trait]
pub trait Leases: SessionStore {
    /// Takes the exclusive lease of the session under `key` until
    /// `now + ttl_ms` with `token`, unless another token holds a live lease
    /// (`Ok(false)`). A holder that dies blocks nobody beyond its lease.
    async fn try_lock(&self, key: &StorageKey, token: &str, ttl_ms: u64, now: u64) -> Result<bool, StoreError>;

    /// Releases the lease of `key` if `token` still holds it (compare and
    /// delete).
    async fn unlock(&self, key: &StorageKey, token: &str, now: u64) -> Result<(), StoreError>;
}

/// A store with every capability ([`UserIndex`], [`Leases`], [`Cutoffs`]),
/// as one trait: `Arc<dyn FullStore>` is how an application picks its store
/// at run time and still builds the layer with
/// [`SessionLayer::new`](crate::SessionLayer::new).
///
/// ```
/// use std::sync::Arc;
/// use sessionware::{Keys, SessionLayer, store::{FullStore, MemoryStore}};
/// let store: Arc<dyn FullStore> = Arc::new(MemoryStore::default());
/// let layer = SessionLayer::new(store, Keys::generate().unwrap());
/// ```
pub trait FullStore: UserIndex + Leases + Cutoffs {}

impl<T: UserIndex + Leases + Cutoffs + ?Sized> FullStore for T {}

/// Keeps the `limit` most recently seen of `sessions`, the most recent first:
/// the order and the bound of [`UserIndex::list_user`], for a store that
/// cannot sort or limit in its backend.
///
/// ```
/// use sessionware::store::{most_recent, Metadata};
/// let mut sessions: Vec<Metadata> = (0..5).map(|t| Metadata::new(t, 60_000, 600_000)).collect();
/// most_recent(&mut sessions, 2);
/// assert_eq!(sessions.iter().map(|m| m.last_seen).collect::<Vec<_>>(), [4, 3]);
/// ```
pub fn most_recent(sessions: &mut Vec<Metadata>, limit: usize) {
    sessions.sort_unstable_by(|a, b| b.last_seen.cmp(&a.last_seen).then(b.created_at.cmp(&a.created_at)));
    sessions.truncate(limit);
}

/// A capability beyond the core [`SessionStore`] contract.
///
/// ```
/// use sessionware::store::Capability;
/// assert_eq!(Capability::UserIndex.to_string(), "a per-user session index");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// [`UserIndex`]: listing and revoking a user's sessions.
    UserIndex,
    /// [`Leases`]: exclusive sessions.
    Leases,
    /// [`Cutoffs`]: ending sessions at once by when they began.
    Cutoffs,
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Capability::UserIndex => "a per-user session index",
            Capability::Leases => "exclusive session leases",
            Capability::Cutoffs => "session cutoffs",
        })
    }
}

/// A store and the capabilities a layer may use, for a store that lacks some
/// of them ([`SessionLayer::with_capabilities`](crate::SessionLayer::with_capabilities)).
/// Each capability is added by a method that compiles only for a store that
/// implements its trait.
///
/// ```
/// use sessionware::store::{Capabilities, Capability, MemoryStore};
/// let caps = Capabilities::new(MemoryStore::default()).with_leases();
/// assert!(caps.has(Capability::Leases));
/// assert!(!caps.has(Capability::UserIndex));
/// ```
pub struct Capabilities<S> {
    pub(crate) store: Arc<S>,
    pub(crate) index: Option<Arc<dyn UserIndex>>,
    pub(crate) leases: Option<Arc<dyn Leases>>,
    pub(crate) cutoffs: Option<Arc<dyn Cutoffs>>,
}

impl<S> std::fmt::Debug for Capabilities<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capabilities")
            .field("user_index", &self.index.is_some())
            .field("leases", &self.leases.is_some())
            .field("cutoffs", &self.cutoffs.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: SessionStore> Capabilities<S> {
    /// The core contract only.
    pub fn new(store: S) -> Self {
        Self { store: Arc::new(store), index: None, leases: None, cutoffs: None }
    }

    /// Adds the store's per-user index.
    pub fn with_user_index(mut self) -> Self
    where
        S: UserIndex,
    {
        self.index = Some(self.store.clone());
        self
    }

    /// Adds the store's exclusive leases.
    pub fn with_leases(mut self) -> Self
    where
        S: Leases,
    {
        self.leases = Some(self.store.clone());
        self
    }

    /// Adds the store's cutoffs.
    pub fn with_cutoffs(mut self) -> Self
    where
        S: Cutoffs,
    {
        self.cutoffs = Some(self.store.clone());
        self
    }

    /// All capabilities.
    pub fn full(store: S) -> Self
    where
        S: UserIndex + Leases + Cutoffs,
    {
        Self::new(store).with_user_index().with_leases().with_cutoffs()
    }

    /// Whether `capability` was added.
    pub fn has(&self, capability: Capability) -> bool {
        match capability {
            Capability::UserIndex => self.index.is_some(),
            Capability::Leases => self.leases.is_some(),
            Capability::Cutoffs => self.cutoffs.is_some(),
        }
    }
}

#[async_trait]
impl<T: SessionStore + ?Sized> SessionStore for Arc<T> {
    async fn create(&self, key: &StorageKey, record: &Record, now: u64) -> Result<bool, StoreError> {
        (**self).create(key, record, now).await
    }
    async fn lookup(&self, key: &StorageKey, now: u64) -> Result<Option<Stored>, StoreError> {
        (**self).lookup(key, now).await
    }
    async fn apply(&self, key: &StorageKey, changes: &ChangeSet, now: u64) -> Result<bool, StoreError> {
        (**self).apply(key, changes, now).await
    }
    async fn rotate(&self, old: &StorageKey, new: &StorageKey, rotation: &Rotation) -> Result<Rotated, StoreError> {
        (**self).rotate(old, new, rotation).await
    }
    async fn delete(&self, key: &StorageKey, now: u64) -> Result<(), StoreError> {
        (**self).delete(key, now).await
    }
    async fn touch(&self, key: &StorageKey, now: u64, expires_at: u64) -> Result<bool, StoreError> {
        (**self).touch(key, now, expires_at).await
    }
    async fn load(&self, key: &StorageKey, now: u64) -> Result<Option<Record>, StoreError> {
        (**self).load(key, now).await
    }
    fn lookup_ready(&self, key: &StorageKey, now: u64) -> Option<Result<Option<Stored>, StoreError>> {
        (**self).lookup_ready(key, now)
    }
    fn accepts_successor(&self, old: &StorageKey, new: &StorageKey) -> bool {
        (**self).accepts_successor(old, new)
    }
}

#[async_trait]
impl<T: UserIndex + ?Sized> UserIndex for Arc<T> {
    async fn list_user(&self, user: &str, now: u64, limit: usize) -> Result<Vec<Metadata>, StoreError> {
        (**self).list_user(user, now, limit).await
    }
    async fn delete_by_handle(&self, user: &str, handle: &SessionHandle, now: u64) -> Result<bool, StoreError> {
        (**self).delete_by_handle(user, handle, now).await
    }
    async fn delete_user(&self, user: &str, keep: Option<&SessionHandle>, now: u64) -> Result<usize, StoreError> {
        (**self).delete_user(user, keep, now).await
    }
    async fn delete_provider_sessions(
        &self,
        user: &str,
        issuer: &str,
        sid: Option<&str>,
        now: u64,
    ) -> Result<usize, StoreError> {
        (**self).delete_provider_sessions(user, issuer, sid, now).await
    }
}

#[async_trait]
impl<T: Leases + ?Sized> Leases for Arc<T> {
    async fn try_lock(&self, key: &StorageKey, token: &str, ttl_ms: u64, now: u64) -> Result<bool, StoreError> {
        (**self).try_lock(key, token, ttl_ms, now).await
    }
    async fn unlock(&self, key: &StorageKey, token: &str, now: u64) -> Result<(), StoreError> {
        (**self).unlock(key, token, now).await
    }
}

//! The embedded default store: sharded, in process, self-cleaning.

use std::{
    collections::{hash_map::DefaultHasher, HashMap},
    hash::{BuildHasherDefault, Hash, Hasher},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use async_trait::async_trait;

use crate::{
    record::{Auth, Data},
    store::{Cutoff, Cutoffs, Leases, Scope, SessionLimit, UserIndex},
    ChangeSet, Metadata, Record, Retired, Rotated, Rotation, SessionHandle, SessionStore, StorageKey, StoreError,
    Stored,
};

mod cutoffs;

/// The longest chain of retired keys a `delete` follows.
const MAX_CHAIN: usize = 16;

const SHARDS: usize = 64;
const DEFAULT_MAX_SESSIONS: usize = 1_000_000;
const DEFAULT_MAX_BYTES: usize = 1 << 30;
const DEFAULT_SWEEP_INTERVAL_MS: u64 = 60_000;
/// Most records one sweep step removes under a shard's lock.
const SWEEP_BATCH: usize = 256;

/// An in-memory [`SessionStore`]: the embedded default.
///
/// Records live in 64 shards, each behind its own short-held lock (no global
/// lock, never held across an `.await`). Expired records are dropped when
/// seen, and each shard sweeps out its expired records (and those a
/// [cutoff](crate::store::Cutoffs) ended) at most once a minute when it is
/// written to, so memory stays bounded without a background task.
/// The live sessions are capped in number (default one million) and in
/// bytes (default 1 GiB). At the cap, expired and ended records are freed first; then,
/// by default, the least recently used *anonymous* sessions are evicted, so
/// a client that floods the store with new sessions cannot lock users out:
/// logins and signed-in sessions keep working ([`WhenFull`]). When only
/// signed-in sessions are left, a new one fails with [`StoreError::Capacity`].
///
/// Sessions are lost when the process exits; use a durable store for more than
/// one process.
///
/// ```
/// use sessionware::{Keys, SessionLayer, store::MemoryStore};
/// let store = MemoryStore::builder().max_sessions(10_000).build();
/// let layer = SessionLayer::new(store.clone(), Keys::generate().unwrap());
/// assert_eq!(store.len(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shards: Box<[Mutex<Shard>]>,
    /// user → storage keys of their sessions; entries of deleted or expired
    /// sessions are dropped lazily (listing filters on the live records).
    users: Box<[Mutex<UserMap>]>,
    count: AtomicUsize,
    /// The approximate bytes of the live sessions ([`Entry::footprint`]).
    bytes: AtomicUsize,
    max_sessions: usize,
    max_bytes: usize,
    when_full: WhenFull,
    /// The shard the next eviction scan starts at.
    evict_cursor: AtomicUsize,
    sweep_interval_ms: u64,
    cuts: cutoffs::Cuts,
    /// The login locks ([`Inner::login_lock`]), taken only by logins under
    /// a per-user limit.
    logins: Box<[Mutex<()>]>,
    /// How many logins came to a login lock (tests: to hold one there).
    #[cfg(test)]
    login_lock_calls: AtomicUsize,
}

/// What a full [`MemoryStore`] does when a new session needs room (at
/// [`max_sessions`](MemoryStoreBuilder::max_sessions) or
/// [`max_bytes`](MemoryStoreBuilder::max_bytes), after freeing the expired
/// records first).
///
/// ```
/// use sessionware::store::{MemoryStore, WhenFull};
/// let store = MemoryStore::builder().max_sessions(1_000).when_full(WhenFull::Refuse).build();
/// # let _ = store;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenFull {
    /// Ends the least recently used *anonymous* sessions (no user signed
    /// in) to make room; signed-in sessions are never evicted. A client
    /// that floods the store with new sessions only pushes out other
    /// anonymous sessions, and logins keep working. When only signed-in
    /// sessions are left, the new one is refused. (Least recently used is
    /// approximate: the oldest of one shard, a 64th of the store, at a time.)
    #[default]
    EvictAnonymous,
    /// Refuses the new session ([`StoreError::Capacity`]); nobody is evicted.
    Refuse,
}

/// Anonymous sessions evicted per shard scan (one scan makes room for the
/// next several new sessions).
const EVICT_BATCH: usize = 16;
/// What a session costs beyond its data and strings: its slot, key and the
/// table's control byte, rounded up.
const ENTRY_OVERHEAD: usize = 128;

/// user → storage keys of their sessions.
type UserMap = HashMap<String, Vec<StorageKey>>;

/// The locks that serialise the limited logins of one user.
const LOGIN_LOCKS: usize = 64;

/// The hash of a user that picks its index shard and its login lock.
fn user_hash(user: &str) -> u64 {
    let mut h = DefaultHasher::new();
    user.hash(&mut h);
    h.finish()
}

#[derive(Debug, Default)]
struct Shard {
    /// Sessions and retired keys in one table: a rotation turns the old
    /// key's slot into its pointer in place (the slot it has just read),
    /// and one probe of the new key finds either kind, so a renewal touches
    /// no more of the table than a create and a delete did.
    map: HashMap<StorageKey, Slot, BuildHasherDefault<DigestHasher>>,
    /// Exclusive leases: token and expiry.
    locks: HashMap<StorageKey, (Box<str>, u64), BuildHasherDefault<DigestHasher>>,
    next_sweep: u64,
}

/// What a shard holds under a key: a session, or the pointer a rotation
/// left (kept until its `until`; not counted as a session).
#[derive(Debug)]
enum Slot {
    Live(Entry),
    Retired(Retired),
}

impl Slot {
    fn live(&self) -> Option<&Entry> {
        match self {
            Slot::Live(e) => Some(e),
            Slot::Retired(_) => None,
        }
    }

    fn is_expired(&self, now: u64) -> bool {
        match self {
            Slot::Live(e) => e.is_expired(now),
            Slot::Retired(r) => r.is_expired(now),
        }
    }
}

/// A record as the memory store keeps it: the times and the handle inline,
/// the rarely used metadata boxed, and the data in its packed form (one
/// allocation, about the size of the data itself, copied out in one step).
#[derive(Debug)]
struct Entry {
    created_at: u64,
    last_seen: u64,
    absolute_deadline: u64,
    expires_at: u64,
    handle: SessionHandle,
    extra: Option<Box<Extra>>,
    data: Box<[u8]>,
}

#[derive(Debug, Clone)]
struct Extra {
    auth: Option<Auth>,
    user_agent: Option<Box<str>>,
    ip: Option<Box<str>>,
    persistent: bool,
    predecessor: Option<StorageKey>,
    renewed_at: Option<u64>,
}

impl Entry {
    /// An entry from an owned record (its packed data moves, no copy).
    fn from_owned(record: Record) -> Self {
        let Record { meta, data, .. } = record;
        let mut entry = Self::with_meta(&meta);
        entry.data = data.into_packed();
        entry
    }

    fn from_record(record: &Record) -> Result<Self, StoreError> {
        let mut entry = Self::with_meta(&record.meta);
        entry.data = record.data.packed().into();
        Ok(entry)
    }

    /// An entry with `meta` and no data.
    fn with_meta(m: &Metadata) -> Self {
        let extra = (m.auth.is_some()
            || m.user_agent.is_some()
            || m.ip.is_some()
            || m.persistent
            || m.predecessor.is_some()
            || m.renewed_at.is_some())
        .then(|| {
            Box::new(Extra {
                auth: m.auth.clone(),
                user_agent: m.user_agent.clone(),
                ip: m.ip.clone(),
                persistent: m.persistent,
                predecessor: m.predecessor,
                renewed_at: m.renewed_at,
            })
        });
        Self {
            created_at: m.created_at,
            last_seen: m.last_seen,
            absolute_deadline: m.absolute_deadline,
            expires_at: m.expires_at,
            handle: m.handle,
            extra,
            data: Box::default(),
        }
    }

    fn meta(&self) -> Metadata {
        let x = self.extra.as_deref();
        Metadata {
            created_at: self.created_at,
            last_seen: self.last_seen,
            absolute_deadline: self.absolute_deadline,
            expires_at: self.expires_at,
            auth: x.and_then(|x| x.auth.clone()),
            persistent: x.is_some_and(|x| x.persistent),
            handle: self.handle,
            user_agent: x.and_then(|x| x.user_agent.clone()),
            ip: x.and_then(|x| x.ip.clone()),
            predecessor: x.and_then(|x| x.predecessor),
            renewed_at: x.and_then(|x| x.renewed_at),
        }
    }

    fn to_record(&self) -> Record {
        let mut record = Record::new(self.meta());
        record.data = Data::from_own_packed(self.data.to_vec());
        record
    }

    fn user(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|x| x.auth.as_ref()).map(|a| a.user.as_str())
    }

    fn predecessor(&self) -> Option<StorageKey> {
        self.extra.as_ref().and_then(|x| x.predecessor)
    }

    fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at || now >= self.absolute_deadline
    }

    /// The bytes the session takes, approximately: the slot and its key,
    /// the packed data and the boxed metadata with its strings.
    fn footprint(&self) -> usize {
        let extra = self.extra.as_deref().map_or(0, |x| {
            std::mem::size_of::<Extra>()
                + x.auth.as_ref().map_or(0, |a| a.user.len() + a.extra_heap_len())
                + x.user_agent.as_ref().map_or(0, |u| u.len())
                + x.ip.as_ref().map_or(0, |i| i.len())
        });
        ENTRY_OVERHEAD + self.data.len() + extra
    }

    /// Merges a change set with the semantics of [`Record::try_apply`]
    /// (nothing changes when the merged data would pass the cap).
    fn apply(&mut self, changes: &ChangeSet) -> Result<(), StoreError> {
        if changes.touches_data() {
            let mut data = if changes.clear { Data::default() } else { Data::from_own_packed(self.data.to_vec()) };
            for (k, v) in &changes.changes {
                data.apply_change(k, v.as_deref());
            }
            if changes.max_data_bytes > 0 && data.size() > changes.max_data_bytes {
                return Err(StoreError::TooLarge);
            }
            self.data = data.into_packed();
        }
        self.last_seen = self.last_seen.max(changes.last_seen);
        self.expires_at = changes.expires_at.min(self.absolute_deadline);
        if let Some(p) = changes.persistent {
            match &mut self.extra {
                Some(x) => x.persistent = p,
                None if p => {
                    self.extra = Some(Box::new(Extra {
                        auth: None,
                        user_agent: None,
                        ip: None,
                        persistent: true,
                        predecessor: None,
                        renewed_at: None,
                    }))
                }
                None => {}
            }
        }
        if let (true, Some(x)) = (changes.close_overlap, &mut self.extra) {
            x.predecessor = None;
        }
        Ok(())
    }
}

/// What a write needs from the caps: a session more (a new one) and bytes.
#[derive(Debug, Clone, Copy)]
struct Room {
    session: bool,
    bytes: usize,
}

/// The most bytes `changes` can add to a session's footprint: every value it
/// sets, packed as a new entry (a replaced or removed one only makes it
/// smaller), and the boxed metadata a persistence flag may allocate.
fn growth_bound(changes: &ChangeSet) -> usize {
    let data: usize = changes.changes.iter().filter_map(|(k, v)| v.as_ref().map(|v| 8 + k.len() + v.get().len())).sum();
    let extra = if changes.persistent == Some(true) { std::mem::size_of::<Extra>() } else { 0 };
    data + extra
}

/// Storage keys are SHA-256 digests already: hash by taking 8 of their bytes.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Bytes 8..16 of the digest (byte 0 picks the shard).
        let mut buf = [0u8; 8];
        let src = bytes.get(8..16).unwrap_or(bytes);
        let n = src.len().min(8);
        buf[..n].copy_from_slice(&src[..n]);
        self.0 ^= u64::from_le_bytes(buf);
    }
    fn write_usize(&mut self, _: usize) {}
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl MemoryStore {
    /// A builder for the limits and the clock.
    ///
    /// ```
    /// # use sessionware::store::MemoryStore;
    /// let store = MemoryStore::builder().max_sessions(5).build();
    /// assert!(store.is_empty());
    /// ```
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_bytes: DEFAULT_MAX_BYTES,
            when_full: WhenFull::default(),
            sweep_interval_ms: DEFAULT_SWEEP_INTERVAL_MS,
        }
    }

    /// Number of records held (including expired ones not yet swept).
    ///
    /// ```
    /// # use sessionware::store::MemoryStore;
    /// assert_eq!(MemoryStore::default().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.count.load(Ordering::Relaxed)
    }

    /// The approximate bytes the live sessions take (what
    /// [`max_bytes`](MemoryStoreBuilder::max_bytes) caps).
    ///
    /// ```
    /// # use sessionware::store::MemoryStore;
    /// assert_eq!(MemoryStore::default().bytes(), 0);
    /// ```
    pub fn bytes(&self) -> usize {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// True when no record is held.
    ///
    /// ```
    /// # use sessionware::store::MemoryStore;
    /// assert!(MemoryStore::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every record expired at `now` (ms since the epoch), shard by shard (each shard's lock is
    /// held only for its own sweep). Returns how many were removed.
    ///
    /// ```
    /// # use sessionware::store::MemoryStore;
    /// assert_eq!(MemoryStore::default().sweep_expired(1_700_000_000_000), 0);
    /// ```
    pub fn sweep_expired(&self, now: u64) -> usize {
        let mut total = 0;
        for i in 0..self.inner.shards.len() {
            loop {
                let (n, done) = self.inner.sweep_step(i, now, true);
                total += n;
                if done {
                    break;
                }
                // Let requests waiting for this shard (or for the allocator,
                // whose arena lock the frees take) in.
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
        total
    }

    /// The storage keys held, for tests and audits (they are digests, not IDs).
    ///
    /// ```
    /// # use sessionware::store::MemoryStore;
    /// assert!(MemoryStore::default().keys().is_empty());
    /// ```
    pub fn keys(&self) -> Vec<StorageKey> {
        (0..self.inner.shards.len())
            .flat_map(|i| {
                let shard = self.inner.lock(i);
                shard.map.iter().filter(|(_, s)| s.live().is_some()).map(|(k, _)| *k).collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Inner {
    fn shard_of(key: &StorageKey) -> usize {
        usize::from(key.as_bytes()[0]) % SHARDS
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        // A poisoned shard only means another thread panicked while holding
        // it; the map itself is always in a consistent state between calls.
        self.shards[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One bounded sweep step of shard `i`: removes at most [`SWEEP_BATCH`]
    /// expired records, records a cutoff ended, and expired retired keys
    /// (and the expired leases) while holding the shard's
    /// lock, and frees them after releasing it, so a sweep never holds a
    /// shard for long. Returns how many were removed and whether the shard
    /// is clean; a shard that is not clean stays due, so the next write to it
    /// continues the sweep. Unless `force`, a shard that is not due is left.
    fn sweep_step(&self, i: usize, now: u64, force: bool) -> (usize, bool) {
        let mut removed: Vec<(StorageKey, Entry)> = Vec::new();
        let done = {
            let mut shard = self.lock(i);
            if !force && now < shard.next_sweep {
                return (0, true);
            }
            // A session a cutoff ended is never served again: it goes like
            // an expired one, or it would hold its place against the caps
            // (signed-in sessions are never evicted) until it expires.
            let cuts = self.cuts.any();
            let ended = |s: &Slot| s.is_expired(now) || (cuts && matches!(s, Slot::Live(e) if self.is_cut(e)));
            let expired: Vec<StorageKey> =
                shard.map.iter().filter(|(_, s)| ended(s)).map(|(k, _)| *k).take(SWEEP_BATCH).collect();
            for key in &expired {
                if let Some(Slot::Live(entry)) = shard.map.remove(key) {
                    self.removed(&entry);
                    removed.push((*key, entry));
                }
            }
            shard.locks.retain(|_, (_, until)| *until > now);
            let done = expired.len() < SWEEP_BATCH;
            if done {
                shard.next_sweep = now.saturating_add(self.sweep_interval_ms);
            }
            done
        };
        // The user index is locked after the shard's lock is released.
        for (key, entry) in &removed {
            if let Some(user) = entry.user() {
                self.unindex(user, &[*key]);
            }
        }
        (removed.len(), done)
    }

    /// Counts a session in (its slot is about to be filled).
    fn added(&self, entry: &Entry) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(entry.footprint(), Ordering::Relaxed);
    }

    /// Counts a session out (its slot was emptied or retired).
    fn removed(&self, entry: &Entry) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(entry.footprint(), Ordering::Relaxed);
    }

    /// Whether `room` does not fit: one more session (if it adds one) and
    /// its bytes.
    fn is_full(&self, room: Room) -> bool {
        (room.session && self.count.load(Ordering::Relaxed) >= self.max_sessions)
            || self.bytes.load(Ordering::Relaxed).saturating_add(room.bytes) > self.max_bytes
    }

    /// Makes `room` (shard `i` is the key's): the expired records of the shard go first, then, under
    /// [`WhenFull::EvictAnonymous`], the least recently used anonymous
    /// sessions, one shard at a time.
    fn make_room(&self, i: usize, now: u64, room: Room) -> Result<(), StoreError> {
        if !self.is_full(room) {
            return Ok(());
        }
        self.sweep_step(i, now, true);
        if !self.is_full(room) {
            return Ok(());
        }
        if self.when_full == WhenFull::EvictAnonymous {
            for _ in 0..SHARDS {
                let j = self.evict_cursor.fetch_add(1, Ordering::Relaxed) % SHARDS;
                self.sweep_step(j, now, true);
                self.evict_anonymous(j, now);
                if !self.is_full(room) {
                    return Ok(());
                }
            }
        }
        Err(StoreError::Capacity)
    }

    /// Makes room for a write that may grow a session by up to `growth`
    /// bytes (nothing to do for one that cannot grow it).
    fn make_room_for_growth(&self, i: usize, now: u64, growth: usize) -> Result<(), StoreError> {
        if growth == 0 {
            return Ok(());
        }
        // The session is there already: only its bytes need room.
        self.make_room(i, now, Room { session: false, bytes: growth })
    }

    /// Ends up to [`EVICT_BATCH`] of the least recently used anonymous
    /// sessions of shard `j`.
    fn evict_anonymous(&self, j: usize, now: u64) {
        let evicted: Vec<Entry> = {
            let mut shard = self.lock(j);
            let mut anonymous: Vec<(u64, StorageKey)> = shard
                .map
                .iter()
                .filter_map(|(k, s)| match s {
                    Slot::Live(e) if e.user().is_none() && !e.is_expired(now) => Some((e.last_seen, *k)),
                    _ => None,
                })
                .collect();
            if anonymous.len() > EVICT_BATCH {
                anonymous.select_nth_unstable(EVICT_BATCH - 1);
                anonymous.truncate(EVICT_BATCH);
            }
            let mut out = Vec::with_capacity(anonymous.len());
            for (_, key) in anonymous {
                if let Some(Slot::Live(entry)) = shard.map.remove(&key) {
                    self.removed(&entry);
                    out.push(entry);
                }
            }
            out
        };
        // Freed after the shard's lock is released.
        drop(evicted);
    }

    fn users(&self, user: &str) -> MutexGuard<'_, UserMap> {
        let i = usize::try_from(user_hash(user) % (self.users.len() as u64)).unwrap_or(0);
        self.users[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The storage keys indexed under `user`.
    fn user_keys(&self, user: &str) -> Vec<StorageKey> {
        self.users(user).get(user).cloned().unwrap_or_default()
    }

    /// Drops `keys` from `user`'s index.
    fn unindex(&self, user: &str, keys: &[StorageKey]) {
        if keys.is_empty() {
            return;
        }
        let mut users = self.users(user);
        if let Some(list) = users.get_mut(user) {
            list.retain(|k| !keys.contains(k));
            if list.is_empty() {
                users.remove(user);
            }
        }
    }

    /// Visits the live sessions of `user` once each; `visit` returns true to
    /// delete one. Returns how many were deleted, and drops dead index
    /// entries.
    ///
    /// A listed key that a rotation retired meanwhile is followed to its
    /// successor: a revocation racing a renewal ends the renewed session,
    /// and a listing never misses it.
    fn scan_user(&self, user: &str, now: u64, mut visit: impl FnMut(Metadata) -> bool) -> usize {
        let mut seen: Vec<StorageKey> = Vec::new();
        let mut gone = Vec::new();
        let mut deleted = 0;
        for listed in self.user_keys(user) {
            let mut key = listed;
            let mut dead = false;
            for _ in 0..MAX_CHAIN {
                let mut shard = self.lock(Self::shard_of(&key));
                match self.with_live(&mut shard, &key, now, |r| r.user() == Some(user)) {
                    Some(true) if !seen.contains(&key) => {
                        seen.push(key);
                        if shard.map.get(&key).and_then(Slot::live).is_some_and(|r| visit(r.meta())) {
                            if let Some(Slot::Live(entry)) = shard.map.remove(&key) {
                                self.removed(&entry);
                            }
                            gone.push(key);
                            deleted += 1;
                        }
                    }
                    Some(true) => {}
                    // Another user's session now (the key was reused): not ours.
                    Some(false) => dead = key == listed,
                    None => match Self::retired(&mut shard, &key, now) {
                        Some(r) => {
                            key = r.successor;
                            continue;
                        }
                        None => dead = true,
                    },
                }
                break;
            }
            if dead || key != listed {
                gone.push(listed);
            }
        }
        self.unindex_dead(user, &gone, now);
        deleted
    }

    /// Drops `keys` from `user`'s index unless one holds a live session of
    /// the user by the time its shard is locked (a rotation that indexed its
    /// successor before creating it re-indexes it after).
    fn unindex_dead(&self, user: &str, keys: &[StorageKey], now: u64) {
        for key in keys {
            let shard = self.lock(Self::shard_of(key));
            let live =
                shard.map.get(key).and_then(Slot::live).is_some_and(|e| !e.is_expired(now) && e.user() == Some(user));
            if !live {
                // Shard, then index: the order `with_live` takes them in.
                self.unindex(user, &[*key]);
            }
            drop(shard);
        }
    }

    /// What is under `key`, dropping it if expired; nothing for a session
    /// a cutoff ended.
    fn lookup(&self, key: &StorageKey, now: u64) -> Option<Stored> {
        let mut shard = self.lock(Self::shard_of(key));
        match self.with_live(&mut shard, key, now, |e| (!self.is_cut(e)).then(|| e.to_record())) {
            Some(Some(record)) => Some(Stored::Live(record)),
            Some(None) => None,
            None => Self::retired(&mut shard, key, now).map(Stored::Retired),
        }
    }

    /// Whether a cutoff ended the session `entry`.
    fn is_cut(&self, entry: &Entry) -> bool {
        self.cuts.ends(entry.created_at, entry.extra.as_ref().and_then(|x| x.auth.as_ref()))
    }

    /// The live retired pointer under `key`, dropping it if expired.
    fn retired(shard: &mut Shard, key: &StorageKey, now: u64) -> Option<Retired> {
        match shard.map.get(key) {
            Some(Slot::Retired(r)) if !r.is_expired(now) => Some(*r),
            Some(Slot::Retired(_)) => {
                shard.map.remove(key);
                None
            }
            _ => None,
        }
    }

    /// Locks the shards of `a` and `b` (in index order, so two rotations
    /// never deadlock); one guard when they share a shard.
    fn lock_two(&self, a: &StorageKey, b: &StorageKey) -> (MutexGuard<'_, Shard>, Option<MutexGuard<'_, Shard>>) {
        let (i, j) = (Self::shard_of(a), Self::shard_of(b));
        if i == j {
            (self.lock(i), None)
        } else if i < j {
            let first = self.lock(i);
            (first, Some(self.lock(j)))
        } else {
            let second = self.lock(j);
            (self.lock(i), Some(second))
        }
    }

    /// A rotation, and the index: the successor is indexed first, the old
    /// key unindexed after, so that until then a listing or a revocation
    /// reaches the session through the old key's pointer and none misses it.
    fn rotate(&self, old: &StorageKey, new: &StorageKey, rotation: &Rotation) -> Result<Rotated, StoreError> {
        let (outcome, before) = self.rotate_shards(old, new, rotation, rotation.now)?;
        if outcome == Rotated::Done {
            let user = rotation.login.as_ref().map(|l| l.auth.user.as_str()).or(before.as_deref());
            if let Some(user) = user {
                let mut users = self.users(user);
                let list = users.entry(user.to_string()).or_default();
                if !list.contains(new) {
                    list.push(*new);
                }
            }
            if let Some(before) = &before {
                self.unindex(before, &[*old]);
            }
        }
        Ok(outcome)
    }

    /// A login of `user` under `limit` (see [`SessionStore::rotate`]): the
    /// rotation, and the evictions it needs, under the user's login lock.
    ///
    /// The lock order: the user's login lock first, then, as on every other
    /// path, one shard's lock and, inside it, an index lock (`with_live`,
    /// `scan_user`, `unindex_dead`), or the two shards of a rotation in
    /// index order, then the index. No path takes a login lock while it
    /// holds a shard's or the index's, and a login holds one login lock at
    /// a time, so no cycle of waits can form. The successor is indexed
    /// before the lock is released, so the next login of the user counts
    /// it.
    fn rotate_limited(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        rotation: &Rotation,
        user: &str,
        limit: SessionLimit,
    ) -> Result<Rotated, StoreError> {
        let now = rotation.now;
        let _login = self.login_lock(user);
        let mine = {
            let mut shard = self.lock(Self::shard_of(old));
            self.with_live(&mut shard, old, now, |e| e.handle)
        };
        // Not live: the rotation answers why (gone or retired).
        let Some(mine) = mine else { return self.rotate(old, new, rotation) };
        let others = self.live_sessions(user, now).into_iter().filter(|m| m.handle != mine).collect();
        let Some(evict) = limit.admit(others) else { return Ok(Rotated::Refused) };
        let outcome = self.rotate(old, new, rotation)?;
        if outcome != Rotated::Done || evict.is_empty() {
            return Ok(outcome);
        }
        // By handle, through the index: a session renewed meanwhile is
        // reached under its new key.
        let count = self.scan_user(user, now, |meta| evict.contains(&meta.handle));
        Ok(if count == 0 { Rotated::Done } else { Rotated::Evicted { count } })
    }

    /// The lock that serialises the limited logins of `user` (one of
    /// [`LOGIN_LOCKS`], by a hash of the user: two users may share one,
    /// which only makes their logins wait for each other).
    fn login_lock(&self, user: &str) -> MutexGuard<'_, ()> {
        #[cfg(test)]
        self.login_lock_calls.fetch_add(1, Ordering::SeqCst);
        let i = usize::try_from(user_hash(user) % (self.logins.len() as u64)).unwrap_or(0);
        self.logins[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The metadata of the live sessions of `user` that no cutoff ended.
    fn live_sessions(&self, user: &str, now: u64) -> Vec<Metadata> {
        let mut out = Vec::new();
        let cutoff = self.cuts.cutoff(Some(user));
        self.scan_user(user, now, |meta| {
            if !cutoff.ends(&meta) {
                out.push(meta);
            }
            false
        });
        out
    }

    /// The rotation itself, under the locks of both shards. Also returns the
    /// old record's user, for the index.
    fn rotate_shards(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        rotation: &Rotation,
        now: u64,
    ) -> Result<(Rotated, Option<String>), StoreError> {
        let (mut first, mut second) = self.lock_two(old, new);
        let old_shard = &mut *first;
        let Some(current) = self.with_live(old_shard, old, now, |e| e.to_record()) else {
            let outcome = match Self::retired(old_shard, old, now) {
                Some(r) => Rotated::Retired(r),
                None => Rotated::Gone,
            };
            return Ok((outcome, None));
        };
        let new_shard = match second.as_deref_mut() {
            Some(s) => s,
            None => &mut *old_shard,
        };
        // A live session or a live pointer: taken (one probe finds either).
        if new_shard.map.get(new).is_some_and(|s| !s.is_expired(now)) {
            return Ok((Rotated::Taken, None));
        }
        let before = current.meta.user().map(str::to_string);
        let entry = Entry::from_owned(rotation.successor_of(current, old)?);
        self.added(&entry);
        if let Some(Slot::Live(replaced)) = new_shard.map.insert(*new, Slot::Live(entry)) {
            self.removed(&replaced);
        }
        // The old key's slot (live, just read) becomes its pointer in place.
        let old_shard = &mut *first;
        if let Some(slot) = old_shard.map.get_mut(old) {
            if let Slot::Live(entry) = std::mem::replace(slot, Slot::Retired(rotation.retired(*new))) {
                self.removed(&entry);
            }
        }
        Ok((Rotated::Done, before))
    }

    /// Runs `f` on the live entry under `key` (one hash lookup when it is
    /// live or absent); an expired entry is removed on the way.
    fn with_live<R>(
        &self,
        shard: &mut Shard,
        key: &StorageKey,
        now: u64,
        f: impl FnOnce(&mut Entry) -> R,
    ) -> Option<R> {
        match shard.map.get_mut(key) {
            Some(Slot::Live(e)) if !e.is_expired(now) => return Some(f(e)),
            Some(Slot::Live(_)) => {}
            Some(Slot::Retired(_)) | None => return None,
        }
        if let Some(Slot::Live(entry)) = shard.map.remove(key) {
            self.removed(&entry);
            if let Some(user) = entry.user() {
                self.unindex(user, &[*key]);
            }
        }
        None
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, key: &StorageKey, record: &Record, now: u64) -> Result<bool, StoreError> {
        let inner = &*self.inner;
        let i = Inner::shard_of(key);
        let entry = Entry::from_record(record)?;
        // Writes drive the sweeping, one bounded step at a time.
        inner.sweep_step(i, now, false);
        inner.make_room(i, now, Room { session: true, bytes: entry.footprint() })?;
        inner.added(&entry);
        let mut shard = inner.lock(i);
        // One lookup: an expired record or retired key under the key is
        // replaced in place (a live one, of either kind, takes the key).
        let replaced = match shard.map.entry(*key) {
            std::collections::hash_map::Entry::Occupied(e) if !e.get().is_expired(now) => {
                inner.removed(&entry);
                return Ok(false);
            }
            std::collections::hash_map::Entry::Occupied(mut e) => {
                match std::mem::replace(e.get_mut(), Slot::Live(entry)) {
                    Slot::Live(old) => {
                        inner.removed(&old);
                        Some(old)
                    }
                    Slot::Retired(_) => None,
                }
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Slot::Live(entry));
                None
            }
        };
        drop(shard);
        if let Some(user) = replaced.as_ref().and_then(Entry::user) {
            inner.unindex(user, &[*key]);
        }
        if let Some(user) = record.meta.user() {
            inner.users(user).entry(user.to_string()).or_default().push(*key);
        }
        Ok(true)
    }

    async fn lookup(&self, key: &StorageKey, now: u64) -> Result<Option<Stored>, StoreError> {
        Ok(self.inner.lookup(key, now))
    }

    /// Always answers at once, judging expiry by the caller's `now` (through
    /// a [`SessionLayer`](crate::SessionLayer), the layer's clock).
    fn lookup_ready(&self, key: &StorageKey, now: u64) -> Option<Result<Option<Stored>, StoreError>> {
        Some(Ok(self.inner.lookup(key, now)))
    }

    async fn rotate(&self, old: &StorageKey, new: &StorageKey, rotation: &Rotation) -> Result<Rotated, StoreError> {
        let inner = &*self.inner;
        let now = rotation.now;
        // Rotations drive the sweeping too (they leave retired pointers).
        inner.sweep_step(Inner::shard_of(old), now, false);
        // The rotation's data changes grow the successor as an apply would.
        inner.make_room_for_growth(Inner::shard_of(new), now, growth_bound(&rotation.changes))?;
        match rotation.login.as_ref().and_then(|l| Some((l.auth.user.as_str(), l.limit?))) {
            Some((user, limit)) => inner.rotate_limited(old, new, rotation, user, limit),
            None => inner.rotate(old, new, rotation),
        }
    }

    async fn apply(&self, key: &StorageKey, changes: &ChangeSet, now: u64) -> Result<bool, StoreError> {
        let inner = &*self.inner;
        // A write that grows a session needs room as a new session does
        // (made before the shard's lock is taken), or the byte budget would
        // bound only the sessions' first writes.
        inner.make_room_for_growth(Inner::shard_of(key), now, growth_bound(changes))?;
        let mut shard = self.inner.lock(Inner::shard_of(key));
        inner
            .with_live(&mut shard, key, now, |entry| {
                let before = entry.footprint();
                entry.apply(changes)?;
                let after = entry.footprint();
                if after >= before {
                    inner.bytes.fetch_add(after - before, Ordering::Relaxed);
                } else {
                    inner.bytes.fetch_sub(before - after, Ordering::Relaxed);
                }
                Ok(true)
            })
            .unwrap_or(Ok(false))
    }

    async fn touch(&self, key: &StorageKey, now: u64, expires_at: u64) -> Result<bool, StoreError> {
        let mut shard = self.inner.lock(Inner::shard_of(key));
        Ok(self
            .inner
            .with_live(&mut shard, key, now, |entry| {
                entry.last_seen = entry.last_seen.max(now);
                entry.expires_at = expires_at.min(entry.absolute_deadline);
            })
            .is_some())
    }

    async fn delete(&self, key: &StorageKey, now: u64) -> Result<(), StoreError> {
        let mut key = *key;
        let mut pointer: Option<StorageKey> = None;
        for _ in 0..MAX_CHAIN {
            let mut shard = self.inner.lock(Inner::shard_of(&key));
            // A successor is ended only while its client has not used it
            // (it still names the pointer as its predecessor).
            let (removed, retired) = match shard.map.get(&key) {
                Some(Slot::Live(e)) if pointer.is_none() || e.predecessor() == pointer => {
                    (shard.map.remove(&key).and_then(|s| if let Slot::Live(e) = s { Some(e) } else { None }), None)
                }
                Some(Slot::Retired(r)) => {
                    let r = *r;
                    shard.map.remove(&key);
                    (None, Some(r).filter(|r| !r.is_expired(now)))
                }
                _ => (None, None),
            };
            drop(shard);
            if let Some(entry) = removed {
                self.inner.removed(&entry);
                if let Some(user) = entry.user() {
                    self.inner.unindex(user, &[key]);
                }
            }
            match retired {
                Some(r) => {
                    pointer = Some(key);
                    key = r.successor;
                }
                None => break,
            }
        }
        Ok(())
    }
}

#[async_trait]
impl UserIndex for MemoryStore {
    async fn list_user(&self, user: &str, now: u64, limit: usize) -> Result<Vec<Metadata>, StoreError> {
        let mut out = self.inner.live_sessions(user, now);
        crate::store::most_recent(&mut out, limit);
        Ok(out)
    }

    /// A session a cutoff ended is not the user's any more: not found.
    async fn delete_by_handle(&self, user: &str, handle: &SessionHandle, now: u64) -> Result<bool, StoreError> {
        let cutoff = self.inner.cuts.cutoff(Some(user));
        Ok(self.inner.scan_user(user, now, |meta| meta.handle == *handle && !cutoff.ends(&meta)) > 0)
    }

    /// Counts the live sessions it ended (not those a cutoff ended before).
    async fn delete_user(&self, user: &str, keep: Option<&SessionHandle>, now: u64) -> Result<usize, StoreError> {
        let cutoff = self.inner.cuts.cutoff(Some(user));
        Ok(self.inner.scan_user(user, now, |meta| Some(&meta.handle) != keep && !cutoff.ends(&meta)))
    }
}

#[async_trait]
impl Cutoffs for MemoryStore {
    async fn cut(&self, scope: Scope<'_>, not_before: u64, keep_until: u64, now: u64) -> Result<(), StoreError> {
        self.inner.cuts.cut(scope, not_before, keep_until, now);
        Ok(())
    }

    async fn cutoff(&self, user: Option<&str>, _now: u64) -> Result<Cutoff, StoreError> {
        Ok(self.inner.cuts.cutoff(user))
    }
}

#[async_trait]
impl Leases for MemoryStore {
    async fn try_lock(&self, key: &StorageKey, token: &str, ttl_ms: u64, now: u64) -> Result<bool, StoreError> {
        let mut shard = self.inner.lock(Inner::shard_of(key));
        if let Some((holder, until)) = shard.locks.get(key) {
            if *until > now && **holder != *token {
                return Ok(false);
            }
        }
        shard.locks.insert(*key, (token.into(), now.saturating_add(ttl_ms)));
        Ok(true)
    }

    async fn unlock(&self, key: &StorageKey, token: &str, _now: u64) -> Result<(), StoreError> {
        let mut shard = self.inner.lock(Inner::shard_of(key));
        if shard.locks.get(key).is_some_and(|(holder, _)| **holder == *token) {
            shard.locks.remove(key);
        }
        Ok(())
    }
}

/// Builder of a [`MemoryStore`].
///
/// ```
/// use sessionware::store::MemoryStore;
/// let store = MemoryStore::builder().max_sessions(100).build();
/// assert!(store.is_empty());
/// ```
#[derive(Debug)]
#[must_use]
pub struct MemoryStoreBuilder {
    max_sessions: usize,
    max_bytes: usize,
    when_full: WhenFull,
    sweep_interval_ms: u64,
}

impl MemoryStoreBuilder {
    /// The most sessions held at once (default 1,000,000).
    ///
    /// ```
    /// # use sessionware::store::MemoryStore;
    /// let _ = MemoryStore::builder().max_sessions(1).build();
    /// ```
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max;
        self
    }

    /// The most bytes the live sessions take, approximately (default 1 GiB):
    /// their data, their metadata's strings and 128 bytes each for the rest.
    /// A write that may grow a session needs room as a new session does
    /// (concurrent writes may pass the budget by their own sizes).
    ///
    /// ```
    /// # use sessionware::store::MemoryStore;
    /// let _ = MemoryStore::builder().max_bytes(256 << 20).build();
    /// ```
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max;
        self
    }

    /// What a full store does with a new session (default
    /// [`WhenFull::EvictAnonymous`]).
    ///
    /// ```
    /// # use sessionware::store::{MemoryStore, WhenFull};
    /// let _ = MemoryStore::builder().when_full(WhenFull::Refuse).build();
    /// ```
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// How often, at most, a shard sweeps out expired records when written to
    /// (default one minute).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::store::MemoryStore;
    /// let _ = MemoryStore::builder().sweep_interval(Duration::from_secs(5)).build();
    /// ```
    pub fn sweep_interval(mut self, every: std::time::Duration) -> Self {
        self.sweep_interval_ms = crate::clock::ms(every);
        self
    }

    /// Builds the store.
    ///
    /// ```
    /// # use sessionware::store::MemoryStore;
    /// assert!(MemoryStore::builder().build().is_empty());
    /// ```
    pub fn build(self) -> MemoryStore {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        let users = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        MemoryStore {
            inner: Arc::new(Inner {
                shards,
                users,
                count: AtomicUsize::new(0),
                bytes: AtomicUsize::new(0),
                max_sessions: self.max_sessions,
                max_bytes: self.max_bytes,
                when_full: self.when_full,
                evict_cursor: AtomicUsize::new(0),
                sweep_interval_ms: self.sweep_interval_ms,
                cuts: cutoffs::Cuts::default(),
                logins: (0..LOGIN_LOCKS).map(|_| Mutex::new(())).collect(),
                #[cfg(test)]
                login_lock_calls: AtomicUsize::new(0),
            }),
        }
    }
}

#[cfg(test)]
mod slot_size {
    /// A retired key costs a slot no bigger than a session's (the enum's
    /// tag lives in the entry's niche), so sessions cost what they did.
    #[test]
    fn a_pointer_fits_in_a_session_slot() {
        assert_eq!(std::mem::size_of::<super::Slot>(), std::mem::size_of::<super::Entry>());
    }
}

#[cfg(test)]
mod session_limit {
    use super::*;
    use crate::{record::Auth, rotation::Login, store::LimitPolicy};

    /// A login under a limit counts the user's sessions only once it holds
    /// the user's login lock: held by the test (a first login in its
    /// window), the second login waits at the lock while the first one's
    /// session appears, and counts it.
    #[test]
    fn a_limited_login_counts_only_once_it_holds_the_users_login_lock() {
        let store = MemoryStore::default();
        let now = 1_000_000;
        let key = |b: u8| StorageKey::from_bytes([b; 32]);
        let anonymous = Record::new(Metadata::new(now, 60_000, 600_000));
        assert!(futures::executor::block_on(store.create(&key(1), &anonymous, now)).unwrap());
        let mut rotation = Rotation::new(now, ChangeSet::new(now, now + 60_000));
        let mut login = Login::new(Auth::new("alice", now), now + 600_000);
        login.limit = Some(SessionLimit::new(std::num::NonZeroUsize::MIN, LimitPolicy::RefuseNew));
        rotation.login = Some(login);

        let first = store.inner.login_lock("alice");
        let second = {
            let store = store.clone();
            std::thread::spawn(move || futures::executor::block_on(store.rotate(&key(1), &key(2), &rotation)))
        };
        while store.inner.login_lock_calls.load(Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
        // The first login's session, committed while the second waits.
        let mut signed_in = Record::new(Metadata::new(now, 60_000, 600_000));
        signed_in.meta.auth = Some(Auth::new("alice", now));
        assert!(futures::executor::block_on(store.create(&key(3), &signed_in, now)).unwrap());
        drop(first);
        assert_eq!(second.join().unwrap().unwrap(), Rotated::Refused, "the second login counts the first one's");
    }
}

#[cfg(test)]
mod accounting {
    //! The counters (`len`, `bytes`) against what the shards really hold,
    //! after random sequences of every write path.
    use super::*;
    use crate::{
        record::{Auth, Metadata},
        rotation::Login,
        store::LimitPolicy,
    };

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// The live sessions and their bytes, recounted from the shards.
    fn recount(store: &MemoryStore) -> (usize, usize) {
        let mut n = 0;
        let mut bytes = 0;
        for i in 0..SHARDS {
            let shard = store.inner.lock(i);
            for slot in shard.map.values() {
                if let Slot::Live(e) = slot {
                    n += 1;
                    bytes += e.footprint();
                }
            }
        }
        (n, bytes)
    }

    /// Every live signed-in session is reachable from its user's index
    /// (directly or through live retired pointers): what revocations scan.
    fn assert_indexed(store: &MemoryStore, now: u64, seed: u64, step: usize, op: u64) {
        let mut live = Vec::new();
        for i in 0..SHARDS {
            let shard = store.inner.lock(i);
            for (k, slot) in &shard.map {
                if let Slot::Live(e) = slot {
                    if !e.is_expired(now) {
                        if let Some(u) = e.user() {
                            live.push((*k, u.to_string()));
                        }
                    }
                }
            }
        }
        for (k, user) in live {
            let mut reached = false;
            for listed in store.inner.user_keys(&user) {
                let mut at = listed;
                for _ in 0..MAX_CHAIN {
                    if at == k {
                        reached = true;
                        break;
                    }
                    let shard = store.inner.lock(Inner::shard_of(&at));
                    match shard.map.get(&at) {
                        Some(Slot::Retired(r)) if !r.is_expired(now) => at = r.successor,
                        _ => break,
                    }
                }
            }
            assert!(reached, "seed {seed}, step {step} (op {op}): a live session of {user} is not in the index");
        }
    }

    fn key(rng: &mut Rng) -> StorageKey {
        // Few keys over few shards: creates and rotations land on expired,
        // retired and live slots alike.
        let mut b = [0u8; 32];
        b[0] = rng.below(3) as u8;
        b[8] = rng.below(12) as u8;
        StorageKey::from_bytes(b)
    }

    fn value(rng: &mut Rng) -> Box<serde_json::value::RawValue> {
        serde_json::value::to_raw_value(&"x".repeat(rng.below(300) as usize)).unwrap()
    }

    async fn run(seed: u64, store: &MemoryStore) {
        let mut rng = Rng(seed | 1);
        let mut now = 1_000_000u64;
        for step in 0..400 {
            now += rng.below(20_000);
            let k = key(&mut rng);
            let op = rng.below(9);
            match op {
                0 | 1 => {
                    let mut r = Record::new(Metadata::new(now, 1 + rng.below(60_000), 1 + rng.below(120_000)));
                    if rng.below(2) == 0 {
                        r.meta.auth = Some(Auth::new(format!("u{}", rng.below(3)), now));
                    }
                    if rng.below(2) == 0 {
                        r.meta.user_agent = Some("agent".repeat(rng.below(5) as usize).into());
                    }
                    r.data.insert("a", &value(&mut rng));
                    let _ = store.create(&k, &r, now).await;
                }
                2 => {
                    let mut c = ChangeSet::new(now, now + rng.below(60_000));
                    if rng.below(4) == 0 {
                        c.clear();
                    }
                    for _ in 0..rng.below(3) {
                        let name = format!("k{}", rng.below(4));
                        if rng.below(3) == 0 {
                            c.remove(&name);
                        } else {
                            c.set(&name, value(&mut rng));
                        }
                    }
                    if rng.below(3) == 0 {
                        c.persistent = Some(rng.below(2) == 0);
                    }
                    c.max_data_bytes = if rng.below(2) == 0 { 0 } else { rng.below(900) as usize };
                    let _ = store.apply(&k, &c, now).await;
                }
                3 => {
                    let _ = store.touch(&k, now, now + rng.below(60_000)).await;
                }
                4 | 5 => {
                    let new = key(&mut rng);
                    let mut c = ChangeSet::new(now, now + rng.below(60_000));
                    if rng.below(2) == 0 {
                        c.set("r", value(&mut rng));
                    }
                    c.max_data_bytes = if rng.below(2) == 0 { 0 } else { rng.below(900) as usize };
                    let mut rot = Rotation::new(now, c);
                    rot.overlap_until = now + rng.below(10_000);
                    rot.retired_until = now + rng.below(30_000);
                    if rng.below(2) == 0 {
                        let mut login = Login::new(Auth::new(format!("u{}", rng.below(3)), now), now + 120_000);
                        if rng.below(2) == 0 {
                            let policy =
                                if rng.below(2) == 0 { LimitPolicy::EvictLeastRecent } else { LimitPolicy::RefuseNew };
                            let max = std::num::NonZeroUsize::new(1 + rng.below(2) as usize).unwrap();
                            login.limit = Some(SessionLimit::new(max, policy));
                        }
                        rot.login = Some(login);
                    }
                    if rng.below(3) == 0 {
                        rot.retain = Some(vec!["a".into()]);
                    }
                    let _ = store.rotate(&k, &new, &rot).await;
                }
                6 => {
                    let _ = store.delete(&k, now).await;
                }
                7 => {
                    let user = format!("u{}", rng.below(3));
                    if rng.below(2) == 0 {
                        let _ = store.delete_user(&user, None, now).await;
                    } else {
                        let _ = store.list_user(&user, now, 100).await;
                    }
                }
                _ => {
                    if rng.below(2) == 0 {
                        store.sweep_expired(now);
                    } else {
                        let _ = store.lookup(&k, now).await;
                    }
                }
            }
            assert_indexed(store, now, seed, step, op);
            let (n, bytes) = recount(store);
            assert_eq!(
                (store.len(), store.bytes()),
                (n, bytes),
                "seed {seed}, step {step} (op {op}): counters (len, bytes) drifted from the shards"
            );
        }
    }

    #[tokio::test]
    async fn the_counters_match_the_shards_on_every_path() {
        for seed in 1..300u64 {
            run(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), &MemoryStore::default()).await;
        }
    }

    #[tokio::test]
    async fn the_counters_match_the_shards_at_the_caps() {
        for seed in 1..300u64 {
            let store = MemoryStore::builder().max_sessions(6).max_bytes(2_000).build();
            run(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), &store).await;
        }
    }
}

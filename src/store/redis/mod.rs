//! [`RedisStore`]: sessions in Redis (or Redis Cluster), one string per session.

mod codec;
mod connection;
mod cutoffs;
mod legacy;
mod limit;
mod read;
mod rotation;
mod scripts;
mod slots;
mod user_index;

use std::{fmt, sync::Arc};

use ::redis::{aio::ConnectionManager, cluster_async::ClusterConnection, Value};
use async_trait::async_trait;

use self::{
    codec::{codec, encode, time, ttl, user_digest, MAX_AT, TIME},
    connection::{Conn, Secrets},
    scripts::{evalsha, run, Scripts},
    slots::key_slot,
    user_index::Listed,
};
use crate::{
    store::{
        most_recent, ChangeSet, Cutoff, Cutoffs, Leases, Metadata, Record, Rotated, Rotation, Scope, SessionStore,
        StorageKey, StoreError, Stored, UserIndex,
    },
    SessionHandle,
};

const DEFAULT_PREFIX: &str = "sessionware:";
pub(super) const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// A [`SessionStore`] on Redis or Redis Cluster, through `redis`'s
/// [`ConnectionManager`] (one multiplexed connection that reconnects by
/// itself) or its cluster connection.
///
/// One command per session operation (two for a rotation); see the
/// [sections below](RedisStore#layout) for the key layout, the scripts, the
/// rotation and the cluster slot rules. Expiry is
/// enforced twice: by Redis (the key's TTL runs out at `expires_at`, counted
/// from the request's time) and on every call against the request's time.
///
/// Errors are [`StoreError::Backend`] with the driver's message (any password
/// of the URLs is scrubbed from it) and [`StoreError::Codec`] for a record that
/// cannot be decoded or is larger than the cap (1 MiB by default).
///
/// ```no_run
/// use sessionware::{Keys, SessionLayer, store::RedisStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?.with_prefix("myapp:")?;
/// let layer = SessionLayer::new(store, Keys::generate()?);
/// # Ok(()) }
/// ```
///
/// Needs **Redis 7.0 or newer** (the version the scripts are tested on):
/// [`connect`](RedisStore::connect) and
/// [`connect_cluster`](RedisStore::connect_cluster) read the version with
/// `INFO server` and fail with [`StoreError::Backend`] on an older server (a
/// server that refuses `INFO` is let through with a warning).
///
/// # Layout
///
/// Each session is one Redis string under `{prefix}{<hex digest>}` (the
/// default prefix is `sessionware:`). The braces are a Redis Cluster hash
/// tag: every key of one session (the record and its lease) reuses the tag
/// and hashes to the same slot. The key holds the SHA-256 digest of the
/// session ID, never the ID.
///
/// The value is a fixed header, then length-prefixed parts (layout 2; the
/// byte offsets are in `codec.rs`, and the scripts read them there):
///
/// | part | content |
/// |---|---|
/// | tag | `S2`: a session record, layout 2 |
/// | times | `expires_at`, `absolute_deadline`, `last_seen`: milliseconds since the Unix epoch, 20 zero-padded digits each |
/// | `persistent` | `0` or `1` |
/// | identity | `created_at` (20 digits), the handle (22 characters), the sign-in (empty for a visitor: `auth.epoch` and `auth.at_ms`, 20 digits each, the hex SHA-256 of the user, which names its index and cutoff keys, then the user), and JSON of the rest of the metadata (`user_agent`, `ip`, `renewed_at`; empty when none is set) |
/// | predecessor | hex storage key of the key this one was rotated from, until the successor is first used ([`Metadata::predecessor`], cleared by `close_overlap`); empty otherwise |
/// | data | the session values, [`Data::packed`](crate::store::Data::packed): sorted by key, each key and raw JSON value with its length |
///
/// One string makes a read one value in the reply, decoded in one pass
/// ([`Data::from_packed`](crate::store::Data::from_packed) checks every
/// entry), and a creation one `SET … NX PX`. The scripts never parse
/// JSON: they compare the fixed-width times as strings (exact past 2^53,
/// where Lua's numbers are not) and copy values byte for byte, so values
/// come back exactly as written. What a script needs is at a fixed offset:
/// the times, and in the identity `created_at`, the user's digest and
/// `auth.epoch` (what the [cutoffs](RedisStore#cutoffs) compare).
///
/// A key that a rotation retired holds a pointer
/// ([`Retired`](crate::store::Retired)) and nothing else, with its TTL at
/// `until`: `R2`, then `at`, `overlap_until` and `until` (20 digits each)
/// and the successor's hex storage key. The session scripts see no live
/// record there: `apply` and `touch` on a retired key change nothing.
///
/// Untrusted bytes are checked: a value that is not a record or a pointer
/// of this layout (cut short, a length past the end, a bad field), or is
/// larger than the record cap, is a [`StoreError::Codec`] for whatever
/// reads it, and the scripts write nothing over a record whose lengths do
/// not fit.
///
/// # Records written by sessionware 0.1
///
/// Sessionware 0.1 kept each session in a hash (layout 1: `v`, `meta`,
/// the times, `persistent`, `predecessor`, `size` and one `d:<key>` field
/// per value; a retired key a hash of `retired`, `at`, `overlap_until` and
/// `until`). Such keys keep working after the upgrade: a read finds one
/// (`GET` answers `WRONGTYPE`) and reads it with `HGETALL`; a script that
/// finds one changes nothing and says so, and the store rewrites that key
/// in layout 2 (an `HGETALL`, then a script that replaces the hash, TTL
/// kept, only if it still holds exactly the fields read) and runs the
/// script again. The first write to such a session thus costs two more
/// round trips, once. Layout 1 keys are gone after the longest absolute
/// timeout of the sessions written before the upgrade; 0.1 cannot read
/// layout 2, so every instance of an application moves to this release
/// at once.
///
/// # Data cap
///
/// `apply` refuses a change set whose merged data would pass
/// [`ChangeSet::max_data_bytes`] ([`StoreError::TooLarge`], nothing
/// changed), inside its script: the merge walks the stored entries up to
/// the last changed key, counting their sizes, and counts the rest
/// only when its bytes could pass the cap (an upper bound otherwise).
///
/// # Rotation
///
/// [`SessionStore::rotate`] is one script on the old and the new session
/// keys, atomic: it acts only if the old record is live at the request's
/// time (else it answers gone, or the pointer of a live retired key) and
/// nothing live is under the new key; it builds the successor from the old
/// record *as stored now* with the semantics of [`Rotation::successor`]
/// (retained and cleared keys, the change set, a login's user and
/// deadline, the times, the predecessor: always the old key, until the
/// successor is first used), refuses it past the data cap, writes
/// it under the new key with its TTL and replaces the old record by the pointer.
/// Values are copied as stored, never re-encoded.
///
/// The script never parses JSON, so the successor's identity (a login's
/// user and client, `renewed_at`) is built in Rust from the record that
/// `rotate` reads first (one `GET`, which also answers for a key that is
/// not live without running the script); the script compares the stored
/// identity with the one read and, if the key holds another record by
/// then (deleted and created again), does nothing and `rotate` starts over.
///
/// The user index follows the rule below: the successor is indexed under
/// its user (the login's, or the old record's) before the script, and again
/// after it; the old key's member is removed after it. Those after-steps are
/// best effort (a failure is logged): the index stays a superset of the
/// live sessions either way.
///
/// # Delete and revocation
///
/// [`SessionStore::delete`] is one script: it deletes the key and, if that
/// held a retired pointer that is still live (Redis' TTL expires it at
/// `until`, and the script also compares `until` with the request's time,
/// which may run ahead of Redis' clock), follows it. A pointer found there is
/// deleted and followed in turn; the record at the end of the chain is
/// deleted only if its predecessor is the hex of the last pointer
/// followed, i.e. only a successor that was never used: once its client
/// used the new ID (`close_overlap` clears it), or once the pointer
/// expired, a logout on the old ID ends nothing but the pointer. At most 16
/// keys, all read before any is deleted.
///
/// [`UserIndex::delete_user`] and [`UserIndex::delete_by_handle`]
/// list the user's sessions, choose some, and end each with the revocation
/// script, which follows a key that a rotation retired since the listing
/// (a live pointer, at most 16 keys) to the live session it became and
/// deletes it *whatever its predecessor*: a revocation racing a renewal
/// ends the renewed session. The script compares the user's digest in the
/// record's identity with the revoked user's and deletes only a session of
/// that user: a login rotation to another user takes the session out of
/// reach. `delete_user` counts the live sessions it ended, not the keys.
/// The index members of both the listed keys and the successors reached
/// are removed afterwards (in the same script on a single server).
///
/// A listing follows retired members too (see the index below), so a
/// session is listed once, under its live key, whether the index holds its
/// old member, its new one, or both.
///
/// # Per-user index and leases
///
/// - `{prefix}user:{<hex SHA-256 of the user>}` is a sorted set of the
///   sessions (hex digests) of one user, scored by their absolute deadline
///   (no session outlives it), with a TTL at the latest deadline. `create`
///   and `rotate` add an authenticated session to it *before* writing the
///   session, so the index is always a superset of the user's live sessions;
///   listing loads the candidates and drops stale members (deleted, expired,
///   retired), so `delete` never touches the index. A retired member is
///   first followed to the session it became (which is listed once, and
///   indexed again if its own member was missing: a listing that ran in
///   the middle of the rotation may have dropped it); two live records with
///   one handle (one session read before and after a rotation) are listed
///   once, as the later one.
/// - `{prefix}{<hex digest>}:lock` holds the token of a session's exclusive
///   lease (`SET ... PX`); it shares the session's hash tag, so the session
///   and its lease live in one slot.
///
/// # Cutoffs
///
/// [`Cutoffs`] keeps one string per cutoff, with a TTL at its `keep_until`
/// (a cut only moves the value forward and only lengthens the TTL):
/// `{prefix}{cutoffs}:all` (the global not-before time) and
/// `{prefix}{cutoffs}:user:<hex SHA-256 of the user>` (the user's
/// credential epoch; user names never appear in key names). On a single
/// server, `lookup` is one script that reads the record and both cutoffs
/// (the user's through the digest in the record's identity), so an ended
/// session is never returned; a key of layout 1 has its cutoffs read by one
/// more `MGET`. On a cluster, where the cutoffs live in the slot of the tag
/// `{cutoffs}`, `lookup` reads the record, then the cutoffs of a live
/// session with one `MGET`: two round trips. `list_user` reads the user's
/// cutoffs once after the records.
///
/// # Redis Cluster
///
/// [`RedisStore::connect_cluster`] talks to a cluster. The rules that make
/// the layout work there:
///
/// - **One slot per session.** The record, and the lease, hash on the tag
///   `{<hex digest>}`: every session operation (`load`, `create`, `apply`,
///   `touch`, `delete`, `try_lock`, `unlock`) is one command or one script on
///   one key, so the cluster routes it to the slot's primary unchanged.
/// - **A rotation stays in one slot.** The rotation script needs the old and
///   the new key on one node, so on a cluster
///   [`accepts_successor`](SessionStore::accepts_successor) accepts a new key
///   only in the old key's slot (CRC16 of the tags, as Redis computes key
///   slots) and the layer draws new IDs until one is accepted (about 16,384
///   draws on average, a few milliseconds of CPU per rotation). `rotate`
///   refuses keys in two slots with [`StoreError::Backend`], before changing
///   anything. A session thus keeps its slot across rotations, and `delete`'s
///   chain of retired keys stays in one slot: one script.
/// - **Scripts touch one slot.** The session scripts get the session key
///   (the rotation script: both co-located keys; the delete and
///   revocation scripts: the key and the successors it points to, which a
///   rotation kept in its slot), the lease scripts the lease, the index
///   script the user index. On a cluster the revocation script runs once
///   per session; on a single server, where slots do not matter, once for
///   all of them, with the user index as one more key.
/// - **The user index is in another slot.** Its tag is the user's digest,
///   so it almost never shares a slot with the user's sessions. Nothing
///   updates both at once; the guarantee (the index is a superset of the
///   live sessions) comes from the order of single-slot commands instead:
///   `create` and `rotate` index, write the session, then index again;
///   revocation deletes the sessions, then their members; a listing that
///   finds a member without a session removes it, then checks the session
///   again and re-indexes it if a `create` wrote it meanwhile; a listing
///   that reaches a session only through a retired member indexes it before
///   removing that member. A crash
///   between two steps leaves at worst a stale member, which the next
///   listing drops.
/// - **No cross-slot pipelines.** Where a single server gets one pipeline
///   or one script (the `GET`s of a listing, the revocation script), a
///   cluster gets one command or script per key, all in flight at once, so
///   each batch still costs about one round trip of latency.
///
/// # Round trips
///
/// Every session operation but `rotate` is one command: `load` (and
/// `lookup`) is one `EVALSHA` of the lookup script on a single server (a
/// `GET` of the record and of its cutoffs inside; a `GET`, then an `MGET`
/// of the cutoffs for a live record, on a cluster); `create` (of an
/// anonymous session) one `SET … NX PX` (and the creation script when the
/// key is taken, by a record that expired by the request's clock but not
/// yet by Redis'); `apply`, `touch` and `delete` are one `EVALSHA` each (a
/// script loaded on first use). The scripts check the record's own
/// `expires_at` against the request's time (`now`, from the layer's
/// clock), act only if the record exists (`apply` and `touch` never
/// resurrect a session), and set the key's TTL to `expires_at - now` (`SET
/// … PX`, or `PEXPIRE` after `touch`'s `SETRANGE`): the server's clock only
/// counts the TTL down, and never decides on its own when a session ends.
/// `try_lock` and `unlock` are one `EVALSHA` each. The creation of an
/// authenticated session adds two `EVALSHA`s (the index, before and after).
///
/// Inside Redis, `apply` runs a `GET` and a `SET` (its merge walks the
/// stored data in Lua), `touch` a `GETRANGE`, a `SETRANGE` and a
/// `PEXPIRE`, whatever the data's size.
///
/// `rotate` is a `GET` (which alone answers for a key that is gone or
/// retired), then the rotation's `EVALSHA`: two round trips for an anonymous
/// session. When the successor has a user, the index's `EVALSHA` comes
/// before and again after, together with the `ZREM` of the old member when
/// the old record had a user: four round trips.
///
/// `delete` is one `EVALSHA` whatever the chain it follows (one `GET` per
/// key and one `DEL` inside the script).
///
/// `list_user` is one `ZRANGE` plus one pipelined batch of `GET`s (plus
/// a `ZREM`, an `EXISTS` batch and maybe an `EVALSHA` when stale members are
/// dropped). A retired member whose successor is not listed costs one more
/// batch of `GET`s per step along its chain, and the `EVALSHA` that
/// indexes the successor: only when a listing races a rotation (or a
/// member was lost), since a rotation indexes its successor and unindexes
/// the old key itself. `delete_by_handle` and `delete_user` add one
/// `EVALSHA` of the revocation script, which deletes the sessions and then
/// removes their members: three round trips in all on a single server. On
/// a cluster they add one `EVALSHA` per session (all in flight at once)
/// and then the `ZREM`: four.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: Arc<str>,
    max_record_bytes: usize,
    scripts: Arc<Scripts>,
    /// Passwords of the URLs, scrubbed from error messages.
    secrets: Secrets,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("cluster", &self.is_cluster())
            .field("prefix", &self.prefix)
            .field("max_record_bytes", &self.max_record_bytes)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The default key prefix.
    ///
    /// ```
    /// assert!(sessionware::store::RedisStore::DEFAULT_PREFIX.ends_with(':'));
    /// ```
    pub const DEFAULT_PREFIX: &'static str = DEFAULT_PREFIX;

    /// The default cap on the size of one record, in bytes (1 MiB).
    ///
    /// ```
    /// assert_eq!(sessionware::store::RedisStore::DEFAULT_MAX_RECORD_BYTES, 1 << 20);
    /// ```
    pub const DEFAULT_MAX_RECORD_BYTES: usize = DEFAULT_MAX_RECORD_BYTES;

    /// Connects to the Redis server at `url` (`redis://[user:password@]host[:port][/db]`,
    /// or `rediss://` when the `redis` crate's TLS features are enabled).
    ///
    /// Each connection attempt times out after 5 seconds, and a failed one is
    /// retried 3 times, 1 to 2 seconds apart. Once connected, the manager
    /// reconnects by itself after a failure, on the same schedule: commands
    /// sent meanwhile wait for the reconnection (the layer's
    /// [`store_timeout`](crate::SessionConfigBuilder::store_timeout) bounds
    /// the wait) or, once the retries are spent, fail at once and start the
    /// next round. A server that comes back is used again within about two
    /// seconds, without rebuilding the store.
    ///
    /// Fails with [`StoreError::Backend`] ("Redis 7.0 or newer is required")
    /// when the server is older than the scripts need.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let (conn, secrets) = connection::single(url).await?;
        Self::connected(conn, secrets).await
    }

    /// Connects to the Redis Cluster that `nodes` belong to (URLs as for
    /// [`connect`](Self::connect); one reachable node is enough, the others
    /// are discovered). Session operations stay one command each: all keys
    /// of one session share one hash slot; see the
    /// [module documentation](RedisStore#redis-cluster) for what touches several
    /// slots and how.
    ///
    /// Each connection attempt times out after 5 seconds. The connection
    /// follows slot migrations and failovers and reconnects by itself.
    /// Fails with [`StoreError::Backend`] when a primary runs a Redis older
    /// than 7.0.
    ///
    /// ```no_run
    /// use sessionware::{Keys, SessionLayer, store::RedisStore};
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::connect_cluster(&[
    ///     "redis://10.0.0.1:6379",
    ///     "redis://10.0.0.2:6379",
    ///     "redis://10.0.0.3:6379",
    /// ])
    /// .await?
    /// .with_prefix("myapp:")?;
    /// let layer = SessionLayer::new(store, Keys::generate()?);
    /// # Ok(()) }
    /// ```
    pub async fn connect_cluster(nodes: &[&str]) -> Result<Self, StoreError> {
        let (conn, secrets) = connection::cluster(nodes).await?;
        Self::connected(conn, secrets).await
    }

    /// A store on an existing connection manager (for custom TLS, timeouts or
    /// retry settings).
    ///
    /// Mind the retry settings: with `redis` 0.32's defaults the manager waits
    /// 60 to 120 seconds before its third reconnection attempt, so a server
    /// that was down for more than a second or two stays unused that long
    /// after it is back. [`connect`](Self::connect) sets the factor to 1
    /// (an attempt every 1 to 2 seconds), as below.
    ///
    /// Unlike `connect`, it does not check the server's version (Redis 7.0
    /// or newer is required).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let config = redis::aio::ConnectionManagerConfig::new().set_factor(1).set_max_delay(2_000);
    /// let conn = redis::aio::ConnectionManager::new_with_config(client, config).await?;
    /// let store = sessionware::store::RedisStore::new(conn);
    /// # Ok(()) }
    /// ```
    pub fn new(conn: ConnectionManager) -> Self {
        Self::with_conn(Conn::Single(conn))
    }

    /// A store on an existing Redis Cluster connection (for custom TLS,
    /// timeouts or retry settings). Unlike `connect_cluster`, it does not
    /// check the servers' version (Redis 7.0 or newer is required).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::cluster::ClusterClient::builder(["redis://127.0.0.1:7000"])
    ///     .response_timeout(std::time::Duration::from_secs(1))
    ///     .build()?;
    /// let store = sessionware::store::RedisStore::new_cluster(client.get_async_connection().await?);
    /// # Ok(()) }
    /// ```
    pub fn new_cluster(conn: ClusterConnection) -> Self {
        Self::with_conn(Conn::Cluster(conn))
    }

    /// A store on a new connection, with the passwords to scrub from its
    /// errors, once the server's version is checked.
    async fn connected(conn: Conn, secrets: Secrets) -> Result<Self, StoreError> {
        let mut store = Self::with_conn(conn);
        store.secrets = secrets;
        store.check_version().await?;
        Ok(store)
    }

    fn with_conn(conn: Conn) -> Self {
        Self {
            conn,
            prefix: Arc::from(DEFAULT_PREFIX),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            scripts: Arc::new(Scripts::new()),
            secrets: Arc::from([]),
        }
    }

    /// Whether the store talks to a Redis Cluster.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::RedisStore::connect("redis://127.0.0.1").await?;
    /// assert!(!store.is_cluster());
    /// # Ok(()) }
    /// ```
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// Sets the key prefix (default `sessionware:`), to share one Redis
    /// database between applications. It must not contain `{` or `}` (they
    /// would break the cluster hash tag) and must be at most 128 bytes.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::RedisStore::connect("redis://127.0.0.1").await?.with_prefix("shop:sess:")?;
    /// assert_eq!(store.prefix(), "shop:sess:");
    /// assert!(store.clone().with_prefix("bad{").is_err());
    /// # Ok(()) }
    /// ```
    pub fn with_prefix(mut self, prefix: &str) -> Result<Self, StoreError> {
        if prefix.len() > 128 || prefix.contains(['{', '}']) {
            return Err(StoreError::Backend("invalid redis key prefix: at most 128 bytes, without '{' or '}'".into()));
        }
        self.prefix = Arc::from(prefix);
        Ok(self)
    }

    /// Sets the largest record, in bytes, that `create` writes and `load`
    /// accepts (default 1 MiB); larger ones fail with [`StoreError::Codec`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::RedisStore::connect("redis://127.0.0.1").await?.with_max_record_bytes(64 * 1024);
    /// # Ok(()) }
    /// ```
    pub fn with_max_record_bytes(mut self, max: usize) -> Self {
        self.max_record_bytes = max;
        self
    }

    /// The key prefix.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::RedisStore::connect("redis://127.0.0.1").await?;
    /// assert_eq!(store.prefix(), "sessionware:");
    /// # Ok(()) }
    /// ```
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of a session: `{prefix}{<hex digest>}`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::RedisStore::connect("redis://127.0.0.1").await?;
    /// let key = sessionware::store::StorageKey::from_bytes([0xab; 32]);
    /// assert_eq!(store.redis_key(&key), format!("sessionware:{{{}}}", "ab".repeat(32)));
    /// # Ok(()) }
    /// ```
    pub fn redis_key(&self, key: &StorageKey) -> String {
        let hex = key.to_hex();
        let mut out = String::with_capacity(self.prefix.len() + hex.len() + 2);
        out.push_str(&self.prefix);
        out.push('{');
        out.push_str(&hex);
        out.push('}');
        out
    }

    /// The key of `user`'s session index: `{prefix}user:{<hex SHA-256 of the user>}`
    /// (user names never appear in key names).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::store::StoreError> {
    /// let store = sessionware::store::RedisStore::connect("redis://127.0.0.1").await?;
    /// assert!(store.user_index_key("alice").starts_with("sessionware:user:{"));
    /// # Ok(()) }
    /// ```
    pub fn user_index_key(&self, user: &str) -> String {
        format!("{}user:{{{}}}", self.prefix, user_digest(user))
    }

    fn lock_key(&self, key: &StorageKey) -> String {
        let mut k = self.redis_key(key);
        k.push_str(":lock");
        k
    }

    /// The session key of an index member (a storage key in hex).
    fn member_key(&self, member: &str) -> String {
        format!("{}{{{member}}}", self.prefix)
    }
}

/// The keys a script reply asks to migrate: `rkey` when the script found it
/// in layout 1.
fn legacy(found: bool, rkey: &str) -> Vec<String> {
    if found {
        vec![rkey.to_string()]
    } else {
        Vec::new()
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    /// One `SET … NX PX` (when the key is taken, by a record that is
    /// expired at `now` say, the creation script decides instead); an
    /// authenticated session is indexed before and after it.
    async fn create(&self, key: &StorageKey, record: &Record, now: u64) -> Result<bool, StoreError> {
        let value = encode(record)?;
        if value.len() > self.max_record_bytes {
            return Err(codec(format_args!("larger than {} bytes", self.max_record_bytes)));
        }
        let user = record.meta.user();
        let entry = [(record.meta.absolute_deadline, key.to_hex())];
        if let Some(user) = user {
            // Indexed first: the index never misses a live session.
            self.index(user, &entry, now).await?;
        }
        let rkey = self.redis_key(key);
        let ttl = ttl(record.meta.expires_at.min(record.meta.absolute_deadline), now);
        let set: Value = ::redis::cmd("SET")
            .arg(&rkey)
            .arg(&value)
            .arg("NX")
            .arg("PX")
            .arg(ttl)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(&e))?;
        let created = match set {
            Value::Nil => {
                let mut cmd = evalsha(&self.scripts.create, &[&rkey]);
                cmd.arg(&time(now)[..]).arg(&value).arg(ttl);
                let created: i64 = self.run_migrating(&self.scripts.create, &cmd, |r| legacy(*r == -2, &rkey)).await?;
                created == 1
            }
            Value::Okay => true,
            _ => return Err(codec("unexpected SET reply")),
        };
        if let (Some(user), true) = (user, created) {
            // ...and again once written: a listing that ran between the two
            // steps may have dropped the member as stale (see `user_sessions`).
            self.index(user, &entry, now).await?;
        }
        Ok(created)
    }

    /// One `EVALSHA` of the lookup script on a single server (see
    /// [Cutoffs](RedisStore#cutoffs)).
    async fn lookup(&self, key: &StorageKey, now: u64) -> Result<Option<Stored>, StoreError> {
        Ok(self.lookup_cut(key).await?.filter(|stored| match stored {
            Stored::Live(r) => !r.is_expired(now),
            Stored::Retired(r) => !r.is_expired(now),
        }))
    }

    /// One `GET` of the old record; when it is live, one `EVALSHA` of the
    /// rotation script on both keys, with the user index updated around it
    /// (see the [module documentation](RedisStore#rotation)).
    async fn rotate(&self, old: &StorageKey, new: &StorageKey, rotation: &Rotation) -> Result<Rotated, StoreError> {
        if !self.accepts_successor(old, new) {
            return Err(StoreError::Backend(
                "rotation needs co-located keys on Redis Cluster (one hash slot): draw the new ID until \
                 accepts_successor(old, new) is true"
                    .into(),
            ));
        }
        match rotation.login.as_ref().and_then(|l| l.limit.as_ref().map(|limit| (l.auth.user.as_str(), limit))) {
            Some((user, limit)) => self.rotate_limited(old, new, rotation, user, limit).await,
            None => self.rotate_record(old, new, rotation).await,
        }
    }

    /// One `EVALSHA` of the apply script.
    async fn apply(&self, key: &StorageKey, changes: &ChangeSet, now: u64) -> Result<bool, StoreError> {
        let rkey = self.redis_key(key);
        let byte = |b: bool| if b { b'1' } else { b'0' };
        let mut fields = [0u8; 3 * TIME + 3];
        fields[..TIME].copy_from_slice(&time(now));
        fields[TIME..2 * TIME].copy_from_slice(&time(changes.last_seen));
        fields[2 * TIME..3 * TIME].copy_from_slice(&time(changes.expires_at));
        fields[3 * TIME] = changes.persistent.map_or(b'-', byte);
        fields[3 * TIME + 1] = byte(changes.clear);
        fields[3 * TIME + 2] = byte(changes.close_overlap);
        let mut cmd = evalsha(&self.scripts.apply, &[&rkey]);
        cmd.arg(&fields[..]).arg(ttl(changes.expires_at, now)).arg(changes.max_data_bytes);
        for (k, v) in codec::sorted(&changes.changes) {
            cmd.arg(k).arg(v);
        }
        let applied: i64 = self.run_migrating(&self.scripts.apply, &cmd, |r| legacy(*r == -2, &rkey)).await?;
        match applied {
            1 => Ok(true),
            0 => Ok(false),
            -1 => Err(StoreError::TooLarge),
            _ => Err(codec("malformed record")),
        }
    }

    /// One `EVALSHA` of the touch script.
    async fn touch(&self, key: &StorageKey, now: u64, expires_at: u64) -> Result<bool, StoreError> {
        let rkey = self.redis_key(key);
        let mut cmd = evalsha(&self.scripts.touch, &[&rkey]);
        cmd.arg(&time(now)[..]).arg(&time(now)[..]).arg(&time(expires_at)[..]).arg(ttl(expires_at, now));
        let touched: i64 = self.run_migrating(&self.scripts.touch, &cmd, |r| legacy(*r == -2, &rkey)).await?;
        Ok(touched == 1)
    }

    /// One `EVALSHA`: the key and, along live retired pointers, its
    /// successor while unused (see the [module documentation](RedisStore#delete-and-revocation)).
    async fn delete(&self, key: &StorageKey, now: u64) -> Result<(), StoreError> {
        let rkey = self.redis_key(key);
        let mut cmd = evalsha(&self.scripts.delete, &[&rkey]);
        cmd.arg(&*self.prefix).arg(&time(now)[..]).arg(key.to_hex());
        self.run_migrating(&self.scripts.delete, &cmd, |r: &Value| match r {
            // The hex of a key of layout 1 on the chain.
            Value::BulkString(hex) => std::str::from_utf8(hex).map(|h| vec![self.member_key(h)]).unwrap_or_default(),
            _ => Vec::new(),
        })
        .await
        .map(|_| ())
    }

    /// Always on a single server; on a cluster, when both session keys hash
    /// to one slot (the rotation script needs both keys on one node).
    fn accepts_successor(&self, old: &StorageKey, new: &StorageKey) -> bool {
        match self.conn {
            Conn::Single(_) => true,
            Conn::Cluster(_) => key_slot(old) == key_slot(new),
        }
    }
}

#[async_trait]
impl Cutoffs for RedisStore {
    async fn cut(&self, scope: Scope<'_>, not_before: u64, keep_until: u64, now: u64) -> Result<(), StoreError> {
        self.cut_key(scope, not_before, keep_until, now).await
    }

    async fn cutoff(&self, user: Option<&str>, _now: u64) -> Result<Cutoff, StoreError> {
        self.read_cutoffs(user).await
    }
}

#[async_trait]
impl UserIndex for RedisStore {
    /// The listing, then one `MGET` of the user's cutoffs (read after the
    /// records: a cutoff made meanwhile is seen).
    async fn list_user(&self, user: &str, now: u64, limit: usize) -> Result<Vec<Metadata>, StoreError> {
        let sessions = self.user_sessions(user, now).await?;
        let cutoff = self.read_cutoffs(Some(user)).await?;
        let mut list: Vec<Metadata> =
            sessions.into_iter().map(|l| l.record.meta).filter(|meta| !cutoff.ends(meta)).collect();
        most_recent(&mut list, limit);
        Ok(list)
    }

    /// The listing, then one `EVALSHA` (on a cluster: one per session
    /// key, then a `ZREM`); a session that a rotation moved since the
    /// listing is followed to its new key.
    async fn delete_by_handle(&self, user: &str, handle: &SessionHandle, now: u64) -> Result<bool, StoreError> {
        let listed = self.user_sessions(user, now).await?;
        let cutoff = self.read_cutoffs(Some(user)).await?;
        let chosen: Vec<&Listed> =
            listed.iter().filter(|l| l.record.meta.handle == *handle && !cutoff.ends(&l.record.meta)).collect();
        Ok(self.end_sessions(user, &chosen, now).await? > 0)
    }

    /// As `delete_by_handle`; counts the sessions ended.
    async fn delete_user(&self, user: &str, keep: Option<&SessionHandle>, now: u64) -> Result<usize, StoreError> {
        // Sessions a cutoff ended are not live: neither ended nor counted.
        let listed = self.user_sessions(user, now).await?;
        let cutoff = self.read_cutoffs(Some(user)).await?;
        let chosen: Vec<&Listed> =
            listed.iter().filter(|l| Some(&l.record.meta.handle) != keep && !cutoff.ends(&l.record.meta)).collect();
        self.end_sessions(user, &chosen, now).await
    }
}

/// Leases are keys with a TTL (`SET … NX PX`): the server's clock only
/// measures the lease's length.
#[async_trait]
impl Leases for RedisStore {
    async fn try_lock(&self, key: &StorageKey, token: &str, ttl_ms: u64, _now: u64) -> Result<bool, StoreError> {
        self.take_lease(&self.lock_key(key), token, ttl_ms).await
    }

    async fn unlock(&self, key: &StorageKey, token: &str, _now: u64) -> Result<(), StoreError> {
        self.release_lease(&self.lock_key(key), token).await
    }
}

impl RedisStore {
    /// Takes the lease under `key` with `token` for `ttl_ms`, unless another
    /// token holds it: a session's exclusive lease, or a user's login lease.
    pub(super) async fn take_lease(&self, key: &str, token: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let mut cmd = evalsha(&self.scripts.lock, &[key]);
        cmd.arg(token).arg(ttl_ms.clamp(1, MAX_AT));
        let taken: i64 = run(&self.scripts.lock, &cmd, &mut self.conn.clone()).await.map_err(|e| self.err(&e))?;
        Ok(taken == 1)
    }

    /// Releases the lease under `key` if `token` still holds it.
    pub(super) async fn release_lease(&self, key: &str, token: &str) -> Result<(), StoreError> {
        let mut cmd = evalsha(&self.scripts.unlock, &[key]);
        cmd.arg(token);
        run::<i64>(&self.scripts.unlock, &cmd, &mut self.conn.clone()).await.map(|_| ()).map_err(|e| self.err(&e))
    }
}

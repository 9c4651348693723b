//! [`RedisStore`]: sessions in Redis (or Redis Cluster), one hash per session.
//!
//! Needs **Redis 7.0 or newer** (the scripts use `PEXPIRETIME`):
//! [`connect`](RedisStore::connect) and
//! [`connect_cluster`](RedisStore::connect_cluster) read the version with
//! `INFO server` and fail with [`StoreError::Backend`] on an older server (a
//! server that refuses `INFO` is let through with a warning).
//!
//! # Layout
//!
//! Each session is one Redis hash under `{prefix}{<hex digest>}` (the default
//! prefix is `sessionware:`). The braces are a Redis Cluster hash tag: every
//! key of one session (the hash and its lease) reuses the tag and hashes to
//! the same slot. The key holds the SHA-256 digest of the session ID, never
//! the ID.
//!
//! | field | value |
//! |---|---|
//! | `v` | record format ([`RECORD_FORMAT`]) |
//! | `meta` | JSON of the metadata that never changes while the key is live (`created_at`, `handle`, `auth`, …) |
//! | `last_seen`, `expires_at`, `absolute_deadline` | decimal milliseconds since the Unix epoch |
//! | `persistent` | `0` or `1` |
//! | `predecessor` | hex storage key of the key this one was rotated from, until the successor is first used ([`Metadata::predecessor`], cleared by `close_overlap`); absent otherwise |
//! | `size` | the data size ([`Data::size`]: the bytes of every key and raw value), kept by every write for the data cap |
//! | `d:<key>` | the raw JSON of session value `<key>` |
//!
//! A hash makes the per-key merge of [`SessionStore::apply`] natural: the
//! script sets and deletes single fields and never parses a value, so values
//! come back byte for byte (a JSON blob merged with Lua's `cjson` would
//! re-encode numbers and lose precision).
//!
//! A key that a rotation retired holds a different hash, the pointer
//! ([`Retired`]) and nothing else, with its TTL at `until`:
//!
//! | field | value |
//! |---|---|
//! | `retired` | hex storage key of the successor |
//! | `at`, `overlap_until`, `until` | decimal milliseconds since the Unix epoch |
//!
//! It has no `expires_at`, so the session scripts see no live record there:
//! `apply` and `touch` on a retired key change nothing.
//!
//! # Data cap
//!
//! `apply` refuses a change set whose merged data would pass
//! [`ChangeSet::max_data_bytes`] ([`StoreError::TooLarge`], nothing
//! changed), inside its script: the new size is the `size` field moved by
//! the change set's delta (one `HSTRLEN` per changed key), so the check costs
//! nothing per stored key. A record without the field (written before it
//! existed) is counted field by field when a cap needs it; a size that would
//! refuse the change is counted again before refusing, so a wrong field
//! never refuses a write that fits.
//!
//! # Rotation
//!
//! [`SessionStore::rotate`] is one script on the old and the new session
//! keys, atomic: it acts only if the old record is live by the store's
//! clock (else it answers gone, or the pointer of a live retired key) and
//! nothing live is under the new key; it builds the successor from the old
//! hash *as stored now* with the semantics of [`Rotation::successor`]
//! (retained and cleared `d:` fields, the change set, a login's user and
//! deadline, the times, the predecessor: always the old key, until the
//! successor is first used), refuses it past the data cap, writes
//! it under the new key with its TTL and replaces the old hash by the pointer.
//! Fields are copied as stored, never re-encoded.
//!
//! The script never parses JSON, so a login's new `meta` (user, client) is
//! built in Rust from the `meta` that `rotate` reads first (one `HMGET`,
//! which also answers for a key that is not live without running the
//! script); the script compares the stored `meta` with the one read and, if
//! the key holds another record by then (deleted and created again), does
//! nothing and `rotate` starts over.
//!
//! The user index follows the rule below: the successor is indexed under
//! its user (the login's, or the old record's) before the script, and again
//! after it; the old key's member is removed after it. Those after-steps are
//! best effort (a failure is logged): the index stays a superset of the live
//! sessions either way.
//!
//! # Delete and revocation
//!
//! [`SessionStore::delete`] is one script: it deletes the key and, if that
//! held a retired pointer that is still live (Redis' TTL expires it at
//! `until`, and the script also compares `until` with the store's clock,
//! which may run ahead of Redis'), follows it. A pointer found there is
//! deleted and followed in turn; the record at the end of the chain is
//! deleted only if its `predecessor` field is the hex of the last pointer
//! followed, i.e. only a successor that was never used: once its client
//! used the new ID (`close_overlap` clears the field), or once the pointer
//! expired, a logout on the old ID ends nothing but the pointer. At most 16
//! keys.
//!
//! [`SessionStore::delete_user`] and [`SessionStore::delete_by_handle`]
//! list the user's sessions, choose some, and end each with the revocation
//! script, which follows a key that a rotation retired since the listing
//! (a live pointer, at most 16 keys) to the live session it became and
//! deletes it *whatever its predecessor*: a revocation racing a renewal
//! ends the renewed session. The script reads the user from the record's
//! `meta` (with `cjson`) and deletes only a session of the user being
//! revoked: a login rotation to another user takes the session out of
//! reach. `delete_user` counts the live sessions it ended, not the keys.
//! The index members of both the listed keys and the successors reached
//! are removed afterwards (in the same script on a single server).
//!
//! A listing follows retired members too (see the index below), so a
//! session is listed once, under its live key, whether the index holds its
//! old member, its new one, or both.
//!
//! # Per-user index and leases
//!
//! - `{prefix}user:{<hex SHA-256 of the user>}` is a sorted set of the
//!   sessions (hex digests) of one user, scored by their absolute deadline
//!   (no session outlives it), with a TTL at the latest deadline. `create`
//!   and `rotate` add an authenticated session to it *before* writing the
//!   session, so the index is always a superset of the user's live sessions;
//!   listing loads the candidates and drops stale members (deleted, expired,
//!   retired), so `delete` never touches the index. A retired member is
//!   first followed to the session it became (which is listed once, and
//!   indexed again if its own member was missing: a listing that ran in
//!   the middle of the rotation may have dropped it); two live records with
//!   one handle (one session read before and after a rotation) are listed
//!   once, as the later one.
//! - `{prefix}{<hex digest>}:lock` holds the token of a session's exclusive
//!   lease (`SET ... PX`); it shares the session's hash tag, so the session
//!   and its lease live in one slot.
//!
//! # Redis Cluster
//!
//! [`RedisStore::connect_cluster`] talks to a cluster. The rules that make
//! the layout work there:
//!
//! - **One slot per session.** The hash, and the lease, hash on the tag
//!   `{<hex digest>}`: every session operation (`load`, `create`, `apply`,
//!   `touch`, `delete`, `try_lock`, `unlock`) is one command or one script on
//!   one key, so the cluster routes it to the slot's primary unchanged.
//! - **A rotation stays in one slot.** The rotation script needs the old and
//!   the new key on one node, so on a cluster
//!   [`accepts_successor`](SessionStore::accepts_successor) accepts a new key
//!   only in the old key's slot (CRC16 of the tags, as Redis computes key
//!   slots) and the layer draws new IDs until one is accepted (about 16,384
//!   draws on average, a few milliseconds of CPU per rotation). `rotate`
//!   refuses keys in two slots with [`StoreError::Backend`], before changing
//!   anything. A session thus keeps its slot across rotations, and `delete`'s
//!   chain of retired keys stays in one slot: one script.
//! - **Scripts touch one slot.** The session scripts get the session hash
//!   (the rotation script: both co-located hashes; the delete and
//!   revocation scripts: the hash and the successors it points to, which a
//!   rotation kept in its slot), the lease scripts the lease, the index
//!   script the user index. On a cluster the revocation script runs once
//!   per session; on a single server, where slots do not matter, once for
//!   all of them, with the user index as one more key.
//! - **The user index is in another slot.** Its tag is the user's digest,
//!   so it almost never shares a slot with the user's sessions. Nothing
//!   updates both at once; the guarantee (the index is a superset of the
//!   live sessions) comes from the order of single-slot commands instead:
//!   `create` and `rotate` index, write the session, then index again;
//!   revocation deletes the sessions, then their members; a listing that
//!   finds a member without a session removes it, then checks the session
//!   again and re-indexes it if a `create` wrote it meanwhile; a listing
//!   that reaches a session only through a retired member indexes it before
//!   removing that member. A crash
//!   between two steps leaves at worst a stale member, which the next
//!   listing drops.
//! - **No cross-slot pipelines.** Where a single server gets one pipeline
//!   or one script (the `HGETALL`s of a listing, the revocation script), a
//!   cluster gets one command or script per key, all in flight at once, so
//!   each batch still costs about one round trip of latency.
//!
//! # Round trips
//!
//! Every session operation but `rotate` is one command: `load` (and
//! `lookup`) is `HGETALL`; `create` (of an anonymous session), `apply`,
//! `touch` and `delete` are one `EVALSHA` each (a script loaded on first use,
//! see [`redis::Script`]). The scripts check the record's own `expires_at`
//! against the store's clock (so a record that Redis has not expired yet
//! because of clock skew is still treated as gone), act only if the hash
//! exists (`apply` and `touch` never resurrect a session), and move the
//! key's TTL with `PEXPIREAT` to the new `expires_at`. `try_lock` and
//! `unlock` are one `EVALSHA` each. The creation of an authenticated session
//! adds two `EVALSHA`s (the index, before and after).
//!
//! `rotate` is an `HMGET` (which alone answers for a key that is gone or
//! retired), then the rotation's `EVALSHA`: two round trips for an anonymous
//! session. When the successor has a user, the index's `EVALSHA` comes
//! before and again after, together with the `ZREM` of the old member when
//! the old record had a user: four round trips.
//!
//! `delete` is one `EVALSHA` whatever the chain it follows (one `HMGET` and
//! one `DEL` per key inside the script).
//!
//! `list_user` is one `ZRANGE` plus one pipelined batch of `HGETALL`s (plus
//! a `ZREM`, an `EXISTS` batch and maybe an `EVALSHA` when stale members are
//! dropped). A retired member whose successor is not listed costs one more
//! batch of `HGETALL`s per step along its chain, and the `EVALSHA` that
//! indexes the successor: only when a listing races a rotation (or a
//! member was lost), since a rotation indexes its successor and unindexes
//! the old key itself. `delete_by_handle` and `delete_user` add one
//! `EVALSHA` of the revocation script, which deletes the sessions and then
//! removes their members: three round trips in all on a single server. On
//! a cluster they add one `EVALSHA` per session (all in flight at once)
//! and then the `ZREM`: four.

use std::{fmt, future::Future, pin::Pin, sync::Arc, task::Poll, time::Duration};

use ::redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    Client, Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Script, Value,
};
use async_trait::async_trait;
use serde_json::{value::RawValue, Map};
use sha2::{Digest, Sha256};

use crate::{
    ChangeSet, Clock, Data, Metadata, Record, Retired, Rotated, Rotation, SessionHandle, SessionStore, StorageKey,
    StoreError, Stored, SystemClock, RECORD_FORMAT,
};

/// The default key prefix.
///
/// ```
/// assert!(sessionware::store::redis::DEFAULT_PREFIX.ends_with(':'));
/// ```
pub const DEFAULT_PREFIX: &str = "sessionware:";

/// The default cap on the size of one record, in bytes (1 MiB).
///
/// ```
/// assert_eq!(sessionware::store::redis::DEFAULT_MAX_RECORD_BYTES, 1 << 20);
/// ```
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// Hash fields holding the metadata. Data fields start with [`DATA_PREFIX`].
const F_FORMAT: &str = "v";
const F_META: &str = "meta";
const F_LAST_SEEN: &str = "last_seen";
const F_EXPIRES_AT: &str = "expires_at";
const F_DEADLINE: &str = "absolute_deadline";
const F_PERSISTENT: &str = "persistent";
const F_PREDECESSOR: &str = "predecessor";
const F_SIZE: &str = "size";
const DATA_PREFIX: &str = "d:";
/// Fields of a retired key (a hash of these four only).
const F_RETIRED: &str = "retired";
const F_AT: &str = "at";
const F_OVERLAP_UNTIL: &str = "overlap_until";
const F_UNTIL: &str = "until";

/// Helpers shared by the scripts. Times are decimal strings without leading
/// zeros (written by this module only), compared exactly as strings so that
/// values past 2^53 keep their precision (Lua numbers are doubles).
macro_rules! lua_prelude {
    () => {
        r#"
local function lt(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
-- The live record's times under `key` (default KEYS[1]), or nil when
-- absent, expired at `now`, or a retired pointer (which has no times).
local function live(now, key)
  local t = redis.call('HMGET', key or KEYS[1], 'expires_at', 'absolute_deadline', 'last_seen')
  if not t[1] or not t[2] or not t[3] then return nil end
  if lt(now, t[1]) and lt(now, t[2]) then return t end
  return nil
end
local function expire_at(key, at)
  if lt('9007199254740991', at) then at = '9007199254740991' end
  redis.call('PEXPIREAT', key, at)
end
-- HSET of the field/value pairs `list[from..]` on `key`, 1000 arguments a call.
local function hset_all(key, list, from)
  while from <= #list do
    local last = math.min(from + 999, #list)
    redis.call('HSET', key, unpack(list, from, last))
    from = last + 1
  end
end
-- The data size of KEYS[1], counted field by field (see `Data::size`).
local function data_size()
  local n = 0
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(f, 1, 2) == 'd:' then n = n + #f - 2 + redis.call('HSTRLEN', KEYS[1], f) end
  end
  return n
end
"#
    };
}

/// `KEYS[1]` = session key. `ARGV`: now, expires_at, then field/value pairs.
const CREATE_LUA: &str = concat!(
    lua_prelude!(),
    r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  if live(ARGV[1]) then return 0 end
  redis.call('DEL', KEYS[1])
end
hset_all(KEYS[1], ARGV, 3)
expire_at(KEYS[1], ARGV[2])
return 1
"#
);

/// `KEYS[1]` = session key. `ARGV`: now, last_seen, expires_at, persistent
/// (`''`, `'0'` or `'1'`), clear (`'0'` or `'1'`), the data cap in bytes
/// (`'0'`: none), close_overlap (`'0'` or `'1'`), then field/value pairs (an
/// empty value removes the field). Returns 1, 0 (no live record) or -1 (the
/// merged data would pass the cap: nothing changed).
const APPLY_LUA: &str = concat!(
    lua_prelude!(),
    r#"
local t = live(ARGV[1])
if not t then return 0 end
local clear = ARGV[5] == '1'
local touches = clear or #ARGV >= 8
-- The data size after the merge (keys without 'd:' plus raw values): the
-- stored `size` field moved by this change set's delta, counted afresh when
-- the field is missing (and a cap needs it) or would refuse the change.
local size = nil
if touches then
  local max = tonumber(ARGV[6]) or 0
  local add, sub = 0, 0
  for i = 8, #ARGV, 2 do
    local f, v = ARGV[i], ARGV[i + 1]
    if not clear then
      local had = redis.call('HSTRLEN', KEYS[1], f)
      if had > 0 then sub = sub + #f - 2 + had end
    end
    if v ~= '' then add = add + #f - 2 + #v end
  end
  if clear then
    size = add
  else
    local stored = tonumber(redis.call('HGET', KEYS[1], 'size'))
    if stored then
      size = stored - sub + add
      if max > 0 and size > max then size = data_size() - sub + add end
    elseif max > 0 then
      size = data_size() - sub + add
    end
  end
  if max > 0 and size > max then return -1 end
end
-- Every removal before any write (a clear, then a set of a cleared key),
-- and one HDEL and one HSET for all fields (in chunks of 1000 arguments).
local list = {}
local function push(cmd, a, b)
  list[#list + 1] = a
  if b then list[#list + 1] = b end
  if #list >= 1000 then
    redis.call(cmd, KEYS[1], unpack(list))
    list = {}
  end
end
if clear then
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(f, 1, 2) == 'd:' then push('HDEL', f) end
  end
end
for i = 8, #ARGV, 2 do
  if ARGV[i + 1] == '' then push('HDEL', ARGV[i]) end
end
if ARGV[7] == '1' then push('HDEL', 'predecessor') end
if #list > 0 then redis.call('HDEL', KEYS[1], unpack(list)) end
list = {}
for i = 8, #ARGV, 2 do
  if ARGV[i + 1] ~= '' then push('HSET', ARGV[i], ARGV[i + 1]) end
end
local ls = t[3]
if lt(ls, ARGV[2]) then ls = ARGV[2] end
local exp = ARGV[3]
if lt(t[2], exp) then exp = t[2] end
list[#list + 1] = 'last_seen'
list[#list + 1] = ls
list[#list + 1] = 'expires_at'
list[#list + 1] = exp
if ARGV[4] ~= '' then
  list[#list + 1] = 'persistent'
  list[#list + 1] = ARGV[4]
end
if size then
  list[#list + 1] = 'size'
  list[#list + 1] = string.format('%d', size)
end
redis.call('HSET', KEYS[1], unpack(list))
expire_at(KEYS[1], exp)
return 1
"#
);

/// `KEYS[1]` = session key. `ARGV`: now, last_seen, expires_at.
const TOUCH_LUA: &str = concat!(
    lua_prelude!(),
    r#"
local t = live(ARGV[1])
if not t then return 0 end
local ls = t[3]
if lt(ls, ARGV[2]) then ls = ARGV[2] end
local exp = ARGV[3]
if lt(t[2], exp) then exp = t[2] end
redis.call('HSET', KEYS[1], 'last_seen', ls, 'expires_at', exp)
expire_at(KEYS[1], exp)
return 1
"#
);

/// `KEYS[1]` = old session, `KEYS[2]` = new session (one slot on a
/// cluster). `ARGV`: 1 now, 2 the new key's hex, 3 the old record's `meta`
/// as read before (compare and set), 4 the successor's `meta` (`''`: the
/// old one), 5 the predecessor's hex (the old key's; `''`: none), 6 last_seen, 7
/// expires_at, 8 persistent (`''`, `'0'` or `'1'`), 9 clear (`'0'` or
/// `'1'`), 10 the data cap (`'0'`: none), 11 the login's absolute deadline
/// (`''`: the old one), 12-14 the retired pointer's at, overlap_until and
/// until, 15 the number of retained fields (`-1`: keep all), then those
/// fields, then the change set's field/value pairs (an empty value removes).
///
/// Returns `{'done'}`, `{'gone'}`, `{'retired', successor, at,
/// overlap_until, until}`, `{'taken'}`, `{'too_large'}` or `{'changed'}`
/// (the old record is not the one whose `meta` the caller read: it retries).
const ROTATE_LUA: &str = concat!(
    lua_prelude!(),
    r#"
local now = ARGV[1]
if not live(now) then
  local r = redis.call('HMGET', KEYS[1], 'retired', 'at', 'overlap_until', 'until')
  if r[1] and r[2] and r[3] and r[4] and lt(now, r[4]) then return {'retired', r[1], r[2], r[3], r[4]} end
  return {'gone'}
end
if live(now, KEYS[2]) then return {'taken'} end
local u = redis.call('HGET', KEYS[2], 'until')
if u and lt(now, u) then return {'taken'} end
local all = redis.call('HGETALL', KEYS[1])
local old, data = {}, {}
local clear = ARGV[9] == '1'
local keep = nil
local i = 16
local n = tonumber(ARGV[15]) or -1
if n >= 0 then
  keep = {}
  for j = i, i + n - 1 do keep[ARGV[j]] = true end
  i = i + n
end
for j = 1, #all, 2 do
  local f = all[j]
  if string.sub(f, 1, 2) == 'd:' then
    if not clear and (not keep or keep[f]) then data[f] = all[j + 1] end
  else
    old[f] = all[j + 1]
  end
end
if not old['v'] or old['meta'] ~= ARGV[3] then return {'changed'} end
local touches = clear or #ARGV >= i
for j = i, #ARGV, 2 do
  if ARGV[j + 1] == '' then data[ARGV[j]] = nil else data[ARGV[j]] = ARGV[j + 1] end
end
local size = 0
for f, v in pairs(data) do size = size + #f - 2 + #v end
local max = tonumber(ARGV[10]) or 0
if touches and max > 0 and size > max then return {'too_large'} end
local deadline = old['absolute_deadline']
if ARGV[11] ~= '' then deadline = ARGV[11] end
local exp = ARGV[7]
if lt(deadline, exp) then exp = deadline end
local persistent = old['persistent'] or '0'
if ARGV[8] ~= '' then persistent = ARGV[8] end
local meta = old['meta']
if ARGV[4] ~= '' then meta = ARGV[4] end
local out = {'v', old['v'], 'meta', meta, 'last_seen', ARGV[6], 'expires_at', exp,
  'absolute_deadline', deadline, 'persistent', persistent, 'size', string.format('%d', size)}
if ARGV[5] ~= '' then
  out[#out + 1] = 'predecessor'
  out[#out + 1] = ARGV[5]
end
for f, v in pairs(data) do
  out[#out + 1] = f
  out[#out + 1] = v
end
redis.call('DEL', KEYS[2])
hset_all(KEYS[2], out, 1)
expire_at(KEYS[2], exp)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'retired', ARGV[2], 'at', ARGV[12], 'overlap_until', ARGV[13], 'until', ARGV[14])
expire_at(KEYS[1], ARGV[14])
return {'done'}
"#
);

/// `KEYS[1]` = session key. `ARGV`: 1 the key prefix, 2 now, 3 the key's
/// hex. Deletes the key. While the deleted key was a retired pointer that
/// is live at `now` (its `until` is ahead; Redis' TTL may lag behind the
/// store's clock), follows it to `{prefix}{<successor>}` (in the same slot:
/// a rotation only retires a key for a co-located one): a pointer there is
/// deleted and followed in turn; a record there is deleted only if its
/// `predecessor` is the last pointer followed (a successor not used yet).
/// At most 16 keys. Returns how many keys it deleted.
const DELETE_LUA: &str = concat!(
    lua_prelude!(),
    r#"
local key, hex, pointer = KEYS[1], ARGV[3], nil
local n = 0
for _ = 1, 16 do
  local f = redis.pcall('HMGET', key, 'retired', 'until', 'predecessor')
  if f.err then f = {} end
  local succ, untl, pred = f[1], f[2], f[3]
  if pointer and not succ then
    -- The live end of the chain (or nothing): an unused successor only.
    if pred == pointer then n = n + redis.call('DEL', key) end
    return n
  end
  n = n + redis.call('DEL', key)
  if not succ or not untl or not lt(ARGV[2], untl) then return n end
  if #succ ~= 64 or not string.match(succ, '^%x+$') then return n end
  pointer, hex = hex, succ
  key = ARGV[1] .. '{' .. succ .. '}'
end
return n
"#
);

/// `KEYS[1..n]` = session keys of one user to end; on a single server,
/// `KEYS[n + 1]` = the user's index. `ARGV`: 1 the key prefix, 2 now, 3 the
/// user, 4 `n`, `5..4+n` the session keys' hex, then index members to
/// remove. For each session key: a record there is deleted if its `meta`
/// names the user (counted if live at `now`); a retired pointer live at
/// `now` is followed (at most 16 keys, in the same slot) to the record it
/// became, which is deleted likewise, whatever its predecessor: a
/// revocation racing a rotation ends the rotated session (of the same
/// user: a login rotation to another user moves the session out of reach).
/// Pointers stay (they expire). With the index key, the given members and
/// the followed successors ended are removed from it, after the sessions.
/// Returns `{ended, <hex of each followed successor deleted>...}`.
const REVOKE_LUA: &str = concat!(
    lua_prelude!(),
    r#"
local now, user, n = ARGV[2], ARGV[3], tonumber(ARGV[4])
local function owner(meta)
  local ok, m = pcall(cjson.decode, meta)
  if not ok or type(m) ~= 'table' or type(m['auth']) ~= 'table' then return nil end
  return m['auth']['user']
end
local ended, followed = 0, {}
for i = 1, n do
  local key, hex = KEYS[i], ARGV[4 + i]
  for hop = 1, 16 do
    local f = redis.pcall('HMGET', key, 'retired', 'until', 'meta', 'expires_at', 'absolute_deadline')
    if f.err then break end
    local succ = f[1]
    if succ then
      if not f[2] or not lt(now, f[2]) or #succ ~= 64 or not string.match(succ, '^%x+$') then break end
      hex = succ
      key = ARGV[1] .. '{' .. succ .. '}'
    else
      if f[3] and owner(f[3]) == user then
        redis.call('DEL', key)
        if f[4] and f[5] and lt(now, f[4]) and lt(now, f[5]) then ended = ended + 1 end
        if hop > 1 then followed[#followed + 1] = hex end
      end
      break
    end
  end
end
if #KEYS > n then
  local members = {}
  for i = 5 + n, #ARGV do members[#members + 1] = ARGV[i] end
  for _, h in ipairs(followed) do members[#members + 1] = h end
  for from = 1, #members, 1000 do
    redis.call('ZREM', KEYS[n + 1], unpack(members, from, math.min(from + 999, #members)))
  end
end
local out = {ended}
for _, h in ipairs(followed) do out[#out + 1] = h end
return out
"#
);

/// `KEYS[1]` = user index. `ARGV`: now, then score (absolute deadline) /
/// member pairs. Touches the index key only (one slot).
const INDEX_LUA: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local last = nil
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
  if not last or tonumber(last) < tonumber(ARGV[i]) then last = ARGV[i] end
end
if last and redis.call('PEXPIRETIME', KEYS[1]) < tonumber(last) then
  redis.call('PEXPIREAT', KEYS[1], last)
end
return 1
"#;

/// `KEYS[1]` = lease key. `ARGV`: token, ttl in ms.
const LOCK_LUA: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#;

/// `KEYS[1]` = lease key. `ARGV`: token.
const UNLOCK_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Scores and TTLs stay within the integers a double holds exactly.
const MAX_AT: u64 = (1 << 53) - 1;

#[derive(Debug)]
struct Scripts {
    create: Script,
    apply: Script,
    touch: Script,
    rotate: Script,
    delete: Script,
    revoke: Script,
    index: Script,
    lock: Script,
    unlock: Script,
}

/// The connection: one server (or a primary with its replicas behind one
/// address) or a Redis Cluster. Both are multiplexed and cheap to clone.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A [`SessionStore`] on Redis or Redis Cluster, through `redis`'s
/// [`ConnectionManager`] (one multiplexed connection that reconnects by
/// itself) or its cluster connection.
///
/// One command per session operation (two for a rotation); see the
/// [module documentation](self) for the key layout, the scripts, the
/// rotation and the cluster slot rules. Needs Redis 7.0 or newer. Expiry is
/// enforced twice: by Redis (the key's TTL is `expires_at`) and by the
/// store's own clock on every call.
///
/// Errors are [`StoreError::Backend`] with the driver's message (any password
/// of the URLs is scrubbed from it) and [`StoreError::Codec`] for a record that
/// cannot be decoded or is larger than the cap (1 MiB by default).
///
/// ```no_run
/// use sessionware::{Keys, RedisStore, SessionLayer};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?.with_prefix("myapp:")?;
/// let layer = SessionLayer::new(store, Keys::generate()?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: Arc<str>,
    clock: Arc<dyn Clock>,
    max_record_bytes: usize,
    scripts: Arc<Scripts>,
    /// Passwords of the URLs, scrubbed from error messages.
    secrets: Arc<[Box<str>]>,
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

/// Timeout of one connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The password of a URL, if it has a non-empty one.
fn password(url: &str) -> Result<Option<Box<str>>, StoreError> {
    let info =
        url.into_connection_info().map_err(|e| StoreError::Backend(format!("invalid redis URL ({:?})", e.kind())))?;
    Ok(info.redis.password.filter(|p| !p.is_empty()).map(Box::from))
}

impl RedisStore {
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
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let secrets: Arc<[Box<str>]> = password(url)?.into_iter().collect();
        let client =
            Client::open(url).map_err(|e| StoreError::Backend(format!("invalid redis URL ({:?})", e.kind())))?;
        // `redis` 0.32 feeds `factor` to an exponential backoff that starts at
        // one second: its default (100) would wait 60 to 120 seconds between
        // the second and later attempts. A factor of 1 retries every 1-2 s.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_factor(1)
            .set_max_delay(2_000)
            .set_number_of_retries(3);
        let conn = ConnectionManager::new_with_config(client, config).await.map_err(|e| backend(&e, &secrets))?;
        let mut store = Self::new(conn);
        store.secrets = secrets;
        store.check_version().await?;
        Ok(store)
    }

    /// Connects to the Redis Cluster that `nodes` belong to (URLs as for
    /// [`connect`](Self::connect); one reachable node is enough, the others
    /// are discovered). Session operations stay one command each: all keys
    /// of one session share one hash slot; see the
    /// [module documentation](self#redis-cluster) for what touches several
    /// slots and how.
    ///
    /// Each connection attempt times out after 5 seconds. The connection
    /// follows slot migrations and failovers and reconnects by itself.
    /// Fails with [`StoreError::Backend`] when a primary runs a Redis older
    /// than 7.0.
    ///
    /// ```no_run
    /// use sessionware::{Keys, RedisStore, SessionLayer};
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
        if nodes.is_empty() {
            return Err(StoreError::Backend("no redis cluster node given".into()));
        }
        let mut secrets = Vec::new();
        for node in nodes {
            if let Some(p) = password(node)? {
                if !secrets.contains(&p) {
                    secrets.push(p);
                }
            }
        }
        let secrets: Arc<[Box<str>]> = secrets.into();
        let client = ClusterClient::builder(nodes.iter().copied())
            .connection_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| StoreError::Backend(format!("invalid redis cluster URLs ({:?})", e.kind())))?;
        let conn = client.get_async_connection().await.map_err(|e| backend(&e, &secrets))?;
        let mut store = Self::new_cluster(conn);
        store.secrets = secrets;
        store.check_version().await?;
        Ok(store)
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
    /// let store = sessionware::RedisStore::new(conn);
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
    /// let store = sessionware::RedisStore::new_cluster(client.get_async_connection().await?);
    /// # Ok(()) }
    /// ```
    pub fn new_cluster(conn: ClusterConnection) -> Self {
        Self::with_conn(Conn::Cluster(conn))
    }

    fn with_conn(conn: Conn) -> Self {
        Self {
            conn,
            prefix: Arc::from(DEFAULT_PREFIX),
            clock: Arc::new(SystemClock),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            scripts: Arc::new(Scripts {
                create: Script::new(CREATE_LUA),
                apply: Script::new(APPLY_LUA),
                touch: Script::new(TOUCH_LUA),
                rotate: Script::new(ROTATE_LUA),
                delete: Script::new(DELETE_LUA),
                revoke: Script::new(REVOKE_LUA),
                index: Script::new(INDEX_LUA),
                lock: Script::new(LOCK_LUA),
                unlock: Script::new(UNLOCK_LUA),
            }),
            secrets: Arc::from([]),
        }
    }

    /// Whether the store talks to a Redis Cluster.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::RedisStore::connect("redis://127.0.0.1").await?;
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
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::RedisStore::connect("redis://127.0.0.1").await?.with_prefix("shop:sess:")?;
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

    /// Sets the clock used for the store's own expiry checks (share it with
    /// the layer in tests). Redis' TTL still follows the server's clock.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let clock = sessionware::ManualClock::new(0);
    /// let store = sessionware::RedisStore::connect("redis://127.0.0.1").await?.with_clock(clock);
    /// # Ok(()) }
    /// ```
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets the largest record, in bytes, that `create` writes and `load`
    /// accepts (default 1 MiB); larger ones fail with [`StoreError::Codec`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::RedisStore::connect("redis://127.0.0.1").await?.with_max_record_bytes(64 * 1024);
    /// # Ok(()) }
    /// ```
    pub fn with_max_record_bytes(mut self, max: usize) -> Self {
        self.max_record_bytes = max;
        self
    }

    /// The key prefix.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::RedisStore::connect("redis://127.0.0.1").await?;
    /// assert_eq!(store.prefix(), "sessionware:");
    /// # Ok(()) }
    /// ```
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of a session: `{prefix}{<hex digest>}`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::RedisStore::connect("redis://127.0.0.1").await?;
    /// let key = sessionware::StorageKey::from_bytes([0xab; 32]);
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
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::RedisStore::connect("redis://127.0.0.1").await?;
    /// assert!(store.user_index_key("alice").starts_with("sessionware:user:{"));
    /// # Ok(()) }
    /// ```
    pub fn user_index_key(&self, user: &str) -> String {
        let digest = StorageKey::from_bytes(Sha256::digest(user.as_bytes()).into());
        format!("{}user:{{{}}}", self.prefix, digest.to_hex())
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

    /// Adds `(absolute deadline, member)` pairs to `user`'s index (one script
    /// on the index key alone) and moves the index's TTL to the latest
    /// deadline.
    async fn index(&self, user: &str, entries: &[(u64, String)]) -> Result<(), StoreError> {
        let mut inv = self.scripts.index.key(self.user_index_key(user));
        inv.arg(self.now());
        for (deadline, member) in entries {
            inv.arg((*deadline).min(MAX_AT)).arg(member);
        }
        inv.invoke_async::<i64>(&mut self.conn.clone()).await.map(|_| ()).map_err(|e| self.err(&e))
    }

    /// Sends `cmds` and returns their replies in order: one pipeline on a
    /// single server; on a cluster, where a pipeline cannot span slots,
    /// one command each, all in flight at once.
    async fn batch(&self, cmds: Vec<Cmd>) -> Result<Vec<Value>, StoreError> {
        match &self.conn {
            Conn::Single(_) => {
                let mut pipe = ::redis::pipe();
                for c in cmds {
                    pipe.add_command(c);
                }
                pipe.query_async(&mut self.conn.clone()).await.map_err(|e| self.err(&e))
            }
            Conn::Cluster(_) => {
                let replies = join_all(cmds.into_iter().map(|c| {
                    let mut conn = self.conn.clone();
                    async move { c.query_async::<Value>(&mut conn).await }
                }))
                .await;
                replies.into_iter().map(|r| r.map_err(|e| self.err(&e))).collect()
            }
        }
    }

    /// The live sessions of `user`, once each, after dropping stale members
    /// from the index.
    ///
    /// A member whose session is missing may belong to a `create` between its
    /// two steps (indexed, not yet written): after the `ZREM`, such members
    /// are checked again and put back if their session exists by then, and
    /// `create` indexes once more after writing, so that whichever order the
    /// two interleave in, a live session ends up in the index.
    ///
    /// A member that a rotation retired is followed (at most 16 keys) to the
    /// live session it became, which is listed once whether or not its own
    /// member was listed too (and indexed before the retired member is
    /// dropped, if it was not: a listing that ran in the middle of the
    /// rotation may have dropped it). Two live records with one handle are
    /// one session read on both sides of a rotation: listed once.
    async fn user_sessions(&self, user: &str) -> Result<Vec<Listed>, StoreError> {
        let index = self.user_index_key(user);
        let now = self.clock.now_ms();
        let scored: Vec<(String, f64)> = ::redis::cmd("ZRANGE")
            .arg(&index)
            .arg(format!("({now}"))
            .arg("+inf")
            .arg("BYSCORE")
            .arg("WITHSCORES")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(&e))?;
        if scored.is_empty() {
            return Ok(Vec::new());
        }
        let cmds = scored.iter().map(|(m, _)| ::redis::cmd("HGETALL").arg(self.member_key(m)).clone()).collect();
        let replies = self.batch(cmds).await?;
        let mut found: Vec<Listed> = Vec::new();
        let mut stale = Vec::new();
        let mut missing = Vec::new();
        // Retired members (member, successor) and, by key, the live pointers
        // this listing read.
        let mut follow: Vec<(String, String)> = Vec::new();
        let mut pointers: Vec<(String, String)> = Vec::new();
        for ((m, score), reply) in scored.into_iter().zip(replies) {
            // An undecodable record is left alone (and unlisted), not an error
            // for the whole list.
            match decode(reply, self.max_record_bytes) {
                Ok(Some(Stored::Live(r))) if !r.is_expired(now) && r.meta.user() == Some(user) => {
                    Listed::add(&mut found, vec![m.clone()], m, r);
                }
                Ok(Some(Stored::Retired(p))) if !p.is_expired(now) => {
                    let successor = p.successor.to_hex();
                    pointers.push((m.clone(), successor.clone()));
                    follow.push((m.clone(), successor));
                    stale.push(m);
                }
                // Expired, another user's, or a dead pointer.
                Ok(Some(_)) => stale.push(m),
                Ok(None) => {
                    stale.push(m.clone());
                    // Scores are integers below 2^53: exact as doubles.
                    missing.push((score as u64, m));
                }
                Err(e) => tracing::warn!(error = %e, "unreadable session in a user index"),
            }
        }
        // Successors found only by following a retired member.
        let mut reindex: Vec<(u64, String)> = Vec::new();
        for _ in 0..MAX_CHAIN {
            // Each retired member to the next key that is not a pointer this
            // listing read (at most 16 steps), then to the live session
            // listed under that key, if any; the rest are read.
            let mut fetch: Vec<(Vec<String>, String)> = Vec::new();
            for (member, mut key) in follow.drain(..) {
                for _ in 0..MAX_CHAIN {
                    match pointers.iter().find(|(k, _)| *k == key) {
                        Some((_, next)) => key.clone_from(next),
                        None => break,
                    }
                }
                if let Some(l) = found.iter_mut().find(|l| l.keys.contains(&key)) {
                    l.members.push(member);
                } else if let Some((members, _)) = fetch.iter_mut().find(|(_, k)| *k == key) {
                    members.push(member);
                } else {
                    fetch.push((vec![member], key));
                }
            }
            if fetch.is_empty() {
                break;
            }
            let cmds = fetch.iter().map(|(_, k)| ::redis::cmd("HGETALL").arg(self.member_key(k)).clone()).collect();
            let replies = self.batch(cmds).await?;
            for ((members, key), reply) in fetch.into_iter().zip(replies) {
                match decode(reply, self.max_record_bytes) {
                    Ok(Some(Stored::Live(r))) if !r.is_expired(now) && r.meta.user() == Some(user) => {
                        reindex.push((r.meta.absolute_deadline, key.clone()));
                        Listed::add(&mut found, members, key, r);
                    }
                    Ok(Some(Stored::Retired(p))) if !p.is_expired(now) => {
                        let successor = p.successor.to_hex();
                        pointers.push((key, successor.clone()));
                        follow.extend(members.into_iter().map(|m| (m, successor.clone())));
                    }
                    // Gone, expired, another user's (a login rotation).
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "unreadable session in a user index"),
                }
            }
        }
        if !reindex.is_empty() {
            // Before the retired members are dropped: the index never
            // misses a live session.
            self.index(user, &reindex).await?;
        }
        if stale.is_empty() {
            return Ok(found);
        }
        self.unindex(&index, &stale).await?;
        if !missing.is_empty() {
            let cmds = missing.iter().map(|(_, m)| ::redis::cmd("EXISTS").arg(self.member_key(m)).clone()).collect();
            let exists = self.batch(cmds).await?;
            let back: Vec<(u64, String)> = missing
                .into_iter()
                .zip(exists)
                .filter(|(_, e)| matches!(e, Value::Int(n) if *n > 0))
                .map(|(entry, _)| entry)
                .collect();
            if !back.is_empty() {
                self.index(user, &back).await?;
            }
        }
        Ok(found)
    }

    async fn unindex(&self, index: &str, members: &[String]) -> Result<(), StoreError> {
        ::redis::cmd("ZREM")
            .arg(index)
            .arg(members)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(&e))
    }

    /// Ends the given listed sessions of `user`, then removes their index
    /// members; returns how many sessions it ended. Each session key is
    /// followed if a rotation retired it since the listing (the revocation
    /// script). The sessions go first, so that a failure half-way leaves
    /// stale members (dropped by the next listing), never an unindexed live
    /// session.
    ///
    /// On a single server, one script does it all, the index included; on
    /// a cluster, one script per session (all in flight at once), then one
    /// `ZREM`.
    async fn end_sessions(&self, user: &str, sessions: &[&Listed]) -> Result<usize, StoreError> {
        if sessions.is_empty() {
            return Ok(0);
        }
        let keys: Vec<&String> = sessions.iter().flat_map(|l| &l.keys).collect();
        let mut members: Vec<&String> = sessions.iter().flat_map(|l| l.keys.iter().chain(&l.members)).collect();
        members.sort_unstable();
        members.dedup();
        let index = self.user_index_key(user);
        let revoke = |keys: &[&String]| {
            let mut inv = self.scripts.revoke.prepare_invoke();
            for k in keys {
                inv.key(self.member_key(k));
            }
            inv.arg(&*self.prefix).arg(self.now()).arg(user).arg(keys.len());
            for k in keys {
                inv.arg(k.as_str());
            }
            inv
        };
        match &self.conn {
            Conn::Single(_) => {
                let mut inv = revoke(&keys);
                inv.key(&index);
                for m in &members {
                    inv.arg(m.as_str());
                }
                let reply: Vec<Value> = inv.invoke_async(&mut self.conn.clone()).await.map_err(|e| self.err(&e))?;
                Ok(revoked(&reply).0)
            }
            Conn::Cluster(_) => {
                let replies = join_all(keys.iter().map(|k| {
                    let inv = revoke(&[*k]);
                    let mut conn = self.conn.clone();
                    async move { inv.invoke_async::<Vec<Value>>(&mut conn).await }
                }))
                .await;
                let mut ended = 0;
                let mut followed = Vec::new();
                for reply in replies {
                    let (n, succ) = revoked(&reply.map_err(|e| self.err(&e))?);
                    ended += n;
                    followed.extend(succ);
                }
                let mut members: Vec<String> = members.into_iter().cloned().collect();
                members.extend(followed);
                self.unindex(&index, &members).await?;
                Ok(ended)
            }
        }
    }

    /// What `rotate` starts from: one `HMGET` of the old key's metadata, or
    /// of its retired pointer.
    async fn rotation_source(&self, old: &StorageKey, now: u64) -> Result<Source, StoreError> {
        let fields: Vec<Option<String>> = ::redis::cmd("HMGET")
            .arg(self.redis_key(old))
            .arg(&[F_META, F_EXPIRES_AT, F_DEADLINE, F_RETIRED, F_AT, F_OVERLAP_UNTIL, F_UNTIL])
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(&e))?;
        let field = |i: usize| fields.get(i).and_then(Option::as_deref);
        let at = |i: usize| field(i).map(time).transpose();
        if let (Some(expires_at), Some(deadline)) = (at(1)?, at(2)?) {
            if now >= expires_at || now >= deadline {
                return Ok(Source::Gone);
            }
            let text = field(0).ok_or_else(|| codec("metadata fields are missing"))?;
            let meta = metadata(text, 0, 0, deadline, false)?;
            return Ok(Source::Live(Current { text: text.to_string(), meta, deadline }));
        }
        if let Some(successor) = field(3) {
            let successor = StorageKey::from_hex(successor).ok_or_else(|| codec("bad storage key field"))?;
            let (Some(at), Some(overlap_until), Some(until)) = (at(4)?, at(5)?, at(6)?) else {
                return Err(codec("retired key fields are missing"));
            };
            let retired = Retired::new(successor, at, overlap_until, until);
            if !retired.is_expired(now) {
                return Ok(Source::Retired(retired));
            }
        }
        Ok(Source::Gone)
    }

    /// One run of the rotation script from `current`, with the user index
    /// updated around it; `None` when the script found another record than
    /// `current` under `old`.
    async fn rotate_once(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        rotation: &Rotation,
        now: u64,
        current: &Current,
    ) -> Result<Option<Rotated>, StoreError> {
        let before = current.meta.user();
        let (user, score) = match &rotation.login {
            Some(login) => (Some(login.auth.user.as_str()), login.absolute_deadline),
            None => (before, current.deadline),
        };
        // Every rotation rewrites the `meta` field in full (`renewed_at`, and
        // a login's user and client; the script never parses JSON); the
        // compare and set on the old `meta` makes that safe.
        let new_meta = {
            let mut meta = current.meta.clone();
            if let Some(login) = &rotation.login {
                meta.auth = Some(login.auth.clone());
                meta.user_agent.clone_from(&login.user_agent);
                meta.ip.clone_from(&login.ip);
            }
            meta.renewed_at = Some(rotation.now);
            meta_json(&meta)?
        };
        let member = new.to_hex();
        let entry = [(score, member.clone())];
        if let Some(user) = user {
            // Indexed first: the index never misses a live session.
            self.index(user, &entry).await?;
        }
        let changes = &rotation.changes;
        let retired = rotation.retired(*new);
        let mut inv = self.scripts.rotate.key(self.redis_key(old));
        inv.key(self.redis_key(new))
            .arg(now.to_string())
            .arg(&member)
            .arg(&current.text)
            .arg(&new_meta)
            // The successor names its predecessor until it is first used
            // (overlap or not; see `Rotation::successor`).
            .arg(old.to_hex())
            .arg(rotation.now.max(changes.last_seen).to_string())
            .arg(changes.expires_at.to_string())
            .arg(changes.persistent.map_or("", flag))
            .arg(flag(changes.clear))
            .arg(changes.max_data_bytes)
            .arg(rotation.login.as_ref().map_or_else(String::new, |l| l.absolute_deadline.to_string()))
            .arg(retired.at.to_string())
            .arg(retired.overlap_until.to_string())
            .arg(retired.until.to_string());
        match &rotation.retain {
            Some(keep) => {
                inv.arg(keep.len());
                for k in keep {
                    inv.arg(format!("{DATA_PREFIX}{k}"));
                }
            }
            None => {
                inv.arg(-1);
            }
        }
        for (k, v) in &changes.changes {
            inv.arg(format!("{DATA_PREFIX}{k}")).arg(v.as_deref().map_or("", RawValue::get));
        }
        // A failure leaves the new member in the index: a stale member,
        // which the next listing drops.
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await.map_err(|e| self.err(&e))?;
        let outcome = match reply.first().map(String::as_str) {
            Some("done") => Ok(Some(Rotated::Done)),
            Some("gone") => Ok(Some(Rotated::Gone)),
            Some("taken") => Ok(Some(Rotated::Taken)),
            Some("too_large") => Err(StoreError::TooLarge),
            Some("changed") => Ok(None),
            Some("retired") => match reply.get(1..5) {
                Some([successor, at, overlap_until, until]) => {
                    let successor = StorageKey::from_hex(successor).ok_or_else(|| codec("bad storage key field"))?;
                    Ok(Some(Rotated::Retired(Retired::new(successor, time(at)?, time(overlap_until)?, time(until)?))))
                }
                _ => Err(codec("short rotation reply")),
            },
            _ => Err(codec("unexpected rotation reply")),
        };
        // The index around a rotation is best effort past this point: the
        // rotation has happened (or not) and the index stays a superset of
        // the live sessions either way.
        let mut steps: Vec<Step<'_>> = Vec::new();
        match (&outcome, user) {
            (Ok(Some(Rotated::Done)), _) => {
                if let Some(before) = before {
                    let index = self.user_index_key(before);
                    let members = [old.to_hex()];
                    steps.push(Box::pin(async move { self.unindex(&index, &members).await }));
                }
                if let Some(user) = user {
                    // ...and indexed again once written (as `create` does).
                    steps.push(Box::pin(self.index(user, &entry)));
                }
            }
            // Another session holds `new`: its member stays (a superset).
            (Ok(Some(Rotated::Taken)), _) | (_, None) => {}
            (_, Some(user)) => {
                let index = self.user_index_key(user);
                let members = [member.clone()];
                steps.push(Box::pin(async move { self.unindex(&index, &members).await }));
            }
        }
        for result in join_all(steps).await {
            if let Err(e) = result {
                tracing::warn!(error = %e, "user index update around a rotation failed (the index stays a superset)");
            }
        }
        outcome
    }

    /// Fails unless the server (every primary of a cluster) runs Redis
    /// [`MIN_VERSION`] or newer. A server that refuses `INFO` (an ACL, a
    /// proxy) is let through with a warning: its version is unknown.
    async fn check_version(&self) -> Result<(), StoreError> {
        let reply = ::redis::cmd("INFO").arg("server").query_async::<Value>(&mut self.conn.clone()).await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) if matches!(e.kind(), ErrorKind::ResponseError | ErrorKind::ExtensionError) => {
                tracing::warn!(error = %self.err(&e), "the Redis version is unknown (INFO refused); 7.0 or newer is required");
                return Ok(());
            }
            Err(e) => return Err(self.err(&e)),
        };
        let mut infos = Vec::new();
        info_texts(reply, &mut infos);
        check_versions(&infos)
    }

    fn err(&self, e: &RedisError) -> StoreError {
        backend(e, &self.secrets)
    }

    fn now(&self) -> String {
        self.clock.now_ms().to_string()
    }
}

/// The oldest Redis the scripts run on (`PEXPIRETIME` came with 7.0).
const MIN_VERSION: (u32, u32, u32) = (7, 0, 0);

/// The texts of an `INFO` reply: one per server (a cluster answers with a
/// map of node to text).
fn info_texts(reply: Value, out: &mut Vec<String>) {
    match reply {
        Value::BulkString(bytes) => out.push(String::from_utf8_lossy(&bytes).into_owned()),
        Value::VerbatimString { text, .. } | Value::SimpleString(text) => out.push(text),
        Value::Map(pairs) => pairs.into_iter().for_each(|(_, v)| info_texts(v, out)),
        Value::Array(items) => items.into_iter().for_each(|v| info_texts(v, out)),
        _ => {}
    }
}

/// The `redis_version` of an `INFO server` text: as written, and parsed
/// (missing parts count as 0).
fn server_version(info: &str) -> Option<(&str, (u32, u32, u32))> {
    let text = info.lines().find_map(|l| l.strip_prefix("redis_version:"))?.trim();
    let mut parts = text.split('.').map(str::parse::<u32>);
    let major = parts.next()?.ok()?;
    let minor = parts.next().map_or(Ok(0), |p| p).ok()?;
    let patch = parts.next().map_or(Ok(0), |p| p).unwrap_or(0);
    Some((text, (major, minor, patch)))
}

/// Fails when a server of `infos` is older than [`MIN_VERSION`]; an
/// unreadable version only warns.
fn check_versions(infos: &[String]) -> Result<(), StoreError> {
    if infos.is_empty() {
        tracing::warn!("the Redis version is unknown (empty INFO reply); 7.0 or newer is required");
    }
    for info in infos {
        match server_version(info) {
            Some((text, version)) if version < MIN_VERSION => {
                return Err(StoreError::Backend(format!("Redis 7.0 or newer is required (found {text})")));
            }
            Some(_) => {}
            None => tracing::warn!("the Redis version is unknown (no redis_version in INFO); 7.0 or newer is required"),
        }
    }
    Ok(())
}

/// How many times `rotate` reads the old record again when it changed
/// between the read and the script.
const ROTATE_ATTEMPTS: usize = 3;

/// One of the index updates after a rotation's script.
type Step<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// The longest chain of retired keys the scripts and listings follow.
const MAX_CHAIN: usize = 16;

/// A live session of a user, as a listing found it.
struct Listed {
    /// The keys (hex) it was read live under: one, or two when a rotation
    /// moved it between two reads of one listing (the later key first).
    keys: Vec<String>,
    /// The index members that led to it: its keys, and retired keys that
    /// point to it.
    members: Vec<String>,
    /// The record (the later one when read under two keys).
    record: Record,
}

impl Listed {
    /// Adds the session `record` read under `key`, reached through
    /// `members`, to `found`, merged with an entry of the same handle (the
    /// same session, read before and after a rotation).
    fn add(found: &mut Vec<Listed>, members: Vec<String>, key: String, record: Record) {
        let Some(same) = found.iter_mut().find(|l| l.record.meta.handle == record.meta.handle) else {
            found.push(Listed { keys: vec![key], members, record });
            return;
        };
        same.members.extend(members);
        if same.keys.contains(&key) {
            return;
        }
        // The later record: the one renewed last.
        let order = |r: &Record| (r.meta.renewed_at, r.meta.last_seen);
        if order(&record) > order(&same.record) {
            same.record = record;
            same.keys.insert(0, key);
        } else {
            same.keys.push(key);
        }
    }
}

/// The revocation script's reply: the sessions ended, and the successors
/// it followed to and deleted (hex).
fn revoked(reply: &[Value]) -> (usize, Vec<String>) {
    let ended = match reply.first() {
        Some(Value::Int(n)) => usize::try_from(*n).unwrap_or(0),
        _ => 0,
    };
    let followed = reply
        .iter()
        .skip(1)
        .filter_map(|v| match v {
            Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            _ => None,
        })
        .collect();
    (ended, followed)
}

/// What a rotation starts from.
enum Source {
    Live(Current),
    Retired(Retired),
    Gone,
}

/// The live old record, as far as a rotation reads it before the script.
struct Current {
    /// The `meta` field as stored (the script compares it).
    text: String,
    /// Its metadata (the times are not read).
    meta: Metadata,
    deadline: u64,
}

/// The CRC16 of Redis Cluster's key slots (CRC-16/XMODEM: polynomial
/// 0x1021, no reflection, initial value 0), one byte at a time.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc16(bytes: impl IntoIterator<Item = u8>) -> u16 {
    bytes.into_iter().fold(0, |crc, byte| (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)])
}

/// The Redis Cluster slot of a session key (`{prefix}{<hex digest>}`,
/// hashed on its tag, the lower-case hex digest): CRC16 of the tag modulo
/// 16384, computed without building the key.
fn key_slot(key: &StorageKey) -> u16 {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hex = key.as_bytes().iter().flat_map(|&b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]]);
    crc16(hex) & 0x3fff
}

/// Polls `futures` concurrently on the current task; their outputs in order.
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => *output = Some(v),
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

fn backend(e: &RedisError, secrets: &[Box<str>]) -> StoreError {
    let mut text = format!("redis: {e}");
    for s in secrets {
        text = text.replace(&**s, "<redacted>");
    }
    StoreError::Backend(text)
}

fn codec(what: impl fmt::Display) -> StoreError {
    StoreError::Codec(format!("redis record: {what}"))
}

fn flag(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

/// The `meta` field: the metadata's JSON without the fields that have
/// their own (the times, `persistent` and `predecessor`).
fn meta_json(meta: &Metadata) -> Result<String, StoreError> {
    let mut fixed = match serde_json::to_value(meta).map_err(codec)? {
        serde_json::Value::Object(map) => map,
        _ => return Err(codec("metadata is not an object")),
    };
    for f in [F_LAST_SEEN, F_EXPIRES_AT, F_DEADLINE, F_PERSISTENT, F_PREDECESSOR] {
        fixed.remove(f);
    }
    serde_json::to_string(&fixed).map_err(codec)
}

/// The field/value pairs of a record (metadata first).
fn encode(record: &Record) -> Result<Vec<(String, String)>, StoreError> {
    let meta = &record.meta;
    let mut out = Vec::with_capacity(8 + record.data.len());
    out.push((F_FORMAT.to_string(), record.format.to_string()));
    out.push((F_META.to_string(), meta_json(meta)?));
    out.push((F_LAST_SEEN.to_string(), meta.last_seen.to_string()));
    out.push((F_EXPIRES_AT.to_string(), meta.expires_at.min(meta.absolute_deadline).to_string()));
    out.push((F_DEADLINE.to_string(), meta.absolute_deadline.to_string()));
    out.push((F_PERSISTENT.to_string(), flag(meta.persistent).to_string()));
    if let Some(p) = &meta.predecessor {
        out.push((F_PREDECESSOR.to_string(), p.to_hex()));
    }
    out.push((F_SIZE.to_string(), record.data.size().to_string()));
    for (k, v) in record.data.iter() {
        out.push((format!("{DATA_PREFIX}{k}"), v.get().to_string()));
    }
    Ok(out)
}

/// What an `HGETALL` reply holds: a record, a retired pointer, or `None`
/// for an empty reply. Expiry is left to the caller.
fn decode(reply: Value, max_bytes: usize) -> Result<Option<Stored>, StoreError> {
    let items = match reply {
        Value::Nil => return Ok(None),
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        Value::Array(items) => items,
        _ => return Err(codec("unexpected HGETALL reply")),
    };
    if items.len() % 2 != 0 {
        return Err(codec("odd HGETALL reply"));
    }
    if items.is_empty() {
        return Ok(None);
    }
    let mut size = 0usize;
    let mut format = None;
    let mut meta: Option<String> = None;
    let (mut last_seen, mut expires_at, mut deadline, mut persistent) = (None, None, None, None);
    let mut predecessor = None;
    let (mut retired, mut at, mut overlap_until, mut until) = (None, None, None, None);
    let mut pairs = Vec::with_capacity(items.len() / 2 - 6.min(items.len() / 2));
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let (Value::BulkString(k), Value::BulkString(v)) = (k, v) else {
            return Err(codec("unexpected field type"));
        };
        size = size.saturating_add(k.len()).saturating_add(v.len());
        if size > max_bytes {
            return Err(codec(format_args!("larger than {max_bytes} bytes")));
        }
        if k.starts_with(DATA_PREFIX.as_bytes()) {
            let mut key = String::from_utf8(k).map_err(|_| codec("field name is not UTF-8"))?;
            key.drain(..DATA_PREFIX.len());
            let value = String::from_utf8(v).map_err(|_| codec("value is not UTF-8"))?;
            let value = RawValue::from_string(value).map_err(|_| codec("value is not JSON"))?;
            pairs.push((key, value));
            continue;
        }
        let text = || std::str::from_utf8(&v).map_err(|_| codec("value is not UTF-8"));
        let key = || StorageKey::from_hex(text()?).ok_or_else(|| codec("bad storage key field"));
        match k.as_slice() {
            b"v" => format = Some(text()?.parse::<u8>().map_err(|_| codec("bad format field"))?),
            b"meta" => meta = Some(String::from_utf8(v).map_err(|_| codec("value is not UTF-8"))?),
            b"last_seen" => last_seen = Some(time(text()?)?),
            b"expires_at" => expires_at = Some(time(text()?)?),
            b"absolute_deadline" => deadline = Some(time(text()?)?),
            b"persistent" => persistent = Some(v == b"1"),
            b"predecessor" => predecessor = Some(key()?),
            b"retired" => retired = Some(key()?),
            b"at" => at = Some(time(text()?)?),
            b"overlap_until" => overlap_until = Some(time(text()?)?),
            b"until" => until = Some(time(text()?)?),
            // `size`, and fields of a later version of this layout.
            _ => {}
        }
    }
    if let Some(successor) = retired {
        let (Some(at), Some(overlap_until), Some(until)) = (at, overlap_until, until) else {
            return Err(codec("retired key fields are missing"));
        };
        return Ok(Some(Stored::Retired(Retired::new(successor, at, overlap_until, until))));
    }
    let (Some(format), Some(meta), Some(last_seen), Some(expires_at), Some(deadline)) =
        (format, meta, last_seen, expires_at, deadline)
    else {
        return Err(codec("metadata fields are missing"));
    };
    if format != RECORD_FORMAT {
        return Err(codec(format_args!("unsupported record format {format}")));
    }
    let mut meta = metadata(&meta, last_seen, expires_at, deadline, persistent.unwrap_or(false))?;
    meta.predecessor = predecessor;
    let data = Data::from_pairs(pairs).ok_or_else(|| codec("duplicate session key"))?;
    Ok(Some(Stored::Live(Record { format, meta, data })))
}

/// The metadata from the `meta` field's JSON (every field but the times and
/// `persistent`) and the fields that hold those.
///
/// Parsed straight into [`Metadata`], with the hash fields written in
/// front of the other members; a `meta` that this cannot read (one that
/// holds a member of the same name, say) goes through a JSON map instead,
/// where the hash fields win. Both give the same metadata.
fn metadata(
    meta: &str,
    last_seen: u64,
    expires_at: u64,
    deadline: u64,
    persistent: bool,
) -> Result<Metadata, StoreError> {
    if let Some(rest) = meta.strip_prefix('{') {
        let mut text = String::with_capacity(meta.len() + 112);
        text.push_str("{\"last_seen\":");
        text.push_str(&last_seen.to_string());
        text.push_str(",\"expires_at\":");
        text.push_str(&expires_at.to_string());
        text.push_str(",\"absolute_deadline\":");
        text.push_str(&deadline.to_string());
        text.push_str(if persistent { ",\"persistent\":true" } else { ",\"persistent\":false" });
        if !rest.trim_start().starts_with('}') {
            text.push(',');
        }
        text.push_str(rest);
        if let Ok(meta) = serde_json::from_str::<Metadata>(&text) {
            return Ok(meta);
        }
    }
    let mut map: Map<String, serde_json::Value> = serde_json::from_str(meta).map_err(codec)?;
    map.insert(F_LAST_SEEN.into(), last_seen.into());
    map.insert(F_EXPIRES_AT.into(), expires_at.into());
    map.insert(F_DEADLINE.into(), deadline.into());
    map.insert(F_PERSISTENT.into(), persistent.into());
    serde_json::from_value(serde_json::Value::Object(map)).map_err(codec)
}

fn time(v: &str) -> Result<u64, StoreError> {
    v.parse::<u64>().map_err(|_| codec("bad time field"))
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, key: &StorageKey, record: &Record) -> Result<bool, StoreError> {
        let fields = encode(record)?;
        let size: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > self.max_record_bytes {
            return Err(codec(format_args!("larger than {} bytes", self.max_record_bytes)));
        }
        let now = self.now();
        let user = record.meta.user();
        let entry = [(record.meta.absolute_deadline, key.to_hex())];
        if let Some(user) = user {
            // Indexed first: the index never misses a live session.
            self.index(user, &entry).await?;
        }
        let mut inv = self.scripts.create.key(self.redis_key(key));
        inv.arg(now);
        inv.arg(record.meta.expires_at.min(record.meta.absolute_deadline).to_string());
        for (k, v) in &fields {
            inv.arg(k).arg(v);
        }
        let created: i64 = inv.invoke_async(&mut self.conn.clone()).await.map_err(|e| self.err(&e))?;
        if let (Some(user), 1) = (user, created) {
            // ...and again once written: a listing that ran between the two
            // steps may have dropped the member as stale (see `user_sessions`).
            self.index(user, &entry).await?;
        }
        Ok(created == 1)
    }

    async fn lookup(&self, key: &StorageKey) -> Result<Option<Stored>, StoreError> {
        let reply: Value = ::redis::cmd("HGETALL")
            .arg(self.redis_key(key))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(&e))?;
        let now = self.clock.now_ms();
        Ok(decode(reply, self.max_record_bytes)?.filter(|stored| match stored {
            Stored::Live(r) => !r.is_expired(now),
            Stored::Retired(r) => !r.is_expired(now),
        }))
    }

    /// One `HMGET` of the old record; when it is live, one `EVALSHA` of the
    /// rotation script on both keys, with the user index updated around it
    /// (see the [module documentation](self#rotation)).
    async fn rotate(&self, old: &StorageKey, new: &StorageKey, rotation: &Rotation) -> Result<Rotated, StoreError> {
        if !self.accepts_successor(old, new) {
            return Err(StoreError::Backend(
                "rotation needs co-located keys on Redis Cluster (one hash slot): draw the new ID until \
                 accepts_successor(old, new) is true"
                    .into(),
            ));
        }
        for _ in 0..ROTATE_ATTEMPTS {
            let now = self.clock.now_ms();
            let current = match self.rotation_source(old, now).await? {
                Source::Live(current) => current,
                Source::Retired(r) => return Ok(Rotated::Retired(r)),
                Source::Gone => return Ok(Rotated::Gone),
            };
            match self.rotate_once(old, new, rotation, now, &current).await? {
                Some(outcome) => return Ok(outcome),
                // The record under `old` is not the one read (deleted and
                // created again in between): read it again.
                None => continue,
            }
        }
        Err(StoreError::Backend("rotation: the old record kept changing under the rotation".into()))
    }

    async fn apply(&self, key: &StorageKey, changes: &ChangeSet) -> Result<bool, StoreError> {
        let mut inv = self.scripts.apply.key(self.redis_key(key));
        inv.arg(self.now())
            .arg(changes.last_seen.to_string())
            .arg(changes.expires_at.to_string())
            .arg(changes.persistent.map_or("", flag))
            .arg(flag(changes.clear))
            .arg(changes.max_data_bytes)
            .arg(flag(changes.close_overlap));
        for (k, v) in &changes.changes {
            inv.arg(format!("{DATA_PREFIX}{k}")).arg(v.as_deref().map_or("", RawValue::get));
        }
        let applied: i64 = inv.invoke_async(&mut self.conn.clone()).await.map_err(|e| self.err(&e))?;
        match applied {
            -1 => Err(StoreError::TooLarge),
            n => Ok(n == 1),
        }
    }

    async fn touch(&self, key: &StorageKey, last_seen: u64, expires_at: u64) -> Result<bool, StoreError> {
        let touched: i64 = self
            .scripts
            .touch
            .key(self.redis_key(key))
            .arg(self.now())
            .arg(last_seen.to_string())
            .arg(expires_at.to_string())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(&e))?;
        Ok(touched == 1)
    }

    /// One `EVALSHA`: the key and, along live retired pointers, its
    /// successor while unused (see the [module documentation](self#delete-and-revocation)).
    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        self.scripts
            .delete
            .key(self.redis_key(key))
            .arg(&*self.prefix)
            .arg(self.now())
            .arg(key.to_hex())
            .invoke_async::<i64>(&mut self.conn.clone())
            .await
            .map(|_| ())
            .map_err(|e| self.err(&e))
    }

    /// Always on a single server; on a cluster, when both session keys hash
    /// to one slot (the rotation script needs both keys on one node).
    fn accepts_successor(&self, old: &StorageKey, new: &StorageKey) -> bool {
        match self.conn {
            Conn::Single(_) => true,
            Conn::Cluster(_) => key_slot(old) == key_slot(new),
        }
    }

    async fn list_user(&self, user: &str) -> Result<Vec<Metadata>, StoreError> {
        let mut list: Vec<Metadata> = self.user_sessions(user).await?.into_iter().map(|l| l.record.meta).collect();
        list.sort_by_key(|m| m.created_at);
        Ok(list)
    }

    /// The listing, then one `EVALSHA` (on a cluster: one per session
    /// key, then a `ZREM`); a session that a rotation moved since the
    /// listing is followed to its new key.
    async fn delete_by_handle(&self, user: &str, handle: &SessionHandle) -> Result<bool, StoreError> {
        let listed = self.user_sessions(user).await?;
        let chosen: Vec<&Listed> = listed.iter().filter(|l| l.record.meta.handle == *handle).collect();
        Ok(self.end_sessions(user, &chosen).await? > 0)
    }

    /// As `delete_by_handle`; counts the sessions ended.
    async fn delete_user(&self, user: &str, keep: Option<&SessionHandle>) -> Result<usize, StoreError> {
        let listed = self.user_sessions(user).await?;
        let chosen: Vec<&Listed> = listed.iter().filter(|l| Some(&l.record.meta.handle) != keep).collect();
        self.end_sessions(user, &chosen).await
    }

    async fn try_lock(&self, key: &StorageKey, token: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let taken: i64 = self
            .scripts
            .lock
            .key(self.lock_key(key))
            .arg(token)
            .arg(ttl_ms.clamp(1, MAX_AT))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(&e))?;
        Ok(taken == 1)
    }

    async fn unlock(&self, key: &StorageKey, token: &str) -> Result<(), StoreError> {
        self.scripts
            .unlock
            .key(self.lock_key(key))
            .arg(token)
            .invoke_async::<i64>(&mut self.conn.clone())
            .await
            .map(|_| ())
            .map_err(|e| self.err(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn reply(fields: &[(String, String)]) -> Value {
        Value::Array(fields.iter().flat_map(|(k, v)| [bulk(k), bulk(v)]).collect())
    }

    #[tokio::test]
    async fn join_all_keeps_the_order_of_its_futures() {
        let delays = [30u64, 0, 10, 20];
        let out = join_all(delays.iter().map(|&ms| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ms
        }))
        .await;
        assert_eq!(out, delays);
        assert!(join_all(Vec::<std::future::Ready<()>>::new()).await.is_empty());
    }

    #[test]
    fn passwords_are_found_and_scrubbed() {
        assert_eq!(password("redis://:hunter2@10.0.0.1:6379").unwrap().as_deref(), Some("hunter2"));
        assert_eq!(password("redis://user:pw@10.0.0.1").unwrap().as_deref(), Some("pw"));
        assert!(password("redis://10.0.0.1").unwrap().is_none());
        assert!(password("no-scheme").is_err());
        let e = RedisError::from((::redis::ErrorKind::IoError, "refused", "redis://:hunter2@10.0.0.1".to_string()));
        let StoreError::Backend(text) = backend(&e, &[Box::from("hunter2")]) else { panic!("backend error") };
        assert!(!text.contains("hunter2") && text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn encode_decode_round_trip_keeps_values_byte_for_byte() {
        let mut meta = Metadata::new(1_700_000_000_000, 60_000, u64::MAX);
        meta.auth = Some(crate::Auth::new("alice", 5));
        meta.persistent = true;
        let mut record = Record::new(meta);
        record.data.insert("n", &raw("1.000000000000000000001"));
        record.data.insert("s", &raw("{\"b\":1,  \"a\":[2]}"));
        record.data.insert("", &raw("null"));
        record.meta.predecessor = Some(StorageKey::from_bytes([0xcd; 32]));
        let fields = encode(&record).unwrap();
        assert!(!fields.iter().any(|(k, v)| k == F_META && v.contains("predecessor")), "its own field");
        let Some(Stored::Live(back)) = decode(reply(&fields), DEFAULT_MAX_RECORD_BYTES).unwrap() else {
            panic!("a live record")
        };
        assert_eq!(back, record);
        assert_eq!(back.meta.absolute_deadline, u64::MAX);
        let size = fields.iter().find(|(k, _)| k == F_SIZE).map(|(_, v)| v.as_str());
        assert_eq!(size, Some(record.data.size().to_string().as_str()));
    }

    #[test]
    fn retired_pointers_decode() {
        let successor = StorageKey::from_bytes([0xab; 32]);
        let fields: Vec<(String, String)> = [
            ("retired", successor.to_hex()),
            ("at", "10".into()),
            ("overlap_until", "20".into()),
            ("until", "130".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let want = Stored::Retired(Retired::new(successor, 10, 20, 130));
        assert_eq!(decode(reply(&fields), 1 << 20).unwrap(), Some(want));
        let short: Vec<_> = fields.iter().filter(|(k, _)| k != "until").cloned().collect();
        assert!(matches!(decode(reply(&short), 1 << 20), Err(StoreError::Codec(_))));
        let mut bad = fields;
        bad[0].1 = "zz".into();
        assert!(matches!(decode(reply(&bad), 1 << 20), Err(StoreError::Codec(_))));
    }

    #[test]
    fn slots_are_redis_cluster_slots() {
        // CRC-16/XMODEM's check value, and slots from `CLUSTER KEYSLOT`.
        assert_eq!(crc16(*b"123456789"), 0x31c3);
        assert_eq!(crc16(*b"foo") & 0x3fff, 12182);
        assert_eq!(crc16(*b"bar") & 0x3fff, 5061);
        for bytes in [[0u8; 32], [0xff; 32], [0x5a; 32]] {
            let key = StorageKey::from_bytes(bytes);
            assert_eq!(key_slot(&key), crc16(key.to_hex().bytes()) & 0x3fff);
        }
    }

    #[test]
    fn server_versions_are_parsed_and_compared() {
        let info = |v: &str| format!("# Server\r\nredis_version:{v}\r\nredis_mode:standalone\r\n");
        assert_eq!(server_version(&info("7.0.15")), Some(("7.0.15", (7, 0, 15))));
        assert_eq!(server_version(&info("7.2")), Some(("7.2", (7, 2, 0))));
        assert_eq!(server_version(&info("255.255.255")), Some(("255.255.255", (255, 255, 255))));
        assert_eq!(server_version(&info("x.1")), None);
        assert_eq!(server_version("# Server\r\n"), None);
        assert!(check_versions(&[info("7.0.0"), info("8.0.2")]).is_ok());
        assert!(check_versions(&[info("7.4.1")]).is_ok());
        let Err(StoreError::Backend(text)) = check_versions(&[info("7.2.4"), info("6.2.14")]) else {
            panic!("6.2 is too old")
        };
        assert_eq!(text, "Redis 7.0 or newer is required (found 6.2.14)");
        assert!(check_versions(&[info("6.0")]).is_err());
        // Unknown versions are let through (with a warning).
        assert!(check_versions(&[]).is_ok());
        assert!(check_versions(&["# Server\r\n".into()]).is_ok());
        // A cluster answers with a map of node to text.
        let mut texts = Vec::new();
        info_texts(
            Value::Map(vec![(bulk("a:1"), bulk(&info("7.0.1"))), (bulk("b:2"), bulk(&info("6.2.0")))]),
            &mut texts,
        );
        assert_eq!(texts.len(), 2);
        assert!(check_versions(&texts).is_err());
    }

    #[test]
    fn metadata_is_read_straight_or_through_a_map_alike() {
        let mut meta = Metadata::new(1_000, 60_000, 120_000);
        meta.auth = Some(crate::Auth::new("alice", 5));
        meta.ip = Some("10.0.0.0".into());
        let mut fixed = match serde_json::to_value(&meta).unwrap() {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        for f in [F_LAST_SEEN, F_EXPIRES_AT, F_DEADLINE, F_PERSISTENT] {
            fixed.remove(f);
        }
        let text = serde_json::to_string(&fixed).unwrap();
        let mut want = meta.clone();
        (want.last_seen, want.expires_at, want.absolute_deadline, want.persistent) = (7, 8, 9, true);
        assert_eq!(metadata(&text, 7, 8, 9, true).unwrap(), want);
        // A `meta` that holds a time too (never written by this module): the
        // straight parse refuses the duplicate, the map path lets the hash
        // field win.
        fixed.insert(F_LAST_SEEN.into(), 1.into());
        let text = serde_json::to_string(&fixed).unwrap();
        assert_eq!(metadata(&text, 7, 8, 9, true).unwrap(), want);
        assert!(matches!(metadata("{not json", 7, 8, 9, true), Err(StoreError::Codec(_))));
        assert!(matches!(metadata("{}", 7, 8, 9, true), Err(StoreError::Codec(_))), "created_at is required");
    }

    #[test]
    fn oversized_or_broken_records_are_codec_errors() {
        let mut record = Record::new(Metadata::new(0, 1, 2));
        record.data.insert("big", &raw(&format!("\"{}\"", "x".repeat(2_000))));
        let fields = encode(&record).unwrap();
        assert!(matches!(decode(reply(&fields), 1_000), Err(StoreError::Codec(_))));

        let mut broken = fields.clone();
        broken.push(("d:bad".into(), "{not json".into()));
        assert!(matches!(decode(reply(&broken), 1 << 20), Err(StoreError::Codec(_))));

        let missing: Vec<_> = fields.into_iter().filter(|(k, _)| k != F_EXPIRES_AT).collect();
        assert!(matches!(decode(reply(&missing), 1 << 20), Err(StoreError::Codec(_))));

        assert!(decode(Value::Array(vec![]), 10).unwrap().is_none());
        assert!(decode(Value::Map(vec![]), 10).unwrap().is_none());
    }
}

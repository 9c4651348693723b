//! The Lua scripts, one per session operation, each a file of `lua/`
//! included at build time; the session scripts start with the helpers of
//! `lua/common.lua` (and those that merge data, with `lua/merge.lua`).
//!
//! Times in the arguments are 20-digit decimals, as in the records
//! ([`codec::time`](super::codec::time)); TTLs are decimal milliseconds.
//! A script that finds a key of layout 1 (a hash, written by sessionware
//! 0.1) changes nothing and says so (`-2`, `'legacy'` or the key's hex):
//! the caller migrates the key ([`RedisStore::migrate`](super::RedisStore))
//! and runs the script again.

use ::redis::{aio::ConnectionLike, Cmd, ErrorKind, FromRedisValue, RedisResult, Script};

/// Prepends `lua/common.lua` (and the other helper files listed) to the
/// script in `lua/$file`.
macro_rules! with_common {
    ($($file:literal),+) => {
        concat!(include_str!("lua/common.lua"), $(include_str!(concat!("lua/", $file))),+)
    };
}

/// `KEYS[1]` = session key. `ARGV`: 1 now, 2 the record, 3 its TTL.
/// Writes the record unless a live one is there: 1, or 0. What `create`
/// runs when its `SET NX` found the key taken.
const CREATE_LUA: &str = with_common!("create.lua");

/// `KEYS[1]` = session key. `ARGV`: 1 the request's fields in 63 bytes
/// (now, last_seen and expires_at in 20 digits each, then persistent `-`,
/// `0` or `1`, clear `0` or `1`, close_overlap `0` or `1`: one argument and
/// one `struct.unpack`, cheaper in Redis than six), 2 the TTL of
/// expires_at, 3 the data cap in bytes (`'0'`: none), then key/value pairs
/// sorted by key (an empty value removes the key). Returns 1, 0 (no live
/// record), -1 (the merged data would pass the cap: nothing changed), -2
/// (layout 1) or -3 (a malformed record: nothing changed).
const APPLY_LUA: &str = with_common!("merge.lua", "apply.lua");

/// `KEYS[1]` = session key. `ARGV`: 1 now, 2 last_seen, 3 expires_at, 4
/// the TTL of expires_at. Rewrites the times in place (`SETRANGE`), so its
/// cost does not grow with the data. Returns 1, 0 or -2.
const TOUCH_LUA: &str = with_common!("touch.lua");

/// `KEYS[1]` = old session, `KEYS[2]` = new session (one slot on a
/// cluster). `ARGV`: 1 now, 2 the new key's hex, 3 the old record's
/// identity as read before (compare and set), 4 the successor's identity, 5
/// the predecessor's hex (the old key's; `''`: none), 6 last_seen, 7
/// expires_at, 8 persistent (`''`, `'0'` or `'1'`), 9 clear (`'0'` or
/// `'1'`), 10 the data cap (`'0'`: none), 11 the login's absolute deadline
/// (`''`: the old one), 12-14 the retired pointer's at, overlap_until and
/// until, 15 the number of retained keys (`-1`: keep all), then those
/// keys, then the change set's key/value pairs sorted by key (an empty
/// value removes).
///
/// Returns `{'done'}`, `{'gone'}`, `{'retired', successor, at,
/// overlap_until, until}`, `{'taken'}`, `{'too_large'}`, `{'changed'}`
/// (the old record is not the one whose identity the caller read: it
/// retries), `{'legacy'}` or `{'malformed'}`.
const ROTATE_LUA: &str = with_common!("merge.lua", "rotate.lua");

/// `KEYS[1]` = session key. `ARGV`: 1 the key prefix, 2 now, 3 the key's
/// hex. Deletes the key. While the deleted key was a retired pointer that
/// is live at `now` (its `until` is ahead; Redis' TTL may lag behind the
/// store's clock), follows it to `{prefix}{<successor>}` (in the same slot:
/// a rotation only retires a key for a co-located one): a pointer there is
/// deleted and followed in turn; a record there is deleted only if its
/// predecessor is the last pointer followed (a successor not used yet).
/// At most 16 keys, all read before any is deleted. Returns how many keys
/// it deleted, or the hex of a layout 1 key on the way (nothing deleted).
const DELETE_LUA: &str = with_common!("delete.lua");

/// `KEYS[1..n]` = session keys of one user to end; on a single server,
/// `KEYS[n + 1]` = the user's index. `ARGV`: 1 the key prefix, 2 now, 3 the
/// user's digest, 4 `n`, `5..4+n` the session keys' hex, then index
/// members to remove. For each session key: a record there is deleted if
/// its identity holds the user's digest (counted if live at `now`); a
/// retired pointer live at `now` is followed (at most 16 keys, in the same
/// slot) to the record it became, which is deleted likewise, whatever its
/// predecessor: a revocation racing a rotation ends the rotated session (of
/// the same user: a login rotation to another user moves the session out
/// of reach). Pointers stay (they expire). With the index key, the given
/// members and the followed successors ended are removed from it, after
/// the sessions. Returns `{ended, <hex of each followed successor
/// deleted>...}`, or `{'legacy', <hex>...}` (nothing changed).
const REVOKE_LUA: &str = with_common!("revoke.lua");

/// `KEYS[1]` = a key of layout 1. `ARGV`: 1 its value in layout 2, then the
/// field/value pairs the caller read. Replaces the hash by the value
/// (keeping the TTL) if it still holds exactly those fields: 1; 0 when it
/// changed; 1 when it holds no hash any more.
const MIGRATE_LUA: &str = include_str!("lua/migrate.lua");

/// `KEYS[1]` = user index. `ARGV`: now, then score (absolute deadline) /
/// member pairs. Touches the index key only (one slot).
const INDEX_LUA: &str = include_str!("lua/index.lua");

/// `KEYS[1]` = session key (a single server: the cutoff keys live in other
/// slots). `ARGV`: 1 the global cutoff key, 2 the users' cutoff key prefix.
/// Returns `{value}` (a retired pointer or garbage), `{false}` (no key),
/// `{-2}` (layout 1: the caller reads it as such) or, for a record,
/// `{value, the global cutoff, its user's epoch}` (read through the user's
/// digest in the record; `false` for none or a visitor).
const LOOKUP_LUA: &str = with_common!("lookup.lua");

/// `KEYS[1]` = a cutoff key. `ARGV`: value, keep_until, now. Moves the
/// value forward only; the key's TTL only grows.
const CUT_LUA: &str = include_str!("lua/cut.lua");

/// `KEYS[1]` = lease key. `ARGV`: token, ttl in ms.
const LOCK_LUA: &str = include_str!("lua/lock.lua");

/// `KEYS[1]` = lease key. `ARGV`: token.
const UNLOCK_LUA: &str = include_str!("lua/unlock.lua");

/// The scripts of a store (each loaded on first use).
#[derive(Debug)]
pub(super) struct Scripts {
    pub(super) create: Script,
    pub(super) apply: Script,
    pub(super) touch: Script,
    pub(super) rotate: Script,
    pub(super) delete: Script,
    pub(super) revoke: Script,
    pub(super) migrate: Script,
    pub(super) index: Script,
    pub(super) lock: Script,
    pub(super) unlock: Script,
    pub(super) cut: Script,
    pub(super) lookup: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            create: Script::new(CREATE_LUA),
            apply: Script::new(APPLY_LUA),
            touch: Script::new(TOUCH_LUA),
            rotate: Script::new(ROTATE_LUA),
            delete: Script::new(DELETE_LUA),
            revoke: Script::new(REVOKE_LUA),
            migrate: Script::new(MIGRATE_LUA),
            index: Script::new(INDEX_LUA),
            lock: Script::new(LOCK_LUA),
            unlock: Script::new(UNLOCK_LUA),
            cut: Script::new(CUT_LUA),
            lookup: Script::new(LOOKUP_LUA),
        }
    }
}

/// An `EVALSHA` of `script` on `keys`; the caller adds the arguments and
/// sends it with [`run`]. Built in one buffer, unlike
/// [`redis::ScriptInvocation`], which copies every argument once more.
pub(super) fn evalsha(script: &Script, keys: &[&str]) -> Cmd {
    let mut cmd = ::redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len());
    for k in keys {
        cmd.arg(*k);
    }
    cmd
}

/// Sends `cmd` (an [`evalsha`] of `script`); when the server does not know
/// the script yet, loads it and sends `cmd` again.
pub(super) async fn run<T: FromRedisValue>(
    script: &Script,
    cmd: &Cmd,
    conn: &mut (impl ConnectionLike + Send),
) -> RedisResult<T> {
    match cmd.query_async(conn).await {
        Err(e) if e.kind() == ErrorKind::NoScriptError => {
            script.load_async(conn).await?;
            cmd.query_async(conn).await
        }
        result => result,
    }
}

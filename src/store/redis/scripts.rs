//! The Lua scripts, one per session operation, each a file of `lua/`
//! included at build time; the session scripts start with the helpers of
//! `lua/common.lua`.

use ::redis::Script;

/// Prepends `lua/common.lua` to the script in `lua/$file`.
///
/// `lua/common.lua` holds the helpers shared by the scripts. Times are
/// decimal strings without leading zeros (written by this module only),
/// compared exactly as strings so that values past 2^53 keep their
/// precision (Lua numbers are doubles).
macro_rules! with_common {
    ($file:literal) => {
        concat!(include_str!("lua/common.lua"), include_str!(concat!("lua/", $file)))
    };
}

/// `KEYS[1]` = session key. `ARGV`: now, expires_at, then field/value pairs.
const CREATE_LUA: &str = with_common!("create.lua");

/// `KEYS[1]` = session key. `ARGV`: now, last_seen, expires_at, persistent
/// (`''`, `'0'` or `'1'`), clear (`'0'` or `'1'`), the data cap in bytes
/// (`'0'`: none), close_overlap (`'0'` or `'1'`), then field/value pairs (an
/// empty value removes the field). Returns 1, 0 (no live record) or -1 (the
/// merged data would pass the cap: nothing changed).
const APPLY_LUA: &str = with_common!("apply.lua");

/// `KEYS[1]` = session key. `ARGV`: now, last_seen, expires_at.
const TOUCH_LUA: &str = with_common!("touch.lua");

/// `KEYS[1]` = old session, `KEYS[2]` = new session (one slot on a
/// cluster). `ARGV`: 1 now, 2 the new key's hex, 3 the old record's `meta`
/// as read before (compare and set), 4 the successor's `meta` (`''`: the
/// old one), 5 the predecessor's hex (the old key's; `''`: none), 6 last_seen, 7
/// expires_at, 8 persistent (`''`, `'0'` or `'1'`), 9 clear (`'0'` or
/// `'1'`), 10 the data cap (`'0'`: none), 11 the login's absolute deadline
/// (`''`: the old one), 12-14 the retired pointer's at, overlap_until and
/// until, 15 the successor's `uc` field (its user's cutoff key suffix;
/// `''`: none), 16 the number of retained fields (`-1`: keep all), then
/// those fields, then the change set's field/value pairs (an empty value
/// removes).
///
/// Returns `{'done'}`, `{'gone'}`, `{'retired', successor, at,
/// overlap_until, until}`, `{'taken'}`, `{'too_large'}` or `{'changed'}`
/// (the old record is not the one whose `meta` the caller read: it retries).
const ROTATE_LUA: &str = with_common!("rotate.lua");

/// `KEYS[1]` = session key. `ARGV`: 1 the key prefix, 2 now, 3 the key's
/// hex. Deletes the key. While the deleted key was a retired pointer that
/// is live at `now` (its `until` is ahead; Redis' TTL may lag behind the
/// store's clock), follows it to `{prefix}{<successor>}` (in the same slot:
/// a rotation only retires a key for a co-located one): a pointer there is
/// deleted and followed in turn; a record there is deleted only if its
/// `predecessor` is the last pointer followed (a successor not used yet).
/// At most 16 keys. Returns how many keys it deleted.
const DELETE_LUA: &str = with_common!("delete.lua");

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
const REVOKE_LUA: &str = with_common!("revoke.lua");

/// `KEYS[1]` = user index. `ARGV`: now, then score (absolute deadline) /
/// member pairs. Touches the index key only (one slot).
const INDEX_LUA: &str = include_str!("lua/index.lua");

/// `KEYS[1]` = session key (a single server: the cutoff keys live in other
/// slots). `ARGV`: the global cutoff key, the users' cutoff key prefix.
/// Returns `{HGETALL of the key, the global cutoff, the record's user's
/// cutoff (read through its 'uc' field), 1 if it has that field else 0}`.
const LOOKUP_LUA: &str = include_str!("lua/lookup.lua");

/// `KEYS[1]` = a cutoff key. `ARGV`: not_before, keep_until, now. Moves
/// the time forward only; the key's TTL only grows.
const CUT_LUA: &str = with_common!("cut.lua");

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
            index: Script::new(INDEX_LUA),
            lock: Script::new(LOCK_LUA),
            unlock: Script::new(UNLOCK_LUA),
            cut: Script::new(CUT_LUA),
            lookup: Script::new(LOOKUP_LUA),
        }
    }
}

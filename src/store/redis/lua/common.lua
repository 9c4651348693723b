-- Layout 2 of a session key (`codec.rs` has the byte offsets): one string,
-- 'S2' and a session record, or 'R2' and a retired pointer. Times are
-- 20-digit zero-padded decimals: strings of one width, which `<` compares
-- exactly (Lua's numbers are doubles, exact only up to 2^53).

-- The value under `key`: a string, nil when there is none, or false when
-- the key holds a hash (layout 1, written by sessionware 0.1): the script
-- then returns before writing anything, and the caller migrates the key.
local function read(key)
  local v = redis.pcall('GET', key)
  if type(v) == 'table' then return false end
  return v or nil
end
-- Whether `v` is a session record live at `now`.
local function live(v, now)
  return #v >= 71 and string.sub(v, 1, 2) == 'S2' and now < string.sub(v, 3, 22) and now < string.sub(v, 23, 42)
end
-- The successor (hex) and `until` of a retired pointer, or nil.
local function pointer(v)
  if #v ~= 126 or string.sub(v, 1, 2) ~= 'R2' then return nil end
  return string.sub(v, 63, 126), string.sub(v, 43, 62)
end
-- Whether `v` is a session record with a sign-in (then its user's digest
-- is at 154..217 and its epoch at 114..133).
local function signed_in(v)
  return #v >= 217 and string.sub(v, 1, 2) == 'S2' and struct.unpack('<I4', v, 64) >= 150
    and struct.unpack('<I4', v, 110) >= 104
end
-- Where the identity ends and the data starts in record `v` (of at least
-- 71 bytes), or nil when the lengths do not fit.
local function sections(v)
  local id_end = 67 + struct.unpack('<I4', v, 64)
  if id_end + 4 > #v then return nil end
  local data = id_end + 5 + struct.unpack('<I4', v, id_end + 1)
  if data > #v + 1 then return nil end
  return id_end, data
end
-- The TTL (ms) of a key that expires at `at`, counted from the request's
-- time `now`, so the server's clock never decides when a session ends.
local function ttl(at, now)
  local t = tonumber(at) - tonumber(now)
  if t < 1 then return 1 end
  if t > 9007199254740991 then return 9007199254740991 end
  return t
end

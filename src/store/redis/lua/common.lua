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
-- Expires `key` at `at`, counted from the request's time `now` (a TTL,
-- so the server's clock never decides when a session ends).
local function expire_at(key, at, now)
  if lt('9007199254740991', at) then at = '9007199254740991' end
  local ttl = tonumber(at) - tonumber(now)
  if ttl < 1 then ttl = 1 end
  redis.call('PEXPIRE', key, ttl)
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

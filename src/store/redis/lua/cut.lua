-- KEYS[1] = a cutoff key. ARGV: 1 the value (a time or an epoch), 2
-- keep_until, 3 now. The value only moves forward; the key is kept at least
-- until keep_until (its TTL only grows, counted from the request's time).
-- Values are decimals without leading zeros: the longer is the larger.
local function lt(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local cur = redis.call('GET', KEYS[1])
if not cur or lt(cur, ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
end
local want = tonumber(ARGV[2]) - tonumber(ARGV[3])
if want < 1 then want = 1 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 or ttl < want then
  redis.call('PEXPIRE', KEYS[1], want)
end
return 1

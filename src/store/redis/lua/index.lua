redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local last = nil
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
  if not last or tonumber(last) < tonumber(ARGV[i]) then last = ARGV[i] end
end
-- The index lives as long as its latest deadline, counted from `now`.
local ttl = last and (tonumber(last) - tonumber(ARGV[1]))
if ttl and ttl > 0 and redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1

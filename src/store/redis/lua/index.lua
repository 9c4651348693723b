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

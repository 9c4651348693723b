if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return 1 end
local all = redis.call('HGETALL', KEYS[1])
if #all ~= #ARGV - 1 then return 0 end
local read = {}
for i = 2, #ARGV, 2 do read[ARGV[i]] = ARGV[i + 1] end
for i = 1, #all, 2 do
  if read[all[i]] ~= all[i + 1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return 1

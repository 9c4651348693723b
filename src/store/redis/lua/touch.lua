local t = live(ARGV[1])
if not t then return 0 end
local ls = t[3]
if lt(ls, ARGV[2]) then ls = ARGV[2] end
local exp = ARGV[3]
if lt(t[2], exp) then exp = t[2] end
redis.call('HSET', KEYS[1], 'last_seen', ls, 'expires_at', exp)
expire_at(KEYS[1], exp, ARGV[1])
return 1

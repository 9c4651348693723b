-- KEYS[1] = session key (single server only: the cutoff keys are in other
-- slots). ARGV: 1 the global cutoff key, 2 the users' cutoff key prefix.
-- Returns {the hash as HGETALL gives it, the global cutoff, the user's
-- cutoff, whether the record names its user's cutoff key ('uc')}.
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return {h, false, false, 0} end
local uc = redis.call('HGET', KEYS[1], 'uc')
local mine = false
if uc then mine = redis.call('GET', ARGV[2] .. uc) end
return {h, redis.call('GET', ARGV[1]), mine, uc and 1 or 0}

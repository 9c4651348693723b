local v = read(KEYS[1])
if v == false then return {-2} end
if not v then return {false} end
if string.sub(v, 1, 2) ~= 'S2' then return {v} end
local mine = false
if signed_in(v) then mine = redis.call('GET', ARGV[2] .. string.sub(v, 154, 217)) end
return {v, redis.call('GET', ARGV[1]), mine}

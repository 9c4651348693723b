local now = ARGV[1]
local h = redis.pcall('GETRANGE', KEYS[1], 0, 70)
if type(h) == 'table' then return -2 end
if not live(h, now) then return 0 end
local deadline = string.sub(h, 23, 42)
local e, t = ARGV[3], ARGV[4]
if deadline < e then
  e = deadline
  t = ttl(e, now)
end
local ls = string.sub(h, 43, 62)
if ls < ARGV[2] then ls = ARGV[2] end
redis.call('SETRANGE', KEYS[1], 2, e .. deadline .. ls)
redis.call('PEXPIRE', KEYS[1], t)
return 1

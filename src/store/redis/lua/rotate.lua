local now = ARGV[1]
if not live(now) then
  local r = redis.call('HMGET', KEYS[1], 'retired', 'at', 'overlap_until', 'until')
  if r[1] and r[2] and r[3] and r[4] and lt(now, r[4]) then return {'retired', r[1], r[2], r[3], r[4]} end
  return {'gone'}
end
if live(now, KEYS[2]) then return {'taken'} end
local u = redis.call('HGET', KEYS[2], 'until')
if u and lt(now, u) then return {'taken'} end
local all = redis.call('HGETALL', KEYS[1])
local old, data = {}, {}
local clear = ARGV[9] == '1'
local keep = nil
local i = 17
local n = tonumber(ARGV[16]) or -1
if n >= 0 then
  keep = {}
  for j = i, i + n - 1 do keep[ARGV[j]] = true end
  i = i + n
end
for j = 1, #all, 2 do
  local f = all[j]
  if string.sub(f, 1, 2) == 'd:' then
    if not clear and (not keep or keep[f]) then data[f] = all[j + 1] end
  else
    old[f] = all[j + 1]
  end
end
if not old['v'] or old['meta'] ~= ARGV[3] then return {'changed'} end
local touches = clear or #ARGV >= i
for j = i, #ARGV, 2 do
  if ARGV[j + 1] == '' then data[ARGV[j]] = nil else data[ARGV[j]] = ARGV[j + 1] end
end
local size = 0
for f, v in pairs(data) do size = size + #f - 2 + #v end
local max = tonumber(ARGV[10]) or 0
if touches and max > 0 and size > max then return {'too_large'} end
local deadline = old['absolute_deadline']
if ARGV[11] ~= '' then deadline = ARGV[11] end
local exp = ARGV[7]
if lt(deadline, exp) then exp = deadline end
local persistent = old['persistent'] or '0'
if ARGV[8] ~= '' then persistent = ARGV[8] end
local meta = old['meta']
if ARGV[4] ~= '' then meta = ARGV[4] end
local out = {'v', old['v'], 'meta', meta, 'last_seen', ARGV[6], 'expires_at', exp,
  'absolute_deadline', deadline, 'persistent', persistent, 'size', string.format('%d', size)}
if ARGV[5] ~= '' then
  out[#out + 1] = 'predecessor'
  out[#out + 1] = ARGV[5]
end
if ARGV[15] ~= '' then
  out[#out + 1] = 'uc'
  out[#out + 1] = ARGV[15]
end
for f, v in pairs(data) do
  out[#out + 1] = f
  out[#out + 1] = v
end
redis.call('DEL', KEYS[2])
hset_all(KEYS[2], out, 1)
expire_at(KEYS[2], exp, now)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'retired', ARGV[2], 'at', ARGV[12], 'overlap_until', ARGV[13], 'until', ARGV[14])
expire_at(KEYS[1], ARGV[14], now)
return {'done'}

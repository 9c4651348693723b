local now = ARGV[1]
local v = read(KEYS[1])
if v == false then return {'legacy'} end
if not v or not live(v, now) then
  if v then
    local succ, untl = pointer(v)
    if succ and now < untl then return {'retired', succ, string.sub(v, 3, 22), string.sub(v, 23, 42), untl} end
  end
  return {'gone'}
end
local w = read(KEYS[2])
if w == false then return {'legacy'} end
if w then
  if live(w, now) then return {'taken'} end
  local _, untl = pointer(w)
  if untl and now < untl then return {'taken'} end
end
local id_end, pos = sections(v)
if not id_end then return {'malformed'} end
if string.sub(v, 68, id_end) ~= ARGV[3] then return {'changed'} end
local n = tonumber(ARGV[15])
local first, keep = 16, nil
if n >= 0 then
  keep = {}
  for j = 16, 15 + n do keep[ARGV[j]] = true end
  first = 16 + n
end
local clear = ARGV[9] == '1'
local touches = clear or #ARGV >= first
local data
if touches or keep then
  local max = tonumber(ARGV[10])
  local ok, merged, size = pcall(merge, v, pos, clear, keep, first, max)
  if not ok then return {'malformed'} end
  if touches and max > 0 and size > max then return {'too_large'} end
  data = merged
else
  data = string.sub(v, pos)
end
local deadline = ARGV[11]
if deadline == '' then deadline = string.sub(v, 23, 42) end
local e = ARGV[7]
if deadline < e then e = deadline end
local p = ARGV[8]
if p == '' then p = string.sub(v, 63, 63) end
local identity, pred = ARGV[4], ARGV[5]
redis.call('SET', KEYS[2], 'S2' .. e .. deadline .. ARGV[6] .. p
  .. struct.pack('<I4c0I4c0', #identity, identity, #pred, pred) .. data, 'PX', ttl(e, now))
redis.call('SET', KEYS[1], 'R2' .. ARGV[12] .. ARGV[13] .. ARGV[14] .. ARGV[2], 'PX', ttl(ARGV[14], now))
return {'done'}

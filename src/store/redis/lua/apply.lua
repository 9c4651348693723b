local now = ARGV[1]
local v = read(KEYS[1])
if v == false then return -2 end
if not v or not live(v, now) then return 0 end
local id_end, pos = sections(v)
if not id_end then return -3 end
local clear = ARGV[6] == '1'
local data = nil
if clear or #ARGV >= 9 then
  local max = tonumber(ARGV[8])
  local ok, merged, size = pcall(merge, v, pos, clear, nil, 9, max)
  if not ok then return -3 end
  if max > 0 and size > max then return -1 end
  data = merged
end
local deadline = string.sub(v, 23, 42)
local e, t = ARGV[3], ARGV[4]
if deadline < e then
  e = deadline
  t = ttl(e, now)
end
local ls = string.sub(v, 43, 62)
if ls < ARGV[2] then ls = ARGV[2] end
local p = ARGV[5]
if p == '' then p = string.sub(v, 63, 63) end
local rest
if ARGV[7] == '1' then
  rest = string.sub(v, 64, id_end) .. '\0\0\0\0' .. (data or string.sub(v, pos))
elseif data then
  rest = string.sub(v, 64, pos - 1) .. data
else
  rest = string.sub(v, 64)
end
redis.call('SET', KEYS[1], 'S2' .. e .. deadline .. ls .. p .. rest, 'PX', t)
return 1

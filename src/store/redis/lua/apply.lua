local now, last_seen, expires_at, persistent, clear, close = struct.unpack('c20c20c20c1c1c1', ARGV[1])
local v = read(KEYS[1])
if v == false then return -2 end
if not v or #v < 71 then return 0 end
local tag, exp, deadline, ls, p, ilen = struct.unpack('c2c20c20c20c1<I4', v)
if tag ~= 'S2' or not (now < exp and now < deadline) then return 0 end
local id_end = 67 + ilen
if id_end + 4 > #v then return -3 end
local pos = id_end + 5 + struct.unpack('<I4', v, id_end + 1)
if pos > #v + 1 then return -3 end
local data = nil
if clear == '1' or #ARGV >= 4 then
  local max = tonumber(ARGV[3])
  local ok, merged, size = pcall(merge, v, pos, clear == '1', nil, 4, max)
  if not ok then return -3 end
  if max > 0 and size > max then return -1 end
  data = merged
end
local t = ARGV[2]
if deadline < expires_at then
  expires_at = deadline
  t = ttl(expires_at, now)
end
if ls < last_seen then ls = last_seen end
if persistent ~= '-' then p = persistent end
local rest
if close == '1' then
  rest = string.sub(v, 64, id_end) .. '\0\0\0\0' .. (data or string.sub(v, pos))
elseif data then
  rest = string.sub(v, 64, pos - 1) .. data
else
  rest = string.sub(v, 64)
end
redis.call('SET', KEYS[1], 'S2' .. expires_at .. deadline .. ls .. p .. rest, 'PX', t)
return 1

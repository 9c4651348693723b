local now, user, n = ARGV[2], ARGV[3], tonumber(ARGV[4])
local function owner(meta)
  local ok, m = pcall(cjson.decode, meta)
  if not ok or type(m) ~= 'table' or type(m['auth']) ~= 'table' then return nil end
  return m['auth']['user']
end
local ended, followed = 0, {}
for i = 1, n do
  local key, hex = KEYS[i], ARGV[4 + i]
  for hop = 1, 16 do
    local f = redis.pcall('HMGET', key, 'retired', 'until', 'meta', 'expires_at', 'absolute_deadline')
    if f.err then break end
    local succ = f[1]
    if succ then
      if not f[2] or not lt(now, f[2]) or #succ ~= 64 or not string.match(succ, '^%x+$') then break end
      hex = succ
      key = ARGV[1] .. '{' .. succ .. '}'
    else
      if f[3] and owner(f[3]) == user then
        redis.call('DEL', key)
        if f[4] and f[5] and lt(now, f[4]) and lt(now, f[5]) then ended = ended + 1 end
        if hop > 1 then followed[#followed + 1] = hex end
      end
      break
    end
  end
end
if #KEYS > n then
  local members = {}
  for i = 5 + n, #ARGV do members[#members + 1] = ARGV[i] end
  for _, h in ipairs(followed) do members[#members + 1] = h end
  for from = 1, #members, 1000 do
    redis.call('ZREM', KEYS[n + 1], unpack(members, from, math.min(from + 999, #members)))
  end
end
local out = {ended}
for _, h in ipairs(followed) do out[#out + 1] = h end
return out

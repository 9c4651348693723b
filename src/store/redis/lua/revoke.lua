local now, digest, n = ARGV[2], ARGV[3], tonumber(ARGV[4])
-- Every key is read before any is deleted: a layout 1 key stops the
-- script with nothing changed (the caller migrates it and calls again).
local doomed, seen, ended, followed, legacy = {}, {}, 0, {}, {}
for i = 1, n do
  local key, hex = KEYS[i], ARGV[4 + i]
  for hop = 1, 16 do
    local v = read(key)
    if v == false then
      legacy[#legacy + 1] = hex
      break
    end
    if not v then break end
    local succ, untl = pointer(v)
    if succ then
      if not (now < untl) or not string.match(succ, '^%x+$') then break end
      hex = succ
      key = ARGV[1] .. '{' .. succ .. '}'
    else
      -- A record of the user being revoked (by the digest in its identity).
      if signed_in(v) and string.sub(v, 154, 217) == digest and not seen[key] then
        seen[key] = true
        doomed[#doomed + 1] = key
        if live(v, now) then ended = ended + 1 end
        if hop > 1 then followed[#followed + 1] = hex end
      end
      break
    end
  end
end
if #legacy > 0 then return {'legacy', unpack(legacy)} end
for from = 1, #doomed, 1000 do
  redis.call('DEL', unpack(doomed, from, math.min(from + 999, #doomed)))
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

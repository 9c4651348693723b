local now = ARGV[2]
local key, hex, from = KEYS[1], ARGV[3], nil
local doomed = {}
for _ = 1, 16 do
  local v = read(key)
  if v == false then return hex end
  if not v then break end
  local succ, untl = pointer(v)
  if from and not succ then
    -- The live end of the chain: deleted only while unused (it still
    -- names the last pointer followed as its predecessor).
    local id_end, pos
    if #v >= 71 and string.sub(v, 1, 2) == 'S2' then id_end, pos = sections(v) end
    if id_end and pos - id_end == 69 and string.sub(v, id_end + 5, pos - 1) == from then
      doomed[#doomed + 1] = key
    end
    break
  end
  doomed[#doomed + 1] = key
  if not succ or not (now < untl) or not string.match(succ, '^%x+$') then break end
  from, hex = hex, succ
  key = ARGV[1] .. '{' .. succ .. '}'
end
if #doomed > 0 then redis.call('DEL', unpack(doomed)) end
return #doomed

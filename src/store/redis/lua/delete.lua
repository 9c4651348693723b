local key, hex, pointer = KEYS[1], ARGV[3], nil
local n = 0
for _ = 1, 16 do
  local f = redis.pcall('HMGET', key, 'retired', 'until', 'predecessor')
  if f.err then f = {} end
  local succ, untl, pred = f[1], f[2], f[3]
  if pointer and not succ then
    -- The live end of the chain (or nothing): an unused successor only.
    if pred == pointer then n = n + redis.call('DEL', key) end
    return n
  end
  n = n + redis.call('DEL', key)
  if not succ or not untl or not lt(ARGV[2], untl) then return n end
  if #succ ~= 64 or not string.match(succ, '^%x+$') then return n end
  pointer, hex = hex, succ
  key = ARGV[1] .. '{' .. succ .. '}'
end
return n

local t = live(ARGV[1])
if not t then return 0 end
local clear = ARGV[5] == '1'
local touches = clear or #ARGV >= 8
-- The data size after the merge (keys without 'd:' plus raw values): the
-- stored `size` field moved by this change set's delta, counted afresh when
-- the field is missing (and a cap needs it) or would refuse the change.
local size = nil
if touches then
  local max = tonumber(ARGV[6]) or 0
  local add, sub = 0, 0
  for i = 8, #ARGV, 2 do
    local f, v = ARGV[i], ARGV[i + 1]
    if not clear then
      local had = redis.call('HSTRLEN', KEYS[1], f)
      if had > 0 then sub = sub + #f - 2 + had end
    end
    if v ~= '' then add = add + #f - 2 + #v end
  end
  if clear then
    size = add
  else
    local stored = tonumber(redis.call('HGET', KEYS[1], 'size'))
    if stored then
      size = stored - sub + add
      if max > 0 and size > max then size = data_size() - sub + add end
    elseif max > 0 then
      size = data_size() - sub + add
    end
  end
  if max > 0 and size > max then return -1 end
end
-- Every removal before any write (a clear, then a set of a cleared key),
-- and one HDEL and one HSET for all fields (in chunks of 1000 arguments).
local list = {}
local function push(cmd, a, b)
  list[#list + 1] = a
  if b then list[#list + 1] = b end
  if #list >= 1000 then
    redis.call(cmd, KEYS[1], unpack(list))
    list = {}
  end
end
if clear then
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(f, 1, 2) == 'd:' then push('HDEL', f) end
  end
end
for i = 8, #ARGV, 2 do
  if ARGV[i + 1] == '' then push('HDEL', ARGV[i]) end
end
if ARGV[7] == '1' then push('HDEL', 'predecessor') end
if #list > 0 then redis.call('HDEL', KEYS[1], unpack(list)) end
list = {}
for i = 8, #ARGV, 2 do
  if ARGV[i + 1] ~= '' then push('HSET', ARGV[i], ARGV[i + 1]) end
end
local ls = t[3]
if lt(ls, ARGV[2]) then ls = ARGV[2] end
local exp = ARGV[3]
if lt(t[2], exp) then exp = t[2] end
list[#list + 1] = 'last_seen'
list[#list + 1] = ls
list[#list + 1] = 'expires_at'
list[#list + 1] = exp
if ARGV[4] ~= '' then
  list[#list + 1] = 'persistent'
  list[#list + 1] = ARGV[4]
end
if size then
  list[#list + 1] = 'size'
  list[#list + 1] = string.format('%d', size)
end
redis.call('HSET', KEYS[1], unpack(list))
expire_at(KEYS[1], exp, ARGV[1])
return 1

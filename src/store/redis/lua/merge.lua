-- Whether key `a` sorts before key `b` byte by byte, as Rust orders them
-- (Lua's `<` follows the server's locale).
local function before(a, b)
  local n = #a
  if #b < n then n = #b end
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
-- The data entries of record `v` from `pos` (none when `clear`; when
-- `keep` is a table, only its keys) merged with the changes ARGV[first..]
-- (key/value pairs sorted by key, each key once; an empty value removes):
-- the merged data (`Data::packed`) and its size (`Data::size`). Once the
-- changes are merged, the rest is copied whole when the size cannot pass
-- `max` (or there is no cap: `max` 0), and the size returned is an upper
-- bound. Errors when an entry does not fit in `v` (call it with pcall).
-- Appends the entry of key `c` with value `val` to `out` (nothing for a
-- removal: `val` empty); returns its size.
local function put(out, c, val)
  if val == '' then return 0 end
  out[#out + 1] = struct.pack('<I4c0I4c0', #c, c, #val, val)
  return #c + #val
end
local function merge(v, pos, clear, keep, first, max)
  local out, size, last = {}, 0, #v
  if clear then pos = last + 1 end
  local run = pos
  local i, c = first, ARGV[first]
  -- The first byte of the next change's key (-1 for '').
  local cb = c and (string.byte(c, 1) or -1)
  while pos <= last do
    if not c and not keep and (max == 0 or size + last - pos + 1 <= max) then
      size = size + last - pos + 1
      break
    end
    local key, vl, at = struct.unpack('<I4c0I4', v, pos)
    local nxt = at + vl
    if nxt > last + 1 then error('an entry does not fit') end
    local kb = string.byte(key, 1) or -1
    -- Changes that sort before this key are new keys.
    while c and c ~= key and (cb < kb or (cb == kb and before(c, key))) do
      if run < pos then out[#out + 1] = string.sub(v, run, pos - 1) end
      run = pos
      size = size + put(out, c, ARGV[i + 1])
      i = i + 2
      c = ARGV[i]
      cb = c and (string.byte(c, 1) or -1)
    end
    if c == key or (keep and not keep[key]) then
      -- Replaced, removed, or not retained.
      if run < pos then out[#out + 1] = string.sub(v, run, pos - 1) end
      run = nxt
      if c == key then
        size = size + put(out, c, ARGV[i + 1])
        i = i + 2
        c = ARGV[i]
        cb = c and (string.byte(c, 1) or -1)
      end
    else
      size = size + #key + vl
    end
    pos = nxt
  end
  if run <= last then out[#out + 1] = string.sub(v, run) end
  while c do
    size = size + put(out, c, ARGV[i + 1])
    i = i + 2
    c = ARGV[i]
  end
  return table.concat(out), size
end

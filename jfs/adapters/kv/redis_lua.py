"""The two Lua scripts of the Redis adapter (layout and protocol: docs/adr/0002-redis-transactions.md).

Port key K lives in the string ``"k" .. K``; the sorted set ``"i"`` holds every K with score 0. Both scripts
start with the same *validation section* of ARGV, which re-checks a transaction's read set:

    np, nr,
    np x (key, mode, expected)   mode 'a': absent; 'v': value == expected; 'h': sha1hex(value) == expected
    nr x (begin, end, incl, keys_only, digest)
                                 range [begin, end) (or [begin, end] when incl == '1') still has `digest`

A failed check makes either script return a bulk string naming the read that changed, and change nothing.

READ (the 2nd and later read rounds of a body, first-round scans, `scan_iter`), after the validation section:
    (nothing)                    -> empty array: validation only
    'g', key1, key2, ...         -> array of values (nil for absent)
    's', begin, end, limit (0 = none), keys_only ('1'/'0'), want_digest ('1'/'0')
                                 -> array {digest or '', k1, v1, k2, v2, ...} ({digest, k1, k2, ...} keys only)

COMMIT, ARGV = nw, nd, na, <validation section>, nw x (key, value), nd x key, na x (key, delta)
    -> 1 after applying puts, then deletes, then blind adds (8-byte little-endian counters).

The digest is the sha1 of the length-prefixed keys (and values): equal digests mean an equal range.
"""

from __future__ import annotations

_LIB = r"""
local function range_keys(b, e, incl, limit)
  local hi = (incl and '[' or '(') .. e
  if limit > 0 then
    return redis.call('ZRANGEBYLEX', 'i', '[' .. b, hi, 'LIMIT', 0, limit)
  end
  return redis.call('ZRANGEBYLEX', 'i', '[' .. b, hi)
end

-- values of port keys (false for absent), MGET in chunks: unpack() has a small argument limit
local function mget(keys, from)
  local out = {}
  local n = #keys
  for i = from, n, 500 do
    local ks = {}
    for x = i, math.min(i + 499, n) do ks[#ks + 1] = 'k' .. keys[x] end
    local vs = redis.call('MGET', unpack(ks))
    for x = 1, #ks do out[#out + 1] = vs[x] end
  end
  return out
end

local function range_values(keys)
  local vals = mget(keys, 1)
  for x = 1, #vals do
    if not vals[x] then return redis.error_reply('jfs: index and data out of sync in a scanned range') end
  end
  return vals
end

local function digest(keys, vals)
  local parts = {}
  for x = 1, #keys do
    parts[#parts + 1] = tostring(#keys[x]) .. ':' .. keys[x]
    if vals then parts[#parts + 1] = tostring(#vals[x]) .. ':' .. vals[x] end
  end
  return redis.sha1hex(table.concat(parts))
end

-- checks the validation section starting at ARGV[i]; returns the index after it, or nil and a reason
local function validate(i)
  local np, nr = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  for p = 1, np do
    local cur = redis.call('GET', 'k' .. ARGV[i])
    local mode, want = ARGV[i + 1], ARGV[i + 2]
    local ok
    if mode == 'a' then ok = not cur
    elseif mode == 'v' then ok = (cur == want)
    else ok = cur and redis.sha1hex(cur) == want end
    if not ok then return nil, 'point read #' .. p .. ' changed' end
    i = i + 3
  end
  for r = 1, nr do
    local keys = range_keys(ARGV[i], ARGV[i + 1], ARGV[i + 2] == '1', 0)
    local vals = nil
    if ARGV[i + 3] ~= '1' then
      vals = range_values(keys)
      if vals.err then return vals end
    end
    if digest(keys, vals) ~= ARGV[i + 4] then return nil, 'scanned range #' .. r .. ' changed' end
    i = i + 5
  end
  return i
end
"""

READ = (
    _LIB
    + r"""
local i, why = validate(1)
if not i then return why end
if type(i) == 'table' then return i end
if not ARGV[i] then return {} end
if ARGV[i] == 'g' then
  local keys = {}
  for x = i + 1, #ARGV do keys[#keys + 1] = ARGV[x] end
  return mget(keys, 1)
end
local keys = range_keys(ARGV[i + 1], ARGV[i + 2], false, tonumber(ARGV[i + 3]))
local keys_only = ARGV[i + 4] == '1'
local vals = nil
if not keys_only then
  vals = range_values(keys)
  if vals.err then return vals end
end
local out = {''}
if ARGV[i + 5] == '1' then out[1] = digest(keys, vals) end
for x = 1, #keys do
  out[#out + 1] = keys[x]
  if vals then out[#out + 1] = vals[x] end
end
return out
"""
)

COMMIT = (
    _LIB
    + r"""
local nw, nd, na = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local i, why = validate(4)
if not i then return why end
if type(i) == 'table' then return i end
-- check the counters before writing anything: a script that fails half-way is not rolled back
local a = i + 2 * nw + nd
for x = a, a + 2 * (na - 1), 2 do
  local cur = redis.call('GET', 'k' .. ARGV[x])
  if cur and #cur > 0 and #cur < 8 then return redis.error_reply('jfs: counter value is shorter than 8 bytes') end
end
for s = 0, nw - 1, 250 do
  local kv, idx = {}, {}
  for x = s, math.min(s + 249, nw - 1) do
    local key = ARGV[i + 2 * x]
    kv[#kv + 1] = 'k' .. key
    kv[#kv + 1] = ARGV[i + 2 * x + 1]
    idx[#idx + 1] = 0
    idx[#idx + 1] = key
  end
  redis.call('MSET', unpack(kv))
  redis.call('ZADD', 'i', unpack(idx))
end
i = i + 2 * nw
for s = 0, nd - 1, 500 do
  local ks, idx = {}, {}
  for x = s, math.min(s + 499, nd - 1) do
    ks[#ks + 1] = 'k' .. ARGV[i + x]
    idx[#idx + 1] = ARGV[i + x]
  end
  redis.call('DEL', unpack(ks))
  redis.call('ZREM', 'i', unpack(idx))
end
i = i + nd
for _ = 1, na do
  local key = ARGV[i]
  local cur = redis.call('GET', 'k' .. key)
  local n = 0
  if cur and #cur > 0 then n = struct.unpack('<i8', cur) end
  redis.call('SET', 'k' .. key, struct.pack('<i8', n + tonumber(ARGV[i + 1])))
  redis.call('ZADD', 'i', 0, key)
  i = i + 2
end
return 1
"""
)

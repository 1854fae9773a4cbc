"""The Lua scripts of the Redis adapter (layout and protocol: docs/adr/0002-redis-transactions.md).

Port key K lives in the string ``"k" .. K`` (its *data key* DK); the sorted set ``"i"`` holds every K with
score 0. Both scripts receive a transaction's read set as a *validation section* of ARGV:

    np point reads:  np data keys, then np (mode, expected) pairs
                     mode 'a': absent; 'v': value == expected; 'h': sha1hex(value) == expected
    nr scans:        nr (begin, end, incl, keys_only, digest) groups
                     the range [begin, end) (or [begin, end] when incl == '1') still has `digest`

A failed check makes either script return a bulk string naming the read that changed, and change nothing.

READ — ARGV: np, nr, op, nx, [scan arguments], nx data keys, np data keys, np (mode, expected), nr ranges
    op 'v'  validation only                   -> empty array
    op 'g'  nx data keys to read              -> array of their values (nil for absent); one MGET reads
                                                 them together with the validated points
    op 'f'  follow arguments: source, start, stop, prefix, suffix, reverse ('1'/'0'), then nx data keys
                                              -> their values, then the value of the data key
                                                 prefix .. value[start:stop] (reversed) .. suffix named by
                                                 the value of data key #source (0-based; nil if too short)
    op 's'  scan arguments: begin, end, limit (0 = none), keys_only ('1'/'0'), want_digest ('1'/'0')
                                              -> {digest or '', keys, values} ({digest or '', keys} keys
                                                 only): two arrays, not interleaved (ADR 0060); a nil
                                                 value (index without data) is reported by the caller

COMMIT — ARGV: np, nr, nw, nd, na, nc, nq, nw (DK, value), nw (0, K), nd DK, nd K, na DK, np data keys,
               na (K, delta), nc (begin, end), np (mode, expected), nr ranges, nq (DK, K, at, suffix)
    -> 1 after deleting every key of the nc cleared ranges [begin, end), then applying deletes, puts,
    blind adds (8-byte little-endian counters; an add applies on top of a put or delete of the same key in
    the transaction) and the nq appends (APPEND of `suffix` to DK, K indexed when `at` is 0). An append is
    checked by length only — STRLEN(DK) == at, a bulk string naming it otherwise — so its cost does not grow
    with the value (a chunk's slice records, ADR 0055). Everything that can fail is checked before the first
    write, because a script that fails half-way is not rolled back.

FOLLOW — ARGV: source, start, stop, prefix, suffix, reverse, then nx data keys -> as READ's op 'f' with
    nothing to validate (the first round of a transaction: a LOOKUP's only one). A script of its own
    because every call of READ builds its helper closures and parses its counts (measured: Redis CPU per
    call ~40 % less, docs/adr/0047-redis-mount-lookup-fewer-python-layers.md).

SCAN — ARGV: begin, end, limit (0 = none), keys_only ('1'/'0') -> {keys} or {keys, values}: the keys of
    [begin, end) ascending (at most `limit`) and, unless keys only, the values of their data keys in the same
    order (nil where the index names a key without data: the caller reports it). As READ's op 's' with
    nothing to validate and no digest (a transaction's first round), without READ's per-call closures
    (docs/adr/0060-redis-listing-scans-as-two-arrays.md).

Why this shape: on Redis every Lua string built and every table slot filled costs about as much as a
redis.call; keys therefore arrive already prefixed and grouped so that the scripts pass ARGV slices
straight to MGET / MSET / ZADD / DEL / ZREM (`unpack(ARGV, a, b)`) instead of building tables. The digest
is the sha1 of the length-prefixed keys (and values): equal digests mean an equal range; an empty range's
digest is a constant.
"""

from __future__ import annotations

EMPTY_DIGEST = b"da39a3ee5e6b4b0d3255bfef95601890afd80709"  # sha1 of nothing

_SCAN_VALUES = r"""
-- MGET of the data keys of `keys` as one array (false where one is missing: the caller reports it)
local function scan_values(keys)
  local n = #keys
  if n == 0 then return {} end
  if n <= 4000 then
    local dks = {}
    for x = 1, n do dks[x] = 'k' .. keys[x] end
    return redis.call('MGET', unpack(dks))
  end
  local vals = {}
  for a = 1, n, 4000 do
    local e = math.min(a + 3999, n)
    local dks = {}
    for x = a, e do dks[x - a + 1] = 'k' .. keys[x] end
    local vs = redis.call('MGET', unpack(dks))
    for x = 1, e - a + 1 do vals[a + x - 1] = vs[x] end
  end
  return vals
end
"""
"""Lua: the data values of a scan's keys, 4,000 per MGET (shared by `_LIB` and `SCAN`)."""

_LIB = _SCAN_VALUES + r"""
local EMPTY = 'da39a3ee5e6b4b0d3255bfef95601890afd80709'

-- redis.call(cmd, [head,] ARGV[a..b]) in chunks that unpack() can handle; returns the concatenated replies
local function call_argv(cmd, head, a, b)
  if b < a then return {} end
  if b - a < 4000 then
    if head then return redis.call(cmd, head, unpack(ARGV, a, b)) end
    return redis.call(cmd, unpack(ARGV, a, b))
  end
  local out = {}
  for s = a, b, 4000 do
    local e = math.min(s + 3999, b)
    local part
    if head then part = redis.call(cmd, head, unpack(ARGV, s, e)) else part = redis.call(cmd, unpack(ARGV, s, e)) end
    if type(part) == 'table' then
      for x = 1, #part do out[#out + 1] = part[x] end
    end
  end
  return out
end

-- redis.call(cmd, [head,] list...) in chunks (list holds pairs: chunks of an even length)
local function call_list(cmd, head, list)
  for s = 1, #list, 4000 do
    local e = math.min(s + 3999, #list)
    if head then redis.call(cmd, head, unpack(list, s, e)) else redis.call(cmd, unpack(list, s, e)) end
  end
end

local function range_keys(b, e, incl, limit)
  local hi = (incl and '[' or '(') .. e
  if limit > 0 then
    return redis.call('ZRANGEBYLEX', 'i', '[' .. b, hi, 'LIMIT', 0, limit)
  end
  return redis.call('ZRANGEBYLEX', 'i', '[' .. b, hi)
end

-- values of the indexed keys `keys` (nil when one is missing: index and data out of sync)
local function range_values(keys)
  local n = #keys
  if n == 0 then return {} end
  local vals = {}
  for a = 1, n, 4000 do
    local dks = {}
    for x = a, math.min(a + 3999, n) do dks[#dks + 1] = 'k' .. keys[x] end
    local vs = redis.call('MGET', unpack(dks))
    for x = 1, #dks do
      if not vs[x] then return nil end
      vals[#vals + 1] = vs[x]
    end
  end
  return vals
end


local function digest(keys, vals)
  if #keys == 0 then return EMPTY end
  local parts = {}
  for x = 1, #keys do
    parts[#parts + 1] = tostring(#keys[x]) .. ':' .. keys[x]
    if vals then parts[#parts + 1] = tostring(#vals[x]) .. ':' .. vals[x] end
  end
  return redis.sha1hex(table.concat(parts))
end

local function out_of_sync()
  return redis.error_reply('jfs: index and data out of sync in a scanned range')
end

-- Checks np points whose values are vals[skip + 1 .. skip + np] and whose (mode, expected) pairs start at
-- ARGV[m], then nr ranges starting at ARGV[r]. Returns true, or a reason string, or an error reply.
local function validate(vals, skip, np, m, nr, r)
  for p = 1, np do
    local cur, mode, want = vals[skip + p], ARGV[m], ARGV[m + 1]
    local ok
    if mode == 'v' then ok = (cur == want)
    elseif mode == 'a' then ok = not cur
    else ok = cur and redis.sha1hex(cur) == want end
    if not ok then return 'point read #' .. p .. ' changed' end
    m = m + 2
  end
  for x = 1, nr do
    local keys = range_keys(ARGV[r], ARGV[r + 1], ARGV[r + 2] == '1', 0)
    local vals = nil
    if ARGV[r + 3] ~= '1' then
      vals = range_values(keys)
      if not vals then return out_of_sync() end
    end
    if digest(keys, vals) ~= ARGV[r + 4] then return 'scanned range #' .. x .. ' changed' end
    r = r + 5
  end
  return true
end
"""

READ = (
    _LIB
    + r"""
local np, nr, op, nx = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local s = 5
local g = s
if op == 's' then g = s + 5 elseif op == 'f' then g = s + 6 end
local vals = call_argv('MGET', nil, g, g + nx + np - 1)
local m = g + nx + np
local ok = validate(vals, nx, np, m, nr, m + 2 * np)
if ok ~= true then return ok end
if op == 'g' then
  if np == 0 then return vals end
  local got = {}
  for x = 1, nx do got[x] = vals[x] end
  return got
end
if op == 'f' then
  local out = {}
  for x = 1, nx do out[x] = vals[x] end
  out[nx + 1] = false
  local v = vals[tonumber(ARGV[s]) + 1]
  local b, e = tonumber(ARGV[s + 1]), tonumber(ARGV[s + 2])
  if v and #v >= e then
    local mid = string.sub(v, b + 1, e)
    if ARGV[s + 5] == '1' then mid = string.reverse(mid) end
    out[nx + 1] = redis.call('GET', ARGV[s + 3] .. mid .. ARGV[s + 4])
  end
  return out
end
if op ~= 's' then return {} end
local keys = range_keys(ARGV[s], ARGV[s + 1], false, tonumber(ARGV[s + 2]))
if ARGV[s + 3] == '1' then
  if ARGV[s + 4] == '1' then return {digest(keys, nil), keys} end
  return {'', keys}
end
if ARGV[s + 4] == '1' then
  local values = range_values(keys)
  if not values then return out_of_sync() end
  return {digest(keys, values), keys, values}
end
return {'', keys, scan_values(keys)}
"""
)

COMMIT = (
    _LIB
    + r"""
local np, nr = tonumber(ARGV[1]), tonumber(ARGV[2])
local nw, nd, na, nc = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local nq = tonumber(ARGV[7])
local puts = 8
local index = puts + 2 * nw
local dks = index + 2 * nw
local dels = dks + nd
local adks = dels + nd
local adds = adks + na + np
local clears = adds + 2 * na
local m = clears + 2 * nc
local stored = call_argv('MGET', nil, adks, adds - 1)  -- the counters' values, then the points'
local ok = validate(stored, na, np, m, nr, m + 2 * np)
if ok ~= true then return ok end
local appends = m + 2 * np + 5 * nr
local appends_end = appends + 4 * nq - 1
for x = appends, appends_end, 4 do
  if redis.call('STRLEN', ARGV[x]) ~= tonumber(ARGV[x + 2]) then
    return 'appended key #' .. ((x - appends) / 4 + 1) .. ' changed length'
  end
end

local counters, fresh = {}, {}
if na > 0 then
  local put, deleted = {}, {}
  for x = puts, index - 1, 2 do put[ARGV[x]] = ARGV[x + 1] end
  for x = dks, dels - 1 do deleted[ARGV[x]] = true end
  for x = 1, na do
    local dk = ARGV[adks + x - 1]
    local base = put[dk]
    if base == nil then
      if deleted[dk] then base = false else base = stored[x] end
      if not base then
        fresh[#fresh + 1] = 0
        fresh[#fresh + 1] = ARGV[adds + 2 * x - 2]
      end
    end
    local n = 0
    if base and #base > 0 then
      if #base < 8 then return redis.error_reply('jfs: counter value is shorter than 8 bytes') end
      n = struct.unpack('<i8', base)
    end
    counters[#counters + 1] = dk
    counters[#counters + 1] = struct.pack('<i8', n + tonumber(ARGV[adds + 2 * x - 1]))
  end
end
for x = clears, m - 1, 2 do
  local ks = range_keys(ARGV[x], ARGV[x + 1], false, 0)
  if #ks > 0 then
    local cdks = {}
    for y = 1, #ks do cdks[y] = 'k' .. ks[y] end
    call_list('DEL', nil, cdks)
    call_list('ZREM', 'i', ks)
  end
end
if nd > 0 then
  call_argv('DEL', nil, dks, dels - 1)
  call_argv('ZREM', 'i', dels, adks - 1)
end
if nw > 0 then
  call_argv('MSET', nil, puts, index - 1)
  call_argv('ZADD', 'i', index, dks - 1)
end
if na > 0 then
  call_list('MSET', nil, counters)
  call_list('ZADD', 'i', fresh)
end
for x = appends, appends_end, 4 do
  redis.call('APPEND', ARGV[x], ARGV[x + 3])
  if ARGV[x + 2] == '0' then redis.call('ZADD', 'i', 0, ARGV[x + 1]) end
end
return 1
"""
)

FOLLOW = r"""
local vals = redis.call('MGET', unpack(ARGV, 7))
local nx = #ARGV - 6
local v = vals[tonumber(ARGV[1]) + 1]
local e = tonumber(ARGV[3])
vals[nx + 1] = false
if v and #v >= e then
  local mid = string.sub(v, tonumber(ARGV[2]) + 1, e)
  if ARGV[6] == '1' then mid = string.reverse(mid) end
  vals[nx + 1] = redis.call('GET', ARGV[4] .. mid .. ARGV[5])
end
return vals
"""

SCAN = _SCAN_VALUES + r"""
local keys
local limit = tonumber(ARGV[3])
if limit > 0 then
  keys = redis.call('ZRANGEBYLEX', 'i', '[' .. ARGV[1], '(' .. ARGV[2], 'LIMIT', 0, limit)
else
  keys = redis.call('ZRANGEBYLEX', 'i', '[' .. ARGV[1], '(' .. ARGV[2])
end
local n = #keys
if ARGV[4] == '1' or n == 0 then return {keys} end
return {keys, scan_values(keys)}
"""

"""The TALLY Lua script of ADR 0093 (tried and not taken): a `jfs summary` directory page summed inside Redis.

The summary's page read (`jfs.adapters.kv.redis_batch.follow_range`: ZRANGEBYLEX of the index, MGET of the
dentries, MGET of the records they point at) sends every name, dentry and 72-byte record back to the mount,
which only adds them up. TALLY does the same three reads inside Redis and answers with the sums and only the
entries a summary keeps (directories, the `top` biggest of the rest). Measured in ADR 0093: the reply
shrinks to a few hundred bytes and the mount's CPU to a fifth, but Redis — what bounds the walk — spends
2.5× as much per page (every name, dentry and record becomes a Lua string, every key an argument object),
so jfs keeps the native reads. Kept here so `bench/summary_redis_reads.py` can measure it again; the wired
version (a `RangeTallyingKV` port method used by `jfs.app.meta.dir_totals`, with the contract test
tests/contract/test_summary_totals.py passing on Redis) is commit fe26e4d of branch wt-summary2.

TALLY — ARGV: ``"[" .. begin``, ``"(" .. end``, limit, the data key of the extra record, top, then the
record shape (size, 1-based position of the type byte, of the 8-byte big-endian length, the type codes
accepted, the directory's and the regular file's code) and the pointer (1-based start and stop in a value,
the data-key prefix, the suffix, reversed or not) -> ``{0, last, extra, files, length_hi, length_lo,
units_hi, units_lo, ndirs, name, value, record, ...}`` (sums split so that Lua's doubles stay exact:
length = hi·2³² + lo, space in 4 KiB units = hi·2²⁰ + lo), or ``{1}`` when a record has another shape.
"""

from __future__ import annotations

from typing import Any

from jfs.adapters.kv.resp import bulks
from jfs.domain import tally
from jfs.ports.kv import Pointer

TALLY = r"""
local limit, top = tonumber(ARGV[3]), tonumber(ARGV[5])
local size, tpos, lpos = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local dirt, regt = tonumber(ARGV[10]), tonumber(ARGV[11])
local pstart, pstop, ppre, psuf, prev = tonumber(ARGV[12]), tonumber(ARGV[13]), ARGV[14], ARGV[15], ARGV[16] == '1'
local valid = {}
for x = 1, #ARGV[9] do valid[string.byte(ARGV[9], x)] = true end
local names = redis.call('ZRANGEBYLEX', 'i', ARGV[1], ARGV[2], 'LIMIT', 0, limit)
local n = #names
local last = false
if n >= limit and n > 0 then last = names[n] end
local dks = {}
for x = 1, n do dks[x] = 'k' .. names[x] end
local vals = {}
for s = 1, n, 1000 do
  local part = redis.call('MGET', unpack(dks, s, math.min(s + 999, n)))
  for x = 1, #part do vals[s + x - 1] = part[x] end
end
local at, aks = {}, {}
for x = 1, n do
  local v = vals[x]
  if v and #v >= pstop then
    local mid = string.sub(v, pstart, pstop)
    if prev then mid = string.reverse(mid) end
    aks[#aks + 1] = ppre .. mid .. psuf
    at[#aks] = x
  end
end
local m = #aks
aks[m + 1] = ARGV[4]
local recs = {}
for s = 1, m + 1, 1000 do
  local part = redis.call('MGET', unpack(aks, s, math.min(s + 999, m + 1)))
  for x = 1, #part do recs[s + x - 1] = part[x] end
end
local files, lhi, llo, uhi, ulo = 0, 0, 0, 0, 0
local dirs, kept, units = {}, {}, {}
for y = 1, m do
  local r = recs[y]
  if r then
    if #r ~= size then return {1} end
    local t = math.floor(string.byte(r, tpos) / 16)
    if not valid[t] then return {1} end
    if t == dirt then
      dirs[#dirs + 1] = y
    else
      files = files + 1
      local u = 1
      if t == regt then
        local b1, b2, b3, b4, b5, b6, b7, b8 = string.byte(r, lpos, lpos + 7)
        local hi = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
        local lo = ((b5 * 256 + b6) * 256 + b7) * 256 + b8
        lhi, llo = lhi + hi, llo + lo
        local lu = math.ceil(lo / 4096)
        uhi = uhi + hi
        if hi == 0 and lu == 0 then lu = 1 end
        ulo = ulo + lu
        u = hi * 1048576 + lu
      else
        ulo = ulo + 1
      end
      if top < 0 then
        kept[#kept + 1] = y
      elseif top > 0 then
        local c = #kept
        if c < top or u > units[kept[c]] then
          if c >= top then kept[c] = nil; c = c - 1 end
          local p = c + 1
          while p > 1 and units[kept[p - 1]] < u do kept[p] = kept[p - 1]; p = p - 1 end
          kept[p] = y
          units[y] = u
        end
      end
    end
  end
end
local out = {0, last, recs[m + 1], files, lhi, llo, uhi, ulo, #dirs}
for _, y in ipairs(dirs) do
  local x = at[y]
  out[#out + 1] = names[x]; out[#out + 1] = vals[x]; out[#out + 1] = recs[y]
end
for _, y in ipairs(kept) do
  local x = at[y]
  out[#out + 1] = names[x]; out[#out + 1] = vals[x]; out[#out + 1] = recs[y]
end
return out
"""


SHAPE = (tally._SIZE, 1, tally._LENGTH_AT, tuple(tally._TYPES), tally._DIR, tally._REG)
"""The usual record as `jfs.domain.tally._columns` reads it: size, type byte, length offset, known types,
the directory's and the regular file's type."""

_SHA: dict[int, bytes] = {}


async def tally_page(kv: Any, begin: bytes, end: bytes, limit: int, pointer: Pointer, extra: bytes,
                     top: int) -> tuple[int, int, int, list[Any], list[Any], bytes | None, bytes | None] | None:
    """(files, length, space, dirs, top rows, extra record, last key) of one page; None: another shape."""
    sha = _SHA.get(id(kv))
    if sha is None:
        sha = _SHA[id(kv)] = await kv._call(b"SCRIPT", b"LOAD", TALLY)
    size, type_at, length_at, types, directory, regular = SHAPE
    args = (b"[" + begin, b"(" + end, limit, b"k" + extra, top, size, type_at + 1, length_at + 1, bytes(types),
            directory, regular, pointer.start + 1, pointer.stop, b"k" + pointer.prefix, pointer.suffix,
            b"1" if pointer.reverse else b"0")
    reply = await kv._client.evalsha(sha, len(args), bulks(args))
    if reply[0]:
        return None
    _, last, record, files, lhi, llo, uhi, ulo, ndirs = reply[:9]
    rest = reply[9:]
    rows = [(rest[i], rest[i + 1], rest[i + 2]) for i in range(0, len(rest), 3)]
    return files, (lhi << 32) + llo, ((uhi << 20) + ulo) << 12, rows[:ndirs], rows[ndirs:], record, last or None

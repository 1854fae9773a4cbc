"""Batched reads of many key ranges of the Redis adapter in one atomic script call (`RangeReadingKV`).

The offline tools (dump, fsck) read every inode's records; each inode is one range of the port's key space
(its xattrs can only be found by a range scan), and one READ script call per inode made a dump cost one
socket write, one Lua call and one reply per entry. The RANGES script reads a whole group of ranges in one
call: per range, ZRANGEBYLEX on the index ``i`` (at most `limit` keys) and one MGET of their data keys.

Consistency: a Lua script runs atomically, so every range of one call is read from one state of the
database (a stronger guarantee than a transaction per inode gave). Nothing is cached or remembered
between calls. The ranges take no part in any transaction's conflict detection (they are not read inside
one), like `Tx.scan_iter`.

RANGES — ARGV: limit, then (``"[" .. begin``, ``"(" .. end``) pairs (the ZRANGEBYLEX bounds, prefixed by the
client) -> {counts, keys, values}: the number of keys of each range (at most `limit`), all their keys in
order, and their values (one MGET of ``"k" .. key`` per 4,000 keys for the whole call; a missing value means
the index and the data are out of sync: EngineError). Flat arrays and one MGET per call rather than a
nested pair of arrays and an MGET per range: the server's CPU per range is what bounds a dump on Redis
(measured: 11.8 → 6.4 µs per range, docs/adr/0062-dump-load-worker-processes.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from jfs.ports.kv import EngineError

from .resp import bulks

if TYPE_CHECKING:
    from .redis import RedisKV

RANGES = r"""
local limit = ARGV[1]
local counts, ks, dks = {}, {}, {}
local n = 0
for a = 2, #ARGV, 2 do
  local got = redis.call('ZRANGEBYLEX', 'i', ARGV[a], ARGV[a + 1], 'LIMIT', 0, limit)
  local c = #got
  counts[#counts + 1] = c
  for x = 1, c do
    n = n + 1
    ks[n] = got[x]
    dks[n] = 'k' .. got[x]
  end
end
local vals = {}
for s = 1, n, 4000 do
  local part = redis.call('MGET', unpack(dks, s, math.min(s + 3999, n)))
  for x = 1, #part do vals[#vals + 1] = part[x] or false end
end
return {counts, ks, vals}
"""

SCRIPTS = (("ranges", RANGES),)
"""(name, source) of the scripts of this module, loaded with the adapter's own (`RedisKV._load_scripts`)."""

MAX_RANGES = 2000
"""Most ranges per script call (keeps the ARGV unpack and the reply bounded)."""


async def read_ranges(kv: RedisKV, ranges: Sequence[tuple[bytes, bytes]], limit: int) -> list[list[tuple[bytes, bytes]]]:
    """The (key, value) pairs of each ``[begin, end)`` of `ranges`, ascending, at most `limit` per range
    (a range that returns `limit` pairs may hold more). One script call per `MAX_RANGES` ranges; each call
    reads its ranges atomically. EngineError when the index names a key without data."""
    out: list[list[tuple[bytes, bytes]]] = []
    for s in range(0, len(ranges), MAX_RANGES):
        part = ranges[s: s + MAX_RANGES]
        flat = [b for begin, end in part for b in (b"[" + begin, b"(" + end)]
        counts, ks, vs = await kv._script("ranges", 1 + len(flat), bulks((limit, *flat)))
        if len(vs) != len(ks) or None in vs:  # a missing value (false in Lua) arrives as nil
            raise EngineError("jfs: index and data out of sync in a scanned range")
        pairs = list(zip(ks, vs, strict=True))
        at = 0
        for c in counts:
            out.append(pairs[at: at + c])
            at += c
    return out

"""Batched reads of many key ranges of the Redis adapter in one atomic script call (`RangeReadingKV`).

The offline tools (dump, fsck) read every inode's records; each inode is one range of the port's key space
(its xattrs can only be found by a range scan), and one READ script call per inode made a dump cost one
socket write, one Lua call and one reply per entry. The RANGES script reads a whole group of ranges in one
call: per range, ZRANGEBYLEX on the index ``i`` (at most `limit` keys) and one MGET of their data keys.

Consistency: a Lua script runs atomically, so every range of one call is read from one state of the
database (a stronger guarantee than a transaction per inode gave). Nothing is cached or remembered
between calls. The ranges take no part in any transaction's conflict detection (they are not read inside
one), like `Tx.scan_iter`.

RANGES — ARGV: limit, the number of ranges, their (``"[" .. begin``, ``"(" .. end``) pairs (the ZRANGEBYLEX
bounds, prefixed by the client), then the data keys of single keys to read -> {counts, keys, values,
point values}: the number of keys of each range (at most `limit`), all their keys in order, their values
(one MGET of ``"k" .. key`` per 4,000 keys for the whole call; a missing value means the index and the
data are out of sync: EngineError), and the values of the single keys (nil: no such key). Flat arrays and
one MGET per call rather than a nested pair of arrays and an MGET per range (Redis CPU per range about
halved, docs/adr/0062-dump-load-redis-marked-inodes-file-events-workers.md).

SPARSE — ARGV: ``"[" .. begin``, ``"(" .. end``, limit, a 1-based byte position, the bytes to skip -> {the last
key examined (nil when none), then the keys examined whose byte at that position is not one to skip (or
that are shorter)}: a walk of the index that sends back only the rare keys (dump: the inodes that have
records besides their attributes), at a fraction of a ZRANGEBYLEX per inode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from jfs.ports.kv import EngineError

from .resp import bulks

DATA = b"k"
"""The prefix of a data key (`jfs.adapters.kv.redis`: the value of key K lives in ``"k" .. K``)."""

if TYPE_CHECKING:
    from .redis import RedisKV

RANGES = r"""
local limit = ARGV[1]
local nr = tonumber(ARGV[2])
local counts, ks, dks = {}, {}, {}
local n = 0
for a = 3, 2 + 2 * nr, 2 do
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
local pvals = {}
if #ARGV > 2 + 2 * nr then
  pvals = redis.call('MGET', unpack(ARGV, 3 + 2 * nr, #ARGV))
end
return {counts, ks, vals, pvals}
"""

SPARSE = r"""
local got = redis.call('ZRANGEBYLEX', 'i', ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local at = tonumber(ARGV[4])
local skip = {}
for x = 1, #ARGV[5] do skip[string.byte(ARGV[5], x)] = true end
local out = {#got > 0 and got[#got] or false}
for x = 1, #got do
  local b = string.byte(got[x], at)
  if not (b and skip[b]) then out[#out + 1] = got[x] end
end
return out
"""

SCRIPTS = (("ranges", RANGES), ("sparse", SPARSE))
"""(name, source) of the scripts of this module, loaded with the adapter's own (`RedisKV._load_scripts`)."""

MAX_RANGES = 2000
"""Most ranges per script call (keeps the ARGV unpack and the reply bounded)."""


async def read_ranges(kv: RedisKV, ranges: Sequence[tuple[bytes, bytes]], limit: int,
                      points: Sequence[bytes] = ()) -> list[list[tuple[bytes, bytes]]]:
    """The (key, value) pairs of each ``[begin, end)`` of `ranges`, ascending, at most `limit` per range
    (a range that returns `limit` pairs may hold more), then for each of `points` ``[(key, value)]`` or
    ``[]`` when it has no value. One script call per `MAX_RANGES` ranges (and points); each call reads its
    ranges and points atomically. EngineError when the index names a key without data."""
    out: list[list[tuple[bytes, bytes]]] = []
    step = MAX_RANGES
    for s in range(0, max(len(ranges), 1), step):
        part = ranges[s: s + step]
        flat = [b for begin, end in part for b in (b"[" + begin, b"(" + end)]
        last = s + step >= len(ranges)
        pts = [DATA + p for p in points] if last else []
        if not part and not pts:
            break
        counts, ks, vs, pvs = await kv._script("ranges", 2 + len(flat) + len(pts),
                                                bulks((limit, len(part), *flat, *pts)))
        if len(vs) != len(ks) or None in vs:  # a missing value (false in Lua) arrives as nil
            raise EngineError("jfs: index and data out of sync in a scanned range")
        pairs = list(zip(ks, vs, strict=True))
        at = 0
        for c in counts:
            out.append(pairs[at: at + c])
            at += c
        if last:
            out += [[] if v is None else [(p, v)] for p, v in zip(points, pvs, strict=True)]
    return out


async def sparse_keys(kv: RedisKV, begin: bytes, end: bytes, limit: int, at: int,
                      skip: bytes) -> tuple[bytes | None, list[bytes]]:
    """`RangeReadingKV.sparse_keys`: one script call (ZRANGEBYLEX of the index, filtered in Lua)."""
    reply = await kv._script("sparse", 5, bulks((b"[" + begin, b"(" + end, limit, at + 1, skip)))
    return (reply[0] or None), reply[1:]


async def load_puts(kv: RedisKV, items: Sequence[tuple[bytes, bytes]]) -> None:
    """`BulkLoadingKV.load_puts`: the data keys by MSET and the index by ZADD (its members sorted),
    `LOAD_CHUNK` keys per command, pipelined on the connection (no script: Lua copies and interns every
    argument twice, which doubled the server's CPU per key of a load; sorted members: −15–20 % more)."""
    calls = []
    for s in range(0, len(items), LOAD_CHUNK):
        part = items[s: s + LOAD_CHUNK]
        calls.append(kv._write_command(b"MSET", *[x for k, v in part for x in (DATA + k, v)]))
        # the index in key order: each insert's skiplist path is mostly the previous one's, still in cache
        calls.append(kv._write_command(b"ZADD", b"i", *[x for k in sorted([k for k, _ in part]) for x in (b"0", k)]))
    await asyncio.gather(*calls)


LOAD_CHUNK = 10_000
"""Keys per MSET / ZADD of `load_puts`."""

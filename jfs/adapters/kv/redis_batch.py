"""Batched reads of many key ranges of the Redis adapter in one atomic script call (`RangeReadingKV`).

The offline tools (dump, fsck) read every inode's records; each inode is one range of the port's key space
(its xattrs can only be found by a range scan), and one READ script call per inode made a dump cost one
socket write, one Lua call and one reply per entry. The RANGES script reads a whole group of ranges in one
call: per range, ZRANGEBYLEX on the index ``i`` (at most `limit` keys) and one MGET of their data keys.

Consistency: a Lua script runs atomically, so every range of one call is read from one state of the
database (a stronger guarantee than a transaction per inode gave). Nothing is cached or remembered
between calls. The ranges take no part in any transaction's conflict detection (they are not read inside
one), like `Tx.scan_iter`.

RANGES — ARGV: limit, then (begin, end) pairs -> for each range, the array of its keys (ascending, at most
`limit`) followed by the array of their values (MGET of ``"k" .. key``; a missing value means the index and
the data are out of sync: EngineError).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from jfs.ports.kv import EngineError

from .resp import bulks

if TYPE_CHECKING:
    from .redis import RedisKV

RANGES = r"""
local limit = tonumber(ARGV[1])
local out = {}
for a = 2, #ARGV, 2 do
  local keys = redis.call('ZRANGEBYLEX', 'i', '[' .. ARGV[a], '(' .. ARGV[a + 1], 'LIMIT', 0, limit)
  out[#out + 1] = keys
  if #keys > 0 then
    local dks = {}
    for x = 1, #keys do dks[x] = 'k' .. keys[x] end
    out[#out + 1] = redis.call('MGET', unpack(dks))
  else
    out[#out + 1] = keys
  end
end
return out
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
        flat = [b for r in part for b in r]
        reply = await kv._script("ranges", 1 + len(flat), bulks((limit, *flat)))
        for x in range(0, len(reply), 2):
            ks, vs = reply[x], reply[x + 1]
            if not ks:
                out.append([])
                continue
            if None in vs:
                raise EngineError("jfs: index and data out of sync in a scanned range")
            out.append(list(zip(ks, vs, strict=True)))
    return out

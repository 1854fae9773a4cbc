"""Batched reads of the Redis adapter: many key ranges in one atomic script call (`RangeReadingKV`), and a
range with the keys its values point at in three native commands (`RangeFollowingKV`, `follow_range`).

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

import asyncio
from collections.abc import AsyncIterator, Sequence
from itertools import chain, repeat
from typing import TYPE_CHECKING

from jfs.ports.kv import EngineError, FollowedRange, Pointer

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


async def read_pages(kv: RedisKV, begin: bytes, end: bytes, limit: int) -> AsyncIterator[list[tuple[bytes, bytes]]]:
    """`PageReadingKV.read_pages`: per page ZRANGEBYLEX and one hand-packed MGET, the next page's ZRANGEBYLEX
    sent with this page's MGET (its start is known once this page is listed), so that Redis always has the
    next command. When a listed key has no value by the MGET, the page's span is read again by the RANGES
    script (atomic: it drops keys deleted meanwhile, and raises EngineError when the index names a key
    without data)."""
    loop = asyncio.get_running_loop()

    def listing(start: bytes) -> asyncio.Task[list[bytes]]:
        return loop.create_task(kv._read(b"ZRANGEBYLEX", b"i", b"[" + start, b"(" + end, b"LIMIT", b"0", limit))

    start = begin
    listed: asyncio.Task[list[bytes]] | None = listing(start)
    try:
        while listed is not None:
            keys = await listed
            if not keys:
                return
            after = keys[-1] + b"\x00"
            listed = listing(after) if len(keys) >= limit else None
            values: list[bytes | None] = await kv._read_packed(_mget(keys))
            if None in values:
                yield (await read_ranges(kv, [(start, after)], limit))[0]
            else:
                yield list(zip(keys, values, strict=True))  # type: ignore[arg-type]
            start = after
    finally:
        if listed is not None and not listed.done():
            listed.cancel()
            listed.add_done_callback(_consume)


def _consume(task: asyncio.Task[list[bytes]]) -> None:
    if not task.cancelled():
        task.exception()


async def follow_range(kv: RedisKV, begin: bytes, end: bytes, limit: int, pointer: Pointer,
                       extra: Sequence[bytes] = ()) -> FollowedRange:
    """`RangeFollowingKV.follow_range` in three native commands: ZRANGEBYLEX on the index, MGET of the
    data keys, MGET of the pointed-at keys and `extra` (native commands cost Redis about half the CPU of
    the same reads inside a script, which turns every reply into Lua values and back). The MGETs are packed
    here (`_mget`, `_mget_pointed`): hiredis's generic packing cost more than the rest of the page. Not
    atomic: a key the index listed whose data is gone by the MGET was deleted in between and is left out;
    every value read is what its key held at some moment during the call."""
    keys: list[bytes] = await kv._read(b"ZRANGEBYLEX", b"i", b"[" + begin, b"(" + end, b"LIMIT", b"0", limit)
    last = keys[-1] if len(keys) >= limit else None
    values: list[bytes | None] = await kv._read_packed(_mget(keys)) if keys else []
    if None in values:  # deleted between the two reads
        kept = [(k, v) for k, v in zip(keys, values, strict=True) if v is not None]
        keys, values = [k for k, _ in kept], [v for _, v in kept]
    vals: list[bytes] = values  # type: ignore[assignment]
    tail = _mget_tail(extra)
    packed = _mget_pointed(vals, pointer, tail, len(extra))
    if packed is not None:
        found = await kv._read_packed(packed)
    else:  # values of other lengths (or none): one pointer at a time, none for a value too short to hold one
        named = [pointer.target(v) for v in vals]
        asked = [t for t in named if t is not None]
        got = iter(await kv._read_packed(_mget([*asked, *extra])) if asked or extra else [])
        found = [None if t is None else next(got) for t in named] + list(got)
    n = len(vals)
    return FollowedRange(keys, vals, found[:n], found[n:], last)


def _mget(keys: Sequence[bytes]) -> bytes:
    """``MGET`` of the data keys (``"k" + key``) of `keys`, packed."""
    return b"*%d\r\n$4\r\nMGET\r\n%s" % (len(keys) + 1, _mget_tail(keys))


_HEADS = [b"$%d\r\nk" % (n + 1) for n in range(512)]
"""The RESP head of a data key, by the length of the port's key (the usual ones: no formatting per key)."""


def _mget_tail(keys: Sequence[bytes]) -> bytes:
    """The data keys of `keys` packed as RESP arguments (the per-key work done by C iterators)."""
    if keys and max(map(len, keys)) < len(_HEADS):
        return b"".join(chain.from_iterable(zip(map(_HEADS.__getitem__, map(len, keys)), keys, repeat(b"\r\n"))))
    return b"".join([b"$%d\r\nk%s\r\n" % (len(k) + 1, k) for k in keys])


def _mget_pointed(values: list[bytes], pointer: Pointer, tail: bytes, extra: int) -> bytes | None:
    """``MGET`` of the data keys `pointer` names in `values`, then of the `extra` keys packed in `tail`;
    None unless every value has the same length and holds a pointer (the usual page: then the command is
    built column-wise, the pointers' bytes copied with strided slices, without a key object per value)."""
    n = len(values)
    if not n:
        return None
    size = len(values[0])
    joined = b"".join(values)
    start, stop = pointer.start, pointer.stop
    if len(joined) != n * size or size < stop or size != max(map(len, values)):
        return None
    prefix, suffix, width = b"k" + pointer.prefix, pointer.suffix, stop - start
    length = len(prefix) + width + len(suffix)
    head = b"$%d\r\n%s" % (length, prefix)
    one = head + bytes(width) + suffix + b"\r\n"
    buf = bytearray(one * n)
    step, at = len(one), len(head)
    for j in range(width):
        src = stop - 1 - j if pointer.reverse else start + j
        buf[at + j::step] = joined[src::size]
    return b"*%d\r\n$4\r\nMGET\r\n%s%s" % (n + 1 + extra, buf, tail)

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

RANGES — ARGV: limit, the number of ranges, their (``"[" .. begin``, ``"(" .. end``) pairs (the ZRANGEBYLEX
bounds, prefixed by the client), then the data keys of single keys to read -> {counts, keys, values,
point values}: the number of keys of each range (at most `limit`), all their keys in order, their values
(one MGET of ``"k" .. key`` per 4,000 keys for the whole call; a missing value means the index and the
data are out of sync: EngineError), and the values of the single keys (nil: no such key). Flat arrays and
one MGET per call rather than a nested pair of arrays and an MGET per range (Redis CPU per range about
halved, docs/adr/0062-dump-load-redis-marked-inodes-file-events-workers.md).

Points alone (no range: dump's files read by their attribute key) are one native MGET, atomic as well: half
the server's CPU of the same MGET inside the script, which turns every value into a Lua string and back.

SPARSE — ARGV: ``"[" .. begin``, ``"(" .. end``, limit, a 1-based byte position, the bytes to skip -> {the last
key examined (nil when none), then the keys examined whose byte at that position is not one to skip (or
that are shorter)}: a walk of the index that sends back only the rare keys (dump: the inodes that have
records besides their attributes). It lists 128 keys at a time; when a step ends on a key to skip, the
next one starts after every key sharing that key's bytes up to the position (they would all be skipped:
a directory's run of dentries is passed over instead of being turned into Lua strings). The keys sent
back are those a walk of every key would send back (docs/adr/0087-dump-native-point-reads-and-marking-walk.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING

from jfs.ports.kv import EngineError, FollowedRange, Pointer

from .resp import bulks, pack_mset, pack_zadd

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
local lo, hi, limit, at = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local skip = {}
for x = 1, #ARGV[5] do skip[string.byte(ARGV[5], x)] = true end
local out, seen, last = {false}, 0, false
while seen < limit do
  local got = redis.call('ZRANGEBYLEX', 'i', lo, hi, 'LIMIT', 0, math.min(SUB, limit - seen))
  local c = #got
  if c == 0 then break end
  seen = seen + c
  for x = 1, c do
    local b = string.byte(got[x], at)
    if not (b and skip[b]) then out[#out + 1] = got[x] end
  end
  last = got[c]
  if c < SUB then break end
  local b = string.byte(last, at)
  if b and skip[b] then
    local p = string.sub(last, 1, at)
    while #p > 0 and string.byte(p, #p) == 255 do p = string.sub(p, 1, #p - 1) end
    if #p == 0 then break end
    lo = '[' .. string.sub(p, 1, #p - 1) .. string.char(string.byte(p, #p) + 1)
  else
    lo = '(' .. last
  end
end
out[1] = last
return out
""".replace("SUB", "128")

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
    if not ranges:  # points alone: one native MGET (atomic too), without the script's Lua copies of every value
        if not points:
            return []
        values: list[bytes | None] = await kv._read_packed(_mget(points))
        return [[] if v is None else [(p, v)] for p, v in zip(points, values, strict=True)]
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
    """`RangeReadingKV.sparse_keys`: one SPARSE script call (ZRANGEBYLEX of the index in steps of 128,
    filtered in Lua, passing over the rest of a run of skipped keys that shares the first `at` + 1 bytes)."""
    reply = await kv._script("sparse", 5, bulks((b"[" + begin, b"(" + end, limit, at + 1, skip)))
    return (reply[0] or None), reply[1:]


async def load_puts(kv: RedisKV, items: Sequence[tuple[bytes, bytes]]) -> None:
    """`BulkLoadingKV.load_puts`: the data keys by MSET and the index by ZADD (its members sorted),
    `LOAD_CHUNK` keys per command, pipelined on the connection (no script: Lua copies and interns every
    argument twice, which doubled the server's CPU per key of a load; sorted members: −15–20 % more)."""
    calls = []
    for s in range(0, len(items), LOAD_CHUNK):
        part = items[s: s + LOAD_CHUNK]
        calls.append(kv._write_packed(pack_mset(DATA, part)))  # packed by hand: half the client CPU per key
        # the index in key order: each insert's skiplist path is mostly the previous one's, still in cache
        calls.append(kv._write_packed(pack_zadd(b"i", b"0", sorted([k for k, _ in part]))))
    await asyncio.gather(*calls)


LOAD_CHUNK = 10_000
"""Keys per MSET / ZADD of `load_puts`."""


async def native_pages(kv: RedisKV, begin: bytes, end: bytes, limit: int) -> AsyncGenerator[list[tuple[bytes, bytes]]]:
    """`PageReadingKV.read_pages` where SORT is refused (`redis_pages`), and for a page it does not trust: per page ZRANGEBYLEX and one hand-packed MGET, the next page's ZRANGEBYLEX
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


_HEADS = [b"\r\n$%d\r\nk" % (n + 1) for n in range(512)]
"""The RESP head of a data key after the previous argument's end, by the length of the port's key (the
usual ones: no formatting per key)."""


def _mget_tail(keys: Sequence[bytes]) -> bytes:
    """The data keys of `keys` packed as RESP arguments: heads and keys interleaved by two slice assignments
    and joined once (the per-key work done in C; half the CPU of a zip/chain over (head, key, CRLF) triples)."""
    if not keys:
        return b""
    lens = list(map(len, keys))
    if max(lens) < len(_HEADS):
        parts: list[bytes] = [b""] * (2 * len(lens) + 1)
        parts[0:-1:2] = map(_HEADS.__getitem__, lens)
        parts[1::2] = keys
        parts[0] = parts[0][2:]
        parts[-1] = b"\r\n"
        return b"".join(parts)
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

"""`PageReadingKV.read_pages` on Redis: each page of keys and values in ONE native command.

``SORT_RO i BY nosort LIMIT <rank> <n> GET # GET k*`` walks the index ``i`` by rank without sorting (Redis
takes the range of a sorted set straight from its skiplist for ``BY nosort``, O(log N + n)) and answers,
for each member K, K itself (``#``) and the value of ``"k" .. K`` (the adapter's data key), interleaved in
one flat reply. Against ZRANGEBYLEX + MGET (`redis_batch.native_pages`) the client no longer packs every
key back into an MGET, and parses one reply per page: about 40 % less client CPU per pair, for about 15–25 %
more Redis CPU (the SORT copies each member once more), measured in
docs/adr/0082-redis-page-reads-by-sort.md.

Contract kept (`PageReadingKV`): pages of ``[begin, end)`` ascending, at most `limit` pairs each, no
empty page; each page is read by one command, so its keys and values are of one moment (stronger than
"each value at some moment of the scan"); outside any transaction.

Ranks move when other clients insert or delete keys before the scan's position, so a page is only
trusted when it is anchored: it is asked from one rank earlier (``LIMIT rank-1 n+1``) and its first member
must lie below the scan's lower bound (``< begin``, then ``<= last key yielded``) while the second lies at
or above it. Within one atomic command that proves the page starts exactly at the first key after the
previous page — no key skipped, none repeated — whatever happened between pages. A page that fails the
check is read by the native commands instead (`redis_batch.native_pages`, one page), and the next rank is
located again (ZLEXCOUNT). A nil value (the index names a key without data: never within one command
unless the two are out of sync) has its span read again by the RANGES script, which raises EngineError
as `RangeReadingKV` does. A server that refuses SORT_RO (older than 7.0: SORT, flagged write, is tried;
an ACL without key patterns: NOPERM) is read by the native commands, remembered per adapter; so is one
whose first reply does not have Redis's shape (pairs whose first and last values an MGET confirms: a
compatible server that took SORT but ignored its GET patterns).

The next page's command is sent before this page is handed to the caller, so Redis always has the next
command while the caller works (one page ahead, as before: memory stays at two pages).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from jfs.ports.kv import EngineError

from . import redis_batch

if TYPE_CHECKING:
    from .redis import RedisKV

SORTS = (b"SORT_RO", b"SORT")
"""The commands tried, in order (SORT_RO from Redis 7.0; SORT without STORE reads the same)."""


async def read_pages(kv: RedisKV, begin: bytes, end: bytes, limit: int) -> AsyncIterator[list[tuple[bytes, bytes]]]:
    """See the module docstring."""
    if kv._sort is False:
        async for page in redis_batch.native_pages(kv, begin, end, limit):
            yield page
        return
    loop = asyncio.get_running_loop()
    sort: bytes = kv._sort if isinstance(kv._sort, bytes) else SORTS[0]

    def ask(rank: int) -> asyncio.Task[Any]:
        lo = max(rank - 1, 0)
        return loop.create_task(kv._read(sort, b"i", b"BY", b"nosort", b"LIMIT", lo, limit + (rank > 0),
                                         b"GET", b"#", b"GET", b"k*"))

    lower, strict = begin, False  # the scan's lower bound: >= begin, then > the last key yielded
    asked: asyncio.Task[Any] | None = None
    try:
        rank = await kv._read(b"ZLEXCOUNT", b"i", b"-", b"(" + begin)
        asked = ask(rank)
        while True:
            try:
                reply: list[bytes | None] = await asked  # type: ignore[misc]
            except EngineError as exc:
                asked = None
                if sort == SORTS[0] and "unknown command" in str(exc).lower():
                    sort = SORTS[1]
                    asked = ask(rank)
                    continue
                kv._sort = False  # refused for good (ACL without key patterns, no such command): remembered
                after = lower + b"\x00" if strict else lower
                async for page in redis_batch.native_pages(kv, after, end, limit):
                    yield page
                return
            asked = None
            keys: list[bytes] = reply[0::2]  # type: ignore[assignment]
            values = reply[1::2]
            if kv._sort is None and reply:  # the first reply this adapter gets: is it Redis's shape?
                if not await _answers_as_redis(kv, reply):
                    kv._sort = False  # a server that takes SORT but not its GET patterns: native reads
                    after = lower + b"\x00" if strict else lower
                    async for page in redis_batch.native_pages(kv, after, end, limit):
                        yield page
                    return
                kv._sort = sort
            if rank > 0:
                anchor = keys[0] if keys else None
                if anchor is None or not (anchor <= lower if strict else anchor < lower):
                    keys = []  # the anchor moved: not trusted
                else:
                    del keys[0], values[0]
            if keys and not (keys[0] > lower if strict else keys[0] >= lower):
                keys = []
            if not keys:  # untrusted (or the set shrank below the anchor): one page the native way, then relocate
                after = lower + b"\x00" if strict else lower
                page = await _native_page(kv, after, end, limit)
                if not page:
                    return
                yield page
                lower, strict = page[-1][0], True
                if len(page) < limit:
                    return
                rank = await kv._read(b"ZLEXCOUNT", b"i", b"-", b"[" + lower)
                asked = ask(rank)
                continue
            full = len(keys) >= limit
            if keys[-1] >= end:
                cut = _first_at_or_after(keys, end)
                keys, values, full = keys[:cut], values[:cut], False
                if not keys:
                    return
            if full:
                asked = ask(rank + len(keys))  # sent before the caller works on this page
            if None in values:
                after = lower + b"\x00" if strict else lower
                page = (await redis_batch.read_ranges(kv, [(after, keys[-1] + b"\x00")], limit))[0]
            else:
                page = list(zip(keys, values, strict=True))  # type: ignore[arg-type]
            if page:
                yield page
            if not full:
                return
            rank += len(keys)
            lower, strict = keys[-1], True
    finally:
        if asked is not None and not asked.done():
            asked.cancel()
            asked.add_done_callback(redis_batch._consume)


async def _answers_as_redis(kv: RedisKV, reply: list[bytes | None]) -> bool:
    """Whether the first reply of SORT has the shape Redis gives it (asked once per adapter): pairs, the
    first and last value those MGET reads for their keys (a compatible server that ignored ``GET`` would
    send members only). A value rewritten in between also says no: then only speed is lost."""
    if len(reply) % 2 or any(k is None for k in reply[0::2]):
        return False
    got: list[bytes | None] = await kv._read_packed(redis_batch._mget([reply[0], reply[-2]]))  # type: ignore[list-item]
    return got == [reply[1], reply[-1]]


async def _native_page(kv: RedisKV, begin: bytes, end: bytes, limit: int) -> list[tuple[bytes, bytes]]:
    """The first page of ``[begin, end)`` by ZRANGEBYLEX + MGET (`redis_batch.native_pages`)."""
    pages = redis_batch.native_pages(kv, begin, end, limit)
    try:
        async for page in pages:
            return page
        return []
    finally:
        await pages.aclose()


def _first_at_or_after(keys: list[bytes], end: bytes) -> int:
    """The index of the first of the ascending `keys` that is ``>= end`` (len(keys) when none)."""
    lo, hi = 0, len(keys)
    while lo < hi:
        mid = (lo + hi) // 2
        if keys[mid] < end:
            lo = mid + 1
        else:
            hi = mid
    return lo

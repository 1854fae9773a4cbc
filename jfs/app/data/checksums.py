"""`SumsIndex`: the block-checksum records of slices (ADR 0008), looked up once per slice and cached.

Only used when the volume has block checksums on (`DataConfig.checksum`); otherwise `get` answers None
without touching the engine, and blocks are read exactly as before.

A slice's record never changes while the slice can be read (it is written in the slice's commit
transaction and deleted when the slice becomes unreferenced), so answers — including "no record", for
slices written by JuiceFS or before checksums were turned on — are cached without expiry, LRU-bounded.
Concurrent lookups of one slice share one engine read.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import structlog

from jfs.domain.checksums import CRC32, BadSumsRecord, SliceSums

log = structlog.get_logger("jfs.data")

DEFAULT_ENTRIES = 65536
"""Cached records (a 64 MiB slice of 4 MiB blocks takes about 300 bytes)."""


class SumsIndex:
    """Slice id -> its block checksums (None: unverified), with single-flight lookups."""

    def __init__(
        self,
        read: Callable[[int], Awaitable[bytes | None]],
        block_size: int,
        *,
        enabled: bool,
        entries: int = DEFAULT_ENTRIES,
    ) -> None:
        self._read = read
        self.block_size = block_size
        self.enabled = enabled
        self._entries = max(1, entries)
        self._cache: OrderedDict[int, tuple[int, ...] | None] = OrderedDict()
        self._pending: dict[int, asyncio.Future[tuple[int, ...] | None]] = {}
        self.lookups = 0

    def remember(self, slice_id: int, crcs: tuple[int, ...] | None) -> None:
        self._cache[slice_id] = crcs
        self._cache.move_to_end(slice_id)
        while len(self._cache) > self._entries:
            self._cache.popitem(last=False)

    def forget(self, slice_id: int) -> None:
        self._cache.pop(slice_id, None)

    def known_unchecked(self, slice_id: int) -> bool:
        """Whether slice `slice_id` is known to have no checksum record (checksums off, or its "no record"
        cached): then a part of a block may be read (ADR 0065); False when unknown or checked."""
        return not self.enabled or (slice_id in self._cache and self._cache[slice_id] is None)

    async def get(self, slice_id: int, size: int) -> tuple[int, ...] | None:
        """The CRC-32 of every block of slice `slice_id` (of `size` bytes), or None when it is not checked.

        Raises what the engine raises when the record cannot be read.
        """
        if not self.enabled:
            return None
        if slice_id in self._cache:
            self._cache.move_to_end(slice_id)
            return self._cache[slice_id]
        fut = self._pending.get(slice_id)
        if fut is None:
            fut = asyncio.ensure_future(self._lookup(slice_id, size))
            self._pending[slice_id] = fut
            fut.add_done_callback(lambda f: self._done(slice_id, f))
        return await asyncio.shield(fut)

    def _done(self, slice_id: int, fut: asyncio.Future[tuple[int, ...] | None]) -> None:
        if self._pending.get(slice_id) is fut:
            del self._pending[slice_id]
        if not fut.cancelled():
            fut.exception()

    async def _lookup(self, slice_id: int, size: int) -> tuple[int, ...] | None:
        self.lookups += 1
        raw = await self._read(slice_id)
        crcs: tuple[int, ...] | None = None
        if raw is not None:
            try:
                sums = SliceSums.decode(raw)
            except BadSumsRecord as exc:
                log.warning("checksum_record_unusable", slice=slice_id, error=str(exc))
            else:
                if sums.algorithm != CRC32 or not sums.fits(size, self.block_size):
                    log.warning(
                        "checksum_record_unusable", slice=slice_id, algorithm=sums.algorithm,
                        record_size=sums.size, size=size, blocks=len(sums.crcs),
                    )  # fmt: skip
                else:
                    crcs = sums.crcs
        self.remember(slice_id, crcs)
        return crcs

"""Batched id allocation: inode numbers and slice ids come from engine counters in batches per client,
so no create touches a hot counter. Ids are unique forever and possibly sparse."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

INODE_BATCH = 1024
SLICE_BATCH = 4096


class IdPool:
    """Hands out ids from [next, end); refills by `fetch(batch)` which returns the counter's new value v
    (the batch is [v - batch, v)). Ids below `minimum` are skipped. A refill is started in the background
    when 10% of a batch is left, so callers rarely wait for the engine."""

    def __init__(self, fetch: Callable[[int], Awaitable[int]], batch: int, minimum: int = 1) -> None:
        self._fetch = fetch
        self._batch = batch
        self._min = minimum
        self._next = 0
        self._end = 0
        self._spare: tuple[int, int] | None = None
        self._lock = asyncio.Lock()
        self._prefetch: asyncio.Task[None] | None = None

    async def _get_batch(self) -> tuple[int, int]:
        v = await self._fetch(self._batch)
        return max(v - self._batch, self._min), v

    async def _prefetch_batch(self) -> None:
        async with self._lock:
            if self._spare is None:
                self._spare = await self._get_batch()

    async def next(self) -> int:
        if self._next >= self._end:
            async with self._lock:
                if self._next >= self._end:
                    if self._spare is not None:
                        self._next, self._end = self._spare
                        self._spare = None
                    else:
                        self._next, self._end = await self._get_batch()
        ino = self._next
        self._next += 1
        if (
            self._end - self._next == self._batch // 10
            and self._spare is None
            and (self._prefetch is None or self._prefetch.done())
        ):
            self._prefetch = asyncio.get_running_loop().create_task(self._prefetch_batch())
        return ino

    async def close(self) -> None:
        if self._prefetch is not None and not self._prefetch.done():
            self._prefetch.cancel()
            try:
                await self._prefetch
            except (asyncio.CancelledError, Exception):
                pass

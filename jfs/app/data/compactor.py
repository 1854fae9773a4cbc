"""`Compactor`: rewriting a fragmented chunk as one slice (JuiceFS ``compactChunk``).

One compaction of chunk (ino, indx): read the records, `plan` them, allocate a slice id, read the planned
pieces (zeros for holes) and store them as the blocks of the new slice, then `meta.compact_swap` in one
transaction. If the chunk changed meanwhile (swap returns None) or anything fails, the new slice's
blocks are deleted and the chunk is left as it was; the old slices' blocks are deleted by the engine's
free hook once the swap released them. File content never changes, so a compaction may run at any time
and be abandoned at any point.

At most `max_compactions` run at once per client, and at most one per chunk. A chunk compacted in the
background is not compacted in the background again for `recompact_delay` seconds: under random writes
and reads (fsx) a read finds ≥ 5 records again after a few writes, and every compaction rewrites the whole
merged range — without a pause the compactor rewrote each 4 MiB chunk after every ~5 small writes.

With block checksums on (ADR 0008) the swap also stores the new slice's checksum record; the blocks read
for it are checked against the old slices' records on the way (through the `BlockFetcher`).

Background compactions are paced (`Pacer`, ADR 0036): before each block of the new slice they wait their
turn while the client's foreground I/O is active. On-demand ones (`compact_chunk`: a writer whose chunk grew
far too long, ``jfs compact``) are not, nor is a background one such a caller waits for.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from jfs.app.data.blocks import BlockMissing, BlockStore
from jfs.app.data.config import DataConfig
from jfs.app.data.fetcher import BlockFetcher
from jfs.app.data.pacing import Pacer
from jfs.app.data.pages import THREAD_JOIN_MIN, PageList
from jfs.domain.checksums import encode_sums
from jfs.domain.chunks import CHUNK_SIZE
from jfs.domain.compaction import CompactionPlan, plan

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

log = structlog.get_logger("jfs.data")

UPLOADS_PER_COMPACTION = 4
READ_WINDOW_BLOCKS = 4
MAX_QUEUED = 64
MAX_RESTING = 4096
"""Chunks remembered as recently compacted; past this, the ones whose pause is over are forgotten."""


class Compactor:
    """Background and on-demand compaction for one client."""

    def __init__(
        self,
        meta: Meta,
        blocks: BlockStore,
        fetcher: BlockFetcher,
        config: DataConfig,
        on_compacted: Callable[[int, int], None],
        pacer: Pacer | None = None,
    ) -> None:
        """`pacer`: spaces the blocks of background compactions while foreground I/O runs (None: never)."""
        self.meta = meta
        self.blocks = blocks
        self.fetcher = fetcher
        self.block_size = blocks.block_size
        self._on_compacted = on_compacted
        self._slots = asyncio.Semaphore(max(1, config.max_compactions))
        self._running: dict[tuple[int, int], asyncio.Task[bool]] = {}
        self._pacer = pacer
        self._urgent: collections.Counter[tuple[int, int]] = collections.Counter()  # callers waiting, per chunk
        self._recompact_delay = config.recompact_delay
        self._resting: dict[tuple[int, int], float] = {}  # chunk -> monotonic time its pause ends
        self._zeros = memoryview(bytes(self.block_size))
        self._closed = False
        self.compacted = 0
        self.abandoned = 0

    def schedule(self, ino: int, indx: int) -> None:
        """Compact chunk (ino, indx) in the background unless it is already being compacted or was
        compacted in the background less than `recompact_delay` seconds ago."""
        key = (ino, indx)
        if self._closed or key in self._running or len(self._running) >= MAX_QUEUED:
            return
        if self._resting:
            until = self._resting.get(key)
            if until is not None:
                if time.monotonic() < until:
                    return
                del self._resting[key]
        task = self._start(ino, indx, paced=True)
        if self._recompact_delay > 0:
            task.add_done_callback(lambda _: self._rest(key))

    def _rest(self, key: tuple[int, int]) -> None:
        now = time.monotonic()
        if len(self._resting) >= MAX_RESTING:
            self._resting = {k: t for k, t in self._resting.items() if t > now}
        self._resting[key] = now + self._recompact_delay

    def _start(self, ino: int, indx: int, *, paced: bool = False) -> asyncio.Task[bool]:
        key = (ino, indx)
        task = asyncio.get_running_loop().create_task(self._compact(ino, indx, paced))
        self._running[key] = task

        def done(t: asyncio.Task[bool]) -> None:
            if self._running.get(key) is t:
                del self._running[key]
            if not t.cancelled() and t.exception() is not None:
                log.warning("compaction_failed", ino=ino, indx=indx, error=str(t.exception()))

        task.add_done_callback(done)
        return task

    async def compact_chunk(self, ino: int, indx: int) -> bool:
        """Compact chunk (ino, indx) now (after any compaction of it already running); returns whether a
        compaction was applied. Raises what the compaction raised."""
        key = (ino, indx)
        self._urgent[key] += 1  # no pacing for this chunk while a caller waits for it
        try:
            running = self._running.get(key)
            while running is not None and not running.done():
                with contextlib.suppress(Exception):
                    await asyncio.shield(running)
                running = self._running.get(key)
            return await asyncio.shield(self._start(ino, indx))
        finally:
            self._urgent[key] -= 1
            if not self._urgent[key]:
                del self._urgent[key]

    async def compact_file(self, ino: int) -> int:
        """Compact every chunk of `ino`; returns how many were compacted."""
        length = (await self.meta.getattr(ino)).length
        n = 0
        for indx in range((length + CHUNK_SIZE - 1) // CHUNK_SIZE):
            n += await self.compact_chunk(ino, indx)
        return n

    async def _compact(self, ino: int, indx: int, paced: bool) -> bool:
        async with self._slots:
            records = await self.meta.read_chunk(ino, indx)
            p = plan(records)
            if p is None:
                return False
            new_id = await self.meta.next_slice_id() if p.writes_slice else 0
            sums: bytes | None = None
            if new_id:
                try:
                    crcs = await self._write(new_id, p, (ino, indx) if paced else None)
                    if crcs is not None:
                        sums = encode_sums(p.size, crcs)
                except BaseException as exc:
                    await self._discard(new_id, p.size)
                    if isinstance(exc, BlockMissing):
                        self.abandoned += 1
                        log.info("compaction_abandoned", ino=ino, indx=indx, reason=str(exc))
                        return False
                    raise
            # A failing swap may still have landed (a lost reply): its new slice's blocks are kept then.
            freed = await self.meta.compact_swap(ino, indx, p, new_id, sums)
            if freed is None:
                self.abandoned += 1
                log.info("compaction_abandoned", ino=ino, indx=indx, reason="chunk changed")
                if new_id:
                    await self._discard(new_id, p.size)
                return False
            self.compacted += 1
            log.debug(
                "chunk_compacted", ino=ino, indx=indx, records=len(records), consumed=p.consumed,
                slice=new_id, size=p.size, freed=len(freed),
            )  # fmt: skip
            self._on_compacted(ino, indx)
            return True

    async def _discard(self, slice_id: int, size: int) -> None:
        try:
            await self.blocks.delete_slice(slice_id, size)
        except OSError as exc:
            log.warning("compaction_cleanup_failed", slice=slice_id, error=str(exc))

    async def _write(self, new_id: int, p: CompactionPlan, paced: tuple[int, int] | None) -> list[int] | None:
        """Store the planned pieces as the blocks of slice `new_id` (p.size bytes); returns the blocks'
        checksums when checksums are on. `paced`: the chunk of a background compaction (each block waits
        for the pacer unless a caller waits for that chunk)."""
        bs = self.block_size
        slots = asyncio.Semaphore(UPLOADS_PER_COMPACTION)
        uploads: list[asyncio.Task[None]] = []
        current = PageList()
        index = 0
        crcs: dict[int, int] = {}

        async def upload(i: int, data: bytes) -> None:
            try:
                crc = await self.blocks.put(new_id, i, data)
                if crc is not None:
                    crcs[i] = crc
            finally:
                slots.release()

        async def join(pages: PageList) -> bytes:
            # A block's worth of copying (and page faults) stalls the loop for milliseconds: on the CPU pool.
            return await self.blocks.cpu(pages.join) if pages.size >= THREAD_JOIN_MIN else pages.join()

        async def emit(view: memoryview) -> None:
            nonlocal current, index
            at = 0
            while at < len(view):
                take = min(bs - current.size, len(view) - at)
                current.write(current.size, view[at : at + take])
                at += take
                if current.size == bs:
                    if paced is not None and self._pacer is not None and paced not in self._urgent:
                        await self._pacer.step(lambda: paced in self._urgent)
                    await slots.acquire()
                    uploads.append(asyncio.get_running_loop().create_task(upload(index, await join(current))))
                    index += 1
                    current = PageList()

        try:
            for piece in p.pieces:
                step = READ_WINDOW_BLOCKS * bs
                for at in range(0, piece.len, step):
                    n = min(step, piece.len - at)
                    if piece.is_hole:
                        for z in range(0, n, bs):
                            await emit(self._zeros[: min(bs, n - z)])
                        continue
                    # streaming: a block read here is not read again soon, so it leaves the memory cache
                    # first (not the small written blocks the next compaction of the chunk will need).
                    for part in await self.fetcher.read(piece.id, piece.size, piece.off + at, n, streaming=True):
                        await emit(memoryview(part))
            if current.size:
                await slots.acquire()
                uploads.append(asyncio.get_running_loop().create_task(upload(index, await join(current))))
            results = await asyncio.gather(*uploads, return_exceptions=True)
        except BaseException:
            for t in uploads:
                t.cancel()
            await asyncio.gather(*uploads, return_exceptions=True)
            raise
        for r in results:
            if isinstance(r, BaseException):
                raise r
        if not self.blocks.checksum:
            return None
        if sorted(crcs) != list(range(len(uploads))):
            raise RuntimeError(f"slice {new_id}: checksums of {len(crcs)} of its {len(uploads)} blocks")
        return [crcs[i] for i in range(len(uploads))]

    async def drain(self) -> None:
        """Wait for the compactions running or queued now."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        await self.drain()

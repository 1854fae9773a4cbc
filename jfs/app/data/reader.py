"""`Reader`: file reads — chunk layouts, block fetches, this client's pending writes, read-ahead.

A read of [off, off+size):

1. is cut short at the file length (attributes revalidated after `attr_ttl`; pending writes count);
2. takes a snapshot of this client's uncommitted writes over the range *before* looking at the committed
   layout, so a slice committed meanwhile is seen in one or the other (read-your-writes);
3. resolves each chunk's records into pieces (`ChunkMap`, cached per open inode) and fetches the data
   pieces in parallel through the `BlockFetcher` (holes are zeros);
4. applies the snapshot over the result, oldest write first.

Each attempt is registered with `grace` (`ReadGrace`) while it runs: this client deletes the blocks of
slices it freed (compaction, truncate) only once every read that may have resolved a layout naming them
has finished (ADR 0015), so its own reads never find a block gone. A block object that has vanished all
the same — another client compacted or truncated the chunk after the layout was resolved — makes the read
drop the inode's cached layouts and start again, a few times, then fail with EIO.

`read_now` is the same read answered synchronously, without a task or an await, when everything it
needs is at hand: fresh attributes, the chunk's layout cached, no pending writes in the chunk, and every
block part in the memory cache or, page-cached, in the disk cache. Otherwise it answers None and the
caller takes `read`. The FUSE server answers such a READ within its read loop (a 4 KiB random read of
a disk-cached file costs one ``preadv`` and a CRC of 8 KiB; ADR 0038).

Read-ahead is per open handle: a read that starts where the previous one ended doubles the window (from
one block up to `readahead_blocks`) and loads the blocks ahead of it into the memory cache in the
background; any other read resets it. "Previous" is by arrival: `read` and `read_now` both judge a read
when it comes in (after `read`'s attribute check), before waiting for data, so reads of one handle that
finish out of order do not reset it.
"""

from __future__ import annotations

import asyncio
import errno
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from jfs.app.data.blocks import BlockMissing
from jfs.app.data.config import DataConfig
from jfs.app.data.fetcher import BlockFetcher
from jfs.app.data.grace import ReadGrace
from jfs.app.data.inode import InodeState
from jfs.app.data.pages import Buffer
from jfs.app.data.writer import OverlayPart, StoredPart, stored_size
from jfs.domain.chunks import CHUNK_SIZE, block_len, blocks_for_range, split_range
from jfs.domain.compaction import Trigger, needs_compaction
from jfs.domain.errors import FSError
from jfs.domain.slices import Piece, read_pieces

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

log = structlog.get_logger("jfs.data")

READ_ATTEMPTS = 5
DISK_KEYS = 1 << 16
"""Blocks whose disk-cache key `read_now` remembers at most (all forgotten when passed)."""


def _piece_end(p: Piece) -> int:
    return p.pos + p.len


@dataclass(slots=True)
class ReadAhead:
    """Sequential-read detection of one open handle."""

    next_off: int = 0
    """Where a sequential read would start."""
    window: int = 0
    """Current window in blocks (0: not sequential)."""
    ahead_to: int = 0
    """File offset up to which blocks were already requested."""


class Reader:
    """Reads for every open inode of one client."""

    def __init__(
        self,
        meta: Meta,
        fetcher: BlockFetcher,
        config: DataConfig,
        schedule_compaction: Callable[[int, int], None],
    ) -> None:
        self.meta = meta
        self.fetcher = fetcher
        self.config = config
        self.block_size = config.block_size
        self._schedule_compaction = schedule_compaction
        self._background: set[asyncio.Task[None]] = set()
        self.grace = ReadGrace()
        self.vanished = 0
        """Attempts that found a block gone and started again (``read_block_vanished``)."""
        self._disk_keys: dict[tuple[int, int], tuple[str, int]] = {}
        """(slice id, block index) -> (disk-cache key, block length), for `read_now`: a slice id is never
        reused and its size never changes, so both are fixed (formatting the key was ~15 % of a cached
        READ's work in `read_now`)."""

    async def read(
        self, state: InodeState, ra: ReadAhead | None, off: int, size: int
    ) -> bytes | bytearray | memoryview:
        """Bytes [off, off+size) of the file, short at its end, as a buffer nobody changes later (a view of
        a cached block, or a fresh bytearray: no copy is made just to turn it into bytes). Raises
        FSError(EIO) when data is unreadable."""
        if off < 0 or size < 0:
            raise FSError(errno.EINVAL)
        await self._revalidate(state)
        length = state.length()
        if off >= length or size == 0:
            return b""
        n = min(size, length - off)
        streaming = ra is not None and ra.window > 0 and off == ra.next_off
        if ra is not None:
            # On arrival, not once the data is in (ADR 0085): a READ that waits for its block from a busy
            # device no longer holds back the loads of the blocks after it, and READs of one handle that
            # finish out of order (the kernel keeps several in flight) cannot reset the window.
            self._read_ahead(state, ra, off, n, length)
        grace = self.grace
        for attempt in range(1, READ_ATTEMPTS + 1):
            stamp = grace.enter()
            try:
                data = await self._read_once(state, off, n, streaming)
                break
            except BlockMissing as exc:
                if attempt == READ_ATTEMPTS:
                    log.error("read_block_missing", ino=state.ino, off=off, size=n, key=exc.key)
                    raise FSError(errno.EIO, f"data of inode {state.ino} is missing: {exc}") from None
                self.vanished += 1
                log.info("read_block_vanished", ino=state.ino, off=off, key=exc.key, attempt=attempt)
                state.chunks.invalidate()
            finally:
                grace.leave(stamp)
            await asyncio.sleep(0.01 * attempt)
        return data

    def read_now(
        self, state: InodeState, ra: ReadAhead | None, off: int, size: int
    ) -> Buffer | list[Buffer] | None:
        """`read`, if it can be answered from the caches without waiting (see the module docstring):
        the bytes as one buffer or consecutive parts; None when `read` must do it. Never raises for a
        read `read` would answer; no block fetch, metadata read or disk wait is started."""
        if off < 0 or size <= 0 or time.monotonic() - state.attr_time >= self.config.attr_ttl:
            return None
        length = state.length()
        if off >= length:
            return b""
        n = min(size, length - off)
        indx, pos = divmod(off, CHUNK_SIZE)
        if pos + n > CHUNK_SIZE:
            return None
        writer = state.writer
        if writer is not None and indx in writer.chunks:
            return None
        layout = state.chunks.cached(indx)
        if layout is None:
            return None
        pieces, n_records = layout
        if self.config.compact_on_read and needs_compaction(n_records, len(pieces), trigger=Trigger.READ):
            return None  # `read` schedules the compaction
        i = bisect_right(pieces, pos, key=_piece_end)  # the first piece ending after `pos`
        if i < len(pieces) and (p := pieces[i]).id and p.pos <= pos and pos + n <= p.pos + p.len:
            spans: Sequence[tuple[int, int, int, int]] = ((p.id, p.size, p.off + pos - p.pos, n),)
        else:
            spans = [(q.id, q.size, q.off, q.len) for q in read_pieces(pieces, pos, n)]
        fetcher = self.fetcher
        mem = fetcher.mem
        disk = fetcher.disk
        bs = self.block_size
        disk_keys = self._disk_keys
        streaming = ra is not None and ra.window > 0 and off == ra.next_off
        parts: list[Buffer] = []
        demote: list[tuple[int, int]] = []
        hits = hit_bytes = misses = 0
        for slice_id, slice_size, soff, slen in spans:
            if slice_id == 0:
                parts.append(bytes(slen))
                continue
            index, inner = divmod(soff, bs)
            blocks = ((index, inner, slen),) if inner + slen <= bs else blocks_for_range(soff, slen, bs)
            for index, inner, ln in blocks:
                key = (slice_id, index)
                data = mem.get(key)
                if data is not None:
                    hits += 1
                    hit_bytes += ln
                    parts.append(data if inner == 0 and ln == len(data) else memoryview(data)[inner : inner + ln])
                    if streaming and inner + ln == bs:
                        demote.append(key)
                    continue
                # As `BlockFetcher` does: only a small read inside a block is served from a part of the disk
                # cache entry (or of a local bucket's block file in the page cache, ADR 0065); any other
                # miss loads the whole block (into memory) the slow way.
                if inner == 0 or (disk is None and not fetcher.local_ranges):
                    return None
                known = disk_keys.get(key)
                if known is None:
                    blen = block_len(slice_size, bs, index)
                    known = (fetcher.blocks.cache_key(slice_id, index, blen), blen)
                    if len(disk_keys) >= DISK_KEYS:
                        disk_keys.clear()
                    disk_keys[key] = known
                cache_key, blen = known
                if ln > blen // 4 or not fetcher.blocks.ranged:
                    return None
                part: Buffer | None = None if disk is None else disk.get_now(cache_key, inner, ln, blen)
                if part is None:
                    part = fetcher.range_now(slice_id, index, blen, inner, ln)
                    if part is None:
                        return None
                misses += 1
                parts.append(part)
        fetcher.mem_hits += hits
        fetcher.mem_hit_bytes += hit_bytes
        fetcher.mem_misses += misses
        for key in demote:
            fetcher.read_through(key)
        if ra is not None:
            self._read_ahead(state, ra, off, n, length)
        return parts[0] if len(parts) == 1 else parts

    async def _revalidate(self, state: InodeState) -> None:
        if time.monotonic() - state.attr_time < self.config.attr_ttl:
            return
        seen = state.local_changes
        try:
            attr = await self.meta.getattr(state.ino)
        except OSError as exc:
            log.debug("revalidate_failed", ino=state.ino, error=str(exc))
            return
        state.revalidate(attr, seen)

    async def _layout_pieces(self, state: InodeState, indx: int, pos: int, n: int) -> list[Piece]:
        pieces, n_records = await state.chunks.get(indx)
        if self.config.compact_on_read and needs_compaction(n_records, len(pieces), trigger=Trigger.READ):
            self._schedule_compaction(state.ino, indx)
        return read_pieces(pieces, pos, n)

    async def _read_once(
        self, state: InodeState, off: int, n: int, streaming: bool = False
    ) -> bytes | bytearray | memoryview:
        overlay: list[tuple[int, list[OverlayPart]]] = []
        ranges = split_range(off, n)
        if state.writer is not None:
            for indx, pos, cn in ranges:
                base = indx * CHUNK_SIZE
                overlay.extend((base + p, views) for p, views in state.writer.overlay(indx, pos, cn))
        jobs: list[tuple[int, Piece]] = []
        for indx, pos, cn in ranges:
            base = indx * CHUNK_SIZE - off
            for piece in await self._layout_pieces(state, indx, pos, cn):
                if not piece.is_hole:
                    jobs.append((base + piece.pos, piece))
        if not overlay and len(jobs) == 1 and jobs[0][1].len == n:
            parts = await self.fetcher.read(jobs[0][1].id, jobs[0][1].size, jobs[0][1].off, n, streaming=streaming)
            if len(parts) == 1:
                return parts[0]
        buf = bytearray(n)

        async def fill(dst: int, piece: Piece) -> None:
            for part in await self.fetcher.read(piece.id, piece.size, piece.off, piece.len, streaming=streaming):
                buf[dst : dst + len(part)] = part
                dst += len(part)

        if len(jobs) == 1:
            await fill(*jobs[0])
        elif jobs:
            results = await asyncio.gather(*(fill(dst, p) for dst, p in jobs), return_exceptions=True)
            for r in results:
                if isinstance(r, BaseException):
                    raise r
        for foff, views in overlay:
            dst = foff - off
            for v in views:
                if isinstance(v, StoredPart):  # an uploaded block the writer let go: load it
                    size = stored_size(v, self.block_size)
                    for part in await self.fetcher.read(v.slice_id, size, v.index * self.block_size + v.inner, v.length):
                        buf[dst : dst + len(part)] = part
                        dst += len(part)
                    continue
                buf[dst : dst + len(v)] = v
                dst += len(v)
        return buf

    # -- read-ahead ------------------------------------------------------------------------------------

    def _read_ahead(self, state: InodeState, ra: ReadAhead, off: int, n: int, length: int) -> None:
        if self.config.prefetch <= 0:
            return
        sequential = off == ra.next_off
        ra.next_off = off + n
        if not sequential:
            ra.window = 0
            ra.ahead_to = 0
            return
        ra.window = min(self.config.readahead_blocks, max(1, ra.window * 2))
        end = off + n
        target = min(length, end + ra.window * self.block_size)
        start = max(ra.ahead_to, end)
        # Ask in whole blocks: a prefetch per small read would cost more than it saves. Nothing left before
        # the end (a small file read whole): no task at all (ADR 0079).
        if target <= start or (target - start < self.block_size and target < length):
            return
        ra.ahead_to = target
        task = asyncio.get_running_loop().create_task(self._prefetch(state, start, target - start))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _prefetch(self, state: InodeState, off: int, n: int) -> None:
        try:
            for indx, pos, cn in split_range(off, n):
                for piece in await self._layout_pieces(state, indx, pos, cn):
                    if piece.is_hole:
                        continue
                    for index, _, _ in blocks_for_range(piece.off, piece.len, self.block_size):
                        self.fetcher.prefetch(piece.id, piece.size, index)
        except (OSError, BlockMissing) as exc:
            log.debug("readahead_failed", ino=state.ino, off=off, error=str(exc))

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

"""`DataPath`: the file-content facade of one client — what the FUSE layer and the benchmarks call.

It ties the metadata engine, the object store, the caches, the writers and the reader together:

* ``open`` → a `Handle`; ``read``/``write`` through it; ``flush``/``fsync`` commit what the handle's
  inode has pending (and raise a failure of earlier writes: EIO, ENOSPC…); ``release`` flushes and
  closes.
* Operations that change a file's layout in metadata — ``truncate`` (the FUSE layer must route setattr
  of the size here), ``fallocate``, ``copy_file_range`` — first commit the pending writes of the inodes
  they touch, so that the order of writes and of these operations is kept, then drop cached layouts.
* It installs ``meta.free_hook``: blocks of slices the engine released are deleted (bounded concurrency)
  and dropped from the caches.
* Background jobs: the sweeper that freezes idle/old slices, compactions, cache writes.

All methods are coroutines on the mount's event loop; CPU and file I/O run on thread pools below.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass, field
from typing import Any

import structlog

from jfs.app.data.blocks import BlockStore
from jfs.app.data.cache import DiskCache, MemoryCache
from jfs.app.data.checksums import SumsIndex
from jfs.app.data.compactor import Compactor
from jfs.app.data.config import DataConfig
from jfs.app.data.fetcher import BlockFetcher, BlockId
from jfs.app.data.inode import ChunkMap, InodeState
from jfs.app.data.pacing import Pacer
from jfs.app.data.pages import Buffer, as_view
from jfs.app.data.reader import ReadAhead, Reader
from jfs.app.data.writer import (
    SHARED_CACHE_KEEP,
    FileWriter,
    UploadBacklog,
    WriteBudget,
    WriteContext,
    compaction_policy,
    relieve,
)
from jfs.app.meta.background import BackgroundJobs
from jfs.app.meta.chunks import MAX_FILE_SIZE
from jfs.app.meta.context import ROOT_CTX, Ctx
from jfs.app.meta.engine import Meta
from jfs.app.metrics import TimedStore
from jfs.domain.attrs import Attr, is_trash_inode
from jfs.domain.errors import FSError
from jfs.ports.objects import ObjectStore

log = structlog.get_logger("jfs.data")


GIVE_BACK_AFTER = 32 << 20
"""Bytes of cached blocks pushed out by writers between two `give_back` calls (ADR 0048)."""


@dataclass(eq=False)
class Handle:
    """One open file description."""

    fh: int
    ino: int
    flags: int
    readahead: ReadAhead = field(default_factory=ReadAhead)
    held: bool = True
    """Opened while the file had a name outside the trash (see `Meta.holds`)."""
    opened: Attr | None = None
    """The file's attributes as the engine gave them to this open (after its O_TRUNC)."""

    @property
    def writable(self) -> bool:
        return self.flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)


class DataPath:
    """File data of one client. Create with ``await DataPath(meta, store, config).start()``; `close` it."""

    def __init__(self, meta: Meta, store: ObjectStore, config: DataConfig | None = None, *,
                 give_back: Callable[[], object] | None = None,
                 cache_written: Callable[[str, int], object] | None = None,
                 cache_direct_write: Callable[[str, list[bytes | memoryview]], bool] | None = None,
                 cache_warm: Callable[[str], object] | None = None) -> None:
        """`give_back`: returns the process's free heap memory to the OS (`malloc_trim`); called off the
        loop once writers have pushed `GIVE_BACK_AFTER` bytes of cached blocks out (ADR 0048).
        `cache_written`, `cache_direct_write`: the disk cache's page budget and ``O_DIRECT`` writer (`DiskCache`'s
        `written` and `direct_write`, ADR 0059); `cache_warm`: its page-cache warming (`DiskCache`'s `warm`,
        ADR 0074)."""
        self.meta = meta
        self.store = store
        self.config = config = config or DataConfig.from_settings(meta.settings)
        self.objects = TimedStore(store)  # counts the object requests for .stats
        self.blocks = BlockStore(self.objects, config)
        self.mem: MemoryCache[BlockId] = MemoryCache(config.mem_cache_size)
        self.disk = (
            DiskCache(
                config.cache_dir, config.uuid, config.cache_size, min_free_ratio=config.cache_free_ratio,
                written=cache_written, direct_write=cache_direct_write, warm=cache_warm,
            )
            if config.cache_dir
            else None
        )
        self.sums = SumsIndex(meta.read_block_sums, config.block_size, enabled=config.checksum)
        self.fetcher = BlockFetcher(
            self.blocks, self.mem, self.disk, prefetch_limit=config.prefetch, sums=self.sums,
            cache_loads=config.cache_loads,
        )
        self.pacer = Pacer()  # foreground reads and writes touch it; background compactions give way
        self.compactor = Compactor(meta, self.blocks, self.fetcher, config, self._compacted, self.pacer)
        self.reader = Reader(meta, self.fetcher, config, self.compactor.schedule)
        self._give_back = give_back
        self._evicted = 0
        self._giving_back = False
        self.budget = WriteBudget(config.buffer_size, self._relieve_pressure, shared=self.mem,
                                  keep=min(config.mem_cache_size // 4, SHARED_CACHE_KEEP),
                                  on_evicted=self._cache_gave_way)
        self._wctx = WriteContext(
            meta=meta, blocks=self.blocks, disk=self.disk, config=config, budget=self.budget,
            uploads=asyncio.Semaphore(max(1, config.max_uploads)), committed=self._committed,
            compact=self._after_commit, spawn=self.spawn, sums=self.sums, mem=self.mem,
            backlog=UploadBacklog(max(1, config.max_uploads + config.upload_backlog) * config.block_size),
        )  # fmt: skip
        self._inodes: dict[int, InodeState] = {}
        self._handles: dict[int, Handle] = {}
        self._fh = itertools.count(1)
        self._jobs = BackgroundJobs(log)
        self._sweeper: asyncio.Task[None] | None = None
        self.deferred_deletions = 0
        """Freed slices whose block deletion waited for reads in flight (ADR 0015)."""

    async def start(self) -> DataPath:
        """Start the background jobs and attach to the engine's free hook."""
        if self.disk is not None:
            self.disk.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop())
        self.meta.free_hook = self._free_slices
        return self

    # -- handles ---------------------------------------------------------------------------------------

    async def open(
        self, ino: int, flags: int = os.O_RDONLY, ctx: Ctx = ROOT_CTX, *, created: Attr | None = None,
        fresh: Attr | None = None,
    ) -> Handle:
        """Open `ino` (access checked by the engine); O_TRUNC truncates it. `created`: the attributes of a
        regular file this client has just created for the caller (no access check, no engine read).
        `fresh`: attributes the caller has just read from the engine (`Meta.open`), used only while this
        client does not have the inode open (its attributes then carry no local state)."""
        state = self._inodes.get(ino)
        seen = state.local_changes if state is not None else 0
        if created is None:
            attr = await self.meta.open(ino, flags, ctx, fresh=fresh if state is None else None)
        else:
            attr = created
            self.meta.open_file(ino)
        state = self._inodes.get(ino)
        if state is None:
            state = self._inodes[ino] = InodeState(ino, attr, ChunkMap(self.meta, ino))
        else:
            state.revalidate(attr, seen)
        state.handles += 1
        h = Handle(next(self._fh), ino, flags, held=not is_trash_inode(attr.parent), opened=attr)
        self._handles[h.fh] = h
        if flags & os.O_TRUNC and h.writable:
            try:
                h.opened = await self.truncate(ino, 0, ctx)
            except BaseException:
                await self.release(h)
                raise
        return h

    def _state(self, h: Handle) -> InodeState:
        if self._handles.get(h.fh) is not h:
            raise FSError(errno.EBADF)
        return self._inodes[h.ino]

    async def read(self, h: Handle, off: int, size: int) -> bytes:
        """Up to `size` bytes at `off` (short at the end of the file); FSError(EIO) if data is unreadable."""
        self.pacer.touch()
        data = await self.reader.read(self._state(h), h.readahead, off, size)
        return data if type(data) is bytes else bytes(data)

    async def read_buffer(self, h: Handle, off: int, size: int) -> bytes | bytearray | memoryview:
        """`read` without the final copy into bytes: a buffer nobody changes later (for FUSE replies)."""
        self.pacer.touch()
        return await self.reader.read(self._state(h), h.readahead, off, size)

    def read_now(self, h: Handle, off: int, size: int) -> Buffer | list[Buffer] | None:
        """`read_buffer` answered from the caches without waiting (`Reader.read_now`), or None: then
        call `read_buffer` (which also raises what this does not, e.g. EBADF). A foreground read for the
        pacer like `read_buffer`: compaction must give way to reads answered in the FUSE loop too."""
        self.pacer.touch()
        if self._handles.get(h.fh) is not h:
            return None
        state = self._inodes.get(h.ino)
        if state is None:
            return None
        return self.reader.read_now(state, h.readahead, off, size)

    async def write(self, h: Handle, off: int, data: Buffer, *, owned: bool = False) -> int:
        """Buffer `data` at `off`; returns its length. Failures to store it are raised by a later
        flush/fsync/release. Mutable buffers are copied unless `owned`: the caller hands `data` over and
        nobody changes it again (the FUSE server's WRITE buffers)."""
        state = self._state(h)
        if not h.writable:
            raise FSError(errno.EBADF)
        view = as_view(data, owned)
        if off < 0:
            raise FSError(errno.EINVAL)
        if off + len(view) > MAX_FILE_SIZE:
            raise FSError(errno.EFBIG)
        if not view:
            return 0
        self.pacer.touch()
        await self._writer(state).write(off, view)
        return len(view)

    def write_target(self, h: Handle, off: int) -> memoryview | None:
        """Where a write of `h` at `off` may be read to straight away (`FileWriter.write_target`), or None."""
        state = self._inodes.get(h.ino)
        if state is None or state.writer is None or not h.writable:
            return None
        return state.writer.write_target(off)

    def _writer(self, state: InodeState) -> FileWriter:
        if state.writer is None:
            state.writer = FileWriter(state.ino, self._wctx, _committed_length(weakref.ref(state)))
        return state.writer

    async def flush(self, h: Handle) -> None:
        """Commit the inode's pending writes; raises the first failure since the last flush."""
        state = self._state(h)
        if state.writer is not None:
            with self.pacer.active():
                await state.writer.flush()

    def flush_now(self, h: Handle) -> bool:
        """`flush` when there is nothing to wait for: True if the inode's writer (if any) holds nothing
        buffered or uncommitted and no failure to report, else False (call `flush`)."""
        w = self._state(h).writer
        if w is None:
            return True
        if not w.idle or w.error is not None:
            return False
        self.pacer.touch()  # as `flush`'s `pacer.active()` would: the foreground was busy
        return True

    async def fsync(self, h: Handle, datasync: bool = False) -> None:
        await self.flush(h)

    async def release(self, h: Handle) -> None:
        """Flush and close the handle; the error of the flush (if any) is raised after closing."""
        state = self._state(h)
        try:
            if state.writer is not None:
                with self.pacer.active():  # as `flush`: a face's close may come without one (the SDK's)
                    await state.writer.flush()
        finally:
            del self._handles[h.fh]
            state.handles -= 1
            if state.handles == 0 and (state.writer is None or state.writer.idle):
                del self._inodes[h.ino]
            await self.meta.close_file(h.ino, held=h.held)

    def release_now(self, h: Handle) -> bool:
        """`release` done at once (True) when `flush_now` would be and closing it needs no engine call
        (`Meta.close_file_now`); else False and the handle is left open (call `release`)."""
        state = self._state(h)
        if not self.flush_now(h) or not self.meta.close_file_now(h.ino, held=h.held):
            return False
        del self._handles[h.fh]
        state.handles -= 1
        if state.handles == 0:  # the writer, if any, is idle
            del self._inodes[h.ino]
        return True

    async def publish(self, ino: int) -> None:
        """Commit the pending writes of `ino` now: a lock on it is about to be released, and its next
        holder — on any client — must see them. A failure stays pending for the writer's next flush."""
        await self._settle(ino)

    async def refresh(self, ino: int) -> None:
        """Re-read the attributes of `ino` (if open here) from the engine now, dropping cached layouts if
        it changed: a lock on it was just taken, so what other clients wrote before releasing it must be
        visible without waiting for the attribute TTL."""
        state = self._inodes.get(ino)
        if state is None:
            return
        seen = state.local_changes
        state.revalidate(await self.meta.getattr(ino), seen)

    def parent_of(self, ino: int) -> int | None:
        """The directory holding `ino` as last read from the engine, if it is open here (None otherwise,
        or when the engine does not record one)."""
        state = self._inodes.get(ino)
        return (state.attr.parent or None) if state is not None else None

    @property
    def open_inodes(self) -> Container[int]:
        """The inodes with state here (open, or with writes not yet committed): `file_length` is None for
        every other (a listing tests membership before asking, ADR 0071). A live view, read-only."""
        return self._inodes.keys()

    def file_length(self, ino: int) -> int | None:
        """The length including this client's uncommitted writes, if the inode is open here (for getattr)."""
        state = self._inodes.get(ino)
        return state.length() if state is not None else None

    # -- layout changes --------------------------------------------------------------------------------

    async def _settle(self, ino: int) -> InodeState | None:
        """Commit the pending writes of `ino` before a layout change; their failure stays pending for the
        writer's next flush."""
        state = self._inodes.get(ino)
        if state is not None and state.writer is not None:
            try:
                await state.writer.flush()
            except OSError as exc:
                state.writer.error = exc
        return state

    def _changed(self, state: InodeState | None, attr: Attr) -> None:
        if state is not None:
            state.chunks.invalidate()
            state.note_local(attr)
            if state.writer is not None:
                state.writer.forget_growth()

    async def truncate(self, ino: int, length: int, ctx: Ctx = ROOT_CTX) -> Attr:
        """Set the length of `ino` (its pending writes are committed first)."""
        state = await self._settle(ino)
        attr = await self.meta.truncate(ino, length, ctx)
        self._changed(state, attr)
        return attr

    async def fallocate(self, ino: int, mode: int, off: int, length: int, ctx: Ctx = ROOT_CTX) -> Attr:
        """fallocate(2) on `ino` (pending writes committed first); see `Meta.fallocate` for the modes."""
        state = await self._settle(ino)
        attr = await self.meta.fallocate(ino, mode, off, length, ctx)
        self._changed(state, attr)
        return attr

    async def copy_file_range(
        self,
        ino_in: int,
        off_in: int,
        ino_out: int,
        off_out: int,
        size: int,
        flags: int = 0,
        ctx: Ctx = ROOT_CTX,
    ) -> tuple[int, Attr]:
        """Copy by reference (no data moves); both files' pending writes are committed first."""
        await self._settle(ino_in)
        state = await self._settle(ino_out)
        n, attr = await self.meta.copy_file_range(ino_in, off_in, ino_out, off_out, size, flags, ctx)
        self._changed(state, attr)
        return n, attr

    async def compact(self, ino: int) -> int:
        """Compact every chunk of `ino` now; returns how many chunks were rewritten."""
        await self._settle(ino)
        return await self.compactor.compact_file(ino)

    # -- callbacks from the writers, the compactor and the engine --------------------------------------

    def _committed(self, ino: int, indx: int, attr: Attr) -> None:
        state = self._inodes.get(ino)
        if state is not None:
            state.chunks.invalidate(indx)
            state.note_local(attr)

    async def _after_commit(self, ino: int, indx: int, n_records: int, added: int = 1) -> None:
        async def now() -> None:
            try:
                await self.compactor.compact_chunk(ino, indx)
            except Exception as exc:
                log.warning("compaction_failed", ino=ino, indx=indx, error=str(exc))

        await compaction_policy(n_records, now, lambda: self.compactor.schedule(ino, indx), added)

    def _compacted(self, ino: int, indx: int) -> None:
        state = self._inodes.get(ino)
        if state is not None:
            state.chunks.invalidate(indx)

    async def _free_slices(self, slices: list[tuple[int, int]]) -> list[tuple[int, int]] | None:
        """The engine's free hook: delete the blocks of released slices. Never raises (a failure leaves
        objects behind for gc and is logged).

        Reads of this client in flight may have resolved a layout naming these slices just before the
        change that freed them (ADR 0015): cached layouts naming them are dropped first, and while such
        reads run the deletion waits for them in the background — the slices' records stay pending until
        it is done (returns []). With no read in flight, the blocks are deleted now (returns None: all)."""
        ids = {sid for sid, _ in slices}
        for state in self._inodes.values():
            state.chunks.drop_slices(ids)
        grace = self.reader.grace
        cut = grace.cut()  # no await since the layouts were dropped: later reads resolve the new ones
        if not grace.busy(cut):
            await self._delete_slices(slices)
            return None
        self.deferred_deletions += len(slices)
        self.spawn(self._delete_after_reads(slices, cut))
        return []

    async def _delete_after_reads(self, slices: list[tuple[int, int]], cut: int) -> None:
        await self.reader.grace.wait(cut)
        await self._delete_slices(slices)
        await self.meta.forget_slices(slices)

    async def _delete_slices(self, slices: list[tuple[int, int]]) -> None:
        async def one(slice_id: int, size: int) -> None:
            # The objects' deletion does not wait for the cached copies' files to go: the caches forget the
            # blocks before their first await, and unlinking a cached 4 MiB block file costs ~1 ms (ADR 0100).
            await asyncio.gather(self.fetcher.forget(slice_id, size), self.blocks.delete_slice(slice_id, size))

        results = await asyncio.gather(*(one(sid, size) for sid, size in slices), return_exceptions=True)
        for (sid, size), r in zip(slices, results, strict=True):
            if isinstance(r, BaseException):
                log.error("slice_blocks_leaked", slice=sid, size=size, error=str(r))

    def _cache_gave_way(self, n: int) -> None:
        """Writers pushed `n` bytes of blocks out of the memory cache: once enough were freed, give the
        free memory back to the OS (in a thread: it takes tens of ms), else it stays resident — the loaded
        blocks were allocated by object-store threads, whose malloc arenas the writers never reuse."""
        self._evicted += n
        if self._evicted >= GIVE_BACK_AFTER:
            self._give_back_memory()

    def _give_back_memory(self) -> None:
        """Run `give_back` in a thread, unless it is running already."""
        if self._give_back is None or self._giving_back:
            return
        self._evicted = 0
        self._giving_back = True
        give_back = self._give_back

        async def run() -> None:
            try:
                await asyncio.to_thread(give_back)
            finally:
                self._giving_back = False

        self.spawn(run())

    def _relieve_pressure(self) -> None:
        """Writers wait for buffer space: make sure at least half the budget is on its way back
        (`writer.relieve`: uploads in flight or queued, frozen slices awaiting their commit)."""
        slices = [s for state in self._inodes.values() if state.writer is not None for s in state.writer.slices()]
        relieve(slices, self.budget.limit // 2)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval)
            now = time.monotonic()
            for state in list(self._inodes.values()):
                if state.writer is not None and not state.writer.idle:
                    state.writer.sweep(now)
            if self.budget.used == 0 and self._wctx.arenas is not None:
                # Nothing being written: let go of the idle block arenas, and of the heap they and the
                # blocks writers pushed out of the cache leave behind (ADR 0048).
                if self._wctx.arenas.clear() or self._evicted:
                    self._give_back_memory()

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run a background job owned by the data path (awaited by `drain` and `close`)."""
        self._jobs.spawn(coro)

    async def drain(self) -> None:
        """Wait until background work started so far is done: compactions, deletions, cache writes."""
        await self.compactor.drain()
        await self._jobs.drain()
        if self.disk is not None:
            await self.disk.drain()

    async def close(self) -> None:
        """Commit every pending write (failures are logged), stop background jobs, release threads."""
        for state in list(self._inodes.values()):
            if state.writer is not None:
                try:
                    await state.writer.flush()
                except OSError as exc:
                    log.error("flush_on_close_failed", ino=state.ino, error=str(exc))
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.compactor.close()
        await self.reader.close()
        await self.fetcher.close()
        await self.drain()
        if self.meta.free_hook == self._free_slices:
            self.meta.free_hook = None
        if self.disk is not None:
            await self.disk.close()
        await self.blocks.close()


def _committed_length(ref: weakref.ref[InodeState]) -> Callable[[], int]:
    """`FileWriter`'s view of the committed length of its inode: through a weak reference, so that an
    inode's state and its writer form no reference cycle and go with their last reference (a small file's
    twenty objects otherwise wait for the cyclic collector: ADR 0072). A writer whose state is gone has
    nothing pending for a caller to ask about; it answers 0."""

    def committed() -> int:
        state = ref()
        return state.attr.length if state is not None else 0

    return committed

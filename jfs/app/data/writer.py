"""Writers: how written bytes become slices, blocks and committed slice records.

Per inode a `FileWriter`; per chunk it touches a `ChunkWriter`; inside a chunk a list of `SliceWriter`s in
creation order. Rules (after JuiceFS's ``pkg/vfs/writer.go``):

* A write is split at chunk boundaries. Inside a chunk it joins the newest *unfrozen* slice whose
  not-yet-uploaded tail it starts in (``pos`` in ``[slice.pos + uploaded, slice.pos + slice.len]`` — an
  append or an overwrite of the tail); scanning newest first, a slice overlapping the write that cannot
  take it stops the search. Otherwise the write starts a new slice (the newer slice wins when read).
  Slices more than 3 positions older than the newest are frozen while scanning.
* Bytes are kept as the writers' own immutable buffers (`PageList`); a block that fills is joined once
  and handed to the uploader (at most `max_uploads` uploads in flight per client). Small appends thus
  make small blocks, never a read-modify-write of a stored block.
* A face may read a sequential write's bytes straight into the block they belong to (`write_target`,
  the FUSE server's placed writes, ADR 0030): such a block is a block-sized arena, uploaded unjoined.
* A slice is frozen by `flush`/`fsync`/`close`, when it reaches the end of its chunk, after `idle_flush`
  seconds without writes or `max_slice_age` seconds of life (the sweeper), or under memory pressure.
  Freezing uploads its last partial block.
* A frozen slice is committed (`meta.write_slices`) only after *all* its blocks are stored; the slices of
  a chunk commit strictly in creation order, those ready together in one transaction (ADR 0102). A slice that grows the file
  into a later chunk waits for the previous file-growing slice to commit first, so the file length never
  jumps over data that is not committed yet.
* If a block cannot be stored (after the BlockStore's retries) or the commit is refused, the slice is
  dropped, its blocks are deleted, and the error (EIO, or the engine's errno) is raised by the next
  `flush` of the file. An engine failure of unknown outcome keeps the blocks (gc reclaims them if the
  record did not land).
* Memory: every byte is counted in the client's `WriteBudget` from the write until its slice is
  committed or dropped; a write waits while the budget is exceeded instead of growing memory (and the
  data path freezes the largest open slices if too little is on its way to a commit).
* Until it is committed, a slice's bytes stay readable through `FileWriter.overlay` (read-your-writes).
* With block checksums on (ADR 0008), each upload returns its block's CRC-32 and the commit stores the
  slice's checksum record in the same transaction as the slice record.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from jfs.app.data.blocks import BlockStore
from jfs.app.data.cache import DiskCache, MemoryCache
from jfs.app.data.checksums import SumsIndex
from jfs.app.data.config import DataConfig
from jfs.app.data.eager import start_now
from jfs.app.data.pages import THREAD_JOIN_MIN, ArenaPool, PageList, as_bytes
from jfs.domain.attrs import Attr
from jfs.domain.checksums import encode_sums
from jfs.domain.chunks import CHUNK_SIZE, split_range
from jfs.domain.compaction import must_compact_now, needs_compaction
from jfs.domain.errors import FSError
from jfs.domain.records import NewSlice

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

log = structlog.get_logger("jfs.data")

MAX_UNFROZEN_DEPTH = 3
ARENA_WRITE_MIN = 128 << 10
"""A write at least this long (or a quarter block, if less) that starts a block other than the file's
first gives the block an arena (ADR 0039)."""
SHARED_CACHE_KEEP = 32 << 20
"""What the memory cache keeps however full the write budget is (at most a quarter of it, ADR 0048): one
reader's read-ahead window (8 blocks of 4 MiB), so that blocks loaded ahead are still there when the
reader gets to them."""
MAX_PENDING_SLICES = 1000
"""A file's writes wait while it has this many uncommitted slices (JuiceFS's limit, ``totalSlices``):
random 4 KiB writes otherwise queued ten thousand slices in 8 s, whose uploads, commits and compactions
went on for minutes after the writer's fsync (ADR 0036)."""
MAX_COMMIT_BATCH = 100
"""Most slices of one chunk committed in one transaction (ADR 0102): a slice ready when the one before it
commits goes into the same transaction, so that commits keep up with many small slices (random writes)
instead of queueing one transaction each behind the inode's lock."""
IDLE_ARENAS = 16
"""Block arenas kept for reuse per client once their slices are committed (a chunk's worth of 4 MiB
blocks: a sequential writer's slice lets go of its 16 at its commit, the next chunk takes them back;
dropped when the client has nothing left to write, ADR 0030)."""


@dataclass(frozen=True, slots=True)
class StoredPart:
    """Bytes [inner, inner+length) of full block `index` of uncommitted slice `slice_id`: uploaded, and no
    longer kept by the writer (`SliceWriter._let_go`), so a reader loads them from the block store."""

    slice_id: int
    index: int
    inner: int
    length: int


def stored_size(part: StoredPart, block_size: int) -> int:
    """A slice size under which `part`'s block is a whole block: the block's key and length follow."""
    return (part.index + 1) * block_size


OverlayPart = memoryview | StoredPart


class WriteBudget:
    """Bytes held by the writers of one client, with back-pressure above `limit`.

    With a `shared` memory cache (ADR 0048), `limit` bounds the writers' bytes and the cache's together,
    as JuiceFS's ``--buffer-size`` bounds its write buffers and read-ahead together: the cache may hold at
    most ``limit - used`` bytes (never less than `keep`), and gives up its oldest blocks as writers fill
    the budget. Without it, blocks read before a big write stayed cached beside a full write budget: the
    mount's peak RSS was the cache (128 MiB) on top of the budget (300 MiB)."""

    def __init__(self, limit: int, on_pressure: Callable[[], None], shared: MemoryCache[Any] | None = None,
                 keep: int = 0, on_evicted: Callable[[int], None] | None = None) -> None:
        """`on_evicted(n)`: told after the writers pushed `n` bytes of blocks out of the shared cache."""
        self.limit = limit
        self.used = 0
        self._on_pressure = on_pressure
        self._room = asyncio.Event()
        self._room.set()
        self._shared = shared
        self._keep = keep
        self._on_evicted = on_evicted
        self._ceiling = limit
        """The cache's ceiling as last set by `_share`."""

    def add(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            self._room.clear()
        if self._shared is not None:
            self._share()

    def release(self, n: int) -> None:
        self.used -= n
        if self.used <= self.limit:
            self._room.set()
        if self._shared is not None:
            self._share()

    def _share(self) -> None:
        ceiling = max(self._keep, self.limit - self.used)
        cache = self._shared
        assert cache is not None
        # Cheap on every write: evict only when the cache is above its new ceiling, else only move it.
        if cache.used > ceiling or ceiling != self._ceiling:
            self._ceiling = ceiling
            if cache.used > ceiling:
                before = cache.used
                cache.shrink(ceiling)
                if self._on_evicted is not None:
                    self._on_evicted(before - cache.used)
            else:
                cache.ceiling = min(cache.capacity, ceiling)

    def room(self) -> int:
        """Bytes of `limit` neither the writers nor the shared memory cache hold (may be negative): what idle
        block arenas may keep (`ArenaPool`, ADR 0053)."""
        cached = self._shared.used if self._shared is not None else 0
        return self.limit - self.used - cached

    async def wait(self) -> None:
        """Return once the writers hold at most `limit` bytes (asking for relief while waiting)."""
        while self.used > self.limit:
            self._on_pressure()
            await self._room.wait()


class UploadBacklog:
    """Bytes of blocks handed to the uploader and not stored yet, with back-pressure at `limit` (ADR 0053).

    The uploader stores at most `max_uploads` blocks at once; blocks queued behind them add nothing to
    the rate but memory — a block-sized arena each, first touched (page faults) when it is written. When
    the store is slower than the writers, writes therefore wait while `limit` bytes are pending (a few
    blocks more than the uploads in flight), instead of filling the whole write budget with queued blocks:
    the arenas in flight (the mount's working set, and the fresh pages each burst touches) follow the
    store's concurrency, not the budget. Counted in bytes, so that the small blocks of random writes
    (JuiceFS's 1,000 pending slices per file) are not held up by it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending = 0
        self._room = asyncio.Event()
        self._room.set()

    @property
    def full(self) -> bool:
        return self.pending >= self.limit

    def add(self, n: int) -> None:
        self.pending += n
        if self.pending >= self.limit:
            self._room.clear()

    def done(self, n: int) -> None:
        self.pending -= n
        if self.pending < self.limit:
            self._room.set()

    async def wait(self) -> None:
        """Return once less than `limit` bytes are pending."""
        while self.pending >= self.limit:
            await self._room.wait()


@dataclass
class WriteContext:
    """What the writers of one client share."""

    meta: Meta
    blocks: BlockStore
    disk: DiskCache | None
    config: DataConfig
    budget: WriteBudget
    uploads: asyncio.Semaphore
    committed: Callable[[int, int, Attr], None]
    """Called right after a slice of (ino, chunk index) is committed, with the new attr (synchronously)."""
    compact: Callable[[int, int, int, int], Awaitable[None]]
    """Called after a commit with (ino, chunk index, records in the chunk, records the commit added);
    decides on compaction."""
    spawn: Callable[[Awaitable[Any]], None]
    """Runs a background job owned by the data path."""
    sums: SumsIndex | None = None
    """Told the checksums of committed slices (so that reading them back needs no engine lookup)."""
    mem: MemoryCache[tuple[int, int]] | None = None
    """The readers' memory cache: written blocks shorter than a full block go there once stored (a small
    file read right after its write, as by ``juicefs bench``, then needs no object-store read)."""
    arenas: ArenaPool | None = field(default=None)
    """Block-sized buffers for placed writes (`FileWriter.write_target`); made on first use."""
    backlog: UploadBacklog | None = None
    """Blocks waiting for or in their upload; writes wait while it is full (None: no such limit)."""


def arena_pool(ctx: WriteContext) -> ArenaPool:
    """The client's block arenas (made on first use): `IDLE_ARENAS` kept idle, more while the write budget
    has room for them (ADR 0053)."""
    pool = ctx.arenas
    if pool is None:
        pool = ctx.arenas = ArenaPool(ctx.blocks.block_size, IDLE_ARENAS, ctx.budget.room)
    return pool


class SliceWriter:
    """Bytes [pos, pos+length) of one chunk, written as one continuous run, becoming slice `id`."""

    def __init__(self, chunk: ChunkWriter, slice_id: int, pos: int) -> None:
        self.chunk = chunk
        self.id = slice_id
        self.pos = pos
        self.length = 0
        self.blocks: list[PageList | None] = []
        """Block `i`'s bytes; None once the block is uploaded whole and let go (`_let_go`)."""
        self.let_go = 0
        """Bytes of this slice already given back to the write budget by `_let_go`."""
        self.handed = 0
        """Blocks handed to the uploader; only bytes after them may still change."""
        self.frozen = False
        self.uploads: list[asyncio.Task[None]] = []
        self.crcs: dict[int, int] = {}
        """CRC-32 of each uploaded block (block checksums on)."""
        self.failed: OSError | None = None
        self.done = asyncio.Event()
        """Set once the slice is committed or dropped."""
        now = time.monotonic()
        self.created = now
        self.touched = now
        self.mtime_ns = 0
        self.after: SliceWriter | None = None
        """The file-growing slice of an earlier chunk that must commit before this one."""

    @property
    def end(self) -> int:
        return self.pos + self.length

    def joinable(self, pos: int, block_size: int) -> bool:
        return not self.frozen and self.pos + self.handed * block_size <= pos <= self.end

    def write(self, rel: int, data: memoryview) -> int:
        """Put `data` at `rel` bytes into the slice (inside its open tail); returns how much it grew."""
        bs = self.chunk.file.ctx.blocks.block_size
        done = 0
        n = len(data)
        while done < n:
            index, inner = divmod(rel + done, bs)
            take = min(bs - inner, n - done)
            while len(self.blocks) <= index:
                self.blocks.append(self._new_block(len(self.blocks), inner, take, bs))
            pages = self.blocks[index]
            assert pages is not None, "a write into a block already let go"
            pages.write(inner, data[done : done + take])
            done += take
        grown = max(0, rel + n - self.length)
        self.length += grown
        self.touched = time.monotonic()
        self.mtime_ns = time.time_ns()
        while self.handed < len(self.blocks) and self._size_of(self.handed) == bs:
            self._hand_off(self.handed)
        return grown

    def _new_block(self, index: int, inner: int, take: int, bs: int) -> PageList:
        """The list of new block `index`, first written with `take` bytes at `inner`: with a block arena
        when a sequential writer's big write starts it without filling it (ADR 0039), so that its pieces
        are copied into the arena once instead of being kept as the caller's buffers and joined. Never
        for the file's first block (a small file must not cost a block-sized buffer) nor for a write of
        the whole block (kept as it is: no copy at all)."""
        first_of_file = index == 0 and self.pos == 0 and self.chunk.indx == 0
        if inner or take < min(ARENA_WRITE_MIN, bs // 4) or take >= bs or first_of_file:
            return PageList()
        return PageList(arena_pool(self.chunk.file.ctx).take())

    def _size_of(self, index: int) -> int:
        pages = self.blocks[index]
        return 0 if pages is None else pages.size

    def _hand_off(self, index: int) -> None:
        self.handed = index + 1
        pages = self.blocks[index]
        assert pages is not None
        upload = self._upload(index, pages)
        backlog = self.chunk.file.ctx.backlog
        if backlog is not None:
            backlog.add(pages.size)
            upload = _counted(upload, backlog, pages.size)
        task = start_now(upload) if self.chunk.file.eager else asyncio.get_running_loop().create_task(upload)
        self.uploads.append(task)

    async def _upload(self, index: int, pages: PageList) -> None:
        ctx = self.chunk.file.ctx
        async with ctx.uploads:
            data: bytes | memoryview | None = pages.single()  # a block written in one piece: no join
            if data is None:
                # Joining megabytes is a copy plus page faults: off the loop (bytes.join drops the GIL for it).
                data = await ctx.blocks.cpu(pages.join) if pages.size >= THREAD_JOIN_MIN else pages.join()
            crc = await ctx.blocks.put(self.id, index, data)
        if crc is not None:
            self.crcs[index] = crc
        full = len(data) >= ctx.blocks.block_size
        if not full and ctx.mem is not None:  # readers get bytes: a view of a whole bytes object is that
            ctx.mem.put((self.id, index), as_bytes(data))  # object (no copy, ADR 0090), any other view copied
        if ctx.disk is not None and (ctx.config.cache_full_writes if full else ctx.config.cache_small_writes):
            ctx.disk.put_background(ctx.blocks.cache_key(self.id, index, len(data)), data, direct=True)
        if full:
            self._let_go(index, pages)

    def _let_go(self, index: int, pages: PageList) -> None:
        """Stop holding full block `index` once it is stored (as JuiceFS frees a block's pages after its
        upload): until the slice commits, readers load it from the block store (`StoredPart`), and the
        write budget gets its bytes back now, so memory follows the uploads in flight rather than the
        slices awaiting their commit. Kept when block checksums are on (a reader would look for the
        slice's checksum record, written only by the commit), and in a file this client reads back while
        writing it (such a reader would load each block again from the object store)."""
        ctx = self.chunk.file.ctx
        if self._keeps_blocks():
            return
        if index >= len(self.blocks) or self.blocks[index] is not pages:
            return  # the slice was committed or dropped meanwhile
        self.blocks[index] = None
        self.let_go += pages.size
        ctx.budget.release(pages.size)
        if pages.arena is not None and ctx.arenas is not None:
            ctx.arenas.give(pages.arena)

    def _keeps_blocks(self) -> bool:
        """Whether stored full blocks stay in memory until the commit (see `_let_go`)."""
        file = self.chunk.file
        sums = file.ctx.sums
        return (sums is not None and sums.enabled) or file.read_back

    def held(self) -> int:
        """Bytes of this slice still counted in the write budget."""
        return self.length - self.let_go

    def leaving(self) -> int:
        """Bytes of `held` that are given back without anything more to do: all of a frozen slice's (at
        its commit); of an open one, its full blocks handed to the uploader, unless they are kept until
        the commit (`_keeps_blocks`). Freezing an open slice adds the rest (its tail, its kept blocks)."""
        if self.frozen:
            return self.held()
        if self._keeps_blocks():
            return 0
        return self.handed * self.chunk.file.ctx.blocks.block_size - self.let_go

    def freeze(self) -> None:
        """No more writes: upload the last partial block and let the chunk commit the slice in turn."""
        if self.frozen:
            return
        self.frozen = True
        if self.handed < len(self.blocks) and self._size_of(self.handed):
            self._hand_off(self.handed)
        self.chunk.kick()

    def release(self) -> None:
        """Committed or dropped: let go of the bytes and of the slice it waited for. The slice object may
        outlive this (as the file's last growing slice), its data must not: a chain of `after` links
        would otherwise keep every byte ever written to the file in memory."""
        pool = self.chunk.file.ctx.arenas
        if pool is not None:
            for pages in self.blocks:
                if pages is not None and pages.arena is not None:
                    pool.give(pages.arena)
        self.blocks = []
        self.uploads = []
        self.after = None

    def views(self, rel: int, n: int) -> list[OverlayPart]:
        """The bytes [rel, rel+n) of the slice (which must hold them), as views that never change, or as
        `StoredPart`s for blocks already let go."""
        bs = self.chunk.file.ctx.blocks.block_size
        out: list[OverlayPart] = []
        end = rel + n
        while rel < end:
            index, inner = divmod(rel, bs)
            take = min(bs - inner, end - rel)
            pages = self.blocks[index]
            if pages is None:
                out.append(StoredPart(self.id, index, inner, take))
            else:
                out.extend(pages.views(inner, take))
            rel += take
        return out


class ChunkWriter:
    """The uncommitted slices of one chunk of a file, in creation order, and their committer."""

    def __init__(self, file: FileWriter, indx: int) -> None:
        self.file = file
        self.indx = indx
        self.slices: list[SliceWriter] = []
        self._committer: asyncio.Task[None] | None = None

    def find(self, pos: int, n: int) -> SliceWriter | None:
        """The slice a write of [pos, pos+n) may join, if any (see the module docstring).

        Only the newest MAX_UNFROZEN_DEPTH + 1 slices can be open (`add` freezes the one that falls
        behind), so the search stops there: under random writes thousands of slices may wait for their
        commit, and scanning them all on every write was quadratic."""
        bs = self.file.ctx.blocks.block_size
        slices = self.slices
        for i in range(len(slices) - 1, max(-1, len(slices) - MAX_UNFROZEN_DEPTH - 2), -1):
            s = slices[i]
            if not s.frozen and s.joinable(pos, bs):
                return s
            if pos < s.pos + s.length and s.pos < pos + n:
                return None
        return None

    def add(self, s: SliceWriter) -> None:
        """Append a new slice; the one now MAX_UNFROZEN_DEPTH + 1 places behind it is frozen."""
        self.slices.append(s)
        if len(self.slices) > MAX_UNFROZEN_DEPTH + 1:
            behind = self.slices[-MAX_UNFROZEN_DEPTH - 2]
            if not behind.frozen:
                behind.freeze()

    def kick(self) -> None:
        """Make sure frozen slices at the head of the list are being committed."""
        if self._committer is None or self._committer.done():
            run = self._commit_loop()
            self._committer = start_now(run) if self.file.eager else asyncio.get_running_loop().create_task(run)

    async def _commit_loop(self) -> None:
        while self.slices and self.slices[0].frozen:
            batch, n_records = await self.file.commit(self.slices)
            # No await between the commit's cache invalidation (inside `commit`) and leaving the list:
            # a reader sees the slices either in the records it fetches or in the overlay.
            del self.slices[: len(batch)]
            for s in batch:
                if self.file._pending_end == self.indx * CHUNK_SIZE + s.end:
                    self.file._pending_end = None  # it may have been the furthest: recompute on demand
                self.file.ctx.budget.release(s.length - s.let_go)
                s.done.set()
                s.release()
                if self.file._last_growing is s:
                    # Committed: no later slice waits for it (`write` chains only to a slice not done yet). Let
                    # go of it, so that writer, chunk and slice form no cycle for the collector (ADR 0072).
                    self.file._last_growing = None
            if n_records:
                await self.file.ctx.compact(self.file.ino, self.indx, n_records, len(batch))
        if not self.slices and self.file.chunks.get(self.indx) is self:
            del self.file.chunks[self.indx]


async def _counted(upload: Awaitable[None], backlog: UploadBacklog, n: int) -> None:
    try:
        await upload
    finally:
        backlog.done(n)


def _ready(s: SliceWriter) -> bool:
    """Whether slice `s` can be committed without waiting: frozen, every block stored, and the slice it
    must follow (if any) committed."""
    if not s.frozen or (s.after is not None and (not s.after.done.is_set() or s.after.failed is not None)):
        return False
    return all(t.done() and not t.cancelled() and t.exception() is None for t in s.uploads)


async def _settled(tasks: list[asyncio.Task[None]]) -> list[BaseException | None]:
    """`asyncio.gather(*tasks, return_exceptions=True)`, without its callbacks' extra loop passes when every
    task is done already (a small file's only upload, written on the loop before the committer ran)."""
    if all(t.done() for t in tasks):
        return [asyncio.CancelledError() if t.cancelled() else t.exception() for t in tasks]
    return await asyncio.gather(*tasks, return_exceptions=True)


class FileWriter:
    """The pending writes of one inode in this client."""

    def __init__(self, ino: int, ctx: WriteContext, committed_length: Callable[[], int]) -> None:
        self.ino = ino
        self.ctx = ctx
        self.chunks: dict[int, ChunkWriter] = {}
        self.error: OSError | None = None
        self.read_back = False
        """Set once a read asked for this file's pending bytes: its stored blocks are then kept until
        their commit (`SliceWriter._let_go`)."""
        """The first failure since the last `flush`, raised by the next one."""
        self._committed_length = committed_length
        self._last_growing: SliceWriter | None = None
        self._lock = asyncio.Lock()
        self._pending_end: int | None = None
        """`pending_end`, while known; None after a slice left (recomputed on demand)."""
        self.eager = False
        """Set while `flush` freezes: the uploads and committers it starts take their first step at once
        (`start_now`), so a small file's close stores and commits it without a loop pass (ADR 0044)."""

    # -- writing ---------------------------------------------------------------------------------------

    async def write(self, off: int, data: memoryview) -> None:
        """Buffer `data` at file offset `off` (waits first while the client's write budget is exceeded)."""
        await self.ctx.budget.wait()
        if self.ctx.backlog is not None:
            await self.ctx.backlog.wait()
        while sum(len(cw.slices) for cw in self.chunks.values()) >= MAX_PENDING_SLICES:
            longest = max(self.chunks.values(), key=lambda cw: len(cw.slices))
            longest.slices[0].freeze()  # normally frozen long ago: only the newest few are open
            await longest.slices[0].done.wait()
        async with self._lock:
            done = 0
            for indx, pos, n in split_range(off, len(data)):
                await self._write_chunk(indx, pos, data[done : done + n])
                done += n

    async def _write_chunk(self, indx: int, pos: int, data: memoryview) -> None:
        n = len(data)
        cw = self.chunks.get(indx)
        s = cw.find(pos, n) if cw is not None else None
        if s is None:
            slice_id = await self.ctx.meta.next_slice_id()
            cw = self.chunks.get(indx)  # the committer may have retired the old one meanwhile
            if cw is None:
                cw = self.chunks[indx] = ChunkWriter(self, indx)
            s = SliceWriter(cw, slice_id, pos)
            cw.add(s)
        file_end = indx * CHUNK_SIZE + pos + n
        growing = file_end > self.length()
        self.ctx.budget.add(s.write(pos - s.pos, data))
        if self._pending_end is not None and file_end > self._pending_end:
            self._pending_end = indx * CHUNK_SIZE + s.end
        if growing and s is not self._last_growing:
            last = self._last_growing
            if s.after is None and last is not None and not last.done.is_set() and last.chunk.indx < indx:
                s.after = last
            self._last_growing = s
        if s.end == CHUNK_SIZE:
            s.freeze()

    def write_target(self, off: int) -> memoryview | None:
        """Where the bytes of a write at file offset `off` would go if it appends to the newest open slice
        at the end of a block's bytes: that block's free arena space (ADR 0030), to be filled by the caller
        and handed to `write` at `off` right away (before anything else may write this file). None when
        the write would not simply append there (the caller then writes from its own buffer)."""
        backlog = self.ctx.backlog
        if self._lock.locked() or self.ctx.budget.used > self.ctx.budget.limit or (backlog is not None and backlog.full):
            return None
        indx, pos = divmod(off, CHUNK_SIZE)
        cw = self.chunks.get(indx)
        if cw is None or not cw.slices:
            return None
        s = cw.slices[-1]
        if s.frozen or s.end != pos:
            return None
        bs = self.ctx.blocks.block_size
        index, inner = divmod(pos - s.pos, bs)
        if index < len(s.blocks):
            pages = s.blocks[index]
            return pages.offer() if pages is not None and pages.size == inner else None
        if index != len(s.blocks) or inner or index < s.handed:
            return None
        pages = PageList(arena_pool(self.ctx).take())
        s.blocks.append(pages)
        return pages.offer()

    # -- freezing and flushing -------------------------------------------------------------------------

    def slices(self) -> list[SliceWriter]:
        return [s for cw in self.chunks.values() for s in cw.slices]

    def freeze_all(self) -> None:
        for s in self.slices():
            s.freeze()

    def sweep(self, now: float) -> None:
        """Freeze slices idle for `idle_flush` seconds or alive for `max_slice_age` seconds."""
        cfg = self.ctx.config
        for s in self.slices():
            if not s.frozen and (now - s.touched >= cfg.idle_flush or now - s.created >= cfg.max_slice_age):
                s.freeze()

    @property
    def idle(self) -> bool:
        """Nothing buffered or waiting to be committed."""
        return not self.chunks

    async def flush(self) -> None:
        """Commit everything written so far; raises the first failure since the last flush (once)."""
        self.eager = True
        try:
            self.freeze_all()
        finally:
            self.eager = False
        for s in self.slices():
            await s.done.wait()
        err, self.error = self.error, None
        if err is not None:
            raise err

    def forget_growth(self) -> None:
        """After a truncate (everything flushed): no earlier growing slice to wait for."""
        self._last_growing = None

    # -- reading back ----------------------------------------------------------------------------------

    def pending_end(self) -> int:
        """End (file offset) of the furthest uncommitted byte, 0 if none (cached: each write would
        otherwise scan every pending slice, quadratic under random writes)."""
        end = self._pending_end
        if end is None:
            end = 0
            for indx, cw in self.chunks.items():
                for s in cw.slices:
                    end = max(end, indx * CHUNK_SIZE + s.end)
            self._pending_end = end
        return end

    def length(self) -> int:
        """The file length as this client sees it: committed length or the end of pending writes."""
        return max(self._committed_length(), self.pending_end())

    def overlay(self, indx: int, pos: int, n: int) -> list[tuple[int, list[OverlayPart]]]:
        """Uncommitted bytes of chunk `indx` inside [pos, pos+n): (chunk position, views), oldest first.

        Applying them in order over the committed data gives what this client wrote.
        """
        cw = self.chunks.get(indx)
        if cw is None:
            return []
        self.read_back = True
        out: list[tuple[int, list[OverlayPart]]] = []
        end = pos + n
        for s in cw.slices:
            lo, hi = max(pos, s.pos), min(end, s.end)
            if lo < hi:
                out.append((lo, s.views(lo - s.pos, hi - lo)))
        return out

    # -- committing ------------------------------------------------------------------------------------

    async def commit(self, queue: list[SliceWriter]) -> tuple[list[SliceWriter], int]:
        """Wait for the blocks of the frozen slice ``queue[0]`` (and for the slice it must follow), then commit
        it in one transaction together with the slices right behind it that are ready already (frozen, every
        block stored, nothing to wait for; at most `MAX_COMMIT_BATCH`, ADR 0102). Returns (the slices
        committed or dropped, a prefix of `queue`; the chunk's record count, 0 if they were dropped). Never
        raises: a failure is recorded in `error`.
        """
        ctx = self.ctx
        first = queue[0]
        indx = first.chunk.indx
        definite = True
        batch = [first]
        try:
            for result in await _settled(first.uploads):
                if isinstance(result, BaseException):
                    raise result
            if first.after is not None:
                await first.after.done.wait()
                if first.after.failed is not None:
                    raise FSError(errno.EIO, "an earlier part of the file could not be stored")
            crcs = [self._crcs(first)]
            for s in queue[1:MAX_COMMIT_BATCH]:
                if not _ready(s):
                    break
                try:
                    crcs.append(self._crcs(s))
                except FSError:
                    break  # left for a commit of its own, which reports it
                batch.append(s)
            records = [
                NewSlice(s.pos, s.id, s.length, 0, s.length, s.mtime_ns, None if c is None else encode_sums(s.length, c))
                for s, c in zip(batch, crcs, strict=True)
            ]
            definite = False
            attr, n_records = await ctx.meta.write_slices(self.ino, indx, records)
        except Exception as exc:
            definite = definite or isinstance(exc, FSError)
            failed = exc if isinstance(exc, OSError) else FSError(errno.EIO, str(exc))
            if self.error is None:
                self.error = failed
            for s in batch:
                s.failed = failed
                log.error(
                    "slice_dropped", ino=self.ino, indx=indx, slice=s.id, pos=s.pos, length=s.length,
                    error=str(exc), blocks_deleted=definite,
                )  # fmt: skip
                if definite:
                    ctx.spawn(ctx.blocks.delete_slice(s.id, s.length))
            return batch, 0
        if ctx.sums is not None:
            for s, c in zip(batch, crcs, strict=True):
                if c is not None:
                    ctx.sums.remember(s.id, c)
        ctx.committed(self.ino, indx, attr)
        return batch, n_records

    def _crcs(self, s: SliceWriter) -> tuple[int, ...] | None:
        """The block checksums of uploaded slice `s`, None when checksums are off."""
        if not self.ctx.blocks.checksum:
            return None
        n = len(s.uploads)
        if sorted(s.crcs) != list(range(n)):
            raise FSError(errno.EIO, f"slice {s.id}: checksums of {len(s.crcs)} of its {n} blocks")
        return tuple(s.crcs[i] for i in range(n))


def relieve(slices: list[SliceWriter], goal: int) -> int:
    """Writers wait for budget: freeze open slices, those holding the most bytes that only a freeze lets
    go of first, until at least `goal` bytes of the budget are on their way back (`SliceWriter.leaving`);
    returns how many were frozen. Bytes of blocks already queued for upload leave by themselves: freezing
    their slice would only cut the file into more slices (and more commits) without freeing any sooner —
    with 4 sequential writers outrunning the store, the old rule (count whole slice lengths) froze every
    open slice each time the budget filled."""
    leaving = 0
    open_slices: list[tuple[int, SliceWriter]] = []
    for s in slices:
        out = s.leaving()
        leaving += out
        if not s.frozen:
            open_slices.append((s.held() - out, s))
    frozen = 0
    open_slices.sort(key=lambda item: item[0], reverse=True)
    for stuck, s in open_slices:
        if leaving >= goal or stuck <= 0:
            break
        s.freeze()
        leaving += stuck
        frozen += 1
    return frozen


async def compaction_policy(
    n_records: int, now: Callable[[], Awaitable[None]], later: Callable[[], None], added: int = 1
) -> None:
    """Apply JuiceFS's after-commit rule to a commit that brought the chunk to `n_records` records with
    `added` of them: compact inline when the chunk is far too long, else maybe later (as if the records
    had been committed one by one, so that a batch passing a trigger count does not skip it)."""
    if must_compact_now(n_records):
        await now()
    elif any(needs_compaction(n) for n in range(max(1, n_records - added + 1), n_records + 1)):
        later()

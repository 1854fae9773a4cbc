"""Block caches of one client: `MemoryCache` (hot blocks in RAM) and `DiskCache` (blocks on local disk).

Both hold *uncompressed* blocks and are bounded in bytes, evicting the least recently used entry first.
A cache is only ever a copy: losing or dropping an entry costs a fetch, never data.

Disk layout (like JuiceFS): ``<cache_dir>/<volume uuid>/raw/<block key>``, e.g.
``/var/jfsCache/8f1c…/raw/chunks/0/4/4105_0_8000``. Each file is the block followed by a trailer that
lets every read be verified::

    block bytes (blen) | CRC-32C of each 8 KiB segment (u32 LE each) | b"JFC4"

`blen` comes from the key, so the file size is known in advance; a file of the wrong size, a bad magic or
a segment whose CRC does not match is a corrupt entry: it is logged, deleted and reported as a miss, so
the caller refetches the block from the object store. Files are written to a temp name and renamed, so a
crash leaves whole entries or ``*.tmp`` leftovers (removed by the start-up scan).

Besides `capacity`, the cache respects `min_free_ratio` (``--free-space-ratio``): while its file system
has less than that share free, no new entry is written and entries are evicted until the share is back
(checked at most once a second, when entries are added).

The index (key -> file size, in LRU order) lives in memory. At start it is rebuilt by scanning the
directory in a thread, oldest modification first; lookups work meanwhile (a file found on disk that the
scan has not reached yet is indexed on the spot). File I/O and checksums run on the cache's own thread
pool, except a small read whose bytes are all in the page cache: it runs on the event loop with
``RWF_NOWAIT`` reads, which fail rather than wait for the disk (then the pool does it). The index is
touched only on the event loop.

Small reads on the loop (`get_now`, and the first try of `get`) go through a bounded LRU of open entries:
the file descriptor and the entry's CRC trailer, read and checked once, so a 4 KiB hit costs one
``preadv`` and the CRC of one 8 KiB segment instead of open/fstat/two reads/close. An entry's bytes never
change for its key (a block key names immutable content), so a descriptor of a file replaced or evicted
meanwhile still reads the right bytes; it is closed when the key leaves the index all the same.

An entry whose bytes a small read finds missing from the page cache is *warmed* (ADR 0074): when the cache
was given a `warm` function (the composition root passes ``POSIX_FADV_WILLNEED`` of the whole file), it is
called for the entry's path on the cache's pool and the read goes on as before (the pool reads the bytes
asked for), so the kernel reads the rest of the entry while the next small reads of it are on their way,
and they are answered on the loop. Entries the writer stored around the page cache (ADR 0059) and entries
whose pages the page budget or the kernel dropped are what this is for. Each entry is warmed once while
its pages stay (again after `WARM_GRACE` if a read still misses them); only the kernel's caching changes:
every read is still checked against the entry's CRCs, and the index and its byte count are untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

import crc32c
import structlog

from jfs.domain.chunks import parse_block_key

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
log = structlog.get_logger("jfs.data")

SEGMENT = 8 << 10
"""Bytes per CRC: small enough that a 4 KiB random read checks little more than it reads."""
MAGIC = b"JFC4"
"""The trailer's last bytes. JFC3 entries (zlib CRC-32 per segment) fail this check and are refetched once:
CRC-32C (the `crc32c` package, SSE4.2) costs 0.27 ms per 4 MiB block where zlib took 0.94 ms in 512
GIL-releasing calls — a lock hand-off every 8 KiB on the upload path of every face."""
TMP_SUFFIX = ".tmp"
SPACE_CHECK_INTERVAL = 1.0
"""Seconds between checks of the free space of the cache's file system."""
MAX_PENDING_WRITES = 16  # each holds its block (up to 4 MiB) until written: bounds that memory
"""Background cache writes queued at most; beyond that new blocks are simply not cached."""
NOWAIT_MAX = 256 << 10  # largest read tried on the event loop (page-cached bytes only)
_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
DIRECT_MIN = 1 << 20
"""Entries of at least this many block bytes are written with ``O_DIRECT`` (ADR 0059); smaller ones (small
files, likely read again soon) through the page cache."""
OPEN_ENTRIES = 256
"""Entries kept open for reads on the loop (a descriptor and up to 2 KiB of CRCs each)."""
WARMED_MAX = 1024
"""Entries remembered as warmed (4 GiB of 4 MiB blocks); the oldest is forgotten first."""
WARM_GRACE = 1.0
"""Seconds a warmed entry may take to arrive in the page cache: a small read that misses its pages later
than that warms it again (the kernel dropped them)."""


class MemoryCache(Generic[K]):
    """An LRU map key -> bytes bounded by the total length of the values: at most `capacity`, and at
    most `ceiling` while one is set (`shrink`: the room another user of the same memory leaves it)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ceiling = capacity
        """The bound in force: `capacity`, or less while `shrink` says so."""
        self.used = 0
        self._items: OrderedDict[K, bytes] = OrderedDict()

    def shrink(self, ceiling: int) -> None:
        """Hold at most min(`capacity`, `ceiling`) bytes from now on (oldest entries evicted at once)."""
        self.ceiling = ceiling = min(self.capacity, ceiling)
        items = self._items
        while self.used > ceiling and items:
            _, evicted = items.popitem(last=False)
            self.used -= len(evicted)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> bytes | None:
        data = self._items.get(key)
        if data is not None:
            self._items.move_to_end(key)
        return data

    def put(self, key: K, data: bytes) -> None:
        """Insert `data` (ignored if larger than the whole cache), evicting the oldest entries."""
        if len(data) > self.ceiling:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.used -= len(old)
        self._items[key] = data
        self.used += len(data)
        while self.used > self.ceiling:
            _, evicted = self._items.popitem(last=False)
            self.used -= len(evicted)

    def demote(self, key: K) -> None:
        """Make `key` (if cached) the first to be evicted: its reader is done with it."""
        if key in self._items:
            self._items.move_to_end(key, last=False)

    def drop(self, key: K) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.used -= len(old)

    def clear(self) -> None:
        self._items.clear()
        self.used = 0


class CorruptEntry(Exception):
    """A cache file does not hold what its key and checksums say."""


def entry_size(blen: int) -> int:
    """Size on disk of the cache file of a block of `blen` bytes."""
    return blen + 4 * _segments(blen) + len(MAGIC)


def _segments(blen: int) -> int:
    return -(-blen // SEGMENT)


_crc = crc32c.crc32c


def _trailer(data: bytes | memoryview) -> bytes:
    view = memoryview(data)
    crcs = [_crc(view[i : i + SEGMENT]) for i in range(0, len(view), SEGMENT)]
    return struct.pack(f"<{len(crcs)}I", *crcs) + MAGIC


def _blen_of(key: str) -> int | None:
    parsed = parse_block_key(key)
    return parsed[2] if parsed else None


def _statvfs_nearest(path: str) -> os.statvfs_result:
    """statvfs of `path`, or of its nearest existing parent (the cache directory may not exist yet)."""
    while True:
        try:
            return os.statvfs(path)
        except FileNotFoundError:
            parent = os.path.dirname(path)
            if parent == path:
                raise
            path = parent


class DiskCache:
    """Uncompressed blocks of one volume under ``<root>/<uuid>/raw/``, at most `capacity` bytes."""

    def __init__(
        self, root: str, uuid: str, capacity: int, *, min_free_ratio: float = 0.1, workers: int = 4,
        written: Callable[[str, int], object] | None = None,
        direct_write: Callable[[str, list[bytes | memoryview]], bool] | None = None,
        warm: Callable[[str], object] | None = None,
    ) -> None:
        """`written(path, size)` is told of every entry file written through the page cache (ADR 0059: the
        composition root passes a page-cache budget, `file_pages.WrittenPages.written`, which may advise the
        kernel to write the file back and drop its clean pages later; it must only queue that, never block,
        and never change the file's bytes). `direct_write(path, parts)`: creates the new file `path` holding
        `parts` around the page cache and returns True, or returns False having created nothing (the file
        system cannot; `jfs.adapters.direct_files.DirectWriter.write`); used for entries of `DIRECT_MIN`
        bytes or more, which the page budget then never hears of. `warm(path)`: asks the kernel to read the
        file `path` into the page cache and returns (only advice: it must not change the file, and its errors
        are its own; `jfs.adapters.objects.file_pages.advise` with ``POSIX_FADV_WILLNEED``); run on the
        cache's pool for an entry a small read found not cached (see the module docstring). None: never."""
        self.dir = os.path.join(os.path.abspath(root), uuid, "raw")
        self._written = written
        self._direct = direct_write
        self._warm = warm
        self._warmed: OrderedDict[str, float] = OrderedDict()  # key -> when it was last warmed
        self.warms = 0
        """Entries warmed (``jfs_blockcache_warms``)."""
        self.capacity = capacity
        self.min_free_ratio = min_free_ratio
        """Entries are evicted (and none kept) while the file system has less than this share free."""
        self.used = 0
        self._space_checked = 0.0
        self._short = 0  # bytes missing to `min_free_ratio` at the last check
        self.skipped_full = 0
        """Entries not written because the disk was below `min_free_ratio` free."""
        self._index: OrderedDict[str, int] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="jfs-cache")
        self._scan: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.hits = 0
        self.misses = 0
        self.corrupt = 0
        self.hit_bytes = 0
        self.read_seconds = 0.0
        """Time spent reading hits (for ``.stats``)."""
        self.writes = 0
        self.write_bytes = 0
        self.write_seconds = 0.0
        self._open: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        """key -> (read-only descriptor, CRC trailer without the magic) of entries read on the loop."""

    # -- plumbing --------------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    def _path(self, key: str) -> str:
        return os.path.join(self.dir, *key.split("/"))

    # -- start-up scan ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the directory and rebuild the index in the background (see `ready`)."""
        if self._scan is None:
            self._scan = asyncio.get_running_loop().create_task(self._rebuild())

    async def ready(self) -> None:
        """Wait until the start-up scan has indexed every entry already on disk."""
        self.start()
        assert self._scan is not None
        await asyncio.shield(self._scan)

    async def _rebuild(self) -> None:
        try:
            found = await self._run(self._walk)
        except OSError as exc:
            log.warning("cache_scan_failed", dir=self.dir, error=str(exc))
            return
        # Entries indexed since start-up are newer than anything found by the scan: keep them last.
        fresh = self._index
        self._index = OrderedDict()
        self.used = 0
        for key, size in found:
            if key not in fresh:
                self._index[key] = size
                self.used += size
        for key, size in fresh.items():
            self._index[key] = size
            self.used += size
        log.info("cache_index_rebuilt", dir=self.dir, entries=len(self._index), bytes=self.used)
        await self._evict()

    def _walk(self) -> list[tuple[str, int]]:
        os.makedirs(self.dir, exist_ok=True)
        started = time.time() - 1
        entries: list[tuple[float, str, int]] = []
        for dirpath, _, files in os.walk(self.dir):
            rel = os.path.relpath(dirpath, self.dir)
            for name in files:
                path = os.path.join(dirpath, name)
                if name.endswith(TMP_SUFFIX):
                    # A leftover of a crash; not a write of this process in flight (the scan runs while
                    # the cache already works).
                    with contextlib.suppress(OSError):
                        if os.stat(path).st_mtime < started:
                            os.unlink(path)
                    continue
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                blen = _blen_of(key)
                if blen is None or st.st_size != entry_size(blen):
                    with contextlib.suppress(OSError):
                        os.unlink(path)  # not ours, or torn: useless either way
                    continue
                entries.append((st.st_mtime, key, st.st_size))
        entries.sort()
        return [(key, size) for _, key, size in entries]

    # -- lookups ---------------------------------------------------------------------------------------

    async def get(self, key: str, off: int = 0, n: int = -1) -> bytes | None:
        """Bytes [off, off+n) (n < 0: to the end) of the cached block `key`, verified; None on a miss.

        A corrupt entry is logged, deleted and reported as a miss. ValueError if `key` is not a block key
        (checked after the index: a key that is none is never in it, so a miss is answered without parsing).
        """
        if key not in self._index and (self._scan is None or self._scan.done()):
            self.misses += 1
            return None
        blen = _blen_of(key)
        if blen is None:
            raise ValueError(f"not a block key: {key!r}")
        end = blen if n < 0 else min(blen, off + n)
        start = time.perf_counter()
        path = self._path(key)
        try:
            data = None
            if end - off <= NOWAIT_MAX and _RWF_NOWAIT:
                # Anything unusual (not cached, corrupt, RWF_NOWAIT unsupported) is left to the pool's read,
                # which checks the entry from scratch and reports it.
                view = self._read_open(key, path, blen, off, end)
                if view is not None:
                    data = bytes(view)  # callers keep it (the memory cache holds bytes)
            if data is None:
                data = await self._run(self._read, path, blen, off, end)
        except FileNotFoundError:
            self._forget(key)
            self.misses += 1
            return None
        except (CorruptEntry, OSError) as exc:
            self.corrupt += 1
            log.warning("cache_entry_corrupt", key=key, path=self._path(key), error=str(exc))
            self._forget(key)
            await self._run(self._unlink, self._path(key))
            self.misses += 1
            return None
        if key in self._index:
            self._index.move_to_end(key)
        else:
            self._add(key, entry_size(blen))
        self.hits += 1
        self.hit_bytes += len(data)
        self.read_seconds += time.perf_counter() - start
        return data

    def get_now(self, key: str, off: int, n: int, blen: int | None = None) -> memoryview | None:
        """Bytes [off, off+n) of the cached block `key` (whose length `blen` the key names, parsed from
        it if not given), verified, if all of them are in the page cache right now; else None (a miss,
        bytes on disk only, or anything `get` must look at: corruption is reported by `get`, never
        here). Never blocks; for the event loop's thread only."""
        if key not in self._index or not _RWF_NOWAIT or n > NOWAIT_MAX:
            return None
        if blen is None:
            blen = _blen_of(key)
            if blen is None:
                return None
        end = min(blen, off + n)
        start = time.perf_counter()
        data = self._read_open(key, None, blen, off, end)
        if data is None:
            return None
        self._index.move_to_end(key)
        self.hits += 1
        self.hit_bytes += len(data)
        self.read_seconds += time.perf_counter() - start
        return data

    def _read_open(self, key: str, path: str | None, blen: int, off: int, end: int) -> memoryview | None:
        """`_read` of page-cached bytes through the open-entry LRU; None when they are not all cached
        or the entry does not check out (the caller then reads it the slow way)."""
        entry = self._open.get(key)
        try:
            if entry is None:
                entry = self._open_entry(key, path or self._path(key), blen)
            else:
                self._open.move_to_end(key)
            fd, crcs = entry
            first, last = off // SEGMENT, max(off, end - 1) // SEGMENT
            seg0 = first * SEGMENT
            buf = bytearray(min(blen, (last + 1) * SEGMENT) - seg0)
            if os.preadv(fd, [buf], seg0, _RWF_NOWAIT) != len(buf):
                self._warm_entry(key, path)  # only part of it is cached
                return None
        except BlockingIOError:  # not all cached
            self._warm_entry(key, path)
            return None
        except OSError:  # FileNotFoundError, ...: `get` will see
            return None
        except CorruptEntry:
            return None
        view = memoryview(buf)
        for i, (crc,) in enumerate(struct.iter_unpack("<I", crcs[4 * first : 4 * (last + 1)])):
            if _crc(view[i * SEGMENT : (i + 1) * SEGMENT]) != crc:
                self._close_open(key)
                return None
        return view[off - seg0 : end - seg0]

    def _warm_entry(self, key: str, path: str | None) -> None:
        """Have the pool `warm` the entry `key`, unless that was asked less than `WARM_GRACE` ago."""
        warm = self._warm
        if warm is None:
            return
        warmed = self._warmed
        now = time.monotonic()
        since = warmed.get(key)
        if since is not None and now - since <= WARM_GRACE:
            return
        try:
            self._pool.submit(warm, path or self._path(key))
        except RuntimeError:  # the pool is shut down
            return
        self.warms += 1
        warmed[key] = now
        warmed.move_to_end(key)
        if len(warmed) > WARMED_MAX:
            warmed.popitem(last=False)

    def _open_entry(self, key: str, path: str, blen: int) -> tuple[int, bytes]:
        """Open the entry and read its trailer (page-cached only), remembering both; CorruptEntry/OSError."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            if size != entry_size(blen):
                raise CorruptEntry(f"{size} bytes on disk, expected {entry_size(blen)}")
            nseg = _segments(blen)
            trailer = bytearray(4 * nseg + len(MAGIC))
            if os.preadv(fd, [trailer], blen, _RWF_NOWAIT) != len(trailer):
                raise BlockingIOError(errno.EAGAIN, "not all cached")
            if trailer[4 * nseg :] != MAGIC:
                raise CorruptEntry("bad trailer magic")
        except BaseException:
            os.close(fd)
            raise
        entry = (fd, bytes(trailer[: 4 * nseg]))
        self._open[key] = entry
        while len(self._open) > OPEN_ENTRIES:
            _, (old, _) = self._open.popitem(last=False)
            os.close(old)
        return entry

    def _close_open(self, key: str) -> None:
        """Close the open entry of `key` (the key leaves the index, or its entry is bad) and forget that it
        was warmed (an entry written again under the key is not cached)."""
        self._warmed.pop(key, None)
        entry = self._open.pop(key, None)
        if entry is not None:
            os.close(entry[0])

    @staticmethod
    def _read(path: str, blen: int, off: int, end: int) -> bytes:
        """Verified bytes [off, end) of the entry at `path` (blocking: the pool's)."""
        nseg = _segments(blen)
        pread = os.pread
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            if size != entry_size(blen):
                raise CorruptEntry(f"{size} bytes on disk, expected {entry_size(blen)}")
            first, last = off // SEGMENT, max(off, end - 1) // SEGMENT
            trailer = pread(fd, 4 * nseg + len(MAGIC), blen)
            if trailer[4 * nseg :] != MAGIC:
                raise CorruptEntry("bad trailer magic")
            crcs = trailer[4 * first : 4 * (last + 1)]
            start = first * SEGMENT
            data = pread(fd, min(blen, (last + 1) * SEGMENT) - start, start)
        finally:
            os.close(fd)
        view = memoryview(data)
        for i, (crc,) in enumerate(struct.iter_unpack("<I", crcs)):
            if _crc(view[i * SEGMENT : (i + 1) * SEGMENT]) != crc:
                raise CorruptEntry(f"checksum mismatch in segment {first + i}")
        if start == off and len(data) == end - off:
            return data
        return data[off - start : end - start]

    # -- updates ---------------------------------------------------------------------------------------

    async def put(self, key: str, data: bytes | memoryview, *, direct: bool = False) -> None:
        """Store the whole block `key` (whose length the key names). Failures are logged, not raised.
        `direct`: a block the writer just stored (not one a reader asked for) may be written around the
        page cache (ADR 0059); a block filled for a read goes through it, since reads of it follow."""
        blen = _blen_of(key)
        if blen is None or blen != len(data):
            raise ValueError(f"block {key!r} does not hold {len(data)} bytes")
        size = entry_size(blen)
        if size > self.capacity:
            return
        if await self._space_short() > 0:  # the disk is (nearly) full: stop caching, give space back
            self.skipped_full += 1
            await self._evict()
            return
        start = time.perf_counter()
        path = self._path(key)
        try:
            direct = await self._run(self._write, path, data, direct)
        except OSError as exc:
            log.warning("cache_write_failed", key=key, error=str(exc))
            return
        if self._written is not None and not direct:
            self._written(path, size)
        self.writes += 1
        self.write_bytes += blen
        self.write_seconds += time.perf_counter() - start
        self._add(key, size)
        await self._evict()

    def put_background(self, key: str, data: bytes | memoryview, *, direct: bool = False) -> None:
        """Cache a block without waiting; skipped when too many writes are already queued (`direct`: see
        `put`)."""
        if key in self._index or len(self._pending) >= MAX_PENDING_WRITES:
            return
        task = asyncio.get_running_loop().create_task(self.put(key, data, direct=direct))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _write(self, path: str, data: bytes | memoryview, around_pages: bool = False) -> bool:
        """Write the entry for `data` at `path` (through a temp name); True when it was written with
        ``O_DIRECT`` (asked by `around_pages`, entries of `DIRECT_MIN` bytes or more, where the file system
        allows it: ADR 0059), so no page-cache page holds it."""
        trailer = _trailer(data)
        tmp = f"{path}.{secrets.token_hex(4)}{TMP_SUFFIX}"
        direct = self._direct if around_pages and len(data) >= DIRECT_MIN else None
        try:
            try:
                done = direct is not None and direct(tmp, [data, trailer])
            except FileNotFoundError:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                done = direct is not None and direct(tmp, [data, trailer])
            if not done:
                try:
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                except FileNotFoundError:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                with open(fd, "wb", closefd=True) as f:
                    f.write(data)
                    f.write(trailer)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return done

    @staticmethod
    def _unlink(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def _add(self, key: str, size: int) -> None:
        self._close_open(key)
        old = self._index.pop(key, None)
        if old is not None:
            self.used -= old
        self._index[key] = size
        self.used += size

    def _forget(self, key: str) -> None:
        self._close_open(key)
        size = self._index.pop(key, None)
        if size is not None:
            self.used -= size

    async def _space_short(self) -> int:
        """Bytes the cache's file system lacks to have `min_free_ratio` of it free (0: enough); statvfs
        at most once per `SPACE_CHECK_INTERVAL`, the last answer in between."""
        if self.min_free_ratio <= 0:
            return 0
        now = time.monotonic()
        if now - self._space_checked >= SPACE_CHECK_INTERVAL:
            self._space_checked = now
            try:
                st = await self._run(_statvfs_nearest, self.dir)
            except OSError:
                return self._short
            short = max(0, int(self.min_free_ratio * st.f_blocks * st.f_frsize) - st.f_bavail * st.f_frsize)
            if short and not self._short:
                log.warning("cache_disk_full", dir=self.dir, short_bytes=short,
                            free_space_ratio=self.min_free_ratio, detail="not caching until space is back")
            self._short = short
        return self._short

    async def _evict(self) -> None:
        target = self.capacity
        checked = self._space_checked
        short = await self._space_short()
        if short > 0 and self._space_checked != checked:  # a fresh answer: give that much back once
            target = max(0, min(target, self.used - short))
        victims: list[str] = []
        while self.used > target and self._index:
            key, size = self._index.popitem(last=False)
            self.used -= size
            self._close_open(key)
            victims.append(key)
        if victims:
            await self._run(self._unlink_many, [self._path(k) for k in victims])

    def _unlink_many(self, paths: list[str]) -> None:
        for path in paths:
            self._unlink(path)

    async def drop(self, keys: list[str]) -> None:
        """Remove the entries `keys` (e.g. blocks of deleted slices)."""
        scanning = self._scan is not None and not self._scan.done()
        present = [k for k in keys if scanning or k in self._index]
        for k in present:
            self._forget(k)
        if present:
            await self._run(self._unlink_many, [self._path(k) for k in present])

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    async def drain(self) -> None:
        """Wait for the background writes queued so far."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        while self._open:
            _, (fd, _) = self._open.popitem()
            os.close(fd)
        if self._scan is not None and not self._scan.done():
            self._scan.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scan
        await asyncio.to_thread(self._pool.shutdown, True)

"""Whole-block reads of a ``file`` bucket into recycled, page-aligned buffers (ADR 0070).

Why: on a VM whose balloon takes free memory back (Firecracker guests, this project's benchmark machine),
every page a process touches for the first time costs a fault and a zeroing. Reading a 4 MiB block into a
new ``bytes`` takes ~1,000 such faults (135k per GiB measured); blocks written with ``O_DIRECT`` (ADR 0059)
are not in the page cache either, so a buffered read also fills fresh page-cache pages. Reading into a
buffer used before, with ``O_DIRECT`` when the block is not cached, touches no fresh page at all.

Contract of `BlockBuffers.read(path, limit)`:
- Returns a read-only ``memoryview`` of bytes [0, min(size, limit)) of the file `path`, or None when it
  cannot serve the read (every buffer in use and the pool full, a file system refusing ``O_DIRECT``
  mid-read, a file smaller than `MIN_BYTES`): the caller then reads the ordinary way. Raises what
  ``open``/``read`` raise (FileNotFoundError for a missing object).
- Lifetime: a buffer is handed out again only once nothing refers to it — no view of it (and no view of a
  view) is alive anywhere: the pool checks the buffer's reference count under its lock, and every
  ``memoryview`` derived from the returned one keeps the buffer referenced. So bytes a caller holds never
  change under it; dropping the last view (the block leaving the memory cache, the FUSE reply written)
  makes the buffer reusable. This relies on CPython's reference counting (the project's only runtime).
- Coherence: a block in the page cache (written through it, by another client, or warmed by ADR 0065's
  advice) is copied from there (``RWF_NOWAIT``, never waiting for the disk); otherwise it is read with
  ``O_DIRECT``, which writes back dirty pages of the range first, so the bytes are those of the file
  either way. Block files are never modified in place (puts link or rename a complete temp file), so a
  read sees one whole version; an unlinked file reads to its end as before.
- Memory: at most `max_buffers` buffers of the largest size asked, made on demand and kept (reused pages
  cost nothing; they are what a memory cache of blocks held anyway). Thread-safe.
- Huge pages (ADR 0073): buffers are advised ``MADV_HUGEPAGE`` (`huge`, default on). An ``O_DIRECT`` read
  pins the buffer's pages and hands the device one segment per physically contiguous run: 1,024 of them
  for a 4 MiB block in 4 KiB pages (the virtio disk here takes 254 per request: the block is split), 2 in
  2 MiB pages — the same files then read 1.7–2.3x as fast. Only advice: where the kernel has no
  transparent huge pages to give, the buffer is made of small pages as before; bytes, sizes and the
  lifetime rule are the same either way. Cost: a buffer's first touch may be dearer (once per buffer).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import sys
import threading

ALIGN = 4096
"""``O_DIRECT`` alignment of offset, length and address (the largest logical block size)."""
MIN_BYTES = 1 << 20
"""Smaller reads go the ordinary way (a small file's block: likely in the page cache, a pool buffer wasted)."""
HUGE_PAGE = 2 << 20
"""Size of a transparent huge page on x86-64 and most arm64 kernels: smaller buffers are not advised."""
_MADV_HUGEPAGE: int | None = getattr(mmap, "MADV_HUGEPAGE", None)
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
_FREE_REFS = sys.getrefcount(object()) + 2
"""References of a free buffer seen by `sys.getrefcount` in `_take`: the pool's list, the loop variable and
the call's argument (no view holds it)."""


def _round_up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


class BlockBuffers:
    """A pool of recycled aligned buffers for whole-block reads (see the module's contract)."""

    def __init__(self, max_buffers: int = 48, *, direct: bool = True, huge: bool = True) -> None:
        self.max_buffers = max(1, max_buffers)
        self.direct = bool(_O_DIRECT) and direct
        self.huge = huge
        """Advise new buffers ``MADV_HUGEPAGE`` (see the module's contract)."""
        self._bufs: list[mmap.mmap] = []
        self._lock = threading.Lock()
        self._next = 0
        self._size = 0
        self.reads = 0
        self.direct_reads = 0
        self.declined = 0

    def __len__(self) -> int:
        return len(self._bufs)

    def _take(self, size: int) -> memoryview | None:
        """A view of a free buffer of at least `size` bytes (made if none is free and there is room). All
        buffers are made of the largest size asked so far, so a short last block of a file takes a buffer
        any later block fits in; a free buffer found too small is replaced."""
        with self._lock:
            self._size = size = max(size, self._size)
            bufs = self._bufs
            n = len(bufs)
            for i in range(n):
                j = (self._next + i) % n
                buf = bufs[j]
                if sys.getrefcount(buf) <= _FREE_REFS:
                    self._next = j + 1
                    if len(buf) < size:
                        buf.close()
                        bufs[j] = buf = _new_buffer(size, self.huge)
                    return memoryview(buf)
            if n >= self.max_buffers:
                return None
            buf = _new_buffer(size, self.huge)
            bufs.append(buf)
            return memoryview(buf)

    def read(self, path: str, limit: int) -> memoryview | None:
        """Bytes [0, min(size, limit)) of file `path` in a pooled buffer, or None (see the module)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            n = min(os.fstat(fd).st_size, limit)
            if n < MIN_BYTES:
                self.declined += 1
                return None
            view = self._take(_round_up(n))
            if view is None:
                self.declined += 1
                return None
            got = self._read_into(fd, view, n)
            if got is None:
                self.declined += 1
                return None
            self.reads += 1
            return view[:got].toreadonly()
        finally:
            os.close(fd)

    def _read_into(self, fd: int, view: memoryview, n: int) -> int | None:
        """Read [0, n) of `fd` into `view` (page cache if it holds the block, else O_DIRECT); bytes read."""
        if _RWF_NOWAIT and self._cached_tail(fd, view, n):
            try:
                got = os.preadv(fd, [view[:n]], 0, _RWF_NOWAIT)
                if got == n:
                    return got
            except BlockingIOError:
                pass
        if not self.direct:
            return _read_full(fd, view[:n])
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self.direct = False  # the file system refuses O_DIRECT: the page cache for good
            return _read_full(fd, view[:n])
        try:
            got = _read_full(fd, view[: _round_up(n)], direct=True)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self.direct = False
            return None
        self.direct_reads += 1
        return min(got, n)

    @staticmethod
    def _cached_tail(fd: int, view: memoryview, n: int) -> bool:
        """Whether the block's last byte is in the page cache (a 1-byte ``RWF_NOWAIT`` read: the readahead a
        miss starts covers only the last page, where a probe at 0 would pull in a whole window)."""
        try:
            return os.preadv(fd, [view[n - 1 : n]], n - 1, _RWF_NOWAIT) == 1
        except OSError:
            return False

    def close(self) -> None:
        """Drop the pool's references (buffers still viewed are freed with their last view)."""
        with self._lock:
            self._bufs = []


def _new_buffer(size: int, huge: bool = False) -> mmap.mmap:
    """Anonymous and private: page-aligned, and its first touch costs less than a shared mapping's (0.085
    vs 0.14 CPU s per 192 MiB read into new buffers with O_DIRECT, ADR 0070; transparent huge pages are
    given to private anonymous memory only). `huge`: advised ``MADV_HUGEPAGE`` before its first touch
    (ignored where the platform or the kernel has none: the mapping is usable as it is)."""
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
    if huge and _MADV_HUGEPAGE is not None and size >= HUGE_PAGE:
        try:
            buf.madvise(_MADV_HUGEPAGE)
        except OSError:
            pass
    return buf


def _read_full(fd: int, view: memoryview, *, direct: bool = False) -> int:
    """Read from offset 0 into `view` until it is full or the file ends; bytes read. `direct`: the reads
    are ``O_DIRECT`` (a short read not at an aligned offset is the file's end: no read from there)."""
    got = 0
    while got < len(view):
        k = os.preadv(fd, [view[got:]], got)
        if k == 0:
            break
        got += k
        if direct and got % ALIGN:
            break
    return got

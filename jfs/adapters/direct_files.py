"""Whole files written with ``O_DIRECT``: their bytes go from a reused, page-aligned buffer to the disk,
never through the page cache (ADR 0059).

Why: on a VM whose balloon takes free memory back (this project's benchmark machine; Firecracker or
free-page-reporting guests in general), each page-cache page a write lands in for the first time costs
~13 s of system CPU per GiB: the block files of a sequential write through the mount (a `file` bucket) and
the disk cache's copy of every big block (S3) were most of the mount's CPU. An ``O_DIRECT`` write of a
4 MiB block costs ~0.1 s/GiB: one copy into an aligned buffer, then DMA.

Contract:
- `write_fd(fd, parts)` writes the concatenation of `parts` at the start of the empty regular file `fd`
  and cuts the file to exactly that length (the aligned tail is cut off with ``ftruncate``); True when
  done. False, with nothing written, when the file system refuses ``O_DIRECT`` (tmpfs, some FUSE and
  network file systems: ``EINVAL``): `usable` is then False for good and the caller writes the ordinary
  way. Any other OSError is raised (the file may hold part of the bytes: the caller discards it). The
  descriptor's flags are as before when it returns.
- `write(path, parts)` does the same for a new file `path` (``O_EXCL``, mode 0600), removed again on error.
- Nothing is fsynced: the bytes are on their way to the device when it returns; the size and the name are
  in the page cache like any file's (no weaker than a buffered write without fsync).
- At most `buffers` writes copy at once (each holds one aligned buffer; others wait): the buffers, grown
  to the largest size asked and never shrunk, are the memory this costs. Thread-safe.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import threading

ALIGN = 4096
"""Offset, length and address alignment of every ``O_DIRECT`` write (the largest logical block size)."""
_O_DIRECT = getattr(os, "O_DIRECT", 0)


class DirectWriter:
    """Writes whole files with ``O_DIRECT`` through a few shared aligned buffers (see the module)."""

    def __init__(self, buffers: int = 4) -> None:
        self.usable = bool(_O_DIRECT)
        self._free: list[mmap.mmap] = []
        self._slots = threading.BoundedSemaphore(max(1, buffers))
        self._lock = threading.Lock()

    def write(self, path: str, parts: list[bytes | memoryview]) -> bool:
        """Create `path` holding the concatenation of `parts` (see the module's contract)."""
        if not self.usable:
            return False
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | _O_DIRECT, 0o600)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                self.usable = False
                return False
            raise
        done = False
        try:
            done = self.write_fd(fd, parts)
        finally:
            os.close(fd)
            if not done:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        return done

    def write_fd(self, fd: int, parts: list[bytes | memoryview]) -> bool:
        """Write `parts` into the empty file `fd` with ``O_DIRECT`` (see the module's contract)."""
        if not self.usable:
            return False
        views = [memoryview(p).cast("B") for p in parts]  # lengths in bytes, whatever the item format
        total = sum(v.nbytes for v in views)
        padded = -(-total // ALIGN) * ALIGN
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        try:
            if not flags & _O_DIRECT:
                fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                self.usable = False
                return False
            raise
        try:
            with self._slots:
                buf = self._take(padded)
                try:
                    view = memoryview(buf)
                    try:
                        at = 0
                        for part in views:
                            view[at : at + part.nbytes] = part
                            at += part.nbytes
                        written = os.write(fd, view[:padded])
                    finally:
                        view.release()
                finally:
                    with self._lock:
                        self._free.append(buf)
        except OSError as exc:
            if exc.errno == errno.EINVAL and fcntl.fcntl(fd, fcntl.F_GETFL) & _O_DIRECT:  # alignment refused
                self.usable = False
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)
                return False
            raise
        finally:
            if not flags & _O_DIRECT:
                with contextlib.suppress(OSError):
                    fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        if written != padded:
            raise OSError(errno.ENOSPC, f"short direct write ({written} of {padded} bytes)")
        if padded != total:
            os.ftruncate(fd, total)
        return True

    def _take(self, size: int) -> mmap.mmap:
        """A free buffer of at least `size` bytes (a slot is held, so one is free or may be made)."""
        with self._lock:
            buf = self._free.pop() if self._free else None
        if buf is None or len(buf) < size:
            if buf is not None:
                buf.close()
            buf = mmap.mmap(-1, size)  # anonymous: page-aligned
        return buf

"""Whole files written with ``O_DIRECT``: their bytes go from a reused, page-aligned buffer to the disk,
never through the page cache (ADR 0059).

Why: on a VM whose balloon takes free memory back (this project's benchmark machine, and Firecracker or
free-page-reporting guests in general), each page-cache page a write lands in for the first time costs
~13 s of system CPU per GiB — the disk cache's copy of every big block on S3 was half of the mount's CPU
under sequential writes. An ``O_DIRECT`` write of a 4 MiB entry costs ~0.1 s/GiB: one copy into the aligned
buffer, then DMA.

Contract of `DirectWriter.write`:
- Writes `parts` (their concatenation) as the new file `path` (created with ``O_EXCL``, mode 0600) and
  returns True; its size is exactly the parts' total (the aligned tail is cut off with ``ftruncate``).
- Returns False, having created nothing, when the file system refuses ``O_DIRECT`` (tmpfs, some FUSE and
  network file systems: ``EINVAL``); `usable` is then False for good and the caller writes the file the
  ordinary way. Any other OSError is raised, after removing the partly written file.
- Nothing is fsynced: the bytes are on their way to the device when it returns, the name and size are in
  the page cache like any file's (no stronger or weaker than a buffered write followed by no fsync).
- The aligned buffers are per thread (call it from a fixed pool of threads): one buffer of the largest
  size asked so far each, grown on demand, never shrunk.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import threading

ALIGN = 4096
"""Offset, length and address alignment of every ``O_DIRECT`` write (the largest logical block size)."""
_O_DIRECT = getattr(os, "O_DIRECT", 0)


class DirectWriter:
    """Writes whole files with ``O_DIRECT`` through per-thread aligned buffers (see the module)."""

    def __init__(self) -> None:
        self.usable = bool(_O_DIRECT)
        self._local = threading.local()

    def _buffer(self, size: int) -> mmap.mmap:
        buf: mmap.mmap | None = getattr(self._local, "buf", None)
        if buf is None or len(buf) < size:
            if buf is not None:
                buf.close()
            buf = mmap.mmap(-1, size)  # anonymous: page-aligned
            self._local.buf = buf
        return buf

    def write(self, path: str, parts: list[bytes | memoryview]) -> bool:
        """Create `path` holding the concatenation of `parts` (see the module's contract)."""
        if not self.usable:
            return False
        total = sum(len(p) for p in parts)
        padded = -(-total // ALIGN) * ALIGN
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | _O_DIRECT, 0o600)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                self.usable = False
                return False
            raise
        try:
            buf = self._buffer(padded)
            view = memoryview(buf)
            try:
                at = 0
                for part in parts:
                    view[at : at + len(part)] = part
                    at += len(part)
                written = os.write(fd, view[:padded])
            finally:
                view.release()
            if written != padded:
                raise OSError(errno.ENOSPC, f"short direct write ({written} of {padded} bytes)")
            if padded != total:
                os.ftruncate(fd, total)
        except OSError as exc:
            os.close(fd)
            fd = -1
            with contextlib.suppress(OSError):
                os.unlink(path)
            if exc.errno == errno.EINVAL and self.usable:  # alignment refused: not this file system's way
                self.usable = False
                return False
            raise
        finally:
            if fd >= 0:
                os.close(fd)
        return True

"""`SpareFiles`: deleted object files of the ``file`` store kept for a while, so that new objects are
written over their page-cache pages instead of into freshly allocated ones.

Why: on VMs whose balloon driver reports free memory to the host (Firecracker, KVM with free page
reporting: this machine), pages a deleted file gave back are returned to the host within seconds, and
the next write into new page-cache pages faults each of them in again on the host's side. Writing
512 MiB of 4 MiB files took 12-15 s of system CPU per GiB after a 5-second pause, 0.14-0.46 s when the
pages of files deleted just before were reused (ADR 0045). A store that keeps deleted files and
overwrites them in place keeps its pages: a steady stream of replaced objects (a gateway overwriting
keys, a multipart upload replacing the previous one) writes into warm pages, and the file system does
not free and allocate the same disk blocks again.

Contract:
- `keep(path)` moves the object file at `path` out of the store's names (a rename into the process's own
  hidden directory ``<root>/.jfs-tmp.spares/<tag>/``, which `list` never shows): the object is gone for
  every reader at once, exactly as after an unlink. False (nothing done) when the file is too small,
  the pool is full, or anything fails: the caller unlinks as before.
- `put(path, data)` writes `data` over a kept file that rested at least `min_age` seconds (from offset 0,
  cut to its length), then renames it
  onto `path` (atomic, as the store's own temp files), creating the directory when needed; False when
  no spare was taken or the write failed before the rename (the spare is dropped), and the caller writes
  a new file as before.
- `still(path, fd)`: readers of a store with spares check, after reading, that the object was not
  deleted meanwhile (block keys are never used twice, so a deleted path never names its file again).
- Spares older than `ttl` seconds, or past `keep_max`, are unlinked; `close()` unlinks all. A dead
  process's spares (its directory, named by pid) are removed by the next process that keeps one.
- Thread-safe: called from the store's thread pool.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import stat
import threading
import time
from collections import deque

SPARES_DIR = "spares"
"""Below the store's reserved temp prefix: ``<root>/.jfs-tmp.spares``."""
KEEP_MAX = 256
"""Spares kept at most (1 GiB of 4 MiB blocks: a 512 MiB upload replaced by the next one fits)."""
TTL = 30.0
"""Seconds a spare is kept unused before it is unlinked (the disk space of deleted objects comes back
this much later)."""
MIN_AGE = 0.2
"""Seconds a spare rests before it is written over. A read by this store that opened the object before
its deletion checks afterwards (`still`) and never uses rewritten bytes; a read by another process on
the same bucket (a mount racing a compaction's deletion with a stale slice list) has this long to
finish. 1 s left most spares unused when a client overwrote its keys back to back (`gateway_bench.py
--only put8`: each pass replaces the blocks the pass before wrote)."""
MIN_SIZE = 1 << 20
"""Files smaller than this are unlinked as before: their pages are few, and a short object written over
a big spare would only cut it."""


class SpareFiles:
    """Deleted object files, kept under a hidden directory of the store's root (see module)."""

    def __init__(self, root: str, prefix: str, *, keep_max: int = KEEP_MAX, ttl: float = TTL,
                 min_size: int = MIN_SIZE, min_age: float = MIN_AGE) -> None:
        self.base = os.path.join(root, prefix + SPARES_DIR)
        self.dir = os.path.join(self.base, f"{os.getpid()}-{secrets.token_hex(4)}")
        self.keep_max = keep_max
        self.ttl = ttl
        self.min_size = min_size
        self.min_age = min_age
        self._spares: deque[tuple[str, int, float]] = deque()  # (path, size, kept at), oldest first
        self._lock = threading.Lock()
        self._names = itertools.count()
        self._made = False

    def keep(self, path: str) -> bool:
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size < self.min_size:
            return False
        with self._lock:
            if len(self._spares) >= self.keep_max:
                return False
        if not self._made:
            self._make_dir()
        spare = os.path.join(self.dir, str(next(self._names)))
        try:
            os.rename(path, spare)
        except OSError:
            return False
        with self._lock:
            self._spares.append((spare, st.st_size, time.monotonic()))
        self._expire()
        return True

    def put(self, path: str, data: bytes | memoryview) -> bool:
        spare = self._take(len(data))
        if spare is None:
            return False
        try:
            fd = os.open(spare, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            self._drop(spare)
            return False
        try:
            view = memoryview(data).cast("B")
            at = 0
            while at < len(view):
                at += os.pwrite(fd, view[at:], at)
            os.ftruncate(fd, len(view))
        except OSError:
            os.close(fd)
            self._drop(spare)
            return False
        os.close(fd)
        try:
            os.replace(spare, path)
        except FileNotFoundError:
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.replace(spare, path)
            except OSError:
                self._drop(spare)
                return False
        except OSError:
            self._drop(spare)
            return False
        return True

    def _take(self, size: int) -> str | None:
        """The newest spare at least `size` bytes long that rested `min_age` (its pages the most likely in
        memory), taken out."""
        if size < self.min_size:
            return None
        self._expire()
        rested = time.monotonic() - self.min_age
        with self._lock:
            for i in range(len(self._spares) - 1, -1, -1):
                spare, have, at = self._spares[i]
                if have >= size and at <= rested:
                    del self._spares[i]
                    return spare
        return None

    def _expire(self) -> None:
        now = time.monotonic()
        old = []
        with self._lock:
            while self._spares and (now - self._spares[0][2] > self.ttl or len(self._spares) > self.keep_max):
                old.append(self._spares.popleft()[0])
        for spare in old:
            self._drop(spare)

    @staticmethod
    def _drop(spare: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(spare)

    def _make_dir(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        self._made = True
        # Spares of processes that died without closing their store.
        with contextlib.suppress(OSError), os.scandir(self.base) as it:
            for entry in it:
                pid = entry.name.partition("-")[0]
                if entry.path != self.dir and pid.isdigit() and not _alive(int(pid)):
                    shutil.rmtree(entry.path, ignore_errors=True)

    def expire_all(self) -> None:
        """Unlink every spare and the process's directory (the store is closing)."""
        with self._lock:
            spares = [s for s, _, _ in self._spares]
            self._spares.clear()
        for spare in spares:
            self._drop(spare)
        if self._made:
            shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def still(path: str, fd: int) -> bool:
        """Whether `path` still names the file open as `fd`. A reader checks it after reading: once the
        object was deleted its file may be a spare written over, and the bytes read must not be used
        (the object is reported missing, as if the read had opened it a moment later)."""
        try:
            named, opened = os.stat(path), os.fstat(fd)
        except OSError:
            return False
        return (named.st_ino, named.st_dev) == (opened.st_ino, opened.st_dev)

    def count(self) -> int:
        with self._lock:
            return len(self._spares)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


SPARES_ENV = "JFS_FILE_SPARES"
"""``1`` makes `open_file` keep deleted object files for reuse (`jfs gateway` sets it for itself)."""

"""How much of what a `file` store wrote stays in the page cache: the newest `keep` bytes of written objects.

`WrittenPages.written(path, size)` is told of every object of `MIN_SIZE` bytes or more the store has just
published. Once `keep // 2` bytes of newer objects were written after it, the object's writeback is started
(``POSIX_FADV_DONTNEED``: asynchronous, ``WB_SYNC_NONE``); once `keep` bytes were, its now clean pages are
dropped (the same advice again). A stream of big writes (a multipart upload) then keeps reusing the page
frames it freed a moment ago instead of taking cold ones: on a VM whose balloon gives free memory back to
the host, the first touch of a cold page costs ~13 s of system CPU per GiB written (ADR 0045, ADR 0052).

Contract:
- Only the kernel's caching of the files changes, never their bytes: a dropped page is read back from the
  disk, dirty pages and pages under writeback are never dropped (the kernel skips them), and nothing is
  fsynced or waited for. Any reader — this process, another client of the volume on this host, a backup —
  sees exactly what it would without it.
- Objects are named by path and opened again for the advice: one deleted or replaced meanwhile is skipped
  (``FileNotFoundError``) or gets the advice for its successor, harmless either way; no file is held open.
- At most `keep // MIN_SIZE` paths are remembered; all errors of the advice are ignored (it is only advice).
- Never on the put's path: `written` only queues the advice, which one daemon thread gives (starting a
  writeback can wait for the disk's queue). At most `MAX_PENDING` pieces of advice wait; older ones are
  forgotten when the thread falls behind (those files stay cached, as without this).
- Thread-safe: the store's worker threads call `written` concurrently.
"""

from __future__ import annotations

import os
import threading
from collections import deque

import structlog

log = structlog.get_logger("jfs.objects")

MIN_SIZE = 1 << 20
"""Smaller objects are not tracked (a small file's block: rereads likely, little to gain)."""

KEEP_ENV = "JFS_FILE_KEEP_WRITTEN_MIB"
"""MiB of the newest written objects a `file` store leaves in the page cache (`open_file`); unset or empty:
no limit (the kernel's own policy). `jfs gateway` (`GATEWAY_KEEP_MIB`) and `jfs mount` (`MOUNT_KEEP_MIB`) set it
for themselves unless given."""

GATEWAY_KEEP_MIB = 128
"""The gateway's default: more than a 4 MiB PUT/GET burst of 32 objects, so a GET right after its PUT
still reads from the page cache."""

MOUNT_KEEP_MIB = 128
"""`jfs mount`'s default (ADR 0059): two 64 MiB chunks, so a block stored but not yet committed (read back
through the store, ADR 0035) or a file read right after it was written is still served from the page cache;
the file's own pages are in the kernel's FUSE page cache anyway, the bucket's copy of them is a second one."""

MAX_PENDING = 256
"""Pieces of advice (paths) waiting for the advising thread at most."""

_ADVICE = getattr(os, "POSIX_FADV_DONTNEED", None)


class WrittenPages:
    """The newest `keep` bytes of written objects stay cached; older ones are written back, then dropped."""

    def __init__(self, keep: int) -> None:
        if keep < 2 * MIN_SIZE:
            raise ValueError(f"keep must be at least {2 * MIN_SIZE} bytes, not {keep}")
        self.keep = keep
        self._lock = threading.Lock()
        self._fresh: deque[tuple[str, int]] = deque()  # newest last; not yet told to write back
        self._flushing: deque[tuple[str, int]] = deque()  # writeback started, pages still cached
        self._fresh_bytes = 0
        self._flushing_bytes = 0
        self._pending: deque[str] = deque(maxlen=MAX_PENDING)
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    def written(self, path: str, size: int) -> None:
        """`path` (`size` bytes) was just written; advise the kernel on the objects this pushes out."""
        if size < MIN_SIZE or _ADVICE is None:
            return
        half = self.keep // 2
        with self._lock:
            self._fresh.append((path, size))
            self._fresh_bytes += size
            advice: list[str] = []
            while self._fresh_bytes > half:
                old, n = self._fresh.popleft()
                self._fresh_bytes -= n
                self._flushing.append((old, n))
                self._flushing_bytes += n
                advice.append(old)  # start its writeback
            while self._flushing_bytes > self.keep - half:
                old, n = self._flushing.popleft()
                self._flushing_bytes -= n
                advice.insert(0, old)  # drop its pages: first, they are the older
            if not advice:
                return
            self._pending.extend(advice)
            if self._thread is None:
                self._thread = threading.Thread(target=self._advise_pending, name="jfs-file-pages", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _advise_pending(self) -> None:
        """The advising thread: gives the queued advice, oldest first, for the life of the process."""
        while True:
            with self._lock:
                while not self._pending:
                    self._wake.wait()
                path = self._pending.popleft()
            _advise(path)


def _advise(path: str) -> None:
    """`advise` ``POSIX_FADV_DONTNEED`` (only called where the platform has it)."""
    advise(path, _ADVICE)  # type: ignore[arg-type]


def advise(path: str, advice: int) -> None:
    """``posix_fadvise(advice)`` on the whole file at `path` (DONTNEED: starts its writeback and drops its
    clean pages; WILLNEED: the kernel starts reading what it does not hold). Every error is ignored: it is
    only advice."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, advice)
    except OSError:
        pass
    finally:
        os.close(fd)


def willneed(path: str) -> None:
    """`advise` ``POSIX_FADV_WILLNEED`` for the file at `path` (nothing where the platform has no such advice):
    the disk cache's warming of an entry (ADR 0074). Blocking while the kernel queues the reads: call it on a
    worker thread."""
    if _WILLNEED is not None:
        advise(path, _WILLNEED)


_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)


def from_env() -> WrittenPages | None:
    """A `WrittenPages` keeping ``$JFS_FILE_KEEP_WRITTEN_MIB`` MiB, or None when it is unset, empty, 0 or not a
    number (the last logged)."""
    raw = os.environ.get(KEEP_ENV, "").strip()
    if not raw:
        return None
    try:
        mib = int(raw)
    except ValueError:
        log.warning("bad_keep_written", variable=KEEP_ENV, value=raw, effect="no limit")
        return None
    if mib <= 0:
        return None
    return WrittenPages(max(mib << 20, 2 * MIN_SIZE))

"""FLUSH and RELEASE of a handle with nothing to commit, answered at once (`VFS` inherits `CloseNow`).

Contract: `flush_now` / `release_now` do what `VFS.flush` / `VFS.release` would do and return True only
when that needs no waiting — nothing of the inode buffered or uncommitted in this client (no upload
in flight) and no earlier write failure to report, no POSIX lock or flock of the closing owner to release, and
(release) not the last close of an unlinked file (its deletion needs the engine). Otherwise they change
nothing and return False: the caller then runs the asynchronous call. Counted in `.stats` and the access
log as the asynchronous calls count themselves (ADR 0090).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from jfs.app.data.files import DataPath, Handle
from jfs.app.meta import Ctx
from jfs.app.virtual_files import INTERNAL_INODES


class CloseNow:
    """The synchronous closes of a VFS; the VFS provides the attributes below and `_took`."""

    data: DataPath
    _files: dict[int, Handle]
    _internal: dict[int, bytes]
    _control: dict[int, bytearray]
    _plock_owners: set[tuple[int, int]]
    _flock_owners: set[tuple[int, int]]

    def _took(self, op: str, ctx: Ctx | None, args: Callable[[], str], start: float, err: int = 0) -> None:
        raise NotImplementedError

    def flush_now(self, ctx: Ctx, ino: int, fh: int, lock_owner: int | None = None) -> bool:
        """`flush` done at once (True) when nothing of the inode awaits its commit here and `lock_owner`
        holds no POSIX lock on it taken through this client; else False, nothing done."""
        if ino in INTERNAL_INODES or (lock_owner is not None and (ino, lock_owner) in self._plock_owners):
            return False
        h = self._files.get(fh)
        if h is None or h.ino != ino:
            return False
        start = time.perf_counter()
        if not self.data.flush_now(h):
            return False
        self._took("flush", ctx, lambda: str(ino), start)
        return True

    def release_now(self, ctx: Ctx, ino: int, fh: int, flock_owner: int | None = None) -> bool:
        """`release` done at once (True) when nothing of the inode awaits its commit here, `flock_owner`
        holds no flock on it and the close needs no engine call; else False, nothing done."""
        if ino in INTERNAL_INODES or fh in self._internal or fh in self._control:
            return False
        if flock_owner is not None and (ino, flock_owner) in self._flock_owners:
            return False
        h = self._files.get(fh)
        if h is None or h.ino != ino:
            return False
        start = time.perf_counter()
        if not self.data.release_now(h):
            return False
        del self._files[fh]
        self._took("release", ctx, lambda: str(ino), start)
        return True

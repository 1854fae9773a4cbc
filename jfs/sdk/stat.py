"""`os.stat_result` from jfs attributes: what the SDK's `stat` returns, shaped as `os.stat` shapes it."""

from __future__ import annotations

import os

from jfs.domain.attrs import Attr, FileType

NS = 1_000_000_000


def stat_result(ino: int, a: Attr, dev: int = 0) -> os.stat_result:
    """What `os.stat` would return for inode `ino` with attributes `a` (blocks in 512-byte units)."""
    size = 4096 if a.typ is FileType.DIRECTORY else a.length
    return os.stat_result((
        a.st_mode, ino, dev, a.nlink, a.uid, a.gid, size,
        a.atime_ns // NS, a.mtime_ns // NS, a.ctime_ns // NS,  # integer seconds, as os.stat gives in [7:10]
        a.atime_ns / NS, a.mtime_ns / NS, a.ctime_ns / NS,
        a.atime_ns, a.mtime_ns, a.ctime_ns,
        65536, (size + 511) // 512, a.rdev,
    ))

"""The trash: removed files and directories are moved under ``.trash/<YYYY-MM-DD-HH>/<parent>-<ino>-<name>``
(UTC hour of the removal), as JuiceFS does.

A trashed inode keeps its attributes and data; its attribute ``parent`` becomes the hour directory and its
original parent survives only in the entry name. A directory goes to the trash by rmdir, so it is empty
then: ``rm -rf`` / ``jfs rmr`` of a tree leave every file and directory of it side by side in the hour
directory, each named after its original parent's inode, from which `jfs restore` rebuilds the tree
(`jfs.app.ops.restore`, on the transaction in `jfs.app.meta.trash_restore`). Trashed inodes stay charged
to the volume's usage counters until they are purged (`jfs.app.meta.trash_purge`, a background job of the
engine).

Hour directories as JuiceFS keeps them (issue 16, a volume shared with JuiceFS clients): each is charged
one inode and 4 KiB to the usage counters when it is created (JuiceFS's ``checkTrash`` does the same, and
its usage recount counts them), and the trash root's attributes are left alone — its nlink stays 2 (JuiceFS
never counts hour directories in it). Volumes written by earlier jfs versions have trash roots with nlink
2 + hour directories and uncharged hour directories; `jfs fsck` accepts the former, and the purge of an
hour directory tells the two kinds apart by the root's nlink (`trash_purge.remove_hour_dir`).

This module holds the layout: the names (`hour_name`, `entry_name` and their parsers `hour_start`,
`parse_entry_name`), the in-transaction moves into the trash (`hour_dir`, `move_to_trash`), and the reads
of what the trash holds (`hour_dirs`, `trash_inodes`).
"""

from __future__ import annotations

import calendar
import time

from jfs.app.meta import owner_quota, reader, store
from jfs.domain import keys
from jfs.domain.attrs import TRASH_INODE, Attr, FileType
from jfs.domain.records import decode_dentry
from jfs.ports.kv import KV, Tx

TRASH_DIR_MODE = 0o555
HOUR_DIR_SPACE = 4096
"""What an hour directory is charged to the usage counters (one inode too)."""


def hour_name(now_ns: int) -> bytes:
    """The name of the hour directory of time `now_ns` (UTC): ``YYYY-MM-DD-HH``."""
    return time.strftime("%Y-%m-%d-%H", time.gmtime(now_ns // 1_000_000_000)).encode()


def hour_start(name: bytes) -> int | None:
    """Unix time at which the hour named ``YYYY-MM-DD-HH`` (UTC) began; None for any other name."""
    try:
        text = name.decode("ascii")
        if len(text) != 13:
            return None
        return calendar.timegm(time.strptime(text, "%Y-%m-%d-%H"))
    except (UnicodeDecodeError, ValueError):
        return None


def entry_name(parent: int, ino: int, name: bytes) -> bytes:
    """The name of a trashed entry: ``<parent>-<ino>-<name>``, cut to 255 bytes."""
    return (b"%d-%d-" % (parent, ino) + name)[:255]


def parse_entry_name(name: bytes) -> tuple[int, int, bytes] | None:
    """(original parent, inode, original name) of a trash entry ``<parent>-<ino>-<name>``, else None."""
    parts = name.split(b"-", 2)
    if len(parts) != 3 or not parts[2] or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), parts[2]


async def hour_dirs(kv: KV) -> list[tuple[bytes, int]]:
    """(name, inode) of every directory in the trash root, in name order."""
    return [(name, ino) for name, typ, ino in await reader.dir_entries(kv, TRASH_INODE) if typ is FileType.DIRECTORY]


async def trash_inodes(kv: KV) -> set[int]:
    """Every inode below the trash root (files and directories, the hour directories excluded)."""
    return {ino async for _, _, ino in reader.walk(kv, [ino for _, ino in await hour_dirs(kv)])}


def trash_root_attr(now: int) -> Attr:
    return Attr(
        typ=FileType.DIRECTORY, mode=TRASH_DIR_MODE, atime_ns=now, mtime_ns=now, ctime_ns=now,
        nlink=2, length=4096, parent=1,
    )


async def hour_dir(tx: Tx, now: int) -> int:
    """The inode of the current hour's trash directory, created inside `tx` when missing."""
    name = hour_name(now)
    raw = await tx.get(keys.dentry(TRASH_INODE, name))
    if raw is not None:
        return decode_dentry(raw)[1]
    ino = TRASH_INODE + await tx.incr_by(keys.counter(keys.NEXT_TRASH), 1)
    attr = Attr(
        typ=FileType.DIRECTORY, mode=TRASH_DIR_MODE, atime_ns=now, mtime_ns=now, ctime_ns=now,
        nlink=2, length=4096, parent=TRASH_INODE,
    )
    store.put_attr(tx, ino, attr)
    store.put_entry(tx, TRASH_INODE, name, FileType.DIRECTORY, ino)
    store.charge(tx, HOUR_DIR_SPACE, 1)
    await owner_quota.charge_recorded(tx, attr, 1)  # QUOTA HOOK
    return ino


async def move_to_trash(tx: Tx, parent: int, name: bytes, ino: int, attr: Attr, now: int) -> None:
    """Re-home the last name of `ino` (already removed from `parent`, whose nlink the caller adjusts)
    into the current hour's trash directory. A file keeps nlink 1; a directory keeps its nlink and adds
    one to the hour directory's."""
    hour = await hour_dir(tx, now)
    if attr.parent == 0:
        await store.replace_parent_refs(tx, ino, {})
    attr.parent = hour
    if attr.typ is FileType.DIRECTORY:
        hour_attr = await store.get_attr(tx, hour)
        hour_attr.nlink += 1
        hour_attr.mtime_ns = hour_attr.ctime_ns = now
        store.put_attr(tx, hour, hour_attr)
    else:
        attr.nlink = 1
    attr.ctime_ns = now
    store.put_attr(tx, ino, attr)
    store.put_entry(tx, hour, entry_name(parent, ino, name), attr.typ, ino)

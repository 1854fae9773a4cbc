"""A listing's attributes as this client shows them, read straight from stored attribute records.

`VFS.visible` applied to `Attr.decode(record)`, without building an `Attr` per entry: a READDIRPLUS reply
packs thousands of entries, and the decode was a quarter of a cold listing's per-entry time (ADR 0071).
The rules are `VFS.visible`'s: a regular file open here shows its length with this client's uncommitted
writes when longer; a non-directory whose parent is in the trash shows nlink 0 (`posix_nlink`).
"""

from __future__ import annotations

from collections.abc import Callable, Container

from jfs.domain.attrs import FILE_TYPES, PLAIN_RECORD, PLAIN_RECORD_SIZE, TRASH_INODE, FileType

RecordFields = tuple[int, int, int, int, int, int, int, int, int, int, int, int]
"""``(permission bits, nlink, uid, gid, rdev, length, atime s, atime ns, mtime s, mtime ns, ctime s, ctime ns)``."""

_RECORD_TYPES = frozenset(FILE_TYPES)  # the type values a record may hold (`Attr.decode` refuses others)
RECORD_TYPES = _RECORD_TYPES
"""The values a plain record's type nibble (``record[1] >> 4``) may hold."""
VIEWED_PARENTS = TRASH_INODE
"""The contract a packer inlining the common case relies on (ADR 0078): for a plain record (`PLAIN_RECORD`,
type in `RECORD_TYPES`) whose parent field is below `VIEWED_PARENTS` and whose inode is not in
`open_inodes`, `record_view`'s fields are the record's own, unchanged: permission bits ``tm & 0o7777``,
nlink, uid, gid, rdev, length and the times as stored. Any other record goes through `record_view`."""
_REGULAR, _DIRECTORY = int(FileType.REGULAR), int(FileType.DIRECTORY)


def record_view(local_length: Callable[[int], int | None],
                open_inodes: Container[int]) -> Callable[[int, bytes], RecordFields | None]:
    """A function ``(ino, record) -> fields`` for this client (`VFS.local_length`, `VFS.open_inodes`): the
    fields of `VFS.visible(ino, Attr.decode(record))`, or None when `record` is not the plain layout (ACLs,
    tier, an unknown type): decode that one and use `visible`."""
    unpack = PLAIN_RECORD.unpack_from

    def fields(ino: int, record: bytes) -> RecordFields | None:
        if len(record) != PLAIN_RECORD_SIZE or (typ := record[1] >> 4) not in _RECORD_TYPES:
            return None
        (_, tm, uid, gid, asec, ansec, msec, mnsec, csec, cnsec, nlink, length, rdev, parent) = unpack(record)
        if typ == _REGULAR and ino in open_inodes:
            local = local_length(ino)
            if local is not None and local > length:
                length = local
        if parent >= TRASH_INODE and ino < TRASH_INODE and typ != _DIRECTORY:
            nlink = 0
        return tm & 0o7777, nlink, uid, gid, rdev, length, asec, ansec, msec, mnsec, csec, cnsec

    return fields

"""Rules for directory-entry names and symlink targets (raw bytes, as Linux passes them)."""

from __future__ import annotations

import errno

from jfs.domain.attrs import MAX_NAME, MAX_SYMLINK
from jfs.domain.errors import FSError


def validate_name(name: bytes) -> None:
    """Raise FSError unless `name` can be stored as one directory entry.

    ENAMETOOLONG above 255 bytes; EINVAL when empty or containing b"/" or b"\\0". `.` and `..` pass
    (they are valid path components; operations decide what they mean, see `is_dot`).
    """
    if len(name) > MAX_NAME:
        raise FSError(errno.ENAMETOOLONG)
    if not name or b"/" in name or b"\0" in name:
        raise FSError(errno.EINVAL, repr(name))


def is_dot(name: bytes) -> bool:
    """Whether `name` is b"." or b"..", which are never stored as entries."""
    return name == b"." or name == b".."


def validate_symlink_target(target: bytes) -> None:
    """Raise FSError unless `target` can be a symlink's content.

    ENOENT when empty (as Linux `symlink("", …)`), ENAMETOOLONG above 4096 bytes, EINVAL with a NUL.
    """
    if not target:
        raise FSError(errno.ENOENT)
    if len(target) > MAX_SYMLINK:
        raise FSError(errno.ENAMETOOLONG)
    if b"\0" in target:
        raise FSError(errno.EINVAL)

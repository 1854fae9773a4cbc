"""Small rules shared by the operation modules: permission gates, parent timestamps, reserved names."""

from __future__ import annotations

import errno
import time

from jfs.app.meta.context import Ctx
from jfs.domain.attrs import FLAG_APPEND, FLAG_IMMUTABLE, ROOT_INODE, Attr, is_trash_inode
from jfs.domain.errors import FSError
from jfs.domain.permissions import MAY_EXEC, MAY_WRITE, check_access, check_sticky

SKIP_DIR_MTIME_NS = 100_000_000
"""A parent directory's mtime/ctime are rewritten only when older than this (coalesces hot-dir updates)."""

RESERVED_ROOT_NAMES = frozenset({b".trash", b".stats", b".config", b".accesslog", b".control"})


def now_ns() -> int:
    return time.time_ns()


def check_perm(ctx: Ctx, attr: Attr, mask: int) -> None:
    if ctx.check:
        check_access(attr, ctx.caller, mask)


def check_dir_writable(ctx: Ctx, parent: int, dir_attr: Attr) -> None:
    """Gate for adding or removing a name in a directory: EPERM in the trash or if immutable, EACCES."""
    if is_trash_inode(parent) or is_trash_inode(dir_attr.parent):
        raise FSError(errno.EPERM, "the trash is read-only")
    if dir_attr.flags & (FLAG_IMMUTABLE | FLAG_APPEND):
        raise FSError(errno.EPERM, "directory is immutable or append-only")
    check_perm(ctx, dir_attr, MAY_WRITE | MAY_EXEC)


def check_removable(ctx: Ctx, dir_attr: Attr, victim: Attr) -> None:
    if victim.flags & (FLAG_IMMUTABLE | FLAG_APPEND):
        raise FSError(errno.EPERM, "file is immutable or append-only")
    if ctx.check:
        check_sticky(dir_attr, victim, ctx.caller)


def check_reserved(parent: int, name: bytes) -> None:
    if parent == ROOT_INODE and name in RESERVED_ROOT_NAMES:
        raise FSError(errno.EPERM, f"'{name.decode(errors='replace')}' is reserved in the root")


def touch_parent(attr: Attr, now: int, *, force: bool = False) -> bool:
    """Update a directory's mtime/ctime for a change of its entries; returns whether it changed."""
    if force or now - attr.mtime_ns >= SKIP_DIR_MTIME_NS or now < attr.mtime_ns:
        attr.mtime_ns = now
        attr.ctime_ns = now
        return True
    return False

"""Extended attributes: get, set (XATTR_CREATE / XATTR_REPLACE), list, remove."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from jfs.app.meta import store
from jfs.app.meta.context import Ctx
from jfs.app.meta.rules import check_perm, now_ns
from jfs.domain import keys
from jfs.domain.attrs import FLAG_APPEND, FLAG_IMMUTABLE, Attr, is_trash_inode
from jfs.domain.errors import ENOATTR, FSError
from jfs.domain.permissions import MAY_READ, MAY_WRITE
from jfs.ports.kv import Tx

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

XATTR_CREATE = 1
XATTR_REPLACE = 2
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536


def _check_name(name: bytes) -> None:
    if not name:
        raise FSError(errno.EINVAL, "empty attribute name")
    if len(name) > XATTR_NAME_MAX:
        raise FSError(errno.ERANGE, "attribute name too long")


def _needs_perm(name: bytes) -> bool:
    """user.* attributes follow the file's permission bits; other namespaces are the kernel's business."""
    return name.startswith(b"user.")


async def get_xattr(m: Meta, ctx: Ctx, ino: int, name: bytes) -> bytes:
    """The value of attribute `name`; ENODATA when absent, ENOENT when the inode is missing."""
    _check_name(name)

    async def body(tx: Tx) -> bytes:
        raw_attr, value = await tx.get_many([keys.attr(ino), keys.xattr(ino, name)])
        if raw_attr is None:
            raise FSError(errno.ENOENT)
        if _needs_perm(name):
            check_perm(ctx, Attr.decode(raw_attr), MAY_READ)
        if value is None:
            raise FSError(ENOATTR)
        return value

    return await m.kv.read(body)


async def get_xattr_many(m: Meta, ctx: Ctx, inodes: list[int], name: bytes) -> list[bytes | None]:
    """Attribute `name` of each of `inodes` in one read transaction (a listing's page): None where the
    inode or the attribute is missing or the caller may not read it."""
    _check_name(name)

    async def body(tx: Tx) -> list[bytes | None]:
        raw = await tx.get_many([k for ino in inodes for k in (keys.attr(ino), keys.xattr(ino, name))])
        out: list[bytes | None] = []
        for i in range(len(inodes)):
            raw_attr, value = raw[2 * i], raw[2 * i + 1]
            if raw_attr is None or value is None:
                out.append(None)
                continue
            if _needs_perm(name):
                try:
                    check_perm(ctx, Attr.decode(raw_attr), MAY_READ)
                except FSError:
                    out.append(None)
                    continue
            out.append(value)
        return out

    return await m.kv.read(body)


async def list_xattrs(m: Meta, ctx: Ctx, ino: int) -> list[bytes]:
    """Names of all attributes of `ino`, in byte order."""

    async def body(tx: Tx) -> list[bytes]:
        await store.get_attr(tx, ino)
        prefix = keys.xattr_prefix(ino)
        rows = await tx.scan(prefix, keys.prefix_end(prefix), keys_only=True)
        return [k[len(prefix):] for k, _ in rows]

    return await m.kv.read(body)


async def _changeable(tx: Tx, ino: int, name: bytes) -> tuple[Attr, bytes | None]:
    """(attributes of `ino`, current value of its attribute `name`) for a change of that attribute.

    Errors: ENOENT (no inode), EPERM (immutable, append-only, or in the trash)."""
    raw_attr, old = await tx.get_many([keys.attr(ino), keys.xattr(ino, name)])
    if raw_attr is None:
        raise FSError(errno.ENOENT)
    attr = Attr.decode(raw_attr)
    if attr.flags & (FLAG_IMMUTABLE | FLAG_APPEND) or is_trash_inode(attr.parent):
        raise FSError(errno.EPERM)
    return attr, old


def _changed(tx: Tx, ino: int, attr: Attr, now: int) -> None:
    """An attribute of `ino` changed: its ctime moves to `now`."""
    attr.ctime_ns = now
    store.put_attr(tx, ino, attr)


async def set_xattr(m: Meta, ctx: Ctx, ino: int, name: bytes, value: bytes, flags: int = 0) -> None:
    """Set attribute `name`. Errors: EEXIST (CREATE and present), ENODATA (REPLACE and absent),
    E2BIG (value over 64 KiB), ERANGE (name over 255 bytes), EINVAL (flags), EPERM, EACCES, ENOENT."""
    _check_name(name)
    if flags & ~(XATTR_CREATE | XATTR_REPLACE) or flags == XATTR_CREATE | XATTR_REPLACE:
        raise FSError(errno.EINVAL)
    if len(value) > XATTR_SIZE_MAX:
        raise FSError(errno.E2BIG)
    now = now_ns()

    async def body(tx: Tx) -> None:
        attr, old = await _changeable(tx, ino, name)
        if _needs_perm(name):
            if attr.typ.name not in ("REGULAR", "DIRECTORY"):
                raise FSError(errno.EPERM, "user attributes only on files and directories")
            check_perm(ctx, attr, MAY_WRITE)
        if flags & XATTR_CREATE and old is not None:
            raise FSError(errno.EEXIST)
        if flags & XATTR_REPLACE and old is None:
            raise FSError(ENOATTR)
        tx.put(keys.xattr(ino, name), value)
        _changed(tx, ino, attr, now)

    await m.txn(body, ino)


async def remove_xattr(m: Meta, ctx: Ctx, ino: int, name: bytes) -> None:
    """Remove attribute `name`; ENODATA when absent."""
    _check_name(name)
    now = now_ns()

    async def body(tx: Tx) -> None:
        attr, old = await _changeable(tx, ino, name)
        if _needs_perm(name):
            check_perm(ctx, attr, MAY_WRITE)
        if old is None:
            raise FSError(ENOATTR)
        tx.delete(keys.xattr(ino, name))
        _changed(tx, ino, attr, now)

    await m.txn(body, ino)

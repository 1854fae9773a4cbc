"""setattr: chmod, chown, utimens (explicit times, UTIME_NOW, omitted), truncate, and inode flags."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from jfs.app.meta import owner_quota, quota, store
from jfs.app.meta.chunks import Freed, truncate_in_tx
from jfs.app.meta.context import Ctx
from jfs.app.meta.rules import check_perm, now_ns
from jfs.domain.attrs import FLAG_APPEND, FLAG_IMMUTABLE, S_ISGID, S_ISUID, Attr, FileType, is_trash_inode
from jfs.domain.errors import FSError
from jfs.domain.permissions import MAY_WRITE, check_chmod, check_chown, check_utimens
from jfs.ports.kv import Tx

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

NOW: Literal["now"] = "now"
TimeSpec = int | Literal["now"] | None


@dataclass(frozen=True, slots=True)
class SetAttr:
    """The fields to change; None leaves a field as it is. Times are ns or NOW."""

    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    atime: TimeSpec = None
    mtime: TimeSpec = None
    size: int | None = None
    flags: int | None = None
    ctime: int | None = None


async def setattr(m: Meta, ctx: Ctx, ino: int, change: SetAttr) -> Attr:
    """Apply `change` to `ino` in one transaction; returns the new attributes.

    Errors: ENOENT, EPERM (not owner, immutable, trash), EACCES (truncate without write permission),
    EISDIR (truncate of a directory), EINVAL (negative size), EFBIG, ENOSPC.
    """
    if change.size is not None and change.size < 0:
        raise FSError(errno.EINVAL)
    now = now_ns()

    async def body(tx: Tx) -> tuple[Attr, int, Freed]:
        attr = await store.get_attr(tx, ino)
        if is_trash_inode(ino) or (is_trash_inode(attr.parent) and not m.holds(ino)):
            raise FSError(errno.EPERM, "the trash is read-only")
        if attr.flags & (FLAG_IMMUTABLE | FLAG_APPEND) and (
            change.mode is not None or change.uid is not None or change.gid is not None
            or change.size is not None or change.atime is not None or change.mtime is not None
        ):
            raise FSError(errno.EPERM, "file is immutable or append-only")
        caller = ctx.caller
        changed = False
        if change.flags is not None and change.flags != attr.flags:
            if ctx.check and not ctx.is_root and ctx.uid != attr.uid:
                raise FSError(errno.EPERM)
            attr.flags = change.flags & 0xFF
            changed = True
        if change.uid is not None or change.gid is not None:
            uid = attr.uid if change.uid is None else change.uid
            gid = attr.gid if change.gid is None else change.gid
            if ctx.check:
                check_chown(attr, caller, uid, gid)
            if (uid, gid) != (attr.uid, attr.gid) or not ctx.is_root:
                if attr.typ is not FileType.DIRECTORY and attr.mode & (S_ISUID | S_ISGID):
                    # chown drops set-id bits; setgid without group-exec is mandatory locking and stays.
                    if attr.mode & 0o010:
                        attr.mode &= ~(S_ISUID | S_ISGID)
                    else:
                        attr.mode &= ~S_ISUID
            await owner_quota.chown(m, tx, attr, uid, gid)  # QUOTA HOOK
            attr.uid, attr.gid = uid, gid
            changed = True
        if change.mode is not None:
            mode = change.mode & 0o7777
            if ctx.check:
                mode = check_chmod(attr, caller, mode)
            attr.mode = mode
            changed = True
        for which in ("atime", "mtime"):
            spec = getattr(change, which)
            if spec is None:
                continue
            if ctx.check:
                check_utimens(attr, caller, explicit=spec != NOW)
            setattr_ns = now if spec == NOW else int(spec)
            if which == "atime":
                attr.atime_ns = setattr_ns
            else:
                attr.mtime_ns = setattr_ns
            changed = True
        freed: Freed = []
        delta = 0
        if change.size is not None:
            if attr.typ is FileType.DIRECTORY:
                raise FSError(errno.EISDIR)
            if attr.typ is not FileType.REGULAR:
                raise FSError(errno.EPERM)
            check_perm(ctx, attr, MAY_WRITE)
            delta, freed = await truncate_in_tx(tx, ino, attr, change.size, now)
            await quota.charge(m, tx, attr.parent, delta, 0)  # QUOTA HOOK
            await owner_quota.charge(m, tx, attr, delta, 0)  # QUOTA HOOK
            if attr.mode & (S_ISUID | S_ISGID) and not ctx.is_root:
                attr.mode &= ~S_ISUID
                if attr.mode & 0o010:
                    attr.mode &= ~S_ISGID
        if changed or change.size is not None:
            attr.ctime_ns = change.ctime if change.ctime is not None else now
            store.put_attr(tx, ino, attr)
        return attr, delta, freed

    if change.size is not None:
        m.check_space(change.size)
    attr, delta, freed = await m.txn(body, ino)
    m.note_usage(delta, 0)
    if freed:
        await m.free_slices(freed)
    return attr


async def truncate(m: Meta, ctx: Ctx, ino: int, length: int) -> Attr:
    return await setattr(m, ctx, ino, SetAttr(size=length))

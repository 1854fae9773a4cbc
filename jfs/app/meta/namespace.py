"""Lookup and creation of names: lookup, mknod (files, dirs, fifos, sockets, devices), symlink, link."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from jfs.app.meta import owner_quota, quota, store
from jfs.app.meta.context import Ctx
from jfs.app.meta.rules import check_dir_writable, check_perm, check_reserved, now_ns, touch_parent
from jfs.app.meta.tails import errors_on_guesses_retried
from jfs.domain import keys
from jfs.domain.attrs import (
    DIR_LENGTH,
    ROOT_INODE,
    S_ISGID,
    TRASH_INODE,
    Attr,
    FileType,
)
from jfs.domain.errors import FSError
from jfs.domain.names import validate_name, validate_symlink_target
from jfs.domain.permissions import MAY_EXEC
from jfs.domain.records import decode_dentry
from jfs.ports.kv import Tx

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta


_ENTRY_ATTR = store.entry_attr_pointer(0)
_DIR_ENTRY_ATTR = store.entry_attr_pointer(1)


async def lookup(m: Meta, ctx: Ctx, parent: int, name: bytes, *, dir_known: bool = False) -> tuple[int, Attr]:
    """Resolve `name` in directory `parent` (``.`` and ``..`` included); ENOENT, ENOTDIR, EACCES.

    `dir_known`: the caller knows `parent` as a directory (the kernel's LOOKUP). With permission checks
    off as well (the kernel checked the search right, ``default_permissions``) the directory's record is
    not read: the dentry and the inode it names only, as JuiceFS reads them (a removed directory has no
    entries left: ENOENT all the same)."""
    if name == b".":
        return parent, await m.getattr(parent)
    if name == b"..":
        async def up(tx: Tx) -> tuple[int, Attr]:
            attr = await store.get_dir(tx, parent)
            check_perm(ctx, attr, MAY_EXEC)
            target = attr.parent if parent != ROOT_INODE and attr.parent else ROOT_INODE
            return target, await store.get_attr(tx, target)

        return await m.kv.read(up)
    if len(name) > 255:
        raise FSError(errno.ENAMETOOLONG)
    skip_dir = dir_known and not ctx.check
    if skip_dir:
        follow = getattr(m.kv, "read_follow", None)
        if follow is not None:
            # The dentry and the inode it names in one atomic read outside a transaction (Redis: one FOLLOW
            # script call, as the transaction's only round was; ADR 0094).
            raw_entry, raw_attr = await follow([keys.dentry(parent, name)], _ENTRY_ATTR)
            m.tails.keep_name(parent, name, None if raw_entry is None or raw_attr is None else (raw_entry, raw_attr))
            if raw_entry is not None:
                _, ino = decode_dentry(raw_entry)
                if raw_attr is None:
                    raise FSError(errno.ENOENT, f"inode {ino}")
                return ino, Attr.decode(raw_attr)
            if parent != ROOT_INODE or name != b".trash":
                raise FSError(errno.ENOENT)

    async def body(tx: Tx) -> tuple[int, Attr]:
        if skip_dir:
            raw_entry, raw_attr = await tx.get_follow([keys.dentry(parent, name)], _ENTRY_ATTR)
            # What the kernel's LOOKUP found, for a RENAME that follows it to assume (ADR 0086).
            m.tails.keep_name(parent, name, None if raw_entry is None or raw_attr is None else (raw_entry, raw_attr))
        else:
            raw_dir, raw_entry, raw_attr = await tx.get_follow(
                [keys.attr(parent), keys.dentry(parent, name)], _DIR_ENTRY_ATTR
            )
            dir_attr = store.decode_dir(raw_dir, parent)
            check_perm(ctx, dir_attr, MAY_EXEC)
        if raw_entry is None:
            if parent == ROOT_INODE and name == b".trash":
                return TRASH_INODE, await store.get_attr(tx, TRASH_INODE)
            raise FSError(errno.ENOENT)
        _, ino = decode_dentry(raw_entry)
        if raw_attr is None:
            raise FSError(errno.ENOENT, f"inode {ino}")
        return ino, Attr.decode(raw_attr)

    return await m.kv.read(body)


async def mknod(
    m: Meta,
    ctx: Ctx,
    parent: int,
    name: bytes,
    typ: FileType,
    mode: int,
    *,
    rdev: int = 0,
    target: bytes = b"",
) -> tuple[int, Attr]:
    """Create a node of type `typ` named `name` in `parent`; returns (ino, attr).

    Errors: EEXIST (name taken), ENOENT/ENOTDIR (parent), EACCES, EPERM (trash, reserved names),
    ENAMETOOLONG/EINVAL (name), ENOSPC (inode limit).
    """
    validate_name(name)
    check_reserved(parent, name)
    if typ is FileType.SYMLINK:
        validate_symlink_target(target)
    m.check_inode_quota(1)
    ino = await m.next_inode()
    now = now_ns()
    guess: bytes | None = None
    attempts = 0
    wrote: bytes | None = None
    left: Attr | None = None

    async def body(tx: Tx) -> tuple[int, Attr]:
        nonlocal attempts, wrote, left
        attempts += 1
        wrote = left = None
        assume = getattr(tx, "assume", None) if guess is not None and attempts == 1 else None
        if assume is not None:
            # What this client's last create here left, and the name free (the kernel has just looked it
            # up): validated by the commit instead of read first. Wrong: a retry that reads.
            raw_dir, raw_entry = guess, None
            assume(keys.attr(parent), raw_dir)
            assume(keys.dentry(parent, name), None)
        else:
            raw_dir, raw_entry, _ = await tx.get_follow(
                [keys.attr(parent), keys.dentry(parent, name)], store.entry_attr_pointer(1)
            )
        dir_attr = store.decode_dir(raw_dir, parent)
        check_dir_writable(ctx, parent, dir_attr)
        if raw_entry is not None:
            raise FSError(errno.EEXIST)
        attr = new_attr(ctx, dir_attr, parent, typ, mode, now, rdev=rdev, target=target)
        store.put_entry(tx, parent, name, typ, ino)
        store.put_attr(tx, ino, attr)
        if typ is FileType.SYMLINK:
            tx.put(keys.symlink(ino), target)
        changed = touch_parent(dir_attr, now, force=typ is FileType.DIRECTORY)
        if typ is FileType.DIRECTORY:
            dir_attr.nlink += 1
        if changed:
            store.put_attr(tx, parent, dir_attr)
        store.charge(tx, store.space_of(attr), 1)
        await quota.charge(m, tx, parent, store.space_of(attr), 1)  # QUOTA HOOK
        await owner_quota.charge_inode(m, tx, attr)  # QUOTA HOOK
        wrote = dir_attr.encode() if changed else raw_dir
        left = dir_attr
        return ino, attr

    guarded = errors_on_guesses_retried(body, lambda: guess is not None and attempts == 1, "mknod")

    # As `Meta.txn_dirs`, with the directory's guess taken and kept under its lock (see `chunks.write_slice`).
    async with m.locked(parent):
        guess = m.tails.take_dir(parent)
        m.tails.forget((parent,))
        m.tails.drop_name(parent, name)
        seq = m.own_dirs.begin(parent)
        result = await m.kv.txn(guarded)
        if guess is not None and attempts > 1:
            m.tails.missed_dir(parent)
        if wrote is not None:
            m.tails.keep_dir(parent, wrote)
        if left is not None:
            m.own_dirs.wrote(parent, seq, left)
    if typ is FileType.REGULAR:
        # The file's first slice commit (chunk 0: what a small file's close makes next) assumes the
        # attributes just written and an empty chunk instead of reading them: one round trip less where the
        # engine validates by value (ADR 0072). A guess only, validated by that commit; no await since ours.
        m.tails.keep_created(ino, result[1].encode())
    m.note_usage(store.space_of(result[1]), 1)
    return result


def new_attr(
    ctx: Ctx, dir_attr: Attr, parent: int, typ: FileType, mode: int, now: int, *, rdev: int = 0, target: bytes = b""
) -> Attr:
    """Attributes of a new inode: umask applied, gid and setgid inherited from a setgid parent."""
    perm = 0o777 if typ is FileType.SYMLINK else mode & 0o7777 & ~ctx.umask
    gid = ctx.gid
    if dir_attr.mode & S_ISGID:
        gid = dir_attr.gid
        if typ is FileType.DIRECTORY:
            perm |= S_ISGID
        elif perm & S_ISGID and not ctx.is_root and gid != ctx.gid and gid not in ctx.groups:
            perm &= ~S_ISGID
    attr = Attr(
        typ=typ,
        mode=perm,
        uid=ctx.uid,
        gid=gid,
        atime_ns=now,
        mtime_ns=now,
        ctime_ns=now,
        nlink=2 if typ is FileType.DIRECTORY else 1,
        length=DIR_LENGTH if typ is FileType.DIRECTORY else (len(target) if typ is FileType.SYMLINK else 0),
        rdev=rdev if typ in (FileType.BLOCKDEV, FileType.CHARDEV) else 0,
        parent=parent,
        tier=dir_attr.tier,
    )
    return attr


async def link(m: Meta, ctx: Ctx, ino: int, parent: int, name: bytes) -> Attr:
    """Add the name `name` in `parent` for the existing non-directory `ino`; returns its new attributes.

    Errors: EPERM (directory, trash, immutable), EEXIST, ENOENT, ENOTDIR, EACCES, EMLINK.
    """
    validate_name(name)
    check_reserved(parent, name)
    now = now_ns()

    async def body(tx: Tx) -> Attr:
        raw_dir, raw_entry, raw_attr = await tx.get_many(
            [keys.attr(parent), keys.dentry(parent, name), keys.attr(ino)]
        )
        if raw_dir is None or raw_attr is None:
            raise FSError(errno.ENOENT)
        dir_attr = Attr.decode(raw_dir)
        if dir_attr.typ is not FileType.DIRECTORY:
            raise FSError(errno.ENOTDIR)
        check_dir_writable(ctx, parent, dir_attr)
        attr = Attr.decode(raw_attr)
        if attr.typ is FileType.DIRECTORY:
            raise FSError(errno.EPERM, "hard links to directories are not allowed")
        if attr.flags & 0x03:
            raise FSError(errno.EPERM, "file is immutable or append-only")
        if attr.parent >= TRASH_INODE:
            raise FSError(errno.EPERM, "file is in the trash")
        if raw_entry is not None:
            raise FSError(errno.EEXIST)
        if attr.nlink >= 0xFFFFFFFF:
            raise FSError(errno.EMLINK)
        if attr.parent:
            await store.add_parent_ref(tx, ino, attr.parent, 1)
            attr.parent = 0
        await store.add_parent_ref(tx, ino, parent, 1)
        attr.nlink += 1
        attr.ctime_ns = now
        store.put_attr(tx, ino, attr)
        store.put_entry(tx, parent, name, attr.typ, ino)
        if touch_parent(dir_attr, now):
            store.put_attr(tx, parent, dir_attr)
        await quota.charge(m, tx, parent, store.space_of(attr), 1)  # QUOTA HOOK
        return attr

    return await m.txn(body, parent, ino)


async def readlink(m: Meta, ino: int) -> bytes:
    async def body(tx: Tx) -> bytes:
        target = await tx.get(keys.symlink(ino))
        if target is None:
            attr = await store.get_attr(tx, ino)
            if attr.typ is not FileType.SYMLINK:
                raise FSError(errno.EINVAL, "not a symlink")
            raise FSError(errno.EIO, f"symlink {ino} has no target")
        return target

    return await m.kv.read(body)

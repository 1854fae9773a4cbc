"""Every rule of rename: replace, RENAME_NOREPLACE, RENAME_EXCHANGE, cross-directory moves, subtree checks."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from jfs.app.meta import quota, store
from jfs.app.meta.context import Ctx
from jfs.app.meta.remove import delete_inode, drop_name
from jfs.app.meta.rules import (
    check_dir_writable,
    check_perm,
    check_removable,
    check_reserved,
    now_ns,
    touch_parent,
)
from jfs.app.meta.tails import CommitTails, errors_on_guesses_retried
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, Attr, FileType
from jfs.domain.errors import FSError
from jfs.domain.names import validate_name
from jfs.domain.permissions import MAY_WRITE
from jfs.domain.records import decode_dentry
from jfs.ports.kv import Tx

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4


async def _check_not_ancestor(tx: Tx, moved: int, new_parent: int) -> None:
    """EINVAL when directory `moved` is `new_parent` or one of its ancestors."""
    cur = new_parent
    seen = 0
    while cur != ROOT_INODE:
        if cur == moved:
            raise FSError(errno.EINVAL, "cannot move a directory into its own subtree")
        attr = await store.get_attr(tx, cur)
        cur = attr.parent
        seen += 1
        if cur == 0 or seen > 100_000:
            break


def _reparent_refs_needed(attr: Attr) -> bool:
    return attr.parent == 0


async def rename(
    m: Meta, ctx: Ctx, src_parent: int, src_name: bytes, dst_parent: int, dst_name: bytes, flags: int = 0
) -> tuple[int, Attr, int]:
    """Rename `src_parent/src_name` to `dst_parent/dst_name`; returns (ino, attr) of the moved inode and
    the inode that lost the name `dst_name` (0 if none; for RENAME_EXCHANGE the other inode).

    Errors: ENOENT, ENOTDIR, EISDIR, ENOTEMPTY, EEXIST (NOREPLACE), EINVAL (bad flags, own subtree, ``.``),
    EBUSY (root/trash), EACCES, EPERM (sticky bit, trash, immutable), ENAMETOOLONG.
    """
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT):
        raise FSError(errno.EINVAL)
    if flags & RENAME_WHITEOUT:
        raise FSError(errno.ENOTSUP, "RENAME_WHITEOUT is not supported")
    if flags & RENAME_NOREPLACE and flags & RENAME_EXCHANGE:
        raise FSError(errno.EINVAL)
    for name in (src_name, dst_name):
        if name in (b".", b".."):
            raise FSError(errno.EBUSY if name == b"." else errno.EINVAL)
    validate_name(dst_name)
    check_reserved(dst_parent, dst_name)
    exchange = bool(flags & RENAME_EXCHANGE)
    now = now_ns()
    left: tuple[Attr, Attr] | None = None  # (source, destination directory) as the commit left them
    guess: tuple[bytes, bytes, bytes, bytes] | None = None  # see `_guess`
    attempts = 0

    async def body(tx: Tx) -> tuple[int, Attr, int, Attr | None, str]:
        nonlocal left, attempts
        left = None
        attempts += 1
        assume = getattr(tx, "assume", None) if guess is not None and attempts == 1 else None
        raw_sd: bytes | None
        raw_dd: bytes | None
        raw_se: bytes | None
        raw_src: bytes | None
        if assume is not None and guess is not None:
            # What this client's last change left on the directories and what the kernel's LOOKUPs just
            # found (the source and its inode; no destination): validated by the commit instead of read
            # first. Wrong: a retry that reads (ADR 0086).
            raw_sd, raw_se, raw_src, raw_dd = guess
            raw_de = None
            assume(keys.attr(src_parent), raw_sd)
            if dst_parent != src_parent:
                assume(keys.attr(dst_parent), raw_dd)
            assume(keys.dentry(src_parent, src_name), raw_se)
            assume(keys.dentry(dst_parent, dst_name), None)
            assume(keys.attr(decode_dentry(raw_se)[1]), raw_src)
        else:
            raw_sd, raw_dd, raw_se, raw_de, raw_src = await tx.get_follow(
                [keys.attr(src_parent), keys.attr(dst_parent), keys.dentry(src_parent, src_name),
                 keys.dentry(dst_parent, dst_name)], store.entry_attr_pointer(2)
            )
        if raw_sd is None or raw_dd is None:
            raise FSError(errno.ENOENT)
        src_dir = Attr.decode(raw_sd)
        dst_dir = src_dir if src_parent == dst_parent else Attr.decode(raw_dd)
        if src_dir.typ is not FileType.DIRECTORY or dst_dir.typ is not FileType.DIRECTORY:
            raise FSError(errno.ENOTDIR)
        if raw_se is None:
            raise FSError(errno.ENOENT)
        src_typ, src_ino = decode_dentry(raw_se)
        if src_ino == TRASH_INODE or src_ino == ROOT_INODE:
            raise FSError(errno.EBUSY)
        check_dir_writable(ctx, src_parent, src_dir)
        if dst_parent != src_parent:
            check_dir_writable(ctx, dst_parent, dst_dir)
        src_attr = await store.followed_attr(tx, src_ino, raw_src)
        check_removable(ctx, src_dir, src_attr)
        moving_dir = src_typ is FileType.DIRECTORY
        victim_ino = 0
        victim: Attr | None = None
        if raw_de is not None:
            dst_typ, victim_ino = decode_dentry(raw_de)
            if victim_ino == src_ino:
                return src_ino, src_attr, 0, None, "none"  # two names of one inode: POSIX says do nothing
            if flags & RENAME_NOREPLACE:
                raise FSError(errno.EEXIST)
        elif exchange:
            raise FSError(errno.ENOENT)
        if moving_dir and src_parent != dst_parent:
            # Linux's order: EINVAL (into its own subtree) before any check of the target's type or contents.
            await _check_not_ancestor(tx, src_ino, dst_parent)
        if raw_de is not None:
            victim = await store.get_attr(tx, victim_ino)
            check_removable(ctx, dst_dir, victim)
            if exchange:
                swapped = await _exchange(
                    tx, ctx, src_parent, src_name, src_dir, src_ino, src_attr,
                    dst_parent, dst_name, dst_dir, victim_ino, victim, now,
                )
                await quota.move(  # QUOTA HOOK
                    m, tx, [(src_ino, src_attr, src_parent, dst_parent), (victim_ino, victim, dst_parent, src_parent)]
                )
                return swapped
            if moving_dir and dst_typ is not FileType.DIRECTORY:
                raise FSError(errno.ENOTDIR)
            if not moving_dir and dst_typ is FileType.DIRECTORY:
                raise FSError(errno.EISDIR)
            if dst_typ is FileType.DIRECTORY and not await store.dir_is_empty(tx, victim_ino):
                raise FSError(errno.ENOTEMPTY)
        if moving_dir and src_parent != dst_parent:
            check_perm(ctx, src_attr, MAY_WRITE)

        fate = "none"
        store.del_entry(tx, src_parent, src_name)
        store.put_entry(tx, dst_parent, dst_name, src_typ, src_ino)
        if victim is not None:
            await quota.charge(m, tx, dst_parent, -store.space_of(victim), -1)  # QUOTA HOOK
            if victim.typ is FileType.DIRECTORY:
                quota.forget(m, tx, victim_ino)  # QUOTA HOOK
            if victim.typ is FileType.DIRECTORY:
                dst_dir.nlink -= 1
                await delete_inode(tx, victim_ino, victim, now, m)
                victim.nlink = 0
                fate = "deleted"
            else:
                fate = await drop_name(m, tx, dst_parent, dst_name, victim_ino, victim, now)
        await quota.move(m, tx, [(src_ino, src_attr, src_parent, dst_parent)])  # QUOTA HOOK
        src_attr.ctime_ns = now
        if src_parent != dst_parent:
            if src_attr.parent == 0:
                await store.add_parent_ref(tx, src_ino, src_parent, -1)
                await store.add_parent_ref(tx, src_ino, dst_parent, 1)
            else:
                src_attr.parent = dst_parent
            if moving_dir:
                src_dir.nlink -= 1
                dst_dir.nlink += 1
        store.put_attr(tx, src_ino, src_attr)
        _touch_dirs(tx, src_parent, src_dir, dst_parent, dst_dir, now)
        left = src_dir, dst_dir
        return src_ino, src_attr, victim_ino, victim, fate

    guarded = errors_on_guesses_retried(body, lambda: guess is not None and attempts == 1, "rename")

    # As `Meta.txn_dirs`, with the guesses taken and the directories' records kept under the locks (as
    # `namespace.mknod` does).
    tails = m.tails
    async with m.locked(src_parent, dst_parent):
        guess = _guess(tails, src_parent, src_name, dst_parent, dst_name)
        tails.forget((src_parent, dst_parent))
        seq = m.own_dirs.begin(src_parent, dst_parent)
        ino, attr, victim_ino, victim, fate = await m.kv.txn(guarded)
        if guess is not None and attempts > 1:
            tails.missed_dir(src_parent)
        if left is not None:
            tails.keep_dir(src_parent, left[0].encode())
            if dst_parent != src_parent:
                tails.keep_dir(dst_parent, left[1].encode())
    if left is not None:
        m.own_dirs.wrote(src_parent, seq, left[0])
        if dst_parent != src_parent:
            m.own_dirs.wrote(dst_parent, seq, left[1])
    if victim is not None and fate != "none":
        await m.after_drop(victim_ino, victim, fate)
    return ino, attr, victim_ino


def _guess(tails: CommitTails, src_parent: int, src_name: bytes, dst_parent: int,
           dst_name: bytes) -> tuple[bytes, bytes, bytes, bytes] | None:
    """(source directory's record, source entry, its inode's record, destination directory's record) to
    assume, or None (read them): only when this client knows both directories' records (`take_dir`) and
    its last LOOKUPs found the source and found no destination (`take_name`). A destination that exists
    is never assumed away: replacing a file (the atomic-save pattern) reads as before."""
    src = tails.take_name(src_parent, src_name)
    dst = tails.take_name(dst_parent, dst_name)
    if not isinstance(src, tuple) or dst is not None:
        return None
    raw_sd = tails.take_dir(src_parent)
    raw_dd = raw_sd if dst_parent == src_parent else tails.take_dir(dst_parent)
    if raw_sd is None or raw_dd is None:
        return None
    raw_se, raw_src = src
    return raw_sd, raw_se, raw_src, raw_dd


def _touch_dirs(tx: Tx, src_parent: int, src_dir: Attr, dst_parent: int, dst_dir: Attr, now: int) -> None:
    """Both directories of a rename changed: their times move to `now` and they are written (once when
    they are the same directory)."""
    touch_parent(src_dir, now, force=True)
    store.put_attr(tx, src_parent, src_dir)
    if dst_parent != src_parent:
        touch_parent(dst_dir, now, force=True)
        store.put_attr(tx, dst_parent, dst_dir)


async def _exchange(
    tx: Tx, ctx: Ctx,
    src_parent: int, src_name: bytes, src_dir: Attr, src_ino: int, src_attr: Attr,
    dst_parent: int, dst_name: bytes, dst_dir: Attr, dst_ino: int, dst_attr: Attr, now: int,
) -> tuple[int, Attr, int, Attr | None, str]:
    """RENAME_EXCHANGE: swap the inodes behind two existing names atomically."""
    if src_parent != dst_parent:
        if src_attr.typ is FileType.DIRECTORY:
            await _check_not_ancestor(tx, src_ino, dst_parent)
            check_perm(ctx, src_attr, MAY_WRITE)
        if dst_attr.typ is FileType.DIRECTORY:
            await _check_not_ancestor(tx, dst_ino, src_parent)
            check_perm(ctx, dst_attr, MAY_WRITE)
    store.put_entry(tx, src_parent, src_name, dst_attr.typ, dst_ino)
    store.put_entry(tx, dst_parent, dst_name, src_attr.typ, src_ino)
    if src_parent != dst_parent:
        for ino, attr, old, new, ddir_old, ddir_new in (
            (src_ino, src_attr, src_parent, dst_parent, src_dir, dst_dir),
            (dst_ino, dst_attr, dst_parent, src_parent, dst_dir, src_dir),
        ):
            if attr.parent == 0:
                await store.add_parent_ref(tx, ino, old, -1)
                await store.add_parent_ref(tx, ino, new, 1)
            else:
                attr.parent = new
            if attr.typ is FileType.DIRECTORY:
                ddir_old.nlink -= 1
                ddir_new.nlink += 1
    src_attr.ctime_ns = now
    dst_attr.ctime_ns = now
    store.put_attr(tx, src_ino, src_attr)
    store.put_attr(tx, dst_ino, dst_attr)
    _touch_dirs(tx, src_parent, src_dir, dst_parent, dst_dir, now)
    return src_ino, src_attr, dst_ino, None, "none"

"""Removal of names: unlink, rmdir, and what happens to an inode when it loses a name.

An inode that loses its last name goes, in this order of preference: to the trash (trash days > 0, not
removed from a trash directory, no skip-trash flag); to the sustained set when this client still has it
open (data kept until the last close); or it is deleted — attributes, xattrs and symlink at once, file
data through a delfile marker processed in the background (see chunks.cleanup_file). Directories follow
the same rule in rmdir: an empty directory goes to the trash like a file (see trash.py), so a deleted
tree can be restored whole.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from jfs.app.meta import owner_quota, quota, store, trash
from jfs.app.meta.context import Ctx
from jfs.app.meta.rules import check_dir_writable, check_removable, now_ns, touch_parent
from jfs.domain import keys
from jfs.domain.attrs import FLAG_SKIP_TRASH, TRASH_INODE, Attr, FileType, is_trash_inode
from jfs.domain.errors import FSError
from jfs.domain.records import decode_dentry, encode_u64
from jfs.ports.kv import Tx

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta


async def unlink(m: Meta, ctx: Ctx, parent: int, name: bytes) -> tuple[int, Attr]:
    """Remove the non-directory `name` from `parent`; returns the victim's inode and attributes after it.

    Errors: ENOENT, ENOTDIR (parent), EISDIR (victim is a directory), EACCES, EPERM (sticky, immutable).
    """
    if name in (b".", b".."):
        raise FSError(errno.EISDIR if name == b"." else errno.ENOTEMPTY)
    now = now_ns()
    left: Attr | None = None

    async def body(tx: Tx) -> tuple[int, Attr, str]:
        nonlocal left
        dir_attr, ino, attr = await _victim(tx, ctx, parent, name, is_dir=False)
        store.del_entry(tx, parent, name)
        if touch_parent(dir_attr, now):
            store.put_attr(tx, parent, dir_attr)
        await quota.charge(m, tx, parent, -store.space_of(attr), -1)  # QUOTA HOOK
        fate = await drop_name(m, tx, parent, name, ino, attr, now)
        left = dir_attr
        return ino, attr, fate

    (ino, attr, fate), seq = await m.txn_dirs(body, parent)
    if left is not None:
        m.own_dirs.wrote(parent, seq, left)
    await m.after_drop(ino, attr, fate)
    return ino, attr


async def _victim(tx: Tx, ctx: Ctx, parent: int, name: bytes, *, is_dir: bool) -> tuple[Attr, int, Attr]:
    """(parent's attributes, inode, attributes) of the entry `name` of `parent` that `ctx` removes.

    Errors: ENOENT (parent or name), ENOTDIR (parent; the victim when `is_dir`), EISDIR (a directory
    when not `is_dir`), EBUSY (the trash), EACCES (parent not writable), EPERM (sticky, immutable).
    """
    raw_dir, raw_entry, raw_attr = await tx.get_follow(
        [keys.attr(parent), keys.dentry(parent, name)], store.entry_attr_pointer(1)
    )
    dir_attr = store.decode_dir(raw_dir, parent)
    if raw_entry is None:
        raise FSError(errno.ENOENT)
    typ, ino = decode_dentry(raw_entry)
    if is_dir:
        if typ is not FileType.DIRECTORY:
            raise FSError(errno.ENOTDIR)
        if ino == TRASH_INODE:
            raise FSError(errno.EBUSY)
    elif typ is FileType.DIRECTORY:
        raise FSError(errno.EISDIR)
    if not is_trash_inode(parent):
        check_dir_writable(ctx, parent, dir_attr)
    attr = await store.followed_attr(tx, ino, raw_attr)
    check_removable(ctx, dir_attr, attr)
    return dir_attr, ino, attr


async def drop_name(
    m: Meta, tx: Tx, parent: int, name: bytes, ino: int, attr: Attr, now: int, *, to_trash: bool = True
) -> str:
    """Account for `ino` having lost its name `name` in `parent` (dentry already deleted by the caller).

    Returns the inode's fate: "linked" (other names remain), "trash", "sustained" or "deleted".
    `attr` is updated in place to what POSIX callers see (nlink decremented). With `to_trash` False the
    trash is bypassed (the trash's own expiry, which removes files inside trashed directories).
    """
    if attr.nlink > 1:
        attr.nlink -= 1
        attr.ctime_ns = now
        if attr.parent == 0:
            await store.add_parent_ref(tx, ino, parent, -1)
        store.put_attr(tx, ino, attr)
        return "linked"
    if to_trash and goes_to_trash(m, parent, attr):
        kept = attr.copy()
        await trash.move_to_trash(tx, parent, name, ino, kept, now)
        attr.nlink = 0
        attr.ctime_ns = now
        return "trash"
    attr.nlink = 0
    attr.ctime_ns = now
    if attr.typ is FileType.REGULAR and m.is_open(ino):
        attr.parent = 0
        store.put_attr(tx, ino, attr)
        tx.put(keys.sustained(m.sid, ino), b"\x01")
        m.sustained.add(ino)  # (a retried or failed body leaves at most one needless check at close)
        return "sustained"
    await delete_inode(tx, ino, attr, now, m)
    return "deleted"


def goes_to_trash(m: Meta, parent: int, attr: Attr) -> bool:
    """Whether an inode losing its last name in `parent` is moved to the trash rather than deleted."""
    return m.settings.trash_days > 0 and not is_trash_inode(parent) and not attr.flags & FLAG_SKIP_TRASH


async def delete_inode(tx: Tx, ino: int, attr: Attr, now: int, m: Meta | None = None) -> None:
    """Remove an inode's records; file data is queued for deletion through a delfile marker. With the
    engine `m`, the inode's user/group usage is released too (`owner_quota`)."""
    await owner_quota.release_inode(m, tx, attr)  # QUOTA HOOK
    tx.delete(keys.attr(ino))
    # One range covers the parent counters (P), the symlink target (S) and the xattrs (X) of the inode:
    # deleted by the commit where the engine can (no round trip), else scanned and deleted key by key.
    begin, end = keys.parent_ref_prefix(ino), keys.prefix_end(keys.xattr_prefix(ino))
    delete_range = getattr(tx, "delete_range", None)
    if delete_range is not None:
        delete_range(begin, end)
    else:
        for key, _ in await tx.scan(begin, end, keys_only=True):
            tx.delete(key)
    if attr.typ is FileType.REGULAR and attr.length > 0:
        # length 0 implies no chunk records (truncate to 0 drops them all), so nothing to clean up.
        tx.put(keys.delfile(ino, attr.length), encode_u64(now // 1_000_000_000))
    elif attr.typ is FileType.DIRECTORY:
        tx.delete(keys.dir_stat(ino))
    store.charge(tx, -store.space_of(attr), -1)


async def rmdir(m: Meta, ctx: Ctx, parent: int, name: bytes) -> None:
    """Remove the empty directory `name` from `parent`: moved to the trash when `goes_to_trash` says so
    (it stays charged to the volume's usage; its own quota record, if any, goes with it), else deleted.

    Errors: ENOENT, ENOTDIR, ENOTEMPTY, EINVAL (``.``), EBUSY (root/trash), EACCES, EPERM.
    """
    if name == b".":
        raise FSError(errno.EINVAL)
    if name == b"..":
        raise FSError(errno.ENOTEMPTY)
    now = now_ns()
    attempts = 0
    left: Attr | None = None

    async def body(tx: Tx) -> bool:
        nonlocal attempts, left
        attempts += 1
        left = None
        dir_attr, ino, attr = await _victim(tx, ctx, parent, name, is_dir=True)
        assume_empty = getattr(tx, "assume_empty", None) if attempts == 1 else None
        if assume_empty is not None:
            # A directory is emptied before it is removed (rm -r): validated by the commit instead of
            # scanned first; a non-empty one fails validation and the retry scans (ENOTEMPTY).
            assume_empty(*store.dentry_range(ino))
        elif not await store.dir_is_empty(tx, ino):
            raise FSError(errno.ENOTEMPTY)
        store.del_entry(tx, parent, name)
        dir_attr.nlink -= 1
        touch_parent(dir_attr, now, force=True)
        store.put_attr(tx, parent, dir_attr)
        left = dir_attr
        await quota.charge(m, tx, parent, -store.space_of(attr), -1)  # QUOTA HOOK
        if goes_to_trash(m, parent, attr):
            await trash.move_to_trash(tx, parent, name, ino, attr, now)
            return False
        await delete_inode(tx, ino, attr, now, m)
        quota.forget(m, tx, ino)  # QUOTA HOOK
        return True

    # Every directory going to the trash rewrites the hour directory's nlink: one in-process queue for them
    # (TRASH_INODE's lock stripe) instead of conflicts and retries on optimistic engines.
    locks = (parent, TRASH_INODE) if m.settings.trash_days > 0 else (parent,)
    deleted, seq = await m.txn_dirs(body, *locks)
    if left is not None:
        m.own_dirs.wrote(parent, seq, left)
    if deleted:
        m.note_usage(-4096, -1)

"""The trash and delayed-deletion jobs the engine runs: expiry of old hour directories (one mount's
background job, elected hourly; also `gc --delete`), and release of the compacted slices held back for the
trash.

Expiry (`purge_trash`): hour directories whose hour began more than ``24 × TrashDays + 2`` hours ago are
emptied, trashed directories recursively, through the normal deletion path (attributes removed, a delfile
marker per file with data, then its slices released and their blocks deleted by the engine's free hook;
a trashed directory's quota record with it) and removed. Compacted slices held back for the trash (``L``
records, written by JuiceFS when trash is on) older than ``TrashDays`` are released as well. With
``TrashDays = 0`` whatever is left in the trash expires after the 2-hour grace. One mount runs it per
hour: `purge_trash_if_elected` wins the ``lastCleanupTrash`` election first. The layout is in
`jfs.app.meta.trash`.

Safe to run concurrently with mounts (expired hours receive no new entries) and to interrupt (the next run
continues); KV errors propagate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from jfs.app.meta import chunks, owner_quota, quota, reader, store
from jfs.app.meta.remove import delete_inode, drop_name
from jfs.app.meta.sessions import try_elect
from jfs.app.meta.trash import HOUR_DIR_SPACE, hour_dirs, hour_start
from jfs.domain import keys
from jfs.domain.attrs import TRASH_INODE, Attr, FileType
from jfs.domain.records import decode_delayed, decode_dentry
from jfs.ports.kv import Tx

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

log = structlog.get_logger("jfs.trash")

GRACE_HOURS = 2
"""Hours an hour directory is kept beyond TrashDays (as JuiceFS does)."""
ELECTION_INTERVAL = 3600 * 0.9
PURGE_BATCH = 256
"""Entries removed per transaction."""
CLEANUP_CONCURRENCY = 8
"""Files whose data is released at the same time."""


async def purge_trash_if_elected(meta: Meta, now: float | None = None) -> int:
    """The hourly job: purge expired trash if this client wins the ``lastCleanupTrash`` election."""
    if not await try_elect(meta, keys.LAST_CLEANUP_TRASH, ELECTION_INTERVAL):
        return 0
    return await purge_trash(meta, now)


async def purge_trash(meta: Meta, now: float | None = None) -> int:
    """Empty and remove every expired hour directory; returns how many entries were purged.

    `now` is unix seconds (default: the current time). Each purged file goes through the normal deletion
    path; its blocks are deleted by `meta.free_hook` (without a hook they stay pending for gc). Hour
    directories whose names are not ``YYYY-MM-DD-HH`` are left alone. Safe to run concurrently with mounts
    (expired hours receive no new entries) and to interrupt (the next run continues).
    """
    now = time.time() if now is None else now
    days = meta.settings.trash_days
    edge = now - (24 * days + GRACE_HOURS) * 3600
    purged = 0
    for name, hour_ino in await hour_dirs(meta.kv):
        start = hour_start(name)
        if start is None or start >= edge:
            continue
        n = await _empty_dir(meta, hour_ino)
        removed = await remove_hour_dir(meta, name, hour_ino)
        purged += n
        log.info("trash_hour_purged", hour=name.decode(errors="replace"), entries=n, removed=removed)
    released = await _release_delayed(meta, now - days * 86400)
    if purged or released:
        log.info("trash_purged", entries=purged, delayed_slices=released)
    return purged


async def _empty_dir(meta: Meta, dir_ino: int) -> int:
    """Delete everything below `dir_ino` (a directory in the trash); returns how many entries went."""
    total = 0
    while rows := await reader.dir_page(meta.kv, dir_ino, limit=PURGE_BATCH):
        for _, typ, ino in rows:
            if typ is FileType.DIRECTORY:
                total += await _empty_dir(meta, ino)
        try:
            done = await meta.kv.txn(_remover(meta, dir_ino, rows, time.time_ns()))
        except _NotEmpty as exc:  # a directory in the trash gained entries meanwhile: empty it again
            log.info("trash_dir_refilled", ino=exc.ino)
            continue
        total += len(done)
        await _release_files(meta, done)
    return total


def _remover(
    meta: Meta, dir_ino: int, rows: list[tuple[bytes, FileType, int]], now: int
) -> Callable[[Tx], Awaitable[list[tuple[int, Attr, str]]]]:
    """A transaction body removing the entries `rows` of trash directory `dir_ino`; it returns
    (ino, attributes, fate) per removed entry (fate as `drop_name`: "deleted", "linked", "sustained")."""

    async def body(tx: Tx) -> list[tuple[int, Attr, str]]:
        done: list[tuple[int, Attr, str]] = []
        dir_raw = await tx.get(keys.attr(dir_ino))
        dir_attr = Attr.decode(dir_raw) if dir_raw is not None else None
        for name, _, ino in rows:
            raw = await tx.get(keys.dentry(dir_ino, name))
            if raw is None or decode_dentry(raw)[1] != ino:
                continue
            attr_raw = await tx.get(keys.attr(ino))
            store.del_entry(tx, dir_ino, name)
            if attr_raw is None:
                continue  # a dangling entry: nothing else to remove
            attr = Attr.decode(attr_raw)
            if attr.typ is FileType.DIRECTORY:
                if not await store.dir_is_empty(tx, ino):
                    raise _NotEmpty(ino)
                if dir_attr is not None:
                    dir_attr.nlink -= 1
                await delete_inode(tx, ino, attr, now, meta)
                quota.forget(meta, tx, ino)  # QUOTA HOOK (a trashed directory keeps its record until now)
                attr.nlink = 0
                done.append((ino, attr, "deleted"))
            else:  # (inside a trashed directory `dir_ino` is no trash inode: bypass the trash explicitly)
                done.append((ino, attr, await drop_name(meta, tx, dir_ino, name, ino, attr, now, to_trash=False)))
        if dir_attr is not None:
            store.put_attr(tx, dir_ino, dir_attr)
        return done

    return body


class _NotEmpty(Exception):
    def __init__(self, ino: int) -> None:
        super().__init__(f"directory {ino} is not empty")
        self.ino = ino


async def _release_files(meta: Meta, done: list[tuple[int, Attr, str]]) -> None:
    """Account for deleted inodes and release the data of deleted files (bounded concurrency)."""
    slots = asyncio.Semaphore(CLEANUP_CONCURRENCY)

    async def one(ino: int, attr: Attr) -> None:
        async with slots:
            await meta.cleanup_file(ino, attr.length)

    jobs = []
    for ino, attr, fate in done:
        if fate == "sustained":
            await meta.after_drop(ino, attr, fate)
        if fate != "deleted":
            continue
        meta.note_usage(-store.space_of(attr), -1)
        if attr.typ is FileType.REGULAR and attr.length > 0:
            jobs.append(one(ino, attr))
    await asyncio.gather(*jobs)


async def remove_hour_dir(meta: Meta, name: bytes, hour_ino: int) -> bool:
    """Remove the emptied hour directory `name` and release its charge (meta/trash.py); False if it is not
    empty or no longer the entry `name` of the trash root. A trash root with nlink above 2 comes from an
    earlier jfs, which counted its hour directories there and charged them nothing: such a purge lowers the
    nlink instead of releasing a charge."""

    async def body(tx: Tx) -> bool:
        raw = await tx.get(keys.dentry(TRASH_INODE, name))
        if raw is None or decode_dentry(raw)[1] != hour_ino:
            return False
        if not await store.dir_is_empty(tx, hour_ino):
            return False
        store.del_entry(tx, TRASH_INODE, name)
        hour_raw = await tx.get(keys.attr(hour_ino))
        if hour_raw is not None:
            await owner_quota.charge_recorded(tx, Attr.decode(hour_raw), -1)  # QUOTA HOOK
        tx.delete(keys.attr(hour_ino))
        tx.delete(keys.dir_stat(hour_ino))
        root_raw = await tx.get(keys.attr(TRASH_INODE))
        root = Attr.decode(root_raw) if root_raw is not None else None
        if root is not None and root.nlink > 2:
            root.nlink -= 1
            store.put_attr(tx, TRASH_INODE, root)
        else:
            store.charge(tx, -HOUR_DIR_SPACE, -1)
        return True

    return await meta.kv.txn(body)


async def _release_delayed(meta: Meta, before: float) -> int:
    """Release the compacted slices held for the trash (``L`` records) stored before `before` (unix s)."""
    end = keys.delayed_slices(max(0, int(before)), 0)

    async def listing(tx: Tx) -> list[bytes]:
        return [k for k, _ in await tx.scan(keys.DELAYED_PREFIX, end, keys_only=True) if len(k) == 17]

    released = 0
    for key in await meta.kv.read(listing):

        async def body(tx: Tx, key: bytes = key) -> list[tuple[int, int]]:
            raw = await tx.get(key)
            if raw is None:
                return []
            tx.delete(key)
            return await chunks.release(tx, decode_delayed(raw))

        freed = await meta.kv.txn(body)
        released += len(freed)
        await meta.free_slices(freed)
    return released

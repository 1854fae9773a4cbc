"""The restore transaction: trash entries moved back under their original names, in one transaction per
batch, with the quota hooks of a rename. The planning of ``jfs restore`` (which hours, in what order, where
each entry belongs, the report) is `jfs.app.ops.restore`, a client of this module; the layout is
`jfs.app.meta.trash`.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jfs.app.meta import quota, store
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, Attr, FileType, is_trash_inode
from jfs.domain.errors import FSError
from jfs.domain.records import decode_dentry
from jfs.ports.kv import Tx

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

MAX_DEPTH = 4096
"""Ancestors followed when deciding whether a directory is in the live tree."""

RESTORED = "restored"
REBUILT = "rebuilt"
IN_TRASH = "in-trash"


@dataclass
class TrashEntry:
    """One entry of an hour directory, as `move_back` moves it (callers may subclass it to carry more)."""

    hour_ino: int
    entry: bytes
    """Its name in the hour directory (``<parent>-<ino>-<name>``)."""
    ino: int
    name: bytes
    """The original name it goes back under."""


async def move_back(meta: Meta, dest: int, batch: Sequence[TrashEntry], mode: str) -> list[str]:
    """Move the trash entries `batch` into directory `dest` under their original names, in one
    transaction (`mode`: ``put`` into the live tree, ``rebuild`` inside the trash, ``check`` only looks);
    returns one status per entry (`RESTORED`, `REBUILT`, `IN_TRASH`, or a failure: ``parent-gone``,
    ``parent-in-trash``, ``changed``, ``exists``, ``over-quota``, ``too-big``). A batch refused by a quota
    is retried entry by entry. Every move is charged to the quotas of its new place."""
    meta.own_dirs.forget(dest)  # its entries change outside `Meta.txn`
    try:
        return await meta.kv.txn(_mover(meta, dest, batch, mode, time.time_ns()))
    except FSError as exc:
        if len(batch) > 1:
            return [s for e in batch for s in await move_back(meta, dest, [e], mode)]
        return ["over-quota" if exc.errno == errno.EDQUOT else "too-big"]
    finally:
        meta.own_dirs.forget(dest)


def _mover(meta: Meta, dest: int, batch: Sequence[TrashEntry], mode: str, now: int) -> Callable[[Tx], Awaitable[list[str]]]:
    n = len(batch)

    async def body(tx: Tx) -> list[str]:
        raw_dir = await tx.get(keys.attr(dest))
        dir_attr = Attr.decode(raw_dir) if raw_dir is not None else None
        if dir_attr is None or dir_attr.typ is not FileType.DIRECTORY:
            return ["parent-gone"] * n
        if mode != "rebuild":
            where = "live" if dest == ROOT_INODE else "trash" if is_trash_inode(dest) else await _whereabouts(
                tx, dir_attr)
            if where != "live":
                return ["parent-in-trash" if where == "trash" else "parent-gone"] * n
        raws = await tx.get_many(
            [keys.dentry(e.hour_ino, e.entry) for e in batch] + [keys.attr(e.ino) for e in batch]
            + [keys.dentry(dest, e.name) for e in batch]
        )  # fmt: skip
        hour_inos = sorted({e.hour_ino for e in batch})
        hour_attrs = {h: Attr.decode(r) for h, r in zip(hour_inos, await tx.get_many(
            [keys.attr(h) for h in hour_inos]), strict=True) if r is not None}  # fmt: skip
        statuses: list[str] = []
        taken: set[bytes] = set()
        moves: list[tuple[int, Attr, int, int]] = []
        for i, e in enumerate(batch):
            raw_entry, raw_attr, raw_dst = raws[i], raws[n + i], raws[2 * n + i]
            if raw_entry is None or decode_dentry(raw_entry)[1] != e.ino or raw_attr is None:
                statuses.append("changed")
                continue
            if raw_dst is not None or e.name in taken:
                statuses.append("exists")
                continue
            taken.add(e.name)
            if mode == "check":
                statuses.append(IN_TRASH)
                continue
            attr = Attr.decode(raw_attr)
            store.del_entry(tx, e.hour_ino, e.entry)
            store.put_entry(tx, dest, e.name, attr.typ, e.ino)
            if attr.parent == 0:  # hard-linked (JuiceFS keeps every name's counter): per-parent counters
                await store.add_parent_ref(tx, e.ino, e.hour_ino, -1)
                await store.add_parent_ref(tx, e.ino, dest, 1)
            else:
                attr.parent = dest
            attr.ctime_ns = now
            store.put_attr(tx, e.ino, attr)
            hour_attr = hour_attrs.get(e.hour_ino)
            if hour_attr is not None:
                hour_attr.mtime_ns = hour_attr.ctime_ns = now
                if attr.typ is FileType.DIRECTORY:
                    hour_attr.nlink -= 1
            if attr.typ is FileType.DIRECTORY:
                dir_attr.nlink += 1
            moves.append((e.ino, attr, e.hour_ino, dest))
            statuses.append(REBUILT if mode == "rebuild" else RESTORED)
        if moves:
            await quota.move(meta, tx, moves)  # QUOTA HOOK: the trash is under no quota; `dest` may be
            dir_attr.mtime_ns = dir_attr.ctime_ns = now
            store.put_attr(tx, dest, dir_attr)
            for h, hour_attr in hour_attrs.items():
                store.put_attr(tx, h, hour_attr)
        return statuses

    return body


async def _whereabouts(tx: Tx, attr: Attr) -> str:
    """Where the directory with attributes `attr` is: ``live`` (its ancestors lead to the root),
    ``trash`` (they lead into the trash) or ``gone`` (an ancestor is missing)."""
    cur = attr.parent
    for _ in range(MAX_DEPTH):
        if cur == ROOT_INODE:
            return "live"
        if is_trash_inode(cur):
            return "trash"
        raw = await tx.get(keys.attr(cur)) if cur else None
        if raw is None:
            return "gone"
        cur = Attr.decode(raw).parent
    return "gone"

"""``jfs restore``: put the entries of trash hour directories back where they were, as a client of the
metadata engine (following ``juicefs restore``).

The entries of the given hour directories are taken together; directories go first, parents before
children, then the files. An entry whose original parent is a trashed directory among them follows that
parent: into it in the live tree when the parent was put back, else into it inside the trash (rebuilding
the tree there, whole, for a later put-back). With ``put_back`` every other entry goes back to its original
parent under its original name; one whose name is taken, whose parent is gone or in the trash, or which a
quota refuses, stays in the trash and is reported. Without ``put_back`` only the rebuild inside the trash
happens, and the result says where each remaining entry would go.

The trash layout is `jfs.app.meta.trash`; each batch of moves is one transaction of the engine
(`jfs.app.meta.trash_restore.move_back`); paths come from the engine's reader (`jfs.app.meta.reader`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import structlog

from jfs.app.errors import RestoreError
from jfs.app.meta import reader
from jfs.app.meta.trash import parse_entry_name
from jfs.app.meta.trash_restore import IN_TRASH, REBUILT, RESTORED, TrashEntry, move_back
from jfs.domain.attrs import TRASH_INODE, FileType

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

log = structlog.get_logger("jfs.trash")

__all__ = ["FAILURES", "IN_TRASH", "REBUILT", "RESTORED", "RestoreError", "RestoreItem", "restore_hours"]


RESTORE_BATCH = 256
"""Entries moved into one directory per transaction."""
MAX_DEPTH = 4096
"""Depth of trashed directories inside each other beyond which the order of put-backs stops mattering."""
FAILURES = {
    "exists": "name taken",
    "parent-gone": "original directory gone",
    "parent-in-trash": "original directory is in the trash (restore its hour too)",
    "changed": "changed meanwhile",
    "bad-name": "not a <parent>-<inode>-<name> trash entry",
    "over-quota": "over the quota of the original directory",
    "too-big": "too big to charge to the quotas of the original directory in one step",
}
"""Statuses of entries that could not go where they belong, with what each means for a person."""


@dataclass
class RestoreItem:
    """What `restore_hours` did (or would do) with one entry of an hour directory."""

    entry: str
    """Its name in the hour directory."""
    ino: int
    parent: int
    """The original parent directory (0 when the entry name does not say)."""
    name: str
    """The original name."""
    status: str
    """``restored`` (put back), ``rebuilt`` (moved into its trashed parent directory, inside the trash),
    ``in-trash`` (left there: no --put-back), or one of `FAILURES`."""
    target: str
    """Its original path (a path, or ``<inode N>/name`` when the parent has no path)."""
    hour: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Entry(TrashEntry):
    typ: FileType
    parent: int
    item: RestoreItem


async def restore_hours(
    meta: Meta, hours: list[str], *, put_back: bool, on_item: Callable[[RestoreItem], None] | None = None
) -> dict[str, list[RestoreItem]]:
    """Restore the entries of the trash hour directories `hours`, taken together (a tree removed across
    an hour boundary is rebuilt when both hours are given); returns hour → one item per entry, in name order.

    Directories are handled first, parents before children (by the parent inode in each entry name), then
    everything else. An entry whose original parent is a directory among the entries goes into it: back
    into the live tree when that parent was put back, else into it inside the trash (``rebuilt``), so the
    tree stays whole for a later put-back. Any other entry goes back to its original parent with
    `put_back` (``restored``, unless the name is taken, the parent is gone or is in the trash, or a quota
    refuses it: it then stays in the trash), and is only checked without it. Every move is charged to the
    quotas of its new place. Raises RestoreError, before changing anything, when an hour does not exist.
    """
    hours = list(dict.fromkeys(hours))
    kv = meta.kv

    found = [await reader.lookup_entry(kv, TRASH_INODE, h.encode()) for h in hours]
    missing = [h for h, hit in zip(hours, found, strict=True) if hit is None]
    if missing:
        raise RestoreError(f"no trash directory '{missing[0]}' (see .trash/ for the hours present)")
    result: dict[str, list[RestoreItem]] = {}
    entries: list[_Entry] = []
    for hour, hit in zip(hours, found, strict=True):
        assert hit is not None
        hour_ino = hit[1]
        result[hour] = []
        for entry, typ, ino in await reader.dir_entries(kv, hour_ino):
            parsed = parse_entry_name(entry)
            text = entry.decode(errors="replace")
            if parsed is None or parsed[1] != ino:
                item = RestoreItem(text, ino, 0, "", "bad-name", "", hour)
                result[hour].append(item)
                if on_item is not None:
                    on_item(item)
                continue
            item = RestoreItem(text, ino, parsed[0], parsed[2].decode(errors="replace"), "", "", hour)
            result[hour].append(item)
            entries.append(_Entry(hour_ino, entry, ino, parsed[2], typ, parsed[0], item))
    trashed = {e.ino: e for e in entries if e.typ is FileType.DIRECTORY}
    depth = _depths(entries, trashed)
    paths = reader.PathCache(kv)
    for e in sorted(entries, key=lambda e: depth[e.ino] if e.typ is FileType.DIRECTORY else MAX_DEPTH + 1):
        if e.parent in trashed:
            base = trashed[e.parent].item.target
        else:
            base = (await paths.dir_path(e.parent)).rstrip("/")
        e.item.target = f"{base}/{e.item.name}"

    # Stages: directories by depth, then the rest; inside a stage, batches into one directory.
    top = max((depth[e.ino] for e in entries if e.typ is FileType.DIRECTORY), default=-1)
    stages: list[list[_Entry]] = [[] for _ in range(top + 2)]
    for e in entries:
        stages[depth[e.ino] if e.typ is FileType.DIRECTORY else top + 1].append(e)
    for stage in stages:
        groups: dict[tuple[int, str], list[_Entry]] = {}
        for e in stage:
            parent = trashed.get(e.parent)
            if parent is None:
                mode = "put" if put_back else "check"
            else:
                mode = "put" if put_back and parent.item.status == RESTORED else "rebuild"
            groups.setdefault((e.parent, mode), []).append(e)
        for (dest, mode), group in groups.items():
            for i in range(0, len(group), RESTORE_BATCH):
                batch = group[i : i + RESTORE_BATCH]
                for e, status in zip(batch, await move_back(meta, dest, batch, mode), strict=True):
                    e.item.status = status
                    if on_item is not None:
                        on_item(e.item)
    for items in result.values():
        items.sort(key=lambda i: i.entry)
    every = [i for items in result.values() for i in items]
    log.info("trash_restored", hours=hours, entries=len(every), put_back=put_back,
             restored=sum(1 for i in every if i.status in (RESTORED, REBUILT)))  # fmt: skip
    return result


def _depths(entries: list[_Entry], trashed: dict[int, _Entry]) -> dict[int, int]:
    """Per entry inode: 0, or for a directory 1 + the depth of its parent when that is a trashed
    directory too (the order in which directories are put back: parents first)."""
    depth: dict[int, int] = {}
    for e in entries:
        if e.ino in depth:
            continue
        chain: list[int] = []
        cur: _Entry | None = e
        while cur is not None and cur.ino not in depth and cur.ino not in chain and len(chain) < MAX_DEPTH:
            chain.append(cur.ino)
            cur = trashed.get(cur.parent) if cur.typ is FileType.DIRECTORY else None
        base = depth[cur.ino] + 1 if cur is not None and cur.ino in depth else 0
        for ino in reversed(chain):
            depth[ino] = base
            base += 1
    return depth

"""Trash maintenance: expiry of old hour directories (a background job of one mount, and `gc --delete`)
and `jfs restore`.

Layout (see jfs/app/meta/trash.py): a removed file or directory ``name`` of directory ``parent`` lives in
``.trash/<YYYY-MM-DD-HH>/<parent>-<ino>-<name>`` (UTC hour of the removal), its attribute ``parent`` set to
that hour directory. A removed tree (``rm -rf``, ``jfs rmr``: files unlinked, then the emptied
directories removed) lies flat in the hour directory, each entry named after its original parent's inode;
a tree rebuilt by a restore without ``--put-back`` lies inside its trashed top directory. Hour directories
are not charged to the volume's counters; everything in them still is, until it is purged.

Expiry (`purge_trash`): hour directories whose hour began more than ``24 × TrashDays + 2`` hours ago are
emptied, trashed directories recursively, through the normal deletion path (attributes removed, a delfile
marker per file with data, then its slices released and their blocks deleted by the engine's free hook;
a trashed directory's quota record with it) and removed. Compacted slices held back for the trash (``L``
records, written by JuiceFS when trash is on) older than ``TrashDays`` are released as well. With
``TrashDays = 0`` whatever is left in the trash expires after the 2-hour grace. One mount runs it per
hour: `purge_trash_if_elected` wins the ``lastCleanupTrash`` election first.

Restore (`restore_hours`), following ``juicefs restore``: the entries of the given hour directories are
taken together; directories go first, parents before children, then the files. An entry whose original
parent is a trashed directory among them follows that parent: into it in the live tree when the parent
was put back, else into it inside the trash (rebuilding the tree there, whole, for a later put-back).
With ``put_back`` every other entry goes back to its original parent under its original name; one whose
name is taken, whose parent is gone or in the trash, or which a quota refuses, stays in the trash and is
reported. Without ``put_back`` only the rebuild inside the trash happens, and the result says where each
remaining entry would go.
"""

from __future__ import annotations

import asyncio
import calendar
import errno
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import structlog

from jfs.app.errors import RestoreError
from jfs.app.meta import chunks, quota, store
from jfs.app.meta.remove import delete_inode, drop_name
from jfs.app.meta.sessions import try_elect
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, Attr, FileType, is_trash_inode
from jfs.domain.errors import FSError
from jfs.domain.records import decode_delayed, decode_dentry
from jfs.ports.kv import KV, Tx

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


def hour_start(name: bytes) -> int | None:
    """Unix time at which the hour named ``YYYY-MM-DD-HH`` (UTC) began; None for any other name."""
    try:
        text = name.decode("ascii")
        if len(text) != 13:
            return None
        return calendar.timegm(time.strptime(text, "%Y-%m-%d-%H"))
    except (UnicodeDecodeError, ValueError):
        return None


def parse_entry_name(name: bytes) -> tuple[int, int, bytes] | None:
    """(original parent, inode, original name) of a trash entry ``<parent>-<ino>-<name>``, else None."""
    parts = name.split(b"-", 2)
    if len(parts) != 3 or not parts[2] or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), parts[2]


async def hour_dirs(kv: KV) -> list[tuple[bytes, int]]:
    """(name, inode) of every directory in the trash root, in name order."""
    prefix = keys.dentry_prefix(TRASH_INODE)

    async def body(tx: Tx) -> list[tuple[bytes, int]]:
        rows = await tx.scan(prefix, keys.prefix_end(prefix))
        out = []
        for key, value in rows:
            typ, ino = decode_dentry(value)
            if typ is FileType.DIRECTORY:
                out.append((key[len(prefix) :], ino))
        return out

    return await kv.read(body)


async def trash_inodes(kv: KV) -> set[int]:
    """Every inode below the trash root (files and directories, the hour directories excluded)."""
    found: set[int] = set()
    todo = [ino for _, ino in await hour_dirs(kv)]
    while todo:
        parent = todo.pop()
        prefix = keys.dentry_prefix(parent)

        async def body(tx: Tx, prefix: bytes = prefix) -> list[tuple[FileType, int]]:
            return [decode_dentry(v) async for _, v in tx.scan_iter(prefix, keys.prefix_end(prefix))]

        for typ, ino in await kv.read(body):
            if ino not in found:
                found.add(ino)
                if typ is FileType.DIRECTORY:
                    todo.append(ino)
    return found


# ---------------------------------------------------------------------------------------------- expiry


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
        removed = await _remove_hour_dir(meta, name, hour_ino)
        purged += n
        log.info("trash_hour_purged", hour=name.decode(errors="replace"), entries=n, removed=removed)
    released = await _release_delayed(meta, now - days * 86400)
    if purged or released:
        log.info("trash_purged", entries=purged, delayed_slices=released)
    return purged


async def _empty_dir(meta: Meta, dir_ino: int) -> int:
    """Delete everything below `dir_ino` (a directory in the trash); returns how many entries went."""
    prefix = keys.dentry_prefix(dir_ino)

    async def page(tx: Tx) -> list[tuple[bytes, FileType, int]]:
        rows = await tx.scan(prefix, keys.prefix_end(prefix), limit=PURGE_BATCH)
        return [(k[len(prefix) :], *decode_dentry(v)) for k, v in rows]

    total = 0
    while rows := await meta.kv.read(page):
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
                await delete_inode(tx, ino, attr, now)
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


async def _remove_hour_dir(meta: Meta, name: bytes, hour_ino: int) -> bool:
    """Remove an emptied hour directory (never charged to the counters); False if it is not empty."""

    async def body(tx: Tx) -> bool:
        raw = await tx.get(keys.dentry(TRASH_INODE, name))
        if raw is None or decode_dentry(raw)[1] != hour_ino:
            return False
        if not await store.dir_is_empty(tx, hour_ino):
            return False
        store.del_entry(tx, TRASH_INODE, name)
        tx.delete(keys.attr(hour_ino))
        tx.delete(keys.dir_stat(hour_ino))
        root_raw = await tx.get(keys.attr(TRASH_INODE))
        if root_raw is not None:
            root = Attr.decode(root_raw)
            root.nlink = max(2, root.nlink - 1)
            store.put_attr(tx, TRASH_INODE, root)
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


# --------------------------------------------------------------------------------------------- restore

RESTORE_BATCH = 256
"""Entries moved into one directory per transaction."""
MAX_DEPTH = 4096
"""Ancestors followed when deciding whether a directory is in the live tree."""

RESTORED = "restored"
REBUILT = "rebuilt"
IN_TRASH = "in-trash"
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
class _Entry:
    hour_ino: int
    entry: bytes
    typ: FileType
    ino: int
    parent: int
    name: bytes
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

    async def find(tx: Tx) -> list[bytes | None]:
        return await tx.get_many([keys.dentry(TRASH_INODE, h.encode()) for h in hours])

    found = await kv.read(find)
    missing = [h for h, raw in zip(hours, found, strict=True) if raw is None]
    if missing:
        raise RestoreError(f"no trash directory '{missing[0]}' (see .trash/ for the hours present)")
    result: dict[str, list[RestoreItem]] = {}
    entries: list[_Entry] = []
    for hour, raw in zip(hours, found, strict=True):
        assert raw is not None
        hour_ino = decode_dentry(raw)[1]
        result[hour] = []
        for entry, typ, ino in await _listing(kv, hour_ino):
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
            entries.append(_Entry(hour_ino, entry, typ, ino, parsed[0], parsed[2], item))
    trashed = {e.ino: e for e in entries if e.typ is FileType.DIRECTORY}
    depth = _depths(entries, trashed)
    paths = _PathCache(kv)
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
                for e, status in zip(batch, await _move_batch(meta, dest, batch, mode), strict=True):
                    e.item.status = status
                    if on_item is not None:
                        on_item(e.item)
    for items in result.values():
        items.sort(key=lambda i: i.entry)
    every = [i for items in result.values() for i in items]
    log.info("trash_restored", hours=hours, entries=len(every), put_back=put_back,
             restored=sum(1 for i in every if i.status in (RESTORED, REBUILT)))  # fmt: skip
    return result


async def _listing(kv: KV, hour_ino: int) -> list[tuple[bytes, FileType, int]]:
    prefix = keys.dentry_prefix(hour_ino)

    async def body(tx: Tx) -> list[tuple[bytes, FileType, int]]:
        return [
            (k[len(prefix) :], *decode_dentry(v)) async for k, v in tx.scan_iter(prefix, keys.prefix_end(prefix))
        ]

    return await kv.read(body)


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


async def _move_batch(meta: Meta, dest: int, batch: list[_Entry], mode: str) -> list[str]:
    """Move the trash entries `batch` into directory `dest` under their original names, in one
    transaction (`mode`: ``put`` into the live tree, ``rebuild`` inside the trash, ``check`` only looks);
    returns one status per entry. A batch refused by a quota is retried entry by entry."""
    try:
        return await meta.kv.txn(_mover(meta, dest, batch, mode, time.time_ns()))
    except FSError as exc:
        if len(batch) > 1:
            return [s for e in batch for s in await _move_batch(meta, dest, [e], mode)]
        return ["over-quota" if exc.errno == errno.EDQUOT else "too-big"]


def _mover(meta: Meta, dest: int, batch: list[_Entry], mode: str, now: int) -> Callable[[Tx], Awaitable[list[str]]]:
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


class _PathCache:
    """Paths of directories, found by walking attribute parents and looking names up in their parents."""

    def __init__(self, kv: KV) -> None:
        self.kv = kv
        self.known: dict[int, str] = {ROOT_INODE: "/", TRASH_INODE: "/.trash"}

    async def dir_path(self, ino: int) -> str:
        """The path of directory `ino`, or ``<inode N>`` when it has none (gone, or detached)."""
        chain: list[tuple[int, int, bytes]] = []
        cur = ino
        while cur not in self.known:
            found = await self._name(cur)
            if found is None or len(chain) > 4096 or any(c == cur for c, _, _ in chain):
                self.known[ino] = f"<inode {ino}>"
                return self.known[ino]
            chain.append((cur, *found))
            cur = found[0]
        for child, parent, name in reversed(chain):
            base = self.known[parent].rstrip("/")
            self.known[child] = f"{base}/{name.decode(errors='replace')}"
        return self.known[ino]

    async def _name(self, ino: int) -> tuple[int, bytes] | None:
        """(parent, name) of one dentry of `ino`, or None."""

        async def body(tx: Tx) -> tuple[int, bytes] | None:
            raw = await tx.get(keys.attr(ino))
            if raw is None:
                return None
            parent = Attr.decode(raw).parent
            if parent == 0:
                refs = await store.parent_refs(tx, ino)
                parent = min(refs) if refs else 0
            if parent == 0:
                return None
            prefix = keys.dentry_prefix(parent)
            async for key, value in tx.scan_iter(prefix, keys.prefix_end(prefix)):
                if decode_dentry(value)[1] == ino:
                    return parent, key[len(prefix) :]
            return None

        return await self.kv.read(body)

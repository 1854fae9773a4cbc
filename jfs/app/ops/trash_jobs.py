"""Trash maintenance: expiry of old hour directories (a background job of one mount, and `gc --delete`)
and `jfs restore`.

Layout (see jfs/app/meta/trash.py): a removed file ``name`` of directory ``parent`` lives in
``.trash/<YYYY-MM-DD-HH>/<parent>-<ino>-<name>`` (UTC hour of the removal), its attribute ``parent`` set to
that hour directory. Hour directories are not charged to the volume's counters; the files in them still
are, until they are purged.

Expiry (`purge_trash`): hour directories whose hour began more than ``24 × TrashDays + 2`` hours ago are
emptied through the normal deletion path (attributes removed, a delfile marker per file with data, then
its slices released and their blocks deleted by the engine's free hook) and removed. Compacted slices held
back for the trash (``L`` records, written by JuiceFS when trash is on) older than ``TrashDays`` are
released as well. With ``TrashDays = 0`` whatever is left in the trash expires after the 2-hour grace.
One mount runs it per hour: `purge_trash_if_elected` wins the ``lastCleanupTrash`` election first.

Restore (`restore_hour`), following ``juicefs restore``: entries of an hour directory whose original parent
is itself a directory in that same hour directory are moved back into it under their original name,
rebuilding the deleted tree inside the trash. With ``put_back`` every entry whose original parent still
exists outside the trash is moved back there under its original name; an entry whose name is taken, or
whose parent is gone, stays in the trash and is reported. Without ``put_back`` nothing leaves the trash:
the result lists where each entry would go. jfs itself never moves directories to the trash (rmdir deletes
empty directories), so the tree rebuild only matters for volumes written by JuiceFS.
"""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import structlog

from jfs.app.meta import chunks, store
from jfs.app.meta.remove import delete_inode, drop_name
from jfs.app.meta.sessions import try_elect
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, Attr, FileType, is_trash_inode
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
                attr.nlink = 0
                done.append((ino, attr, "deleted"))
            else:
                done.append((ino, attr, await drop_name(meta, tx, dir_ino, name, ino, attr, now)))
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


@dataclass
class RestoreItem:
    """What `restore_hour` did (or would do) with one entry of the hour directory."""

    entry: str
    """Its name in the hour directory."""
    ino: int
    parent: int
    """The original parent directory (0 when the entry name does not say)."""
    name: str
    """The original name."""
    status: str
    """``restored`` (put back), ``rebuilt`` (moved under its parent inside the trash), ``in-trash``
    (left there: no --put-back), ``exists`` (name taken), ``parent-gone``, ``parent-in-trash``,
    ``changed`` (the entry changed meanwhile), ``bad-name`` (not ``<parent>-<ino>-<name>``)."""
    target: str
    """Where it went or would go (a path, or ``<inode N>/name`` when the parent has no path)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RestoreError(Exception):
    """The hour directory to restore does not exist (message ready for the user)."""


async def restore_hour(
    kv: KV, hour: str, *, put_back: bool, on_item: Callable[[RestoreItem], None] | None = None
) -> list[RestoreItem]:
    """Restore the entries of trash hour directory `hour` (see the module docstring); returns one item
    per entry. Raises RestoreError when there is no such hour directory."""
    hour_b = hour.encode()

    async def find(tx: Tx) -> int | None:
        raw = await tx.get(keys.dentry(TRASH_INODE, hour_b))
        return None if raw is None else decode_dentry(raw)[1]

    hour_ino = await kv.read(find)
    if hour_ino is None:
        raise RestoreError(f"no trash directory '{hour}' (see .trash/ for the hours present)")
    prefix = keys.dentry_prefix(hour_ino)

    async def listing(tx: Tx) -> list[tuple[bytes, FileType, int]]:
        return [
            (k[len(prefix) :], *decode_dentry(v)) async for k, v in tx.scan_iter(prefix, keys.prefix_end(prefix))
        ]

    entries = await kv.read(listing)
    trash_dirs = {ino for _, typ, ino in entries if typ is FileType.DIRECTORY}
    items: list[RestoreItem] = []
    paths = _PathCache(kv)
    # Children first into their (trashed) parents, then what is left goes back to the live tree.
    ordered = sorted(entries, key=lambda e: (_parsed_parent(e[0]) not in trash_dirs, e[0]))
    for entry, _typ, ino in ordered:
        parsed = parse_entry_name(entry)
        text = entry.decode(errors="replace")
        if parsed is None or parsed[1] != ino:
            item = RestoreItem(text, ino, 0, "", "bad-name", "")
        else:
            parent, _, name = parsed
            target = f"{(await paths.dir_path(parent)).rstrip('/')}/{name.decode(errors='replace')}"
            if parent in trash_dirs:
                status = await _move(kv, hour_ino, entry, ino, parent, name, into_trash=True)
                status = "rebuilt" if status == "restored" else status
            elif put_back:
                status = await _move(kv, hour_ino, entry, ino, parent, name, into_trash=False)
            else:
                status = await _check_target(kv, parent, name)
            item = RestoreItem(text, ino, parent, name.decode(errors="replace"), status, target)
        items.append(item)
        if on_item is not None:
            on_item(item)
    restored = sum(1 for i in items if i.status in ("restored", "rebuilt"))
    log.info("trash_restored", hour=hour, entries=len(items), restored=restored, put_back=put_back)
    return items


def _parsed_parent(entry: bytes) -> int:
    parsed = parse_entry_name(entry)
    return parsed[0] if parsed else 0


async def _check_target(kv: KV, parent: int, name: bytes) -> str:
    """What a put-back would find: ``in-trash`` when it would work, else why not."""

    async def body(tx: Tx) -> str:
        raw = await tx.get(keys.attr(parent))
        if raw is None or Attr.decode(raw).typ is not FileType.DIRECTORY:
            return "parent-gone"
        if is_trash_inode(parent) or is_trash_inode(Attr.decode(raw).parent):
            return "parent-in-trash"
        if await tx.get(keys.dentry(parent, name)) is not None:
            return "exists"
        return "in-trash"

    return await kv.read(body)


async def _move(
    kv: KV, hour_ino: int, entry: bytes, ino: int, parent: int, name: bytes, *, into_trash: bool
) -> str:
    """Move trash entry `entry` (inode `ino`) to `parent`/`name` in one transaction; returns the status."""
    now = time.time_ns()

    async def body(tx: Tx) -> str:
        raw_entry, raw_dir, raw_hour, raw_attr, raw_dst = await tx.get_many(
            [keys.dentry(hour_ino, entry), keys.attr(parent), keys.attr(hour_ino), keys.attr(ino),
             keys.dentry(parent, name)]
        )  # fmt: skip
        if raw_entry is None or decode_dentry(raw_entry)[1] != ino or raw_attr is None or raw_hour is None:
            return "changed"
        if raw_dir is None:
            return "parent-gone"
        dir_attr = Attr.decode(raw_dir)
        if dir_attr.typ is not FileType.DIRECTORY:
            return "parent-gone"
        if not into_trash and (is_trash_inode(parent) or is_trash_inode(dir_attr.parent)):
            return "parent-in-trash"
        if raw_dst is not None:
            return "exists"
        attr = Attr.decode(raw_attr)
        hour_attr = Attr.decode(raw_hour)
        store.del_entry(tx, hour_ino, entry)
        store.put_entry(tx, parent, name, attr.typ, ino)
        if attr.parent == 0:  # hard-linked: per-parent counters instead of a single parent
            await store.add_parent_ref(tx, ino, hour_ino, -1)
            await store.add_parent_ref(tx, ino, parent, 1)
        else:
            attr.parent = parent
        attr.ctime_ns = now
        store.put_attr(tx, ino, attr)
        if attr.typ is FileType.DIRECTORY:
            hour_attr.nlink -= 1
            dir_attr.nlink += 1
        hour_attr.mtime_ns = hour_attr.ctime_ns = now
        dir_attr.mtime_ns = dir_attr.ctime_ns = now
        store.put_attr(tx, hour_ino, hour_attr)
        store.put_attr(tx, parent, dir_attr)
        return "restored"

    return await kv.txn(body)


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


async def restore_volume(
    meta_url: str, hours: list[str], *, put_back: bool, on_item: Callable[[RestoreItem], None] | None = None
) -> dict[str, list[RestoreItem]]:
    """`restore_hour` for each of `hours` of the volume at `meta_url`; hour → items.

    Raises VolumeError for an unformatted engine or an hour directory that does not exist (the hours
    before it are done). (Imported here: this module is also loaded by the metadata engine.)
    """
    from jfs.app.compose import open_engine
    from jfs.app.meta.engine import VolumeNotFormatted, read_settings
    from jfs.app.volume import VolumeError

    kv = await open_engine(meta_url)
    try:
        await read_settings(kv)
        return {hour: await restore_hour(kv, hour, put_back=put_back, on_item=on_item) for hour in hours}
    except (VolumeNotFormatted, RestoreError) as exc:
        raise VolumeError(str(exc)) from None
    finally:
        await kv.close()

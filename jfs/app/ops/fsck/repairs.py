"""``fsck --repair``: the table of problem kind → repair, and the order repairs run in.

Contract: every repair is one transaction (two for a released file: the records, then its data) that
first re-checks what was found — the inode unchanged, the entry still dangling, … — and returns False
(the issue gets "changed since the check; run fsck again") when it is not so; a repair that raises is
recorded on its issue and does not stop the others. Order: the problems in `REPAIRS` one by one; then the
per-inode attribute fixes (`FIX_KINDS`, one `Fix` may carry several problems), orphans last since
creating ``/lost+found`` changes the root; then the counters (a blind add of the difference, so
concurrent clients' updates are kept). `REPORT_ONLY` kinds are never repaired. Records are read and
written through the engine's typed record access (`jfs.app.meta.store`) and its deletion path.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from jfs.app.meta import chunks, store
from jfs.app.meta.engine import Meta
from jfs.app.meta.remove import delete_inode
from jfs.app.ops.fsck.confirm import same
from jfs.app.ops.fsck.judge import LOST_FOUND, BlockRef, Fix
from jfs.app.ops.fsck.model import Model
from jfs.app.ops.fsck.report import FsckReport, Issue
from jfs.app.volume import VolumeError
from jfs.domain.attrs import ROOT_INODE, Attr, FileType
from jfs.domain.chunks import CHUNK_SIZE
from jfs.domain.records import SliceRecord
from jfs.ports.kv import Tx

log = structlog.get_logger("jfs.fsck")

LOST_FOUND_MODE = 0o700
CHANGED = "changed since the check; run fsck again"


@dataclass
class RepairContext:
    """What a repair may need besides its issue."""

    meta: Meta
    model: Model
    lost: dict[int, set[BlockRef]]
    """ino → the unreadable blocks its records cover (for lost-blocks)."""


IssueRepair = Callable[[RepairContext, Issue], Awaitable[bool]]


async def _remove_dangling(ctx: RepairContext, issue: Issue) -> bool:
    """broken-dentry: remove the entry if it still names the missing inode."""
    parent, name, ino = issue.parent, issue.name, issue.ino

    async def body(tx: Tx) -> bool:
        entry = await store.get_entry(tx, parent, name)
        if entry is None or entry[1] != ino or await store.find_attr(tx, ino) is not None:
            return False
        store.del_entry(tx, parent, name)
        return True

    return await ctx.meta.kv.txn(body)


async def _remove_dead_entries(ctx: RepairContext, issue: Issue) -> bool:
    """dead-entries: remove the entries under an inode that is (still) missing or not a directory."""
    ino = issue.ino
    while True:

        async def body(tx: Tx) -> bool | None:
            attr = await store.find_attr(tx, ino)
            if attr is not None and attr.typ is FileType.DIRECTORY:
                return False
            return True if await store.drop_entries(tx, ino, 1000) < 1000 else None

        done = await ctx.meta.kv.txn(body)
        if done is not None:
            return done


async def _release_stray(ctx: RepairContext, issue: Issue) -> bool:
    """stray-records: treat the records of an inode without attributes as a deleted file's (delfile
    marker, then release its data); its other records are removed."""
    meta, ino = ctx.meta, issue.ino
    max_indx = ctx.model.stray[ino][1]
    length = max(1, (max_indx + 1) * CHUNK_SIZE)
    now = int(time.time())

    async def body(tx: Tx) -> bool:
        if await store.find_attr(tx, ino) is not None or await store.has_delfile(tx, ino):
            return False
        await store.drop_records(tx, ino, keep="CD")
        if max_indx >= 0:
            store.put_delfile(tx, ino, length, now)
        return True

    if not await meta.kv.txn(body):
        return False
    if max_indx >= 0:
        await chunks.cleanup_file(meta, ino, length)
    return True


async def _retype(ctx: RepairContext, issue: Issue) -> bool:
    """wrong-type: rewrite the entry with its inode's type."""
    parent, name, ino = issue.parent, issue.name, issue.ino

    async def body(tx: Tx) -> bool:
        entry = await store.get_entry(tx, parent, name)
        attr = await store.find_attr(tx, ino)
        if entry is None or attr is None or entry[1] != ino:
            return False
        store.put_entry(tx, parent, name, attr.typ, ino)
        return True

    return await ctx.meta.kv.txn(body)


def split_record(record: SliceRecord, bad: set[int], block_size: int) -> list[SliceRecord]:
    """`record` with the ranges that fall in blocks `bad` of its slice replaced by holes."""
    out: list[SliceRecord] = []
    at = record.off
    end = record.off + record.len
    while at < end:
        index = at // block_size
        stop = min(end, (index + 1) * block_size)
        hole = index in bad
        pos = record.pos + (at - record.off)
        prev = out[-1] if out else None
        if prev is not None and (prev.id == 0) == hole and prev.end == pos:
            out[-1] = SliceRecord(prev.pos, prev.id, prev.size, prev.off, prev.len + stop - at)
        elif hole:
            out.append(SliceRecord(pos, 0, 0, 0, stop - at))
        else:
            out.append(SliceRecord(pos, record.id, record.size, at, stop - at))
        at = stop
    return out


async def _hole_out(ctx: RepairContext, issue: Issue) -> bool:
    """lost-blocks: replace the ranges of the file's records that lie in the bad blocks by holes,
    adjusting the slice references (a slice no longer used is released)."""
    meta, ino = ctx.meta, issue.ino
    block_size = meta.settings.block_bytes
    bad: dict[tuple[int, int], set[int]] = defaultdict(set)
    for sid, size, index in ctx.lost[ino]:
        bad[(sid, size)].add(index)
    now = time.time_ns()

    async def body(tx: Tx) -> tuple[bool, list[tuple[int, int]]]:
        attr = await store.find_attr(tx, ino)
        if attr is None:
            return False, []
        freed: list[tuple[int, int]] = []
        changed = False
        for indx, records in await store.chunks_of(tx, ino):
            new: list[SliceRecord] = []
            for r in records:
                broken = bad.get((r.id, r.size)) if r.id else None
                new += split_record(r, broken, block_size) if broken else [r]
            if new == records:
                continue
            changed = True
            store.put_chunk(tx, ino, indx, new)
            before: dict[tuple[int, int], int] = defaultdict(int)
            after: dict[tuple[int, int], int] = defaultdict(int)
            for r in records:
                if r.id:
                    before[(r.id, r.size)] += 1
            for r in new:
                if r.id:
                    after[(r.id, r.size)] += 1
            for pair in set(before) | set(after):
                delta = after[pair] - before[pair]
                if delta > 0:
                    await chunks.add_refs(tx, [pair] * delta)
                elif delta < 0:
                    freed += await chunks.release(tx, [pair] * -delta)
        if changed:
            attr.mtime_ns = attr.ctime_ns = now
            store.put_attr(tx, ino, attr)
        return changed, freed

    changed, freed = await meta.kv.txn(body)
    if freed:
        await meta.free_slices(freed)
    return changed


REPAIRS: dict[str, IssueRepair] = {
    "lost-blocks": _hole_out,
    "broken-dentry": _remove_dangling,
    "dead-entries": _remove_dead_entries,
    "stray-records": _release_stray,
    "wrong-type": _retype,
}
"""Problems repaired one at a time, each by its own function."""
FIX_KINDS = frozenset({"wrong-nlink", "wrong-parent", "orphan"})
"""Problems of an inode's attributes, repaired together by that inode's `Fix` (`_apply_fix`)."""
COUNTER_KINDS = frozenset({"counters"})
"""Repaired last, by adding the difference (`_add_counters`)."""
REPORT_ONLY = frozenset({"multi-linked-dir"})
"""Problems no repair exists for."""


async def repair_all(
    meta: Meta, model: Model, report: FsckReport, fixes: dict[int, Fix], lost: dict[int, set[BlockRef]]
) -> None:
    """Repair the issues of `report` (see the module docstring), marking each repaired or with an error."""
    ctx = RepairContext(meta, model, lost)
    in_report = {id(i) for i in report.issues}
    for issue in report.issues:
        repair = REPAIRS.get(issue.kind)
        if repair is None:
            continue
        try:
            issue.repaired = await repair(ctx, issue)
            if not issue.repaired:
                issue.error = CHANGED
        except Exception as exc:  # one failed repair must not stop the others
            issue.error = str(exc)
            log.warning("fsck_repair_failed", kind=issue.kind, path=issue.path, error=str(exc))
    lost_found: int | None = None
    # Orphans last: creating /lost+found changes the root, whose own fix must be applied first.
    for ino, f in sorted(fixes.items(), key=lambda item: item[1].orphan is not None):
        mine = [i for i in f.issues if id(i) in in_report]
        if not mine:
            continue
        try:
            if f.orphan == "lost+found" and lost_found is None:
                lost_found = await _lost_found(meta)
            ok = await _apply_fix(meta, ino, f, lost_found)
            for i in mine:
                i.repaired = ok
                i.error = "" if ok else CHANGED
        except Exception as exc:
            for i in mine:
                i.error = str(exc)
            log.warning("fsck_repair_failed", ino=ino, error=str(exc))
    for issue in report.issues:
        if issue.kind in COUNTER_KINDS:
            c = report.counters
            await _add_counters(
                meta,
                c["usedSpace"]["expected"] - c["usedSpace"]["stored"],
                c["totalInodes"]["expected"] - c["totalInodes"]["stored"],
            )
            issue.repaired = True
    for issue in report.issues:
        log.info("fsck_repair", kind=issue.kind, path=issue.path, repaired=issue.repaired, error=issue.error)


async def _add_counters(meta: Meta, space: int, inodes: int) -> None:
    """Add the differences to the usage counters (blind adds: concurrent clients' updates are kept)."""

    async def body(tx: Tx) -> None:
        store.charge(tx, space, inodes)

    await meta.kv.txn(body)


async def _lost_found(meta: Meta) -> int:
    """The inode of ``/lost+found``, created (mode 0700) when missing."""

    async def body(tx: Tx) -> tuple[FileType, int] | None:
        return await store.get_entry(tx, ROOT_INODE, LOST_FOUND)

    found = await meta.kv.read(body)
    if found is None:
        ino, _ = await meta.mkdir(ROOT_INODE, LOST_FOUND, LOST_FOUND_MODE)
        return ino
    if found[0] is not FileType.DIRECTORY:
        raise VolumeError(f"/{LOST_FOUND.decode()} exists and is not a directory")
    return found[1]


async def _apply_fix(meta: Meta, ino: int, f: Fix, lost_found: int | None) -> bool:
    """Apply one inode's attribute fix if the inode is as the check saw it."""
    now = time.time_ns()

    async def body(tx: Tx) -> tuple[bool, Attr | None]:
        attr = await store.find_attr(tx, ino)
        if attr is None or not same(attr, f.seen):
            return False, None
        if f.orphan == "delete":
            await delete_inode(tx, ino, attr, now)
            return True, attr
        if f.nlink is not None:
            attr.nlink = f.nlink
        if f.prefs is not None:
            await store.replace_parent_refs(tx, ino, f.prefs)
        if f.parent is not None:
            attr.parent = f.parent
        if f.orphan == "lost+found":
            assert lost_found is not None
            await _link_in_lost_found(tx, ino, attr, lost_found, now)
        store.put_attr(tx, ino, attr)
        return True, None

    ok, deleted = await meta.kv.txn(body)
    if deleted is not None:
        meta.note_usage(-store.space_of(deleted), -1)
        if deleted.typ is FileType.REGULAR and deleted.length > 0:
            await chunks.cleanup_file(meta, ino, deleted.length)
    return ok


async def _link_in_lost_found(tx: Tx, ino: int, attr: Attr, lost_found: int, now: int) -> None:
    """Name orphan `ino` ``#<ino>`` (or ``#<ino>-<n>``) in /lost+found, making it its only parent."""
    lf = await store.get_attr(tx, lost_found)
    name = b"#%d" % ino
    n = 1
    while await store.get_entry(tx, lost_found, name) is not None:
        n += 1
        name = b"#%d-%d" % (ino, n)
    store.put_entry(tx, lost_found, name, attr.typ, ino)
    await store.replace_parent_refs(tx, ino, {})
    attr.parent = lost_found
    if attr.typ is FileType.DIRECTORY:
        lf.nlink += 1
    else:
        attr.nlink = 1
    lf.mtime_ns = lf.ctime_ns = now
    store.put_attr(tx, lost_found, lf)

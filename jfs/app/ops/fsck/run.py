"""`run_fsck`: the ``jfs fsck`` use case on an opened volume (engine + object store owned by the caller).

Contract: scan the metadata into a `Model`, `judge` it, check the blocks, confirm what was found against
the engine as it is now, name the problems by path and, with `repair`, repair them (`repairs`). The
caller opens `meta` (loaded, no session needed) and `store` and closes both afterwards; `run_fsck` builds
and closes its own BlockStore and leaves `meta.free_hook` as it found it. VolumeError for a `path` that
does not exist; engine and object-store errors propagate.
"""

from __future__ import annotations

import time

import structlog

from jfs.app.meta.chunk_scan import read_delfiles
from jfs.app.meta.engine import Meta
from jfs.app.meta.reader import names_in
from jfs.app.meta.sessions import sustained_inodes
from jfs.app.meta.statfs import read_usage
from jfs.app.ops.block_objects import DEFAULT_THREADS, releasing_blocks
from jfs.app.ops.fsck.blocks import BadBlocks, file_blocks, files_using, head_blocks, incomplete_slices
from jfs.app.ops.fsck.confirm import (
    confirm_broken,
    confirm_fixes,
    confirm_lost,
    confirm_stray,
    files_unchanged,
)
from jfs.app.ops.fsck.judge import BlockRef, counters_issue, judge, lost_blocks_issue
from jfs.app.ops.fsck.model import DIR, REG, Model, expected_counters
from jfs.app.ops.fsck.paths import Paths, lookup_path, subtree
from jfs.app.ops.fsck.repairs import repair_all
from jfs.app.ops.fsck.report import KINDS, FsckReport, Issue
from jfs.app.ops.fsck.scan import scan
from jfs.app.ops.slice_set import SliceSet
from jfs.app.progress import ProgressBoard, QuietBoard
from jfs.domain.chunks import block_count, block_key, block_len
from jfs.ports.kv import KV
from jfs.ports.objects import ObjectStore

log = structlog.get_logger("jfs.fsck")

WHOLE_VOLUME_KINDS = ("orphan", "stray-records", "dead-entries", "counters")
"""Problems checked only without ``path``."""


async def run_fsck(
    meta: Meta,
    store: ObjectStore,
    *,
    path: str | None = None,
    recursive: bool = False,
    repair: bool = False,
    threads: int = DEFAULT_THREADS,
    progress: ProgressBoard | None = None,
) -> FsckReport:
    """Check the volume of `meta` (its objects in `store`), or the part at `path`, and with `repair` fix
    what can be fixed.

    See the `jfs.app.ops.fsck` docstring for the problems and repairs. Raises VolumeError for a `path`
    that does not exist. `meta` and `store` stay open.
    """
    started = time.monotonic()
    progress = progress or QuietBoard()
    async with releasing_blocks(meta, store, threads):
        report = await _fsck(meta, store, path, recursive, repair, threads, progress)
    report.seconds = time.monotonic() - started
    log.info("fsck_done", summary=report.summary())
    return report


async def _fsck(
    meta: Meta, bucket: ObjectStore, path: str | None, recursive: bool, repair: bool, threads: int,
    progress: ProgressBoard,
) -> FsckReport:  # fmt: skip
    kv = meta.kv
    whole = path is None or path.strip("/") == "" and recursive
    report = FsckReport(scope=path or "/", recursive=recursive if path else True, repair=repair)
    scope: set[int] | None = None
    files: list[int] = []
    if not whole:
        assert path is not None
        scope, files = await subtree(kv, await lookup_path(kv, path), recursive)

    since = time.time_ns()
    before = await read_usage(kv)
    delfiles = await read_delfiles(kv)
    sustained = await sustained_inodes(kv)
    model = Model(delfiles, SliceSet() if whole else None)
    await scan(kv, model, progress)
    after = await read_usage(kv)
    deleting = await read_delfiles(kv)  # files deleted during the scan are not stray
    model.stray = {ino: v for ino, v in model.stray.items() if ino not in deleting}

    issues, fixes = judge(model, sustained, since)
    # The scan is not a snapshot: drop what changed since (the attributes moved on, the data went away).
    fixes = await confirm_fixes(kv, fixes)
    for f in fixes.values():
        issues += f.issues
    stray = await confirm_stray(kv, set(model.stray))
    issues = [i for i in issues if i.kind != "stray-records" or i.ino in stray]
    report.inodes = len(model.attrs)
    report.directories = model.table.typ.count(DIR)  # rows without attributes have type 0
    report.files = model.table.typ.count(REG)
    report.entries = model.entries

    lost, why = await _check_blocks(meta, bucket, model, files, whole, threads, report, progress)
    bs, hashed = meta.settings.block_bytes, meta.settings.hash_prefix

    def block_name(sid: int, size: int, index: int) -> str:
        return block_key(sid, index, block_len(size, bs, index), hashed)

    for ino, bad in sorted(lost.items()):
        issues.append(lost_blocks_issue(ino, bad, why, block_name))
    if whole:
        issue = await _check_counters(kv, model, before, after, report)
        if issue is not None:
            issues.append(issue)
    if scope is not None:
        issues = [
            i for i in issues
            if i.kind not in WHOLE_VOLUME_KINDS and (i.parent in scope if i.parent else i.ino in scope)
        ]  # fmt: skip
    # Confirm dangling entries (an inode created during the scan may have been missed).
    issues = [i for i in issues if i.kind != "broken-dentry"] + await confirm_broken(
        kv, [i for i in issues if i.kind == "broken-dentry"]
    )
    await _name_issues(kv, model, issues)
    issues.sort(key=lambda i: (KINDS.index(i.kind), i.path))
    report.issues = issues
    for issue in issues:
        log.warning("fsck_problem", kind=issue.kind, path=issue.path, detail=issue.detail)
    if repair and issues:
        await repair_all(meta, model, report, fixes, lost)
    return report


async def _check_blocks(
    meta: Meta, bucket: ObjectStore, model: Model, files: list[int], whole: bool, threads: int,
    report: FsckReport, progress: ProgressBoard,
) -> tuple[dict[int, set[BlockRef]], BadBlocks]:  # fmt: skip
    """(ino → unreadable blocks its records still cover, the bad blocks and why) of the files checked:
    all (one listing, then HEADs of incomplete slices) or `files` (HEADs of their blocks)."""
    kv, settings = meta.kv, meta.settings
    bs, hashed, volume = settings.block_bytes, settings.hash_prefix, settings.name
    # Sealed objects are larger than their block, too: only their existence can be checked.
    compressed = (settings.compression or "none") != "none" or bool(settings.encrypt_key)
    lost: dict[int, set[BlockRef]]
    why: BadBlocks
    if whole:
        assert model.slices is not None
        slices = model.slices.freeze()
        report.slices = len(slices)
        incomplete = await incomplete_slices(bucket, volume, slices, bs, hashed, compressed, report, progress)
        wanted = [(sid, size, i) for sid, size in incomplete for i in range(block_count(size, bs))]
        why = await head_blocks(bucket, volume, wanted, bs, hashed, compressed, threads, report)
        lost = await files_using(kv, why, bs) if why else {}
    else:
        used = await file_blocks(kv, [f for f in files if f not in model.delfiles], bs)
        report.slices = len({(sid, size) for u in used.values() for sid, size, _ in u})
        wanted_set = {b for u in used.values() for b in u}
        bar = progress.bar("Checked blocks", total=len(wanted_set), unit="blocks")
        try:
            why = await head_blocks(bucket, volume, wanted_set, bs, hashed, compressed, threads, report, bar)
        finally:
            bar.close()
        lost = {ino: {b for b in u if b[2] in why.get((b[0], b[1]), {})} for ino, u in used.items()}
        lost = {ino: b for ino, b in lost.items() if b}
    lost = await confirm_lost(kv, {ino: b for ino, b in lost.items() if ino in model.attrs}, bs)
    return lost, why


async def _check_counters(
    kv: KV, model: Model, before: tuple[int, int], after: tuple[int, int], report: FsckReport
) -> Issue | None:
    """The counters problem, when the counters did not move during the scan and every file the scan
    counted is still as it saw it; fills `report.counters` / `report.counters_note`."""
    space, inodes = expected_counters(model)
    if before != after:
        report.counters_note = "not checked: the counters changed during the scan (the volume is in use)"
        return None
    report.counters = {
        "usedSpace": {"stored": before[0], "expected": space},
        "totalInodes": {"stored": before[1], "expected": inodes},
    }
    issue = counters_issue(before, (space, inodes))
    if issue is not None and not await files_unchanged(kv, model):
        # Same counters before and after, yet a file counted by the scan changed since: a delete
        # and a create of the same size in between (A-B-A). Not a fault of the counters.
        report.counters = {}
        report.counters_note = "not checked: files changed during the scan (the volume is in use)"
        return None
    return issue


async def _name_issues(kv: KV, model: Model, issues: list[Issue]) -> None:
    """Set the path of every issue (entry problems: the entry's path; counters: ``/``)."""
    paths = Paths(kv, model)
    await paths.resolve({i.parent or i.ino for i in issues if i.parent or i.ino})
    for issue in issues:
        if issue.kind in ("broken-dentry", "wrong-type") and issue.parent:
            if not issue.name:
                found = await names_in(kv, issue.parent, {issue.ino})
                issue.name = (found.get(issue.ino) or [b"?"])[0]
            issue.path = paths.entry_path(issue.parent, issue.name)
        elif issue.kind in ("counters",):
            issue.path = "/"
        elif issue.ino:
            issue.path = paths.path(issue.ino)

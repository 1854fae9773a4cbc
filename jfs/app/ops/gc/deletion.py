"""What ``jfs gc --delete`` reclaims: leaked objects, old delfiles, released slices, orphan checksums.

Contract: each step re-checks against the metadata as it is now before it deletes (a fresh scan for
leaked objects and checksum records, the K records re-read for released slices), so a slice a live
client started using meanwhile is kept. Failures of single objects or files are logged and counted as
not done; the rest goes on. Counts go into the `GCReport`.
"""

from __future__ import annotations

import time

import structlog

from jfs.app.meta import chunks
from jfs.app.meta.chunk_scan import block_sums_in
from jfs.app.meta.engine import Meta
from jfs.app.meta.store import drop_block_sums
from jfs.app.ops.block_objects import DELETE_BATCH, bounded
from jfs.app.ops.gc.classify import Leaked
from jfs.app.ops.gc.references import References, negative_refs, referenced_among
from jfs.app.ops.gc.report import GCReport
from jfs.app.progress import ProgressBoard
from jfs.domain.chunks import valid_block
from jfs.ports.kv import KV, Tx
from jfs.ports.objects import ObjectStore

log = structlog.get_logger("jfs.gc")


async def delete_orphan_sums(kv: KV, refs: References) -> int:
    """Delete the block-checksum records of slices that nothing references (see the package docstring);
    returns how many."""

    async def body(tx: Tx) -> set[int]:
        return {sid async for sid in block_sums_in(tx) if not refs.known(sid)}

    candidates = await kv.read(body)
    doomed = sorted(candidates - set(await referenced_among(kv, candidates)))
    for at in range(0, len(doomed), DELETE_BATCH):
        batch = doomed[at : at + DELETE_BATCH]

        async def drop(tx: Tx, batch: list[int] = batch) -> None:
            for sid in batch:
                drop_block_sums(tx, sid)

        await kv.txn(drop)
    if doomed:
        log.info("gc_orphan_checksums_deleted", records=len(doomed))
    return len(doomed)


async def delete_leaked(
    kv: KV, store: ObjectStore, report: GCReport, leaked: Leaked, block_size: int, threads: int,
    progress: ProgressBoard,
) -> None:  # fmt: skip
    """Delete leaked candidates that a fresh scan still finds unreferenced."""
    if not leaked:
        return
    again = await referenced_among(kv, {sid for sid in leaked if sid})
    doomed: list[tuple[str, int]] = []
    for sid, objs in leaked.items():
        for key, index, blen, size in objs:
            if sid and any(valid_block(s, block_size, index, blen) for s in again.get(sid, [])):
                report.kept_leaked += 1
                continue
            doomed.append((key, size))
    bar = progress.bar("Deleted leaked objects", total=len(doomed), unit="objects")

    async def one(key: str, size: int) -> None:
        await store.delete(key)
        report.deleted_leaked.add(size)
        bar.advance()

    try:
        for i in range(0, len(doomed), DELETE_BATCH):
            results = await bounded((one(k, s) for k, s in doomed[i : i + DELETE_BATCH]), threads)
            for r in results:
                if isinstance(r, BaseException):
                    log.warning("leaked_object_delete_failed", error=str(r))
    finally:
        bar.close()
    log.info("gc_deleted_leaked", objects=report.deleted_leaked.count, bytes=report.deleted_leaked.bytes)


async def finish_pending(
    meta: Meta, report: GCReport, refs: References, age: float, threads: int, progress: ProgressBoard
) -> None:
    """Finish delfiles older than `age` and delete the blocks of slices whose K record is negative."""
    cutoff = time.time() - age
    old = [(ino, length) for ino, (length, when) in refs.delfiles.items() if when <= cutoff]
    bar = progress.bar("Finished deleted files", total=len(old), unit="files")

    async def finish(ino: int, length: int) -> None:
        freed = await chunks.cleanup_file(meta, ino, length)
        report.finished_files += 1
        report.freed_slices += len(freed)
        bar.advance()

    try:
        for r in await bounded((finish(i, n) for i, n in old), threads):
            if isinstance(r, BaseException):
                log.warning("delfile_cleanup_failed", error=str(r))
    finally:
        bar.close()
    # Re-read: the K records left by the cleanups above were handled by the free hook already.
    negative = [p for p in await negative_refs(meta.kv) if p not in refs.valid and p not in refs.trash]
    report.inconsistent_slices = len([p for p in refs.negative if p in refs.valid or p in refs.trash])
    bar = progress.bar("Freed pending slices", total=len(negative), unit="slices")
    try:
        for i in range(0, len(negative), DELETE_BATCH):
            batch = negative[i : i + DELETE_BATCH]
            await meta.free_slices(batch)
            report.freed_slices += len(batch)
            bar.advance(len(batch))
    finally:
        bar.close()

"""`run_gc`: the ``jfs gc`` use case on an opened volume (engine + object store owned by the caller).

Contract: classify every block object (`classify`), and only when asked reclaim (`deletion`) and compact
(`compaction`). The caller opens `meta` (loaded, no session needed) and `store` and closes both
afterwards; `run_gc` builds and closes its own BlockStore and leaves `meta.free_hook` as it found it.
"""

from __future__ import annotations

import time

import structlog

from jfs.app.meta.engine import Meta
from jfs.app.meta.trash_purge import purge_trash
from jfs.app.ops.block_objects import DEFAULT_THREADS, free_hook, releasing_blocks
from jfs.app.ops.gc.classify import classify_objects
from jfs.app.ops.gc.compaction import compact_all
from jfs.app.ops.gc.deletion import delete_leaked, delete_orphan_sums, finish_pending
from jfs.app.ops.gc.references import collect_references
from jfs.app.ops.gc.report import GCReport
from jfs.app.ops.gc.skip_age import skip_age_from_env
from jfs.app.progress import ProgressBoard, QuietBoard
from jfs.ports.objects import ObjectStore

log = structlog.get_logger("jfs.gc")


async def run_gc(
    meta: Meta,
    store: ObjectStore,
    *,
    delete: bool = False,
    compact: bool = False,
    threads: int = DEFAULT_THREADS,
    skip_age: float | None = None,
    progress: ProgressBoard | None = None,
) -> GCReport:
    """Classify every block object of the volume of `meta` (its objects in `store`); with `delete` reclaim
    leaked and pending ones (and purge expired trash), with `compact` compact fragmented chunks first.

    `skip_age` defaults to `skip_age_from_env()` (VolumeError when that is malformed). Engine and
    object-store errors propagate. `meta` and `store` stay open.
    """
    started = time.monotonic()
    progress = progress or QuietBoard()
    age = skip_age_from_env() if skip_age is None else skip_age
    report = GCReport(skip_age=age, deleted=delete)
    async with releasing_blocks(meta, store, threads) as blocks:
        if compact:
            report.compacted_chunks = await compact_all(meta, store, threads, progress)
            meta.free_hook = free_hook(blocks)  # the compaction's data path took the hook while it ran
        kv, settings = meta.kv, meta.settings
        refs = await collect_references(kv, progress)
        leaked = await classify_objects(store, settings, refs, report, age, progress)
        if delete:
            await delete_leaked(kv, store, report, leaked, settings.block_bytes, threads, progress)
            await finish_pending(meta, report, refs, age, threads, progress)
            report.purged_trash = await purge_trash(meta)
            report.deleted_sums = await delete_orphan_sums(kv, refs)
    report.seconds = time.monotonic() - started
    log.info("gc_done", summary=report.summary())
    return report

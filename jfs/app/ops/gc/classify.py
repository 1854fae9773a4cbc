"""Put every object under ``<volume>/chunks/`` in exactly one class (see the `jfs.app.ops.gc` docstring).

Contract: `classify_objects` lists the objects once, counts them per class into the report and returns
the leaked candidates (deleting them is `deletion.delete_leaked`'s job, after a re-check). An object
modified after ``listing start - age`` is never leaked, only skipped. Nothing is changed; object-store
errors propagate.
"""

from __future__ import annotations

import time

import structlog

from jfs.app.ops.block_objects import list_blocks
from jfs.app.ops.gc.references import References
from jfs.app.ops.gc.report import CLASSES, GCReport
from jfs.app.progress import ProgressBoard
from jfs.domain.chunks import block_key, parse_block_key
from jfs.domain.settings import Settings
from jfs.ports.objects import ObjectStore

log = structlog.get_logger("jfs.gc")

Leaked = dict[int, list[tuple[str, int, int, int]]]
"""slice id (0 for unparseable names) → (key, index, blen, stored size) of leaked candidates."""


async def classify_objects(
    store: ObjectStore,
    settings: Settings,
    refs: References,
    report: GCReport,
    age: float,
    progress: ProgressBoard,
) -> Leaked:
    """Count every block object of the volume by class into `report`; the leaked candidates found."""
    bs, hashed = settings.block_bytes, settings.hash_prefix
    report.slices = len(refs.valid) + len(refs.trash)
    report.pending_files = len(refs.delfiles)
    report.pending_slices = len(refs.negative)
    edge = time.time() - age
    leaked: Leaked = {}
    classes = {c: progress.bar(f"{c.capitalize()} objects", unit="objects") for c in CLASSES}
    try:
        async for rel, obj in list_blocks(store, settings.name, progress):
            parsed = parse_block_key(rel)
            cls: str | None = None
            if parsed is not None and rel == block_key(*parsed, hash_prefix=hashed):
                cls = refs.classify(*parsed, bs)
            if cls is None:
                cls = "skipped" if obj.mtime > edge else "leaked"
                if cls == "leaked":
                    sid, index, blen = parsed if parsed is not None else (0, -1, -1)
                    leaked.setdefault(sid, []).append((obj.key, index, blen, obj.size))
                    if len(report.leaked_examples) < 20:
                        report.leaked_examples.append(rel)
            report.objects[cls].add(obj.size)
            classes[cls].advance()
    finally:
        for bar in classes.values():
            bar.close()
    log.info(
        "gc_scanned",
        **{c: s.count for c, s in report.objects.items()},
        slices=report.slices, pending_files=report.pending_files, pending_slices=report.pending_slices,
    )  # fmt: skip
    return leaked

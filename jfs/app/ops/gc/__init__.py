"""`jfs gc`: account for every object under ``<volume>/chunks/`` and reclaim what nothing references.

Every object is put in exactly one class:

* **valid** — a block of a slice referenced by a chunk record of a live inode (a file in the trash is live
  too, but counted as *trash*);
* **pending** — a block of a slice awaiting deletion: referenced only by the chunks of a deleted file whose
  delfile marker is still there, or a slice whose reference record is negative (``K < 0``: released, blocks
  not yet deleted);
* **trash** — a block referenced only by files in the trash, or by compacted slices held for the trash
  (``L`` records);
* **leaked** — not a block of any known slice: an unknown slice id, a name whose ``<index>_<len>`` does not
  fit the slice size (`domain.chunks.valid_block`), a name in the other layout (hash prefix or not), or
  anything else under ``chunks/``;
* **skipped** — would be leaked, but was modified less than `skip_age` seconds ago (default one hour, env
  ``JFS_GC_SKIPPEDTIME``): a live client may be uploading a slice it has not committed yet.

The report gives count and stored bytes per class. Nothing changes unless asked:

* ``delete``: leaked objects are deleted (after a second scan confirms nothing references them); delfiles
  older than `skip_age` are finished (chunks dropped, slices released, blocks deleted); slices with
  ``K < 0`` get their blocks deleted and their record removed; expired trash is purged
  (`jfs.app.meta.trash_purge.purge_trash`).
* ``compact``: every chunk with more than one slice record is compacted first (`Compactor`).

Block-checksum records (``jS``, ADR 0008) are metadata, not objects: the transaction that frees a slice
deletes its record, so they only outlive their slice when a JuiceFS client shares the engine (TiKV) and
frees slices itself. ``delete`` removes such orphans (confirmed by the same fresh scan as leaked objects).

Safety on a live volume: referenced slices are collected before the objects are listed, so an object a
client commits meanwhile is either seen as referenced or is younger than the listing start; objects younger
than `skip_age` are never deleted; candidates are re-checked against a fresh scan before deletion. (The
scans are not one snapshot: a slice whose only reference moves from an unscanned chunk to a scanned one
twice — copy_file_range then removal of the source, during both scans — would be missed; keep `skip_age`
larger than any such window.)

Memory: referenced slices are kept in `SliceSet`s, about 8 bytes per distinct slice (plus a sorting buffer
of at most 2^18 entries, some 25 MB at its peak); leaked objects found are kept as keys (they are what gets
deleted).

Modules: `run` (the entry, `run_gc`), `references` (slices the metadata refers to), `classify` (objects per
class), `deletion` (what ``delete`` reclaims), `compaction`, `report` (`GCReport`), `skip_age`. Helpers
shared with fsck live beside this package: `jfs.app.ops.slice_set`, `jfs.app.ops.block_objects`; the
metadata it reads comes from the engine's scans (`jfs.app.meta.chunk_scan`, `jfs.app.meta.trash`).
"""

from __future__ import annotations

from jfs.app.ops.block_objects import DEFAULT_THREADS, DELETE_BATCH, bounded
from jfs.app.ops.gc.report import CLASSES, ClassStat, GCReport
from jfs.app.ops.gc.run import run_gc
from jfs.app.ops.gc.skip_age import DEFAULT_SKIP_AGE, SKIP_ENV, skip_age_from_env
from jfs.app.ops.slice_set import SliceSet
from jfs.app.progress import ProgressBar, ProgressBoard, QuietBoard

__all__ = [
    "CLASSES",
    "DEFAULT_SKIP_AGE",
    "DEFAULT_THREADS",
    "DELETE_BATCH",
    "SKIP_ENV",
    "ClassStat",
    "GCReport",
    "ProgressBar",
    "ProgressBoard",
    "QuietBoard",
    "SliceSet",
    "bounded",
    "run_gc",
    "skip_age_from_env",
]

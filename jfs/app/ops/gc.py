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
  (`trash_jobs.purge_trash`).
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
"""

from __future__ import annotations

import asyncio
import heapq
import os
import time
from array import array
from bisect import bisect_left
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from jfs.app.compose import open_bucket
from jfs.app.data.blocks import BlockStore
from jfs.app.data.config import DataConfig
from jfs.app.meta import chunks
from jfs.app.meta.engine import Meta
from jfs.app.ops import trash_jobs
from jfs.app.progress import ProgressBar, ProgressBoard, QuietBoard  # noqa: F401  (re-exported until callers move)
from jfs.app.volume import VolumeError, loaded_volume
from jfs.domain import keys
from jfs.domain.chunks import block_key, parse_block_key, valid_block
from jfs.domain.records import SLICE_RECORD_SIZE, decode_delayed, decode_i64, decode_u64
from jfs.ports.kv import KV, Tx
from jfs.ports.objects import ObjectInfo, ObjectStore

log = structlog.get_logger("jfs.gc")

SKIP_ENV = "JFS_GC_SKIPPEDTIME"
DEFAULT_SKIP_AGE = 3600.0
DEFAULT_THREADS = 10
CHUNK_BEGIN, CHUNK_END = b"A", b"B"
PROGRESS_STEP = 1024
DELETE_BATCH = 1000


def skip_age_from_env(default: float = DEFAULT_SKIP_AGE) -> float:
    """The age threshold in seconds: ``$JFS_GC_SKIPPEDTIME`` if set (a number ≥ 0), else `default`."""
    raw = os.environ.get(SKIP_ENV, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise VolumeError(f"{SKIP_ENV} must be a number of seconds, not {raw!r}") from None
    if value < 0:
        raise VolumeError(f"{SKIP_ENV} must not be negative")
    return value


# ------------------------------------------------------------------------------------------- progress


# ------------------------------------------------------------------------------------------ slice set


_PACK = 32
_SIZE_MASK = (1 << _PACK) - 1


class SliceSet:
    """A set of (slice id, slice size) pairs at about 8 bytes per distinct pair.

    Pairs are packed as ``id << 32 | size`` into unsigned 64-bit arrays, sorted and de-duplicated in runs as
    they arrive; `freeze` merges the runs into one sorted array, after which the set answers `sizes`,
    `index` and iteration (and refuses `add`). Ids of 2^32 and above go to a plain set (slice ids are
    allocated from 1 upwards, so in practice none).
    """

    def __init__(self, run: int = 1 << 18) -> None:
        self._run = run
        self._buf: array[int] = array("Q")
        self._runs: list[array[int]] = []
        self._big: set[tuple[int, int]] = set()
        self._arr: array[int] | None = None
        self._big_sorted: list[tuple[int, int]] = []

    def add(self, slice_id: int, size: int) -> None:
        if self._arr is not None:
            raise RuntimeError("SliceSet is frozen")
        if slice_id >> _PACK or size >> _PACK:
            self._big.add((slice_id, size))
            return
        self._buf.append(slice_id << _PACK | size)
        if len(self._buf) >= self._run:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._runs.append(array("Q", sorted(set(self._buf))))
            self._buf = array("Q")

    def freeze(self) -> SliceSet:
        """Merge everything added into the final sorted array; returns self."""
        if self._arr is None:
            self._flush()
            out: array[int] = array("Q")
            last = -1
            for v in heapq.merge(*self._runs):
                if v != last:
                    out.append(v)
                    last = v
            self._runs = []
            self._arr = out
            self._big_sorted = sorted(self._big)
        return self

    def _frozen(self) -> array[int]:
        if self._arr is None:
            self.freeze()
        assert self._arr is not None
        return self._arr

    def __len__(self) -> int:
        return len(self._frozen()) + len(self._big_sorted)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for v in self._frozen():
            yield v >> _PACK, v & _SIZE_MASK
        yield from self._big_sorted

    def sizes(self, slice_id: int) -> list[int]:
        """The sizes recorded for `slice_id` (normally one; none when unknown)."""
        arr = self._frozen()
        out: list[int] = []
        if not slice_id >> _PACK:
            i = bisect_left(arr, slice_id << _PACK)
            while i < len(arr) and arr[i] >> _PACK == slice_id:
                out.append(arr[i] & _SIZE_MASK)
                i += 1
            out += [s for sid, s in self._big_sorted if sid == slice_id]
        else:
            out += [s for sid, s in self._big_sorted if sid == slice_id]
        return out

    def index(self, slice_id: int, size: int) -> int | None:
        """Position of the pair in iteration order (for parallel counters), or None when absent."""
        arr = self._frozen()
        if not (slice_id >> _PACK or size >> _PACK):
            v = slice_id << _PACK | size
            i = bisect_left(arr, v)
            return i if i < len(arr) and arr[i] == v else None
        try:
            return len(arr) + self._big_sorted.index((slice_id, size))
        except ValueError:
            return None

    def __contains__(self, pair: object) -> bool:
        return isinstance(pair, tuple) and len(pair) == 2 and self.index(pair[0], pair[1]) is not None


def chunk_slices(value: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(slice id, size, off, len) of every non-hole record of a chunk value."""
    for off in range(0, len(value) - SLICE_RECORD_SIZE + 1, SLICE_RECORD_SIZE):
        sid = int.from_bytes(value[off + 4 : off + 12], "big")
        if sid:
            yield (
                sid,
                int.from_bytes(value[off + 12 : off + 16], "big"),
                int.from_bytes(value[off + 16 : off + 20], "big"),
                int.from_bytes(value[off + 20 : off + 24], "big"),
            )


def is_chunk_key(key: bytes) -> bool:
    """Whether `key` is a chunk record ``A<ino>C<indx>`` (length 14, byte 9 = 'C')."""
    return len(key) == 14 and key[9] == 0x43


# ------------------------------------------------------------------------------------ block deletion


def block_store(meta: Meta, store: ObjectStore, threads: int) -> BlockStore:
    """A BlockStore for the volume of `meta` (no cache) deleting up to `threads` objects at once."""
    config = DataConfig.from_settings(meta.settings, max_deletes=max(1, threads), io_retries=3, cpu_workers=1)
    return BlockStore(store, config)


def free_hook(blocks: BlockStore) -> Callable[[list[tuple[int, int]]], Awaitable[list[tuple[int, int]]]]:
    """An engine free hook that deletes the blocks of released slices and reports which slices are gone
    (a slice whose deletion failed stays pending, ``K = -1``, for the next gc)."""

    async def hook(slices: list[tuple[int, int]]) -> list[tuple[int, int]]:
        results = await asyncio.gather(*(blocks.delete_slice(s, z) for s, z in slices), return_exceptions=True)
        done = []
        for pair, r in zip(slices, results, strict=True):
            if isinstance(r, BaseException):
                log.warning("slice_delete_failed", slice=pair[0], size=pair[1], error=str(r))
            else:
                done.append(pair)
        return done

    return hook


async def bounded(jobs: Iterable[Awaitable[Any]], limit: int) -> list[Any]:
    """Await `jobs` with at most `limit` running at once; returns their results (exceptions included)."""
    slots = asyncio.Semaphore(max(1, limit))

    async def one(job: Awaitable[Any]) -> Any:
        async with slots:
            return await job

    return await asyncio.gather(*(one(j) for j in jobs), return_exceptions=True)


# --------------------------------------------------------------------------------------------- report


CLASSES = ("valid", "pending", "trash", "leaked", "skipped")


@dataclass
class ClassStat:
    count: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.count += 1
        self.bytes += size


@dataclass
class GCReport:
    """What `run_gc` found and did. Object classes are described in the module docstring."""

    objects: dict[str, ClassStat] = field(default_factory=lambda: {c: ClassStat() for c in CLASSES})
    slices: int = 0
    """Distinct slices referenced by live chunks (valid + trash)."""
    pending_files: int = 0
    """Delfile markers (deleted files whose data is not released yet)."""
    pending_slices: int = 0
    """Slice records with K < 0 (released, blocks not deleted yet)."""
    skip_age: float = DEFAULT_SKIP_AGE
    leaked_examples: list[str] = field(default_factory=list)
    """Up to 20 leaked keys, for the report."""
    compacted_chunks: int = 0
    deleted_leaked: ClassStat = field(default_factory=ClassStat)
    kept_leaked: int = 0
    """Leaked candidates that the confirmation scan found referenced after all (not deleted)."""
    finished_files: int = 0
    freed_slices: int = 0
    inconsistent_slices: int = 0
    """Slices with K < 0 that are still referenced by a chunk (their blocks are kept)."""
    purged_trash: int = 0
    deleted_sums: int = 0
    """Block-checksum records of unreferenced slices deleted (ADR 0008)."""
    deleted: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        """One line, as JuiceFS ends its gc: counts and bytes per class, then what was done."""
        parts = [f"{s.count} {c} ({_fmt_bytes(s.bytes)})" for c, s in self.objects.items()]
        total = sum(s.count for s in self.objects.values())
        line = f"scanned {total} objects: " + ", ".join(parts)
        if self.deleted:
            line += (
                f"; deleted {self.deleted_leaked.count} leaked objects ({_fmt_bytes(self.deleted_leaked.bytes)}), "
                f"finished {self.finished_files} deleted files, freed {self.freed_slices} slices, "
                f"purged {self.purged_trash} trash entries"
            )
        if self.compacted_chunks:
            line += f"; compacted {self.compacted_chunks} chunks"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "Objects": {c: {"count": s.count, "bytes": s.bytes} for c, s in self.objects.items()},
            "Slices": self.slices,
            "PendingFiles": self.pending_files,
            "PendingSlices": self.pending_slices,
            "SkipAge": self.skip_age,
            "LeakedExamples": self.leaked_examples,
            "Compacted": self.compacted_chunks,
            "Deleted": (
                {
                    "LeakedObjects": self.deleted_leaked.count,
                    "LeakedBytes": self.deleted_leaked.bytes,
                    "KeptLeaked": self.kept_leaked,
                    "FinishedFiles": self.finished_files,
                    "FreedSlices": self.freed_slices,
                    "InconsistentSlices": self.inconsistent_slices,
                    "PurgedTrash": self.purged_trash,
                }
                if self.deleted
                else None
            ),
            "Seconds": round(self.seconds, 3),
        }


def _fmt_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


# ------------------------------------------------------------------------------------------- the scan


@dataclass
class References:
    """Slices the metadata refers to, by class (see the module docstring)."""

    valid: SliceSet
    pending: SliceSet
    trash: SliceSet
    negative: list[tuple[int, int]]
    """Slices whose reference record is negative (K < 0)."""
    delfiles: dict[int, tuple[int, int]]
    """ino → (length, deletion time) of every delfile marker."""

    def classify(self, sid: int, index: int, blen: int, block_size: int) -> str | None:
        """The class of block (index, blen) of slice `sid`, or None when no known slice owns it."""
        for name, refs in (("valid", self.valid), ("pending", self.pending), ("trash", self.trash)):
            for size in refs.sizes(sid):
                if valid_block(size, block_size, index, blen):
                    return name
        return None


async def read_delfiles(kv: KV) -> dict[int, tuple[int, int]]:
    """ino → (length, deletion time) of every delfile marker."""

    async def body(tx: Tx) -> dict[int, tuple[int, int]]:
        out: dict[int, tuple[int, int]] = {}
        end = keys.prefix_end(keys.DELFILE_PREFIX)
        async for key, value in tx.scan_iter(keys.DELFILE_PREFIX, end):
            if len(key) == 17:
                ino, length = keys.parse_delfile(key)
                out[ino] = (length, decode_u64(value))
        return out

    return await kv.read(body)


async def collect_references(kv: KV, progress: ProgressBoard) -> References:
    """Scan every chunk record, the slice reference records and the delayed slices (streaming)."""
    delfiles = await read_delfiles(kv)
    in_trash = await trash_jobs.trash_inodes(kv)
    bar = progress.bar("Scanned metadata keys", unit="keys")

    async def body(tx: Tx) -> References:
        refs = References(SliceSet(), SliceSet(), SliceSet(), [], delfiles)
        n = 0
        async for key, value in tx.scan_iter(CHUNK_BEGIN, CHUNK_END):
            n += 1
            if n % PROGRESS_STEP == 0:
                bar.advance(PROGRESS_STEP)
            if not is_chunk_key(key):
                continue
            ino = keys.ino_from_le(key, 1)
            target = refs.pending if ino in delfiles else refs.trash if ino in in_trash else refs.valid
            for sid, size, _, _ in chunk_slices(value):
                target.add(sid, size)
        bar.advance(n % PROGRESS_STEP)
        async for key, value in tx.scan_iter(keys.SLICE_REF_PREFIX, keys.prefix_end(keys.SLICE_REF_PREFIX)):
            if len(key) == 13 and decode_i64(value) < 0:
                pair = keys.parse_slice_ref(key)
                refs.negative.append(pair)
                refs.pending.add(*pair)
        async for _, value in tx.scan_iter(keys.DELAYED_PREFIX, keys.prefix_end(keys.DELAYED_PREFIX)):
            for sid, size in decode_delayed(value):
                refs.trash.add(sid, size)
        return refs

    try:
        refs = await kv.read(body)
    finally:
        bar.close()
    for s in (refs.valid, refs.pending, refs.trash):
        s.freeze()
    return refs


async def referenced_among(kv: KV, candidates: set[int]) -> dict[int, list[int]]:
    """Slice id → sizes, for the ids of `candidates` that any chunk, K or L record references now."""
    if not candidates:
        return {}

    async def body(tx: Tx) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {}
        async for key, value in tx.scan_iter(CHUNK_BEGIN, CHUNK_END):
            if is_chunk_key(key):
                for sid, size, _, _ in chunk_slices(value):
                    if sid in candidates:
                        found.setdefault(sid, []).append(size)
        async for key, _ in tx.scan_iter(keys.SLICE_REF_PREFIX, keys.prefix_end(keys.SLICE_REF_PREFIX)):
            if len(key) == 13:
                sid, size = keys.parse_slice_ref(key)
                if sid in candidates:
                    found.setdefault(sid, []).append(size)
        async for _, value in tx.scan_iter(keys.DELAYED_PREFIX, keys.prefix_end(keys.DELAYED_PREFIX)):
            for sid, size in decode_delayed(value):
                if sid in candidates:
                    found.setdefault(sid, []).append(size)
        return found

    return await kv.read(body)


async def list_blocks(
    store: ObjectStore, volume: str, progress: ProgressBoard
) -> AsyncIterator[tuple[str, ObjectInfo]]:
    """Every object under ``<volume>/chunks/`` as (key relative to the volume, info), with a progress bar."""
    prefix = f"{volume}/"
    bar = progress.bar("Listed objects", unit="objects")
    try:
        async for obj in store.list(prefix + "chunks/"):
            bar.advance()
            yield obj.key[len(prefix) :], obj
    finally:
        bar.close()


# ---------------------------------------------------------------------------------------------- gc


async def run_gc(
    meta_url: str,
    *,
    delete: bool = False,
    compact: bool = False,
    threads: int = DEFAULT_THREADS,
    skip_age: float | None = None,
    progress: ProgressBoard | None = None,
) -> GCReport:
    """Classify every block object of the volume at `meta_url`; with `delete` reclaim leaked and pending
    ones (and purge expired trash), with `compact` compact fragmented chunks first.

    `skip_age` defaults to `skip_age_from_env()`. Raises VolumeError for an unformatted engine; engine and
    object-store errors propagate.
    """
    started = time.monotonic()
    progress = progress or QuietBoard()
    age = skip_age_from_env() if skip_age is None else skip_age
    async with loaded_volume(meta_url) as meta:
        store = await open_bucket(meta.settings)
        blocks = block_store(meta, store, threads)
        meta.free_hook = free_hook(blocks)
        try:
            report = GCReport(skip_age=age, deleted=delete)
            if compact:
                report.compacted_chunks = await compact_all(meta, store, threads, progress)
                meta.free_hook = free_hook(blocks)
            await _classify(meta, store, report, age, delete, threads, progress)
        finally:
            await meta.close()
            await blocks.close()
            await store.close()
    report.seconds = time.monotonic() - started
    log.info("gc_done", summary=report.summary())
    return report


async def _classify(
    meta: Meta, store: ObjectStore, report: GCReport, age: float, delete: bool, threads: int, progress: ProgressBoard
) -> None:
    kv, settings = meta.kv, meta.settings
    bs, hashed = settings.block_bytes, settings.hash_prefix
    refs = await collect_references(kv, progress)
    report.slices = len(refs.valid) + len(refs.trash)
    report.pending_files = len(refs.delfiles)
    report.pending_slices = len(refs.negative)
    listing_start = time.time()
    edge = listing_start - age
    leaked: dict[int, list[tuple[str, int, int, int]]] = {}
    """slice id (0 for unparseable names) → (key, index, blen, stored size) of leaked candidates."""
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
    if not delete:
        return
    await _delete_leaked(kv, store, report, leaked, bs, threads, progress)
    await _finish_pending(meta, report, refs, age, threads, progress)
    report.purged_trash = await trash_jobs.purge_trash(meta)
    report.deleted_sums = await _delete_orphan_sums(kv, refs)


async def _delete_orphan_sums(kv: KV, refs: References) -> int:
    """Delete the block-checksum records of slices that nothing references (see the module docstring)."""
    end = keys.prefix_end(keys.BLOCK_SUMS_PREFIX)

    async def body(tx: Tx) -> set[int]:
        out: set[int] = set()
        async for key, _ in tx.scan_iter(keys.BLOCK_SUMS_PREFIX, end):
            if len(key) == 10:
                sid = keys.parse_block_sums(key)
                if not (refs.valid.sizes(sid) or refs.pending.sizes(sid) or refs.trash.sizes(sid)):
                    out.add(sid)
        return out

    candidates = await kv.read(body)
    doomed = sorted(candidates - set(await referenced_among(kv, candidates)))
    for at in range(0, len(doomed), DELETE_BATCH):
        batch = doomed[at : at + DELETE_BATCH]

        async def drop(tx: Tx, batch: list[int] = batch) -> None:
            for sid in batch:
                tx.delete(keys.block_sums(sid))

        await kv.txn(drop)
    if doomed:
        log.info("gc_orphan_checksums_deleted", records=len(doomed))
    return len(doomed)


async def _delete_leaked(
    kv: KV,
    store: ObjectStore,
    report: GCReport,
    leaked: dict[int, list[tuple[str, int, int, int]]],
    block_size: int,
    threads: int,
    progress: ProgressBoard,
) -> None:
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


async def _finish_pending(
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
    negative = [p for p in await _negative_refs(meta.kv) if p not in refs.valid and p not in refs.trash]
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


async def _negative_refs(kv: KV) -> list[tuple[int, int]]:
    async def body(tx: Tx) -> list[tuple[int, int]]:
        end = keys.prefix_end(keys.SLICE_REF_PREFIX)
        return [
            keys.parse_slice_ref(k)
            async for k, v in tx.scan_iter(keys.SLICE_REF_PREFIX, end)
            if len(k) == 13 and decode_i64(v) < 0
        ]

    return await kv.read(body)


# ------------------------------------------------------------------------------------------ compaction


async def fragmented_chunks(kv: KV, skip: set[int] | dict[int, Any]) -> list[tuple[int, int]]:
    """(ino, indx) of every chunk with more than one slice record, inodes in `skip` excluded."""

    async def body(tx: Tx) -> list[tuple[int, int]]:
        out = []
        async for key, value in tx.scan_iter(CHUNK_BEGIN, CHUNK_END):
            if is_chunk_key(key) and len(value) > SLICE_RECORD_SIZE:
                ino = keys.ino_from_le(key, 1)
                if ino not in skip:
                    out.append((ino, int.from_bytes(key[10:14], "big")))
        return out

    return await kv.read(body)


async def compact_all(meta: Meta, store: ObjectStore, threads: int, progress: ProgressBoard) -> int:
    """Compact every fragmented chunk of the volume with a data path of its own; returns how many were
    rewritten. The replaced slices' blocks are deleted once the swap released them."""
    from jfs.app.data.files import DataPath

    todo = await fragmented_chunks(meta.kv, await read_delfiles(meta.kv))
    if not todo:
        return 0
    config = DataConfig.from_settings(meta.settings, max_compactions=max(1, threads), cache_dir=None)
    dp = await DataPath(meta, store, config).start()
    bar = progress.bar("Compacted chunks", total=len(todo), unit="chunks")
    done = 0

    async def one(ino: int, indx: int) -> None:
        nonlocal done
        try:
            done += bool(await dp.compactor.compact_chunk(ino, indx))
        finally:
            bar.advance()

    try:
        for r in await bounded((one(i, x) for i, x in todo), threads):
            if isinstance(r, BaseException):
                log.warning("compaction_failed", error=str(r))
    finally:
        bar.close()
        await dp.close()
    log.info("gc_compacted", chunks=done, fragmented=len(todo))
    return done

"""Which slices the metadata refers to, by class (valid, pending, trash), and the re-check before deleting.

Contract: `collect_references` streams the chunk records, the slice reference records (``K``) and the
delayed slices (``L``) in one read transaction and returns frozen `SliceSet`s; `referenced_among`
answers, from a fresh scan, which of some candidate slice ids are referenced now (the confirmation before
anything is deleted). Read-only; KV errors propagate.
"""

from __future__ import annotations

from dataclasses import dataclass

from jfs.app.meta.trash import trash_inodes
from jfs.app.ops.chunk_scan import (
    CHUNK_BEGIN,
    CHUNK_END,
    PROGRESS_STEP,
    chunk_slices,
    is_chunk_key,
    read_delfiles,
)
from jfs.app.ops.slice_set import SliceSet
from jfs.app.progress import ProgressBoard
from jfs.domain import keys
from jfs.domain.chunks import valid_block
from jfs.domain.records import decode_delayed, decode_i64
from jfs.ports.kv import KV, Tx


@dataclass
class References:
    """Slices the metadata refers to, by class (see the `jfs.app.ops.gc` docstring)."""

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

    def known(self, sid: int) -> bool:
        """Whether any class holds slice `sid` (whatever its size)."""
        return bool(self.valid.sizes(sid) or self.pending.sizes(sid) or self.trash.sizes(sid))


async def collect_references(kv: KV, progress: ProgressBoard) -> References:
    """Scan every chunk record, the slice reference records and the delayed slices (streaming)."""
    delfiles = await read_delfiles(kv)
    in_trash = await trash_inodes(kv)
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


async def negative_refs(kv: KV) -> list[tuple[int, int]]:
    """(slice id, size) of every slice reference record with K < 0, read now."""

    async def body(tx: Tx) -> list[tuple[int, int]]:
        end = keys.prefix_end(keys.SLICE_REF_PREFIX)
        return [
            keys.parse_slice_ref(k)
            async for k, v in tx.scan_iter(keys.SLICE_REF_PREFIX, end)
            if len(k) == 13 and decode_i64(v) < 0
        ]

    return await kv.read(body)

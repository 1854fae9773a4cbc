"""Which slices the metadata refers to, by class (valid, pending, trash), and the re-check before deleting.

Contract: `collect_references` streams the chunk records, the slice reference records (``K``) and the
delayed slices (``L``) in one read transaction and returns frozen `SliceSet`s — on an engine offering
`PageReadingKV` (Redis) the chunk records come from its pages instead, before that transaction: the same
guarantee as `Tx.scan_iter` there (each page's values read at one moment, the scan as a whole not a
snapshot; gc's safety never rested on one, see the `jfs.app.ops.gc` docstring); `referenced_among`
answers, from a fresh scan, which of some candidate slice ids are referenced now (the confirmation before
anything is deleted). Read-only; KV errors propagate.
"""

from __future__ import annotations

from dataclasses import dataclass

from jfs.app.meta.chunk_scan import (
    CHUNK_BEGIN,
    CHUNK_END,
    chunk_slices,
    chunks_in,
    delayed_in,
    read_delfiles,
    slice_refs_in,
)
from jfs.app.meta.trash import trash_inodes
from jfs.app.ops.slice_set import SliceSet
from jfs.app.progress import ProgressBoard
from jfs.domain import keys
from jfs.domain.chunks import valid_block
from jfs.ports.kv import KV, PageReadingKV, Tx

PAGE = 4096
"""Pairs per page of the inode key space read through `PageReadingKV`."""
_C = 0x43


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

    def add(refs: References, ino: int, value: bytes) -> None:
        target = refs.pending if ino in delfiles else refs.trash if ino in in_trash else refs.valid
        for sid, size, _, _ in chunk_slices(value):
            target.add(sid, size)

    paged = None
    if isinstance(kv, PageReadingKV):  # Redis: pages of native reads (half the server CPU of `scan_iter`'s
        paged = References(SliceSet(), SliceSet(), SliceSet(), [], delfiles)  # script), filtered here
        async for page in kv.read_pages(CHUNK_BEGIN, CHUNK_END, PAGE):
            bar.advance(len(page))
            for key, value in [(k, v) for k, v in page if len(k) == 14 and k[9] == _C]:
                add(paged, keys.ino_from_le(key, 1), value)

    async def body(tx: Tx) -> References:
        if paged is not None:  # (a retried body adds its K and L slices again: sets, fresh `negative`)
            refs = References(paged.valid, paged.pending, paged.trash, [], delfiles)
        else:
            refs = References(SliceSet(), SliceSet(), SliceSet(), [], delfiles)
            async for ino, _, value in chunks_in(tx, bar.advance):
                add(refs, ino, value)
        async for sid, size, count in slice_refs_in(tx):
            if count < 0:
                refs.negative.append((sid, size))
                refs.pending.add(sid, size)
        async for sid, size in delayed_in(tx):
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
        async for _, _, value in chunks_in(tx):
            for sid, size, _, _ in chunk_slices(value):
                if sid in candidates:
                    found.setdefault(sid, []).append(size)
        async for sid, size, _ in slice_refs_in(tx):
            if sid in candidates:
                found.setdefault(sid, []).append(size)
        async for sid, size in delayed_in(tx):
            if sid in candidates:
                found.setdefault(sid, []).append(size)
        return found

    return await kv.read(body)


async def negative_refs(kv: KV) -> list[tuple[int, int]]:
    """(slice id, size) of every slice reference record with K < 0, read now."""

    async def body(tx: Tx) -> list[tuple[int, int]]:
        return [(sid, size) async for sid, size, count in slice_refs_in(tx) if count < 0]

    return await kv.read(body)

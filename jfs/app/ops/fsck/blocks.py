"""fsck's block checks: which block objects a file's records need, and which of them are missing or bad.

Contract: the whole-volume check lists ``<volume>/chunks/`` once (`incomplete_slices`) and only the
slices lacking a block (or having one of the wrong size) are HEADed block by block (`head_blocks`), then
mapped to the files whose records cover a bad block (`files_using`); the path check HEADs the blocks of
the files in scope (`file_blocks`). On compressed or encrypted volumes only existence is checked (sealed
objects are larger than their block). Read-only; object-store and KV errors propagate.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterable

from jfs.app.meta.chunk_scan import chunk_slices, chunks_in, inode_chunks
from jfs.app.ops.block_objects import bounded, list_blocks
from jfs.app.ops.fsck.judge import BlockRef
from jfs.app.ops.fsck.report import FsckReport
from jfs.app.ops.slice_set import SliceSet
from jfs.app.progress import ProgressBar, ProgressBoard
from jfs.domain.chunks import block_count, block_key, block_len, parse_block_key, valid_block
from jfs.ports.kv import KV, Tx
from jfs.ports.objects import ObjectNotFound, ObjectStore

BadBlocks = dict[tuple[int, int], dict[int, str]]
"""(slice id, size) → {block index: "missing" | "size N"} of the bad blocks found."""


def size_ok(stored: int, blen: int, compressed: bool) -> bool:
    """Whether an object of `stored` bytes can hold a block of `blen` bytes."""
    return stored > 0 if compressed else stored == blen


def record_blocks(off: int, length: int, block_size: int) -> range:
    """Indexes of the blocks of a slice that hold bytes [off, off+length) of it."""
    if length <= 0:
        return range(0)
    return range(off // block_size, (off + length - 1) // block_size + 1)


async def incomplete_slices(
    store: ObjectStore, volume: str, slices: SliceSet, block_size: int, hashed: bool, compressed: bool,
    report: FsckReport, progress: ProgressBoard,
) -> list[tuple[int, int]]:  # fmt: skip
    """List the volume's blocks once; the referenced slices that lack a block (or have a bad one)."""
    found = array("H", bytes(2 * len(slices)))
    bad: set[tuple[int, int]] = set()
    async for rel, obj in list_blocks(store, volume, progress):
        report.objects += 1
        parsed = parse_block_key(rel)
        if parsed is None or rel != block_key(*parsed, hash_prefix=hashed):
            continue
        sid, index, blen = parsed
        for size in slices.sizes(sid):
            if valid_block(size, block_size, index, blen):
                if size_ok(obj.size, blen, compressed):
                    i = slices.index(sid, size)
                    assert i is not None
                    found[i] = min(found[i] + 1, 0xFFFF)
                else:
                    bad.add((sid, size))
    return [
        pair for i, pair in enumerate(slices) if found[i] < block_count(pair[1], block_size) or pair in bad
    ]


async def head_blocks(
    store: ObjectStore, volume: str, wanted: Iterable[BlockRef], block_size: int, hashed: bool,
    compressed: bool, threads: int, report: FsckReport, bar: ProgressBar | None = None,
) -> BadBlocks:  # fmt: skip
    """HEAD blocks (slice id, size, index); returns (id, size) → {index: "missing" | "size N"} of bad ones."""
    bad: BadBlocks = defaultdict(dict)

    async def one(sid: int, size: int, index: int) -> None:
        blen = block_len(size, block_size, index)
        key = f"{volume}/{block_key(sid, index, blen, hashed)}"
        report.objects += 1
        if bar is not None:
            bar.advance()
        try:
            info = await store.head(key)
        except ObjectNotFound:
            bad[(sid, size)][index] = "missing"
            return
        if not size_ok(info.size, blen, compressed):
            bad[(sid, size)][index] = f"size {info.size}"

    for r in await bounded((one(*w) for w in wanted), threads):
        if isinstance(r, BaseException):
            raise r
    return dict(bad)


async def files_using(kv: KV, broken: BadBlocks, block_size: int) -> dict[int, set[BlockRef]]:
    """ino → {(slice id, size, block index)} of broken blocks that the inode's records cover."""
    ids = {sid for sid, _ in broken}

    async def body(tx: Tx) -> dict[int, set[BlockRef]]:
        out: dict[int, set[BlockRef]] = defaultdict(set)
        async for ino, _, value in chunks_in(tx):
            for sid, size, off, length in chunk_slices(value):
                if sid in ids:
                    bad = broken.get((sid, size), {})
                    for index in record_blocks(off, length, block_size):
                        if index in bad:
                            out[ino].add((sid, size, index))
        return dict(out)

    return await kv.read(body)


async def file_blocks(kv: KV, files: list[int], block_size: int) -> dict[int, set[BlockRef]]:
    """ino → {(slice id, size, block index)} of every block its records cover."""
    out: dict[int, set[BlockRef]] = {}
    for ino in files:
        used: set[BlockRef] = set()
        for _, value in await inode_chunks(kv, ino):
            for sid, size, off, length in chunk_slices(value):
                for index in record_blocks(off, length, block_size):
                    if index < block_count(size, block_size):
                        used.add((sid, size, index))
        out[ino] = used
    return out

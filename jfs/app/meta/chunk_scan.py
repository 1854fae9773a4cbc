"""Streaming reads of the records that say which slices the volume uses, for the tools that audit or
collect them (gc, fsck, the trash jobs): chunk records, slice reference records (``K``), delayed slices
(``L``), delfile markers and block-checksum records.

Contract: the ``*_in(tx, …)`` functions are async iterators over one scan inside the caller's read
transaction (so a caller combining several sees one snapshot); `read_delfiles` and `inode_chunks` run
their own read transactions. Values come decoded in the engine's terms: inodes, chunk indexes, slice ids
and sizes, `chunk_slices` of a chunk value. Nothing here writes; KV errors propagate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

from jfs.domain import keys
from jfs.domain.records import SLICE_RECORD_SIZE, decode_delayed, decode_i64, decode_u64
from jfs.ports.kv import KV, KeyShape, Tx

CHUNK_BEGIN, CHUNK_END = b"A", b"B"
"""The inode key space (attributes, entries, chunks, ... of every inode)."""
CHUNK_SHAPE = KeyShape(14, 9, 0x43)
"""The shape of a chunk record's key ``A<ino:8>C<indx:4>`` (`keys.chunk`)."""
PROGRESS_STEP = 1024
"""Scanned keys between two progress updates."""


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


def slice_records(value: bytes) -> int:
    """How many slice records (holes included) a chunk value holds."""
    return len(value) // SLICE_RECORD_SIZE


def is_chunk_key(key: bytes) -> bool:
    """Whether `key` is a chunk record ``A<ino>C<indx>`` (length 14, byte 9 = 'C')."""
    return CHUNK_SHAPE.fits(key)


async def chunks_in(tx: Tx, advance: Callable[[int], None] | None = None) -> AsyncIterator[tuple[int, int, bytes]]:
    """(inode, chunk index, raw chunk value) of every chunk record of the volume, in key order (one scan
    of the inode key space; an engine offering `ShapeScanningTx` hands over the chunk records alone).
    `advance(n)` is told every `PROGRESS_STEP` keys scanned, and the rest at the end: a progress bar over
    the keys handed over."""
    n = 0
    shaped = getattr(tx, "scan_shaped_iter", None)
    pairs = shaped(CHUNK_BEGIN, CHUNK_END, CHUNK_SHAPE) if shaped else tx.scan_iter(CHUNK_BEGIN, CHUNK_END)
    async for key, value in pairs:
        n += 1
        if advance is not None and n % PROGRESS_STEP == 0:
            advance(PROGRESS_STEP)
        if is_chunk_key(key):
            yield keys.ino_from_le(key, 1), int.from_bytes(key[10:14], "big"), value
    if advance is not None:
        advance(n % PROGRESS_STEP)


async def slice_refs_in(tx: Tx) -> AsyncIterator[tuple[int, int, int]]:
    """(slice id, size, count) of every slice reference record (``K``): the references beyond the first
    (count > 0), or a slice released but not yet deleted (count < 0)."""
    async for key, value in tx.scan_iter(keys.SLICE_REF_PREFIX, keys.prefix_end(keys.SLICE_REF_PREFIX)):
        if len(key) == 13:
            sid, size = keys.parse_slice_ref(key)
            yield sid, size, decode_i64(value)


async def delayed_in(tx: Tx) -> AsyncIterator[tuple[int, int]]:
    """(slice id, size) of every slice held back for the trash (``L`` records)."""
    async for _, value in tx.scan_iter(keys.DELAYED_PREFIX, keys.prefix_end(keys.DELAYED_PREFIX)):
        for pair in decode_delayed(value):
            yield pair


async def block_sums_in(tx: Tx) -> AsyncIterator[int]:
    """Slice id of every block-checksum record."""
    async for key, _ in tx.scan_iter(keys.BLOCK_SUMS_PREFIX, keys.prefix_end(keys.BLOCK_SUMS_PREFIX)):
        if len(key) == 10:
            yield keys.parse_block_sums(key)


async def inode_chunks(kv: KV, ino: int) -> list[tuple[int, bytes]]:
    """(chunk index, raw chunk value) of every chunk record of `ino`, in index order (one transaction)."""
    prefix = keys.chunk_prefix(ino)

    async def body(tx: Tx) -> list[tuple[int, bytes]]:
        return [(int.from_bytes(k[10:14], "big"), v) async for k, v in tx.scan_iter(prefix, keys.prefix_end(prefix))]

    return await kv.read(body)


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

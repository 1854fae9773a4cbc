"""Streaming reads of the records that say which slices the volume uses, shared by gc and fsck.

Contract: pure decoders (`is_chunk_key`, `chunk_slices`) for the raw chunk records met while scanning the
inode key space ``[CHUNK_BEGIN, CHUNK_END)``, and `read_delfiles`, one read-only transaction over the
delfile markers. Nothing here writes; KV errors propagate.
"""

from __future__ import annotations

from collections.abc import Iterator

from jfs.domain import keys
from jfs.domain.records import SLICE_RECORD_SIZE, decode_u64
from jfs.ports.kv import KV, Tx

CHUNK_BEGIN, CHUNK_END = b"A", b"B"
"""The inode key space (attributes, entries, chunks, ... of every inode)."""
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


def is_chunk_key(key: bytes) -> bool:
    """Whether `key` is a chunk record ``A<ino>C<indx>`` (length 14, byte 9 = 'C')."""
    return len(key) == 14 and key[9] == 0x43


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

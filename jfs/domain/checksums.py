"""Block checksums (opt-in, jfs only): the CRC-32 of every block of a slice, kept in the metadata engine.

Block objects keep JuiceFS's exact format (ADR 0005), so a checksum cannot live inside them. A volume
formatted with ``--checksum`` (setting ``JfsBlockChecksum``) stores, in the transaction that commits a
slice, one record per slice under a key JuiceFS never reads (`jfs.domain.keys.block_sums`)::

    algorithm u8 (1 = zlib CRC-32)  |  slice size u32 BE  |  n × u32 BE: CRC-32 of each uncompressed block

`n` is the slice's block count for the volume's block size. The record is deleted in the transaction
that leaves the slice unreferenced. A slice without a record (written by JuiceFS or before checksums were
turned on) is read unverified. Dumps carry the records (``jfsCrc32``, `jfs.domain.dumpfmt`). See ADR 0008.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

CRC32 = 1
ALGORITHMS = {"crc32": CRC32}
SETTING_FIELD = "JfsBlockChecksum"
"""Name of the volume-setting field (a string naming the algorithm; absent = off). JuiceFS ignores it."""

_HEAD = struct.Struct(">BI")


class BadSumsRecord(ValueError):
    """A checksum record that cannot be decoded or does not fit its slice."""


def block_crc(data: bytes | bytearray | memoryview) -> int:
    """The checksum of one uncompressed block (CRC-32, as `zlib.crc32`)."""
    return zlib.crc32(data) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class SliceSums:
    """The block checksums of one slice of `size` bytes."""

    size: int
    crcs: tuple[int, ...]
    algorithm: int = CRC32

    def encode(self) -> bytes:
        return _HEAD.pack(self.algorithm, self.size) + struct.pack(f">{len(self.crcs)}I", *self.crcs)

    @classmethod
    def decode(cls, value: bytes) -> SliceSums:
        """Parse a record; BadSumsRecord when it is truncated or its length is not whole checksums."""
        if len(value) < _HEAD.size or (len(value) - _HEAD.size) % 4:
            raise BadSumsRecord(f"checksum record of {len(value)} bytes")
        algorithm, size = _HEAD.unpack_from(value)
        n = (len(value) - _HEAD.size) // 4
        return cls(size, struct.unpack_from(f">{n}I", value, _HEAD.size), algorithm)

    def fits(self, size: int, block_size: int) -> bool:
        """Whether this record describes a slice of `size` bytes cut into `block_size` blocks."""
        return self.size == size and len(self.crcs) == -(-size // block_size)


def encode_sums(size: int, crcs: Sequence[int]) -> bytes:
    return SliceSums(size, tuple(crcs)).encode()

"""Binary value codecs for the records stored under the keys of domain/keys.py (all big-endian)."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from jfs.domain.attrs import FILE_TYPES, FileType

T = TypeVar("T")
R = TypeVar("R", bound=tuple)  # type: ignore[type-arg]

_DENTRY = struct.Struct(">BQ")
_SLICE = struct.Struct(">IQIII")
_I64LE = struct.Struct("<q")
_U64 = struct.Struct(">Q")
_DIRSTAT = struct.Struct(">qqq")
_QUOTA = struct.Struct(">qqqq")
_DELAYED = struct.Struct(">QI")

SLICE_RECORD_SIZE = _SLICE.size  # 24


DENTRY_RECORD = _DENTRY
"""A dentry's value, (type, inode): ``DENTRY_RECORD.pack(int(typ), ino)`` is `encode_dentry` without the call."""


def encode_dentry(typ: FileType, ino: int) -> bytes:
    return _DENTRY.pack(int(typ), ino)


def decode_dentries(rows: Iterable[tuple[bytes, bytes]], cut: int) -> list[tuple[bytes, int, FileType]]:
    """``(key[cut:], ino, type)`` of each ``(key, value)`` dentry row, in order: `decode_dentry` of a whole
    listing page in one loop (no call per row). ValueError on an unknown type or a short value."""
    unpack, types = _DENTRY.unpack_from, FILE_TYPES
    out: list[tuple[bytes, int, FileType]] = []
    append = out.append
    for key, value in rows:
        t, ino = unpack(value)
        typ = types.get(t)
        if typ is None:
            raise ValueError(f"{t} is not a valid FileType")
        append((key[cut:], ino, typ))
    return out


def decode_dentries_joined(keys: Sequence[bytes], values: Sequence[bytes], joined: Sequence[T | None], cut: int,
                           row: type[R]) -> list[R]:
    """``row((key[cut:], ino, type, joined[k]))`` for the k-th dentry ``(keys[k], values[k])`` whose `joined`
    item is not None (`row`: a tuple type of those four fields, built without a Python ``__new__`` per
    row), in order: `decode_dentries` and the join of a listing page in one loop. ValueError as there."""
    unpack, types, new = _DENTRY.unpack_from, FILE_TYPES, tuple.__new__
    out: list[R] = []
    append = out.append
    for key, value, other in zip(keys, values, joined, strict=True):
        if other is None:
            continue
        t, ino = unpack(value)
        typ = types.get(t)
        if typ is None:
            raise ValueError(f"{t} is not a valid FileType")
        append(new(row, (key[cut:], ino, typ, other)))
    return out


def decode_dentry(value: bytes) -> tuple[FileType, int]:
    typ, ino = _DENTRY.unpack_from(value)
    return FileType.of(typ), ino


@dataclass(frozen=True, slots=True)
class SliceRecord:
    """One entry of a chunk's slice list: bytes [off, off+len) of slice `id` appear at `pos` in the chunk.

    `id == 0` is a hole (reads as zeros). `size` is the total size of slice `id` (it names its blocks).
    """

    pos: int
    id: int
    size: int
    off: int
    len: int

    def encode(self) -> bytes:
        return _SLICE.pack(self.pos, self.id, self.size, self.off, self.len)

    @property
    def end(self) -> int:
        return self.pos + self.len


class NewSlice(NamedTuple):
    """One slice record to append to a chunk (a slice commit), with its block-checksum record if any."""

    pos: int
    slice_id: int
    size: int
    off: int
    length: int
    mtime_ns: int = 0
    sums: bytes | None = None


def encode_slices(records: list[SliceRecord]) -> bytes:
    return b"".join(r.encode() for r in records)


def decode_slices(value: bytes) -> list[SliceRecord]:
    """Parse a chunk value; a trailing partial record (never written by jfs) is ignored."""
    n = len(value) // SLICE_RECORD_SIZE
    return [SliceRecord(*_SLICE.unpack_from(value, i * SLICE_RECORD_SIZE)) for i in range(n)]


def encode_i64(value: int) -> bytes:
    """Counter encoding: 8-byte little-endian signed (the KV port's `add`/`incr_by` format)."""
    return _I64LE.pack(value)


def _decode_8(codec: struct.Struct, value: bytes | None) -> int:
    """The integer `codec` reads from the first 8 bytes of `value`; 0 when there is no value."""
    return int(codec.unpack(value[:8])[0]) if value else 0


def decode_i64(value: bytes | None) -> int:
    return _decode_8(_I64LE, value)


def encode_u64(value: int) -> bytes:
    return _U64.pack(value)


def decode_u64(value: bytes | None) -> int:
    return _decode_8(_U64, value)


@dataclass(slots=True)
class DirStat:
    """Non-recursive totals over a directory's direct children."""

    length: int = 0
    space: int = 0
    inodes: int = 0

    def encode(self) -> bytes:
        return _DIRSTAT.pack(self.length, self.space, self.inodes)

    @classmethod
    def decode(cls, value: bytes | None) -> DirStat:
        if not value or len(value) < _DIRSTAT.size:
            return cls()
        return cls(*_DIRSTAT.unpack(value[: _DIRSTAT.size]))


@dataclass(slots=True)
class Quota:
    """A quota record; a max ≤ 0 means unlimited."""

    max_space: int = -1
    max_inodes: int = -1
    used_space: int = 0
    used_inodes: int = 0

    def encode(self) -> bytes:
        return _QUOTA.pack(self.max_space, self.max_inodes, self.used_space, self.used_inodes)

    @classmethod
    def decode(cls, value: bytes) -> Quota:
        return cls(*_QUOTA.unpack(value[: _QUOTA.size]))


def encode_delayed(slices: list[tuple[int, int]]) -> bytes:
    return b"".join(_DELAYED.pack(sid, size) for sid, size in slices)


def decode_delayed(value: bytes) -> list[tuple[int, int]]:
    return [tuple(_DELAYED.unpack_from(value, i * 12)) for i in range(len(value) // 12)]  # type: ignore[misc]

"""Totals of a directory page's attribute records at once, for ``jfs summary`` (pure).

`tally(records, top)` counts what `Attr.decode` of each record would give — non-directories, the length of
regular files, the space of non-directories (`align4k` of a regular file's length, 4 KiB for anything
else), which records are directories — and picks the `top` biggest non-directories by space, earlier
records first among equals (a page is in name order, so that is "then by name"). A record that is None (the
inode went away after the listing) is skipped.

Speed: a page of the usual records (72 bytes: no ACL, no tier; a known type) is decoded column-wise — one
join, strided slices for the type nibbles and the eight length bytes, one `array` of lengths — instead of an
`Attr` per record; any other page goes record by record through `Attr.decode` (which raises ValueError on a
malformed record, as a listing does). tests/unit/test_tally.py checks both against `Attr.decode`.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from typing import NamedTuple

from jfs.domain.attrs import Attr, FileType, align4k

_SIZE = 72
"""Bytes of the usual record (`Attr.encode` without ACLs or tier)."""
_LENGTH_AT = 51
"""Offset of the big-endian 8-byte length in a record (after flags, mode, uid, gid, the times, nlink)."""
_TYPE_OF = bytes(b >> 4 for b in range(256))
"""The high byte of the big-endian mode → the file type (type << 12 | permission bits)."""
_TYPES = bytes(int(t) for t in FileType)
_DIR = int(FileType.DIRECTORY)
_REG = int(FileType.REGULAR)
_BIG_ENDIAN = sys.byteorder == "big"


class Tally(NamedTuple):
    """See `tally`."""

    files: int
    """Records that are not directories."""
    length: int
    """Σ length of the regular files."""
    space: int
    """Σ space of the non-directories, in bytes."""
    dirs: list[int]
    """Indices of the directories, ascending."""
    top: list[int]
    """Indices of the biggest non-directories (see `tally`), in no particular order."""


def tally(records: Sequence[bytes | None], top: int) -> Tally:
    """The totals of `records` (see the module docstring) and the indices of the `top` biggest
    non-directories by space, earlier first among equals (`top` < 0: every non-directory; 0: none)."""
    n = len(records)
    if n and None not in records and min(map(len, records)) == _SIZE == max(map(len, records)):  # type: ignore[arg-type]
        joined = b"".join(records)  # type: ignore[arg-type]
        types = joined[1::_SIZE].translate(_TYPE_OF)
        if not types.translate(None, _TYPES):
            return _columns(joined, types, n, top)
    return _one_by_one(records, top)


def _columns(joined: bytes, types: bytes, n: int, top: int) -> Tally:
    raw = bytearray(8 * n)
    for j in range(8):
        raw[j::8] = joined[_LENGTH_AT + j::_SIZE]
    lengths = array("Q", raw)
    if not _BIG_ENDIAN:
        lengths.byteswap()
    dirs: list[int] = []
    if types.count(_REG) != n:  # zero the length of what is not a regular file, note the directories
        for i, t in enumerate(types):
            if t != _REG:
                lengths[i] = 0
                if t == _DIR:
                    dirs.append(i)
    units = [((x + 4095) >> 12) or 1 for x in lengths]
    for i in dirs:
        units[i] = 0
    files = n - len(dirs)
    return Tally(files, sum(lengths), sum(units) << 12, dirs, biggest(units, files, top))


def _one_by_one(records: Sequence[bytes | None], top: int) -> Tally:
    return tally_attrs([None if raw is None else Attr.decode(raw) for raw in records], top)


def tally_attrs(attrs: Sequence[Attr | None], top: int) -> Tally:
    """`tally` of decoded attributes (None: an entry left out, counted nowhere)."""
    files = length = 0
    dirs: list[int] = []
    units = [0] * len(attrs)
    for i, a in enumerate(attrs):
        if a is None:
            continue
        if a.typ is FileType.DIRECTORY:
            dirs.append(i)
            continue
        files += 1
        size = a.length if a.typ is FileType.REGULAR else 0
        length += size
        units[i] = align4k(size) >> 12
    return Tally(files, length, sum(units) << 12, dirs, biggest(units, files, top))


def biggest(units: list[int], files: int, top: int) -> list[int]:
    """Indices of the `top` largest of `units` (0: not a candidate; `files` candidates), earlier first among
    equals (`top` < 0: every candidate, 0: none)."""
    if top == 0 or files == 0:
        return []
    if top < 0 or files <= top:
        return [i for i, u in enumerate(units) if u]
    ordered = sorted(units)
    cut = ordered[-top]  # the top-th largest: everything above it is in, then the first of those equal to it
    picked = [i for i, u in enumerate(units) if u > cut] if ordered[-1] > cut else []
    want = top - len(picked)
    for i, u in enumerate(units):
        if u == cut:
            picked.append(i)
            want -= 1
            if not want:
                break
    return picked

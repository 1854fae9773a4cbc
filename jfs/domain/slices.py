"""The overlay rule of a chunk: how its append-ordered slice records resolve into visible data.

A chunk's value is a list of `SliceRecord`s, oldest first. Reading applies them in order and the newest
record wins wherever records overlap; bytes no record covers (and hole records, id 0) read as zeros.
`resolve` turns the records into non-overlapping `Piece`s; `read_pieces` cuts out a byte range.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from jfs.domain.records import SliceRecord


@dataclass(frozen=True, slots=True)
class Piece:
    """Bytes [off, off+len) of slice `id` (of total `size`) are visible at chunk position `pos`.

    `id == 0` is a hole (zeros); holes always have `size == 0` and `off == 0`.
    """

    pos: int
    id: int
    size: int
    off: int
    len: int

    @property
    def end(self) -> int:
        return self.pos + self.len

    @property
    def is_hole(self) -> bool:
        return self.id == 0

    @classmethod
    def hole(cls, pos: int, length: int) -> Piece:
        return cls(pos, 0, 0, 0, length)

    def cut(self, start: int, end: int) -> Piece:
        """The part of this piece inside chunk positions [start, end) (which must intersect it)."""
        lo = max(start, self.pos)
        hi = min(end, self.end)
        if self.id == 0:
            return Piece.hole(lo, hi - lo)
        return Piece(lo, self.id, self.size, self.off + (lo - self.pos), hi - lo)


def _piece_of(record: SliceRecord) -> Piece:
    if record.id == 0:
        return Piece.hole(record.pos, record.len)
    return Piece(record.pos, record.id, record.size, record.off, record.len)


def resolve(records: Sequence[SliceRecord]) -> list[Piece]:
    """The visible layout of a chunk whose slice list is `records` (oldest first, newest wins).

    Returns non-overlapping pieces, ascending by `pos`, that tile [0, max end of the records) exactly,
    with hole pieces in the gaps. Zero-length records are ignored. Adjacent pieces are not merged.
    Runs in O(n log n) comparisons plus list moves for n records.
    """
    starts: list[int] = []  # starts[i] == layout[i].pos, kept for bisect
    layout: list[Piece] = []
    for record in records:
        if record.len <= 0:
            continue
        new = _piece_of(record)
        lo, hi = new.pos, new.end
        # First piece that ends after `lo`: the one starting at or before lo may still overlap it.
        i = bisect_right(starts, lo) - 1
        if i < 0 or layout[i].end <= lo:
            i += 1
        # Pieces [i, j) start before `hi`, so all of them intersect [lo, hi).
        j = bisect_left(starts, hi, lo=i)
        replacement: list[Piece] = []
        if i < j and layout[i].pos < lo:
            replacement.append(layout[i].cut(layout[i].pos, lo))
        replacement.append(new)
        if i < j and layout[j - 1].end > hi:
            replacement.append(layout[j - 1].cut(hi, layout[j - 1].end))
        layout[i:j] = replacement
        starts[i:j] = [p.pos for p in replacement]
    return _fill_gaps(layout)


def _fill_gaps(layout: Sequence[Piece], start: int = 0) -> list[Piece]:
    out: list[Piece] = []
    at = start
    for piece in layout:
        if piece.pos > at:
            out.append(Piece.hole(at, piece.pos - at))
        out.append(piece)
        at = piece.end
    return out


def read_pieces(source: Sequence[SliceRecord] | Sequence[Piece], pos: int, length: int) -> list[Piece]:
    """The pieces that make up exactly chunk bytes [pos, pos+length), in order.

    `source` is either a chunk's slice records (resolved first) or pieces from `resolve`. Pieces are
    trimmed to the range (a piece cut on the left has its `off` advanced); every byte no piece covers,
    including past the end of the written data, is returned as a hole.
    """
    if pos < 0 or length < 0:
        raise ValueError(f"invalid range pos={pos} length={length}")
    if length == 0:
        return []
    pieces: Sequence[Piece]
    if source and isinstance(source[0], SliceRecord):
        pieces = resolve(cast(Sequence[SliceRecord], source))
    else:
        pieces = cast(Sequence[Piece], source)
    end = pos + length
    # Piece ends are ascending, so the first piece ending after `pos` is found by bisection.
    i = bisect_right(pieces, pos, key=lambda p: p.end)
    out: list[Piece] = []
    at = pos
    while at < end and i < len(pieces) and pieces[i].pos < end:
        piece = pieces[i]
        if piece.pos > at:
            out.append(Piece.hole(at, piece.pos - at))
        out.append(piece.cut(at, end))
        at = min(piece.end, end)
        i += 1
    if at < end:
        out.append(Piece.hole(at, end - at))
    return out


def data_end(pieces: Sequence[Piece]) -> int:
    """End of the last non-hole piece (0 when there is none): the extent of actually stored data."""
    for piece in reversed(pieces):
        if not piece.is_hole:
            return piece.end
    return 0


def referenced_slices(records: Sequence[SliceRecord]) -> list[tuple[int, int]]:
    """Distinct non-hole (id, size) pairs named by `records`, in order of first appearance."""
    seen: dict[tuple[int, int], None] = {}
    for record in records:
        if record.id != 0:
            seen.setdefault((record.id, record.size), None)
    return list(seen)

"""The overlay rule: `resolve` and `read_pieces` against a per-byte model of a small chunk."""

from __future__ import annotations

import random
import time

from hypothesis import given
from hypothesis import strategies as st

from jfs.domain.chunks import CHUNK_SIZE
from jfs.domain.records import SliceRecord
from jfs.domain.slices import Piece, data_end, read_pieces, referenced_slices, resolve

SMALL_CHUNK = 64

Byte = tuple[int, int] | None  # (slice id, offset inside the slice), or None for a zero byte


def slice_size(slice_id: int) -> int:
    return 100 + slice_id


@st.composite
def records_strategy(draw: st.DrawFn, chunk: int = SMALL_CHUNK) -> SliceRecord:
    pos = draw(st.integers(0, chunk - 1))
    length = draw(st.integers(0, chunk - pos))
    slice_id = draw(st.integers(0, 6))
    if slice_id == 0:
        return SliceRecord(pos, 0, 0, 0, length)
    size = slice_size(slice_id)
    off = draw(st.integers(0, size - length))
    return SliceRecord(pos, slice_id, size, off, length)


record_lists = st.lists(records_strategy(), max_size=25)


def model(records: list[SliceRecord], n: int = SMALL_CHUNK) -> list[Byte]:
    """Naive overlay: write every record's bytes in order into an array."""
    arr: list[Byte] = [None] * n
    for r in records:
        for i in range(r.len):
            arr[r.pos + i] = (r.id, r.off + i) if r.id else None
    return arr


def expand(pieces: list[Piece]) -> list[Byte]:
    out: list[Byte] = []
    for p in pieces:
        out.extend((p.id, p.off + i) if p.id else None for i in range(p.len))
    return out


def max_end(records: list[SliceRecord]) -> int:
    return max((r.end for r in records if r.len > 0), default=0)


@given(record_lists)
def test_resolve_matches_the_per_byte_model(records: list[SliceRecord]) -> None:
    pieces = resolve(records)
    end = max_end(records)
    assert expand(pieces) == model(records)[:end]
    at = 0
    for p in pieces:
        assert p.pos == at and p.len > 0
        if p.id == 0:
            assert (p.size, p.off) == (0, 0)
        else:
            assert p.off + p.len <= p.size
        at = p.end
    assert at == end


@given(record_lists, st.integers(0, SMALL_CHUNK + 8), st.integers(0, SMALL_CHUNK + 8))
def test_read_pieces_covers_exactly_the_range(records: list[SliceRecord], pos: int, length: int) -> None:
    want = (model(records, SMALL_CHUNK * 3))[pos : pos + length]
    for source in (records, resolve(records)):
        got = read_pieces(source, pos, length)
        assert expand(got) == want
        at = pos
        for p in got:
            assert p.pos == at and p.len > 0
            at = p.end
        assert at == pos + length


def test_newest_wins_with_left_and_right_remnants() -> None:
    old = SliceRecord(0, 1, 100, 10, 100)
    new = SliceRecord(30, 2, 20, 0, 20)
    assert resolve([old, new]) == [
        Piece(0, 1, 100, 10, 30),
        Piece(30, 2, 20, 0, 20),
        Piece(50, 1, 100, 60, 50),
    ]
    # Order matters: the older write is hidden where the newer one covers it.
    assert resolve([new, old]) == [Piece(0, 1, 100, 10, 100)]


def test_gaps_before_and_between_records_are_holes() -> None:
    records = [SliceRecord(10, 1, 5, 0, 5), SliceRecord(20, 2, 5, 0, 5)]
    assert resolve(records) == [
        Piece.hole(0, 10),
        Piece(10, 1, 5, 0, 5),
        Piece.hole(15, 5),
        Piece(20, 2, 5, 0, 5),
    ]


def test_golden_record_list_from_juicefs() -> None:
    # 12 B at 0, then 8 B at 4, then 10 B at 100 (slice ids 1, 3, 4).
    records = [
        SliceRecord(0, 1, 12, 0, 12),
        SliceRecord(4, 3, 8, 0, 8),
        SliceRecord(100, 4, 10, 0, 10),
    ]
    assert resolve(records) == [
        Piece(0, 1, 12, 0, 4),
        Piece(4, 3, 8, 0, 8),
        Piece.hole(12, 88),
        Piece(100, 4, 10, 0, 10),
    ]


def test_hole_record_hides_older_data() -> None:
    records = [SliceRecord(0, 1, 50, 0, 50), SliceRecord(10, 0, 0, 0, 30)]
    assert resolve(records) == [Piece(0, 1, 50, 0, 10), Piece.hole(10, 30), Piece(40, 1, 50, 40, 10)]
    assert data_end(resolve(records)) == 50
    assert data_end(resolve([SliceRecord(0, 0, 0, 0, 9)])) == 0


def test_read_beyond_written_data_is_zeros() -> None:
    records = [SliceRecord(0, 7, 8, 0, 8)]
    assert read_pieces(records, 4, 10) == [Piece(4, 7, 8, 4, 4), Piece.hole(8, 6)]
    assert read_pieces([], 0, 5) == [Piece.hole(0, 5)]
    assert read_pieces(records, 3, 0) == []


def test_referenced_slices_are_distinct_and_skip_holes() -> None:
    records = [SliceRecord(0, 5, 9, 0, 9), SliceRecord(0, 0, 0, 0, 3), SliceRecord(2, 5, 9, 1, 2)]
    assert referenced_slices(records) == [(5, 9)]


def test_resolve_handles_a_thousand_full_size_records_quickly() -> None:
    rng = random.Random(7)
    records = []
    for i in range(1, 1001):
        pos = rng.randrange(CHUNK_SIZE)
        length = rng.randint(1, min(4 << 20, CHUNK_SIZE - pos))
        records.append(SliceRecord(pos, i, length, 0, length))
    started = time.perf_counter()
    pieces = resolve(records)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    assert pieces[-1].end == max_end(records)
    assert all(a.end == b.pos for a, b in zip(pieces, pieces[1:], strict=False))
    # The newest record is always entirely visible.
    last = records[-1]
    assert Piece(last.pos, last.id, last.size, last.off, last.len) in pieces

"""Compaction planning: the compacted record list must read back exactly like the original."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jfs.domain.compaction import (
    CompactionPlan,
    StalePlanError,
    Trigger,
    apply,
    must_compact_now,
    needs_compaction,
    plan,
    released_slices,
)
from jfs.domain.records import SliceRecord
from jfs.domain.slices import Piece, read_pieces

CHUNK = 64
NEW_ID = 1000
Byte = tuple[int, int] | None


@st.composite
def record(draw: st.DrawFn) -> SliceRecord:
    pos = draw(st.integers(0, CHUNK - 1))
    length = draw(st.integers(1, CHUNK - pos))
    slice_id = draw(st.integers(0, 8))
    if slice_id == 0:
        return SliceRecord(pos, 0, 0, 0, length)
    size = 100 + slice_id
    return SliceRecord(pos, slice_id, size, draw(st.integers(0, size - length)), length)


record_lists = st.lists(record(), max_size=14)


def read_chunk(records: list[SliceRecord], store: dict[int, list[Byte]]) -> list[Byte]:
    """Per-byte model of reading the whole small chunk; `store` holds the content of rewritten slices."""
    arr: list[Byte] = [None] * CHUNK
    for r in records:
        for i in range(r.len):
            if r.id == 0:
                arr[r.pos + i] = None
            elif r.id in store:
                arr[r.pos + i] = store[r.id][r.off + i]
            else:
                arr[r.pos + i] = (r.id, r.off + i)
    return arr


def write_new_slice(p: CompactionPlan, records: list[SliceRecord]) -> list[Byte]:
    """What the app writes: the planned pieces read from the old slices, zeros for holes."""
    data: list[Byte] = []
    at = p.pos
    for piece in p.pieces:
        assert piece.pos == at
        for i in range(piece.len):
            data.append((piece.id, piece.off + i) if piece.id else None)
        at = piece.end
    assert len(data) == p.size
    return data


@given(record_lists, st.integers(1, 16), st.sampled_from([1, 4, 16, 1 << 20]), st.lists(record(), max_size=3))
def test_compacted_chunk_reads_the_same(
    records: list[SliceRecord], max_records: int, min_skip: int, appended: list[SliceRecord]
) -> None:
    p = plan(records, max_records=max_records, min_skip_size=min_skip)
    if p is None:
        # Only skipping can leave fewer than 2 records to merge, and only a large data record is skipped.
        considered = records[:max_records]
        assert len(considered) < 2 or (considered[0].id != 0 and considered[0].len >= min_skip)
        assert len(considered) < 2 or plan(considered, min_skip_size=1 << 62) is not None
        return
    check_plan(records, p, max_records, appended)


@st.composite
def big_then_small(draw: st.DrawFn) -> list[SliceRecord]:
    """Disjoint large leading records (candidates for skipping) followed by random writes."""
    cuts = sorted(draw(st.sets(st.integers(0, CHUNK // 2), min_size=2, max_size=6)))
    lead = [
        SliceRecord(a, 20 + i, b - a, 0, b - a) for i, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False))
    ]
    return draw(st.permutations(lead)) + draw(st.lists(record(), max_size=6))


@given(big_then_small(), st.lists(record(), max_size=2))
def test_skipping_keeps_reads_identical(records: list[SliceRecord], appended: list[SliceRecord]) -> None:
    p = plan(records, min_skip_size=4)
    if p is not None:
        check_plan(records, p, len(records), appended)
        for kept in p.skipped:
            assert kept.len >= 4 and kept.len * 5 >= p.size


def check_plan(
    records: list[SliceRecord], p: CompactionPlan, max_records: int, appended: list[SliceRecord]
) -> None:
    assert p.consumed >= 2
    assert len(p.skipped) + p.consumed == min(len(records), max_records)
    # Records committed between planning and applying must survive, after the new slice.
    current = records + appended
    new = apply(current, p, NEW_ID)
    store = {NEW_ID: write_new_slice(p, records)} if p.writes_slice else {}
    assert read_chunk(new, store) == read_chunk(current, {})
    assert len(new) < len(current)
    tail = current[len(p.basis) :]
    assert new[len(new) - len(tail) :] == tail
    assert new[: len(p.skipped)] == list(p.skipped)
    if p.writes_slice:
        assert new[len(p.skipped)] == SliceRecord(p.pos, NEW_ID, p.size, 0, p.size)
        assert p.pieces[0].id != 0 and p.pieces[-1].id != 0


MIB = 1 << 20


def test_large_fully_visible_leading_records_are_skipped() -> None:
    big = SliceRecord(0, 1, 4 * MIB, 0, 4 * MIB)
    small = [SliceRecord(4 * MIB + i * 100, 10 + i, 100, 0, 100) for i in range(3)]
    p = plan([big, *small])
    assert p is not None
    assert p.skipped == (big,)
    assert p.consumed == 3
    assert (p.pos, p.size) == (4 * MIB, 300)
    assert apply([big, *small], p, 99) == [big, SliceRecord(4 * MIB, 99, 300, 0, 300)]


def test_overwritten_or_small_leading_records_are_merged() -> None:
    big = SliceRecord(0, 1, 4 * MIB, 0, 4 * MIB)
    overwrite = SliceRecord(MIB, 2, 100, 0, 100)
    p = plan([big, overwrite])
    assert p is not None and p.skipped == () and p.consumed == 2
    assert p.pieces == (
        Piece(0, 1, 4 * MIB, 0, MIB),
        Piece(MIB, 2, 100, 0, 100),
        Piece(MIB + 100, 1, 4 * MIB, MIB + 100, 3 * MIB - 100),
    )
    # A big record that is less than 1/5 of the merged result is merged too.
    far = SliceRecord(60 * MIB, 3, 100, 0, 100)
    p = plan([big, far])
    assert p is not None and p.skipped == () and (p.pos, p.size) == (0, 60 * MIB + 100)


def test_holes_are_trimmed_at_the_edges_and_zero_filled_inside() -> None:
    records = [SliceRecord(10, 1, 5, 0, 5), SliceRecord(30, 2, 5, 0, 5), SliceRecord(40, 0, 0, 0, 20)]
    p = plan(records, min_skip_size=1 << 62)
    assert p is not None
    assert (p.pos, p.size) == (10, 25)
    assert p.pieces == (Piece(10, 1, 5, 0, 5), Piece.hole(15, 15), Piece(30, 2, 5, 0, 5))


def test_only_holes_left_means_the_records_are_dropped() -> None:
    records = [SliceRecord(0, 1, 10, 0, 10), SliceRecord(0, 0, 0, 0, 10)]
    p = plan(records)
    assert p is not None and not p.writes_slice and p.size == 0
    new = apply(records, p, 0)
    assert new == []
    assert read_pieces(new, 0, 10) == [Piece.hole(0, 10)]
    assert released_slices(records, new) == [(1, 10)]


def test_too_few_records_give_no_plan() -> None:
    assert plan([]) is None
    assert plan([SliceRecord(0, 1, 10, 0, 10)]) is None
    big = SliceRecord(0, 1, 4 * MIB, 0, 4 * MIB)
    # After skipping the big one a single record remains: nothing to merge.
    assert plan([big, SliceRecord(4 * MIB, 2, 10, 0, 10)]) is None


def test_only_max_records_are_considered() -> None:
    records = [SliceRecord(i, i + 1, 1, 0, 1) for i in range(10)]
    p = plan(records, max_records=4)
    assert p is not None and p.consumed == 4 and (p.pos, p.size) == (0, 4)
    assert apply(records, p, 77) == [SliceRecord(0, 77, 4, 0, 4), *records[4:]]


def test_a_changed_chunk_makes_the_plan_stale() -> None:
    records = [SliceRecord(0, 1, 10, 0, 10), SliceRecord(5, 2, 10, 0, 10)]
    p = plan(records)
    assert p is not None
    assert p.still_valid(records + [SliceRecord(0, 3, 1, 0, 1)])
    rewritten = [SliceRecord(0, 9, 15, 0, 15)]
    assert not p.still_valid(rewritten)
    with pytest.raises(StalePlanError):
        apply(rewritten, p, 50)


def test_released_slices_lists_each_unreferenced_slice_once() -> None:
    old = [SliceRecord(0, 1, 10, 0, 10), SliceRecord(2, 2, 5, 0, 5), SliceRecord(3, 1, 10, 3, 2)]
    new = [SliceRecord(0, 2, 5, 0, 5), SliceRecord(0, 9, 10, 0, 10)]
    assert released_slices(old, new) == [(1, 10)]
    assert released_slices(old, old) == []


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, False), (98, False), (99, True), (100, False), (199, True), (350, False), (351, True)],
)
def test_commit_trigger(n: int, expected: bool) -> None:
    assert needs_compaction(n, trigger=Trigger.COMMIT) is expected


def test_read_trigger_and_synchronous_threshold() -> None:
    assert not needs_compaction(4, 4, trigger=Trigger.READ)
    assert needs_compaction(5, 1, trigger=Trigger.READ)
    assert needs_compaction(2, 5, trigger=Trigger.READ)
    assert not must_compact_now(2499)
    assert must_compact_now(2500)

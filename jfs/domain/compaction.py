"""Compaction planning: replacing many slice records of a chunk by one new slice.

The imperative shell (app layer) does the I/O: it calls `plan`, allocates a slice id, reads
`plan.pieces` (zeros for holes) and writes them as one slice of `plan.size` bytes, then in one
transaction checks `plan.still_valid` against the current record list, stores `apply(...)`, and
releases `released_slices(old, new)`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from jfs.domain.records import SliceRecord
from jfs.domain.slices import Piece, resolve

MAX_COMPACT_RECORDS = 1000
"""Only this many leading records of a chunk are considered by one compaction."""
MIN_SKIP_SIZE = 1 << 20
"""A leading record must be at least this long (and 1/5 of the merged result) to be left alone."""
SYNC_COMPACT_RECORDS = 2500
"""At this many records a writer compacts synchronously instead of in the background."""
READ_COMPACT_RECORDS = 5
"""A read that sees this many records (or resolved pieces) schedules a compaction."""


class StalePlanError(ValueError):
    """The chunk's record list no longer starts with the records a plan was made from."""


@dataclass(frozen=True, slots=True)
class CompactionPlan:
    """What to compact in one chunk.

    * `skipped`: leading records kept as they are (large and fully visible).
    * `consumed`: how many records after the skipped ones the new slice replaces.
    * `basis`: `skipped` + the consumed records, i.e. the prefix the record list must still have when
      the plan is applied.
    * `pos`, `size`: where the new slice goes in the chunk and how long it is (leading/trailing holes
      trimmed). `size == 0` means the consumed records show nothing but holes: they are dropped and no
      new slice is written.
    * `pieces`: what to read, tiling [pos, pos+size) in order; hole pieces are written as zeros.
    """

    pos: int
    size: int
    pieces: tuple[Piece, ...]
    skipped: tuple[SliceRecord, ...]
    consumed: int
    basis: tuple[SliceRecord, ...]

    @property
    def writes_slice(self) -> bool:
        """Whether a new slice must be allocated and written (False when only holes are dropped)."""
        return self.size > 0

    def still_valid(self, records: Sequence[SliceRecord]) -> bool:
        """Whether the current list `records` still starts with the records this plan was made from."""
        n = len(self.basis)
        return len(records) >= n and tuple(records[:n]) == self.basis


def _merge(records: Sequence[SliceRecord]) -> tuple[int, int, list[Piece]]:
    """(pos, size, pieces) of the resolved layout of `records` with leading/trailing holes trimmed."""
    pieces = resolve(records)
    lo, hi = 0, len(pieces)
    while lo < hi and pieces[lo].is_hole:
        lo += 1
    while hi > lo and pieces[hi - 1].is_hole:
        hi -= 1
    if lo == hi:
        return 0, 0, []
    kept = pieces[lo:hi]
    return kept[0].pos, kept[-1].end - kept[0].pos, kept


def _skippable(
    ss: Sequence[SliceRecord], pos: int, size: int, pieces: Sequence[Piece], min_skip: int
) -> bool:
    first = ss[0]
    if first.id == 0 or first.len < min_skip or first.len * 5 < size or size == 0:
        return False
    head = pieces[0]
    # Fully visible and first: its whole range is the first piece of the merged layout, so every later
    # record's data lies after it and the merged slice cannot cover it.
    if (pos, head.id, head.off, head.len) != (first.pos, first.id, first.off, first.len):
        return False
    # The same record repeated later would be both kept and consumed; merge it instead.
    return first not in ss[1:]


def plan(
    records: Sequence[SliceRecord],
    *,
    max_records: int = MAX_COMPACT_RECORDS,
    min_skip_size: int = MIN_SKIP_SIZE,
) -> CompactionPlan | None:
    """Plan the compaction of a chunk whose slice list is `records` (oldest first).

    Only the first `max_records` records are considered; later ones stay after the new slice. Leading
    records that are at least `min_skip_size` long, at least 1/5 of the merged size, and fully visible
    are skipped; the rest are merged. Returns None when fewer than 2 records would be merged.
    """
    considered = list(records[:max_records])
    skip = 0
    while True:
        ss = considered[skip:]
        if len(ss) < 2:
            return None
        pos, size, pieces = _merge(ss)
        if not _skippable(ss, pos, size, pieces, min_skip_size):
            break
        skip += 1
    return CompactionPlan(
        pos=pos,
        size=size,
        pieces=tuple(pieces),
        skipped=tuple(considered[:skip]),
        consumed=len(ss),
        basis=tuple(considered),
    )


def apply(records: Sequence[SliceRecord], plan: CompactionPlan, new_slice_id: int) -> list[SliceRecord]:
    """The record list after replacing the consumed records by slice `new_slice_id`.

    `records` is the chunk's current list, which may have grown since planning: records after the
    plan's basis are kept after the new one. Raises StalePlanError when `records` no longer starts with
    the plan's basis (the chunk was rewritten meanwhile; abandon the new slice).
    """
    if not plan.still_valid(records):
        raise StalePlanError("chunk changed since the compaction was planned")
    if plan.size > 0 and new_slice_id <= 0:
        raise ValueError(f"invalid slice id {new_slice_id}")
    out = list(plan.skipped)
    if plan.size > 0:
        out.append(SliceRecord(plan.pos, new_slice_id, plan.size, 0, plan.size))
    out.extend(records[len(plan.basis) :])
    return out


def released_slices(
    old_records: Sequence[SliceRecord], new_records: Sequence[SliceRecord]
) -> list[tuple[int, int]]:
    """Distinct non-hole (id, size) pairs referenced by `old_records` but not by `new_records`.

    In order of first appearance; each lost one reference from this chunk.
    """
    still = {r.id for r in new_records}
    out: dict[tuple[int, int], None] = {}
    for r in old_records:
        if r.id != 0 and r.id not in still:
            out.setdefault((r.id, r.size), None)
    return list(out)


class Trigger(enum.Enum):
    COMMIT = "commit"
    READ = "read"


def needs_compaction(n_records: int, n_pieces: int = 0, *, trigger: Trigger = Trigger.COMMIT) -> bool:
    """Whether a chunk should be compacted in the background.

    After a commit (`n_records` counts the list including the new record): when n % 100 == 99 or
    n > 350. After a read: when the chunk has at least 5 records or resolves into at least 5 pieces.
    """
    if trigger is Trigger.READ:
        return n_records >= READ_COMPACT_RECORDS or n_pieces >= READ_COMPACT_RECORDS
    return n_records % 100 == 99 or n_records > 350


def must_compact_now(n_records: int) -> bool:
    """Whether a committing writer should compact synchronously (the chunk has grown far too long)."""
    return n_records >= SYNC_COMPACT_RECORDS

"""`SliceSet`: the compact set of (slice id, slice size) pairs that gc and fsck collect while scanning.

Contract: about 8 bytes per distinct pair (plus a sorting buffer of at most `run` entries); pairs are added
while scanning, then `freeze` makes the set read-only and answers `sizes`, `index`, membership and sorted
iteration. `add` after `freeze` raises RuntimeError.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left
from collections.abc import Iterator

_PACK = 32
_SIZE_MASK = (1 << _PACK) - 1


class SliceSet:
    """A set of (slice id, slice size) pairs at about 8 bytes per distinct pair.

    Pairs are packed as ``id << 32 | size`` into unsigned 64-bit arrays, sorted and de-duplicated in runs as
    they arrive; `freeze` merges the runs into one sorted array, after which the set answers `sizes`,
    `index` and iteration (and refuses `add`). Ids of 2^32 and above go to a plain set (slice ids are
    allocated from 1 upwards, so in practice none).
    """

    def __init__(self, run: int = 1 << 18) -> None:
        self._run = run
        self._buf: array[int] = array("Q")
        self._runs: list[array[int]] = []
        self._big: set[tuple[int, int]] = set()
        self._arr: array[int] | None = None
        self._big_sorted: list[tuple[int, int]] = []

    def add(self, slice_id: int, size: int) -> None:
        if self._arr is not None:
            raise RuntimeError("SliceSet is frozen")
        if slice_id >> _PACK or size >> _PACK:
            self._big.add((slice_id, size))
            return
        self._buf.append(slice_id << _PACK | size)
        if len(self._buf) >= self._run:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._runs.append(array("Q", sorted(set(self._buf))))
            self._buf = array("Q")

    def freeze(self) -> SliceSet:
        """Merge everything added into the final sorted array; returns self."""
        if self._arr is None:
            self._flush()
            out: array[int] = array("Q")
            last = -1
            for v in heapq.merge(*self._runs):
                if v != last:
                    out.append(v)
                    last = v
            self._runs = []
            self._arr = out
            self._big_sorted = sorted(self._big)
        return self

    def _frozen(self) -> array[int]:
        if self._arr is None:
            self.freeze()
        assert self._arr is not None
        return self._arr

    def __len__(self) -> int:
        return len(self._frozen()) + len(self._big_sorted)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for v in self._frozen():
            yield v >> _PACK, v & _SIZE_MASK
        yield from self._big_sorted

    def sizes(self, slice_id: int) -> list[int]:
        """The sizes recorded for `slice_id` (normally one; none when unknown)."""
        arr = self._frozen()
        out: list[int] = []
        if not slice_id >> _PACK:
            i = bisect_left(arr, slice_id << _PACK)
            while i < len(arr) and arr[i] >> _PACK == slice_id:
                out.append(arr[i] & _SIZE_MASK)
                i += 1
            out += [s for sid, s in self._big_sorted if sid == slice_id]
        else:
            out += [s for sid, s in self._big_sorted if sid == slice_id]
        return out

    def index(self, slice_id: int, size: int) -> int | None:
        """Position of the pair in iteration order (for parallel counters), or None when absent."""
        arr = self._frozen()
        if not (slice_id >> _PACK or size >> _PACK):
            v = slice_id << _PACK | size
            i = bisect_left(arr, v)
            return i if i < len(arr) and arr[i] == v else None
        try:
            return len(arr) + self._big_sorted.index((slice_id, size))
        except ValueError:
            return None

    def __contains__(self, pair: object) -> bool:
        return isinstance(pair, tuple) and len(pair) == 2 and self.index(pair[0], pair[1]) is not None

"""`jfs summary`'s per-directory rows (`tree_jobs._Biggest`): the biggest children and one ``...`` row for
the rest, the same as sorting every child, with memory bounded by twice the limit."""

from __future__ import annotations

import random
from typing import Any

import pytest

from jfs.app.tree_jobs import _TOTALS, _Biggest


def _child(rng: random.Random, i: int) -> dict[str, Any]:
    files = rng.randrange(3)
    return {"name": f"n{rng.randrange(50):02d}-{i}", "inode": i + 2, "type": "regular", "files": files,
            "dirs": 1 - min(files, 1), "length": rng.randrange(10), "space": rng.randrange(4) * 4096,
            "unreadable": rng.randrange(2)}


def _by_sorting(children: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    rows = sorted(children, key=lambda c: (-c["space"], c["name"]))
    if limit > 0 and len(rows) > limit:
        rest = rows[limit:]
        rows = rows[:limit] + [{"name": "...", "inode": 0, "type": "other",
                                **{k: sum(c[k] for c in rest) for k in _TOTALS}}]
    return rows


@pytest.mark.parametrize("limit", [0, 1, 3, 10])
@pytest.mark.parametrize("count", [0, 1, 3, 10, 11, 57, 1000])
def test_rows_equal_those_of_sorting_every_child(limit: int, count: int) -> None:
    rng = random.Random(count * 31 + limit)
    children = [_child(rng, i) for i in range(count)]
    biggest = _Biggest(limit)
    most = 0
    for c in children:
        biggest.add(dict(c))
        most = max(most, len(biggest.kept))
    assert biggest.rows() == _by_sorting(children, limit)
    if limit:
        assert most < 2 * limit  # never more than that held, however many children

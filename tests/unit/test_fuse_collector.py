"""The collector settings of a mount process: start-up objects frozen, young collections spaced out."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from jfs.adapters.fuse.collector import YOUNG_THRESHOLD, settle_for_serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_settle_for_serving_freezes_and_raises_only_the_young_threshold(restored_gc: None) -> None:
    _, middle, old = gc.get_threshold()
    settle_for_serving()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
    assert gc.get_freeze_count() > 0
    # cyclic garbage is still collected
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1

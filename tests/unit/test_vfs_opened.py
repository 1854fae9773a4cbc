"""`OpenedFiles`: never "keep" a changed file, bounded memory, recently opened files remembered."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jfs.app.vfs.opened import OpenedFiles

_ops = st.lists(st.tuples(st.integers(1, 40), st.integers(0, 2), st.booleans()), max_size=300)


@given(ops=_ops, generation=st.integers(1, 8))
def test_keep_only_when_the_last_open_saw_the_same_stamp_and_size_stays_bounded(
    ops: list[tuple[int, int, bool]], generation: int
) -> None:
    opened = OpenedFiles(generation)
    last: dict[int, tuple[int, int]] = {}  # the unbounded truth: the stamp at each file's last open
    for ino, mtime, forget in ops:
        if forget:
            opened.forget(ino)
            last.pop(ino, None)
            continue
        stamp = (mtime, 0)
        keep = opened.reopened(ino, stamp)
        if keep:  # safety: "keep your pages" only for a file unchanged since this client's last open
            assert last.get(ino) == stamp
        last[ino] = stamp
        assert len(opened) <= 2 * generation


def test_a_file_opened_again_within_a_generation_is_remembered() -> None:
    opened = OpenedFiles(4)
    assert not opened.reopened(1, (5, 10))  # never seen
    for ino in range(2, 6):  # 4 other files: the young generation turns over once
        opened.reopened(ino, (0, 0))
    assert opened.reopened(1, (5, 10))  # in the old generation: still there, and moved back to the young
    for ino in range(6, 10):
        opened.reopened(ino, (0, 0))
    assert opened.reopened(1, (5, 10))
    assert not opened.reopened(1, (6, 10))  # changed: drop the pages


def test_files_not_opened_again_are_forgotten_after_two_generations() -> None:
    opened = OpenedFiles(3)
    opened.reopened(1, (1, 1))
    for ino in range(100, 110):
        opened.reopened(ino, (0, 0))
    assert len(opened) <= 6
    assert not opened.reopened(1, (1, 1))  # forgotten: the next open drops the kernel's pages (safe)


def test_a_million_opens_keep_at_most_two_generations() -> None:
    opened = OpenedFiles()
    for ino in range(1_000_000):
        opened.reopened(ino, (ino, 0))
    assert len(opened) <= 2 * opened.generation


def test_generation_must_be_positive() -> None:
    with pytest.raises(ValueError):
        OpenedFiles(0)

"""`file_pages.WrittenPages`: which written objects are written back and dropped from the page cache, when;
and that a `FileStore` with it keeps every object's bytes (ADR 0052)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from jfs.adapters.objects import file_pages
from jfs.adapters.objects.file import FileStore, open_file
from jfs.adapters.objects.file_pages import MIN_SIZE, WrittenPages

MiB = 1 << 20


class Advised(list[str]):
    """The paths advised so far, in order; `wait_for(n)`: until there are `n` (the advice runs on a thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.cond = threading.Condition()

    def __call__(self, path: str) -> None:
        with self.cond:
            self.append(path)
            self.cond.notify_all()

    def wait_for(self, n: int) -> Advised:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self) >= n, timeout=10), list(self)
        time.sleep(0.01)  # and no more
        return self


@pytest.fixture
def advised(monkeypatch: pytest.MonkeyPatch) -> Advised:
    calls = Advised()
    monkeypatch.setattr(file_pages, "_advise", calls)
    return calls


def test_writeback_after_half_the_budget_then_drop_after_all_of_it(advised: Advised) -> None:
    pages = WrittenPages(4 * MiB)
    for i in range(2):
        pages.written(f"o{i}", MiB)
    time.sleep(0.05)
    assert advised == []  # 2 MiB: within the fresh half
    pages.written("o2", MiB)
    assert advised.wait_for(1) == ["o0"]  # writeback of the oldest starts
    pages.written("o3", MiB)
    assert advised.wait_for(2) == ["o0", "o1"]
    pages.written("o4", MiB)
    assert advised.wait_for(4) == ["o0", "o1", "o0", "o2"]  # o0 leaves the budget: its clean pages dropped
    pages.written("o5", MiB)
    assert advised.wait_for(6)[4:] == ["o1", "o3"]


def test_advice_waits_at_most_max_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stuck advising thread: the queue keeps the newest MAX_PENDING paths, `written` never blocks."""
    gate = threading.Event()
    seen: list[str] = []
    monkeypatch.setattr(file_pages, "_advise", lambda p: (gate.wait(10), seen.append(p)))
    pages = WrittenPages(2 * MiB)
    for i in range(file_pages.MAX_PENDING * 2):
        pages.written(f"o{i}", MiB)
    assert len(pages._pending) <= file_pages.MAX_PENDING
    gate.set()


def test_small_objects_are_not_tracked(advised: Advised) -> None:
    pages = WrittenPages(2 * MiB)
    for i in range(100):
        pages.written(f"s{i}", MIN_SIZE - 1)
    assert advised == []


def test_budget_below_two_minimum_objects_is_refused() -> None:
    with pytest.raises(ValueError):
        WrittenPages(MIN_SIZE)


@pytest.mark.parametrize(("value", "keep"), [("", None), ("0", None), ("abc", None), ("64", 64 * MiB), ("1", 2 * MiB)])
def test_from_env(monkeypatch: pytest.MonkeyPatch, value: str, keep: int | None) -> None:
    monkeypatch.setenv(file_pages.KEEP_ENV, value)
    pages = file_pages.from_env()
    assert (pages.keep if pages else None) == keep


def test_advice_on_a_missing_file_is_ignored(tmp_path: Path) -> None:
    file_pages._advise(str(tmp_path / "gone"))


async def test_store_objects_keep_their_bytes_when_dropped(tmp_path: Path) -> None:
    """Real advice (writeback, then drop) on a real store: every object reads back whole, replaced ones too."""
    store = FileStore(str(tmp_path / "bucket"), written_pages=WrittenPages(2 * MiB))
    bodies = {f"chunks/{i}": os.urandom(MiB + i) for i in range(6)}
    try:
        await store.create_bucket()
        for key, body in bodies.items():
            await store.put(key, body)
        bodies["chunks/0"] = os.urandom(MiB)
        await store.put("chunks/0", bodies["chunks/0"])
        for key, body in bodies.items():
            assert await store.get(key) == body
    finally:
        await store.close()


async def test_open_file_takes_the_budget_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(file_pages.KEEP_ENV, "16")
    store = await open_file(str(tmp_path / "b"))
    try:
        assert store.written_pages is not None and store.written_pages.keep == 16 * MiB
    finally:
        await store.close()
    monkeypatch.delenv(file_pages.KEEP_ENV)
    store = await open_file(str(tmp_path / "b"))
    try:
        assert store.written_pages is None
    finally:
        await store.close()


async def test_direct_puts_read_back_whole_and_skip_the_page_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ADR 0059: with $JFS_FILE_DIRECT_WRITES=1 big objects are written around the page cache (pooled unnamed
    temp files and the store's own ones alike), read back whole, exact in size; small ones as before; the
    page budget hears only of objects that went through the page cache."""
    from jfs.adapters.objects import file

    monkeypatch.setenv(file.DIRECT_ENV, "1")
    monkeypatch.setenv(file_pages.KEEP_ENV, "4")
    store = await open_file(str(tmp_path / "b"))
    assert store.direct is not None and store.written_pages is not None
    told: list[str] = []
    real = store.written_pages.written
    store.written_pages.written = lambda path, size: (told.append(path), real(path, size))  # type: ignore[method-assign]
    bodies = {f"chunks/0/{i}/{i}_0_x": os.urandom(MiB + 4095 * i) for i in range(8)}
    bodies["chunks/small"] = os.urandom(5000)
    bodies["chunks/mid"] = os.urandom(MiB - 1)
    try:
        await store.create_bucket()
        for key, body in bodies.items():
            await store.put(key, body)
        bodies["chunks/0/1/1_0_x"] = os.urandom(2 * MiB)  # an overwrite
        await store.put("chunks/0/1/1_0_x", bodies["chunks/0/1/1_0_x"])
        for key, body in bodies.items():
            assert await store.get(key) == body
            assert (tmp_path / "b" / key).stat().st_size == len(body)  # noqa: ASYNC240
        if store.direct.usable:
            assert sorted(os.path.basename(p) for p in told) == ["mid", "small"]
    finally:
        await store.close()
    monkeypatch.setenv(file.DIRECT_ENV, "0")
    store = await open_file(str(tmp_path / "b"))
    try:
        assert store.direct is None
    finally:
        await store.close()

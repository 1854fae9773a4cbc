"""The pieces every KV adapter shares (`jfs.adapters.kv.base`): the scan pagers, the buffered overlay of
reads; and the background jobs of `jfs.app.meta.background`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from jfs.adapters.kv.base import Pairs, WriteBuffer, paged_scan, read_pages
from jfs.app.meta.background import BackgroundJobs

PAIRS = [(b"k%02d" % i, b"v%d" % i) for i in range(10)]


def _reader(calls: list[tuple[bytes, int]]) -> Callable[[bytes, bytes, int], Awaitable[Pairs]]:
    async def page(cursor: bytes, end: bytes, n: int) -> list[tuple[bytes, bytes]]:
        calls.append((cursor, n))
        return [p for p in PAIRS if cursor <= p[0] < end][:n]

    return page


async def test_paged_scan_resumes_after_the_last_key_and_stops_on_a_short_page() -> None:
    calls: list[tuple[bytes, int]] = []
    got = [p async for p in paged_scan(_reader(calls), b"k", b"l", 4)]
    assert got == PAIRS
    assert calls == [(b"k", 4), (b"k03\x00", 4), (b"k07\x00", 4)]


async def test_paged_scan_of_an_empty_range_reads_nothing() -> None:
    calls: list[tuple[bytes, int]] = []
    assert [p async for p in paged_scan(_reader(calls), b"z", b"a", 4)] == []
    assert calls == []


async def test_read_pages_reads_at_most_the_limit_in_batches() -> None:
    calls: list[tuple[bytes, int]] = []
    page = _reader(calls)

    async def with_more(cursor: bytes, n: int) -> tuple[list[tuple[bytes, bytes]], bool]:
        chunk = await page(cursor, b"l", n)
        return chunk, len(chunk) == n

    assert await read_pages(with_more, b"k", 5, 3) == PAIRS[:5]
    assert calls == [(b"k", 3), (b"k02\x00", 2)]
    calls.clear()
    assert await read_pages(with_more, b"k", None, 4) == PAIRS
    assert len(calls) == 3


def test_write_buffer_splits_keys_into_written_and_to_read() -> None:
    buf = WriteBuffer()
    buf.put(b"a", b"1")
    buf.delete(b"b")
    out, missing = buf.split([b"a", b"c", b"b", b"c"])
    assert out == {b"a": b"1", b"b": None}
    assert missing == [b"c"]
    assert buf.deletions_in(b"a", b"z") == 1


async def test_background_jobs_drain_waits_for_jobs_started_by_jobs_and_logs_failures() -> None:
    logged: list[str] = []

    class Log:
        def warning(self, event: str, **_: object) -> None:
            logged.append(event)

    jobs = BackgroundJobs(Log())
    done: list[str] = []

    async def child() -> None:
        await asyncio.sleep(0.01)
        done.append("child")

    async def parent() -> None:
        jobs.spawn(child())
        done.append("parent")

    async def broken() -> None:
        raise RuntimeError("boom")

    jobs.spawn(parent())
    jobs.spawn(broken())
    await jobs.drain()
    assert done == ["parent", "child"]
    assert logged == ["background_job_failed"]

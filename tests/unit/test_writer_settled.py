"""`writer._settled`: gather's results (exceptions returned) for a slice's uploads, without extra loop
passes when they are all done."""

from __future__ import annotations

import asyncio

from jfs.app.data.writer import _settled


async def _ok() -> None:
    return None


async def _fail() -> None:
    raise OSError(5, "boom")


async def test_done_uploads_settle_without_suspending() -> None:
    tasks = [asyncio.create_task(_ok()), asyncio.create_task(_fail())]
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    tasks.append(cancelled)
    assert all(t.done() for t in tasks)
    coro = _settled(tasks)
    try:
        coro.send(None)  # finishes in its first step: no await of anything
    except StopIteration as stop:
        results = stop.value
    else:  # pragma: no cover
        raise AssertionError("_settled suspended on done tasks")
    assert results[0] is None
    assert isinstance(results[1], OSError)
    assert isinstance(results[2], asyncio.CancelledError)


async def test_pending_uploads_are_awaited() -> None:
    gate = asyncio.Event()

    async def later() -> None:
        await gate.wait()

    tasks = [asyncio.create_task(_ok()), asyncio.create_task(later())]
    waiting = asyncio.create_task(_settled(tasks))
    await asyncio.sleep(0)
    assert not waiting.done()
    gate.set()
    assert await waiting == [None, None]

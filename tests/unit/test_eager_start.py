"""`jfs.app.data.eager.start_now`: a task whose first step runs at once, also from inside another task."""

from __future__ import annotations

import asyncio

import pytest

from jfs.app.data.eager import start_now


async def test_a_task_that_never_suspends_is_done_when_started_from_a_task() -> None:
    seen: list[object] = []

    async def job() -> int:
        seen.append(asyncio.current_task())
        return 7

    outer = asyncio.current_task()
    task = start_now(job())
    assert task.done() and task.result() == 7
    assert seen == [task]  # it ran as itself ...
    assert asyncio.current_task() is outer  # ... and the caller is its own task again


async def test_a_task_that_suspends_goes_on_as_an_ordinary_task() -> None:
    gate = asyncio.Event()
    steps: list[str] = []

    async def job() -> str:
        steps.append("first")
        await gate.wait()
        steps.append("second")
        return "done"

    task = start_now(job())
    assert steps == ["first"] and not task.done()
    gate.set()
    assert await task == "done" and steps == ["first", "second"]


async def test_the_callers_cancellation_does_not_reach_it() -> None:
    gate = asyncio.Event()
    started: list[asyncio.Task[str]] = []

    async def job() -> str:
        await gate.wait()
        return "finished"

    async def caller() -> None:
        started.append(start_now(job()))
        await asyncio.sleep(10)

    outer = asyncio.get_running_loop().create_task(caller())
    await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    gate.set()
    assert await started[0] == "finished"


async def test_an_exception_stays_in_the_task() -> None:
    async def job() -> None:
        raise ValueError("boom")

    task = start_now(job())
    assert task.done()
    with pytest.raises(ValueError, match="boom"):
        task.result()

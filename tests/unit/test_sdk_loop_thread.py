"""The sync SDK's hand-off (`jfs.sdk.sync._LoopThread`): a call's task takes its first step in the loop pass
that receives the call (ADR 0042), with full task semantics, whether it suspends or not."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Iterator

import pytest

from jfs.sdk.sync import _LoopThread

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@pytest.fixture
def lt() -> Iterator[_LoopThread]:
    t = _LoopThread("jfs-test-loop")
    yield t
    t.stop()


def test_a_call_that_never_suspends_ends_in_the_pass_that_received_it(lt: _LoopThread) -> None:
    passes = 0
    real = lt.loop._run_once  # type: ignore[attr-defined]

    def counted() -> None:
        nonlocal passes
        passes += 1
        real()

    async def count_on() -> None:
        lt.loop._run_once = counted  # type: ignore[attr-defined]

    lt.run(count_on())
    time.sleep(0.05)  # the loop is now waiting for work inside a counted pass (nothing else scheduled)
    waiting_in = passes

    async def quick() -> tuple[bool, int]:
        return asyncio.current_task() is not None, passes

    assert lt.run(quick()) == (True, waiting_in)  # a task, stepped in that same pass


def test_a_call_that_suspends_goes_on_as_a_task(lt: _LoopThread) -> None:
    async def slow() -> str:
        token = VAR.set("inside")  # set in the eager first step, reset in a later one: one context
        try:
            await asyncio.sleep(0.01)
            await asyncio.sleep(0)
            return VAR.get()
        finally:
            VAR.reset(token)

    assert lt.run(slow()) == "inside"


def test_errors_reach_the_caller(lt: _LoopThread) -> None:
    async def fails_at_once() -> None:
        raise FileNotFoundError(2, "nope")

    async def fails_later() -> None:
        await asyncio.sleep(0)
        raise PermissionError(13, "no")

    with pytest.raises(FileNotFoundError):
        lt.run(fails_at_once())
    with pytest.raises(PermissionError):
        lt.run(fails_later())
    assert lt.run(asyncio.sleep(0, "still works")) == "still works"

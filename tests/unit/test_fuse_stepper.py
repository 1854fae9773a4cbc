"""`Stepped` (the FUSE server's task-free ``inline`` dispatch, ADR 0060): first step at once, later steps
from the awaited future, task semantics a handler can see — current task, asyncio.timeout, cancellation,
contextvars, bare yields — on the standard loop and on uvloop."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

import pytest

from jfs.adapters.fuse.stepper import Stepped

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="outer")


def _loops() -> list[Callable[[], asyncio.AbstractEventLoop]]:
    makers: list[Callable[[], asyncio.AbstractEventLoop]] = [asyncio.new_event_loop]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of network-engine mounts
        return makers
    return [*makers, uvloop.new_event_loop]


@pytest.fixture(params=_loops(), ids=lambda m: m.__module__.split(".")[0])
def run(request: pytest.FixtureRequest) -> Callable[[Any], Any]:
    def runner(main: Any) -> Any:
        loop = request.param()
        try:
            return loop.run_until_complete(main())
        finally:
            loop.close()
    return runner


async def _started(coro: Any) -> Stepped:
    """Start `coro` as the server does: from a plain loop callback, outside any task."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[Stepped] = loop.create_future()

    def callback() -> None:
        s = Stepped(coro, loop)
        s.start()
        started.set_result(s)

    loop.call_soon(callback)
    return await started


def test_a_coroutine_that_never_suspends_is_done_after_start(run: Callable[[Any], Any]) -> None:
    async def main() -> None:
        seen: list[object] = []

        async def handler() -> None:
            seen.append(asyncio.current_task())

        s = await _started(handler())
        assert s.done() and seen == [s]
        assert s.finished().done()
        assert asyncio.current_task() is not s  # left again after the step

    run(main)


def test_steps_follow_the_awaited_futures_and_bare_yields(run: Callable[[Any], Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        trail: list[object] = []

        async def handler() -> None:
            trail.append("first")
            trail.append(await fut)
            await asyncio.sleep(0)  # a bare yield
            trail.append(asyncio.current_task() is me[0])
            await asyncio.sleep(0.01)
            trail.append("end")

        me: list[Stepped] = []
        s = await _started(handler())
        me.append(s)
        assert trail == ["first"] and not s.done()
        fut.set_result(7)
        await asyncio.wait_for(s.finished(), 2)
        assert trail == ["first", 7, True, "end"]

    run(main)


def test_exceptions_of_awaited_futures_reach_the_coroutine(run: Callable[[Any], Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        caught: list[BaseException] = []

        async def handler() -> None:
            try:
                await fut
            except OSError as exc:
                caught.append(exc)

        s = await _started(handler())
        fut.set_exception(OSError(5, "eio"))
        await asyncio.wait_for(s.finished(), 2)
        assert [e.errno for e in caught] == [5]  # type: ignore[attr-defined]

    run(main)


def test_cancel_reaches_the_awaited_future_and_later_steps(run: Callable[[Any], Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        outcome: list[str] = []

        async def waiting() -> None:
            try:
                await loop.create_future()
            except asyncio.CancelledError:
                outcome.append("waiting cancelled")

        s = await _started(waiting())
        assert s.cancel() and s.cancelling() == 1
        await asyncio.wait_for(s.finished(), 2)
        assert outcome == ["waiting cancelled"] and not s.cancel()

        async def yielding() -> None:
            try:
                while True:
                    await asyncio.sleep(0)
            except asyncio.CancelledError:
                outcome.append("yielding cancelled")

        s = await _started(yielding())
        await asyncio.sleep(0)
        s.cancel()
        await asyncio.wait_for(s.finished(), 2)
        assert outcome[-1] == "yielding cancelled"

    run(main)


def test_asyncio_timeout_works_inside_before_and_after_suspending(run: Callable[[Any], Any]) -> None:
    async def main() -> None:
        outcome: list[str] = []

        async def handler() -> None:
            try:
                async with asyncio.timeout(0.02):  # entered in the first step, outside any Task
                    await asyncio.sleep(5)
            except TimeoutError:
                outcome.append("timed out")
            async with asyncio.timeout(1):
                await asyncio.sleep(0)
            outcome.append(f"cancelling {asyncio.current_task().cancelling()}")  # type: ignore[union-attr]

        s = await _started(handler())
        await asyncio.wait_for(s.finished(), 3)
        assert outcome == ["timed out", "cancelling 0"]

    run(main)


def test_each_request_runs_in_its_own_context_copy(run: Callable[[Any], Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        gate = loop.create_future()
        seen: list[str] = []

        async def handler(name: str) -> None:
            VAR.set(name)
            await gate
            seen.append(VAR.get())

        a = await _started(handler("a"))
        b = await _started(handler("b"))
        gate.set_result(None)
        await asyncio.wait_for(asyncio.gather(a.finished(), b.finished()), 2)
        assert sorted(seen) == ["a", "b"] and VAR.get() == "outer"

    run(main)


def test_an_escaping_exception_goes_to_the_loops_handler(run: Callable[[Any], Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))

        async def handler() -> None:
            await asyncio.sleep(0)
            raise ValueError("bug")

        s = await _started(handler())
        await asyncio.wait_for(s.finished(), 2)
        assert isinstance(reported[0]["exception"], ValueError)

    run(main)

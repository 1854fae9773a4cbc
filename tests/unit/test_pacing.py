"""`Pacer`: background steps run freely while the foreground is quiet, spaced while it is active."""

from __future__ import annotations

import asyncio

import pytest

from jfs.app.data.pacing import Pacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def make(t: FakeTime, quiet: float = 0.25, interval: float = 0.5) -> Pacer:
    return Pacer(quiet, interval, clock=t.clock, sleep=t.sleep)


async def test_steps_do_not_wait_while_the_foreground_is_quiet() -> None:
    t = FakeTime()
    p = make(t)
    for _ in range(5):
        await p.step()
    assert t.slept == [] and p.waits == 0


async def test_steps_are_spaced_while_the_foreground_is_active() -> None:
    t = FakeTime()
    p = make(t, quiet=10.0, interval=0.5)
    p.touch()
    await p.step()  # the first one goes at once
    await p.step()
    await p.step()
    assert t.slept == [0.5, 0.5] and p.waits == 2


async def test_a_waiting_step_goes_as_soon_as_the_foreground_is_quiet() -> None:
    t = FakeTime()
    p = make(t, quiet=0.1, interval=5.0)
    p.touch()
    await p.step()
    await p.step()  # the foreground went quiet 0.1 s after its last touch: no need to wait 5 s
    assert t.slept == [pytest.approx(0.1)]


async def test_an_active_operation_keeps_the_foreground_busy() -> None:
    t = FakeTime()
    p = make(t, quiet=0.1, interval=1.0)
    with p.active():
        t.now += 60.0  # a long flush, no touch meanwhile
        assert p.busy()
        await p.step()
        await p.step()
        assert t.slept == [1.0]
    assert p.busy()  # ended just now
    t.now += 0.2
    assert not p.busy()


async def test_concurrent_jobs_share_the_pace() -> None:
    t = FakeTime()
    p = make(t, quiet=100.0, interval=1.0)
    p.touch()
    order: list[tuple[str, float]] = []

    async def job(name: str) -> None:
        for _ in range(3):
            await p.step()
            order.append((name, t.now))

    await asyncio.gather(job("a"), job("b"))
    times = sorted(when for _, when in order)
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(times, times[1:], strict=False))


async def test_interval_zero_turns_pacing_off() -> None:
    t = FakeTime()
    p = make(t, interval=0.0)
    p.touch()
    for _ in range(3):
        await p.step()
    assert t.slept == []


async def test_an_urgent_step_stops_waiting() -> None:
    t = FakeTime()
    p = make(t, quiet=100.0, interval=10.0)
    p.touch()
    await p.step()
    calls = 0

    def urgent() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    await p.step(urgent)
    assert t.now - 100.0 < 1.0  # three polls, not the 10 s interval

"""The sync SDK's loop driving (`jfs.sdk.loop.ClientLoop`, ADR 0058): the calling thread runs the loop itself
when nobody else does, other threads' calls are handed to whoever drives, a call that waits for long starves
nobody, the background thread drives while no caller does (timers keep firing while the caller sleeps), an
interrupted driver leaves its call running, and the loop refuses a forked child and calls after `stop`."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.ports.kv import Tx
from jfs.sdk.loop import ClientLoop


@pytest.fixture
def cl() -> Iterator[ClientLoop]:
    lp = ClientLoop("jfs-test-driver", idle=0.5, drive=True)  # a loaded test machine may pause a thread for milliseconds
    yield lp
    lp.stop()


async def where() -> str:
    await asyncio.sleep(0)  # a step in a later pass too: still the same thread
    return threading.current_thread().name


def test_the_calling_thread_drives_the_loop(cl: ClientLoop) -> None:
    assert cl.run(where()) == threading.current_thread().name
    seen: list[str] = []
    t = threading.Thread(target=lambda: seen.append(cl.run(where())), name="another-caller")
    t.start()
    t.join(10)
    assert seen == ["another-caller"]


def test_consecutive_calls_do_not_hand_the_loop_to_the_background_thread(cl: ClientLoop) -> None:
    names = {cl.run(where()) for _ in range(200)}
    assert names == {threading.current_thread().name}


def test_several_threads_at_once_all_get_their_results(cl: ClientLoop) -> None:
    async def echo(k: int) -> int:
        for _ in range(k % 3):
            await asyncio.sleep(0)
        return k

    results: dict[int, list[int]] = {}

    def worker(w: int) -> None:
        results[w] = [cl.run(echo(w * 1000 + i)) for i in range(300)]

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert results == {w: [w * 1000 + i for i in range(300)] for w in range(6)}


def test_a_long_wait_in_one_thread_starves_no_other_thread(cl: ClientLoop) -> None:
    """The waiting call holds the seat (it drives the loop while it waits): the others' calls run on it, and
    one of them is what ends the wait (as a lock released by another thread's call would)."""
    gate = cl.run(_make_event())
    waited: list[str] = []
    blocker = threading.Thread(target=lambda: waited.append(cl.run(_wait(gate))), name="blocked")
    blocker.start()
    deadline = time.monotonic() + 10
    while not cl._seat.locked():
        assert time.monotonic() < deadline
        time.sleep(0.001)
    done = [cl.run(where()) for _ in range(50)]  # handed over to the blocked thread's loop, not starved
    assert set(done) == {"blocked"} and blocker.is_alive()

    async def open_gate() -> None:
        gate.set()

    cl.run(open_gate())
    blocker.join(10)
    assert waited == ["opened"]


async def _make_event() -> asyncio.Event:
    return asyncio.Event()


async def _wait(gate: asyncio.Event) -> str:
    await gate.wait()
    return "opened"


def test_timers_keep_firing_while_the_caller_sleeps() -> None:
    """What heartbeats need: the background thread drives the loop while no caller does."""
    cl = ClientLoop("jfs-test-driver", idle=0.02, drive=True)
    try:
        _timers_keep_firing(cl)
    finally:
        cl.stop()


def _timers_keep_firing(cl: ClientLoop) -> None:
    ticks: list[str] = []

    async def start_ticking() -> None:
        async def tick() -> None:
            while True:
                await asyncio.sleep(0.01)
                ticks.append(threading.current_thread().name)

        asyncio.get_running_loop().create_task(tick())

    cl.run(start_ticking())
    time.sleep(0.6)  # the caller is busy elsewhere
    assert len(ticks) >= 10
    assert "jfs-test-driver" in ticks  # the background thread ran them
    cl.idle = 0.5
    cl.run(where())  # handed to the background thread, which gives the loop back as the call ends...
    assert cl.run(where()) == threading.current_thread().name  # ...so the caller drives the next ones
    assert cl.run(where()) == threading.current_thread().name


def test_a_caller_inside_another_running_loop_is_handed_over(cl: ClientLoop) -> None:
    async def user_code() -> str:
        return cl.run(where())  # a sync call from a coroutine of the user's own loop: cannot drive

    assert asyncio.run(user_code()) == "jfs-test-driver"


def test_a_call_from_the_clients_own_loop_is_refused(cl: ClientLoop) -> None:
    async def reenter() -> None:
        inner = where()
        try:
            cl.run(inner)
        finally:
            inner.close()

    with pytest.raises(RuntimeError, match="own event loop"):
        cl.run(reenter())


def test_an_interrupted_driver_leaves_its_call_running(cl: ClientLoop) -> None:
    """A KeyboardInterrupt reaching the driving thread (here raised by another callback of the loop while
    the call waits) propagates to the caller; the call itself goes on, finished by the background thread."""
    finished = threading.Event()

    async def interrupted() -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(_interrupt)
        await asyncio.sleep(0.05)
        finished.set()

    with pytest.raises(KeyboardInterrupt):
        cl.run(interrupted())
    assert finished.wait(5)
    assert cl.run(where()) == threading.current_thread().name  # the loop is still usable


def _interrupt() -> None:
    raise KeyboardInterrupt


def test_errors_and_cancellation_reach_the_caller(cl: ClientLoop) -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise FileNotFoundError(2, "nope")

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(FileNotFoundError):
        cl.run(fails())
    with pytest.raises(asyncio.CancelledError):
        cl.run(cancelled())


def test_after_stop_calls_fail_and_the_thread_is_gone() -> None:
    lp = ClientLoop("jfs-test-stop", idle=0.01, drive=True)
    assert lp.run(where()) == threading.current_thread().name
    time.sleep(0.05)  # let the background thread take the loop (idle), so that stop must take it back
    lp.stop()
    assert not lp.thread.is_alive() and lp.loop.is_closed()
    coro = where()
    with pytest.raises(RuntimeError):
        lp.run(coro)


def test_a_forked_child_cannot_use_the_loop(cl: ClientLoop) -> None:
    cl.run(where())
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            cl.run(where())
            os.write(w, b"ran")
        except RuntimeError as exc:
            cl.stop()  # a no-op there: it must neither hang nor touch the parent's loop
            os.write(w, b"refused" if "forked" in str(exc) else b"other")
        os._exit(0)
    os.close(w)
    answer = os.read(r, 100)
    os.close(r)
    os.waitpid(pid, 0)
    assert answer == b"refused"
    assert cl.run(where()) == threading.current_thread().name  # the parent's loop is untouched


def test_one_loop_run_by_several_threads_in_turn_keeps_one_inline_connection(tmp_path: Path) -> None:
    """The SDK's loop is run by whichever thread calls (ADR 0058): its inline bodies share one connection
    (its page cache survives the change of thread), while another loop gets its own."""
    lp = ClientLoop("jfs-test-sqlite", idle=0.5, drive=True)
    try:
        kv = lp.run(open_kv(f"sqlite3://{tmp_path}/m.db"))
        used: list[int] = []

        async def put(tx: Tx) -> None:
            used.append(id(tx._conn))  # type: ignore[attr-defined]
            tx.put(b"k", b"v")

        lp.run(kv.txn(put))
        other = threading.Thread(target=lambda: lp.run(kv.txn(put)), name="second-caller")
        other.start()
        other.join(10)
        lp.run(kv.txn(put))
        assert len(used) == 3 and len(set(used)) == 1

        async def on_another_loop() -> None:
            await kv.txn(put)

        asyncio.run(on_another_loop())
        assert used[-1] != used[0]
        lp.run(kv.close())
    finally:
        lp.stop()


def test_without_driving_every_call_runs_on_the_background_thread() -> None:
    """``drive=False`` (``JFS_SDK_LOOP=thread``): the hand-off of ADR 0042."""
    lp = ClientLoop("jfs-test-thread", drive=False)
    try:
        assert {lp.run(where()) for _ in range(50)} == {"jfs-test-thread"}
        seen: list[str] = []
        t = threading.Thread(target=lambda: seen.append(lp.run(where())))
        t.start()
        t.join(10)
        assert seen == ["jfs-test-thread"]
    finally:
        lp.stop()
    assert lp.loop.is_closed()

"""The sync SDK's event loop: run by the thread that makes a call, by a background thread in between
(the default; with ``JFS_SDK_LOOP=thread`` the background thread runs it and every call is handed over, as
the third point below describes for calls that find the seat taken).

`ClientLoop.run(coro)` runs a coroutine of the client on its one asyncio loop and returns its result. The loop
has a *seat* (a plain lock): whoever holds it runs the loop, and never two threads at once.

- **A caller drives.** A call that finds the seat free takes it and runs the loop on its own thread until its
  coroutine is done (`run_forever`, stopped by the call's task as it ends): no hand-off to another thread, no
  wake-up, no GIL hand-over. Everything else scheduled on the loop (uploads' callbacks, heartbeats, other
  threads' calls) progresses while it drives, as it would on the background thread.
- **Other callers wait.** A call that finds the seat taken (another thread drives, or the background thread)
  is handed to the loop (`call_soon_threadsafe`, the self-pipe wakes the driver) and waits on a lock of its
  own, as every call did before (ADR 0042). So a call that blocks for long (a blocking ``flock``) holds the
  seat but not the other threads: their calls run on the loop it drives.
- **The background thread drives when no caller does.** It takes the seat (a) at once when a waiting call has
  nobody to run it (a driver left before a waiter's call ended: whoever gives the seat up rings the
  background thread's bell if calls are waiting), and (b) after an idle spell (`ClientLoop.IDLE`, 20 ms) in which no
  caller drove, so that heartbeats, session refresh and background uploads keep running while the user's
  code is busy elsewhere. It gives the seat back when the last waiting call ends (a caller is active again:
  its next call drives); between a caller's consecutive calls it does not take the seat back.

Thread-safe; the loop is a plain asyncio loop (the selector loop may be run from one thread after another,
never two at once, which the seat guarantees). A call made from inside the loop (a coroutine of this client
calling the sync API) raises `RuntimeError`; a call from a coroutine of *another* running loop cannot drive
(asyncio forbids two running loops in a thread): it is handed over and waited for, as before. A ``KeyboardInterrupt`` that reaches a driving caller leaves its call running on
the loop (the background thread finishes it, as it would have before) and propagates. In a forked child the
client's loop is unusable (its selector and sockets are the parent's): calls raise `RuntimeError`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import weakref
from _thread import allocate_lock as _allocate_lock
from asyncio import events
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_EAGER_START = sys.version_info >= (3, 12)
_LOOPS: weakref.WeakSet[ClientLoop] = weakref.WeakSet()
_DRIVE = os.environ.get("JFS_SDK_LOOP", "drive") != "thread"
"""Callers drive the loop (ADR 0058), the default since the quiet A/B (8 alternating pairs, the SDK's 4 KiB
create+write rate +20–30 % in every pair). ``JFS_SDK_LOOP=thread`` keeps the hand-off of ADR 0042 — the
background thread runs the loop and every call is handed to it —, which a machine with more runnable threads
than cores may prefer: there one thread that never sleeps was scheduled worse than two that wake each other
(ADR 0058's measurements under load)."""


def _forked() -> None:
    for lp in list(_LOOPS):
        lp._forked = True


os.register_at_fork(after_in_child=_forked)


class _Call:
    """One call: its coroutine, outcome and (for a waiting caller) the lock it sleeps on."""

    __slots__ = ("coro", "value", "error", "finished", "lock", "driven")

    def __init__(self, coro: Coroutine[Any, Any, Any], driven: bool) -> None:
        self.coro = coro
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.driven = driven
        """True while the calling thread drives the loop for it (its end stops the loop); else it has a lock."""
        self.lock: Any = None
        if not driven:
            self.lock = _allocate_lock()
            self.lock.acquire()

    def outcome(self) -> Any:
        if self.error is not None:
            exc, self.error = self.error, None  # no reference cycle through the traceback
            raise exc
        return self.value


class ClientLoop:
    """An asyncio loop run by its callers' threads, and by a daemon thread while no caller does (module doc)."""

    IDLE = 0.02
    """Seconds without a caller driving after which the background thread takes the loop (it looks that
    often while callers drive: 50 wake-ups a second; background work waits at most twice that once the
    callers have gone quiet)."""

    def __init__(self, name: str, idle: float = IDLE, drive: bool | None = None) -> None:
        self.idle = idle
        self.drive = _DRIVE if drive is None else drive
        """False: every call is handed to the background thread, which keeps the loop (the hand-off of ADR
        0042). None: ``JFS_SDK_LOOP`` decides (``thread``: False; otherwise True, the default)."""
        self.loop = asyncio.new_event_loop()
        self._ready: Any = getattr(self.loop, "_ready", None)
        """The loop's queue of ready handles (an asyncio internal; None if this loop has none): where a new
        task's first step waits until `_eager_task` runs it at once."""
        self._seat = _allocate_lock()
        self._bell = _allocate_lock()
        self._bell.acquire()  # released ("rung") to wake the background thread at once
        self._waiting: set[_Call] = set()  # handed-over calls not ended yet
        self._drives = 0  # calls driven by callers: the background thread's idle test
        self._bg_driving = False
        self._yielding = False  # the background thread stops driving after its current pass
        self._closing = False
        self._forked = False
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()
        _LOOPS.add(self)

    # ------------------------------------------------------------------ calls

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and return its result (or raise its exception), driving the loop on this
        thread when nobody else does."""
        if self._forked:
            coro.close()
            raise RuntimeError("a jfs.Client cannot be used in a forked child process: open a new one there")
        running = events._get_running_loop()
        if running is self.loop:
            coro.close()
            raise RuntimeError("a jfs.Client may not be called from its own event loop thread")
        if self.drive and running is None and (
            self._seat.acquire(False) or (self._yielding and self._seat.acquire(True, 1.0))
        ):
            # (The background thread is giving the loop back, within its current pass: wait for that
            # rather than hand this call to it too.)
            return self._drive(coro)
        return self._hand_over(coro)

    def _drive(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run the loop on this thread (the seat is held) until `coro` has ended, then give the seat up."""
        call = _Call(coro, True)
        loop = self.loop
        self._drives += 1
        try:
            try:
                loop.call_soon(self._start, call)
            except RuntimeError:  # the loop is closed
                coro.close()
                raise
            try:
                while not call.finished:
                    loop.run_forever()
            except BaseException:
                if not call.finished:  # interrupted (KeyboardInterrupt): it goes on without this thread
                    call.driven = False
                    call.lock = _allocate_lock()
                    call.lock.acquire()
                    self._waiting.add(call)
                raise
        finally:
            self._leave_seat()
        return call.outcome()  # type: ignore[no-any-return]

    def _hand_over(self, coro: Coroutine[Any, Any, T]) -> T:
        """Hand `coro` to the thread that drives the loop and wait for its end."""
        call = _Call(coro, False)
        self._waiting.add(call)
        try:
            self.loop.call_soon_threadsafe(self._start, call)
        except RuntimeError:  # the loop is closed
            self._waiting.discard(call)
            coro.close()
            raise
        if not self._seat.locked():
            self._ring()  # the driver left before it could see this call: the background thread runs it
        call.lock.acquire()
        return call.outcome()  # type: ignore[no-any-return]

    def _leave_seat(self) -> None:
        self._seat.release()
        if self._waiting:
            self._ring()

    def _ring(self) -> None:
        try:
            self._bell.release()
        except RuntimeError:  # already rung
            pass

    async def _body(self, call: _Call) -> None:
        # The caller is let go from inside the task as it ends (not from a done-callback: one more pass).
        try:
            call.value = await call.coro
        except BaseException as exc:  # noqa: BLE001 - handed to the caller (cancellation too)
            call.error = exc
        finally:
            self._end(call)

    def _end(self, call: _Call) -> None:
        call.finished = True
        if call.driven:
            self.loop.stop()  # the driving caller's `run_forever` returns after this pass
            return
        self._waiting.discard(call)
        call.lock.release()
        if self._bg_driving and not self._waiting and self.drive:
            self._yielding = True
            self.loop.stop()  # a caller is active: the background thread gives the seat back

    def _start(self, call: _Call) -> None:
        body = self._body(call)
        try:
            self._eager_task(body)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            body.close()
            call.coro.close()
            call.error = exc
            self._end(call)

    def _eager_task(self, coro: Coroutine[Any, Any, None]) -> None:
        """Start `coro` as a task of the loop whose first step runs now, inside the calling callback, rather
        than in the next pass of the loop (what Python 3.12's ``eager_start`` does; the FUSE server's
        "eager-task" dispatch does the same on 3.11). A call that never suspends (an open that creates a
        file: inline SQLite, no I/O wait) ends in the pass that received it; one that suspends goes on as
        an ordinary task. Full task semantics either way (`asyncio.current_task`, its own context)."""
        loop = self.loop
        if _EAGER_START:
            asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
            return
        ready = self._ready
        before = len(ready) if ready is not None else -1
        loop.create_task(coro)
        if ready is not None and len(ready) == before + 1:
            ready.pop()._run()  # the step the new task just scheduled: the last handle in the queue

    # ------------------------------------------------------------------ the background thread

    def _main(self) -> None:
        seen = self._drives
        while not self._closing:
            rung = self._bell.acquire(timeout=self.idle)
            if self._closing:
                break
            if rung:
                if not self._waiting:  # already ended under another driver
                    continue
            elif self._drives != seen:  # a caller drove during the spell: not idle
                seen = self._drives
                continue
            if not self._seat.acquire(False):  # a caller drives (it rings if it leaves calls waiting)
                continue
            self._bg_driving = True
            try:
                if not self._closing:
                    self.loop.run_forever()  # until the last waiting call ends, or `stop`
            finally:
                self._bg_driving = False
                seen = self._drives
                self._leave_seat()
                self._yielding = False

    def _stop_bg(self) -> None:
        if self._bg_driving:
            self.loop.stop()

    def stop(self) -> None:
        """Stop the background thread and close the loop (after the client's last call). In a forked child:
        nothing (the loop, its self-pipe and selector are the parent's)."""
        if self._forked:
            return
        self._closing = True
        self._ring()
        try:
            self.loop.call_soon_threadsafe(self._stop_bg)
        except RuntimeError:  # already closed
            return
        self.thread.join(10)
        if not self.thread.is_alive() and self._seat.acquire(False):
            try:
                self.loop.close()
            finally:
                self._seat.release()

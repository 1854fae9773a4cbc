"""Driving a FUSE request's coroutine without an asyncio Task (the server's ``inline`` dispatch).

Why: on Python 3.11 every Task is registered in a Python-level ``WeakSet`` (``WeakSet.add`` on creation,
a weakref callback when it dies) and its first step waits for the next loop iteration; uvloop, which
network-engine mounts run on (ADR 0037), offers no way to take that step at once. A `Stepped` request runs
its first step inside the reader callback, and each later step straight from the done-callback of the
future it waits on: no Task, no registration, one loop iteration less before the first engine command
is queued (docs/adr/0060-redis-lean-scan-and-task-free-fuse-requests.md).

Contract — the task semantics a handler can observe are kept:

* Each step runs in the request's own copy of the context (copied when the request starts, as a Task does).
* While a step runs, ``asyncio.current_task()`` is the `Stepped` object, which answers ``cancel``,
  ``cancelling``, ``uncancel``, ``done`` and ``get_loop`` as a Task does — enough for ``asyncio.timeout``
  (used when the Redis client reconnects), ``asyncio.wait_for`` and `jfs.app.data.eager.start_now`.
* `cancel` (FUSE INTERRUPT, the drain at unmount) cancels the future the coroutine waits on, or throws
  ``CancelledError`` into it at its next step — as ``Task.cancel``.
* A coroutine may await asyncio futures of the same loop or yield bare (``asyncio.sleep(0)``); anything
  else is thrown back into it as a RuntimeError, as a Task does.
* The coroutine is expected to handle its own exceptions (the server's ``_run`` does): one escaping is
  passed to the loop's exception handler; KeyboardInterrupt and SystemExit propagate out of the loop.
* `finished()` is a future done when the coroutine has returned (for the drain at unmount).

Not a Task: ``asyncio.all_tasks()`` does not list requests (the server tracks its own in-flight ones).
"""

from __future__ import annotations

import asyncio
import contextvars
from asyncio.tasks import _enter_task, _leave_task  # type: ignore[attr-defined]
from collections.abc import Coroutine
from typing import Any


class Stepped:
    """One request's coroutine, stepped by hand (see the module docstring)."""

    __slots__ = ("_coro", "_loop", "_context", "_waiter", "_must_cancel", "_cancels", "_done", "_finished")

    def __init__(self, coro: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop) -> None:
        self._coro = coro
        self._loop = loop
        self._context = contextvars.copy_context()
        self._waiter: asyncio.Future[Any] | None = None
        self._must_cancel = False
        self._cancels = 0
        self._done = False
        self._finished: asyncio.Future[None] | None = None

    def start(self) -> bool:
        """Take the first step now (not from inside a running task); True when the coroutine already returned."""
        self._context.run(self._step, None)
        return self._done

    # -- what a handler may ask of "its task"

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def done(self) -> bool:
        return self._done

    def cancelling(self) -> int:
        return self._cancels

    def uncancel(self) -> int:
        if self._cancels > 0:
            self._cancels -= 1
        return self._cancels

    def cancel(self, msg: Any = None) -> bool:
        """Request cancellation: False when already finished."""
        if self._done:
            return False
        self._cancels += 1
        waiter = self._waiter
        if waiter is not None and waiter.cancel(msg):
            return True  # its done-callback steps the coroutine, whose await then raises CancelledError
        self._must_cancel = True
        return True

    def finished(self) -> asyncio.Future[None]:
        """A future done once the coroutine has returned."""
        fut = self._finished
        if fut is None:
            fut = self._finished = self._loop.create_future()
            if self._done:
                fut.set_result(None)
        return fut

    # -- stepping

    def _wakeup(self, _fut: asyncio.Future[Any]) -> None:
        """The done-callback of the awaited future: `_step` without an exception, its common case inline.
        The coroutine's ``await fut`` reads the result (or raises its exception) itself."""
        if self._must_cancel or self._done:
            self._step(None)
            return
        self._waiter = None
        loop = self._loop
        _enter_task(loop, self)
        try:
            result = self._coro.send(None)
        except StopIteration:
            self._finish()
        except (KeyboardInterrupt, SystemExit):
            self._finish()
            raise
        except BaseException as error:  # noqa: B036 - a handler bug must not take the loop down
            self._finish()
            loop.call_exception_handler({"message": "unhandled exception in a FUSE request", "exception": error})
        else:
            if getattr(result, "_asyncio_future_blocking", None) and result.get_loop() is loop:
                result._asyncio_future_blocking = False
                result.add_done_callback(self._wakeup, context=self._context)
                self._waiter = result
                if self._must_cancel and result.cancel():
                    self._must_cancel = False
            else:
                self._wait_for(result)
        finally:
            _leave_task(loop, self)

    def _step(self, exc: BaseException | None) -> None:
        if self._done:
            return
        if self._must_cancel:
            self._must_cancel = False
            exc = asyncio.CancelledError()
        self._waiter = None
        loop = self._loop
        _enter_task(loop, self)
        try:
            if exc is None:
                result = self._coro.send(None)
            else:
                result = self._coro.throw(exc)
        except StopIteration:
            self._finish()
        except (KeyboardInterrupt, SystemExit):
            self._finish()
            raise
        except BaseException as error:  # noqa: B036 - a handler bug must not take the loop down
            self._finish()
            loop.call_exception_handler({"message": "unhandled exception in a FUSE request", "exception": error})
        else:
            self._wait_for(result)
        finally:
            _leave_task(loop, self)

    def _wait_for(self, result: Any) -> None:
        blocking = getattr(result, "_asyncio_future_blocking", None)
        if blocking:
            if result.get_loop() is not self._loop:
                self._later(RuntimeError(f"request {self!r} got Future {result!r} attached to a different loop"))
                return
            result._asyncio_future_blocking = False
            result.add_done_callback(self._wakeup, context=self._context)
            self._waiter = result
            if self._must_cancel and result.cancel():
                self._must_cancel = False
        elif result is None:  # a bare yield: run again in the next iteration
            self._loop.call_soon(self._step, None, context=self._context)
        else:
            self._later(RuntimeError(f"request {self!r} yielded {result!r}, not a future"))

    def _later(self, exc: BaseException) -> None:
        self._loop.call_soon(self._step, exc, context=self._context)

    def _finish(self) -> None:
        self._done = True
        self._coro = None  # type: ignore[assignment]
        fut = self._finished
        if fut is not None and not fut.done():
            fut.set_result(None)

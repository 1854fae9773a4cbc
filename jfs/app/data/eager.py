"""Tasks whose first step runs at once, even from inside another task (Python 3.12's ``eager_start``).

`start_now(coro)` makes a task of `coro` and runs its first step before returning, in the running
task's stead: a coroutine that never suspends (a small block's inline put, a slice commit in an inline
SQLite transaction) is finished when `start_now` returns — no loop pass, no wake-up of the awaiting
task. One that suspends goes on as an ordinary task. It keeps full task semantics: the caller's
cancellation does not reach it, `asyncio.current_task()` inside it is itself, it runs in its own copy
of the context.

On Python 3.11 the running task is stepped out of (``asyncio.tasks._leave_task``) while the new task's
first step runs and back in afterwards — what 3.12's ``Task.__init__(eager_start=True)`` does with
``_swap_current_task``. Without it the new task's step would fail ("cannot enter into task … while
another task … is being executed") and the task would never run.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_EAGER_START = sys.version_info >= (3, 12)


def start_now(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task of `coro` on the running loop, its first step already taken (see the module docstring)."""
    loop = asyncio.get_running_loop()
    if _EAGER_START:
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
    ready = getattr(loop, "_ready", None)
    if ready is None:  # a loop without asyncio's ready queue: an ordinary task
        return loop.create_task(coro)
    before = len(ready)
    task = loop.create_task(coro)
    if len(ready) != before + 1:
        return task
    handle = ready.pop()  # the step `create_task` just scheduled
    current = asyncio.current_task(loop)
    if current is not None:
        asyncio.tasks._leave_task(loop, current)
    try:
        handle._run()
    finally:
        if current is not None:
            asyncio.tasks._enter_task(loop, current)
    return task

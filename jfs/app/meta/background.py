"""Background jobs: coroutines a component starts and does not await, but must see finished before it
closes (the metadata engine's slice deletions, the data path's compactions and cache writes).

`BackgroundJobs.spawn` runs a coroutine as a task and keeps it until it ends; a job that fails is logged
(``background_job_failed`` on the owner's logger), never raised. `drain` returns once every job started
so far, and every job those started meanwhile, has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


class BackgroundJobs:
    """The running background jobs of one owner; see the module docstring."""

    def __init__(self, log: Any) -> None:
        """`log`: the owner's structlog logger, for failed jobs."""
        self._log = log
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run `coro` in the background (awaited by `drain`)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self._log.warning("background_job_failed", error=str(t.exception()))

        task.add_done_callback(done)

    async def drain(self) -> None:
        """Wait until every job started so far has ended (failures were logged, not raised)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

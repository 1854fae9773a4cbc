"""`Pacer`: background rewrites (compaction) give way to the client's foreground I/O.

Foreground operations (reads and writes through the data path) `touch` the pacer; one that may wait long
(a flush waiting for its commits) holds it `active` meanwhile. A background job awaits
`step()` before each unit of its work (one block of a compaction):

* while the foreground has been quiet for `quiet` seconds, `step` returns at once (full speed);
* while it is active, the steps of all background jobs together are spaced at least `interval` seconds
  apart — background work keeps moving at a bounded rate under a foreground that never pauses (a chunk
  left fragmented forever would cost every later read more) — and a waiting step returns as soon as the
  foreground goes quiet.

Why: every block a compaction moves costs the process a few milliseconds of CPU under the interpreter lock
(object-store requests, copies, cache writes); a foreground read that hits the disk cache needs the lock a
dozen times, so it waited behind that work (issue 17, ADR 0036).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator

QUIET = 0.25
"""Seconds without a foreground operation after which background work runs at full speed."""
BUSY_INTERVAL = 0.25
"""Seconds between two background steps (of all jobs together) while the foreground is active."""
POLL = 0.02
"""Seconds between checks of a waiting step's `urgent` condition."""


class Pacer:
    """Spaces background steps while foreground I/O is active; see the module docstring."""

    def __init__(
        self,
        quiet: float = QUIET,
        interval: float = BUSY_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """`interval` 0 turns pacing off. `clock` and `sleep` are for tests."""
        self.quiet = quiet
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._touched = float("-inf")
        self._active = 0
        self._next = float("-inf")  # earliest time of the next step while the foreground is active
        self.waits = 0
        """Steps that had to wait (for figures and tests)."""

    def touch(self) -> None:
        """A foreground operation is running now."""
        self._touched = self._clock()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """A foreground operation runs for the duration of the block."""
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1
            self.touch()

    def busy(self) -> bool:
        """Whether a foreground operation runs or ran in the last `quiet` seconds."""
        return self._active > 0 or self._clock() < self._touched + self.quiet

    async def step(self, urgent: Callable[[], bool] | None = None) -> None:
        """Wait until the next background step may run (at once while the foreground is quiet). `urgent`:
        checked every `POLL` seconds while waiting; once it returns True the step runs."""
        now = self._clock()
        waited = False
        while now < self._next and not (urgent is not None and urgent()):
            quiet_at = self._next if self._active else self._touched + self.quiet
            if now >= quiet_at:
                break
            waited = True
            wait = min(self._next, quiet_at) - now
            await self._sleep(wait if urgent is None else min(wait, POLL))
            now = self._clock()
        self.waits += waited
        self._next = now + self.interval

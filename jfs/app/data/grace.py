"""`ReadGrace`: which of this client's reads may still hold an old chunk layout (ADR 0015).

Every read attempt `enter`s before it resolves a chunk's layout and `leave`s when it has its bytes; it is
stamped with the current epoch. `cut()` closes the epoch and returns it; `wait(cut)` returns once no read
stamped with that epoch or an earlier one is in flight. The data path cuts when the engine freed slices
(after dropping cached layouts that name them), and deletes their blocks only after `wait`: a read that may
have resolved a layout naming those slices before the swap finishes first, so it finds its blocks.
"""

from __future__ import annotations

import asyncio


class ReadGrace:
    """Reads in flight, counted by the epoch they started in; see the module docstring."""

    def __init__(self) -> None:
        self._epoch = 0
        self._active: dict[int, int] = {}  # epoch -> reads in flight that started in it (ascending epochs)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def enter(self) -> int:
        """Start a read; returns its stamp for `leave`."""
        epoch = self._epoch
        self._active[epoch] = self._active.get(epoch, 0) + 1
        return epoch

    def leave(self, stamp: int) -> None:
        """End the read `enter` stamped `stamp`."""
        left = self._active[stamp] - 1
        if left:
            self._active[stamp] = left
            return
        del self._active[stamp]
        if self._waiters:
            self._wake()

    def cut(self) -> int:
        """Close the current epoch: reads that enter from now on are not waited for by `wait(cut)`."""
        epoch = self._epoch
        self._epoch += 1
        return epoch

    def busy(self, cut: int) -> bool:
        """Whether a read stamped `cut` or earlier is still in flight."""
        return bool(self._active) and next(iter(self._active)) <= cut

    @property
    def in_flight(self) -> int:
        return sum(self._active.values())

    async def wait(self, cut: int) -> None:
        """Return once every read stamped `cut` or earlier has left."""
        if not self.busy(cut):
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((cut, fut))
        await fut

    def _wake(self) -> None:
        oldest = next(iter(self._active), None)
        keep: list[tuple[int, asyncio.Future[None]]] = []
        for cut, fut in self._waiters:
            if oldest is not None and oldest <= cut:
                keep.append((cut, fut))
            elif not fut.done():
                fut.set_result(None)
        self._waiters = keep

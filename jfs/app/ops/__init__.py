"""Whole-volume operations run from the command line (metadata dump and load).

They report progress through a `Progress` sink so that the app layer stays free of terminal rendering,
and fail with `OpsError` (a one-line message for the user) or the KV port's errors.
"""

from __future__ import annotations

from typing import Protocol


class OpsError(Exception):
    """A failure with a message ready for the user (one line)."""


class Progress(Protocol):
    """Where an operation reports how far it got."""

    def start(self, total: int | None) -> None:
        """The expected number of items (None when unknown); may be called again to correct it."""

    def advance(self, n: int) -> None:
        """`n` more items are done."""


class NoProgress:
    """A `Progress` that shows nothing."""

    def start(self, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


__all__ = ["OpsError", "Progress", "NoProgress"]

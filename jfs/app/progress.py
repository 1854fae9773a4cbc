"""The one progress protocol of long jobs (gc, fsck, dump, load, destroy, mdtest, warmup, ...).

A use case receives a `ProgressBoard` and opens one `ProgressBar` per phase; the CLI renders them with rich,
tests and library callers pass `QuietBoard`. The app layer never renders anything itself.
"""

from __future__ import annotations

from typing import Protocol


class ProgressBar(Protocol):
    """One line of progress: a counter, optionally with a known total."""

    def advance(self, n: int = 1) -> None: ...

    def set_total(self, total: int) -> None: ...

    def close(self) -> None: ...


class ProgressBoard(Protocol):
    """Where long operations report progress (the CLI renders it with rich; tests pass `QuietBoard`)."""

    def bar(self, description: str, total: int | None = None, *, unit: str = "") -> ProgressBar: ...


class _NoBar:
    def advance(self, n: int = 1) -> None:
        pass

    def set_total(self, total: int) -> None:
        pass

    def close(self) -> None:
        pass


class QuietBoard:
    """A `ProgressBoard` that shows nothing."""

    def bar(self, description: str, total: int | None = None, *, unit: str = "") -> ProgressBar:
        return _NoBar()


__all__ = ["ProgressBar", "ProgressBoard", "QuietBoard"]

"""The one rendering of `jfs.app.progress.ProgressBoard` on a terminal: rich progress bars on stderr.

Every long command (gc, fsck, destroy, dump, load, bench, mdtest) shows its use case's bars through a
`RichBoard`: one line per bar with its description, a bar (or a pulse without a total), done/total, the
unit, the rate (over the last seconds while running; over the whole bar once closed) and the elapsed
time. Nothing is drawn when stderr is not a terminal. Bars may be advanced from several threads (bench).
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from jfs.app.progress import ProgressBar


class _RateColumn(ProgressColumn):
    """Items per second: windowed while the bar runs, the bar's average once it is closed."""

    def render(self, task: Task) -> Text:
        if task.finished and task.finished_time:
            rate: float | None = task.completed / task.finished_time
        else:
            rate = task.speed
        unit = task.fields.get("unit") or "items"
        return Text(f"{rate:,.1f} {unit}/s" if rate else "", style="progress.data.speed")


class _Bar:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def set_total(self, total: int) -> None:
        self._progress.update(self._task, total=total)

    def close(self) -> None:
        """Show the bar as done: a counter without total, or one that ended early, stops at its count."""
        for task in self._progress.tasks:
            if task.id == self._task and not task.finished:
                self._progress.update(self._task, total=task.completed)


class RichBoard:
    """A `ProgressBoard` drawing on stderr (silent off a terminal); use as a context manager around the
    use case: ``with RichBoard() as board: run(..., progress=board)``."""

    def __init__(self, console: Console | None = None) -> None:
        """Draw on `console` (default: stderr)."""
        console = console or Console(stderr=True)
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"), _RateColumn(), TimeElapsedColumn(),
            console=console, disable=not console.is_terminal, refresh_per_second=8,
        )  # fmt: skip

    def bar(self, description: str, total: int | None = None, *, unit: str = "") -> ProgressBar:
        return _Bar(self._progress, self._progress.add_task(description, total=total, unit=unit))

    def __enter__(self) -> RichBoard:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()


__all__ = ["RichBoard"]

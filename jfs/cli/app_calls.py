"""How a command calls the application layer: under the CLI's one error boundary (`jfs.cli.errors`).

- `run` runs one app-layer coroutine with `asyncio.run`, given the composition root (`volume_api`, imported
  on first use so that ``jfs --help`` loads no engine client); Ctrl-C stops it cleanly (see `jfs.cli`) and
  exits 130 with ``jfs: error: interrupted``; any other failure exits with `errors.report`'s status.
- `run_sync` does the same for a synchronous call.
- `usage_error` prints one line and exits 2 (bad arguments).
- `remember_secrets` registers a META-URL's password and other secrets so that no message shows them.

Every function here either returns the call's result or raises `typer.Exit`; none lets an exception out.
"""

from __future__ import annotations

import faulthandler
import functools
import os
import sys
import threading
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import typer

from jfs.cli import errors, stops_cleanly

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")

CLEANUP_GRACE = 10.0
"""Seconds a command may spend stopping cleanly after Ctrl-C before it is ended anyway."""


@functools.cache
def _runner_class() -> type:
    """`_Runner`, defined on first use: ``jfs --help`` imports this module but not asyncio (ADR 0063)."""
    import asyncio

    class _Runner(asyncio.Runner):  # type: ignore[misc]  # final in typeshed only; the hook is `_on_sigint`
        """`asyncio.Runner` whose Ctrl-C also arms a watchdog: if the cancelled work has not ended within
        `CLEANUP_GRACE` seconds (a clean-up stuck on a thread or a lock), the stacks of every thread are
        written to stderr (a bug to report) and the process exits 130 with the usual line. The watchdog stays
        armed after the runner closes: a process that was interrupted is expected to end, and a hang in its
        exit (a thread that does not stop) is caught too. Metadata transactions are atomic, so ending there
        is no worse than a crash (orphan objects at most, which `jfs gc` finds)."""

        def _on_sigint(self, signum: int, frame: object, main_task: asyncio.Task[Any]) -> None:
            if not getattr(self, "_watchdog", None):
                self._watchdog = threading.Timer(CLEANUP_GRACE, _stuck_after_interrupt, (self.get_loop(),))
                self._watchdog.daemon = True
                self._watchdog.start()
            super()._on_sigint(signum, frame, main_task)  # type: ignore[misc]

    return _Runner


def _stuck_after_interrupt(loop: asyncio.AbstractEventLoop) -> None:
    import asyncio

    os.write(2, f"jfs: clean-up after Ctrl-C did not end within {CLEANUP_GRACE:.0f} s; stacks:\n".encode())
    faulthandler.dump_traceback(file=2, all_threads=True)
    try:  # the loop's thread is stuck or busy: reading its task list from here is good enough for a report
        for task in list(asyncio.all_tasks(loop)):
            task.print_stack(file=sys.stderr)
        sys.stderr.flush()
    except Exception:  # noqa: BLE001, S110  # the report is best effort; the exit below is what matters
        pass
    os.write(2, b"jfs: error: interrupted\n")
    os._exit(130)


def volume_api() -> ModuleType:
    """The composition root with the volume commands' URL wrappers (`jfs.compose`), imported on first use:
    `jfs --help` stays fast and loads no engine client. Tests replace it with a stub."""
    import jfs.compose as compose

    return compose


def run(call: Callable[[ModuleType], Coroutine[Any, Any, T]]) -> T:
    """The result of `call(volume_api())` run by `asyncio.run`, or `typer.Exit` after one error line
    (status 130 on Ctrl-C, else `errors.report`'s)."""
    try:
        api = volume_api()
        with stops_cleanly(), _runner_class()() as runner:
            return runner.run(call(api))
    except KeyboardInterrupt:
        errors.print_error("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:
        raise typer.Exit(errors.report(exc)) from None


def run_sync(call: Callable[[], T]) -> T:
    """The result of the synchronous `call()`, or `typer.Exit` after one error line."""
    try:
        return call()
    except Exception as exc:
        raise typer.Exit(errors.report(exc)) from None


def usage_error(message: str) -> NoReturn:
    """Print ``jfs: error: <message>`` and exit with status 2 (bad arguments)."""
    errors.print_error(message)
    raise typer.Exit(2)


def remember_secrets(meta_url: str, *values: str | None) -> None:
    """Never print the password of `meta_url` nor any of `values` (the empty ones are ignored)."""
    try:
        password = urlsplit(meta_url).password
    except ValueError:
        password = None
    errors.state.secrets.extend(v for v in (password, *values) if v)

"""The ``jfs`` command line for the commands a mount serves — ``info``, ``summary``, ``rmr``, ``warmup`` —
entered by `jfs.cli.run` when the first argument names one of them.

The same commands, options, help and error handling as through `jfs.cli.main` (both register
`jfs.cli.control_cmd`), without importing the rest of the CLI: these commands only talk to a mount's
``.control`` file, and the engines', object stores' and logging modules that every other command needs were
~0.3 s of a ~0.45 s start (``python -X importtime``), i.e. most of a ``jfs summary`` of 100,000 files.
Global options (``jfs -v summary …``) put another word first and go through `jfs.cli.main`.
"""

from __future__ import annotations

import os
import sys

import typer

from jfs.cli import coerce, control_cmd, quit_on_interrupt
from jfs.cli.messages import print_error, state

COMMANDS = frozenset({"info", "summary", "rmr", "warmup"})
"""The commands served here (`jfs.cli.control_cmd.register` adds exactly these)."""

coerce.install()  # plain option values without pydantic, as `jfs.cli.main` (ADR 0063; here since ADR 0081)

app = typer.Typer(
    name="jfs",
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
control_cmd.register(app)


def main() -> None:
    """Run one of `COMMANDS` (as `jfs.cli.main.main` would)."""
    state.debug = os.environ.get("JFS_DEBUG", "").lower() in ("1", "true", "yes", "on")
    quit_on_interrupt()
    try:
        app(prog_name="jfs")
    except KeyboardInterrupt:
        print_error("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug or a broken install: the full CLI's one-line report
        from jfs.cli.errors import report

        sys.exit(report(exc))

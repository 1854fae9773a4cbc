"""How the CLI prints a failure: ``jfs: error: <message>`` on one line, secrets masked (`print_error`), and
the CLI's error state (`state`: ``--debug``, the secrets). Kept apart from `jfs.cli.errors` (which
re-exports them, the same objects) so that commands that never open an engine — those a mount serves,
`jfs.cli.control_main` — print errors without importing the engines' and object stores' modules.
"""

from __future__ import annotations

import dataclasses
import sys


@dataclasses.dataclass
class State:
    debug: bool = False
    """Print tracebacks (``--debug``, ``JFS_DEBUG=1``)."""
    secrets: list[str] = dataclasses.field(default_factory=list)
    """Strings never to print (META-URL password, secret key): masked out of error messages."""


state = State()


def one_line(text: str) -> str:
    """`text` on one line, with every registered secret masked."""
    text = " ".join(text.split())
    for secret in state.secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "****")
    return text


def print_error(message: str) -> None:
    """Write ``jfs: error: <message>`` (one line, secrets masked) to stderr."""
    sys.stderr.write(f"jfs: error: {one_line(message)}\n")
    sys.stderr.flush()

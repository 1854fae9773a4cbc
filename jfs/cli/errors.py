"""The CLI's one error boundary: how a failure reaches the user.

A failure the user (or the environment) is responsible for is printed as ONE line
``jfs: error: <message>`` on stderr — exit status 1, or 2 for a malformed META-URL or bucket address — and
no traceback unless ``--debug`` / ``JFS_DEBUG=1``. Those failures are exactly `USER_ERRORS`: the app
layer's `jfs.app.errors.JfsError` (every user-facing error of the use cases), the ports' infrastructure
errors (`KVError`, `ObjectStoreError`), invalid settings, malformed dumps, file-system errors (with their
errno) and OS errors. Anything else is a bug: one line too, saying so, with the traceback under --debug.
Strings registered in `state.secrets` (a META-URL password, a secret key) never appear in a message.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

from jfs.cli.messages import State, one_line, print_error, state  # noqa: F401 - re-exported
from jfs.domain.errors import FSError


def _error_classes() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(`USER_ERRORS`, `USAGE_ERRORS`), imported on first use: the classes live in the engine and bucket
    registries, whose imports (structlog, asyncio, ...) a command that fails before opening anything, or
    never fails, does not need (ADR 0063)."""
    from jfs.adapters.kv.registry import BadMetaURL
    from jfs.adapters.objects.registry import BadStorage
    from jfs.app.errors import JfsError
    from jfs.domain.dumpfmt import DumpFormatError
    from jfs.domain.settings import InvalidSettings
    from jfs.ports.kv import KVError
    from jfs.ports.objects import ObjectStoreError

    user = (JfsError, KVError, ObjectStoreError, BadMetaURL, BadStorage, InvalidSettings, DumpFormatError,
            FSError, OSError)
    return user, (BadMetaURL, BadStorage)


def __getattr__(name: str) -> Any:
    """`USER_ERRORS`: failures that are the user's or the environment's problem (one line, no traceback);
    `USAGE_ERRORS`: the user errors that are bad arguments (exit status 2)."""
    if name == "USER_ERRORS":
        return _error_classes()[0]
    if name == "USAGE_ERRORS":
        return _error_classes()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def report(exc: BaseException) -> int:
    """Print `exc` as ``jfs: error: …`` (after its traceback with --debug); return the exit status."""
    if state.debug:
        traceback.print_exception(exc, file=sys.stderr)
    user_errors, usage_errors = _error_classes()
    if isinstance(exc, FSError):
        message = f"{exc.strerror} ({exc.name})"
    elif isinstance(exc, user_errors):
        message = str(exc) or type(exc).__name__
    else:
        message = f"internal error: {type(exc).__name__}: {exc}"
        if not state.debug:
            message += " (run with --debug for the traceback)"
    print_error(message)
    return 2 if isinstance(exc, usage_errors) else 1


__all__ = ["USER_ERRORS", "USAGE_ERRORS", "State", "state", "one_line", "print_error", "report"]  # noqa: F822

"""The one user-facing error hierarchy of jfs.

`JfsError` is a failure with a message ready for the user: one line, naming what failed and, where there is
one, what to do about it. The CLI's error boundary (`jfs.cli.errors`) prints any `JfsError` as one
``jfs: error: <message>`` line with exit status 1 and no traceback; library callers (the SDK, the gateways)
let it through or turn it into their protocol's error.

Subclasses exist only where a caller tells failures apart:

* `VolumeError`: a volume cannot be opened, created, changed or destroyed (also: not formatted).
* `OpsError`: a whole-volume operation (dump, load) cannot go on.
* `RestoreError`: a trash restore was refused; nothing was changed.
* `MdtestError`: the metadata benchmark cannot run with these settings.
* `ActiveSessions`: a volume still has live clients (carries them, for the CLI's table).

Infrastructure failures are not here: they are the ports' errors (`jfs.ports.kv.KVError`,
`jfs.ports.objects.ObjectStoreError`), file-system errors carry an errno (`jfs.domain.errors.FSError`), and
invalid settings are `jfs.domain.settings.InvalidSettings`. This module imports nothing of jfs, so that the
CLI can catch these classes without loading the app layer.
"""

from __future__ import annotations

from typing import Any


class JfsError(Exception):
    """A failure with a one-line message for the user."""


class VolumeError(JfsError):
    """A volume-level failure (open, format, status, config, destroy, a missing subdir, ...)."""


class OpsError(JfsError):
    """A whole-volume operation (metadata dump or load) cannot go on."""


class RestoreError(JfsError):
    """A trash restore was refused (nothing was changed)."""


class MdtestError(JfsError):
    """`jfs mdtest` cannot run with these settings or on this volume."""


class ActiveSessions(VolumeError):
    """The volume is in use; `sessions` lists the live sessions (as `Meta.list_sessions` gives them)."""

    def __init__(self, message: str, sessions: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.sessions = sessions


__all__ = ["JfsError", "VolumeError", "OpsError", "RestoreError", "MdtestError", "ActiveSessions"]

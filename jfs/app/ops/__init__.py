"""Whole-volume operations run from the command line (gc, fsck, dump, load, destroy, trash restore).

Each receives what it works on already opened (the engine's `KV`, a loaded `Meta`, the `ObjectStore`: the
composition root `jfs.compose` opens them from a META-URL), reports progress on a
`jfs.app.progress.ProgressBoard` so that the app layer stays free of terminal rendering, and fails with a
`jfs.app.errors.JfsError` (a one-line message for the user) or the ports' errors.
"""

from __future__ import annotations

from jfs.app.errors import OpsError

__all__ = ["OpsError"]

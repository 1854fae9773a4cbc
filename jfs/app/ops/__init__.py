"""Whole-volume operations run from the command line (gc, fsck, dump, load, destroy, trash restore, quota).

They are clients of the metadata engine (ADR 0018): metadata is read through `jfs.app.meta.reader`,
`jfs.app.meta.chunk_scan` and the engine's other public modules, not by scanning keys (dump and load keep
key-level code only where it is about the stored layout itself, as their docstrings say).

Each receives what it works on already opened (the engine's `KV`, a loaded `Meta`, the `ObjectStore`: the
composition root `jfs.compose` opens them from a META-URL), reports progress on a
`jfs.app.progress.ProgressBoard` so that the app layer stays free of terminal rendering, and fails with a
`jfs.app.errors.JfsError` (a one-line message for the user) or the ports' errors.
"""

from __future__ import annotations

from jfs.app.errors import OpsError

__all__ = ["OpsError"]

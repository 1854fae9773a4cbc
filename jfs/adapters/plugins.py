"""The entry points of the engine and storage registries (``jfs.kv``, ``jfs.objects``), read once per group
and process.

`importlib.metadata.entry_points(group=...)` reads the metadata of every installed distribution on each
call (~17 ms of CPU in the dev virtualenv); a ``jfs`` command opens the engine and the bucket, some of
them twice, so the registries keep what they read (ADR 0063). Entry points installed while a process
runs are seen by the next process.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def registered(group: str) -> tuple[Any, ...]:
    """The `importlib.metadata.EntryPoint`s of `group`, as `entry_points(group=group)` gives them."""
    from importlib.metadata import entry_points

    return tuple(entry_points(group=group))

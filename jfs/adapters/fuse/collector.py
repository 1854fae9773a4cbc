"""The garbage collector's settings for a process that serves a FUSE mount.

A listing of 10,000 entries allocates some 40,000 tracked objects (records, entries, attributes) that
live for a request or a page. With CPython's default thresholds (700, 10, 10) that is ~60 young
collections and, every tenth of the next generation, a full collection that walks the whole heap —
every module, every cached record — although nearly nothing of it is garbage. Profiles of a cold
``ls -l`` on Redis put about a quarter of the mount's CPU there.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 50_000
"""Net allocations of tracked objects between two young collections (CPython's default: 700). Memory
held by cyclic garbage waits at most that many allocations: a few MiB."""


def settle_for_serving() -> None:
    """Call once the mount is set up, before serving: what exists now (modules, engine and cache
    objects made at start-up) is moved out of the collector's sight (`gc.freeze`), and young
    collections run every `YOUNG_THRESHOLD` allocations. The older generations keep CPython's ratios,
    so full collections still come, relative to the young ones, as often as by default."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)

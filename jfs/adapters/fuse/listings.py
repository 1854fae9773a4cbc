"""Which directory listings the kernel may serve from its own cache (ADR 0024).

An OPENDIR reply with ``FOPEN_CACHE_DIR`` lets the kernel keep the dirents of a complete listing in the
directory's page cache; with ``FOPEN_KEEP_CACHE`` as well, the next opendir reads them from there (no
READDIR reaches the mount); without it the kernel drops them at that open and lists through the mount
again, refilling its cache. `KernelListings` decides, per OPENDIR, whether the kernel may keep what it has.
"""

from __future__ import annotations

import time

SWEEP_EVERY = 4096
"""Listings recorded between two sweeps of the expired ones."""


class KernelListings:
    """The rule for FOPEN_KEEP_CACHE on OPENDIR: the kernel keeps its cached listing of a directory only
    while (1) that listing was served by this mount, complete, no earlier than `ttl` seconds ago, (2) no
    opendir of the directory since told the kernel to drop its copy before that listing began, and (3)
    this mount has not learnt of a change of the directory's entries since (`changed`: its own changes,
    a lock taken on a file in it, a ``.control`` removal, any invalidation of the directory).

    `ttl` is the shortest of the entry and attribute timeouts the listing's READDIRPLUS entries carried:
    within it the kernel also still holds every listed name and its attributes, so ``ls -l`` of a kept
    listing costs the mount nothing (only listings whose every reply carried attributes are kept:
    `unattributed`); after it, a change made by another client is seen exactly as a
    cached name is (ADR 0014). ``ttl <= 0`` keeps nothing.

    Invariant: a listing the kernel serves from its cache began at most `ttl` seconds before the
    opendir that kept it, and no change of the directory known to this mount happened after it began.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._dropped: dict[int, float] = {}  # ino -> when an opendir last told the kernel to drop its copy
        self._filled: dict[int, float] = {}  # ino -> when the oldest complete listing since then began
        self._open: dict[int, tuple[int, float]] = {}  # directory handle -> (ino, when its listing began)
        self._recorded = 0

    def keep(self, ino: int) -> bool:
        """Answer an OPENDIR of `ino`: may the kernel keep its cached listing (else it drops it now)?"""
        now = time.monotonic()
        filled = self._filled.get(ino)
        if filled is not None and now - filled < self.ttl:
            return True
        if self.ttl > 0:
            self._filled.pop(ino, None)
            self._dropped[ino] = now
            self._recorded += 1
            if self._recorded >= SWEEP_EVERY:
                self._sweep(now)
        return False

    def started(self, fh: int, ino: int) -> None:
        """Handle `fh` of directory `ino` lists from the start (offset 0)."""
        if self.ttl > 0:
            self._open[fh] = (ino, time.monotonic())

    def finished(self, fh: int) -> None:
        """Handle `fh` has listed to the end: the kernel may now hold that listing."""
        listing = self._open.pop(fh, None)
        if listing is None:
            return
        ino, began = listing
        dropped = self._dropped.get(ino)
        if dropped is None or began < dropped:
            return  # a kernel copy made from this listing was dropped by a later opendir (or never kept)
        if ino not in self._filled:
            self._filled[ino] = began

    def unattributed(self, fh: int) -> None:
        """Handle `fh` answered a reply without attributes (plain READDIR: ``--readdir-plus auto`` or
        ``never``, ADR 0080): its listing is not kept. The kernel would hold those names without dentries or
        attributes, and ``ls -l`` of the kept copy would LOOKUP each of them (measured: `ls` then `ls -l` of
        10k entries 0.2 s -> 3 s on Redis); listed again, the kernel asks READDIRPLUS for what is stat'ed."""
        self._open.pop(fh, None)

    def closed(self, fh: int) -> None:
        """Handle `fh` is released (a listing left unfinished is not one the kernel holds)."""
        self._open.pop(fh, None)

    def changed(self, ino: int) -> None:
        """The entries of directory `ino` may have changed: its next opendir drops the kernel's copy."""
        self._filled.pop(ino, None)
        self._dropped.pop(ino, None)
        # A listing under way may have read entries from before the change.
        for fh in [fh for fh, (i, _) in self._open.items() if i == ino]:
            del self._open[fh]

    def changed_all(self) -> None:
        """Anything may have changed (e.g. a lock taken whose directory is unknown)."""
        self._filled.clear()
        self._dropped.clear()
        self._open.clear()

    def _sweep(self, now: float) -> None:
        self._recorded = 0
        edge = now - self.ttl
        self._filled = {i: t for i, t in self._filled.items() if t > edge}
        self._dropped = {i: t for i, t in self._dropped.items() if t > edge or i in self._filled}

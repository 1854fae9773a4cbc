"""`OpenedFiles`: what each file looked like at this client's last open of it, in bounded memory.

An open answers the kernel "keep your cached pages" (``FOPEN_KEEP_CACHE``) only when the file's
(mtime, length) are those seen at this client's previous open, i.e. nobody changed it since (close-to-open:
a change by any client moves mtime or length). Forgetting a file is always safe: its next open is then
answered "drop your pages" (one re-read from the mount), never "keep" for a changed file.

Memory stays bounded (issue 17: per-inode state must not grow with the volume): two generations of at most
`GENERATION` files each; when the young one fills, it becomes the old one and the former old one is
dropped whole. A file opened again is moved to the young generation, so files in use stay while the bound
holds about the last `GENERATION` to 2 × `GENERATION` distinct files opened. Every operation is O(1): no
scan over the map, no eviction loop.
"""

from __future__ import annotations

GENERATION = 32_768
"""Files per generation (at most twice as many are remembered: ~6 MiB at ~90 B per file)."""

Stamp = tuple[int, int]
"""(mtime in ns, length) of a file at an open."""


class OpenedFiles:
    """Inode → the `Stamp` seen at its last open, at most 2 × `generation` of them (see the module)."""

    __slots__ = ("_old", "_young", "generation")

    def __init__(self, generation: int = GENERATION) -> None:
        if generation < 1:
            raise ValueError("generation must be at least 1")
        self.generation = generation
        self._young: dict[int, Stamp] = {}
        self._old: dict[int, Stamp] = {}

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def reopened(self, ino: int, stamp: Stamp) -> bool:
        """Record that `ino` is open with `stamp` now; True when the previous open still remembered saw the
        same `stamp` (the kernel may keep its pages), False when it differs or is not remembered."""
        young = self._young
        last = young.get(ino)
        if last is None:
            last = self._old.pop(ino, None)
            if len(young) >= self.generation:
                self._old = young
                young = self._young = {}
        young[ino] = stamp
        return last == stamp

    def forget(self, ino: int) -> None:
        """Remember nothing about `ino` (its next open is answered "drop your pages")."""
        self._young.pop(ino, None)
        self._old.pop(ino, None)

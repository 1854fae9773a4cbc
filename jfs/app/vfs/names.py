"""`NameCache`: what a path-based face (SDK, gateways) may remember between calls, as the kernel's dentry and
attribute caches do for a mount: name → inode for `entry_ttl` seconds, inode → attributes for `attr_ttl`.

Changes made through this client's VFS drop what they make stale at once; changes by other clients show up
when an entry expires (the same close-to-open contract as a mount with the same timeouts). A TTL of 0
turns that cache off.
"""

from __future__ import annotations

import time

from jfs.domain.attrs import Attr, FileType


class NameCache:
    def __init__(self, entry_ttl: float = 1.0, attr_ttl: float = 1.0, max_items: int = 100_000) -> None:
        self.entry_ttl = entry_ttl
        self.attr_ttl = attr_ttl
        self.max_items = max_items
        self._entries: dict[tuple[int, bytes], tuple[int, float]] = {}
        self._attrs: dict[int, tuple[Attr, float, int]] = {}  # attributes, expiry, `stored` when remembered
        self.stored = 0
        """Attributes remembered so far (a counter): `fresh_since` tells those read after a given moment."""
        self._kinds: dict[int, FileType] = {}
        """The type of every inode whose attributes were remembered: it never changes (inode numbers are not
        reused), so path walks pass through a directory whose attributes were dropped (a create in it changed
        its mtime) without reading them again."""

    def entry(self, parent: int, name: bytes) -> int | None:
        hit = self._entries.get((parent, name))
        if hit is None:
            return None
        if hit[1] < time.monotonic():
            del self._entries[(parent, name)]
            return None
        return hit[0]

    def attr(self, ino: int) -> Attr | None:
        hit = self._attrs.get(ino)
        if hit is None:
            return None
        if hit[1] < time.monotonic():
            del self._attrs[ino]
            return None
        return hit[0]

    def kind(self, ino: int) -> FileType | None:
        """The type of `ino` if its attributes were ever remembered (never expires; safe from any thread)."""
        return self._kinds.get(ino)

    def peek_entry(self, parent: int, name: bytes) -> int | None:
        """`entry` without dropping an expired one: safe to call from another thread than the owner's (a
        dict read is atomic; nothing is mutated)."""
        hit = self._entries.get((parent, name))
        return None if hit is None or hit[1] < time.monotonic() else hit[0]

    def peek_attr(self, ino: int) -> Attr | None:
        """`attr` without dropping an expired one (thread-safe like `peek_entry`)."""
        hit = self._attrs.get(ino)
        return None if hit is None or hit[1] < time.monotonic() else hit[0]

    def remember(self, parent: int, name: bytes, ino: int, attr: Attr) -> None:
        now = time.monotonic()
        if self.entry_ttl > 0:
            if len(self._entries) >= self.max_items:
                self._entries.clear()
            self._entries[(parent, name)] = (ino, now + self.entry_ttl)
        self.remember_attr(ino, attr, now)

    def remember_attr(self, ino: int, attr: Attr, now: float | None = None) -> None:
        if self.attr_ttl > 0:
            if len(self._attrs) >= self.max_items:
                self._attrs.clear()
            self.stored += 1
            self._attrs[ino] = (attr, (now or time.monotonic()) + self.attr_ttl, self.stored)
        if len(self._kinds) >= self.max_items:
            self._kinds.clear()
        self._kinds[ino] = attr.typ

    def fresh_since(self, ino: int, stored: int) -> Attr | None:
        """The attributes of `ino` if they were remembered after the counter `stored` was read, else None:
        read from the engine by the caller's own path walk, as fresh as a second read would be."""
        hit = self._attrs.get(ino)
        return hit[0] if hit is not None and hit[2] > stored else None

    def forget_entry(self, parent: int, name: bytes) -> None:
        self._entries.pop((parent, name), None)

    def forget_attr(self, *inodes: int) -> None:
        for ino in inodes:
            self._attrs.pop(ino, None)

    def clear(self) -> None:
        self._entries.clear()
        self._attrs.clear()
        self._kinds.clear()

"""The attributes this client's own last change of a directory's entries left in its record.

A create, mkdir, unlink, rmdir or rename rewrites the directory's attributes (times, nlink) in the same
transaction; the kernel, told of the change, drops its cached attributes of the directory and asks for
them again (GETATTR) before the next operation in it (its permission check). `OwnDirAttrs` keeps what
the transaction wrote so that this GETATTR is answered without another read (ADR 0037).

Invariant: an entry holds the record as left by the last write transaction of this client that touched
the directory (committed after every earlier one: per directory, this client's write transactions
commit in the order they began, see `Meta.txn_dirs`); any other transaction of this client on the
directory forgets it, and a failed or overtaken one never records. Entries carry the monotonic time of
the commit: a reader takes them only younger than its own timeout (another client's change is then seen
exactly as late as through the kernel's attribute cache).
"""

from __future__ import annotations

import time

from jfs.domain.attrs import TRASH_INODE, Attr

LIMIT = 4096
"""Directories remembered at most (all forgotten when passed)."""


class OwnDirAttrs:
    """Directory inode -> (commit time, attributes written), filled by `begin` + `wrote`."""

    __slots__ = ("_attrs", "_last", "_seq")

    def __init__(self) -> None:
        self._attrs: dict[int, tuple[float, Attr]] = {}
        self._last: dict[int, int] = {}  # ino -> the sequence number of the last transaction begun on it
        self._seq = 0

    def begin(self, *inodes: int) -> int:
        """A write transaction on `inodes` begins: forget what they hold; returns its sequence number for
        `wrote`."""
        self._seq += 1
        seq = self._seq
        if len(self._last) >= LIMIT:
            self._last.clear()  # a pending `wrote` then records nothing: safe
            self._attrs.clear()
        last, attrs = self._last, self._attrs
        for ino in inodes:
            last[ino] = seq
            attrs.pop(ino, None)
        return seq

    def wrote(self, ino: int, seq: int, attr: Attr) -> None:
        """Transaction `seq` (from `begin`) committed, leaving directory `ino` with `attr` (not changed
        afterwards by the caller). Kept only when no other transaction on `ino` began since."""
        if self._last.get(ino) != seq:
            return
        del self._last[ino]
        if ino < TRASH_INODE:  # trash directories change under the cleaner's direct transactions
            self._attrs[ino] = (time.monotonic(), attr)

    def forget(self, *inodes: int) -> None:
        """Another transaction changes `inodes` (or something else may have): drop what they hold, and
        make a recording transaction on them still under way record nothing."""
        last, attrs = self._last, self._attrs
        for ino in inodes:
            last.pop(ino, None)
            attrs.pop(ino, None)

    def get(self, ino: int, max_age: float) -> tuple[Attr, float] | None:
        """(attributes, age in seconds) of directory `ino` if recorded less than `max_age` seconds ago."""
        entry = self._attrs.get(ino)
        if entry is None:
            return None
        age = time.monotonic() - entry[0]
        if age >= max_age:
            del self._attrs[ino]
            return None
        return entry[1], age

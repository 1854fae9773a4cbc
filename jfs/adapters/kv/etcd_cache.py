"""The etcd adapter's read cache: the last version of a key this client read or wrote, as a hint.

An entry is ``(value, mod_revision, at, since)``: `key` held `value` (None = absent, mod_revision 0)
at every revision from `since` to `at` (a present value since its mod revision; an absence since the
delete that this client committed, else only at `at`). Entries are never trusted on their own: a read-write transaction that reads one
puts ``mod_revision == entry.mod_revision`` in its commit's compares exactly as for a key read from the
server, so a stale entry makes the commit fail (docs/adr/0025-etcd-read-cache.md). Read-only
transactions never return cached values; they use entries only to guess which key to fetch beside the
ones asked (`EtcdTx.get_follow`).

Invariants: an entry is replaced only by one known at the same or a later revision (a slow read cannot
put back what a later commit of this client replaced); every commit of this client updates the keys it
wrote (value at the commit's revision; its deletes become "absent") and confirms the keys it compared
(`confirm`: they still held their version at the commit's revision); a failed or unknown commit drops the
keys it read and wrote.

`Version.t` (docs/adr/0043-etcd-directory-attributes-known-from-own-commits.md): the monotonic time at
which this client sent the commit that wrote or confirmed the entry, so the version was the key's current
one at some instant no earlier than `t`; 0 when it came from a read only. `EtcdKV.recent_value` hands out
entries with a recent `t` (a bounded-staleness answer for a face whose own cache tolerates that much). Memory is bounded: values over `max_value` bytes are not kept, and the least
recently used entries are evicted beyond `max_bytes` (keys + values + a fixed overhead per entry).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

ENTRY_OVERHEAD = 352
"""Bytes charged per entry beyond its key and value: measured with tracemalloc, about 240 for the
Version tuple, its ints and the OrderedDict node, plus two bytes-object headers; plus 32 for `Version.t`
(a tuple slot and a float)."""


class Version(NamedTuple):
    """`value` (None: absent) with etcd's `mod_revision` (0 when absent), known to hold at every revision
    of [`since`, `at`]; `t`: see the module docstring (0: not known from a commit of this client)."""

    value: bytes | None
    mod_revision: int
    at: int
    since: int
    t: float = 0.0

    def holds_at(self, revision: int) -> bool:
        """Whether this is the key's version at `revision`."""
        return self.since <= revision <= self.at


class ReadCache:
    """A bounded LRU map key -> `Version`; see the module docstring. Not thread-safe (one event loop)."""

    def __init__(self, max_bytes: int = 32 << 20, max_value: int = 16 << 10) -> None:
        self.max_bytes = max_bytes
        self.max_value = max_value
        self.bytes = 0
        self._entries: OrderedDict[bytes, Version] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _size(key: bytes, v: Version) -> int:
        return len(key) + (len(v.value) if v.value is not None else 0) + ENTRY_OVERHEAD

    def get(self, key: bytes) -> Version | None:
        """The entry of `key` (marked recently used), or None."""
        v = self._entries.get(key)
        if v is not None:
            self._entries.move_to_end(key)
        return v

    def peek(self, key: bytes) -> Version | None:
        """The entry of `key`, or None (its place in the eviction order unchanged)."""
        return self._entries.get(key)

    def recent(self, key: bytes, within: float) -> tuple[bytes | None, float] | None:
        """``(value, age)`` of `key` as this client's latest commit that wrote or compared it left it (None:
        absent), when that commit was sent no more than `within` seconds ago and no later version has been
        noted since; else None. `age` (seconds since that commit was sent) bounds how stale the value can
        be: it was the key's current value at some instant since then, and only another client's change
        after that instant can have replaced it. For a face whose own cache already tolerates that much
        staleness (docs/adr/0043-etcd-directory-attributes-known-from-own-commits.md)."""
        v = self._entries.get(key)
        if v is None or not v.t:
            return None
        age = time.monotonic() - v.t
        return (v.value, age) if 0 <= age <= within else None

    def note(
        self, key: bytes, value: bytes | None, mod_revision: int, at: int, deleted_at: int = 0, t: float = 0.0
    ) -> None:
        """Remember that `key` held `value` (None: absent; `deleted_at`: since when, if known) with
        `mod_revision` as of revision `at`, unless an entry known at a later revision is kept. A value too
        large to keep drops the entry. `t`: the send time of this client's commit that wrote it (0: a read);
        the same version noted again keeps the later of the two times."""
        old = self._entries.get(key)
        if old is not None:
            if old.at > at:
                return
            if old.mod_revision == mod_revision and (old.value is None) == (value is None):
                t = max(t, old.t)
            self._drop(key, old)
        if value is not None and len(value) > self.max_value:
            return
        if value is not None:
            v = Version(value, mod_revision, at, mod_revision, t)
        else:
            v = Version(None, 0, at, deleted_at or at, t)
        self._entries[key] = v
        self.bytes += self._size(key, v)
        while self.bytes > self.max_bytes and self._entries:
            k, old = self._entries.popitem(last=False)
            self.bytes -= self._size(k, old)

    def confirm(self, key: bytes, mod_revision: int, at: int, t: float) -> None:
        """A commit of this client, sent at time `t`, compared `key` against `mod_revision` and succeeded at
        revision `at`: the entry, if it is that version, is known to hold at `at` too (and as of `t`). A
        present value held all along (its mod revision did not move); an absence is known at `at` only (the
        key may have come and gone in between)."""
        old = self._entries.get(key)
        if old is None or old.mod_revision != mod_revision or old.at > at:
            return
        since = old.since if old.value is not None else at
        self._entries[key] = old._replace(at=at, since=since, t=max(t, old.t))

    def _drop(self, key: bytes, old: Version) -> None:
        del self._entries[key]
        self.bytes -= self._size(key, old)

    def discard(self, keys: Iterable[bytes]) -> None:
        """Forget `keys` (absent ones are fine)."""
        for key in keys:
            old = self._entries.get(key)
            if old is not None:
                self._drop(key, old)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

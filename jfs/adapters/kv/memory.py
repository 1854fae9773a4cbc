"""`memory://` — an in-process optimistic KV for unit tests of the app layer.

It is a real optimistic store (not a dict with a lock): every committed write stamps the key with a commit
sequence number, deletions leave stamped tombstones, and a transaction fails with a conflict when any key
it read, or any key in a range it scanned, was stamped after the transaction began. Methods yield to the
event loop so that concurrent transactions really interleave and the retry path gets exercised.
URLs with the same name (``memory://name``) share one store inside a process.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

from sortedcontainers import SortedDict

from jfs.adapters.kv.base import BufferedWrites, RetryingKV, merge_scan
from jfs.domain.records import decode_i64, encode_i64
from jfs.ports.kv import ConflictError

T = TypeVar("T")


class _Store:
    def __init__(self) -> None:
        self.data: SortedDict[bytes, tuple[int, bytes | None]] = SortedDict()  # key -> (version, value)
        self.seq = 0


_STORES: dict[str, _Store] = {}


class MemoryTx(BufferedWrites):
    def __init__(self, store: _Store, readonly: bool) -> None:
        self._store = store
        super().__init__(readonly)
        self._start = store.seq
        self._reads: set[bytes] = set()
        self._ranges: list[tuple[bytes, bytes]] = []

    def _value(self, key: bytes) -> bytes | None:
        found, value = self._buf.lookup(key)
        if found:
            return value
        self._reads.add(key)
        entry = self._store.data.get(key)
        return None if entry is None else entry[1]

    async def get(self, key: bytes) -> bytes | None:
        await asyncio.sleep(0)
        return self._value(key)

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        await asyncio.sleep(0)
        return [self._value(k) for k in keys]

    def _live(self, begin: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Committed pairs of [begin, end), ascending (tombstones skipped)."""
        data = self._store.data
        for k in data.irange(begin, end, inclusive=(True, False)):
            value = data[k][1]
            if value is not None:
                yield k, value

    async def scan(
        self, begin: bytes, end: bytes, *, limit: int | None = None, keys_only: bool = False
    ) -> list[tuple[bytes, bytes]]:
        await asyncio.sleep(0)
        out = merge_scan(self._live(begin, end), self._buf.in_range(begin, end), limit)
        if limit is not None and len(out) >= limit and out:
            self._ranges.append((begin, out[-1][0] + b"\x00"))
        else:
            self._ranges.append((begin, end))
        if keys_only:
            return [(k, b"") for k, _ in out]
        return out

    async def _page(self, cursor: bytes, end: bytes, n: int) -> list[tuple[bytes, bytes]]:
        await asyncio.sleep(0)
        return list(itertools.islice(self._live(cursor, end), n))

    def commit(self) -> None:
        """Validate reads and apply writes; synchronous, so atomic with respect to other tasks."""
        data = self._store.data
        for key in self._reads:
            entry = data.get(key)
            if entry is not None and entry[0] > self._start:
                raise ConflictError(f"key {key!r} changed")
        for begin, end in self._ranges:
            for key in data.irange(begin, end, inclusive=(True, False)):
                if data[key][0] > self._start:
                    raise ConflictError(f"range [{begin!r}, {end!r}) changed")
        if not self._buf:
            return
        self._store.seq += 1
        seq = self._store.seq
        for key, value in self._buf.writes.items():
            data[key] = (seq, value)
        for key, delta in self._buf.adds.items():
            entry = data.get(key)
            current = decode_i64(entry[1] if entry else None)
            data[key] = (seq, encode_i64(current + delta))


class MemoryKV(RetryingKV):
    """See the module docstring."""

    def __init__(self, url: str, store: _Store) -> None:
        self.url = url
        self._store = store

    async def _attempt(self, body: Callable[[Any], Awaitable[T]], readonly: bool) -> T:
        tx = MemoryTx(self._store, readonly)
        result = await body(tx)
        tx.commit()
        return result

    async def reset(self) -> None:
        self._store.data.clear()
        self._store.seq += 1

    async def close(self) -> None:
        pass


async def open_memory(url: str) -> MemoryKV:
    """Open ``memory://[name]``; the same name shares one store within the process."""
    name = url.partition("://")[2]
    store = _STORES.setdefault(name, _Store()) if name else _Store()
    return MemoryKV(url, store)

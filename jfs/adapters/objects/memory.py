"""``mem`` storage — an in-process object store for unit tests, with the semantics of the real ones.

Objects live in a sorted dict; a bucket name shares one store within the process (``""`` = a private
store), so two "clients" of a test can see the same bucket. Buckets always exist; `create_bucket` is a
no-op. Values are copied on `put` (the caller may reuse its buffer) and every call yields to the event loop
so that concurrent callers interleave as they would against a real store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from itertools import islice

from sortedcontainers import SortedDict

from jfs.ports.objects import ObjectInfo, ObjectNotFound

PAGE = 1000

_Objects = SortedDict[str, tuple[bytes, float]]  # key -> (data, mtime)
_BUCKETS: dict[str, _Objects] = {}


class MemoryStore:
    """A dict of key -> (data, mtime) behind the object-store port."""

    def __init__(self, bucket: str = "") -> None:
        self.url = f"mem://{bucket}"
        self._objects: _Objects = _BUCKETS.setdefault(bucket, SortedDict()) if bucket else SortedDict()

    async def create_bucket(self) -> None:
        await asyncio.sleep(0)

    async def put(self, key: str, data: bytes | memoryview) -> None:
        value = bytes(data)
        await asyncio.sleep(0)
        self._objects[key] = (value, time.time())

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        await asyncio.sleep(0)
        entry = self._objects.get(key)
        if entry is None:
            raise ObjectNotFound(f"object '{key}' not found in {self.url}")
        data: bytes = entry[0]
        if off == 0 and limit < 0:
            return data
        return data[off:] if limit < 0 else data[off : off + limit]

    async def head(self, key: str) -> ObjectInfo:
        await asyncio.sleep(0)
        entry = self._objects.get(key)
        if entry is None:
            raise ObjectNotFound(f"object '{key}' not found in {self.url}")
        return ObjectInfo(key, len(entry[0]), entry[1])

    async def delete(self, key: str) -> None:
        await asyncio.sleep(0)
        self._objects.pop(key, None)

    async def list(
        self, prefix: str = "", start_after: str = "", limit: int | None = None
    ) -> AsyncIterator[ObjectInfo]:
        remaining = limit
        cursor = max(prefix, start_after)
        inclusive = cursor != start_after  # the prefix itself is a valid key; start_after is not
        while remaining is None or remaining > 0:
            await asyncio.sleep(0)
            # Page through a fresh iterator each time: puts between pages must not break the iteration.
            keys = list(islice(self._objects.irange(minimum=cursor, inclusive=(inclusive, True)), PAGE))
            if not keys:
                return
            for key in keys:
                if not key.startswith(prefix):
                    return
                entry = self._objects.get(key)
                if entry is None:
                    continue
                yield ObjectInfo(key, len(entry[0]), entry[1])
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        return
            cursor, inclusive = keys[-1], False

    async def close(self) -> None:
        await asyncio.sleep(0)


async def open_memory(bucket: str, **_: str) -> MemoryStore:
    """Open the in-process bucket `bucket` (credentials are ignored)."""
    return MemoryStore(bucket)

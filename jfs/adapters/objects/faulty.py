"""A wrapper store that fails on purpose, for testing how the data path copes with an unreliable store.

`FaultyStore` forwards every call to an inner store, but a seeded random fraction `rate` of the calls
named in `ops` (default ``put`` and ``get``) raise ObjectStoreError — what the real adapters raise when
a transient failure outlived their retries. With `put_lands` > 0 that fraction of the failing puts
still store the object before failing, as when the response of a successful upload is lost, so callers
must not assume that a failed put left nothing behind. `injected` counts the failures per operation.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator, Iterable

from jfs.ports.objects import ObjectInfo, ObjectStore, ObjectStoreError


class FaultyStore:
    """`inner` with injected failures; see the module docstring."""

    def __init__(
        self,
        inner: ObjectStore,
        rate: float = 0.1,
        *,
        seed: int = 0,
        ops: Iterable[str] = ("put", "get"),
        put_lands: float = 0.0,
    ) -> None:
        if not 0.0 <= rate <= 1.0 or not 0.0 <= put_lands <= 1.0:
            raise ValueError("rate and put_lands are probabilities in [0, 1]")
        self.inner = inner
        self.url = inner.url
        self.rate = rate
        self.ops = frozenset(ops)
        self.put_lands = put_lands
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(seed)

    def _should_fail(self, op: str) -> bool:
        if op in self.ops and self._rng.random() < self.rate:
            self.injected[op] += 1
            return True
        return False

    def _error(self, op: str, key: str) -> ObjectStoreError:
        return ObjectStoreError(f"injected failure: {op} '{key}' on {self.url}")

    async def create_bucket(self) -> None:
        await self.inner.create_bucket()

    async def put(self, key: str, data: bytes | memoryview) -> None:
        if self._should_fail("put"):
            if self.put_lands and self._rng.random() < self.put_lands:
                await self.inner.put(key, data)
            raise self._error("put", key)
        await self.inner.put(key, data)

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        if self._should_fail("get"):
            raise self._error("get", key)
        return await self.inner.get(key, off, limit)

    async def head(self, key: str) -> ObjectInfo:
        if self._should_fail("head"):
            raise self._error("head", key)
        return await self.inner.head(key)

    async def delete(self, key: str) -> None:
        if self._should_fail("delete"):
            raise self._error("delete", key)
        await self.inner.delete(key)

    async def list(
        self, prefix: str = "", start_after: str = "", limit: int | None = None
    ) -> AsyncIterator[ObjectInfo]:
        if self._should_fail("list"):
            raise self._error("list", prefix)
        async for info in self.inner.list(prefix, start_after, limit):
            yield info

    async def close(self) -> None:
        await self.inner.close()

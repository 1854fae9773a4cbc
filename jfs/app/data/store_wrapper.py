"""`StoreWrapper`: an ObjectStore that passes every call on to an `inner` one.

The data path's store layers (encryption, throttling) change a few calls and subclass it for the rest,
so that each states only what it changes. Errors are `inner`'s, unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from jfs.ports.objects import ObjectInfo, ObjectStore


class StoreWrapper:
    """An ObjectStore delegating every call to `inner` (its `url` is `inner`'s)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url

    async def create_bucket(self) -> None:
        await self.inner.create_bucket()

    async def put(self, key: str, data: bytes | memoryview) -> None:
        await self.inner.put(key, data)

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        return await self.inner.get(key, off, limit)

    async def head(self, key: str) -> ObjectInfo:
        return await self.inner.head(key)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    def list(self, prefix: str = "", start_after: str = "", limit: int | None = None) -> AsyncIterator[ObjectInfo]:
        return self.inner.list(prefix, start_after, limit)

    async def close(self) -> None:
        await self.inner.close()

"""Bandwidth limits at the object-store boundary (``--upload-limit`` / ``--download-limit``, in Mbps as
JuiceFS takes them): `ThrottledStore` wraps an `ObjectStore` and makes PUT and GET bodies pass a
`TokenBucket` each.

A bucket may go into debt: a request bigger than the burst (a 4 MiB block under a 10 Mbps limit) is not
refused or split, its caller sleeps until the debt is paid, and concurrent callers queue behind it in the
order they asked. So over any span the bytes that pass are at most ``burst + rate × span`` (aiolimiter's
leaky bucket refuses amounts above its capacity, hence this small class).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jfs.app.data.store_wrapper import StoreWrapper
from jfs.ports.objects import ObjectStore

BURST_SECONDS = 0.1
"""A bucket holds at most this many seconds of its rate (the burst a quiet client may send at once)."""


def mbps_to_bytes(mbps: float) -> float:
    """Megabits per second (JuiceFS's unit: 10^6 bits) → bytes per second."""
    return mbps * 1_000_000 / 8


class TokenBucket:
    """`rate` bytes per second, at most `burst` bytes ahead; `take` waits for what exceeds that."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else rate * BURST_SECONDS
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def _reserve(self, n: int) -> float:
        """Take `n` tokens now (possibly into debt); the seconds to wait until they are covered."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        return -self.tokens / self.rate if self.tokens < 0 else 0.0

    async def take(self, n: int) -> None:
        delay = self._reserve(n)
        if delay > 0:
            await asyncio.sleep(delay)


class ThrottledStore(StoreWrapper):
    """An ObjectStore whose PUT bodies pass `upload` and GET bodies `download` (either may be None)."""

    def __init__(self, inner: ObjectStore, upload: TokenBucket | None, download: TokenBucket | None) -> None:
        super().__init__(inner)
        self.upload = upload
        self.download = download
        self.hides_local_reads = download is not None
        """Reads must pass the download limit: the fetcher does not reach past it for a local bucket's
        no-hop reads (`fetcher.store_capability`, ADR 0065)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def put(self, key: str, data: bytes | memoryview) -> None:
        if self.upload is not None:
            await self.upload.take(len(data))
        await self.inner.put(key, data)

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        data = await self.inner.get(key, off, limit)
        if self.download is not None:  # the size is known once it arrived: the next request waits
            await self.download.take(len(data))
        return data



def throttled(store: ObjectStore, upload_mbps: float = 0, download_mbps: float = 0) -> ObjectStore:
    """`store` limited to the given bandwidths (0 = unlimited); `store` itself when neither is set."""
    if upload_mbps <= 0 and download_mbps <= 0:
        return store
    up = TokenBucket(mbps_to_bytes(upload_mbps)) if upload_mbps > 0 else None
    down = TokenBucket(mbps_to_bytes(download_mbps)) if download_mbps > 0 else None
    return ThrottledStore(store, up, down)  # type: ignore[return-value]

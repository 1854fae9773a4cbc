"""Bandwidth limits at the object-store boundary (`jfs.app.data.throttle`)."""

from __future__ import annotations

import asyncio
import time

import pytest

from jfs.adapters.objects.memory import MemoryStore
from jfs.app.data.throttle import ThrottledStore, TokenBucket, mbps_to_bytes, throttled


def test_mbps_are_megabits() -> None:
    assert mbps_to_bytes(8) == 1_000_000


async def test_the_bucket_lets_a_burst_through_then_the_rate() -> None:
    bucket = TokenBucket(rate=1_000_000, burst=100_000)
    start = time.monotonic()
    await bucket.take(100_000)  # the burst: no wait
    assert time.monotonic() - start < 0.05
    await bucket.take(300_000)  # a request above the burst goes into debt: 0.3 s
    assert time.monotonic() - start >= 0.29


async def test_concurrent_takers_share_the_rate() -> None:
    bucket = TokenBucket(rate=2_000_000, burst=0.0)
    start = time.monotonic()
    await asyncio.gather(*(bucket.take(100_000) for _ in range(10)))  # 1 MB at 2 MB/s
    assert time.monotonic() - start >= 0.49


async def test_throttled_store_limits_puts_and_gets_separately() -> None:
    inner = MemoryStore()
    store = throttled(inner, upload_mbps=16, download_mbps=0)  # 2 MB/s up, unlimited down
    assert isinstance(store, ThrottledStore) and store.download is None
    payload = b"x" * 1_000_000
    start = time.monotonic()
    await store.put("a", payload)
    await store.put("b", payload)
    assert time.monotonic() - start >= 0.9  # 2 MB at 2 MB/s, less the 0.1 s burst
    start = time.monotonic()
    assert await store.get("a") == payload
    assert time.monotonic() - start < 0.2
    down = throttled(inner, download_mbps=16)
    start = time.monotonic()
    await down.get("a")
    await down.get("b")
    assert time.monotonic() - start >= 0.4  # the second get waits for the first one's debt
    assert throttled(inner) is inner


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)

"""Reads answered at once from the caches (`Reader.read_now`, `DiskCache.get_now`; ADR 0038): the same
bytes as `read` or None, never a wait, a fetch or a stale answer."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.data.cache import OPEN_ENTRIES, DiskCache
from jfs.domain.chunks import block_key
from jfs.ports.objects import ObjectStore
from jfs.testing.data_harness import DataVolume

BS = 64 << 10
UUID = "0b7e4c4e-1111-2222-3333-444455556677"


def _joined(data: Any) -> bytes:
    return b"".join(bytes(p) for p in data) if isinstance(data, list) else bytes(data)


async def _volume(**overrides: Any) -> DataVolume:
    store = MemoryStore(f"read-now-{uuid.uuid4().hex}")

    async def opener() -> ObjectStore:
        return store

    defaults: dict[str, Any] = {"retry_delay": 0.001, "io_retries": 3, "compact_on_read": False}
    defaults.update(overrides)
    compression = defaults.pop("compression", "none")
    return await DataVolume.create(await open_kv("memory://"), opener, compression=compression, **defaults)


@pytest.fixture(params=["none", "lz4"])
async def vol(request: pytest.FixtureRequest) -> AsyncIterator[DataVolume]:
    v = await _volume(compression=request.param)
    yield v
    await v.close()


async def test_cached_reads_are_answered_at_once_with_the_bytes_read_gives(vol: DataVolume) -> None:
    data = os.urandom(4 * BS)
    ino = await vol.write_new_file(b"f", data, off=BS)  # a hole first
    h = await vol.dp.open(ino)
    assert vol.dp.read_now(h, BS, 4096) is None  # nothing cached yet: the layout is unknown
    assert await vol.dp.read(h, 0, 5 * BS) == b"\0" * BS + data
    loads = vol.dp.fetcher.store_loads
    for off, n in [(BS, 4096), (BS + 5000, 4096), (0, 10), (BS - 3, 10), (2 * BS - 100, BS + 200),
                   (5 * BS - 10, 100), (5 * BS, 10), (9 * BS, 10)]:
        now = vol.dp.read_now(h, off, n)
        assert now is not None, (off, n)
        assert _joined(now) == await vol.dp.read(h, off, n), (off, n)
    assert vol.dp.fetcher.store_loads == loads
    await vol.dp.release(h)
    assert vol.dp.read_now(h, 0, 10) is None  # a released handle: `read` answers EBADF


async def test_pending_writes_and_stale_attributes_are_left_to_read(vol: DataVolume) -> None:
    data = os.urandom(2 * BS)
    ino = await vol.write_new_file(b"f", data)
    h = await vol.dp.open(ino, os.O_RDWR)
    await vol.dp.read(h, 0, 2 * BS)
    assert vol.dp.read_now(h, 0, 100) is not None
    await vol.dp.write(h, 10, b"new")
    assert vol.dp.read_now(h, 0, 100) is None  # this client's pending bytes: `read` overlays them
    assert vol.dp.read_now(h, 0, 100) is None
    assert (await vol.dp.read(h, 0, 16))[10:13] == b"new"
    await vol.dp.flush(h)
    await vol.dp.read(h, 0, 2 * BS)
    state = vol.dp._inodes[ino]
    state.attr_time -= vol.config.attr_ttl + 1
    assert vol.dp.read_now(h, 0, 100) is None  # `read` revalidates the attributes first
    await vol.dp.read(h, 0, 100)
    assert _joined(vol.dp.read_now(h, 0, 16))[10:13] == b"new"
    await vol.dp.release(h)


async def test_a_small_read_is_served_from_the_page_cached_disk_cache(tmp_path: Path) -> None:
    vol = await _volume(cache_dir=str(tmp_path), cache_small_writes=False, cache_full_writes=False,
                        cache_loads=True)
    try:
        data = os.urandom(8 * BS)
        ino = await vol.write_new_file(b"random", data)
        h = await vol.dp.open(ino)
        assert await vol.dp.read(h, 3 * BS + 8192, 4096) == data[3 * BS + 8192 : 3 * BS + 12288]
        await vol.dp.fetcher.settle()  # the whole block is in the disk cache now
        vol.dp.mem.clear()
        disk = vol.dp.disk
        assert disk is not None
        hits = disk.hits
        for off in (3 * BS + 9000, 3 * BS + 40960, 3 * BS + 1):
            now = vol.dp.read_now(h, off, 4096)
            assert now is not None and _joined(now) == data[off : off + 4096], off
        assert disk.hits == hits + 3 and len(disk._open) == 1
        assert vol.dp.read_now(h, 3 * BS, 4096) is None  # a block start loads the whole block
        assert vol.dp.read_now(h, 5 * BS + 100, 4096) is None  # not in the disk cache
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_get_now_never_serves_damaged_bytes_and_get_then_drops_the_entry(tmp_path: Path) -> None:
    cache = DiskCache(str(tmp_path), UUID, 1 << 20)
    await cache.ready()
    data = os.urandom(150_000)
    key = block_key(7, 1, len(data))
    await cache.put(key, data)
    assert cache.get_now(block_key(8, 1, 100), 0, 10) is None
    got = cache.get_now(key, 20_000, 4096)
    assert got is not None and bytes(got) == data[20_000:24_096]
    path = Path(cache._path(key))
    raw = bytearray(await asyncio.to_thread(path.read_bytes))
    raw[21_000] ^= 0xFF

    def damage() -> None:  # in place: the open descriptor sees it
        with open(path, "r+b") as f:
            f.write(raw)

    await asyncio.to_thread(damage)
    assert cache.get_now(key, 20_000, 4096) is None
    assert bytes(cache.get_now(key, 100_000, 4096) or b"") == data[100_000:104_096]  # elsewhere: fine
    assert await cache.get(key, 20_000, 4096) is None  # `get` reports and drops it
    assert key not in cache and not cache._open
    await cache.close()


async def test_open_entries_are_bounded_and_closed_with_their_keys(tmp_path: Path) -> None:
    cache = DiskCache(str(tmp_path), UUID, 64 << 20)
    await cache.ready()
    keys = [block_key(100 + i, 0, 20_000) for i in range(OPEN_ENTRIES + 3)]
    for key in keys:
        await cache.put(key, key.encode().ljust(20_000, b"x"))
        assert cache.get_now(key, 8192, 10) is not None
    assert len(cache._open) == OPEN_ENTRIES
    await cache.drop(keys[-2:])
    assert len(cache._open) == OPEN_ENTRIES - 2 and keys[-1] not in cache._open
    assert cache.get_now(keys[-1], 8192, 10) is None
    await cache.close()
    assert not cache._open

"""A local bucket's blocks made local by a ranged read (ADR 0065): `FileStore.warm` / `get_now`, the
fetcher asking a store that can warm instead of copying the block into the disk cache, and the read loop's
no-hop answer from a warmed block."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from jfs.adapters.direct_files import DirectWriter
from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.file import NOWAIT_MAX, FileStore
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.data import fetcher as fetcher_mod
from jfs.app.data.fetcher import WARMED_MAX, store_capability
from jfs.app.data.store_wrapper import StoreWrapper
from jfs.app.data.throttle import throttled
from jfs.ports.objects import ObjectStore
from jfs.testing.data_harness import DataVolume

BS = 64 << 10


class LocalStore(StoreWrapper):
    """A memory store with a ``file`` bucket's capabilities: `warm` records the keys asked and makes them
    "cached"; `get_now` answers only for cached keys (as the page cache would); counts the async gets."""

    def __init__(self) -> None:
        self.memory = MemoryStore(f"warm-{uuid.uuid4().hex}")
        super().__init__(self.memory)
        self.warmed: list[str] = []
        self.cached: set[str] = set()
        self.gets = 0
        self.nows = 0

    async def create_bucket(self) -> None:
        pass

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        self.gets += 1
        return await self.inner.get(key, off, limit)

    def warm(self, key: str) -> bool:
        self.warmed.append(key)
        self.cached.add(key)
        return True

    def get_now(self, key: str, off: int, limit: int) -> bytes | None:
        if key not in self.cached:
            return None
        self.nows += 1
        value = self.memory._objects[key][0]  # noqa: SLF001 - the memory store's own bytes
        return bytes(value[off : off + limit])

    async def close(self) -> None:
        pass


async def _volume(store: ObjectStore, **overrides: Any) -> DataVolume:
    async def opener() -> ObjectStore:
        return store

    config: dict[str, Any] = {"retry_delay": 0.001, "io_retries": 3, "compact_on_read": False}
    config.update(overrides)
    return await DataVolume.create(await open_kv("memory://"), opener, compression="none", **config)


# -- FileStore ------------------------------------------------------------------------------------------


def _uncached(path: Path, data: bytes) -> None:
    """Write `path` around the page cache (skips where the file system refuses O_DIRECT)."""
    writer = DirectWriter()
    if not writer.write(str(path), [data]) or not writer.usable:
        pytest.skip("no O_DIRECT on this file system")


async def test_warm_reads_an_uncached_object_into_the_page_cache(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path))
    try:
        data = os.urandom(1 << 20)
        os.makedirs(tmp_path / "vol")
        _uncached(tmp_path / "vol" / "blk", data)
        if store.get_now("vol/blk", 4096, 4096) is not None:
            pytest.skip("the page cache kept the direct-written pages")
        assert store.warm("vol/blk")
        deadline = time.monotonic() + 5
        got = None
        while got is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            got = store.get_now("vol/blk", 512 << 10, 4096)
        assert got == data[512 << 10 : (512 << 10) + 4096]
        assert await store.get("vol/blk") == data  # the bytes are unchanged
    finally:
        await store.close()


async def test_warm_ignores_missing_objects_and_refuses_bad_keys(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path))
    try:
        assert store.warm("vol/missing")  # queued; the advice finds nothing and says nothing
        assert not store.warm("../outside")
        assert not store.warm("")
        await asyncio.sleep(0.05)
        assert not (tmp_path / "vol").exists()  # advice creates nothing
    finally:
        await store.close()
    assert not store.warm("vol/after-close")  # the pool is shut down


async def test_get_now_answers_only_small_cached_ranges(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path))
    try:
        data = os.urandom(3 * NOWAIT_MAX)
        await store.put("vol/k", data)  # a buffered put: in the page cache
        assert store.get_now("vol/k", 100, 4096) == data[100:4196]
        assert store.get_now("vol/k", len(data) - 10, 4096) == data[-10:]  # short at the end, as `get`
        assert store.get_now("vol/k", 0, NOWAIT_MAX + 1) is None  # too big for the caller's thread
        assert store.get_now("vol/k", 0, 0) is None
        assert store.get_now("vol/missing", 0, 4096) is None
        assert store.get_now("../x", 0, 4096) is None
    finally:
        await store.close()


# -- the capability lookup ------------------------------------------------------------------------------


def test_store_capability_looks_through_wrappers_but_not_attribute_delegation() -> None:
    local = LocalStore()
    wrapped = StoreWrapper(StoreWrapper(local))
    assert store_capability(wrapped, "warm") == local.warm
    assert store_capability(wrapped, "get_now") == local.get_now
    assert store_capability(StoreWrapper(MemoryStore("")), "warm") is None

    class Delegating:
        """Answers every attribute (as `TimedStore` does through ``__getattr__``) but has no `inner`."""

        def __getattr__(self, name: str) -> Any:
            return lambda *a: True

    assert store_capability(Delegating(), "warm") is None
    # A download limit: every read passes it, so nothing below it is reached directly.
    assert store_capability(throttled(local, download_mbps=10), "get_now") is None
    assert store_capability(throttled(local, upload_mbps=10), "get_now") == local.get_now


# -- the fetcher and the read loop ---------------------------------------------------------------------


async def test_a_ranged_read_warms_a_local_block_once_instead_of_filling_the_disk_cache(tmp_path: Path) -> None:
    store = LocalStore()
    vol = await _volume(store, cache_dir=str(tmp_path), cache_small_writes=False, cache_full_writes=False,
                        cache_loads=True)
    try:
        data = os.urandom(20 * BS)
        ino = await vol.write_new_file(b"random", data)
        h = await vol.dp.open(ino)
        store.gets = 0
        vol.dp.fetcher.mem.shrink(0)  # nothing in memory: every read misses it
        assert await vol.dp.read(h, 7 * BS + 1000, 4096) == data[7 * BS + 1000 : 7 * BS + 5096]
        await vol.dp.fetcher.settle()
        assert store.gets == 1  # the range only: no whole-block fetch for the disk cache
        assert len(store.warmed) == 1 and store.warmed[0].split("_")[-2] == "7"
        assert vol.dp.fetcher.disk is not None and len(vol.dp.fetcher.disk) == 0
        assert vol.dp.fetcher.warms == 1
        # The next small reads of the block: no hop, no get, no second warm.
        for off in (7 * BS + 9000, 7 * BS + 30000, 7 * BS + 50000):
            now = vol.dp.read_now(h, off, 4096)
            assert now is not None and bytes(now) == data[off : off + 4096]  # type: ignore[arg-type]
        assert store.gets == 1 and store.nows == 3 and len(store.warmed) == 1
        # Another block, not warmed yet: the loop leaves it to `read`, which warms it.
        assert vol.dp.read_now(h, 3 * BS + 100, 4096) is None
        assert await vol.dp.read(h, 3 * BS + 100, 4096) == data[3 * BS + 100 : 3 * BS + 4196]
        await vol.dp.fetcher.settle()
        assert len(store.warmed) == 2 and store.gets == 2
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_warmed_blocks_are_remembered_up_to_a_bound() -> None:
    store = LocalStore()
    vol = await _volume(store)
    try:
        fetcher = vol.dp.fetcher
        for i in range(1, WARMED_MAX + 6):
            fetcher._fill_disk_cache(i, 0, BS)  # noqa: SLF001 - the hook a ranged load calls
        assert len(store.warmed) == WARMED_MAX + 5
        fetcher._fill_disk_cache(1, 0, BS)  # noqa: SLF001 - forgotten (the oldest): asked again
        fetcher._fill_disk_cache(WARMED_MAX + 5, 0, BS)  # noqa: SLF001 - remembered: not asked
        assert len(store.warmed) == WARMED_MAX + 6
    finally:
        await vol.close()


async def test_checksummed_volumes_never_answer_from_a_warmed_range() -> None:
    store = LocalStore()
    vol = await _volume(store, checksum=True)
    try:
        data = os.urandom(20 * BS)
        ino = await vol.write_new_file(b"sums", data)
        store.cached.update(k for k in store.memory._objects)  # noqa: SLF001 - every block "cached"
        vol.dp.fetcher.mem.shrink(0)
        assert vol.dp.fetcher.range_now(1, 0, BS, 100, 10) is None
        h = await vol.dp.open(ino)
        assert vol.dp.read_now(h, 7 * BS + 1000, 4096) is None
        assert store.nows == 0
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_a_warmed_block_whose_pages_were_dropped_is_warmed_again() -> None:
    store = LocalStore()
    vol = await _volume(store)
    try:
        data = os.urandom(20 * BS)
        ino = await vol.write_new_file(b"dropped", data)
        h = await vol.dp.open(ino)
        vol.dp.fetcher.mem.shrink(0)
        await vol.dp.read(h, 5 * BS + 100, 4096)
        await vol.dp.fetcher.settle()
        assert len(store.warmed) == 1
        store.cached.clear()  # the kernel dropped the block's pages
        assert vol.dp.read_now(h, 5 * BS + 9000, 4096) is None  # within the grace: still counted as warming
        await vol.dp.read(h, 5 * BS + 9000, 4096)
        assert len(store.warmed) == 1
        warmed = vol.dp.fetcher._warmed  # noqa: SLF001 - as if warmed longer ago than the grace
        for key in warmed:
            warmed[key] -= fetcher_mod.WARM_GRACE + 1
        assert vol.dp.read_now(h, 5 * BS + 9000, 4096) is None  # past the grace: forgotten
        assert await vol.dp.read(h, 5 * BS + 20000, 4096) == data[5 * BS + 20000 : 5 * BS + 24096]
        assert len(store.warmed) == 2 and store.warmed[0] == store.warmed[1]
        await vol.dp.release(h)
    finally:
        await vol.close()



async def test_a_file_bucket_volume_answers_random_reads_from_warmed_block_files(tmp_path: Path) -> None:
    """End to end on a real `file` bucket: blocks off the page cache, a ranged read warms its block, later
    small reads of it are answered by the read loop with the right bytes, and no disk-cache entry is made."""
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    store = FileStore(str(bucket))
    vol = await _volume(store, cache_dir=str(tmp_path / "cache"), cache_small_writes=False,
                        cache_full_writes=False, cache_loads=True)
    try:
        data = os.urandom(20 * BS)
        ino = await vol.write_new_file(b"random", data)
        for root, _, names in os.walk(bucket):  # written back, then out of the page cache
            for name in names:
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
                try:
                    os.fdatasync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
        h = await vol.dp.open(ino)
        vol.dp.fetcher.mem.shrink(0)
        off = 9 * BS + 1234
        if vol.dp.read_now(h, off, 4096) is not None:
            pytest.skip("the page cache kept the block files")
        assert await vol.dp.read(h, off, 4096) == data[off : off + 4096]
        assert vol.dp.fetcher.warms == 1
        deadline = time.monotonic() + 5
        now = None
        while now is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            now = vol.dp.read_now(h, off + 20000, 4096)
        assert now is not None and bytes(now) == data[off + 20000 : off + 24096]  # type: ignore[arg-type]
        await vol.dp.fetcher.settle()
        assert vol.dp.fetcher.disk is not None and len(vol.dp.fetcher.disk) == 0
        await vol.dp.release(h)
    finally:
        await vol.close()
        await store.close()

"""Block caches: memory LRU, disk cache entries with checksums, eviction, restart, refetch on corruption."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.data.cache import DiskCache, MemoryCache, entry_size
from jfs.domain import keys
from jfs.domain.chunks import block_key
from jfs.ports.objects import ObjectStore
from jfs.testing.data_harness import DataVolume

UUID = "0b7e4c4e-1111-2222-3333-444455556666"


def test_memory_cache_shrinks_to_a_ceiling_and_grows_back() -> None:
    """`shrink` evicts the oldest entries down to the new ceiling at once, later puts respect it, and a
    higher ceiling lets the cache grow again, never past its capacity (ADR 0048)."""
    cache: MemoryCache[str] = MemoryCache(100)
    for k in "abc":
        cache.put(k, k.encode() * 30)
    cache.shrink(50)
    assert cache.used == 30 and cache.get("a") is None and cache.get("b") is None
    cache.put("d", b"d" * 30)
    assert cache.used == 30 and cache.get("c") is None
    cache.put("big", b"x" * 60)  # larger than the ceiling in force: not kept
    assert cache.get("big") is None
    cache.shrink(1000)
    assert cache.ceiling == 100
    cache.put("e", b"e" * 60)
    assert cache.used == 90


def test_memory_cache_is_lru_bounded_in_bytes() -> None:
    cache: MemoryCache[str] = MemoryCache(100)
    cache.put("a", b"a" * 40)
    cache.put("b", b"b" * 40)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", b"c" * 40)
    assert cache.get("b") is None
    assert cache.get("a") == b"a" * 40
    assert cache.used == 80
    cache.put("huge", b"h" * 101)
    assert cache.get("huge") is None
    cache.drop("a")
    assert cache.used == 40


async def test_disk_cache_round_trip_and_ranges(tmp_path: Path) -> None:
    cache = DiskCache(str(tmp_path), UUID, 1 << 20)
    await cache.ready()
    data = os.urandom(200_000)
    key = block_key(4105, 0, len(data))
    await cache.put(key, data)
    path = tmp_path / UUID / "raw" / "chunks" / "0" / "4" / f"4105_0_{len(data)}"
    assert path.stat().st_size == entry_size(len(data))
    assert await cache.get(key) == data
    assert await cache.get(key, 70_000, 100_000) == data[70_000:170_000]
    assert await cache.get(key, 199_999, 10) == data[199_999:]
    assert await cache.get(block_key(4106, 0, 10)) is None
    await cache.close()


@pytest.mark.parametrize("where", ["data", "trailer", "truncate"])
async def test_a_corrupted_entry_is_detected_and_dropped(tmp_path: Path, where: str) -> None:
    cache = DiskCache(str(tmp_path), UUID, 1 << 20)
    await cache.ready()
    data = os.urandom(150_000)
    key = block_key(7, 1, len(data))
    await cache.put(key, data)
    path = Path(cache._path(key))
    raw = bytearray(await asyncio.to_thread(path.read_bytes))
    if where == "data":
        raw[100_000] ^= 0xFF
    elif where == "trailer":
        raw[-6] ^= 0x01
    else:
        raw = raw[:-1]
    await asyncio.to_thread(path.write_bytes, bytes(raw))
    # A read of a range the damage does not touch may still be served; a read covering it may not.
    assert await cache.get(key) is None
    assert not await asyncio.to_thread(path.exists)
    assert key not in cache and cache.used == 0
    await cache.close()


async def test_eviction_keeps_the_cache_within_its_size(tmp_path: Path) -> None:
    size = entry_size(10_000)
    cache = DiskCache(str(tmp_path), UUID, 5 * size)
    await cache.ready()
    keys = [block_key(100 + i, 0, 10_000) for i in range(8)]
    for i, key in enumerate(keys[:5]):
        await cache.put(key, bytes([i]) * 10_000)
    assert await cache.get(keys[0]) is not None  # keys[1] is now the least recently used
    for key in keys[5:]:
        await cache.put(key, b"n" * 10_000)
    assert cache.used <= 5 * size
    assert len(cache) == 5
    assert keys[0] in cache and keys[1] not in cache and keys[2] not in cache
    files = [p for p in (tmp_path / UUID / "raw").rglob("*") if p.is_file()]
    assert len(files) == 5
    await cache.close()


async def test_the_index_is_rebuilt_after_a_restart(tmp_path: Path) -> None:
    cache = DiskCache(str(tmp_path), UUID, 1 << 20)
    await cache.ready()
    keys = [block_key(300 + i, i, 5000 + i) for i in range(6)]
    for key in keys:
        await cache.put(key, os.urandom(int(key.rsplit("_", 1)[1])))
    used = cache.used
    await cache.close()
    junk = tmp_path / UUID / "raw" / "chunks" / "0" / "0" / "300_0_5000.abcd.tmp"
    junk.write_bytes(b"half")
    os.utime(junk, (time.time() - 60, time.time() - 60))  # left by a crash before this start
    torn = tmp_path / UUID / "raw" / "chunks" / "0" / "0" / "999_0_10"
    torn.write_bytes(b"short")

    again = DiskCache(str(tmp_path), UUID, 1 << 20)
    await again.ready()
    assert len(again) == 6 and again.used == used
    assert not junk.exists() and not torn.exists()
    assert await again.get(keys[3]) is not None
    await again.close()


async def test_lookups_work_while_the_start_up_scan_runs(tmp_path: Path) -> None:
    cache = DiskCache(str(tmp_path), UUID, 1 << 20)
    await cache.ready()
    key = block_key(55, 0, 100)
    await cache.put(key, b"z" * 100)
    await cache.close()
    again = DiskCache(str(tmp_path), UUID, 1 << 20)
    again.start()
    assert await again.get(key) == b"z" * 100  # found on disk before the scan reached it
    await again.ready()
    assert len(again) == 1
    await again.close()


async def test_the_data_path_refetches_a_corrupted_cache_entry(tmp_path: Path) -> None:
    store = MemoryStore(f"cache-{uuid.uuid4().hex}")

    async def opener() -> ObjectStore:
        return store

    vol = await DataVolume.create(
        await open_kv("memory://"), opener, cache_dir=str(tmp_path), compression="lz4", cache_loads=True
    )
    try:
        ino = await vol.new_file(b"cached")
        h = await vol.dp.open(ino, os.O_RDWR)
        data = os.urandom(100_000)
        await vol.dp.write(h, 0, data)
        await vol.dp.flush(h)
        vol.dp.mem.clear()  # (the short block written is in memory too: read it from the store)
        assert await vol.dp.read(h, 0, len(data)) == data
        await vol.dp.drain()
        disk = vol.dp.disk
        assert disk is not None and len(disk) == 2  # one block cached at upload (short), one at fetch
        for p in (tmp_path / vol.config.uuid / "raw").rglob("*_*_*"):
            raw = bytearray(p.read_bytes())
            raw[10] ^= 0x55
            p.write_bytes(bytes(raw))
        vol.dp.mem.clear()
        assert await vol.dp.read(h, 0, len(data)) == data
        assert disk.corrupt == 2
        await vol.dp.drain()
        assert len(disk) == 2  # refetched blocks were cached again
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_the_cache_gives_space_back_when_the_disk_is_nearly_full(tmp_path: Path) -> None:
    cache = DiskCache(str(tmp_path), UUID, 1 << 30, min_free_ratio=1.0)  # "always short of space"
    await cache.put(block_key(1, 0, 1000), b"x" * 1000)
    assert len(cache) == 0 and cache.used == 0
    await cache.close()


async def test_the_cache_stops_caching_below_the_free_space_ratio(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """--free-space-ratio: with less than the ratio free, nothing new is written; when space is back, it is."""
    import jfs.app.data.cache as cache_mod

    free = {"blocks": 5}  # of 100 (4 KiB each): 5 % free

    def fake_statvfs(path: str) -> os.statvfs_result:
        return os.statvfs_result((4096, 4096, 100, free["blocks"], free["blocks"], 100, 50, 50, 0, 255))

    monkeypatch.setattr(cache_mod, "_statvfs_nearest", fake_statvfs)
    cache = DiskCache(str(tmp_path), UUID, 1 << 30, min_free_ratio=0.1)
    try:
        await cache.put(block_key(1, 0, 1000), b"x" * 1000)
        assert len(cache) == 0 and cache.skipped_full == 1
        assert not any(files for _, _, files in os.walk(tmp_path))  # not even written and removed
        free["blocks"] = 50
        monkeypatch.setattr(cache_mod, "SPACE_CHECK_INTERVAL", 0.0)
        await cache.put(block_key(2, 0, 1000), b"y" * 1000)
        assert len(cache) == 1 and cache.skipped_full == 1
        assert await cache.get(block_key(2, 0, 1000)) == b"y" * 1000
    finally:
        await cache.close()


async def test_a_short_block_written_is_read_back_from_memory() -> None:
    """A block shorter than a full block (a small file) is in the memory cache once stored: reading it
    right after the write loads nothing from the object store; a full block is not kept there."""
    store = MemoryStore(f"cache-{uuid.uuid4().hex}")

    async def opener() -> ObjectStore:
        return store

    vol = await DataVolume.create(await open_kv("memory://"), opener)
    try:
        bs = vol.dp.config.block_size
        ino = await vol.new_file(b"small")
        h = await vol.dp.open(ino, os.O_RDWR)
        data = os.urandom(bs // 2)
        await vol.dp.write(h, 0, data)
        await vol.dp.flush(h)
        assert len(vol.dp.mem) == 1
        assert await vol.dp.read(h, 0, len(data)) == data
        assert vol.dp.fetcher.store_loads == 0
        await vol.dp.release(h)
        big = await vol.new_file(b"big")
        h = await vol.dp.open(big, os.O_RDWR)
        await vol.dp.write(h, 0, os.urandom(bs))
        await vol.dp.flush(h)
        assert len(vol.dp.mem) == 1  # a full block is not kept
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_disk_cache_tells_its_page_budget_of_each_entry_written(tmp_path: Path) -> None:
    """ADR 0059: `written(path, size)` hears of every entry once its file is in place (whole, under its
    name), and of no entry that was not written (too big for the cache); the entry reads back whole, even
    after real advice dropped its pages."""
    from jfs.adapters.objects.file_pages import WrittenPages

    told: list[tuple[str, int]] = []
    pages = WrittenPages(2 << 20)

    def written(path: str, size: int) -> None:
        assert os.path.getsize(path) == size  # published, trailer included
        told.append((path, size))
        pages.written(path, size)

    cache = DiskCache(str(tmp_path), UUID, 8 << 20, written=written)
    await cache.ready()
    blocks = {block_key(4105 + i, 0, (1 << 20) + i): os.urandom((1 << 20) + i) for i in range(4)}
    for key, data in blocks.items():
        await cache.put(key, data)
    await cache.put(block_key(5000, 0, 9 << 20), b"x" * (9 << 20))  # larger than the cache: not written
    assert [size for _, size in told] == [entry_size(len(d)) for d in blocks.values()]
    assert all(p.startswith(str(tmp_path / UUID / "raw")) for p, _ in told)
    for key, data in blocks.items():
        assert await cache.get(key) == data
    await cache.close()


async def test_big_written_entries_go_around_the_page_cache_small_and_read_ones_through_it(tmp_path: Path) -> None:
    """ADR 0059: an entry of a big block the writer stored (``direct=True``) is written with O_DIRECT (its
    page budget hears nothing of it); a small one, and a big one filled for a read, through the page cache
    (told); all read back whole and have the exact entry size."""
    from jfs.adapters.direct_files import DirectWriter

    told: list[int] = []
    direct = DirectWriter()
    cache = DiskCache(str(tmp_path), UUID, 64 << 20, written=lambda path, size: told.append(size),
                      direct_write=direct.write)
    await cache.ready()
    big = os.urandom((4 << 20) - 100)  # not a multiple of the alignment, with its trailer neither
    small = os.urandom(1000)
    kb, ks, kr = block_key(7000, 0, len(big)), block_key(7001, 0, len(small)), block_key(7002, 0, len(big))
    await cache.put(kb, big, direct=True)
    await cache.put(ks, small, direct=True)
    await cache.put(kr, big)  # a read's fill: read again soon, so kept in the page cache
    if not direct.usable:
        pytest.skip("the file system refused O_DIRECT")
    assert told == [entry_size(len(small)), entry_size(len(big))]
    assert await cache.get(kr) == big
    assert (tmp_path / UUID / "raw" / kb).stat().st_size == entry_size(len(big))
    assert await cache.get(kb) == big and await cache.get(ks) == small
    assert await cache.get(kb, 4095, 9000) == big[4095:13095]
    await cache.close()


def _block_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*_*_*") if p.is_file()]


async def test_an_unlinked_files_objects_are_deleted_without_waiting_for_its_cache_files(tmp_path: Path) -> None:
    """The blocks of a deleted file leave the object store while its cached copies' files are still being
    unlinked (that took ~1 ms a 4 MiB block and held every DELETE back, ADR 0100); the cache forgets the
    entries at once, and the slice's pending record goes once both are done."""
    store = MemoryStore(f"cache-{uuid.uuid4().hex}")

    async def opener() -> ObjectStore:
        return store

    vol = await DataVolume.create(await open_kv("memory://"), opener, cache_dir=str(tmp_path),
                                  cache_full_writes=True, cache_small_writes=True)
    unlinking, go = threading.Event(), threading.Event()
    try:
        ino = await vol.write_new_file(b"doomed", os.urandom(300_000))  # 5 blocks of 64 KiB
        await vol.meta.close_file(ino)  # (the create's open: the unlink then deletes the file)
        disk = vol.dp.disk
        assert disk is not None
        await disk.drain()
        assert len(disk) == 5
        blocks = [k for k in store._objects if k.startswith(f"{vol.meta.settings.name}/chunks/")]
        assert len(blocks) == 5
        unlink_many = disk._unlink_many

        def slow_unlink_many(paths: list[str]) -> None:  # (in the cache's thread)
            unlinking.set()
            go.wait(10)
            unlink_many(paths)

        disk._unlink_many = slow_unlink_many  # type: ignore[method-assign]
        await vol.meta.unlink(1, b"doomed")
        assert await asyncio.to_thread(unlinking.wait, 5)
        for _ in range(100):
            if not any(k in store._objects for k in blocks):
                break
            await asyncio.sleep(0.01)
        assert not any(k in store._objects for k in blocks)  # gone while the cache files are not
        assert len(disk) == 0  # no reader can find the entries any more
        assert _block_files(tmp_path)
        go.set()
        await vol.meta.drain()
        await vol.dp.drain()
        assert not _block_files(tmp_path)
        pending = await vol.meta.kv.read(lambda tx: tx.scan(keys.SLICE_REF_PREFIX, keys.prefix_end(keys.SLICE_REF_PREFIX)))
        assert pending == []  # no slice left pending for gc
    finally:
        go.set()
        await vol.close()

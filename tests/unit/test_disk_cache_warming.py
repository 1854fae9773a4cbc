"""Disk-cache entries warmed in the page cache when a small read finds them not cached (ADR 0074): the
entry is asked once (again after `WARM_GRACE`), the read is answered as before, later small reads are
answered on the loop with the entry's exact bytes, checked by its CRCs; the index and its byte count never
change; no warm function, no warming."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.file_pages import willneed
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.data import cache as cache_mod
from jfs.app.data.cache import WARMED_MAX, DiskCache, entry_size
from jfs.domain.chunks import block_key
from jfs.ports.objects import ObjectStore
from jfs.testing.data_harness import DataVolume

UUID = "0b7e4c4e-1111-2222-3333-444455556688"
BLEN = 1 << 20


def _uncache(path: Path) -> None:
    """Drop the file's pages (written back first)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _pages_can_be_dropped(where: Path) -> bool:
    """Whether `where`'s file system drops pages on advice (not tmpfs); probed on a file of its own (a probe
    read that misses starts the kernel's read-ahead of the file it reads)."""
    probe = where / "probe"
    probe.write_bytes(os.urandom(1 << 20))
    _uncache(probe)
    fd = os.open(probe, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(4096)], 512 << 10, os.RWF_NOWAIT)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
        probe.unlink()
    return False


async def _eventually(check: object, timeout: float = 10.0) -> None:
    """Wait until `check()` is true (the warm function runs on the cache's pool)."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)


async def _answered(cache: DiskCache, key: str, off: int, n: int, timeout: float = 10.0) -> memoryview:
    deadline = time.monotonic() + timeout
    while (got := cache.get_now(key, off, n)) is None:
        assert time.monotonic() < deadline, "the warmed entry never reached the page cache"
        await asyncio.sleep(0.01)
    return got


async def _cache_with(
    tmp_path: Path, warm: object, blocks: int = 1, blen: int = BLEN
) -> tuple[DiskCache, dict[str, bytes]]:
    if not _pages_can_be_dropped(tmp_path):
        pytest.skip("the file system keeps every page cached")
    # No free-space floor: the machine's disk is shared (its fullness is not what is tested).
    cache = DiskCache(str(tmp_path), UUID, 64 << 20, warm=warm, min_free_ratio=0.0)  # type: ignore[arg-type]
    await cache.ready()
    entries = {block_key(9000 + i, 0, blen): os.urandom(blen) for i in range(blocks)}
    for key, data in entries.items():
        await cache.put(key, data)
        _uncache(tmp_path / UUID / "raw" / key)
    return cache, entries


async def test_a_small_read_of_an_uncached_entry_warms_it_and_later_reads_are_answered_at_once(
    tmp_path: Path,
) -> None:
    asked: list[str] = []

    def warm(path: str) -> None:
        asked.append(path)
        willneed(path)

    cache, entries = await _cache_with(tmp_path, warm)
    (key, data), = entries.items()
    used, count = cache.used, len(cache)
    assert cache.get_now(key, 5000, 4096) is None  # on disk only: not an answer on the loop ...
    assert cache.warms == 1
    assert await cache.get(key, 5000, 4096) == data[5000:9096]  # ... the pool's read answers
    assert cache.warms == 1  # asked once within the grace
    got = await _answered(cache, key, 700_001, 4096)  # the rest of the entry arrives without reads of it
    assert bytes(got) == data[700_001:704_097]
    for off in (0, 8191, BLEN - 4096, 123_457):
        assert bytes(cache.get_now(key, off, 4096) or b"?") == data[off : off + 4096]
    assert asked == [str(tmp_path / UUID / "raw" / key)]
    assert (cache.used, len(cache)) == (used, count) == (entry_size(BLEN), 1)  # accounting untouched
    await cache.close()


async def test_an_entry_is_warmed_again_only_after_the_grace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    # Records only, the entry stays uncached (but for the kernel's own read-ahead around each missed
    # read: the reads are 512 KiB apart).
    cache, entries = await _cache_with(tmp_path, asked.append, blen=4 << 20)
    (key, _), = entries.items()
    for i in range(3):
        assert cache.get_now(key, i * (1 << 20) + 4096, 4096) is None
    assert cache.warms == 1
    monkeypatch.setattr(cache_mod, "WARM_GRACE", 0.0)
    await asyncio.sleep(0.002)
    assert cache.get_now(key, 7 * (512 << 10), 4096) is None
    assert cache.warms == 2  # its pages are still not there: asked again
    await _eventually(lambda: len(asked) == 2)
    await cache.close()


async def test_an_entry_put_again_is_warmed_again_and_the_memory_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    cache, entries = await _cache_with(tmp_path, asked.append, blocks=3)
    keys = list(entries)
    assert cache.get_now(keys[0], 4096, 10) is None and cache.warms == 1
    await cache.drop([keys[0]])  # leaves the index: its warm is forgotten with it
    await cache.put(keys[0], entries[keys[0]])
    _uncache(tmp_path / UUID / "raw" / keys[0])
    assert cache.get_now(keys[0], 4096, 10) is None and cache.warms == 2
    monkeypatch.setattr(cache_mod, "WARMED_MAX", 1)
    assert WARMED_MAX > 1
    assert cache.get_now(keys[1], 4096, 10) is None and cache.get_now(keys[2], 4096, 10) is None
    assert cache.warms == 4 and len(cache._warmed) == 1  # noqa: SLF001 - the bound is the point
    await _eventually(lambda: len(asked) == 4)
    await cache.close()


async def test_no_warm_function_means_no_warming(tmp_path: Path) -> None:
    cache, entries = await _cache_with(tmp_path, None)
    (key, data), = entries.items()
    assert cache.get_now(key, 4096, 4096) is None
    assert await cache.get(key, 4096, 4096) == data[4096:8192]
    assert cache.warms == 0
    await cache.close()


async def test_a_warmed_entry_with_a_damaged_byte_is_never_served(tmp_path: Path) -> None:
    cache, entries = await _cache_with(tmp_path, willneed)
    (key, data), = entries.items()
    path = tmp_path / UUID / "raw" / key
    fd = os.open(path, os.O_WRONLY)  # a flipped byte in segment 1, behind the cache's back
    os.pwrite(fd, bytes([data[8192 + 17] ^ 0xFF]), 8192 + 17)
    os.close(fd)
    _uncache(path)
    assert cache.get_now(key, 8192, 4096) is None
    await _answered(cache, key, 0, 4096)  # warmed: segment 0 is fine and is served
    assert cache.get_now(key, 8192, 4096) is None  # the damaged segment never is
    assert await cache.get(key, 8192, 4096) is None  # `get` reports it and deletes the entry
    assert cache.corrupt == 1 and key not in cache and not path.exists()
    await cache.close()


async def test_the_data_path_warms_a_written_block_for_the_read_loop(tmp_path: Path) -> None:
    """A block the writer cached around the page cache (here: its pages dropped) is warmed by the first small
    read that misses it, and `read_now` then answers the reads of the rest of the block."""
    store = MemoryStore(f"warm-dc-{uuid.uuid4().hex}")

    async def opener() -> ObjectStore:
        return store

    vol = await DataVolume.create(await open_kv("memory://"), opener, block_kib=1024, cache_dir=str(tmp_path),
                                  cache_warm=willneed, compact_on_read=False, attr_ttl=3600.0,
                                  cache_full_writes=True, cache_free_ratio=0.0)
    try:
        data = os.urandom(2 * BLEN)
        ino = await vol.write_new_file(b"f", data)
        await vol.dp.disk.drain()  # type: ignore[union-attr]
        raw = tmp_path / vol.config.uuid / "raw"
        files = [p for p in raw.rglob("*") if p.is_file()]
        assert len(files) == 2
        if not _pages_can_be_dropped(tmp_path):
            pytest.skip("the file system keeps every page cached")
        for p in files:
            _uncache(p)
        vol.dp.mem.clear()
        h = await vol.dp.open(ino)
        assert await vol.dp.read(h, 4096, 4096) == data[4096:8192]  # the layout; warms block 0
        deadline = time.monotonic() + 10
        while (now := vol.dp.read_now(h, 500_000, 4096)) is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert bytes(now) == data[500_000:504_096]  # type: ignore[arg-type]
        assert vol.dp.disk.warms == 1  # type: ignore[union-attr]
        assert vol.dp.read_now(h, BLEN + 5000, 4096) is None  # block 1: not cached yet; now warmed too
        assert vol.dp.disk.warms == 2  # type: ignore[union-attr]
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_every_client_opened_with_a_disk_cache_warms_its_entries(tmp_path: Path) -> None:
    """The composition root gives the disk cache of every face (mount, SDK, gateway) the page-cache warming."""
    from jfs.adapters.kv.registry import open_kv as open_engine
    from jfs.app.meta.engine import format_meta
    from jfs.bootstrap import ClientOptions, open_client
    from jfs.domain.settings import Settings

    kv = await open_engine(f"sqlite3://{tmp_path}/m.db")
    await format_meta(kv, Settings(name="warm", trash_days=0, bucket=str(tmp_path / "bucket")))
    await kv.close()
    client = await open_client(f"sqlite3://{tmp_path}/m.db",
                               ClientOptions(cache_dir=str(tmp_path / "cache"), background_jobs=False))
    try:
        disk = client.vfs.data.disk
        assert disk is not None and disk._warm is willneed  # noqa: SLF001 - the wiring is the point
    finally:
        await client.close()

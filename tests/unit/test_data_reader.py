"""The read path: holes, EOF, boundaries, fetching only what is needed, single flight, read-ahead,
invalidation, vanished and corrupt blocks (memory KV, memory store)."""

from __future__ import annotations

import asyncio
import errno
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.data.blocks import BlockStore
from jfs.app.data.config import DataConfig
from jfs.app.data.files import Handle
from jfs.app.data.store_wrapper import StoreWrapper
from jfs.app.meta.chunks import FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE
from jfs.domain import keys
from jfs.domain.chunks import CHUNK_SIZE
from jfs.domain.errors import FSError
from jfs.ports.objects import ObjectStore
from jfs.testing.data_harness import DataVolume

BS = 64 << 10


class CountingStore(StoreWrapper):
    """A named memory store counting gets per key, with an optional delay per get."""

    def __init__(self, bucket: str) -> None:
        super().__init__(MemoryStore(bucket))
        self.url = self.inner.url
        self.gets: Counter[str] = Counter()
        self.ranged = 0
        self.delay = 0.0

    async def create_bucket(self) -> None:
        pass

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        """Counts as ranged a get of part of an object (the block store asks for a whole uncompressed
        block as the range of its length: that is not a part)."""
        self.gets[key] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        data = await self.inner.get(key, off, limit)
        if off or (limit >= 0 and len(data) < (await self.inner.head(key)).size):
            self.ranged += 1
        return data

    async def close(self) -> None:
        pass


async def _volume(
    store: ObjectStore, kv_url: str = "memory://", compression: str = "none", **overrides: object
) -> DataVolume:
    async def opener() -> ObjectStore:
        return store

    defaults: dict[str, Any] = {"retry_delay": 0.001, "io_retries": 3, "compact_on_read": False}
    defaults.update(overrides)
    return await DataVolume.create(await open_kv(kv_url), opener, compression=compression, **defaults)


@pytest.fixture
def store() -> CountingStore:
    return CountingStore(f"reader-{uuid.uuid4().hex}")


@pytest.fixture(params=["none", "lz4", "zstd"])
async def vol(request: pytest.FixtureRequest, store: CountingStore) -> AsyncIterator[DataVolume]:
    v = await _volume(store, compression=request.param)
    yield v
    await v.close()


async def _compact_in_another_client(url: str, store: ObjectStore, config: DataConfig, ino: int) -> int:
    """Compact file `ino`'s chunk 0 from a second client of the engine at `url` (its own session and data
    path on the same store); returns what `DataPath.compact` returns."""
    from jfs.app.data.files import DataPath
    from jfs.testing.engines import session_meta_at

    async with session_meta_at(url) as meta_b:
        b = await DataPath(meta_b, store, config).start()
        try:
            return await b.compact(ino)
        finally:
            await b.close()


async def _file(vol: DataVolume, name: bytes, data: bytes, off: int = 0) -> int:
    return await vol.write_new_file(name, data, off)


async def test_holes_read_as_zeros_and_reads_stop_at_eof(vol: DataVolume) -> None:
    ino = await _file(vol, b"sparse", b"end", off=3 * BS + 5)
    h = await vol.dp.open(ino)
    assert await vol.dp.read(h, 0, 10) == b"\0" * 10
    assert await vol.dp.read(h, 3 * BS, 100) == b"\0" * 5 + b"end"
    assert await vol.dp.read(h, 3 * BS + 8, 100) == b""
    assert await vol.dp.read(h, 10 * BS, 100) == b""
    await vol.dp.truncate(ino, 5 * BS)
    assert await vol.dp.read(h, 5 * BS - 3, 100) == b"\0" * 3
    await vol.dp.release(h)


async def test_reads_across_block_and_chunk_boundaries(vol: DataVolume) -> None:
    data = os.urandom(3 * BS)
    start = CHUNK_SIZE - BS - 123
    ino = await _file(vol, b"edge", data, off=start)
    h = await vol.dp.open(ino)
    for off, n in [(start, len(data)), (CHUNK_SIZE - 1, 2), (CHUNK_SIZE - 10, BS + 20), (start + BS - 1, 2)]:
        assert await vol.dp.read(h, off, n) == data[off - start : off - start + n], (off, n)
    assert len(await vol.meta.read_chunk(ino, 0)) == 1
    assert len(await vol.meta.read_chunk(ino, 1)) == 1
    await vol.dp.release(h)


async def test_a_small_read_fetches_one_block_or_one_range(vol: DataVolume, store: CountingStore) -> None:
    ino = await _file(vol, b"big", os.urandom(20 * BS))
    h = await vol.dp.open(ino)
    store.gets.clear()
    await vol.dp.read(h, 7 * BS + 1000, 4096)
    assert sum(store.gets.values()) == 1
    assert [k.split("_")[-2] for k in store.gets] == ["7"]
    if vol.config.compression == "none":
        assert store.ranged == 1  # a small read inside an uncompressed block asks for just its range
    await vol.dp.release(h)


async def test_a_ranged_read_fills_the_disk_cache_with_the_whole_block(
    store: CountingStore, tmp_path: Path
) -> None:
    """After a small ranged GET the whole block is fetched into the disk cache in the background, so the
    next small reads of that block cost no GET at all (JuiceFS's behaviour for random reads)."""
    vol = await _volume(store, cache_dir=str(tmp_path), cache_small_writes=False, cache_full_writes=False,
                        cache_loads=True)
    try:
        data = os.urandom(20 * BS)
        ino = await _file(vol, b"random", data)
        h = await vol.dp.open(ino)
        store.gets.clear()
        assert await vol.dp.read(h, 7 * BS + 1000, 4096) == data[7 * BS + 1000 : 7 * BS + 5096]
        await vol.dp.fetcher.settle()
        assert store.ranged == 1 and sum(store.gets.values()) == 2  # the range, then the whole block
        store.gets.clear()
        for off in (7 * BS + 9000, 7 * BS + 30000, 7 * BS + 50000):
            assert await vol.dp.read(h, off, 4096) == data[off : off + 4096]
        assert sum(store.gets.values()) == 0
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_concurrent_reads_of_a_block_share_one_fetch(vol: DataVolume, store: CountingStore) -> None:
    ino = await _file(vol, b"hot", os.urandom(4 * BS))
    h = await vol.dp.open(ino)
    store.gets.clear()
    store.delay = 0.02
    results = await asyncio.gather(*(vol.dp.read(h, 2 * BS + i * 1000, 1000) for i in range(10)))
    assert len(set(results)) == 10
    # Requests at the block start load the whole block; the ones that arrive meanwhile wait for it.
    assert sum(n for k, n in store.gets.items() if "_2_" in k) <= 1 + (
        9 if vol.config.compression == "none" else 0
    )
    # The ten reads above were sequential on arrival and loaded block 3 ahead (ADR 0085): start it cold.
    await vol.dp.fetcher.settle()
    vol.dp.fetcher.mem.clear()
    store.gets.clear()
    await asyncio.gather(*(vol.dp.read(h, 3 * BS, BS) for _ in range(5)))
    assert sum(store.gets.values()) == 1
    await vol.dp.release(h)


async def test_sequential_reads_load_blocks_ahead(vol: DataVolume, store: CountingStore) -> None:
    data = os.urandom(16 * BS)
    ino = await _file(vol, b"stream", data)
    h = await vol.dp.open(ino)
    store.gets.clear()
    out = bytearray()
    for off in range(0, 4 * BS, 16 << 10):
        out += await vol.dp.read(h, off, 16 << 10)
    await asyncio.sleep(0.05)
    assert out == data[: 4 * BS]
    fetched = {int(k.split("_")[-2]) for k in store.gets}
    assert max(fetched) > 4  # blocks beyond the last one read were loaded ahead
    before = sum(store.gets.values())
    for off in range(4 * BS, 6 * BS, 16 << 10):
        out += await vol.dp.read(h, off, 16 << 10)
    assert sum(store.gets.values()) - before <= 2  # served mostly from the memory cache
    assert out == data[: 6 * BS]
    await vol.dp.release(h)


async def test_other_clients_changes_are_seen_after_the_attr_ttl(store: CountingStore) -> None:
    name = f"memory://shared-{uuid.uuid4().hex}"
    a = await _volume(store, name, attr_ttl=0.0)
    kv_b = await open_kv(name)
    from jfs.app.data.config import DataConfig
    from jfs.app.data.files import DataPath
    from jfs.app.meta.engine import Meta

    meta_b = await Meta.load(kv_b)
    await meta_b.start_session(background=False)
    b = await DataPath(meta_b, store, DataConfig.from_settings(meta_b.settings, retry_delay=0.001)).start()
    try:
        ino = await _file(a, b"shared", b"1" * 1000)
        ha = await a.dp.open(ino)
        assert await a.dp.read(ha, 0, 2000) == b"1" * 1000
        hb = await b.open(ino, os.O_RDWR)
        await b.write(hb, 500, b"2" * 1000)
        await b.release(hb)
        assert await a.dp.read(ha, 0, 2000) == b"1" * 500 + b"2" * 1000
        await a.dp.release(ha)
    finally:
        await b.close()
        await meta_b.close()
        await a.close()


async def test_a_read_after_compaction_elsewhere_re_resolves(store: CountingStore) -> None:
    name = f"memory://compact-{uuid.uuid4().hex}"
    a = await _volume(store, name, attr_ttl=3600.0)
    try:
        ino = await a.new_file(b"frag")
        h = await a.dp.open(ino, os.O_RDWR)
        expect = bytearray()
        for i in range(8):
            await a.dp.write(h, len(expect), bytes([i]) * 3000)
            expect += bytes([i]) * 3000
            await a.dp.flush(h)
        assert await a.dp.read(h, 0, len(expect)) == expect  # layout now cached
        # Another client compacts the chunk: the old slices' objects disappear under our cached layout.
        assert await _compact_in_another_client(name, store, a.config, ino) == 1
        a.dp.mem.clear()
        assert await a.dp.read(h, 0, len(expect)) == expect
        await a.dp.release(h)
    finally:
        await a.close()


async def test_punched_holes_and_local_truncate_invalidate_cached_layouts(vol: DataVolume) -> None:
    ino = await _file(vol, b"punch", b"d" * (3 * BS))
    h = await vol.dp.open(ino, os.O_RDWR)
    assert await vol.dp.read(h, 0, 3 * BS) == b"d" * (3 * BS)
    await vol.dp.fallocate(ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, BS, 100)
    assert await vol.dp.read(h, BS - 1, 102) == b"d" + b"\0" * 100 + b"d"
    await vol.dp.write(h, 10, b"w")  # pending, then truncated below it: flushed first
    await vol.dp.truncate(ino, 5)
    assert await vol.dp.read(h, 0, 100) == b"ddddd"
    await vol.dp.truncate(ino, 20)
    assert await vol.dp.read(h, 0, 100) == b"ddddd" + b"\0" * 15
    await vol.dp.release(h)


async def test_a_corrupt_object_is_an_error_never_wrong_bytes(vol: DataVolume, store: CountingStore) -> None:
    ino = await _file(vol, b"corrupt", os.urandom(2 * BS))
    key = next(k for k in store.inner._objects.keys() if k.endswith(f"_1_{BS}"))
    good = await store.inner.get(key)
    await store.inner.put(key, good[: len(good) // 2])  # truncated object
    h = await vol.dp.open(ino)
    with pytest.raises(OSError) as info:
        await vol.dp.read(h, BS, BS)
    assert info.value.errno == errno.EIO
    assert len(await vol.dp.read(h, 0, BS)) == BS  # the other block is fine
    await vol.dp.release(h)


async def test_a_missing_object_is_eio(vol: DataVolume, store: CountingStore) -> None:
    ino = await _file(vol, b"missing", os.urandom(BS))
    for key in list(store.inner._objects.keys()):
        await store.inner.delete(key)
    h = await vol.dp.open(ino)
    with pytest.raises(OSError) as info:
        await vol.dp.read(h, 0, 10)
    assert info.value.errno == errno.EIO
    await vol.dp.release(h)


# -- reads racing the deletion of compacted slices (issue 11, item 14; ADR 0015) ------------------------


class PausingFetcher:
    """Stands in for the reader's `BlockFetcher`: every `read` waits for `go` — the reader is then paused
    between resolving the chunk's layout and fetching its blocks. Other users of the real fetcher (the
    compactor) are not paused."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def read(self, *args: Any, **kw: Any) -> Any:
        self.entered.set()
        await self.go.wait()
        return await self.inner.read(*args, **kw)


async def _fragmented(vol: DataVolume, name: bytes, n: int = 8) -> tuple[int, Handle, bytes]:
    """A file of `n` slices (one per flush) in one chunk, open read-write."""
    ino = await vol.new_file(name)
    h = await vol.dp.open(ino, os.O_RDWR)
    expect = bytearray()
    for i in range(n):
        await vol.dp.write(h, len(expect), bytes([65 + i]) * 3000)
        expect += bytes([65 + i]) * 3000
        await vol.dp.flush(h)
    assert len(await vol.meta.read_chunk(ino, 0)) == n
    return ino, h, bytes(expect)


def _slice_objects(store: CountingStore, slice_ids: set[int]) -> list[str]:
    return [k for k in store.inner._objects if int(k.rsplit("/", 1)[-1].split("_")[0]) in slice_ids]


async def test_a_read_paused_across_a_local_compaction_reads_its_blocks_without_retry(
    store: CountingStore,
) -> None:
    """Forced race: the reader has resolved the 8-slice layout and is paused before fetching; meanwhile
    this client compacts the chunk (swap + release of the 8 slices). The compaction does not wait for the
    read, the old blocks are deleted only once the read is done, and the read returns exactly the file's
    bytes from the store (the memory cache is emptied) without a retry."""
    vol = await _volume(store)
    try:
        ino, h, expect = await _fragmented(vol, b"race")
        records = await vol.meta.read_chunk(ino, 0)
        old = {r.id for r in records}
        pausing = PausingFetcher(vol.dp.fetcher)
        vol.dp.reader.fetcher = pausing  # type: ignore[assignment]
        vol.dp.mem.clear()
        read = asyncio.create_task(vol.dp.read(h, 0, len(expect)))
        await asyncio.wait_for(pausing.entered.wait(), 5)

        assert await asyncio.wait_for(vol.dp.compact(ino), 5) == 1
        assert {r.id for r in await vol.meta.read_chunk(ino, 0)}.isdisjoint(old)
        assert len(_slice_objects(store, old)) == len(old)  # kept: a read may still need them
        assert vol.dp.deferred_deletions == len(old)
        vol.dp.mem.clear()  # the paused read must get its bytes from the store, not from a cache

        pausing.go.set()
        assert await asyncio.wait_for(read, 5) == expect
        assert vol.dp.reader.vanished == 0
        await vol.dp.drain()
        assert _slice_objects(store, old) == []  # deleted once the read was done

        async def refs(tx: Any) -> Any:
            return await tx.get_many([keys.slice_ref(r.id, r.size) for r in records])

        assert await vol.meta.kv.read(refs) == [None] * len(records)  # no record left pending for gc
        vol.dp.reader.fetcher = vol.dp.fetcher
        assert await vol.dp.read(h, 0, len(expect)) == expect  # a later read: the compacted slice
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_a_read_not_in_flight_lets_a_compaction_delete_at_once(store: CountingStore) -> None:
    vol = await _volume(store)
    try:
        ino, h, expect = await _fragmented(vol, b"quiet")
        old = {r.id for r in await vol.meta.read_chunk(ino, 0)}
        assert await vol.dp.read(h, 0, len(expect)) == expect  # layout cached, blocks in memory
        assert await vol.dp.compact(ino) == 1
        assert vol.dp.deferred_deletions == 0
        assert _slice_objects(store, old) == []
        assert await vol.dp.read(h, 0, len(expect)) == expect
        assert vol.dp.reader.vanished == 0
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_a_read_paused_across_another_clients_compaction_retries_and_reads_the_same_bytes(
    store: CountingStore,
) -> None:
    """Forced race with ANOTHER client compacting (its deletion cannot know our reads): the paused read
    finds a block gone, re-resolves the chunk and returns exactly the file's bytes — never a hole, never
    a mix — after one retry."""
    name = f"memory://vanish-{uuid.uuid4().hex}"
    a = await _volume(store, name, attr_ttl=3600.0)
    try:
        ino, h, expect = await _fragmented(a, b"shared")
        pausing = PausingFetcher(a.dp.fetcher)
        a.dp.reader.fetcher = pausing  # type: ignore[assignment]
        a.dp.mem.clear()
        read = asyncio.create_task(a.dp.read(h, 0, len(expect)))
        await asyncio.wait_for(pausing.entered.wait(), 5)

        assert await _compact_in_another_client(name, store, a.config, ino) == 1
        a.dp.mem.clear()

        pausing.go.set()
        assert await asyncio.wait_for(read, 5) == expect
        assert a.dp.reader.vanished == 1
        await a.dp.release(h)
    finally:
        await a.close()


async def test_read_grace_waits_only_for_reads_started_before_the_cut() -> None:
    from jfs.app.data.grace import ReadGrace

    g = ReadGrace()
    early = g.enter()
    cut = g.cut()
    late = g.enter()  # started after the cut: not waited for
    assert g.busy(cut)
    waiter = asyncio.create_task(g.wait(cut))
    await asyncio.sleep(0)
    assert not waiter.done()
    g.leave(early)
    await asyncio.wait_for(waiter, 1)  # returns although `late` is still in flight
    assert not g.busy(cut) and g.in_flight == 1
    cut2 = g.cut()
    waiter2 = asyncio.create_task(g.wait(cut2))
    await asyncio.sleep(0)
    assert not waiter2.done()
    g.leave(late)
    await asyncio.wait_for(waiter2, 1)
    await g.wait(g.cut())  # nothing in flight: at once


async def test_reads_compact_a_fragmented_chunk_at_most_once_per_recompact_delay(store: CountingStore) -> None:
    """A read seeing ≥ 5 records schedules a background compaction; once done, reads of the chunk (which
    random writes keep fragmenting) schedule none for `recompact_delay` seconds, then again."""
    vol = await _volume(store, compact_on_read=True, recompact_delay=0.3)
    try:
        ino, h, expect = await _fragmented(vol, b"paced", n=6)
        assert await vol.dp.read(h, 0, len(expect)) == expect
        await vol.dp.drain()
        assert vol.dp.compactor.compacted == 1
        assert len(await vol.meta.read_chunk(ino, 0)) == 1
        for i in range(6):  # fragment it again, then read: paused, no compaction
            await vol.dp.write(h, i * 1000, bytes([97 + i]) * 10)
            await vol.dp.flush(h)
        data = await vol.dp.read(h, 0, len(expect))
        await vol.dp.drain()
        assert vol.dp.compactor.compacted == 1
        await asyncio.sleep(0.35)
        assert await vol.dp.read(h, 0, len(expect)) == data
        await vol.dp.drain()
        assert vol.dp.compactor.compacted == 2
        assert len(await vol.meta.read_chunk(ino, 0)) == 1
        await vol.dp.release(h)
    finally:
        await vol.close()


@pytest.mark.parametrize("damage", [b"x", -1])
async def test_an_uncompressed_block_object_of_the_wrong_size_is_eio(damage: bytes | int) -> None:
    """The whole block is asked for as a range (ADR 0023) of one byte more than its length, so an object
    longer than its block is caught as surely as a shorter one."""
    inner = MemoryStore("mem://b")
    blocks = BlockStore(inner, DataConfig(volume="vol", uuid="u", block_size=1 << 16, io_retries=2,
                                          retry_delay=0.001))
    try:
        data = os.urandom(5000)
        await blocks.put(9, 0, data)
        assert await blocks.get(9, 0, len(data)) == data
        key = blocks.key(9, 0, len(data))
        await inner.put(key, data + damage if isinstance(damage, bytes) else data[:damage])
        with pytest.raises(FSError) as e:
            await blocks.get(9, 0, len(data))
        assert e.value.errno == errno.EIO and key in str(e.value)
    finally:
        await blocks.close()


async def test_concurrent_streams_do_not_evict_each_others_read_ahead(store: CountingStore) -> None:
    """Four sequential readers whose read-ahead windows together fill the memory cache: the blocks each
    has finished leave the cache first, so no block is loaded twice."""
    v = await _volume(store, mem_cache_size=24 * BS, readahead_blocks=8)
    try:
        files = [os.urandom(16 * BS) for _ in range(4)]
        inodes = [await _file(v, f"s{k}".encode(), data) for k, data in enumerate(files)]
        v.dp.fetcher.mem.clear()
        store.gets.clear()

        async def stream(ino: int) -> bytes:
            h = await v.dp.open(ino)
            out = bytearray()
            while chunk := await v.dp.read(h, len(out), BS // 2):
                out += chunk
                await asyncio.sleep(0)
            await v.dp.release(h)
            return bytes(out)

        assert await asyncio.gather(*(stream(ino) for ino in inodes)) == files
        assert sum(store.gets.values()) == 4 * 16 and set(store.gets.values()) == {1}
    finally:
        await v.close()


class FirstBlockSlowStore(CountingStore):
    """`CountingStore` whose gets of a slice's block 0 wait `first_delay` seconds (a block read from a busy
    device)."""

    def __init__(self, bucket: str) -> None:
        super().__init__(bucket)
        self.first_delay = 0.0

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        if self.first_delay and key.rsplit("/", 1)[-1].split("_")[1] == "0":
            await asyncio.sleep(self.first_delay)
        return await super().get(key, off, limit)


async def test_read_ahead_is_asked_for_when_a_read_arrives_not_when_its_data_is_in() -> None:
    """The kernel keeps several READs of one handle in flight; they may finish out of order (ADR 0085).
    A sequential read asks for the blocks after it on arrival, while it still waits for its own block;
    a later READ that finishes first does not make the slow one look non-sequential and reset the window."""
    store = FirstBlockSlowStore(f"reader-{uuid.uuid4().hex}")
    v = await _volume(store, readahead_blocks=8)
    try:
        data = os.urandom(8 * BS)
        ino = await _file(v, b"seq", data)
        v.dp.fetcher.mem.clear()
        store.gets.clear()
        store.first_delay = 0.3
        h = await v.dp.open(ino)
        first = asyncio.ensure_future(v.dp.read(h, 0, BS))  # block 0: the slow get
        second = asyncio.ensure_future(v.dp.read(h, BS, BS))  # block 1: asked for by the first's read-ahead
        done, _ = await asyncio.wait({first, second}, timeout=0.2)
        assert done == {second}  # out of order: the second read is answered while the first waits
        assert await second == data[BS : 2 * BS]
        # Both arrivals were sequential: window 1 then 2, blocks 1..3 requested while block 0 was loading.
        assert h.readahead.window == 2
        assert len(store.gets) == 3  # blocks 1..3 fetched; block 0's get is still waiting (counted after)
        assert await first == data[:BS]
        assert h.readahead.window == 2 and h.readahead.next_off == 2 * BS
        assert await v.dp.read(h, 2 * BS, BS) == data[2 * BS : 3 * BS]
        assert h.readahead.window == 4
        await v.dp.fetcher.settle()
        assert set(store.gets.values()) == {1}  # every block loaded once
        await v.dp.release(h)
    finally:
        await v.close()

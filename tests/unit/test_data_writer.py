"""The write path: slices, blocks, commit order, failures, back-pressure (memory KV, memory store)."""

from __future__ import annotations

import asyncio
import builtins
import errno
import os
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.faulty import FaultyStore
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.data.cache import MemoryCache
from jfs.app.data.config import DataConfig
from jfs.app.data.pages import ArenaPool, PageList, as_view
from jfs.app.data.store_wrapper import StoreWrapper
from jfs.app.data.writer import WriteBudget
from jfs.domain.chunks import CHUNK_SIZE
from jfs.domain.errors import FSError
from jfs.domain.records import SliceRecord
from jfs.domain.settings import Settings
from jfs.ports.objects import ObjectStore, ObjectStoreError
from jfs.testing.data_harness import DataVolume

BS = 64 << 10


class SpyStore(StoreWrapper):
    """A memory store that counts calls and can hold back or fail puts of chosen keys."""

    def __init__(self) -> None:
        super().__init__(MemoryStore(f"spy-{uuid.uuid4().hex}"))
        self.url = self.inner.url
        self.calls: Counter[str] = Counter()
        self.gates: dict[str, asyncio.Event] = {}
        self.fail_puts: set[str] = set()
        self.put_order: list[str] = []

    def gate(self, suffix: str) -> asyncio.Event:
        ev = asyncio.Event()
        self.gates[suffix] = ev
        return ev

    async def create_bucket(self) -> None:
        pass

    async def put(self, key: str, data: bytes | memoryview) -> None:
        self.calls["put"] += 1
        for suffix, ev in self.gates.items():
            if key.endswith(suffix):
                await ev.wait()
        if any(key.endswith(s) for s in self.fail_puts):
            raise ObjectStoreError(f"refused {key}")
        await self.inner.put(key, data)
        self.put_order.append(key)

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        self.calls["get"] += 1
        return await self.inner.get(key, off, limit)

    async def delete(self, key: str) -> None:
        self.calls["delete"] += 1
        await self.inner.delete(key)

    async def close(self) -> None:
        pass

    def keys(self) -> builtins.list[str]:
        return [str(k) for k in self.inner._objects.keys()]


async def _volume(store: ObjectStore, **overrides: object) -> DataVolume:
    async def opener() -> ObjectStore:
        return store

    defaults: dict[str, Any] = {
        "retry_delay": 0.001,
        "io_retries": 3,
        "idle_flush": 30.0,
        "max_slice_age": 60.0,
    }
    defaults.update(overrides)
    return await DataVolume.create(await open_kv("memory://"), opener, **defaults)


@pytest.fixture
def spy() -> SpyStore:
    return SpyStore()


@pytest.fixture
async def vol(spy: SpyStore) -> AsyncIterator[DataVolume]:
    v = await _volume(spy)
    yield v
    await v.close()


# -------------------------------------------------------------------------------------------- pages


def test_page_list_appends_without_copying_and_overwrites_by_recutting() -> None:
    pages = PageList()
    a, b = b"aaaa", b"bbbb"
    pages.write(0, memoryview(a))
    pages.write(4, memoryview(b))
    before = pages.views(2, 4)
    pages.write(3, memoryview(b"XY"))
    assert b"".join(pages.views(0, 8)) == b"aaaXYbbb"
    assert b"".join(before) == b"aabb"  # views handed out earlier never change
    pages.write(7, memoryview(b"123"))
    assert pages.size == 10
    assert pages.join() == b"aaaXYbb123"
    with pytest.raises(ValueError):
        pages.write(12, memoryview(b"gap"))


def test_page_list_single_hands_out_a_whole_buffer_without_copying() -> None:
    owned = bytearray(os.urandom(64))
    pages = PageList()
    pages.write(0, as_view(owned, owned=True))
    whole = pages.single()
    assert whole is not None and whole.obj is owned and bytes(whole) == bytes(owned)
    pages.write(64, memoryview(b"more"))
    assert pages.single() is None and pages.join() == bytes(owned) + b"more"


async def test_block_written_in_one_owned_piece_is_stored_as_is(vol: DataVolume, spy: SpyStore) -> None:
    ino = await vol.new_file(b"owned")
    h = await vol.dp.open(ino, os.O_WRONLY)
    data = bytearray(os.urandom(2 * BS + 10))
    for off in range(0, len(data), BS):
        await vol.dp.write(h, off, bytearray(data[off : off + BS]), owned=True)
    await vol.dp.flush(h)
    assert await vol.dp.read(h, 0, len(data)) == bytes(data)
    assert sorted(k.rsplit("_", 1)[1] for k in spy.keys()) == ["10", str(BS), str(BS)]
    await vol.dp.release(h)


def test_placed_bytes_only_move_the_end_and_other_arena_views_are_copied() -> None:
    pool = ArenaPool(16, keep=1)
    pages = PageList(pool.take())
    room = pages.offer()
    assert room is not None and len(room) == 16
    room[:6] = b"placed"
    pages.write(0, room[:6])
    before = pages.views(0, 6)
    room = pages.offer()
    assert room is not None and len(room) == 10
    room[:4] = b"more"
    pages.write(6, room[:4])
    whole = pages.single()
    assert whole is not None and whole.obj is pages.arena and bytes(whole) == b"placedmore"
    # A view of another list's arena (or of this one's, not at its end) is copied, never kept: into the
    # list's own arena when it appends there (ADR 0039).
    other = PageList(pool.take())
    other.write(0, memoryview(pages.arena)[2:6])
    copied = other.single()
    assert copied is not None and copied.obj is other.arena and bytes(copied) == b"aced"
    assert other.offer() is not None
    pages.write(2, memoryview(pages.arena)[6:8])  # an overwrite inside: re-cut around a copy
    assert b"".join(pages.views(0, 10)) == b"plmoedmore" and bytes(b"".join(before)) == b"placed"
    room = pages.offer()
    assert room is not None
    room[:2] = b"!!"
    pages.write(10, room[:2])
    assert pages.single() is None and b"".join(pages.views(0, 12)) == b"plmoedmore!!"
    pages.write(12, memoryview(b"tail"))  # the caller's bytes at the end: copied into the arena
    assert pages.offer() is None  # full
    assert pages.join() == b"plmoedmore!!tail"


def test_appends_are_copied_into_the_arena_and_the_callers_buffer_is_not_kept() -> None:
    pool = ArenaPool(16, keep=1)
    pages = PageList(pool.take())
    first = bytearray(b"abcdef")
    pages.write(0, memoryview(first))
    before = pages.views(0, 6)
    first.extend(b"!")  # no view of the caller's buffer is kept (a request buffer is free at once)
    pages.write(6, memoryview(b"ghij"))
    whole = pages.single()
    assert whole is not None and whole.obj is pages.arena and bytes(whole) == b"abcdefghij"
    assert bytes(b"".join(before)) == b"abcdef"
    pages.write(2, memoryview(b"XY"))  # an overwrite inside: re-cut, the arena's bytes stay as shown
    assert bytes(b"".join(before)) == b"abcdef" and b"".join(pages.views(0, 10)) == b"abXYefghij"
    pages.write(10, memoryview(b"123456"))
    assert pages.size == 16 and b"".join(pages.views(0, 16)) == b"abXYefghij123456"


def test_arena_pool_reuses_an_arena_only_once_no_view_of_it_is_left() -> None:
    pool = ArenaPool(16, keep=2)
    a = pool.take()
    view = memoryview(a)[:4]
    pool.give(a)
    assert pool.take() is not a
    view.release()
    assert pool.take() is a
    pool.give(a)
    pool.clear()
    assert pool.take() is not a


def test_arena_pool_keeps_more_than_keep_while_the_budget_has_room_for_them() -> None:
    room = [64]
    pool = ArenaPool(16, keep=1, room=lambda: room[0])
    arenas = [pool.take() for _ in range(6)]
    for a in arenas:
        pool.give(a)
    assert pool.idle == 4  # 4 x 16 bytes of room (the first within `keep` anyway)
    taken = [pool.take() for _ in range(4)]
    assert all(any(t is a for a in arenas) for t in taken)  # reused, not new
    room[0] = 0  # the budget is full: only `keep` stay idle
    for t in taken:
        pool.give(t)
    assert pool.idle == 1


def test_write_budget_room_counts_the_writers_and_the_shared_cache() -> None:
    cache: MemoryCache[tuple[int, int]] = MemoryCache(100)
    budget = WriteBudget(300, lambda: None, shared=cache)
    budget.add(120)
    cache.put((1, 0), b"x" * 50)
    assert budget.room() == 300 - 120 - 50
    budget.add(200)
    assert budget.room() < 0


async def test_writes_wait_while_the_upload_backlog_is_full(spy: SpyStore) -> None:
    """Blocks handed to the uploader and not stored count against `max_uploads + upload_backlog` blocks:
    beyond that a write waits (and no placed write is offered) until uploads finish (ADR 0053)."""
    vol = await _volume(spy, max_uploads=1, upload_backlog=1)
    try:
        ino = await vol.new_file(b"backlog")
        h = await vol.dp.open(ino, os.O_WRONLY)
        bs = vol.dp.blocks.block_size
        gate = spy.gate(f"_{bs}")  # every full block's upload waits
        data = os.urandom(3 * bs)
        await vol.dp.write(h, 0, data[: 2 * bs])  # two full blocks handed over: the backlog is full
        assert vol.dp.write_target(h, 2 * bs) is None
        third = asyncio.ensure_future(vol.dp.write(h, 2 * bs, data[2 * bs :]))
        await asyncio.sleep(0.05)
        assert not third.done()
        gate.set()
        await asyncio.wait_for(third, 5)
        await vol.dp.flush(h)
        assert await vol.dp.read(h, 0, len(data)) == data
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_write_target_offers_the_blocks_free_space_of_a_sequential_writer(
        vol: DataVolume, spy: SpyStore) -> None:
    ino = await vol.new_file(b"placed")
    h = await vol.dp.open(ino, os.O_RDWR)
    data = os.urandom(3 * BS + 100)
    assert vol.dp.write_target(h, 0) is None  # nothing written yet: no slice to append to
    step = BS // 4
    await vol.dp.write(h, 0, data[:step])
    assert vol.dp.write_target(h, 1) is None  # not at the end
    placed = 0
    off = step
    while off < len(data):
        n = min(step, len(data) - off)
        target = vol.dp.write_target(h, off)
        if target is not None:
            target[:n] = data[off : off + n]
            await vol.dp.write(h, off, target[:n], owned=True)
            placed += 1
        else:
            await vol.dp.write(h, off, data[off : off + n])
        off += n
    assert placed >= 8  # the first block's pieces came in the caller's buffers, later blocks are placed
    assert await vol.dp.read(h, 0, len(data)) == data  # read-your-writes from the arenas
    await vol.dp.flush(h)
    assert await vol.dp.read(h, 0, len(data)) == data
    assert vol.dp.write_target(h, len(data)) is None  # flushed: the slice is frozen
    await vol.dp.release(h)


async def test_big_writes_are_copied_into_block_arenas_after_the_first_block(
        vol: DataVolume, spy: SpyStore) -> None:
    """ADR 0039: pieces of a block other than the file's first are copied into the block's arena as they
    come (the caller's buffer is not kept, no join later); the first block keeps the caller's buffers."""
    ino = await vol.new_file(b"arena-copy")
    h = await vol.dp.open(ino, os.O_RDWR)
    data = os.urandom(3 * BS + 100)
    step = BS // 4
    kept = []
    for off in range(0, len(data), step):
        buf = bytearray(data[off : off + step])
        await vol.dp.write(h, off, buf, owned=True)
        try:
            buf.append(0)  # BufferError while the data path keeps a view of it
            kept.append(False)
        except BufferError:
            kept.append(True)
    # The last piece (100 bytes) is too short to take an arena for its block: kept as it is.
    assert kept[:4] == [True] * 4 and not any(kept[4:-1]) and kept[-1]
    assert await vol.dp.read(h, 0, len(data)) == data
    await vol.dp.flush(h)
    assert await vol.dp.read(h, 0, len(data)) == data
    assert sorted(k.rsplit("_", 1)[1] for k in spy.keys()) == ["100", str(BS), str(BS), str(BS)]
    await vol.dp.release(h)


async def test_pressure_freezes_nothing_while_queued_uploads_will_free_the_budget(spy: SpyStore) -> None:
    """Blocks waiting for an upload leave the budget by themselves: a sequential writer that outruns the
    store waits, and its file stays one slice (no freeze per full budget)."""
    vol = await _volume(spy, buffer_size=4 * BS, max_uploads=1)
    try:
        ino = await vol.new_file(b"one-slice")
        h = await vol.dp.open(ino, os.O_WRONLY)
        gate = spy.gate("_0_65536")
        writes = asyncio.create_task(_write_many(vol, h, 12 * BS, 8192, lambda: vol.dp.budget.used))
        await asyncio.sleep(0.05)
        assert not writes.done()
        gate.set()
        await writes
        await vol.dp.flush(h)
        assert len(await vol.meta.read_chunk(ino, 0)) == 1
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_cache_eviction_by_writers_gives_memory_back_off_the_loop() -> None:
    """Once writers pushed GIVE_BACK_AFTER bytes out of the cache, `give_back` runs once, in a thread."""
    import threading

    from jfs.app.data import files

    calls: list[str] = []
    vol = await _volume(SpyStore())
    vol.dp._give_back = lambda: calls.append(threading.current_thread().name)
    try:
        vol.dp._cache_gave_way(files.GIVE_BACK_AFTER // 2)
        assert not calls
        vol.dp._cache_gave_way(files.GIVE_BACK_AFTER // 2)
        vol.dp._cache_gave_way(files.GIVE_BACK_AFTER)  # while the first one runs: not again
        await vol.dp.drain()
        assert len(calls) == 1 and calls[0] != threading.current_thread().name
    finally:
        await vol.close()


async def test_idle_writers_give_their_arenas_and_heap_back() -> None:
    """Once nothing is being written, the sweeper drops the idle block arenas and gives the free heap
    back to the OS (ADR 0048); with nothing to let go of, it does not call `give_back` again."""
    calls: list[int] = []
    vol = await _volume(SpyStore(), sweep_interval=0.01)
    vol.dp._give_back = lambda: calls.append(1)
    try:
        ino = await vol.new_file(b"big")
        h = await vol.dp.open(ino, os.O_WRONLY)
        for off in range(0, 4 * BS, BS // 2):
            await vol.dp.write(h, off, b"a" * (BS // 2))  # blocks after the first get arenas
        await vol.dp.flush(h)
        await vol.dp.release(h)
        for _ in range(100):
            if calls:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert calls == [1]
    finally:
        await vol.close()


def test_write_budget_and_shared_memory_cache_stay_within_one_limit() -> None:
    """With a shared cache, writers' bytes and cached blocks together stay within the budget's limit
    (the cache keeps at least `keep`), and the cache may grow back as writers give bytes back (ADR 0048)."""
    cache: MemoryCache[int] = MemoryCache(100)
    budget = WriteBudget(150, lambda: None, shared=cache, keep=20)
    for i in range(10):
        cache.put(i, b"c" * 10)
    assert cache.used == 100
    budget.add(80)
    assert cache.used <= 150 - 80 and cache.used == 70
    budget.add(60)
    assert cache.used == 20  # never below keep
    cache.put(99, b"n" * 10)
    assert cache.used == 20
    budget.release(140)
    assert cache.ceiling == 100
    for i in range(10, 20):
        cache.put(i, b"c" * 10)
    assert cache.used == 100


async def test_written_bytes_push_cached_blocks_out_of_the_shared_budget(spy: SpyStore) -> None:
    """Blocks read into the memory cache give way as a writer fills the write budget: the mount's memory
    is bounded by the budget, not by the budget plus the cache (ADR 0048)."""
    vol = await _volume(spy, buffer_size=8 * BS, mem_cache_size=8 * BS, max_uploads=1)
    try:
        first = await vol.new_file(b"read")
        h = await vol.dp.open(first, os.O_RDWR)
        await vol.dp.write(h, 0, b"r" * (8 * BS))
        await vol.dp.flush(h)
        await vol.dp.release(h)
        vol.dp.mem.clear()
        h = await vol.dp.open(first, os.O_RDONLY)
        assert await vol.dp.read(h, 0, 8 * BS) == b"r" * (8 * BS)
        await vol.dp.release(h)
        assert vol.dp.mem.used >= 4 * BS
        ino = await vol.new_file(b"write")
        h = await vol.dp.open(ino, os.O_WRONLY)
        gate = spy.gate("_0_65536")  # the new file's first block waits: its bytes stay in the budget
        writes = asyncio.create_task(_write_many(vol, h, 6 * BS, 8192, lambda: vol.dp.budget.used))
        await asyncio.sleep(0.05)
        assert vol.dp.budget.used >= 5 * BS
        assert vol.dp.mem.used + vol.dp.budget.used <= 8 * BS + 8192
        assert vol.dp._evicted > 0  # told to the give-back hook's counter (none in this harness)
        gate.set()
        await writes
        await vol.dp.flush(h)
        await vol.dp.release(h)
        assert vol.dp.mem.ceiling == 8 * BS
    finally:
        await vol.close()


async def test_pressure_freezes_a_slice_whose_blocks_wait_for_its_commit(spy: SpyStore) -> None:
    """A file read back while written keeps its stored blocks until the commit (ADR 0035): only a
    freeze frees them, so a full budget freezes its slice rather than waiting forever."""
    vol = await _volume(spy, buffer_size=4 * BS)
    try:
        ino = await vol.new_file(b"kept")
        h = await vol.dp.open(ino, os.O_RDWR)
        await vol.dp.write(h, 0, b"k" * 8192)
        assert await vol.dp.read(h, 0, 8192) == b"k" * 8192  # read back: blocks kept until the commit
        await asyncio.wait_for(_write_many(vol, h, 12 * BS, 8192, lambda: vol.dp.budget.used), 10)
        await vol.dp.flush(h)
        assert vol.dp.budget.used == 0
        assert await vol.dp.read(h, 0, 12 * BS) == b"p" * (12 * BS)
        await vol.dp.release(h)
    finally:
        await vol.close()


def test_as_view_copies_only_mutable_buffers() -> None:
    data = b"immutable"
    assert as_view(data).obj is data
    buf = bytearray(b"mutable")
    view = as_view(buf)
    buf[0:1] = b"M"
    assert bytes(view) == b"mutable"


# ----------------------------------------------------------------------------------------- slicing


async def test_small_appends_make_small_blocks_without_reading_back(vol: DataVolume, spy: SpyStore) -> None:
    ino = await vol.new_file(b"log")
    h = await vol.dp.open(ino, os.O_WRONLY)
    for i in range(3):
        await vol.dp.write(h, i * 100, bytes([65 + i]) * 100)
        await vol.dp.flush(h)
    records = await vol.meta.read_chunk(ino, 0)
    assert [(r.pos, r.size, r.len) for r in records] == [(0, 100, 100), (100, 100, 100), (200, 100, 100)]
    assert all(k.endswith("_0_100") for k in spy.keys())
    assert spy.calls["get"] == 0
    await vol.dp.release(h)


async def test_sequential_write_is_one_slice_and_uploads_full_blocks_before_flush(
    vol: DataVolume, spy: SpyStore
) -> None:
    ino = await vol.new_file(b"seq")
    h = await vol.dp.open(ino, os.O_WRONLY)
    data = os.urandom(3 * BS + 1000)
    for off in range(0, len(data), 10_000):
        await vol.dp.write(h, off, data[off : off + 10_000])
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(spy.keys()) == 3  # the three full blocks went out before any flush
    assert await vol.meta.read_chunk(ino, 0) == []
    await vol.dp.flush(h)
    [record] = await vol.meta.read_chunk(ino, 0)
    assert record == SliceRecord(0, record.id, len(data), 0, len(data))
    assert sorted(k.rsplit("_", 1)[1] for k in spy.keys()) == ["1000", "65536", "65536", "65536"]
    assert (await vol.meta.getattr(ino)).length == len(data)
    await vol.dp.release(h)


async def test_overwrite_of_unuploaded_tail_joins_the_slice_else_new_slice(vol: DataVolume) -> None:
    ino = await vol.new_file(b"tail")
    h = await vol.dp.open(ino, os.O_RDWR)
    await vol.dp.write(h, 0, b"a" * (BS + 100))  # block 0 uploaded, 100 bytes pending
    await vol.dp.write(h, BS + 50, b"b" * 100)  # inside the pending tail: same slice
    await vol.dp.write(h, 10, b"c" * 10)  # inside the uploaded block: a new slice
    await vol.dp.flush(h)
    records = await vol.meta.read_chunk(ino, 0)
    assert [(r.pos, r.len) for r in records] == [(0, BS + 150), (10, 10)]
    expect = bytearray(b"a" * (BS + 150))
    expect[BS + 50 :] = b"b" * 100
    expect[10:20] = b"c" * 10
    assert await vol.dp.read(h, 0, 1 << 20) == expect
    await vol.dp.release(h)


async def test_reads_see_unflushed_writes(vol: DataVolume) -> None:
    ino = await vol.new_file(b"ryw")
    h = await vol.dp.open(ino, os.O_RDWR)
    await vol.dp.write(h, 0, b"x" * 1000)
    await vol.dp.flush(h)
    await vol.dp.write(h, 500, b"y" * 1000)
    await vol.dp.write(h, 5000, b"z")
    got = await vol.dp.read(h, 0, 10_000)
    assert got == b"x" * 500 + b"y" * 1000 + b"\0" * 3500 + b"z"
    assert vol.dp.file_length(ino) == 5001
    await vol.dp.release(h)


async def test_uploaded_blocks_are_let_go_before_the_commit_and_read_back_from_the_store(
    vol: DataVolume, spy: SpyStore
) -> None:
    ino = await vol.new_file(b"letgo")
    h = await vol.dp.open(ino, os.O_RDWR)
    data = bytes(random.Random(7).randbytes(3 * BS + 1000))
    await vol.dp.write(h, 0, data)
    for _ in range(100):  # the three full blocks upload in the background
        if spy.calls["put"] >= 3:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.01)
    assert await vol.meta.read_chunk(ino, 0) == []  # nothing committed yet
    (s,) = vol.dp._inodes[ino].writer.chunks[0].slices  # type: ignore[union-attr]
    assert s.blocks[:3] == [None, None, None] and s.blocks[3] is not None  # the partial tail is kept
    assert vol.dp.budget.used == 1000  # the stored blocks gave their bytes back
    gets = spy.calls["get"]
    assert await vol.dp.read(h, 0, len(data)) == data  # read-your-writes through the store
    assert await vol.dp.read(h, BS - 10, 20) == data[BS - 10 : BS + 10]
    assert spy.calls["get"] > gets
    await vol.dp.write(h, 3 * BS + 1000, b"m" * BS)  # the open tail still takes writes
    for _ in range(100):
        if spy.calls["put"] >= 4:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.01)
    assert s.blocks[3] is not None  # a file read back while written keeps its stored blocks till the commit
    await vol.dp.flush(h)
    assert vol.dp.budget.used == 0
    assert await vol.dp.read(h, 0, len(data) + BS) == data + b"m" * BS
    await vol.dp.release(h)


async def test_uploaded_blocks_are_kept_until_the_commit_when_checksums_are_on(spy: SpyStore) -> None:
    vol = await _volume(spy, checksum=True)
    try:
        ino = await vol.new_file(b"sums")
        h = await vol.dp.open(ino, os.O_RDWR)
        await vol.dp.write(h, 0, b"c" * (2 * BS + 10))
        for _ in range(100):
            if spy.calls["put"] >= 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        (s,) = vol.dp._inodes[ino].writer.chunks[0].slices  # type: ignore[union-attr]
        assert None not in s.blocks
        assert await vol.dp.read(h, 0, 2 * BS + 10) == b"c" * (2 * BS + 10)
        await vol.dp.release(h)
    finally:
        await vol.close()


# ------------------------------------------------------------------------------------------ commits


async def test_slice_commits_only_after_all_its_blocks_are_stored(vol: DataVolume, spy: SpyStore) -> None:
    ino = await vol.new_file(b"durable")
    h = await vol.dp.open(ino, os.O_WRONLY)
    gate = spy.gate("_1_65536")
    await vol.dp.write(h, 0, b"q" * (3 * BS))
    flush = asyncio.create_task(vol.dp.flush(h))
    await asyncio.sleep(0.05)
    assert not flush.done()
    assert await vol.meta.read_chunk(ino, 0) == []
    gate.set()
    await flush
    assert len(await vol.meta.read_chunk(ino, 0)) == 1
    await vol.dp.release(h)


async def test_slices_of_a_chunk_commit_in_creation_order(vol: DataVolume, spy: SpyStore) -> None:
    ino = await vol.new_file(b"order")
    h = await vol.dp.open(ino, os.O_WRONLY)
    gate = spy.gate("_0_10")  # the first slice's only block
    await vol.dp.write(h, 0, b"1" * 10)
    await vol.dp.write(h, 5, b"2" * 2)  # overlaps a slice that cannot take it? same unfrozen tail: joins
    await vol.dp.write(h, 100, b"3" * 20)  # not adjacent: new slice
    flush = asyncio.create_task(vol.dp.flush(h))
    await asyncio.sleep(0.05)
    assert await vol.meta.read_chunk(ino, 0) == []  # the second slice is stored but must wait
    gate.set()
    await flush
    assert [(r.pos, r.len) for r in await vol.meta.read_chunk(ino, 0)] == [(0, 10), (100, 20)]
    await vol.dp.release(h)


async def test_only_the_newest_slices_of_a_chunk_stay_open_under_random_writes(
    vol: DataVolume, spy: SpyStore
) -> None:  # fmt: skip
    """While nothing can commit, scattered writes pile up slices; only the newest MAX_UNFROZEN_DEPTH + 1
    stay open (the search for where a write goes looks no further), a write next to an older slice makes
    a new one, and every byte reads back — before and after the commits."""
    from jfs.app.data.writer import MAX_UNFROZEN_DEPTH

    ino = await vol.new_file(b"scatter")
    h = await vol.dp.open(ino, os.O_RDWR)
    gate = spy.gate("_0_10")  # the first slice's only block: nothing commits until it is let go
    expect = bytearray(59 * 1000 + 10)  # the file ends with the furthest write
    order = list(range(60))
    random.Random(5).shuffle(order)
    for n, i in enumerate(order):
        piece = bytes([65 + n % 26]) * 10
        await vol.dp.write(h, i * 1000, piece)
        expect[i * 1000 : i * 1000 + 10] = piece
    writer = vol.dp._inodes[ino].writer
    assert writer is not None
    slices = writer.chunks[0].slices
    assert len(slices) == 60
    assert all(s.frozen for s in slices[: -MAX_UNFROZEN_DEPTH - 1])
    oldest = slices[0]
    await vol.dp.write(h, oldest.pos + 10, b"!")  # adjacent to a frozen slice: a slice of its own
    expect[oldest.pos + 10] = ord("!")
    assert len(slices) == 61 and slices[-1].pos == oldest.pos + 10
    assert await vol.dp.read(h, 0, len(expect)) == expect
    gate.set()
    await vol.dp.flush(h)
    assert await vol.dp.read(h, 0, len(expect)) == expect
    await vol.dp.release(h)


async def test_growing_into_a_new_chunk_waits_for_the_previous_growing_slice(
    vol: DataVolume, spy: SpyStore
) -> None:
    ino = await vol.new_file(b"grow")
    h = await vol.dp.open(ino, os.O_RDWR)
    start = CHUNK_SIZE - 1000
    gate = spy.gate("_0_1000")
    await vol.dp.write(h, start, b"a" * 3000)  # 1000 bytes in chunk 0, 2000 in chunk 1
    flush = asyncio.create_task(vol.dp.flush(h))
    await asyncio.sleep(0.05)
    assert await vol.meta.read_chunk(ino, 1) == []
    assert (await vol.meta.getattr(ino)).length == 0
    gate.set()
    await flush
    assert (await vol.meta.getattr(ino)).length == CHUNK_SIZE + 2000
    assert await vol.dp.read(h, start - 10, 4000) == b"\0" * 10 + b"a" * 3000
    await vol.dp.release(h)


async def test_upload_failure_reports_eio_and_commits_nothing(spy: SpyStore) -> None:
    vol = await _volume(spy)
    try:
        ino = await vol.new_file(b"fail")
        h = await vol.dp.open(ino, os.O_RDWR)
        spy.fail_puts.add("_1_65536")
        await vol.dp.write(h, 0, b"f" * (2 * BS + 10))
        with pytest.raises(OSError) as info:
            await vol.dp.flush(h)
        assert info.value.errno == errno.EIO
        assert await vol.meta.read_chunk(ino, 0) == []
        assert (await vol.meta.getattr(ino)).length == 0
        await vol.dp.drain()
        assert spy.keys() == []  # the blocks that did land were deleted again
        await vol.dp.flush(h)  # reported once
        spy.fail_puts.clear()
        await vol.dp.write(h, 0, b"ok")
        await vol.dp.release(h)
        assert await vol.dp.read(await vol.dp.open(ino), 0, 10) == b"ok"
    finally:
        await vol.close()


async def test_release_raises_the_failure_and_still_closes(spy: SpyStore) -> None:
    vol = await _volume(spy)
    try:
        ino = await vol.new_file(b"close")
        h = await vol.dp.open(ino, os.O_WRONLY)
        spy.fail_puts.add("_0_5")
        await vol.dp.write(h, 0, b"lost!")
        with pytest.raises(OSError):
            await vol.dp.release(h)
        assert vol.dp.file_length(ino) is None
        with pytest.raises(OSError) as info:
            await vol.dp.write(h, 0, b"x")
        assert info.value.errno == errno.EBADF
    finally:
        await vol.close()


async def test_faulty_store_uploads_succeed_after_retries() -> None:
    inner = MemoryStore(f"faulty-{uuid.uuid4().hex}")
    faulty = FaultyStore(inner, 0.3, seed=7, put_lands=0.5)
    vol = await _volume(faulty, io_retries=20)  # type: ignore[arg-type]
    try:
        ino = await vol.new_file(b"retry")
        h = await vol.dp.open(ino, os.O_RDWR)
        data = os.urandom(10 * BS + 7)
        await vol.dp.write(h, 0, data)
        await vol.dp.flush(h)
        assert faulty.injected["put"] > 0
        assert await vol.dp.read(h, 0, len(data) + 1) == data
        await vol.dp.release(h)
    finally:
        await vol.close()


# ------------------------------------------------------------------------------- background flushes


async def test_idle_slices_are_committed_without_flush(spy: SpyStore) -> None:
    vol = await _volume(spy, idle_flush=0.05, sweep_interval=0.01)
    try:
        ino = await vol.new_file(b"idle")
        h = await vol.dp.open(ino, os.O_WRONLY)
        await vol.dp.write(h, 0, b"idle data")
        for _ in range(100):
            if await vol.meta.read_chunk(ino, 0):
                break
            await asyncio.sleep(0.01)
        assert len(await vol.meta.read_chunk(ino, 0)) == 1
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_writers_wait_when_the_buffer_is_full(spy: SpyStore) -> None:
    vol = await _volume(spy, buffer_size=4 * BS, max_uploads=1)
    try:
        ino = await vol.new_file(b"pressure")
        h = await vol.dp.open(ino, os.O_WRONLY)
        gate = spy.gate("_0_65536")
        peak = 0
        writes = asyncio.create_task(_write_many(vol, h, 12 * BS, 8192, lambda: vol.dp.budget.used))
        await asyncio.sleep(0.05)
        assert not writes.done()  # held back: the first block cannot be stored
        assert vol.dp.budget.used <= 4 * BS + 8192
        gate.set()
        peak = await writes
        assert peak <= 4 * BS + 8192
        await vol.dp.flush(h)
        assert vol.dp.budget.used == 0
        await vol.dp.release(h)
    finally:
        await vol.close()


async def _write_many(vol: DataVolume, h: object, total: int, step: int, used: object) -> int:
    peak = 0
    for off in range(0, total, step):
        await vol.dp.write(h, off, b"p" * step)  # type: ignore[arg-type]
        peak = max(peak, used())  # type: ignore[operator]
    return peak


async def test_many_small_commits_trigger_compaction(vol: DataVolume) -> None:
    ino = await vol.new_file(b"frag")
    h = await vol.dp.open(ino, os.O_RDWR)
    expect = bytearray()
    for i in range(99):
        chunk = bytes([i % 251]) * 37
        await vol.dp.write(h, len(expect), chunk)
        expect += chunk
        await vol.dp.flush(h)
    await vol.dp.drain()
    records = await vol.meta.read_chunk(ino, 0)
    assert len(records) < 10
    assert await vol.dp.read(h, 0, 1 << 20) == expect
    await vol.dp.release(h)


def test_a_file_bucket_caches_no_written_or_loaded_blocks() -> None:
    """A local-directory bucket is as fast as the disk cache: copying blocks there only doubles the file
    creates (ADR 0023); other storages keep JuiceFS's caching of written and loaded blocks."""
    local = DataConfig.from_settings(Settings(name="vol-a", storage="file"))
    assert (local.cache_small_writes, local.cache_full_writes, local.cache_loads) == (False, False, False)
    remote = DataConfig.from_settings(Settings(name="vol-a", storage="s3"))
    assert (remote.cache_small_writes, remote.cache_full_writes, remote.cache_loads) == (True, True, True)
    asked = DataConfig.from_settings(Settings(name="vol-a", storage="file"), cache_small_writes=True)
    assert asked.cache_small_writes


async def test_writes_wait_while_the_file_has_too_many_uncommitted_slices(
    spy: SpyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("jfs.app.data.writer.MAX_PENDING_SLICES", 5)
    vol = await _volume(spy)
    try:
        ino = await vol.new_file(b"many slices")
        h = await vol.dp.open(ino, os.O_WRONLY)
        gate = spy.gate("")  # no block can be stored yet: nothing commits
        for i in range(5):  # apart from each other: one slice each
            await vol.dp.write(h, i * 8192, b"s" * 4096)
        sixth = asyncio.create_task(vol.dp.write(h, 5 * 8192, b"s" * 4096))
        await asyncio.sleep(0.05)
        assert not sixth.done()  # five slices wait for their commit
        gate.set()
        await asyncio.wait_for(sixth, 5)
        await vol.dp.flush(h)
        assert await vol.dp.read(h, 5 * 8192, 4096) == b"s" * 4096
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_a_128_kib_file_is_stored_and_committed_by_its_flush(tmp_path: Any) -> None:
    """A `juicefs bench` small file on a ``file`` bucket (ADR 0064): once its flush returned, the slice is
    committed (what another client reads: close-to-open) and its one block is stored under the name JuiceFS
    gives it; read back whole."""
    from jfs.adapters.objects.file import FileStore

    store = FileStore(f"{tmp_path}/bucket/")
    await store.create_bucket()
    v = await _volume(store, block_kib=4096)
    try:
        data = os.urandom(128 << 10)
        for i in range(6):  # past the file store's first puts, which fill its pool of temp files
            ino = await v.new_file(f"small{i}".encode())
            h = await v.dp.open(ino, os.O_WRONLY)
            await v.dp.write(h, 0, data)
            await v.dp.flush(h)
            records = await v.meta.read_chunk(ino, 0)
            assert [(r.pos, r.size, r.len) for r in records] == [(0, len(data), len(data))]
            assert (await v.meta.getattr(ino)).length == len(data)
            await v.dp.release(h)
        keys = [i.key async for i in store.list("")]
        assert len(keys) == 6 and all(k.endswith(f"_0_{len(data)}") for k in keys)
        h = await v.dp.open(ino, os.O_RDONLY)
        assert await v.dp.read(h, 0, len(data) + 1) == data
        await v.dp.release(h)
    finally:
        await v.close()
        await store.close()


async def test_a_written_and_closed_file_leaves_no_cycle_for_the_collector(vol: DataVolume) -> None:
    """A small file's writer, chunk, slice and inode state go with their last reference once it is closed
    (ADR 0072): none of them waits in a reference cycle for the cyclic collector."""
    import gc

    from jfs.app.data.inode import InodeState
    from jfs.app.data.writer import ChunkWriter, FileWriter, SliceWriter

    for i in range(3):  # warm-up: whatever the first file sets up for good is not a leak
        h = await vol.dp.open(await vol.new_file(b"warm%d" % i), os.O_WRONLY)
        await vol.dp.write(h, 0, os.urandom(BS + 10))
        await vol.dp.release(h)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for i in range(5):
            ino = await vol.new_file(b"small%d" % i)
            h = await vol.dp.open(ino, os.O_WRONLY)
            await vol.dp.write(h, 0, os.urandom(BS + 10))
            await vol.dp.write(h, BS + 10, os.urandom(100))
            await vol.dp.flush(h)
            await vol.dp.release(h)
        h = None  # type: ignore[assignment]
        gc.collect()
        kinds = (InodeState, FileWriter, ChunkWriter, SliceWriter)
        cyclic = [type(x).__name__ for x in gc.garbage if isinstance(x, kinds)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert cyclic == []


async def test_slices_ready_together_commit_in_one_transaction_in_creation_order(
    vol: DataVolume, spy: SpyStore, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    """Scattered writes pile up slices behind a first one whose block is held back: once it is stored, the
    slices already stored behind it go into its commit (ADR 0102) — a few transactions instead of one per
    slice — and the chunk's records keep the order the slices were made in."""
    ino = await vol.new_file(b"batched")
    h = await vol.dp.open(ino, os.O_RDWR)
    batches: list[int] = []
    write_slices = vol.meta.write_slices

    async def counted(ino: int, indx: int, slices: Any) -> Any:
        batches.append(len(slices))
        return await write_slices(ino, indx, slices)

    monkeypatch.setattr(vol.meta, "write_slices", counted)
    gate = spy.gate("_0_10")  # only the first slice's block (10 bytes; the others have 4,096)
    await vol.dp.write(h, 0, b"0" * 10)
    expect = bytearray(80 * 8192)
    expect[0:10] = b"0" * 10
    order = list(range(1, 80))
    random.Random(7).shuffle(order)
    for i in order:
        piece = bytes([65 + i % 26]) * 4096
        await vol.dp.write(h, i * 8192, piece)
        expect[i * 8192 : i * 8192 + 4096] = piece
    await asyncio.sleep(0.05)  # the frozen slices' blocks are stored meanwhile
    assert batches == []
    gate.set()
    await vol.dp.flush(h)
    assert sum(batches) == 80 and len(batches) <= 3, batches
    records = await vol.meta.read_chunk(ino, 0)
    assert [r.pos for r in records] == [0] + [i * 8192 for i in order]
    assert await vol.dp.read(h, 0, len(expect)) == expect.rstrip(b"\0").ljust(79 * 8192 + 4096, b"\0")
    await vol.dp.release(h)


async def test_a_refused_batch_drops_all_its_slices_and_the_flush_reports_it(
    vol: DataVolume, spy: SpyStore, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    """A batch is one transaction: refused, none of its slices lands, each one's blocks are deleted, and
    the file's next flush raises the engine's errno."""
    ino = await vol.new_file(b"refused")
    h = await vol.dp.open(ino, os.O_RDWR)
    batches: list[int] = []

    async def refuse(ino: int, indx: int, slices: Any) -> Any:
        batches.append(len(slices))
        raise FSError(errno.ENOSPC, "no space")  # definite: the transaction did not land

    monkeypatch.setattr(vol.meta, "write_slices", refuse)
    gate = spy.gate("_0_10")
    await vol.dp.write(h, 0, b"0" * 10)
    for i in range(1, 20):
        await vol.dp.write(h, i * 8192, b"x" * 4096)
    await asyncio.sleep(0.05)
    gate.set()
    with pytest.raises(OSError) as raised:
        await vol.dp.flush(h)
    assert raised.value.errno == errno.ENOSPC
    assert sum(batches) == 20 and len(batches) < 20
    await vol.dp.drain()
    assert not [k for k in spy.keys() if "/chunks/" in k]  # every dropped slice's blocks deleted
    assert await vol.meta.read_chunk(ino, 0) == []
    await vol.dp.release(h)


async def test_a_batch_passing_a_compaction_count_schedules_the_compaction() -> None:
    """Records committed several at a time trigger compaction as if committed one by one."""
    from jfs.app.data.writer import compaction_policy

    scheduled: list[int] = []

    async def now() -> None:
        scheduled.append(-1)

    for n, added in ((101, 5), (104, 5), (98, 1), (99, 1)):
        before = len(scheduled)
        await compaction_policy(n, now, lambda n=n: scheduled.append(n), added)
        assert (len(scheduled) > before) == (n - added < 99 <= n), (n, added)

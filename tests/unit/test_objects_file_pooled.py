"""Whole-block reads of a real ``file`` bucket into recycled buffers (ADR 0070): `BlockBuffers`,
`FileStore.get_pooled`, and `BlockStore.get` handing out views of them through a volume."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jfs.adapters.direct_files import DirectWriter
from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects import file as file_mod
from jfs.adapters.objects.file import FileStore, open_file
from jfs.adapters.objects.file_blocks import MIN_BYTES, BlockBuffers
from jfs.app.data.fetcher import store_capability
from jfs.ports.objects import ObjectNotFound, ObjectStore
from jfs.testing.data_harness import DataVolume

MiB = 1 << 20


def _write(path: Path, data: bytes, *, cached: bool) -> None:
    """`data` as file `path`: through the page cache, or written back and dropped from it."""
    path.write_bytes(data)
    if not cached:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


@pytest.mark.parametrize("cached", [True, False])
@pytest.mark.parametrize("size", [MIN_BYTES, 4 * MiB, 4 * MiB - 7, 2 * MiB + 4097])
def test_reads_return_the_exact_bytes_of_the_file(tmp_path: Path, size: int, cached: bool) -> None:
    data = os.urandom(size)
    _write(tmp_path / "b", data, cached=cached)
    buffers = BlockBuffers(max_buffers=2)
    view = buffers.read(str(tmp_path / "b"), size + 1)  # one byte more, as the block store asks
    assert isinstance(view, memoryview) and view.readonly
    assert bytes(view) == data
    assert bytes(buffers.read(str(tmp_path / "b"), 1000 + MIN_BYTES) or b"") == data[: 1000 + MIN_BYTES]


def test_a_buffer_is_not_reused_while_any_view_of_it_is_alive(tmp_path: Path) -> None:
    blocks = [os.urandom(MIN_BYTES + i) for i in range(6)]
    for i, b in enumerate(blocks):
        _write(tmp_path / f"b{i}", b, cached=i % 2 == 0)
    buffers = BlockBuffers(max_buffers=2)
    first = buffers.read(str(tmp_path / "b0"), 2 * MIN_BYTES)
    assert first is not None
    part = first[10:1000]  # a view of a view keeps the buffer too
    del first
    for i in range(1, 6):  # one buffer is held: the others cycle through the second
        got = buffers.read(str(tmp_path / f"b{i}"), 2 * MIN_BYTES)
        assert got is not None and bytes(got) == blocks[i]
        del got
        assert bytes(part) == blocks[0][10:1000]
    assert len(buffers) == 2
    held = buffers.read(str(tmp_path / "b1"), 2 * MIN_BYTES)
    assert buffers.read(str(tmp_path / "b2"), 2 * MIN_BYTES) is None  # both in use, the pool full
    assert bytes(part) == blocks[0][10:1000] and held is not None and bytes(held) == blocks[1]
    del part
    gc.collect()
    again = buffers.read(str(tmp_path / "b3"), 2 * MIN_BYTES)
    assert again is not None and bytes(again) == blocks[3] and len(buffers) == 2
    assert bytes(held) == blocks[1]


def test_small_files_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "small").write_bytes(b"x" * 4096)
    buffers = BlockBuffers()
    assert buffers.read(str(tmp_path / "small"), MIN_BYTES) is None  # the caller reads it the ordinary way
    assert len(buffers) == 0
    with pytest.raises(FileNotFoundError):
        buffers.read(str(tmp_path / "nope"), MIN_BYTES)


def test_without_o_direct_reads_through_the_page_cache(tmp_path: Path) -> None:
    data = os.urandom(3 * MiB)
    _write(tmp_path / "b", data, cached=False)
    buffers = BlockBuffers(direct=False)
    view = buffers.read(str(tmp_path / "b"), 4 * MiB)
    assert view is not None and bytes(view) == data and buffers.direct_reads == 0


def test_a_view_outlives_the_deletion_of_its_object(tmp_path: Path) -> None:
    data = os.urandom(2 * MiB)
    _write(tmp_path / "b", data, cached=False)
    buffers = BlockBuffers(max_buffers=1)
    view = buffers.read(str(tmp_path / "b"), 4 * MiB)
    os.unlink(tmp_path / "b")
    (tmp_path / "b").write_bytes(os.urandom(2 * MiB))  # a new object under the same name
    assert view is not None and bytes(view) == data


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=30))
def test_held_views_never_change_whatever_the_order_of_reads_and_releases(
    tmp_path: Path, ops: list[tuple[int, bool]]
) -> None:
    """Model: every view handed out reads as its file's bytes until dropped, however reads and drops mix."""
    files = []
    for i in range(4):
        path = tmp_path / f"m{i}"
        if not path.exists():
            path.write_bytes(os.urandom(MIN_BYTES + 4096 * i + i))
        files.append(path.read_bytes())
    buffers = BlockBuffers(max_buffers=3)
    held: list[tuple[int, memoryview]] = []
    for index, keep in ops:
        view = buffers.read(str(tmp_path / f"m{index}"), 2 * MIN_BYTES)
        if view is not None:
            assert bytes(view) == files[index]
            if keep:
                held.append((index, view[index : index + 4096]))
        del view
        if not keep and held:
            held.pop(0)
        for i, part in held:
            assert bytes(part) == files[i][i : i + 4096]
    assert len(buffers) <= 3


def _vm_flags(view: memoryview) -> set[str] | None:
    """The ``VmFlags`` of the mapping holding the first byte of `view`'s buffer (None: not found)."""
    import ctypes

    addr = ctypes.addressof(ctypes.c_char.from_buffer(view.obj))  # type: ignore[arg-type]
    inside = False
    with open("/proc/self/smaps", encoding="ascii") as f:
        for line in f:
            head = line.split(maxsplit=1)[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= addr < hi
            elif inside and head == "VmFlags:":
                return set(line.split()[1:])
    return None


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps") or not hasattr(__import__("mmap"), "MADV_HUGEPAGE"),
                    reason="Linux transparent huge pages")
@pytest.mark.parametrize("huge", [True, False])
def test_buffers_are_advised_huge_pages_unless_told_not_to(tmp_path: Path, huge: bool) -> None:
    """ADR 0073: an O_DIRECT read into 4 KiB pages hands the device 1,024 segments per 4 MiB block; the
    pool's buffers are advised MADV_HUGEPAGE (the ``hg`` flag of their mapping) and read the same bytes."""
    data = os.urandom(4 * MiB - 5)
    _write(tmp_path / "b", data, cached=False)
    buffers = BlockBuffers(max_buffers=1, huge=huge)
    view = buffers.read(str(tmp_path / "b"), 4 * MiB)
    assert view is not None and bytes(view) == data and buffers.direct_reads == 1
    flags = _vm_flags(view)
    assert flags is not None
    assert ("hg" in flags) is huge
    small = BlockBuffers(huge=True)  # a buffer below a huge page is never advised
    _write(tmp_path / "s", data[: MIN_BYTES + 1], cached=False)
    got = small.read(str(tmp_path / "s"), 2 * MIN_BYTES)
    assert got is not None and bytes(got) == data[: MIN_BYTES + 1]
    assert "hg" not in (_vm_flags(got) or {"hg"})


# -- FileStore ------------------------------------------------------------------------------------------


async def test_get_pooled_answers_as_get(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path), direct=DirectWriter(), block_buffers=BlockBuffers(max_buffers=1))
    try:
        big, small = os.urandom(4 * MiB - 3), os.urandom(5000)
        await store.put("v/chunks/big", big)  # written with O_DIRECT: not in the page cache
        await store.put("v/chunks/small", small)
        view = await store.get_pooled("v/chunks/big", 4 * MiB + 1)
        assert isinstance(view, memoryview) and bytes(view) == big == await store.get("v/chunks/big")
        other = await store.get_pooled("v/chunks/big", 4 * MiB + 1)  # the only buffer is held: new bytes
        assert isinstance(other, bytes) and other == big
        assert await store.get_pooled("v/chunks/small", 4 * MiB + 1) == small
        with pytest.raises(ObjectNotFound):
            await store.get_pooled("v/chunks/missing", 4 * MiB + 1)
        assert bytes(view) == big
    finally:
        await store.close()


async def test_open_file_pools_reads_unless_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await open_file(str(tmp_path))
    assert store.block_buffers is not None
    await store.close()
    assert store.block_buffers.huge
    await store.close()
    monkeypatch.setenv(file_mod.HUGE_ENV, "0")
    store = await open_file(str(tmp_path))
    assert store.block_buffers is not None and not store.block_buffers.huge
    await store.close()
    monkeypatch.setenv(file_mod.POOLED_ENV, "0")
    store = await open_file(str(tmp_path))
    assert store.block_buffers is None
    await store.close()


# -- through a volume ----------------------------------------------------------------------------------


async def _volume(store: ObjectStore, **overrides: Any) -> DataVolume:
    async def opener() -> ObjectStore:
        return store

    config: dict[str, Any] = {"retry_delay": 0.001, "io_retries": 2, "compact_on_read": False}
    config.update(overrides)
    return await DataVolume.create(
        await open_kv("memory://"), opener, compression="none", block_kib=2048, **config
    )


@pytest.mark.parametrize("checksum", [False, True])
async def test_a_volume_reads_big_files_back_exactly_through_recycled_buffers(
    tmp_path: Path, checksum: bool
) -> None:
    """Several files read in turns through a memory cache smaller than them and a pool of a few buffers:
    every block comes back exact while buffers are recycled underneath."""
    store = FileStore(str(tmp_path), direct=DirectWriter(), block_buffers=BlockBuffers(max_buffers=4))
    overrides: dict[str, Any] = {"mem_cache_size": 4 * MiB, "prefetch": 2}
    vol = await _volume(store, **overrides) if not checksum else None
    if vol is None:
        async def opener() -> ObjectStore:
            return store

        vol = await DataVolume.create(
            await open_kv("memory://"), opener, compression="none", block_kib=2048, checksum=True,
            retry_delay=0.001, io_retries=2, compact_on_read=False, **overrides,
        )
    try:
        assert store_capability(vol.dp.fetcher.blocks.store, "get_pooled") is not None
        files = {name: os.urandom(7 * MiB + 123 * i) for i, name in enumerate([b"a", b"b", b"c"])}
        inos = {name: await vol.write_new_file(name, data) for name, data in files.items()}
        handles = {name: await vol.dp.open(ino) for name, ino in inos.items()}
        vol.dp.fetcher.mem.shrink(0)
        step = 256 << 10
        got: dict[bytes, bytearray] = {name: bytearray() for name in files}
        for off in range(0, 8 * MiB, step):
            for name, h in handles.items():
                got[name] += bytes(await vol.dp.read(h, off, step))
        for name, data in files.items():
            assert bytes(got[name]) == data
        assert store.block_buffers is not None and len(store.block_buffers) <= 4
        assert store.block_buffers.reads > 4  # 12 blocks through 4 buffers: recycled
        for h in handles.values():
            await vol.dp.release(h)
    finally:
        await vol.close()


async def test_a_wrong_sized_block_object_is_an_error_not_wrong_bytes(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path), block_buffers=BlockBuffers())
    vol = await _volume(store)
    try:
        data = os.urandom(2 * MiB)
        ino = await vol.write_new_file(b"f", data)
        [obj] = [os.path.join(root, n) for root, _, names in os.walk(tmp_path) for n in names if "chunks" in root]
        os.truncate(obj, MIN_BYTES + 5)  # a damaged bucket: the object lost its tail
        vol.dp.fetcher.mem.shrink(0)
        h = await vol.dp.open(ino)
        with pytest.raises(OSError):
            await vol.dp.read(h, 0, 128 << 10)
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_a_checked_block_read_into_a_pooled_buffer_fails_on_a_flipped_byte(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path), block_buffers=BlockBuffers())

    async def opener() -> ObjectStore:
        return store

    vol = await DataVolume.create(
        await open_kv("memory://"), opener, compression="none", block_kib=2048, checksum=True,
        retry_delay=0.001, io_retries=2, compact_on_read=False,
    )
    try:
        data = os.urandom(2 * MiB)
        ino = await vol.write_new_file(b"f", data)
        [obj] = [os.path.join(root, n) for root, _, names in os.walk(tmp_path) for n in names if "chunks" in root]
        fd = os.open(obj, os.O_WRONLY)  # same size, one byte changed: only the checksum can tell
        try:
            os.pwrite(fd, bytes([data[12345] ^ 1]), 12345)
        finally:
            os.close(fd)
        vol.dp.fetcher.mem.shrink(0)
        h = await vol.dp.open(ino)
        with pytest.raises(OSError):
            await vol.dp.read(h, 0, 128 << 10)
        assert store.block_buffers is not None and store.block_buffers.reads > 0
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_a_small_block_keeps_the_no_hop_read_from_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(str(tmp_path), block_buffers=BlockBuffers())
    try:
        await store.put("v/chunks/small", b"s" * 4096)  # through the page cache
        hops: list[object] = []
        real_run = store._run

        async def counting_run(fn: Any, *args: object) -> Any:
            hops.append(fn)
            return await real_run(fn, *args)

        monkeypatch.setattr(store, "_run", counting_run)
        assert await store.get_pooled("v/chunks/small", 4097) == b"s" * 4096
        if file_mod._RWF_NOWAIT:
            assert hops == []
        assert store.block_buffers is not None and len(store.block_buffers) == 0
    finally:
        await store.close()


async def test_a_sequential_reader_lets_go_of_pooled_blocks_it_read_through(tmp_path: Path) -> None:
    """A streaming read hands each block read to its end back to the pool at once (the memory cache, big
    enough for the whole file, does not keep them): the pool stays at about the read-ahead's size."""
    store = FileStore(str(tmp_path), direct=DirectWriter(), block_buffers=BlockBuffers())
    vol = await _volume(store, mem_cache_size=64 * MiB, readahead_blocks=4, prefetch=4)
    try:
        data = os.urandom(24 * MiB)
        ino = await vol.write_new_file(b"seq", data)
        vol.dp.fetcher.mem.shrink(0)
        vol.dp.fetcher.mem.ceiling = vol.dp.fetcher.mem.capacity
        h = await vol.dp.open(ino)
        step = 128 << 10
        got = bytearray()
        for off in range(0, len(data), step):
            part = await vol.dp.read(h, off, step)
            got += bytes(part)
            del part
        assert bytes(got) == data
        buffers = store.block_buffers
        assert buffers is not None and buffers.reads >= 12  # 2 MiB blocks
        assert len(buffers) <= 8, len(buffers)  # without letting go: one per block (12)
        await vol.dp.release(h)
    finally:
        await vol.close()

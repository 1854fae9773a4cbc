"""A small file's block enters the memory cache as the bytes its WRITE was copied into (ADR 0090)."""

from __future__ import annotations

import os

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.data.pages import as_bytes
from jfs.ports.objects import ObjectStore
from jfs.testing.data_harness import DataVolume


def test_as_bytes_copies_only_what_is_not_a_whole_bytes_object() -> None:
    whole = b"abcdefgh" * 16
    assert as_bytes(whole) is whole
    assert as_bytes(memoryview(whole)) is whole
    part = as_bytes(memoryview(whole)[8:])
    assert part == whole[8:] and part is not whole
    mutable = bytearray(whole)
    copied = as_bytes(memoryview(mutable))
    assert type(copied) is bytes and copied == whole
    mutable[0] = 0  # a later change of the buffer does not reach the copy
    assert copied[0] == ord("a")
    wide = memoryview(whole).cast("I")  # not a byte view: copied as bytes of the same content
    assert as_bytes(wide) == whole and as_bytes(wide) is not whole


async def test_a_small_files_block_is_cached_without_a_copy() -> None:
    store = MemoryStore("no-copy-cache")

    async def opener() -> ObjectStore:
        return store

    vol = await DataVolume.create(await open_kv("memory://"), opener, block_kib=4096, retry_delay=0.001)
    try:
        payload = os.urandom(128 << 10)  # a 128 KiB file written in one WRITE, as `juicefs bench` does
        ino = await vol.new_file(b"small")
        h = await vol.dp.open(ino, os.O_WRONLY)
        await vol.dp.write(h, 0, payload)
        await vol.dp.flush(h)
        cached = list(vol.dp.mem._items.values())
        assert len(cached) == 1 and cached[0] is payload  # the base copied it (bytes(view)) on the loop
        await vol.dp.release(h)
        h = await vol.dp.open(ino, os.O_RDONLY)
        assert bytes(await vol.dp.read_buffer(h, 0, 1 << 20)) == payload  # served as written
        await vol.dp.release(h)
    finally:
        await vol.close()

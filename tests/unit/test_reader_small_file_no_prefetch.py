"""Reading a small file whole starts no read-ahead task (nothing lies beyond its end, ADR 0079), while a
sequential reader of a longer file still gets its blocks prefetched."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.data.reader import Reader
from jfs.testing.data_harness import DataVolume

BS = 64 << 10


async def _volume() -> DataVolume:
    store = MemoryStore(f"prefetch-{uuid.uuid4().hex}")

    async def opener() -> MemoryStore:
        return store

    return await DataVolume.create(await open_kv("memory://"), opener, retry_delay=0.001, compact_on_read=False)


async def test_a_whole_small_file_read_starts_no_prefetch(monkeypatch: pytest.MonkeyPatch) -> None:
    v = await _volume()
    started: list[tuple[int, int]] = []
    real = Reader._prefetch

    def counting(self: Reader, state: Any, off: int, n: int) -> Any:
        started.append((off, n))
        return real(self, state, off, n)

    monkeypatch.setattr(Reader, "_prefetch", counting)
    try:
        small = os.urandom(BS // 2)
        ino = await v.write_new_file(b"small", small)
        v.dp.fetcher.mem.clear()
        h = await v.dp.open(ino)
        assert await v.dp.read(h, 0, 1 << 20) == small  # the kernel asks for more than the file holds
        assert await v.dp.read(h, len(small), 1 << 20) == b""
        await v.dp.release(h)
        assert started == []
        big = os.urandom(8 * v.dp.fetcher.block_size)
        ino = await v.write_new_file(b"big", big)
        h = await v.dp.open(ino)
        step = v.dp.fetcher.block_size // 2
        assert await v.dp.read(h, 0, step) == big[:step]
        assert await v.dp.read(h, step, step) == big[step : 2 * step]  # sequential: blocks ahead asked for
        await v.dp.release(h)
        assert started and all(n > 0 for _, n in started)
    finally:
        await v.close()

"""Write-back staging (`jfs.app.data.staging`): staged puts are readable at once, uploaded in the
background, and a new StagingStore on the same directory uploads what an earlier one left."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from jfs.adapters.objects.memory import MemoryStore
from jfs.app.data.staging import StagingStore
from jfs.ports.objects import ObjectNotFound


class Gate(MemoryStore):
    """A store whose puts wait until `open` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.open = asyncio.Event()

    async def put(self, key: str, data: bytes | memoryview) -> None:
        await self.open.wait()
        await super().put(key, data)


async def test_staged_objects_are_read_locally_then_uploaded(tmp_path: Path) -> None:
    inner = Gate()
    store = await StagingStore(inner, str(tmp_path / "s")).start()
    await store.put("v/chunks/0/0/1_0_5", b"hello")
    assert (tmp_path / "s" / "v" / "chunks" / "0" / "0" / "1_0_5").read_bytes() == b"hello"
    assert store.pending == 1
    assert await store.get("v/chunks/0/0/1_0_5", 1, 3) == b"ell"
    assert (await store.head("v/chunks/0/0/1_0_5")).size == 5
    with pytest.raises(ObjectNotFound):
        await inner.get("v/chunks/0/0/1_0_5")
    inner.open.set()
    await store.flush()
    assert store.pending == 0 and store.uploaded == 1
    assert await inner.get("v/chunks/0/0/1_0_5") == b"hello"
    assert not (tmp_path / "s" / "v" / "chunks" / "0" / "0" / "1_0_5").exists()
    await store.close()


async def test_a_new_store_uploads_what_a_dead_one_left(tmp_path: Path) -> None:
    inner = Gate()
    first = await StagingStore(inner, str(tmp_path)).start()
    await first.put("v/a", b"A")
    await first.put("v/b", b"B")
    await first.close(wait=False)  # as if the process died: both still staged
    (tmp_path / "v" / "c.1234.tmp").write_bytes(b"half")  # a put that never returned
    inner.open.set()
    second = await StagingStore(inner, str(tmp_path)).start()
    await second.flush()
    assert await inner.get("v/a") == b"A" and await inner.get("v/b") == b"B"
    assert not any(files for _, _, files in os.walk(tmp_path))
    await second.close()


async def test_delete_removes_staged_and_uploaded_copies(tmp_path: Path) -> None:
    inner = MemoryStore()
    store = await StagingStore(inner, str(tmp_path)).start()
    await store.put("v/x", b"x")
    await store.delete("v/x")
    with pytest.raises(ObjectNotFound):
        await store.get("v/x")
    await store.close()


async def test_staging_is_bounded_in_bytes_and_falls_back_to_direct_uploads(tmp_path: Path) -> None:
    """max_bytes=10: 4+4 bytes are staged, the next 4 would exceed the bound and go straight to the store
    (the put returns once the store has them); once the staged ones are uploaded, staging resumes."""
    inner = Gate()
    store = await StagingStore(inner, str(tmp_path), max_bytes=10).start()
    await store.put("v/a", b"AAAA")
    await store.put("v/b", b"BBBB")
    assert (store.pending, store.pending_bytes, store.direct) == (2, 8, 0)
    direct = asyncio.ensure_future(store.put("v/c", b"CCCC"))
    await asyncio.sleep(0.05)
    assert not direct.done()  # waits for the store, like a write without --writeback
    assert not (tmp_path / "v" / "c").exists()
    inner.open.set()
    await direct
    assert store.direct == 1 and await inner.get("v/c") == b"CCCC"
    await store.flush()
    assert (store.pending, store.pending_bytes) == (0, 0)
    inner.open.clear()
    await store.put("v/d", b"DDDD")
    assert (tmp_path / "v" / "d").exists() and store.status()["Bytes"] == 4
    inner.open.set()
    await store.close()


async def test_a_disk_below_the_free_ratio_is_not_staged_on(tmp_path: Path) -> None:
    inner = MemoryStore()
    store = await StagingStore(inner, str(tmp_path / "s"), free_ratio=1.01).start()  # never enough room
    await store.put("v/a", b"A")
    assert store.direct == 1 and store.pending == 0 and await inner.get("v/a") == b"A"
    assert not any(files for _, _, files in os.walk(tmp_path))
    await store.close()


async def test_a_restart_counts_the_bytes_left_staged(tmp_path: Path) -> None:
    inner = Gate()
    first = await StagingStore(inner, str(tmp_path)).start()
    await first.put("v/a", b"A" * 100)
    await first.close(wait=False)
    second = await StagingStore(inner, str(tmp_path)).start()
    assert second.status() == {"Blocks": 1, "Bytes": 100, "Direct": 0, "Dir": str(tmp_path)}
    inner.open.set()
    await second.close()

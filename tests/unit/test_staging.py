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

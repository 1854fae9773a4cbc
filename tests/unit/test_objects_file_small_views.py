"""A small block read from the page cache by `FileStore.get_pooled` comes as a read-only view of the buffer it
was read into, not copied into new bytes (ADR 0079); `get` still answers bytes; a block not in the page cache
is read on a thread as before; the bytes a view shows never change, whatever is written after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jfs.adapters.objects import file as file_mod
from jfs.adapters.objects.file import FileStore
from jfs.adapters.objects.file_blocks import BlockBuffers

pytestmark = pytest.mark.skipif(not file_mod._RWF_NOWAIT, reason="no RWF_NOWAIT: small reads always hop")


@pytest.mark.parametrize("buffers", [None, BlockBuffers], ids=["no-pool", "pool"])
async def test_a_cached_small_block_is_a_read_only_view_of_its_own_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, buffers: Any
) -> None:
    store = FileStore(str(tmp_path), block_buffers=buffers() if buffers else None)
    try:
        await store.put("v/chunks/small", b"s" * 4096)
        (tmp_path / "v/chunks/small").read_bytes()  # noqa: ASYNC240  # surely in the page cache
        copies: list[object] = []
        real_get_cached = store._get_cached
        monkeypatch.setattr(store, "_get_cached", lambda *a: copies.append(a) or real_get_cached(*a))
        got = await store.get_pooled("v/chunks/small", 4097)
        assert isinstance(got, memoryview) and got.readonly and got.obj is not None
        assert bytes(got) == b"s" * 4096 and copies == []  # read once, into the view's buffer, no bytes copy
        await store.put("v/chunks/small", b"t" * 4096)  # a new object under the name: the view keeps its bytes
        assert bytes(got) == b"s" * 4096
        again = await store.get("v/chunks/small", 0, 4097)
        assert type(again) is bytes and again == b"t" * 4096
    finally:
        await store.close()


async def test_an_uncached_small_block_is_read_on_a_thread_as_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(str(tmp_path))
    try:
        await store.put("v/chunks/small", b"u" * 4096)
        monkeypatch.setattr(store, "_read_cached", lambda *a: None)  # as when RWF_NOWAIT finds no pages
        hops: list[object] = []
        real_run = store._run

        async def counting_run(fn: Any, *args: object) -> Any:
            hops.append(fn)
            return await real_run(fn, *args)

        monkeypatch.setattr(store, "_run", counting_run)
        got = await store.get_pooled("v/chunks/small", 4097)
        assert type(got) is bytes and got == b"u" * 4096 and len(hops) == 1
        with pytest.raises(file_mod.ObjectNotFound):
            await store.get_pooled("v/chunks/missing", 4097)
    finally:
        await store.close()

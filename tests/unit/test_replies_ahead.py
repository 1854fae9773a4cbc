"""READDIR / READDIRPLUS replies packed ahead (`VfsOperations.readdir`, ADR 0071): the next reply of a listing is
packed while the kernel takes the current one in, and is what the request would have got; any other request
drops it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from jfs.adapters.fuse import protocol as p
from jfs.adapters.fuse.operations import DirentSink, RequestContext
from jfs.adapters.fuse.vfs_operations import MountConfig, VfsOperations
from jfs.adapters.kv.memory import open_memory
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.vfs import VFS, VfsConfig
from jfs.domain.attrs import ROOT_INODE, FileType
from jfs.testing.data_harness import DataVolume

RC = RequestContext(0, 0, 1)


@pytest.fixture
async def ops() -> AsyncIterator[tuple[VfsOperations, int]]:
    store = MemoryStore("mem://ahead")

    async def opener() -> MemoryStore:
        return store

    v = await DataVolume.create(await open_memory(f"memory://ahead-{uuid.uuid4().hex}"), opener)
    vfs = VFS(v.meta, v.dp, VfsConfig())
    ctx = vfs.ctx()
    d, _ = await vfs.mkdir(ctx, ROOT_INODE, b"d", 0o755)
    for i in range(300):
        await vfs.mknod(ctx, d, b"file-%04d" % i, FileType.REGULAR, 0o644)
    yield VfsOperations(vfs, MountConfig(readdir_cache=True)), d
    await v.stop()


def _records(sink: DirentSink) -> list[tuple[bytes, int]]:
    """(name, off) of each dirent of a reply."""
    buf, pos, out = bytes(sink.buffer), 0, []
    head = p.DIRENTPLUS_SIZE if sink.plus else p.DIRENT_SIZE
    while pos < len(buf):
        _, off, namelen, _ = p.DIRENT.unpack_from(buf, pos + head - p.DIRENT_SIZE)
        out.append((buf[pos + head : pos + head + namelen], off))
        pos += (head + namelen + 7) & ~7
    return out


async def _list(ops: VfsOperations, d: int, size: int, plus: bool) -> list[list[tuple[bytes, int]]]:
    opened = await ops.opendir(RC, d, 0)
    replies, offset = [], 0
    while True:
        sink = DirentSink(size, plus)
        await ops.readdir(RC, d, opened.fh, offset, sink)
        if not sink.count:
            break
        replies.append(_records(sink))
        offset = replies[-1][-1][1]
    await ops.releasedir(RC, d, opened.fh)
    assert not ops._replies_ahead
    return replies


@pytest.mark.parametrize("plus", [True, False])
async def test_replies_packed_ahead_are_the_replies(ops: tuple[VfsOperations, int], plus: bool) -> None:
    o, d = ops
    taken = 0
    real = o._packed_ahead

    async def counted(*args):  # type: ignore[no-untyped-def]
        nonlocal taken
        taken += 1
        return await real(*args)

    o._packed_ahead = counted  # type: ignore[method-assign]
    replies = await _list(o, d, 4096 if plus else 1024, plus)
    names = [n for r in replies for n, _ in r]
    assert names[:2] == [b".", b".."] and names[2:] == [b"file-%04d" % i for i in range(300)]
    offs = [off for r in replies for _, off in r]
    assert offs == list(range(1, len(offs) + 1))  # each dirent resumes right after itself, none skipped
    assert len(replies) > 5 and taken >= len(replies) - 1  # every reply after the first was packed ahead


async def test_a_request_elsewhere_drops_the_reply_ahead(ops: tuple[VfsOperations, int]) -> None:
    o, d = ops
    opened = await o.opendir(RC, d, 0)
    first = DirentSink(4096, True)
    await o.readdir(RC, d, opened.fh, 0, first)
    assert opened.fh in o._replies_ahead
    task = o._replies_ahead[opened.fh][3]
    again = DirentSink(4096, True)  # a rewind: offset 0 again
    await o.readdir(RC, d, opened.fh, 0, again)
    assert _records(again) == _records(first)
    await asyncio.sleep(0)
    assert task.done()
    smaller = DirentSink(1024, True)  # the expected offset but another size: packed anew
    await o.readdir(RC, d, opened.fh, _records(first)[-1][1], smaller)
    assert _records(smaller)[0][1] == _records(first)[-1][1] + 1  # resumes right after the first reply
    await o.releasedir(RC, d, opened.fh)
    assert opened.fh not in o._replies_ahead


async def test_the_end_of_a_listing_is_reported_when_its_reply_is_taken(ops: tuple[VfsOperations, int]) -> None:
    o, d = ops
    ended: list[int] = []
    o._listings.finished = ended.append  # type: ignore[method-assign]
    opened = await o.opendir(RC, d, 0)
    offset, after_each = 0, []
    while True:
        sink = DirentSink(8192, True)
        await o.readdir(RC, d, opened.fh, offset, sink)
        if not sink.count:
            break
        after_each.append(list(ended))
        offset = _records(sink)[-1][1]
    # as without replies ahead: reported once, by the reply that reached the end (the last one)
    assert len(after_each) > 2 and all(e == [] for e in after_each[:-1]) and after_each[-1] == [opened.fh]
    assert set(ended) == {opened.fh}  # the empty request after the end reports it again, a no-op (as before)
    await o.releasedir(RC, d, opened.fh)

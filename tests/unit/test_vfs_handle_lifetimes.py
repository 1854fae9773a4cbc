"""Handle lifetimes in the VFS and the data path: a file handle answers EBADF only after its own release.

A FUSE READ answered EBADF means the handle was not in the VFS's (``VFS._files``) or the data path's
(``DataPath._handles``) table. These pin what keeps that from happening to a handle the kernel still
holds: handle numbers are never reused (one counter per data path; directories and virtual files count
apart, from 2**48), a release removes its own handle only, and an inode's state outlives any handle of it
— also when opens, reads and releases of one inode interleave.
"""

from __future__ import annotations

import asyncio
import errno
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from jfs.adapters.kv.memory import open_memory
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.vfs import VFS, VfsConfig
from jfs.app.virtual_files import VIRTUAL_FILES
from jfs.domain.attrs import ROOT_INODE
from jfs.domain.errors import FSError
from jfs.testing.data_harness import DataVolume

DATA = bytes(range(256)) * 64


@pytest.fixture
async def vfs() -> AsyncIterator[VFS]:
    store = MemoryStore("mem://handles")

    async def opener() -> MemoryStore:
        return store

    v = await DataVolume.create(await open_memory(f"memory://handles-{uuid.uuid4().hex}"), opener)
    yield VFS(v.meta, v.dp, VfsConfig())
    await v.stop()


async def _file(vfs: VFS) -> int:
    ctx = vfs.ctx()
    ino, _, f = await vfs.create(ctx, ROOT_INODE, b"f", 0o644, os.O_WRONLY)
    await vfs.write(ctx, ino, f.fh, 0, DATA)
    await vfs.release(ctx, ino, f.fh)
    return ino


async def test_a_release_removes_its_own_handle_only(vfs: VFS) -> None:
    ctx = vfs.ctx()
    ino = await _file(vfs)
    handles = [(await vfs.open(ctx, ino, flags)).fh for flags in (os.O_RDONLY, os.O_RDWR, os.O_RDONLY)]
    dirs = [await vfs.opendir(ctx, ROOT_INODE) for _ in range(3)]
    inner = [f.ino for f in VIRTUAL_FILES.values()]
    virtual = [(await vfs.open(ctx, i, os.O_RDONLY)).fh for i in inner]
    assert len(set(handles + dirs + virtual)) == len(handles) + len(dirs) + len(virtual)
    await vfs.release(ctx, ino, handles[1])
    await vfs.releasedir(ctx, ROOT_INODE, dirs[0])  # other kinds of handles touch no file handle
    await vfs.release(ctx, inner[0], virtual[0])
    for fh in (handles[0], handles[2]):
        assert bytes(await vfs.read(ctx, ino, fh, 0, len(DATA))) == DATA
    with pytest.raises(FSError) as e:
        await vfs.read(ctx, ino, handles[1], 0, 1)
    assert e.value.errno == errno.EBADF
    again = (await vfs.open(ctx, ino, os.O_RDONLY)).fh
    assert again not in handles  # never reused
    for fh in (handles[0], handles[2], again):
        await vfs.release(ctx, ino, fh)
    for fh in dirs[1:]:
        await vfs.releasedir(ctx, ROOT_INODE, fh)
    for i, fh in zip(inner[1:], virtual[1:], strict=True):
        await vfs.release(ctx, i, fh)
    assert vfs.open_handles == 0


async def test_interleaved_opens_reads_and_releases_of_one_inode_never_answer_ebadf(vfs: VFS) -> None:
    ctx = vfs.ctx()
    ino = await _file(vfs)

    async def one(i: int) -> None:
        fh = (await vfs.open(ctx, ino, os.O_RDWR if i % 3 == 0 else os.O_RDONLY)).fh
        try:
            for off in (0, 4096, 8192):
                assert bytes(await vfs.read(ctx, ino, fh, off, 4096)) == DATA[off:off + 4096]
                await asyncio.sleep(0)
            if i % 3 == 0:
                await vfs.flush(ctx, ino, fh)
        finally:
            await vfs.release(ctx, ino, fh)

    for _ in range(20):  # every open's first await is another's release: the last handle comes and goes
        await asyncio.gather(*(one(i) for i in range(12)))
    assert vfs.open_handles == 0

"""FLUSH and RELEASE answered at once when nothing is to be waited for (ADR 0090), and only then."""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from jfs.adapters.kv.memory import open_memory
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.vfs import VFS, VfsConfig
from jfs.domain.attrs import ROOT_INODE
from jfs.domain.errors import FSError
from jfs.domain.locks import F_RDLCK
from jfs.testing.data_harness import DataVolume

DATA = b"small file " * 1000


@pytest.fixture
async def vfs() -> AsyncIterator[VFS]:
    store = MemoryStore("mem://close-now")

    async def opener() -> MemoryStore:
        return store

    v = await DataVolume.create(await open_memory(f"memory://close-now-{uuid.uuid4().hex}"), opener)
    yield VFS(v.meta, v.dp, VfsConfig())
    await v.stop()


async def _written(vfs: VFS, name: bytes = b"f") -> int:
    ctx = vfs.ctx()
    ino, _, f = await vfs.create(ctx, ROOT_INODE, name, 0o644, os.O_WRONLY)
    await vfs.write(ctx, ino, f.fh, 0, DATA)
    await vfs.flush(ctx, ino, f.fh)
    await vfs.release(ctx, ino, f.fh)
    return ino


def _count(vfs: VFS, op: str) -> int:
    return vfs.stats.meters[op].count


async def test_a_read_handle_is_flushed_and_released_at_once_and_counted(vfs: VFS) -> None:
    ctx = vfs.ctx()
    ino = await _written(vfs)
    fh = (await vfs.open(ctx, ino, os.O_RDONLY)).fh
    assert bytes(await vfs.read(ctx, ino, fh, 0, 1 << 20)) == DATA
    flushes, releases = _count(vfs, "flush"), _count(vfs, "release")
    assert vfs.flush_now(ctx, ino, fh, lock_owner=7)
    assert vfs.release_now(ctx, ino, fh)
    assert (_count(vfs, "flush"), _count(vfs, "release")) == (flushes + 1, releases + 1)
    assert not vfs.meta.is_open(ino) and not vfs.data._handles and ino not in vfs.data._inodes
    with pytest.raises(FSError) as e:
        await vfs.flush(ctx, ino, fh)
    assert e.value.errno == errno.EBADF
    assert not vfs.release_now(ctx, ino, fh)  # gone: the asynchronous call answers


async def test_a_handle_of_an_inode_with_a_writer_waits(vfs: VFS) -> None:
    ctx = vfs.ctx()
    ino = await _written(vfs)
    w = (await vfs.open(ctx, ino, os.O_WRONLY)).fh
    r = (await vfs.open(ctx, ino, os.O_RDONLY)).fh
    await vfs.write(ctx, ino, w, 0, b"changed")
    # The read handle's close must commit the inode's pending writes (close-to-open): not done at once.
    assert not vfs.flush_now(ctx, ino, r) and not vfs.release_now(ctx, ino, r)
    assert not vfs.flush_now(ctx, ino, w) and not vfs.release_now(ctx, ino, w)
    assert vfs.meta.is_open(ino) and len(vfs.data._handles) == 2  # nothing changed
    await vfs.flush(ctx, ino, r)  # commits the writer's bytes: now nothing is pending
    assert vfs.flush_now(ctx, ino, w) and vfs.release_now(ctx, ino, r) and vfs.release_now(ctx, ino, w)
    assert not vfs.meta.is_open(ino) and ino not in vfs.data._inodes
    fh = (await vfs.open(ctx, ino, os.O_RDONLY)).fh
    assert bytes(await vfs.read(ctx, ino, fh, 0, 7)) == b"changed"
    await vfs.release(ctx, ino, fh)


async def test_a_lock_owner_with_a_posix_lock_or_flock_waits_for_its_unlock(vfs: VFS) -> None:
    ctx = vfs.ctx()
    ino = await _written(vfs)
    fh = (await vfs.open(ctx, ino, os.O_RDONLY)).fh
    await vfs.setlk(ctx, ino, 11, F_RDLCK, 0, 10, block=False)
    await vfs.flock(ctx, ino, 12, "R", block=False)
    assert not vfs.flush_now(ctx, ino, fh, lock_owner=11)  # the close must release the POSIX lock
    assert vfs.flush_now(ctx, ino, fh, lock_owner=99)  # another owner holds nothing here
    assert not vfs.release_now(ctx, ino, fh, flock_owner=12)  # the last close must release the flock
    await vfs.flush(ctx, ino, fh, lock_owner=11)
    assert (ino, 11) not in vfs._plock_owners
    await vfs.release(ctx, ino, fh, flock_owner=12)
    assert (ino, 12) not in vfs._flock_owners


async def test_the_last_close_of_an_unlinked_file_waits_for_its_deletion(vfs: VFS) -> None:
    ctx = vfs.ctx()
    ino = await _written(vfs, b"doomed")
    first = (await vfs.open(ctx, ino, os.O_RDONLY)).fh
    second = (await vfs.open(ctx, ino, os.O_RDONLY)).fh
    await vfs.unlink(ctx, ROOT_INODE, b"doomed")
    assert ino in vfs.meta.sustained
    assert vfs.release_now(ctx, ino, first)  # not the last close: nothing to delete yet
    assert not vfs.release_now(ctx, ino, second)  # the last one deletes the file: left to `release`
    assert vfs.meta.is_open(ino) and ino in vfs.meta.sustained
    await vfs.release(ctx, ino, second)
    assert ino not in vfs.meta.sustained and not vfs.meta.is_open(ino)


async def test_a_writer_with_a_failure_to_report_waits(vfs: VFS) -> None:
    ctx = vfs.ctx()
    ino = await _written(vfs)
    fh = (await vfs.open(ctx, ino, os.O_WRONLY)).fh
    await vfs.write(ctx, ino, fh, 0, b"x")
    await vfs.flush(ctx, ino, fh)
    writer = vfs.data._inodes[ino].writer
    assert writer is not None and writer.idle
    writer.error = OSError(errno.EIO, "an upload failed")  # as a failed background commit leaves it
    assert not vfs.flush_now(ctx, ino, fh) and not vfs.release_now(ctx, ino, fh)
    with pytest.raises(OSError) as e:
        await vfs.flush(ctx, ino, fh)  # the close reports it
    assert e.value.errno == errno.EIO
    assert vfs.release_now(ctx, ino, fh)

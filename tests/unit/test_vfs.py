"""The VFS without a kernel (memory engine and store): handles, O_APPEND at the real end, SEEK_DATA/SEEK_HOLE
from the slice map, virtual files and `.control`, close-to-open page-cache keeping, read-only clients,
lock owners released on close, path resolution with the name cache dropped by local changes."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jfs.adapters.kv.memory import open_memory
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.meta.setattr import SetAttr
from jfs.app.vfs import VFS, PathResolver, VfsConfig
from jfs.app.vfs.core import SEEK_DATA, SEEK_HOLE
from jfs.app.vfs.names import NameCache
from jfs.app.virtual_files import CONTROL_INODE, VIRTUAL_FILES
from jfs.domain.attrs import ROOT_INODE, FileType
from jfs.domain.chunks import CHUNK_SIZE
from jfs.domain.errors import FSError
from jfs.domain.locks import F_WRLCK
from jfs.testing.data_harness import DataVolume


@pytest.fixture
async def vol() -> AsyncIterator[DataVolume]:
    store = MemoryStore("mem://vfs")

    async def opener() -> MemoryStore:
        return store

    v = await DataVolume.create(await open_memory(f"memory://vfs-{uuid.uuid4().hex}"), opener)
    yield v
    await v.stop()


@pytest.fixture
def vfs(vol: DataVolume) -> VFS:
    return VFS(vol.meta, vol.dp, VfsConfig())


async def test_handles_append_and_close_to_open(vfs: VFS) -> None:
    ctx = vfs.ctx()
    ino, _, f = await vfs.create(ctx, ROOT_INODE, b"f", 0o644, os.O_WRONLY)
    await vfs.write(ctx, ino, f.fh, 0, b"hello")
    assert (await vfs.getattr(ctx, ino)).length == 5  # this client's uncommitted writes count
    a = await vfs.open(ctx, ino, os.O_WRONLY | os.O_APPEND)
    await vfs.write(ctx, ino, a.fh, 0, b" world")  # offset 0 on an O_APPEND handle: goes to the end
    for fh in (a.fh, f.fh):
        await vfs.flush(ctx, ino, fh)
        await vfs.release(ctx, ino, fh)
    r = await vfs.open(ctx, ino, os.O_RDONLY)
    assert bytes(await vfs.read(ctx, ino, r.fh, 0, 100)) == b"hello world"
    await vfs.release(ctx, ino, r.fh)
    again = await vfs.open(ctx, ino, os.O_RDONLY)
    assert again.keep_cache  # unchanged since the last open
    await vfs.release(ctx, ino, again.fh)
    await vfs.setattr(ctx, ino, SetAttr(size=3))
    changed = await vfs.open(ctx, ino, os.O_RDONLY)
    assert not changed.keep_cache
    with pytest.raises(FSError) as e:
        await vfs.read(ctx, ino, 987654, 0, 1)
    assert e.value.errno == errno.EBADF


async def test_seek_data_and_hole_from_the_slice_map(vfs: VFS) -> None:
    ctx = vfs.ctx()
    ino, _, f = await vfs.create(ctx, ROOT_INODE, b"sparse", 0o644, os.O_RDWR)
    await vfs.write(ctx, ino, f.fh, 1 << 20, b"x" * 4096)
    await vfs.write(ctx, ino, f.fh, CHUNK_SIZE + 100, b"y")  # second chunk
    assert await vfs.lseek(ctx, ino, 0, SEEK_DATA) == 1 << 20
    assert await vfs.lseek(ctx, ino, 0, SEEK_HOLE) == 0
    assert await vfs.lseek(ctx, ino, 1 << 20, SEEK_HOLE) == (1 << 20) + 4096
    assert await vfs.lseek(ctx, ino, (1 << 20) + 4096, SEEK_DATA) == CHUNK_SIZE + 100
    assert await vfs.lseek(ctx, ino, CHUNK_SIZE + 100, SEEK_HOLE) == CHUNK_SIZE + 101
    with pytest.raises(FSError) as e:
        await vfs.lseek(ctx, ino, CHUNK_SIZE + 101, SEEK_DATA)
    assert e.value.errno == errno.ENXIO
    await vfs.release(ctx, ino, f.fh)


async def test_virtual_files_and_control_requests(vfs: VFS) -> None:
    ctx = vfs.ctx()
    entries = [e async for e in _listing(vfs, ROOT_INODE)]
    assert {b".stats", b".config", b".accesslog", b".trash"} <= {e.name for e in entries}
    ino, _ = await vfs.lookup(ctx, ROOT_INODE, b".stats")
    f = await vfs.open(ctx, ino, os.O_RDONLY)
    assert f.direct_io and b"jfs_uptime" in bytes(await vfs.read(ctx, ino, f.fh, 0, 1 << 16))
    await vfs.release(ctx, ino, f.fh)
    d, _ = await vfs.mkdir(ctx, ROOT_INODE, b"d", 0o755)
    c = await vfs.open(ctx, CONTROL_INODE, os.O_RDWR)
    await vfs.write(ctx, CONTROL_INODE, c.fh, 0, json.dumps({"op": "summary", "inode": d}).encode())
    doc = json.loads(bytes(await vfs.read(ctx, CONTROL_INODE, c.fh, 0, 1 << 16)))
    assert doc["dirs"] == 1 and doc["inode"] == d
    await vfs.release(ctx, CONTROL_INODE, c.fh)
    assert VIRTUAL_FILES[b".config"].ino != CONTROL_INODE


async def _listing(vfs: VFS, ino: int) -> AsyncIterator:  # type: ignore[type-arg]
    ctx = vfs.ctx()
    fh = await vfs.opendir(ctx, ino)
    try:
        async for e in vfs.readdir(ctx, ino, fh, 0, plus=True):
            yield e
    finally:
        await vfs.releasedir(ctx, ino, fh)


async def test_listing_resumes_at_an_offset(vfs: VFS) -> None:
    ctx = vfs.ctx()
    d, _ = await vfs.mkdir(ctx, ROOT_INODE, b"big", 0o755)
    for i in range(50):
        await vfs.mknod(ctx, d, b"f%03d" % i, FileType.REGULAR, 0o644)
    fh = await vfs.opendir(ctx, d)
    first = []
    async for e in vfs.readdir(ctx, d, fh, 0):
        first.append(e)
        if len(first) == 10:
            break
    rest = [e async for e in vfs.readdir(ctx, d, fh, first[-1].offset)]
    names = [e.name for e in first + rest]
    assert names == [b".", b".."] + [b"f%03d" % i for i in range(50)]
    await vfs.releasedir(ctx, d, fh)


async def test_listing_of_several_pages_reads_the_next_page_ahead(vfs: VFS, monkeypatch: pytest.MonkeyPatch) -> None:
    """A listing longer than a page is complete and in order with the next page read ahead (plus
    attributes on every stored entry); resuming at an offset continues it; a handle released mid-listing
    leaves no read-ahead running."""
    from jfs.app.vfs import core

    monkeypatch.setattr(core, "DIR_PAGE", 7)
    ctx = vfs.ctx()
    d, _ = await vfs.mkdir(ctx, ROOT_INODE, b"pages", 0o755)
    for i in range(30):
        await vfs.mknod(ctx, d, b"f%03d" % i, FileType.REGULAR, 0o644)
    entries = [e async for e in _listing(vfs, d)]
    assert [e.name for e in entries] == [b".", b".."] + [b"f%03d" % i for i in range(30)]
    assert all(e.attr is not None and e.attr.typ is FileType.REGULAR for e in entries[2:])
    assert [e.offset for e in entries] == list(range(1, 33))
    fh = await vfs.opendir(ctx, d)
    first = []
    async for e in vfs.readdir(ctx, d, fh, 0, plus=True):
        first.append(e)
        if len(first) == 12:
            break
    ahead = vfs._dirs[fh].ahead
    assert ahead is not None  # the page after the ones read so far is on its way
    rest = [e.name async for e in vfs.readdir(ctx, d, fh, first[-1].offset, plus=True)]
    assert [e.name for e in first] + rest == [e.name for e in entries]
    fh2 = await vfs.opendir(ctx, d)
    async for e in vfs.readdir(ctx, d, fh2, 0, plus=True):
        if e.offset == 10:
            break
    pending = vfs._dirs[fh2].ahead
    assert pending is not None
    await vfs.releasedir(ctx, d, fh2)
    await asyncio.sleep(0)
    assert pending.done()
    await vfs.releasedir(ctx, d, fh)


async def test_read_only_client_refuses_every_change(vol: DataVolume) -> None:
    vfs = VFS(vol.meta, vol.dp, VfsConfig(read_only=True))
    ctx = vfs.ctx()
    for call in (vfs.mkdir(ctx, ROOT_INODE, b"x", 0o755), vfs.create(ctx, ROOT_INODE, b"y", 0o644, os.O_WRONLY),
                 vfs.setattr(ctx, ROOT_INODE, SetAttr(mode=0o700)), vfs.unlink(ctx, ROOT_INODE, b"z")):
        with pytest.raises(FSError) as e:
            await call
        assert e.value.errno == errno.EROFS


async def test_posix_locks_of_an_owner_go_with_its_close(vfs: VFS) -> None:
    ctx = vfs.ctx()
    ino, _, f = await vfs.create(ctx, ROOT_INODE, b"locked", 0o644, os.O_RDWR)
    await vfs.setlk(ctx, ino, 1, F_WRLCK, 0, 99, block=False)
    with pytest.raises(FSError) as e:
        await vfs.setlk(ctx, ino, 2, F_WRLCK, 50, 60, block=False)
    assert e.value.errno == errno.EAGAIN
    await vfs.flush(ctx, ino, f.fh, lock_owner=1)
    await vfs.setlk(ctx, ino, 2, F_WRLCK, 50, 60, block=False)
    await vfs.release(ctx, ino, f.fh)


async def test_paths_symlinks_and_the_name_cache(vfs: VFS) -> None:
    vfs.names = NameCache(60, 60)  # long enough that only invalidation can explain a change
    ctx = vfs.ctx()
    paths = PathResolver(vfs)
    a, _ = await vfs.mkdir(ctx, ROOT_INODE, b"a", 0o755)
    await vfs.symlink(ctx, a, b"up", b"..")
    await vfs.symlink(ctx, a, b"abs", b"/a")
    await vfs.symlink(ctx, a, b"loop", b"loop")
    ino, _, f = await vfs.create(ctx, a, b"f", 0o644, os.O_WRONLY)
    await vfs.release(ctx, ino, f.fh)
    assert (await paths.resolve(ctx, "/a/up/a/abs/f"))[0] == ino
    assert (await paths.resolve(ctx, "a//./f/"))[0] == ino
    with pytest.raises(FSError) as e:
        await paths.resolve(ctx, "/a/loop")
    assert e.value.errno == errno.ELOOP
    with pytest.raises(FSError) as e:
        await paths.resolve(ctx, "/a/f/x")
    assert e.value.errno == errno.ENOTDIR
    await vfs.rename(ctx, a, b"f", ROOT_INODE, b"g")
    with pytest.raises(FSError) as e:
        await paths.resolve(ctx, "/a/f")  # the cached entry went with the rename
    assert e.value.errno == errno.ENOENT
    await vfs.setattr(ctx, ino, SetAttr(mode=0o600))
    assert (await paths.resolve(ctx, "/g"))[1].mode == 0o600
    await vfs.unlink(ctx, ROOT_INODE, b"g")
    with pytest.raises(FSError):
        await paths.resolve(ctx, "/g")
    assert await paths.resolve_parent(ctx, "/a/new") == (a, b"new")


async def test_cached_resolution_reads_only_fresh_entries(vfs: VFS) -> None:
    paths = PathResolver(vfs)
    vfs.names = None
    assert paths.cached("/") is None  # no cache: always the loop's way
    vfs.names = NameCache(60, 60)
    ctx = vfs.ctx()
    a, _ = await vfs.mkdir(ctx, ROOT_INODE, b"a", 0o755)
    ino, _, f = await vfs.create(ctx, a, b"f", 0o644, os.O_WRONLY)
    await vfs.release(ctx, ino, f.fh)
    await vfs.symlink(ctx, a, b"l", b"f")
    assert paths.cached("/a/f") is None  # never resolved yet
    assert (await paths.resolve(ctx, "/a/f"))[0] == ino
    hit = paths.cached("a//./f")
    assert hit is not None and hit[0] == ino and hit[1].typ is FileType.REGULAR
    await paths.resolve(ctx, "/a/l", follow=False)
    assert paths.cached("/a/l") is None  # a link to follow: the loop's way
    hit = paths.cached("/a/l", follow=False)
    assert hit is not None and hit[1].typ is FileType.SYMLINK
    assert paths.cached("/a/../a/f") is None and paths.cached("/a/f/x") is None
    await vfs.rename(ctx, a, b"f", ROOT_INODE, b"g")
    assert paths.cached("/a/f") is None  # the entry went with the rename
    expiring = NameCache(0.05, 0.05)
    vfs.names = expiring
    await paths.resolve(ctx, "/g")
    assert paths.cached("/g") is not None
    await asyncio.sleep(0.1)
    assert paths.cached("/g") is None and len(expiring._entries) > 0  # expired, and nothing dropped by a peek


async def test_a_parent_answered_from_the_name_cache_is_what_the_walk_answers(
    vfs: VFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`resolve_parent` skips the walk only where the cache holds every step as a directory (ADR 0051)."""
    vfs.names = NameCache(60, 60)
    ctx = vfs.ctx()
    paths = PathResolver(vfs)
    a, _ = await vfs.mkdir(ctx, ROOT_INODE, b"a", 0o755)
    b, _ = await vfs.mkdir(ctx, a, b"b", 0o755)
    await vfs.symlink(ctx, a, b"lb", b"b")
    ino, _, f = await vfs.create(ctx, b, b"f", 0o644, os.O_WRONLY)
    await vfs.release(ctx, ino, f.fh)
    walks = [0]
    real_walk = paths._walk

    async def counted(*a: Any, **kw: Any) -> Any:
        walks[0] += 1
        return await real_walk(*a, **kw)

    monkeypatch.setattr(paths, "_walk", counted)
    assert await paths.resolve_parent(ctx, "/a/b/new") == (b, b"new")  # not cached yet: walked
    assert walks[0] == 1
    assert await paths.resolve_parent(ctx, "a//./b/new") == (b, b"new")  # cached: no walk
    assert await paths.resolve_parent(ctx, "/top") == (ROOT_INODE, b"top")
    assert walks[0] == 1
    assert await paths.resolve_parent(ctx, "/a/lb/new") == (b, b"new")  # a symlink on the way: walked
    assert await paths.resolve_parent(ctx, "/a/b/../b/new") == (b, b"new")  # '..': walked
    assert walks[0] == 3
    with pytest.raises(FSError) as e:
        await paths.resolve_parent(ctx, "/a/b/f/new")  # a file on the way: the walk says ENOTDIR
    assert e.value.errno == errno.ENOTDIR
    await vfs.rename(ctx, a, b"b", ROOT_INODE, b"c")
    with pytest.raises(FSError) as e:
        await paths.resolve_parent(ctx, "/a/b/new")  # the entry went with the rename: walked, ENOENT
    assert e.value.errno == errno.ENOENT

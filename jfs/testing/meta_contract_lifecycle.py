"""The metadata-engine contract, part two: the trash, sessions, flock and POSIX locks, and concurrent
operations from two clients of one engine. Collected through `jfs.testing.meta_contract` (see there)."""

from __future__ import annotations

import asyncio
import errno
import os

import pytest

from jfs.app.meta import Meta
from jfs.app.meta.setattr import SetAttr
from jfs.app.meta.trash import hour_name
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, FileType
from jfs.domain.locks import F_RDLCK, F_UNLCK, F_WRLCK
from jfs.ports.kv import KV, Tx
from jfs.testing.meta_contract_support import counter_value, errno_of, fresh_meta, names_in

# ------------------------------------------------------------------------------------------- trash


async def test_trash_keeps_deleted_files_and_posix_nlink(trash_meta: Meta) -> None:
    m = trash_meta
    f, _ = await m.create(ROOT_INODE, b"victim", 0o644)
    await m.close_file(f)
    g, _ = await m.create(ROOT_INODE, b"linked", 0o644)
    await m.close_file(g)
    await m.link(g, ROOT_INODE, b"other")
    await m.unlink(ROOT_INODE, b"linked")
    assert (await m.getattr(g)).nlink == 1  # as on a local file system
    await m.unlink(ROOT_INODE, b"victim")
    hour_ino, hour_attr = await m.lookup(TRASH_INODE, hour_name(__import__("time").time_ns()))
    assert hour_attr.typ is FileType.DIRECTORY
    assert [e.name async for e in m.readdir(hour_ino)] == [b"1-%d-victim" % f]
    attr = await m.getattr(f)
    assert attr.parent == hour_ino and attr.nlink == 1
    with pytest.raises(PermissionError):
        await m.truncate(f, 0)
    t, _ = await m.create(ROOT_INODE, b"target", 0o644)
    await m.close_file(t)
    await m.rename(ROOT_INODE, b"other", ROOT_INODE, b"target")
    assert (await m.getattr(t)).parent == hour_ino
    assert sorted(await names_in(m, ROOT_INODE)) == [b"target"]


async def test_file_deleted_into_the_trash_stays_writable_through_handles_opened_before(trash_meta: Meta) -> None:
    m = trash_meta
    f, _ = await m.create(ROOT_INODE, b"tmp", 0o644)  # open (create) before the unlink
    g, _ = await m.create(ROOT_INODE, b"other", 0o644)
    await m.close_file(g)
    await m.unlink(ROOT_INODE, b"tmp")
    assert keys_in_trash(await m.getattr(f))
    sid = await m.next_slice_id()
    attr, _ = await m.write_slice(f, 0, 0, sid, 10, 0, 10)  # slice commit after the unlink
    assert attr.length == 10
    assert await m.read_chunk(f, 0)
    assert (await m.truncate(f, 4)).length == 4  # ftruncate
    assert (await m.setattr(f, SetAttr(mode=0o600))).mode == 0o600  # fchmod
    await m.fallocate(f, 0, 0, 8192)
    await m.copy_file_range(g, 0, f, 0, 0)
    await m.close_file(f)
    # After the last close the trash is read-only again, and opening a trash file to write is refused.
    with pytest.raises(PermissionError):
        await m.truncate(f, 0)
    with pytest.raises(PermissionError):
        await m.write_slice(f, 0, 0, await m.next_slice_id(), 1, 0, 1)
    with pytest.raises(PermissionError):
        await m.open(f, os.O_WRONLY)
    # A handle opened inside the trash (read-only) does not make the file writable.
    await m.open(f, os.O_RDONLY)
    with pytest.raises(PermissionError):
        await m.setattr(f, SetAttr(mode=0o644))
    await m.close_file(f, held=False)
    assert (await m.getattr(f)).length == 8192


def keys_in_trash(attr: object) -> bool:
    return getattr(attr, "parent", 0) >= TRASH_INODE

async def test_trash_keeps_removed_directories(trash_meta: Meta) -> None:
    m = trash_meta
    d, _ = await m.mkdir(ROOT_INODE, b"d", 0o750)
    sub, _ = await m.mkdir(d, b"sub", 0o700)
    f, _ = await m.create(sub, b"f", 0o644)
    await m.close_file(f)
    used = (await counter_value(m, keys.USED_SPACE), await counter_value(m, keys.TOTAL_INODES))
    with pytest.raises(OSError) as e:
        await m.rmdir(d, b"sub")
    assert errno_of(e) == errno.ENOTEMPTY
    await m.unlink(sub, b"f")  # what rm -rf does: the files, then the emptied directories
    await m.rmdir(d, b"sub")
    await m.rmdir(ROOT_INODE, b"d")
    hour_ino, hour_attr = await m.lookup(TRASH_INODE, hour_name(__import__("time").time_ns()))
    assert sorted(await names_in(m, hour_ino)) == sorted([b"1-%d-d" % d, b"%d-%d-sub" % (d, sub), b"%d-%d-f" % (sub, f)])
    assert hour_attr.nlink == 4 and (await m.getattr(ROOT_INODE)).nlink == 2
    for ino, mode in ((d, 0o750), (sub, 0o700)):
        attr = await m.getattr(ino)
        assert (attr.typ, attr.parent, attr.nlink, attr.mode & 0o7777) == (FileType.DIRECTORY, hour_ino, 2, mode)
    # charged until purged; the new hour directory is charged too (4 KiB, one inode), as JuiceFS charges it,
    # and the trash root's nlink stays 2 (JuiceFS never counts hour directories there)
    assert (await counter_value(m, keys.USED_SPACE), await counter_value(m, keys.TOTAL_INODES)) == \
        (used[0] + 4096, used[1] + 1)
    assert (await m.getattr(TRASH_INODE)).nlink == 2
    with pytest.raises(PermissionError):
        await m.mkdir(hour_ino, b"x", 0o755)
    await m.rmdir(hour_ino, b"1-%d-d" % d)  # removed from the trash: deleted
    with pytest.raises(FileNotFoundError):
        await m.getattr(d)
    assert (await m.getattr(hour_ino)).nlink == 3
    assert await counter_value(m, keys.TOTAL_INODES) == used[1] - 1 + 1


async def test_trash_root_exists_before_anything_is_trashed(kv: KV) -> None:
    """A volume formatted by JuiceFS has no record of the trash root until something is trashed; `.trash`
    is listed in the root anyway, so it must look up, stat and list as an empty directory."""
    m = await fresh_meta(kv, trash_days=1)
    try:
        async def drop(tx: Tx) -> None:
            tx.delete(keys.attr(TRASH_INODE))

        await kv.txn(drop)
        ino, attr = await m.lookup(ROOT_INODE, b".trash")
        assert ino == TRASH_INODE and attr.typ is FileType.DIRECTORY
        assert (await m.getattr(TRASH_INODE)).typ is FileType.DIRECTORY
        assert [e.name async for e in m.readdir(TRASH_INODE)] == []
    finally:
        await m.close()


# ------------------------------------------------------------------------------------------- sessions, locks


async def test_sessions_register_and_clean_stale(kv: KV) -> None:
    a = await fresh_meta(kv, trash_days=0)
    b = await Meta.load(kv)
    await b.start_session(background=False)
    try:
        f, _ = await b.create(ROOT_INODE, b"f", 0o644)
        await b.flock(f, owner=7, ltype="W")
        await b.setlk(f, owner=7, ltype=F_WRLCK, start=0, end=99, pid=42)
        await b.unlink(ROOT_INODE, b"f")  # open in b: sustained
        sids = {s["Sid"] for s in await a.list_sessions()}
        assert sids == {a.sid, b.sid}
        with pytest.raises(BlockingIOError):
            await a.flock(f, owner=1, ltype="R")
        info = await a.getlk(f, owner=1, ltype=F_RDLCK, start=50, end=60)
        assert (info.type, info.pid) == (F_WRLCK, 42)
        stale = await a.clean_stale_sessions(now=2**40)  # everyone else looks expired
        assert stale == [b.sid]
        assert {s["Sid"] for s in await a.list_sessions()} == {a.sid}
        await a.drain()
        with pytest.raises(FileNotFoundError):
            await a.getattr(f)
    finally:
        b.sid = 0
        await b.close()
        await a.close()


async def test_flock_rules(kv: KV) -> None:
    a = await fresh_meta(kv, trash_days=0)
    b = await Meta.load(kv)
    await b.start_session(background=False)
    try:
        f, _ = await a.create(ROOT_INODE, b"f", 0o644)
        await a.flock(f, 1, "R")
        await b.flock(f, 1, "R")
        with pytest.raises(BlockingIOError):
            await b.flock(f, 2, "W")
        waiter = asyncio.create_task(b.flock(f, 2, "W", block=True))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await b.flock(f, 1, "U")
        await a.flock(f, 1, "U")
        await asyncio.wait_for(waiter, 5)
        with pytest.raises(BlockingIOError):
            await a.flock(f, 1, "R")
        blocked = asyncio.create_task(a.flock(f, 1, "W", block=True))
        await asyncio.sleep(0.05)
        blocked.cancel()  # an interrupted wait gives up cleanly
        with pytest.raises(asyncio.CancelledError):
            await blocked
    finally:
        await b.close()
        await a.close()


async def test_posix_locks_split_and_conflict(kv: KV) -> None:
    a = await fresh_meta(kv, trash_days=0)
    b = await Meta.load(kv)
    await b.start_session(background=False)
    try:
        f, _ = await a.create(ROOT_INODE, b"f", 0o644)
        await a.setlk(f, 1, F_WRLCK, 0, 99, pid=10)
        await a.setlk(f, 1, F_UNLCK, 40, 59, pid=10)
        await b.setlk(f, 1, F_WRLCK, 40, 59, pid=20)
        with pytest.raises(BlockingIOError):
            await b.setlk(f, 1, F_RDLCK, 30, 45, pid=20)
        info = await b.getlk(f, 1, F_RDLCK, 60, 200)
        assert (info.type, info.start, info.end, info.pid) == (F_WRLCK, 60, 99, 10)
        waiter = asyncio.create_task(b.setlk(f, 1, F_WRLCK, 0, 10, pid=20, block=True))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await a.setlk(f, 1, F_UNLCK, 0, 2**64 - 1, pid=10)
        await asyncio.wait_for(waiter, 5)
        assert (await a.getlk(f, 1, F_WRLCK, 0, 100)).pid == 20
    finally:
        await b.close()
        await a.close()


# ------------------------------------------------------------------------------------------- concurrency


async def test_concurrent_creates_in_one_directory(kv: KV) -> None:
    a = await fresh_meta(kv, trash_days=0)
    b = await Meta.load(kv)
    await b.start_session(background=False)
    try:
        d, _ = await a.mkdir(ROOT_INODE, b"d", 0o755)

        async def make(m: Meta, prefix: bytes) -> None:
            for i in range(25):
                ino, _ = await m.create(d, prefix + b"%d" % i, 0o644)
                await m.close_file(ino)

        await asyncio.gather(*(make(m, p) for m, p in ((a, b"a"), (b, b"b"), (a, b"c"), (b, b"e"))))
        names = await names_in(a, d)
        assert len(names) == 100 and len(set(names)) == 100
        inos = {(await a.lookup(d, n))[0] for n in names}
        assert len(inos) == 100
        assert (await a.statfs()).used_inodes == 101
    finally:
        await b.close()
        await a.close()


async def test_concurrent_renames_of_one_file_leave_exactly_one_name(kv: KV) -> None:
    a = await fresh_meta(kv, trash_days=0)
    try:
        f, _ = await a.create(ROOT_INODE, b"f", 0o644)
        results = await asyncio.gather(
            *(a.rename(ROOT_INODE, b"f", ROOT_INODE, b"g%d" % i) for i in range(10)), return_exceptions=True
        )
        assert sum(1 for r in results if not isinstance(r, BaseException)) == 1
        assert all(isinstance(r, FileNotFoundError) for r in results if isinstance(r, BaseException))
        assert len(await names_in(a, ROOT_INODE)) == 1
        assert (await a.getattr(f)).nlink == 1
    finally:
        await a.close()

"""What this client's own changes of a directory's entries left in its attributes (`OwnDirAttrs`, ADR 0037):
on every engine, after each create, mkdir, unlink, rmdir and rename the recorded attributes equal the
stored ones; a transaction of another kind on the directory forgets them; concurrent changes of one
directory leave the last one's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from jfs.app.meta import Meta
from jfs.app.meta.engine import format_meta
from jfs.app.meta.own_dirs import OwnDirAttrs
from jfs.app.meta.setattr import SetAttr
from jfs.domain.attrs import ROOT_INODE, Attr, FileType
from jfs.domain.settings import Settings
from jfs.ports.kv import KV


@pytest.fixture(params=[0, 1], ids=["trash-off", "trash-on"])
async def meta(kv: KV, request: pytest.FixtureRequest) -> AsyncIterator[Meta]:
    await format_meta(kv, Settings(name="owndirs", trash_days=request.param))
    m = await Meta.load(kv)
    await m.start_session(background=False)
    try:
        yield m
    finally:
        await m.close()


def _same(a: Attr, b: Attr) -> bool:
    return (a.mode, a.nlink, a.mtime_ns, a.ctime_ns, a.uid, a.gid, a.length) == (
        b.mode, b.nlink, b.mtime_ns, b.ctime_ns, b.uid, b.gid, b.length)


async def _check(m: Meta, d: int) -> None:
    hit = m.own_dirs.get(d, 60)
    assert hit is not None
    assert _same(hit[0], await m.getattr(d))


async def test_each_change_of_entries_records_what_the_directory_holds(meta: Meta) -> None:
    m = meta
    d, _ = await m.mkdir(ROOT_INODE, b"d", 0o755)
    await _check(m, ROOT_INODE)
    e, _ = await m.mkdir(d, b"e", 0o700)
    await _check(m, d)
    await m.mknod(d, b"f", FileType.REGULAR, 0o644)
    await _check(m, d)
    await m.rename(d, b"f", e, b"g")
    await _check(m, d)
    await _check(m, e)
    await m.rename(e, b"g", e, b"h")
    await _check(m, e)
    await m.unlink(e, b"h")
    await _check(m, e)
    await m.rmdir(d, b"e")
    await _check(m, d)
    assert (await m.getattr(d)).nlink == 2


async def test_another_transaction_on_the_directory_forgets_it(meta: Meta) -> None:
    m = meta
    d, _ = await m.mkdir(ROOT_INODE, b"d", 0o755)
    await m.mknod(d, b"f", FileType.REGULAR, 0o644)
    assert m.own_dirs.get(d, 60) is not None
    await m.setattr(d, SetAttr(mode=0o700))
    assert m.own_dirs.get(d, 60) is None
    await m.mknod(d, b"g", FileType.REGULAR, 0o644)
    hit = m.own_dirs.get(d, 60)
    assert hit is not None and hit[0].mode & 0o7777 == 0o700


async def test_concurrent_changes_leave_the_last_ones_record(meta: Meta) -> None:
    m = meta
    d, _ = await m.mkdir(ROOT_INODE, b"d", 0o755)
    await asyncio.gather(*(m.mkdir(d, b"s%d" % i, 0o755) for i in range(8)))
    hit = m.own_dirs.get(d, 60)
    if hit is not None:  # recorded only by a change no other one overtook
        assert _same(hit[0], await m.getattr(d))
    assert (await m.getattr(d)).nlink == 10


def test_expired_overtaken_and_forgotten_records_are_not_answered() -> None:
    own = OwnDirAttrs()
    a = Attr(typ=FileType.DIRECTORY, mode=0o755, nlink=2)
    first = own.begin(5)
    second = own.begin(5)
    own.wrote(5, first, a)  # overtaken by `second`, which began later and so commits later
    assert own.get(5, 60) is None
    own.wrote(5, second, a)
    assert own.get(5, 60) is not None
    assert own.get(5, 0) is None  # too old for a reader that trusts nothing older than 0 s
    third = own.begin(5)
    own.forget(5)
    own.wrote(5, third, a)
    assert own.get(5, 60) is None

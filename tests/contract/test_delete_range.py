"""`RangeDeletingTx.delete_range` on the engines that offer it (Redis, etcd): what the commit deletes and keeps;
and, on every engine, that removing an inode (through it or by scanning) leaves no record behind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from jfs.app.meta import Meta
from jfs.app.meta.engine import format_meta
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, FileType
from jfs.domain.settings import Settings
from jfs.ports.kv import KV, EngineError, Tx

Connect = Callable[[], Awaitable[KV]]
STORED = [b"r/a", b"r/b", b"r/b/c", b"r0", b"q", b"s"]
RANGING = pytest.mark.jfs_engines("redis", "etcd", "etcd3")
"""The built-in engines whose transactions offer `delete_range`."""


async def _ranging(kv: KV) -> None:
    async def probe(tx: Tx) -> bool:
        return hasattr(tx, "delete_range")

    if not await kv.read(probe):
        pytest.skip("the engine deletes ranges by scanning them")


async def _all(kv: KV) -> list[bytes]:
    return [k for k, _ in await kv.read(lambda tx: tx.scan(b"\x00", b"\xff"))]


async def _fill(kv: KV) -> None:
    async def body(tx: Tx) -> None:
        for key in STORED:
            tx.put(key, key)

    await kv.txn(body)


@RANGING
async def test_commit_deletes_the_range_and_nothing_else(kv: KV) -> None:
    await _ranging(kv)
    await _fill(kv)

    async def body(tx: Tx) -> None:
        assert await tx.get(b"q") == b"q"  # a read set to validate
        tx.put(b"r/new", b"buffered before")  # written earlier in the body: goes with the range
        tx.put(b"t", b"outside")
        tx.delete_range(b"r/", b"r0")  # type: ignore[attr-defined]

    await kv.txn(body)
    assert await _all(kv) == [b"q", b"r0", b"s", b"t"]
    assert await kv.read(lambda tx: tx.get_many([b"r/a", b"r/b/c", b"r/new"])) == [None, None, None]


@RANGING
async def test_range_alone_commits_and_empty_range_is_fine(kv: KV) -> None:
    await _ranging(kv)
    await _fill(kv)

    async def body(tx: Tx) -> None:
        tx.delete_range(b"r/b", b"r/c")  # type: ignore[attr-defined]
        tx.delete_range(b"x", b"y")  # type: ignore[attr-defined]
        tx.delete_range(b"z", b"z")  # type: ignore[attr-defined]

    await kv.txn(body)
    assert await _all(kv) == [b"q", b"r/a", b"r0", b"s"]


@RANGING
async def test_keys_written_meanwhile_by_another_client_go_too(kv: KV, kv_connect: Connect) -> None:
    await _ranging(kv)
    await _fill(kv)
    other = await kv_connect()  # same database, another connection
    runs = 0

    async def body(tx: Tx) -> None:
        nonlocal runs
        runs += 1
        await tx.get(b"q")
        if runs == 1:
            await other.txn(lambda o: _put(o, b"r/late"))
        tx.delete_range(b"r/", b"r0")  # type: ignore[attr-defined]

    await kv.txn(body)
    assert runs == 1  # a blind range delete: no conflict
    assert await _all(kv) == [b"q", b"r0", b"s"]


async def _put(tx: Tx, key: bytes) -> None:
    tx.put(key, b"v")


@RANGING
async def test_reading_or_writing_the_range_afterwards_is_refused(kv: KV) -> None:
    await _ranging(kv)
    await _fill(kv)

    async def read_after(tx: Tx) -> None:
        await tx.get(b"q")
        tx.delete_range(b"r/", b"r0")  # type: ignore[attr-defined]
        await tx.scan(b"r", b"s")

    async def write_after(tx: Tx) -> None:
        tx.delete_range(b"r/", b"r0")  # type: ignore[attr-defined]
        tx.put(b"r/x", b"v")

    for body in (read_after, write_after):
        with pytest.raises(EngineError):
            await kv.txn(body)
    assert await _all(kv) == sorted(STORED)


async def test_unlinked_symlink_and_file_with_xattrs_leave_no_records(kv: KV) -> None:
    await format_meta(kv, Settings(name="ranges", trash_days=0))
    m = await Meta.load(kv)
    await m.start_session(background=False)
    try:
        ino, _ = await m.mknod(ROOT_INODE, b"f", FileType.REGULAR, 0o644)
        await m.setxattr(ino, b"user.a", b"1")
        await m.setxattr(ino, b"user.b", b"2")
        link, _ = await m.symlink(ROOT_INODE, b"l", b"target")
        d, _ = await m.mkdir(ROOT_INODE, b"d", 0o755)
        await m.setxattr(d, b"user.c", b"3")
        await m.unlink(ROOT_INODE, b"f")
        await m.unlink(ROOT_INODE, b"l")
        await m.rmdir(ROOT_INODE, b"d")
        for gone in (ino, link, d):
            prefix = keys.inode_prefix(gone)
            assert await kv.read(lambda tx, p=prefix: tx.scan(p, keys.prefix_end(p))) == []
    finally:
        await m.close()

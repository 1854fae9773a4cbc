"""`RangeReadingKV` on Redis (`jfs.adapters.kv.redis_batch`) and the dump that uses it: the batched reads
return what per-range scans return, and a dump through them is byte for byte the dump of the transaction
path, also for a node with more keys than one batch holds."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.app.errors import OpsError
from jfs.app.meta.engine import Meta, format_meta
from jfs.app.ops import dump, dump_page
from jfs.app.ops.dump_workers import WorkerSpec
from jfs.domain.attrs import ROOT_INODE, FileType
from jfs.domain.settings import Settings
from jfs.ports.kv import KV, RangeReadingKV, Tx
from jfs.testing.engines import wipe_engine

REDIS_DB = 14


@pytest.fixture
async def redis_kv(redis_server_url: str) -> AsyncIterator[KV]:
    url = f"{redis_server_url}/{REDIS_DB}"
    await wipe_engine(url)
    kv = await open_kv(url)
    try:
        yield kv
    finally:
        await kv.close()
        await wipe_engine(url)


class _TxOnly:
    """The same engine without `read_ranges`: the dump's transaction path."""

    def __init__(self, kv: KV) -> None:
        self._kv = kv
        self.url = kv.url

    def read(self, body: Callable[[Tx], Awaitable[Any]], **kw: Any) -> Awaitable[Any]:
        return self._kv.read(body, **kw)

    def txn(self, body: Callable[[Tx], Awaitable[Any]], **kw: Any) -> Awaitable[Any]:
        return self._kv.txn(body, **kw)


async def test_read_ranges_matches_scans(redis_kv: KV) -> None:
    assert isinstance(redis_kv, RangeReadingKV)

    async def fill(tx: Tx) -> None:
        for p in (b"a", b"b", b"c"):
            for i in range(5):
                tx.put(p + bytes([i]), p * (i + 1))

    await redis_kv.txn(fill)
    ranges = [(b"a", b"b"), (b"b\x02", b"c"), (b"d", b"e"), (b"c", b"c\x03"), (b"a", b"z")]

    async def scans(tx: Tx) -> list[list[tuple[bytes, bytes]]]:
        return [await tx.scan(b, e, limit=4) for b, e in ranges]

    assert await redis_kv.read_ranges(ranges, 4) == await redis_kv.read(scans)
    assert await redis_kv.read_ranges([], 4) == []


async def test_dump_through_range_batches_equals_the_transaction_path(redis_kv: KV,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    await format_meta(redis_kv, Settings(name="rbatch", trash_days=0))
    meta = await Meta.load(redis_kv)
    await meta.start_session(background=False)
    try:
        d, _ = await meta.mkdir(ROOT_INODE, b"d", 0o755)
        for i in range(40):
            ino, _ = await meta.mknod(d, b"f%02d" % i, FileType.REGULAR, 0o644)
            for x in range(i % 7):  # up to 6 xattrs: more keys than NODE_BATCH below
                await meta.setxattr(ino, b"user.x%d" % x, b"v%d" % i)
        await meta.symlink(d, b"link", b"f01")
        await meta.setxattr(d, b"user.dir", b"yes")
    finally:
        await meta.close()
    monkeypatch.setattr(dump_page, "NODE_BATCH", 4)
    monkeypatch.setattr(dump_page, "RANGE_GROUP", 7)
    batched, plain = io.BytesIO(), io.BytesIO()
    a = await dump.dump_meta(redis_kv, batched.write)
    b = await dump.dump_meta(_TxOnly(redis_kv), plain.write)  # type: ignore[arg-type]
    assert a.entries == b.entries == 44  # the root, d, 40 files, link, the trash root
    assert batched.getvalue() == plain.getvalue()
    assert b'"user.x5"' in batched.getvalue() and b'"symlink": "f01"' in batched.getvalue()


async def test_dump_by_worker_processes_equals_the_dump_of_one_process(
        redis_kv: KV, redis_server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages read and rendered by two worker processes (real `jfs.cli.dump_worker` processes on their own
    connections) come out byte for byte as one process writes them; a subdir dump too."""
    await format_meta(redis_kv, Settings(name="workers", trash_days=0))
    meta = await Meta.load(redis_kv)
    await meta.start_session(background=False)
    try:
        parent = ROOT_INODE
        for level in range(3):  # nested directories, each with more entries than a page of 7
            parent, _ = await meta.mkdir(parent, b"d%d" % level, 0o755)
            for i in range(17):
                ino, _ = await meta.mknod(parent, b"f%02d" % i, FileType.REGULAR, 0o644)
                if i % 5 == 0:
                    await meta.setxattr(ino, b"user.x", b"v%d" % i)
            await meta.mkdir(parent, b"empty", 0o700)
            await meta.symlink(parent, b"link", b"f01")
    finally:
        await meta.close()
    monkeypatch.setattr(dump_page, "PAGE", 7)  # sent to the workers with their hello
    monkeypatch.setattr(dump, "MIN_ENTRIES", 0)
    spec = WorkerSpec((sys.executable, "-m", "jfs.cli.dump_worker"), 2, f"{redis_server_url}/{REDIS_DB}", "warning")
    for subdir in (b"", b"d0/d1"):
        alone, pooled = io.BytesIO(), io.BytesIO()
        a = await dump.dump_meta(redis_kv, alone.write, subdir=subdir)
        b = await dump.dump_meta(redis_kv, pooled.write, subdir=subdir, workers=spec)
        assert a.entries == b.entries > 20
        assert pooled.getvalue() == alone.getvalue()


async def test_a_dump_worker_that_dies_fails_the_dump(redis_kv: KV, monkeypatch: pytest.MonkeyPatch) -> None:
    await format_meta(redis_kv, Settings(name="dies", trash_days=0))
    meta = await Meta.load(redis_kv)
    await meta.start_session(background=False)
    try:
        await meta.mkdir(ROOT_INODE, b"d", 0o755)
    finally:
        await meta.close()
    monkeypatch.setattr(dump, "MIN_ENTRIES", 0)
    spec = WorkerSpec((sys.executable, "-c", "import sys; sys.stdin.read(1)"), 2, "redis://unused", "warning")
    with pytest.raises(OpsError, match="dump worker"):
        await asyncio.wait_for(dump.dump_meta(redis_kv, io.BytesIO().write, workers=spec), 60)


async def test_inodes_read_by_their_attributes_alone_are_read_again_when_they_may_have_more(
        redis_kv: KV, monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk of the index before a dump marks the inodes with chunks, symlink targets or xattrs; the
    others are read by their attribute key alone. Files that got data after that walk (here: no inode
    marked at all) are read again by their range, so the dump still shows their chunks; symlinks and
    directories are always read by their range."""
    await format_meta(redis_kv, Settings(name="marks", trash_days=0))
    meta = await Meta.load(redis_kv)
    await meta.start_session(background=False)
    try:
        d, _ = await meta.mkdir(ROOT_INODE, b"d", 0o755)
        for i in range(30):
            ino, _ = await meta.mknod(d, b"f%02d" % i, FileType.REGULAR, 0o644)
            if i % 3 == 0:
                await meta.write_slice(ino, 0, 0, await meta.next_slice_id(), 4096, 0, 100 + i)
            if i % 7 == 0:
                await meta.setxattr(ino, b"user.x", b"v%d" % i)
        await meta.symlink(d, b"link", b"f01")
        await meta.mknod(d, b"fifo", FileType.FIFO, 0o644)
    finally:
        await meta.close()
    marked = await dump_page.inodes_with_more_records(redis_kv)  # type: ignore[arg-type]
    inos = {ino for ino in range(1, 100) if ino in marked}
    assert len(inos) == 10 + 5 - 2 + 1  # files with data, with xattrs (two with both), the symlink
    reference = io.BytesIO()
    await dump.dump_meta(_TxOnly(redis_kv), reference.write)  # type: ignore[arg-type]
    full = io.BytesIO()
    await dump.dump_meta(redis_kv, full.write)
    assert full.getvalue() == reference.getvalue()

    with_xattrs = dump_page.InoSet()
    for ino in inos:
        if await redis_kv.read(lambda tx, ino=ino: tx.scan(*_xattr_range(ino))):
            with_xattrs.add(ino)  # only the xattrs' inodes marked: chunks and the symlink come from re-reads
    monkeypatch.setattr(dump, "inodes_with_more_records", _returning(with_xattrs))
    unmarked = io.BytesIO()
    await dump.dump_meta(redis_kv, unmarked.write)
    assert unmarked.getvalue() == reference.getvalue()
    assert b'"chunks"' in unmarked.getvalue() and b'"symlink": "f01"' in unmarked.getvalue()


def _xattr_range(ino: int) -> tuple[bytes, bytes]:
    prefix = b"A" + ino.to_bytes(8, "little") + b"X"
    return prefix, prefix + b"\xff"


def _returning(value: Any) -> Callable[..., Awaitable[Any]]:
    async def call(*_: Any) -> Any:
        return value

    return call


async def test_load_puts_writes_what_transactions_write(redis_kv: KV, monkeypatch: pytest.MonkeyPatch) -> None:
    """`BulkLoadingKV.load_puts` (MSET + ZADD outside transactions, for `jfs load`): the keys are then read
    by gets and scans exactly as if transactions had put them, also across several commands per call."""
    from jfs.adapters.kv import redis_batch
    from jfs.ports.kv import BulkLoadingKV

    assert isinstance(redis_kv, BulkLoadingKV)
    monkeypatch.setattr(redis_batch, "LOAD_CHUNK", 3)
    items = [(b"k%03d" % i, b"v" * (i % 5)) for i in range(20)]
    await redis_kv.load_puts(items)

    async def read_all(tx: Tx) -> tuple[list[tuple[bytes, bytes]], list[bytes | None]]:
        return await tx.scan(b"k", b"l"), await tx.get_many([k for k, _ in items])

    pairs, values = await redis_kv.read(read_all)
    assert pairs == items and values == [v for _, v in items]


async def test_points_alone_are_read_as_with_ranges(redis_kv: KV) -> None:
    """Points without ranges (dump's files read by their attribute key: one native MGET on Redis) read what
    the same points read next to a range (the script) and what `get` reads: missing ones give []."""
    assert isinstance(redis_kv, RangeReadingKV)

    async def fill(tx: Tx) -> None:
        for i in range(6):
            tx.put(b"p" + bytes([i]), b"v" * (i + 1) + b"%$*\r\n")

    await redis_kv.txn(fill)
    points = [b"p\x03", b"p\x09", b"p\x00", b"q", b"p\x05"]
    alone = await redis_kv.read_ranges([], 4, points)
    with_range = await redis_kv.read_ranges([(b"p\x01", b"p\x03")], 4, points)
    assert with_range[0] == [(b"p\x01", b"vv%$*\r\n"), (b"p\x02", b"vvv%$*\r\n")]
    assert alone == with_range[1:]

    async def gets(tx: Tx) -> list[bytes | None]:
        return await tx.get_many(points)

    assert alone == [[] if v is None else [(p, v)] for p, v in zip(points, await redis_kv.read(gets), strict=True)]
    assert await redis_kv.read_ranges([], 4, []) == []


@pytest.mark.parametrize("limit", [1, 7, 128, 129, 5000])
async def test_sparse_keys_sends_back_what_a_filtered_walk_keeps(redis_kv: KV, limit: int) -> None:
    """`sparse_keys` walked to the end keeps exactly the keys a filter of every key keeps, whatever the step:
    runs of skipped keys longer than the script's step of 128 (passed over, with kept keys of the same inode
    right after them), inodes of 0xff bytes, short keys and keys of kept kinds between them."""
    assert isinstance(redis_kv, RangeReadingKV)
    stored: list[bytes] = []
    for n, kinds in ((2, b"DI"), (0xFF, b"DIX"), (0x1FF, b"IS"), (0xFFFFFFFFFFFFFFFF, b"DC"), (7, b"I"),
                     (0x100, b"DP"), (9, b"X")):
        ino = n.to_bytes(8, "little")
        for kind in kinds:
            if kind == ord("D"):
                stored += [b"A" + ino + b"D" + b"name%04d" % i for i in range(300)]
            else:
                stored.append(b"A" + ino + bytes([kind]) + (b"\x00\x00\x00\x01" if kind == ord("C") else b""))
    stored += [b"A\x05", b"A", b"A\x05\x00\x00\x00\x00\x00\x00\x00"]  # shorter than the byte looked at
    for s in range(0, len(stored), 500):
        async def fill(tx: Tx, part: list[bytes] = stored[s: s + 500]) -> None:
            for k in part:
                tx.put(k, b"v")

        await redis_kv.txn(fill)
    want = sorted(k for k in stored if len(k) <= 9 or k[9] not in b"IDP")
    begin, got, calls = b"A", [], 0
    while True:
        last, found = await redis_kv.sparse_keys(begin, b"B", limit, 9, b"IDP")
        calls += 1
        assert calls < 10_000
        if last is None:
            break
        got += found
        begin = last + b"\x00"
    assert got == want

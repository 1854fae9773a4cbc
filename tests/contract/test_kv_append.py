"""`AppendingTx.append` (ADR 0055) on the engine that offers it (Redis): checked by the value's length and
applied atomically with the rest of the commit; and, on every engine, slice commits (which append where
they can) keep every client's records, whatever another client appended, compacted or truncated meanwhile."""

from __future__ import annotations

import asyncio

import pytest

from jfs.app.meta import Meta
from jfs.app.meta.setattr import SetAttr
from jfs.domain import compaction
from jfs.domain.attrs import ROOT_INODE
from jfs.ports.kv import KV, EngineError, Tx

APPENDING = pytest.mark.jfs_engines("redis")
"""The built-in engines whose transactions offer `append`."""


async def _appending(kv: KV) -> None:
    async def probe(tx: Tx) -> bool:
        return hasattr(tx, "append")

    if not await kv.read(probe):
        pytest.skip("the engine's transactions do not append")


async def _get(kv: KV, key: bytes) -> bytes | None:
    return await kv.read(lambda tx: tx.get(key))


@APPENDING
async def test_append_creates_extends_and_indexes(kv: KV) -> None:
    await _appending(kv)

    async def first(tx: Tx) -> None:
        tx.append(b"c", b"abc", 0)  # type: ignore[attr-defined]
        tx.put(b"d", b"other")

    await kv.txn(first)
    assert await _get(kv, b"c") == b"abc"
    assert await kv.read(lambda tx: tx.scan(b"a", b"z")) == [(b"c", b"abc"), (b"d", b"other")]

    async def more(tx: Tx) -> None:
        tx.append(b"c", b"de", 3)  # type: ignore[attr-defined]
        tx.append(b"c", b"f", 99)  # type: ignore[attr-defined]  # joins the first: its `at` holds

    await kv.txn(more)
    assert await _get(kv, b"c") == b"abcdef"


@APPENDING
async def test_wrong_length_conflicts_and_changes_nothing(kv: KV) -> None:
    await _appending(kv)
    await kv.txn(lambda tx: _put(tx, b"c", b"12345"))
    runs = 0

    async def body(tx: Tx) -> None:
        nonlocal runs
        runs += 1
        tx.put(b"side", b"effect")
        # first run: a stale length (another client appended meanwhile); the retry reads the real one
        at = 3 if runs == 1 else len(await tx.get(b"c") or b"")
        tx.append(b"c", b"+", at)  # type: ignore[attr-defined]

    await kv.txn(body)
    assert runs == 2
    assert await _get(kv, b"c") == b"12345+"

    async def never(tx: Tx) -> None:
        tx.put(b"side", b"never")
        tx.append(b"c", b"!", 0)  # type: ignore[attr-defined]

    with pytest.raises(Exception):  # noqa: B017,PT011  (TooManyConflicts after the retries)
        await kv.txn(never, max_retries=2)
    assert await _get(kv, b"c") == b"12345+"
    assert await _get(kv, b"side") == b"effect"


@APPENDING
async def test_reads_before_are_validated_and_reads_after_refused(kv: KV) -> None:
    await _appending(kv)
    await kv.txn(lambda tx: _put(tx, b"c", b"xy"))

    async def reads_after(tx: Tx) -> None:
        tx.append(b"c", b"z", 2)  # type: ignore[attr-defined]
        await tx.get(b"c")

    async def writes_after(tx: Tx) -> None:
        tx.append(b"c", b"z", 2)  # type: ignore[attr-defined]
        tx.put(b"c", b"new")

    async def scans_after(tx: Tx) -> None:
        tx.append(b"c", b"z", 2)  # type: ignore[attr-defined]
        await tx.scan(b"a", b"z")

    for body in (reads_after, writes_after, scans_after):
        with pytest.raises(EngineError):
            await kv.txn(body)
    assert await _get(kv, b"c") == b"xy"

    async def read_then_append(tx: Tx) -> None:
        value = await tx.get(b"c") or b""
        tx.append(b"c", b"z", len(value))  # type: ignore[attr-defined]

    await kv.txn(read_then_append)
    assert await _get(kv, b"c") == b"xyz"


@APPENDING
async def test_append_alongside_every_other_kind_of_write_and_read(kv: KV) -> None:
    """Every section of the commit at once (point and range reads, puts, deletes, adds, a range delete):
    the appends' place in the script's arguments follows all of them."""
    await _appending(kv)

    async def fill(tx: Tx) -> None:
        for key in (b"c", b"p", b"r/1", b"r/2", b"s/1", b"x"):
            tx.put(key, key)

    await kv.txn(fill)

    async def body(tx: Tx) -> None:
        assert await tx.get(b"p") == b"p"
        assert [k for k, _ in await tx.scan(b"s/", b"s0")] == [b"s/1"]
        tx.put(b"q", b"new")
        tx.delete(b"x")
        tx.add(b"n", 5)
        if hasattr(tx, "delete_range"):
            tx.delete_range(b"r/", b"r0")
        tx.append(b"c", b"++", 1)  # type: ignore[attr-defined]
        tx.append(b"fresh", b"f", 0)  # type: ignore[attr-defined]

    await kv.txn(body)
    rows = dict(await kv.read(lambda tx: tx.scan(b"a", b"z")))
    assert rows[b"c"] == b"c++" and rows[b"fresh"] == b"f" and rows[b"q"] == b"new"
    assert b"x" not in rows and b"r/1" not in rows and b"r/2" not in rows
    assert int.from_bytes(rows[b"n"], "little") == 5

    async def ranged_after(tx: Tx) -> None:
        tx.append(b"r/3", b"z", 0)  # type: ignore[attr-defined]
        tx.delete_range(b"r/", b"r0")  # type: ignore[attr-defined]

    with pytest.raises(EngineError):
        await kv.txn(ranged_after)


async def _put(tx: Tx, key: bytes, value: bytes) -> None:
    tx.put(key, value)


async def _commit(m: Meta, ino: int, indx: int, pos: int) -> None:
    await m.write_slice(ino, indx, pos, await m.next_slice_id(), 4096, 0, 4096)


async def test_guessed_appends_keep_other_clients_records_across_chunks(two_clients: tuple[Meta, Meta]) -> None:
    a, b = two_clients
    ino, _ = await a.create(ROOT_INODE, b"f", 0o644)
    for indx in (0, 1):  # a guess per chunk, as fio's random writes over several chunks leave them
        await _commit(a, ino, indx, 0)
        await _commit(a, ino, indx, 4096)
    await _commit(b, ino, 1, 8192)  # another client appends to chunk 1 (a's length guess is stale)
    await _commit(a, ino, 0, 8192)  # a: attributes changed → retry with real reads
    await _commit(a, ino, 1, 12288)
    assert [r.pos for r in await a.read_chunk(ino, 0)] == [0, 4096, 8192]
    assert [r.pos for r in await a.read_chunk(ino, 1)] == [0, 4096, 8192, 12288]
    assert (await a.getattr(ino)).length == (1 << 26) + 16384


async def test_append_after_another_clients_compaction(two_clients: tuple[Meta, Meta]) -> None:
    """A compaction shrinks the record without touching the attributes: the length check catches it."""
    a, b = two_clients
    ino, _ = await a.create(ROOT_INODE, b"g", 0o644)
    for pos in range(0, 4 * 4096, 4096):
        await _commit(a, ino, 0, pos)
    records = await b.read_chunk(ino, 0)
    plan = compaction.plan(records)
    assert plan is not None
    assert await b.compact_swap(ino, 0, plan, await b.next_slice_id()) is not None
    assert len(await b.read_chunk(ino, 0)) < len(records)
    await _commit(a, ino, 0, 4 * 4096)
    after = await a.read_chunk(ino, 0)
    assert after[-1].pos == 4 * 4096 and len(after) == 2
    assert (await a.getattr(ino)).length == 5 * 4096


async def test_append_after_another_clients_truncate_and_regrowth(two_clients: tuple[Meta, Meta]) -> None:
    a, b = two_clients
    ino, _ = await a.create(ROOT_INODE, b"h", 0o644)
    await _commit(a, ino, 0, 0)
    await _commit(a, ino, 0, 4096)
    await b.setattr(ino, SetAttr(size=0))  # drops the chunk
    await _commit(b, ino, 0, 0)  # and a record of b's: a chunk of one record again
    await _commit(a, ino, 0, 8192)
    assert [r.pos for r in await a.read_chunk(ino, 0)] == [0, 8192]
    assert (await a.getattr(ino)).length == 12288


async def test_concurrent_writers_and_a_compaction_lose_no_record(two_clients: tuple[Meta, Meta]) -> None:
    """Two clients commit into one chunk at the same time (each guessing from its own last commit) while
    one of them compacts it: every committed slice is still visible, and the length is right."""
    a, b = two_clients
    ino, _ = await a.create(ROOT_INODE, b"busy", 0o644)
    n = 40

    async def writer(m: Meta, first: int) -> None:
        for i in range(first, 2 * n, 2):
            await _commit(m, ino, 0, i * 4096)

    async def compactor() -> None:
        for _ in range(3):
            await asyncio.sleep(0)
            records = await b.read_chunk(ino, 0)
            plan = compaction.plan(records)
            if plan is not None:
                await b.compact_swap(ino, 0, plan, await b.next_slice_id())

    await asyncio.gather(writer(a, 0), writer(b, 1), compactor())
    records = await a.read_chunk(ino, 0)
    covered = set()
    for r in records:
        covered.update(range(r.pos // 4096, (r.pos + r.len) // 4096))
    assert covered == set(range(2 * n))
    assert (await a.getattr(ino)).length == 2 * n * 4096

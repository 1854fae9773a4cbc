"""The SQLite adapter's statement savings (ADR 0042): usage counters added by SQLite in one statement
(`jfs_i64_add`), and a key deleted twice in one transaction deleted once — with the same outcomes as a
read-then-write and two deletes, inline and on the writer thread."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from jfs.adapters.kv import sqlite_tx
from jfs.adapters.kv.registry import open_kv
from jfs.domain.records import decode_i64, encode_i64
from jfs.ports.kv import EngineError, Tx


@pytest.fixture(params=["1", "0"], ids=["inline", "workers"])
def inline(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("JFS_SQLITE_INLINE", request.param)
    monkeypatch.setenv("JFS_SQLITE_INLINE_WRITES", request.param)
    return str(request.param)


def test_i64_add_reads_values_as_decode_i64() -> None:
    assert sqlite_tx._i64_add(None, encode_i64(5)) == encode_i64(5)
    assert sqlite_tx._i64_add(encode_i64(7), encode_i64(-9)) == encode_i64(-2)
    assert sqlite_tx._i64_add(encode_i64(3) + b"extra", encode_i64(1)) == encode_i64(4)  # first 8 bytes
    assert sqlite_tx._i64_add(b"", encode_i64(2)) == encode_i64(2)


@pytest.mark.asyncio
async def test_adds_land_as_sums(tmp_path: Path, inline: str) -> None:
    kv = await open_kv(f"sqlite3://{tmp_path}/m.db")
    try:
        async def seed(tx: Tx) -> None:
            tx.put(b"c-old", encode_i64(40))

        await kv.txn(seed)

        async def adds(tx: Tx) -> None:
            tx.add(b"c-old", 2)
            tx.add(b"c-new", -3)
            tx.add(b"c-new", 1)

        await kv.txn(adds)
        await kv.txn(adds)

        async def read(tx: Tx) -> list[int]:
            return [decode_i64(v) for v in await tx.get_many([b"c-old", b"c-new"])]

        assert await kv.read(read) == [44, -4]

        async def incr(tx: Tx) -> int:
            return await tx.incr_by(b"c-old", 6)

        assert await kv.txn(incr) == 50  # incr_by reads what the SQL function wrote
    finally:
        await kv.close()


@pytest.mark.asyncio
async def test_a_key_deleted_twice_in_a_transaction_is_deleted_once(tmp_path: Path, inline: str) -> None:
    path = tmp_path / "m.db"
    kv = await open_kv(f"sqlite3://{path}")
    try:
        async def seed(tx: Tx) -> None:
            tx.put(b"a", b"1")
            tx.put(b"b", b"2")

        await kv.txn(seed)

        async def churn(tx: Tx) -> None:
            tx.delete(b"a")
            tx.delete(b"a")  # no-op
            tx.put(b"a", b"3")  # written again: a later delete must run
            tx.delete(b"a")
            tx.delete(b"b")
            tx.put(b"b", b"4")

        await kv.txn(churn)

        async def read(tx: Tx) -> list[bytes | None]:
            return await tx.get_many([b"a", b"b"])

        assert await kv.read(read) == [None, b"4"]
    finally:
        await kv.close()
    statements: list[str] = []
    conn = sqlite3.connect(path)
    conn.set_trace_callback(statements.append)
    tx = sqlite_tx.SqliteTx(conn, False, str(path))
    tx.delete(b"x")
    tx.delete(b"x")
    assert sum(s.startswith("DELETE") for s in statements) == 1
    conn.close()


@pytest.mark.asyncio
async def test_a_body_that_really_suspends_is_refused(tmp_path: Path, inline: str) -> None:
    """`_drive` runs a body coroutine as it is (no wrapper): one that suspends is still refused, closed."""
    kv = await open_kv(f"sqlite3://{tmp_path}/m.db")
    closed: list[bool] = []
    try:
        async def sleepy(tx: Tx) -> None:
            try:
                tx.put(b"k", b"v")
                await asyncio.sleep(0)
            except GeneratorExit:
                closed.append(True)
                raise

        with pytest.raises(EngineError, match="awaited something outside"):
            await kv.txn(sleepy)

        async def read(tx: Tx) -> bytes | None:
            return await tx.get(b"k")

        assert await kv.read(read) is None
        assert closed
    finally:
        await kv.close()

"""ADR 0057: what keeps SQLite's cost flat as a volume grows — chunk records streamed through a partial index,
one inline connection per thread for reads and writes, memory-mapped reads on it (off for one-pass tools)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jfs.adapters.kv import sqlite as sqlite_kv
from jfs.adapters.kv import sqlite_tx
from jfs.adapters.kv.registry import open_kv
from jfs.app.meta.chunk_scan import CHUNK_SHAPE, chunks_in
from jfs.domain import keys
from jfs.ports.kv import Tx

pytestmark = pytest.mark.asyncio


def _volume_keys() -> dict[bytes, bytes]:
    """Attributes, entries, chunks (indexes 0 and 3), a symlink and an xattr of a few inodes, plus keys of
    other prefixes: only the chunk records fit `CHUNK_SHAPE`."""
    out: dict[bytes, bytes] = {}
    for ino in (1, 2, 255, 256, 70_000, 2**40 + 3):
        out[keys.attr(ino)] = b"a%d" % ino
        out[keys.dentry(ino, b"name-%d" % ino)] = b"d"
        out[keys.dentry(ino, b"C" * 4)] = b"d"  # an entry whose key is also 14 bytes long
        out[keys.chunk(ino, 0)] = b"c0-%d" % ino
        out[keys.chunk(ino, 3)] = b"c3-%d" % ino
        out[keys.inode_prefix(ino) + b"S"] = b"target"
        out[keys.inode_prefix(ino) + b"Xuser.a"] = b"x"
    out[keys.counter(keys.NEXT_INODE)] = b"\x01" * 8
    out[b"Kxxxxxxxxyyyy"] = b"k"
    return out


async def test_chunk_records_come_through_the_partial_index(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    plain = sqlite3.connect(db)  # a database of an older jfs: the table without the index
    plain.execute(sqlite_kv._SCHEMA)
    plain.executemany("INSERT INTO kv VALUES (?, ?)", list(_volume_keys().items()))
    plain.commit()
    plain.close()
    kv = await open_kv(f"sqlite3://{db}")
    try:
        async def shaped(tx: Tx) -> list[tuple[bytes, bytes]]:
            return [p async for p in tx.scan_shaped_iter(b"A", b"B", CHUNK_SHAPE, batch=3)]  # type: ignore[attr-defined]

        async def plain_filter(tx: Tx) -> list[tuple[bytes, bytes]]:
            return [p async for p in tx.scan_iter(b"A", b"B") if CHUNK_SHAPE.fits(p[0])]

        async def via_chunks_in(tx: Tx) -> list[tuple[int, int, bytes]]:
            return [c async for c in chunks_in(tx)]

        got = await kv.read(shaped)
        assert got == await kv.read(plain_filter) and len(got) == 12
        assert [(ino, indx) for ino, indx, _ in await kv.read(via_chunks_in)] == [
            (keys.ino_from_le(k, 1), int.from_bytes(k[10:14], "big")) for k, _ in got
        ]

        async def write_more(tx: Tx) -> None:  # the index follows later writes and deletes
            tx.put(keys.chunk(9, 1), b"new")
            tx.delete(keys.chunk(1, 0))

        await kv.txn(write_more)
        keys_now = [k for k, _ in await kv.read(shaped)]
        assert keys.chunk(9, 1) in keys_now and keys.chunk(1, 0) not in keys_now
    finally:
        await kv.close()
    check = sqlite3.connect(db)
    plan = check.execute(
        f"EXPLAIN QUERY PLAN SELECT k, v FROM kv WHERE {sqlite_tx._shape_where(CHUNK_SHAPE)} AND k >= ? AND k < ?",
        (b"A", b"B"),
    ).fetchall()
    assert "kv_chunk_keys" in str(plan)
    assert [r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["kv"]
    check.close()
    assert CHUNK_SHAPE in sqlite_tx.SHAPE_INDEXES


async def test_reads_and_writes_of_a_thread_share_one_connection(tmp_path: Path) -> None:
    kv = await open_kv(f"sqlite3://{tmp_path}/m.db")
    try:
        async def put(tx: Tx) -> None:
            tx.put(b"k", b"1")

        async def get(tx: Tx) -> bytes | None:
            return await tx.get(b"k")

        await kv.txn(put)
        assert await kv.read(get) == b"1"
        assert len(kv._inline) == 1  # type: ignore[attr-defined]

        async def sneaky_write(tx: Tx) -> None:
            tx.put(b"k", b"2")

        with pytest.raises(Exception, match="read-only"):
            await kv.read(sneaky_write)
        assert await kv.read(get) == b"1"

        other = sqlite3.connect(tmp_path / "m.db")  # another process's commit is seen by the next read
        other.execute("UPDATE kv SET v = x'33' WHERE k = x'6b'")
        other.commit()
        other.close()
        assert await kv.read(get) == b"3"
    finally:
        await kv.close()


@pytest.mark.parametrize(("env", "expected"), [(None, 1024 << 20), ("0", 0), ("16", 16 << 20)])
async def test_inline_connection_maps_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str | None, expected: int
) -> None:
    if env is None:
        monkeypatch.delenv("JFS_SQLITE_MMAP_MIB", raising=False)
    else:
        monkeypatch.setenv("JFS_SQLITE_MMAP_MIB", env)
    kv = await open_kv(f"sqlite3://{tmp_path}/m.db")
    try:
        async def get(tx: Tx) -> bytes | None:
            return await tx.get(b"k")

        await kv.read(get)
        (conn,) = kv._inline.values()  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA mmap_size").fetchone()[0] == expected
    finally:
        await kv.close()


async def test_one_pass_tools_map_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from jfs.compose import one_pass_engine_caches

    for name in ("JFS_SQLITE_MMAP_MIB", "JFS_SQLITE_CACHE_KIB"):
        monkeypatch.setenv(name, "x")  # recorded as unset before: restored so after the test
        monkeypatch.delenv(name)
    one_pass_engine_caches()
    assert sqlite_kv.mmap_bytes() == 0

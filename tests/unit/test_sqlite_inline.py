"""The SQLite adapter's inline execution: bodies run on the caller's thread unless they are heavy or the
database is locked, and then run again on the worker threads with the same outcome."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from jfs.adapters.kv import sqlite as sqlite_kv
from jfs.adapters.kv import sqlite_tx
from jfs.adapters.kv.registry import open_kv
from jfs.ports.kv import Tx

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def inline_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inline execution is on by default; pinned here in case the environment turns it off."""
    monkeypatch.setenv("JFS_SQLITE_INLINE", "1")
    monkeypatch.setenv("JFS_SQLITE_INLINE_WRITES", "1")


async def test_light_bodies_run_inline_heavy_ones_on_workers(tmp_path: Path) -> None:
    kv = await open_kv(f"sqlite3://{tmp_path}/m.db")
    threads: list[str] = []

    async def put_many(tx: Tx) -> None:
        threads.append(threading.current_thread().name)
        for i in range(sqlite_tx.INLINE_ROWS + 10):  # too many writes for inline: rolled back, re-run
            tx.put(b"k%06d" % i, b"v")

    async def put_one(tx: Tx) -> None:
        threads.append(threading.current_thread().name)
        tx.put(b"one", b"1")

    async def scan_all(tx: Tx) -> int:
        threads.append(threading.current_thread().name)
        return len(await tx.scan(b"k", b"l"))  # unlimited and long: re-run on a reader

    try:
        await kv.txn(put_many)
        assert threads[0] == threading.current_thread().name and threads[-1].startswith("jfs-sqlite-writer")
        threads.clear()
        await kv.txn(put_one)
        assert threads == [threading.current_thread().name]
        threads.clear()
        assert await kv.read(scan_all) == sqlite_tx.INLINE_ROWS + 10
        assert threads[-1].startswith("jfs-sqlite-reader")
    finally:
        await kv.close()


@pytest.mark.parametrize(
    ("env", "write_thread", "read_thread"),
    [({}, "caller", "caller"), ({"JFS_SQLITE_INLINE_WRITES": "0"}, "jfs-sqlite-writer", "caller"),
     ({"JFS_SQLITE_INLINE": "0"}, "jfs-sqlite-writer", "jfs-sqlite-reader")],
)
async def test_inline_is_on_unless_the_environment_turns_it_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], write_thread: str, read_thread: str
) -> None:
    monkeypatch.delenv("JFS_SQLITE_INLINE", raising=False)
    monkeypatch.delenv("JFS_SQLITE_INLINE_WRITES", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    kv = await open_kv(f"sqlite3://{tmp_path}/m.db")
    threads: list[str] = []

    async def body(tx: Tx) -> None:
        name = threading.current_thread().name
        threads.append("caller" if name == caller else name)
        tx.put(b"one", b"1")

    async def read(tx: Tx) -> bytes | None:
        name = threading.current_thread().name
        threads.append("caller" if name == caller else name)
        return await tx.get(b"one")

    caller = threading.current_thread().name
    try:
        await kv.txn(body)
        assert await kv.read(read) == b"1"
        assert threads[0].startswith(write_thread) and threads[1].startswith(read_thread), threads
    finally:
        await kv.close()


async def test_a_locked_database_falls_back_to_the_waiting_writer(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    kv = await open_kv(f"sqlite3://{path}")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        other.execute("INSERT INTO kv (k, v) VALUES (x'61', x'31')")

        async def bump(tx: Tx) -> bytes | None:
            value = await tx.get(b"a")
            tx.put(b"b", value or b"none")
            return value

        task = asyncio.ensure_future(kv.txn(bump))
        await asyncio.sleep(0.2)
        assert not task.done()  # not inline (that would have failed at once): waiting on a worker
        other.execute("COMMIT")
        assert await asyncio.wait_for(task, 10) == b"1"  # saw the other writer's commit
        assert await kv.read(lambda tx: tx.get(b"b")) == b"1"
    finally:
        other.close()
        await kv.close()


async def test_a_read_issued_behind_one_on_the_readers_finishes_after_it_then_runs_inline(tmp_path: Path) -> None:
    """Transactions complete in the order they were issued: a read issued while an earlier one waits on the
    reader threads must not finish before it (callers adopt what transactions return — a file's attributes
    — and the older result must not arrive last). It waits for the earlier one only and then runs inline,
    so a stream of reads does not stay on the readers (ADR 0097)."""
    kv = await open_kv(f"sqlite3://{tmp_path}/m.db")
    assert isinstance(kv, sqlite_kv.SqliteKV)
    caller = threading.current_thread().name
    finished: list[str] = []
    where: dict[str, str] = {}

    async def heavy(tx: Tx) -> None:
        where["heavy"] = threading.current_thread().name
        await tx.get_many([b"k%d" % i for i in range(sqlite_tx.INLINE_ROWS + 1)])
        finished.append("heavy")

    def light(name: str):
        async def body(tx: Tx) -> None:
            where[name] = threading.current_thread().name
            await tx.get(b"x")
            finished.append(name)
        return body

    try:
        tasks = [asyncio.ensure_future(kv.read(heavy))]
        tasks += [asyncio.ensure_future(kv.read(light(f"light{i}"))) for i in range(3)]
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert finished == ["heavy", "light0", "light1", "light2"]
        assert where["heavy"].startswith("jfs-sqlite-reader")
        assert all(where[f"light{i}"] == caller for i in range(3)), where
        assert not kv._reads_on_workers and not kv._queued[False]
    finally:
        await kv.close()


async def test_while_a_write_waits_on_the_writer_new_ones_join_its_queue(tmp_path: Path) -> None:
    """A write body issued while an earlier one waits on the writer thread must not run inline past it; it
    joins the writer's queue (committed there in one batch with the others), and runs inline again once the
    queue is empty."""
    kv = await open_kv(f"sqlite3://{tmp_path}/m.db")
    threads: list[str] = []

    async def light(tx: Tx) -> None:
        threads.append(threading.current_thread().name)
        tx.put(b"light", b"1")

    try:
        assert isinstance(kv, sqlite_kv.SqliteKV)
        kv._queued[True] += 1  # as if an earlier read-write body were waiting on the writer thread
        await kv.txn(light)
        assert threads[-1].startswith("jfs-sqlite-writer")
        kv._queued[True] -= 1
        await kv.txn(light)
        assert threads[-1] == threading.current_thread().name  # inline again
    finally:
        await kv.close()


@pytest.mark.parametrize("background", [True, False])
async def test_wal_checkpoints_run_on_the_checkpointer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, background: bool
) -> None:
    """With the background checkpointer (the default) the WAL is copied into the database by its thread;
    inline commits do not checkpoint (the automatic checkpoint is only a backstop), and the WAL stays
    short all the same."""
    monkeypatch.setenv("JFS_SQLITE_BG_CHECKPOINT", "1" if background else "0")
    kv = await open_kv(f"sqlite3://{tmp_path}/m.db")
    inner = getattr(kv, "inner", kv)
    try:
        for i in range(3 * sqlite_kv.CHECKPOINT_EVERY):
            async def put(tx: Tx, i: int = i) -> None:
                tx.put(b"k%06d" % i, b"v" * 3000)  # about a page each

            await kv.txn(put)
        for _ in range(200):
            if not background or inner.checkpoints >= 2:
                break
            await asyncio.sleep(0.01)
        assert (inner.checkpoints >= 2) if background else inner.checkpoints == 0
        mode = sqlite3.connect(tmp_path / "m.db").execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert mode == 1000  # other processes' connections keep SQLite's default
        frames = sqlite3.connect(tmp_path / "m.db").execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert frames[1] - frames[2] < sqlite_kv.BACKSTOP_PAGES  # nothing much left behind
        assert await kv.read(lambda tx: tx.get(b"k000000")) == b"v" * 3000
    finally:
        await kv.close()

"""KV-port micro-benchmark: transactions/s of small metadata-like bodies, 1 task and N concurrent tasks.

Usage:  .venv/bin/python bench/kv_bench.py [URL ...] [--seconds 3] [--tasks 1,32] [--bodies create,lookup,get]

URL is any META-URL, or ``redis`` (a throwaway redis-server, via jfs.testing.servers), ``sqlite`` (a temp
file), ``memory``, or ``aiosqlite:///path[?synchronous=normal]`` (the per-statement aiosqlite baseline of
ADR 0003; `create` only). Default: ``redis``. Bodies (keys spread over 100 "directories"):

* ``create``  2 point reads (parent attr, dentry) then 3 puts — one read round + commit
* ``lookup``  read-only: get_many(parent attr, dentry) then get(child attr) — two read rounds
* ``get``     read-only: one get

Besides txn/s it prints the client's CPU time per transaction (process time / transactions) and, on Redis,
the server's (INFO cpu), so runs on a busy machine can still be compared. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from jfs.adapters.kv.registry import open_kv
from jfs.ports.kv import KV, Tx


class AioSqliteBaseline:
    """What a per-statement aiosqlite adapter costs: every statement is one thread hop (ADR 0003)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.lock = asyncio.Lock()

    async def txn(self, body: Callable[[Any], Awaitable[Any]]) -> Any:
        async with self.lock:  # one connection: transactions must not interleave
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                r = await body(self)
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")
            return r

    async def get(self, k: bytes) -> bytes | None:
        async with self.db.execute("SELECT v FROM kv WHERE k=?", (k,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return [await self.get(k) for k in keys]

    def put(self, k: bytes, v: bytes) -> Awaitable[Any]:  # awaited by the baseline body
        return self.db.execute("INSERT INTO kv VALUES(?,?) ON CONFLICT(k) DO UPDATE SET v=excluded.v", (k, v))

    async def close(self) -> None:
        await self.db.close()


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[tuple[Any, str | None]]:
    """(store, redis URL for server statistics or None)."""
    if url.startswith("aiosqlite://"):
        import aiosqlite

        path, _, q = url[len("aiosqlite://") :].partition("?")
        db = await aiosqlite.connect(path, isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute(f"PRAGMA synchronous={q.split('=')[1] if q else 'normal'}")
        await db.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
        store = AioSqliteBaseline(db)
        try:
            yield store, None
        finally:
            await store.close()
        return
    with contextlib.ExitStack() as stack:
        if url == "redis":
            from jfs.testing.servers import redis_server

            url = stack.enter_context(redis_server()).url + "/1"
        elif url == "sqlite":
            url = f"sqlite3://{stack.enter_context(tempfile.TemporaryDirectory())}/kv.db"
        elif url == "memory":
            url = "memory://kv-bench"
        kv = await open_kv(url)
        try:
            await kv.reset()
            yield kv, url if url.startswith(("redis://", "rediss://", "unix://")) else None
        finally:
            await kv.close()


def server_cpu(url: str | None) -> float:
    """Seconds of CPU the Redis server has used so far (0 when not Redis)."""
    if url is None:
        return 0.0
    import redis

    with redis.Redis.from_url(url) as r:
        info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def make_body(kind: str, baseline: bool) -> Callable[[Any], Awaitable[Any]]:
    counter = itertools.count()
    value = b"x" * 72  # the size of an encoded inode attribute

    async def create(tx: Any) -> None:
        n = next(counter)
        parent = b"A" + (n % 100).to_bytes(8, "little") + b"I"
        await tx.get_many([parent, parent + b"D" + b"name%d" % n])
        for suffix in (b"I1", b"I2", b"I3"):
            if baseline:
                await tx.put(parent + suffix + b"%d" % n, value)
            else:
                tx.put(parent + suffix + b"%d" % n, value)

    async def lookup(tx: Tx) -> None:
        n = next(counter) % 1000
        parent = b"A" + (n % 100).to_bytes(8, "little") + b"I"
        await tx.get_many([parent, parent + b"D" + b"name%d" % n])
        await tx.get(b"A" + n.to_bytes(8, "little") + b"I")

    async def get(tx: Tx) -> None:
        await tx.get(b"A" + (next(counter) % 1000).to_bytes(8, "little") + b"I")

    return {"create": create, "lookup": lookup, "get": get}[kind]


async def run(store: Any, kind: str, tasks: int, seconds: float, stats_url: str | None) -> tuple[float, float, float]:
    """(txn/s, client CPU µs per txn, server CPU µs per txn)."""
    baseline = isinstance(store, AioSqliteBaseline)
    body = make_body(kind, baseline)
    readonly = kind != "create" and not baseline
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await (store.read(body) if readonly else store.txn(body))
            done += 1

    s0, c0, t0 = server_cpu(stats_url), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    elapsed, cpu, srv = time.perf_counter() - t0, time.process_time() - c0, server_cpu(stats_url) - s0
    return done / elapsed, cpu / done * 1e6, srv / done * 1e6


async def seed(kv: KV) -> None:
    """The keys the read-only bodies read: 100 directory attributes, 1000 dentries and 1000 inodes."""

    async def body(tx: Tx) -> None:
        for n in range(1000):
            parent = b"A" + (n % 100).to_bytes(8, "little") + b"I"
            tx.put(parent, b"d" * 72)
            tx.put(parent + b"D" + b"name%d" % n, n.to_bytes(9, "little"))
            tx.put(b"A" + n.to_bytes(8, "little") + b"I", b"f" * 72)

    await kv.txn(body)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("urls", nargs="*", default=["redis"])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--tasks", default="1,32")
    parser.add_argument("--bodies", default="create,lookup,get")
    args = parser.parse_args()
    rows = []
    for url in args.urls:
        async with opened(url) as (store, stats_url):
            if not isinstance(store, AioSqliteBaseline):
                await seed(store)
            for kind in args.bodies.split(","):
                if isinstance(store, AioSqliteBaseline) and kind != "create":
                    continue
                for tasks in (int(t) for t in args.tasks.split(",")):
                    rate, client, server = await run(store, kind, tasks, args.seconds, stats_url)
                    rows.append((url.split("?")[0], kind, tasks, rate, client, server if stats_url else None))
                    print(f"{url} {kind} tasks={tasks}: {rate:,.0f} txn/s", flush=True)
    print("\n| store | body | tasks | txn/s | client CPU µs/txn | server CPU µs/txn |")
    print("|---|---|---|---|---|---|")
    for url, kind, tasks, rate, client, server in rows:
        srv = "–" if server is None else f"{server:.0f}"
        print(f"| {url} | {kind} | {tasks} | {rate:,.0f} | {client:.0f} | {srv} |")


if __name__ == "__main__":
    asyncio.run(main())

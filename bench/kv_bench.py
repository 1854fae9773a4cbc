"""Throughput of a metadata-like txn (2 gets + 3 puts) on a KV URL: 1 task and 32 concurrent tasks.

usage: python bench_kv.py URL [seconds]   (URL may be 'aiosqlite:///path' for the per-statement baseline)
"""
import asyncio, itertools, os, sys, time

import aiosqlite

from jfs.adapters.kv.registry import open_kv


class AioSqliteBaseline:
    """What a per-statement aiosqlite adapter costs: every statement is one thread hop."""

    def __init__(self, db):
        self.db = db
        self.lock = asyncio.Lock()

    async def txn(self, body):
        async with self.lock:  # one connection: transactions must not interleave
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                r = await body(self)
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")
            return r

    async def get(self, k):
        async with self.db.execute("SELECT v FROM kv WHERE k=?", (k,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def put(self, k, v):
        await self.db.execute("INSERT INTO kv VALUES(?,?) ON CONFLICT(k) DO UPDATE SET v=excluded.v", (k, v))

    async def close(self):
        await self.db.close()


async def open_any(url):
    if url.startswith("aiosqlite://"):
        path, _, q = url[len("aiosqlite://"):].partition("?")
        db = await aiosqlite.connect(path, isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute(f"PRAGMA synchronous={q.split('=')[1] if q else 'normal'}")
        await db.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
        return AioSqliteBaseline(db), True
    kv = await open_kv(url)
    await kv.reset()
    return kv, False


async def run(url, tasks, seconds):
    kv, baseline = await open_any(url)
    counter = itertools.count()

    async def body(tx):
        n = next(counter)
        parent = b"A" + (n % 100).to_bytes(8, "little") + b"I"
        await tx.get(parent)
        await tx.get(parent + b"D" + b"name%d" % n)
        for suffix in (b"I1", b"I2", b"I3"):
            v = b"x" * 64
            if baseline:
                await tx.put(parent + suffix + b"%d" % n, v)
            else:
                tx.put(parent + suffix + b"%d" % n, v)

    done = 0
    stop = time.perf_counter() + seconds

    async def worker():
        nonlocal done
        while time.perf_counter() < stop:
            await kv.txn(body)
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    rate = done / (time.perf_counter() - t0)
    await kv.close()
    return rate


async def main():
    url = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3
    for tasks in (1, 32):
        print(f"{url}  tasks={tasks:<3} {await run(url, tasks, seconds):8.0f} txn/s", flush=True)


asyncio.run(main())

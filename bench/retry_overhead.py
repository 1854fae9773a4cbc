"""Overhead of a retry wrapper on the no-conflict path of a KV transaction (the hot path) — ADR 0017.

Usage:  .venv/bin/python bench/retry_overhead.py      (needs the `bench` extra: tenacity, stamina)

Times one call of each wrapper around an attempt that returns at once (5 rounds, alternating wrappers),
then one `read` and one write `txn` on the memory and SQLite engines for scale.
"""
import asyncio
import tempfile
import time

import stamina
import tenacity

from jfs.adapters.kv.base import retrying
from jfs.ports.kv import ConflictError

N = 20000

async def attempt():
    return 1

async def plain():
    return await retrying(attempt, 50, "bench")

_ten = tenacity.AsyncRetrying(stop=tenacity.stop_after_attempt(50), retry=tenacity.retry_if_exception_type(ConflictError),
                              wait=tenacity.wait_random(0, 0.001), reraise=True)
async def ten():
    return await _ten(attempt)

@stamina.retry(on=ConflictError, attempts=50, wait_initial=0.0005, wait_max=0.05)
async def stam():
    return 1

async def timeit(fn):
    t = time.perf_counter()
    for _ in range(N):
        await fn()
    return (time.perf_counter() - t) / N * 1e6

async def main():
    for fn in (plain, ten, stam, attempt):
        await timeit(fn)
    res = {f.__name__: [] for f in (plain, ten, stam, attempt)}
    for _ in range(5):  # alternate
        for fn in (plain, ten, stam, attempt):
            res[fn.__name__].append(await timeit(fn))
    for k, v in res.items():
        v.sort()
        print(f"{k:8s} median {v[2]:.2f} µs/call  (min {v[0]:.2f}, max {v[-1]:.2f})")


async def engines():
    from jfs.adapters.kv.memory import open_memory
    from jfs.adapters.kv.sqlite import open_sqlite

    d = tempfile.mkdtemp()
    for kv in (await open_memory("memory://"), await open_sqlite(f"sqlite3://{d}/m.db")):
        async def put(tx):
            tx.put(b"k", b"v")
        await kv.txn(put)
        async def body(tx):
            return await tx.get(b"k")
        async def w(tx):
            tx.put(b"k", b"v2")
        for name, fn in (("read", lambda kv=kv: kv.read(body)), ("txn-write", lambda kv=kv: kv.txn(w))):
            n = 2000
            t = time.perf_counter()
            for _ in range(n):
                await fn()
            print(f"{type(kv).__name__} {name}: {(time.perf_counter()-t)/n*1e6:.1f} µs/txn")
        await kv.close()

if __name__ == "__main__":
    asyncio.run(main())
    asyncio.run(engines())

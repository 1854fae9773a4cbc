"""Metadata micro-benchmark straight on the engine (no FUSE): ops/s per operation and engine.

Usage:  .venv/bin/python bench/meta_bench.py [--engines sqlite,redis] [--files 10000] [--concurrency 32]
        [--url URL ...]

For each engine it formats a fresh volume, then measures, with `--concurrency` tasks working in parallel
on their own directories: create (mknod of a regular file), lookup, getattr, readdir of one directory of
`--files` entries (with attributes), rename (within a directory), unlink. `sqlite` uses a temp file;
`redis` starts a throwaway redis-server (via jfs.testing.servers). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from jfs.adapters.kv.registry import open_kv
from jfs.app.mdtest import run_pool
from jfs.app.meta import Meta
from jfs.app.meta.engine import format_meta
from jfs.domain.attrs import ROOT_INODE, FileType
from jfs.domain.settings import Settings


@contextlib.asynccontextmanager
async def engine_url(name: str) -> AsyncIterator[str]:
    if name == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite3://{tmp}/meta.db"
    elif name == "redis":
        from jfs.testing.servers import redis_server

        with redis_server() as server:
            yield server.url + "/1"
    elif name == "memory":
        yield "memory://bench"
    else:
        yield name


async def timed(label: str, n: int, workers: int, op: Callable[[int, int], Awaitable[object]]) -> tuple[str, float]:
    """ops/s of `op(w, i)` for `workers` × ``n // workers`` items, `workers` tasks at a time (the worker pool
    of `jfs mdtest`, `jfs.app.mdtest.run_pool`)."""
    per = n // workers
    items = [(w, i) for i in range(per) for w in range(workers)]
    elapsed, _ = await run_pool(items, workers, lambda item: op(*item))
    return label, len(items) / elapsed


async def bench(url: str, files: int, workers: int) -> list[tuple[str, float]]:
    kv = await open_kv(url)
    await kv.reset()
    await format_meta(kv, Settings(name="bench", trash_days=0))
    m = await Meta.load(kv)
    await m.start_session(background=False)
    dirs = [(await m.mkdir(ROOT_INODE, b"d%d" % w, 0o755))[0] for w in range(workers)]
    inos: dict[tuple[int, int], int] = {}
    results = []

    async def create(w: int, i: int) -> None:
        ino, _ = await m.mknod(dirs[w], b"f%d" % i, FileType.REGULAR, 0o644)
        inos[w, i] = ino

    async def lookup(w: int, i: int) -> None:
        await m.lookup(dirs[w], b"f%d" % i)

    async def getattr_(w: int, i: int) -> None:
        await m.getattr(inos[w, i])

    async def rename(w: int, i: int) -> None:
        await m.rename(dirs[w], b"f%d" % i, dirs[w], b"r%d" % i)

    async def unlink(w: int, i: int) -> None:
        await m.unlink(dirs[w], b"r%d" % i)

    results.append(await timed("create", files, workers, create))
    results.append(await timed("lookup", files, workers, lookup))
    results.append(await timed("getattr", files, workers, getattr_))
    # readdir: one directory holding all entries, listed with attributes
    big, _ = await m.mkdir(ROOT_INODE, b"big", 0o755)
    await asyncio.gather(*(m.mknod(big, b"e%d" % i, FileType.REGULAR, 0o644) for i in range(files)))
    start = time.perf_counter()
    count = 0
    async for _ in m.readdir(big, plus=True):
        count += 1
    results.append((f"readdir {count} entries (entries/s)", count / (time.perf_counter() - start)))
    results.append(await timed("rename", files, workers, rename))
    results.append(await timed("unlink", files, workers, unlink))
    await m.close()
    await kv.close()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="sqlite,redis")
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    table: dict[str, dict[str, float]] = {}
    for name in args.engines.split(","):
        async with engine_url(name) as url:
            for label, rate in await bench(url, args.files, args.concurrency):
                table.setdefault(label, {})[name] = rate
    engines = args.engines.split(",")
    print(f"\nmetadata engine, {args.files} files, {args.concurrency} concurrent tasks (ops/s)\n")
    print("| operation | " + " | ".join(engines) + " |")
    print("|---|" + "---|" * len(engines))
    for label, rates in table.items():
        print(f"| {label} | " + " | ".join(f"{rates.get(e, 0):,.0f}" for e in engines) + " |")


if __name__ == "__main__":
    asyncio.run(main())

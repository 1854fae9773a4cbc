"""Which path from an asyncio program to etcd costs least per unary call? grpc.aio vs the blocking gRPC stub
reached through a ThreadPoolExecutor, through dedicated threads (SimpleQueue + call_soon_threadsafe) or through
its ``.future()``, and the blocking stub called directly (which would stall an event loop). Starts a
throwaway cluster (1 or 3 members, loopback); prints per path the median latency of sequential Range calls
(median over alternating rounds), the process CPU per call (all threads: gRPC's poller included) and the
rate with 8 calls in flight. Used for docs/adr/0034-etcd-batched-usage-and-limits.md.

Usage:  .venv/bin/python bench/etcd_call_paths.py [--members 3] [--calls 300] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc  # noqa: E402

from jfs.testing.etcd_cluster import etcd_cluster  # noqa: E402

THREADS = 3


async def measure(endpoint: str, n: int, rounds: int) -> None:
    from aetcd.rpc import rpc_pb2 as pb
    from aetcd.rpc import rpc_pb2_grpc as stubs

    loop = asyncio.get_running_loop()
    akv = stubs.KVStub(grpc.aio.insecure_channel(endpoint))
    skv = stubs.KVStub(grpc.insecure_channel(endpoint))
    req = pb.RangeRequest(key=b"k1")
    await akv.Range(req)
    skv.Range(req)
    pool = ThreadPoolExecutor(THREADS)
    jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = queue.SimpleQueue()

    def worker() -> None:
        while (item := jobs.get()) is not None:
            fn, fut = item
            try:
                loop.call_soon_threadsafe(fut.set_result, fn())
            except Exception as exc:
                loop.call_soon_threadsafe(fut.set_exception, exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
    for th in threads:
        th.start()

    async def aio() -> None:
        await akv.Range(req, timeout=10)

    async def executor() -> None:
        await loop.run_in_executor(pool, lambda: skv.Range(req, timeout=10))

    async def future() -> None:
        f = skv.Range.future(req, timeout=10)
        done: asyncio.Future[Any] = loop.create_future()
        def settle(g: Any) -> None:
            if not done.done():
                done.set_result(g)

        f.add_done_callback(lambda g: loop.call_soon_threadsafe(settle, g))
        (await done).result()

    async def dedicated() -> None:
        fut: asyncio.Future[Any] = loop.create_future()
        jobs.put((lambda: skv.Range(req, timeout=10), fut))
        await fut

    async def direct() -> None:
        skv.Range(req, timeout=10)  # blocks the loop: the floor, not an option

    paths: dict[str, Callable[[], Awaitable[None]]] = {
        "grpc.aio": aio, "executor": executor, "future": future, "dedicated threads": dedicated,
        "blocking, direct": direct,
    }  # fmt: skip
    lat: dict[str, list[float]] = {k: [] for k in paths}
    cpu: dict[str, list[float]] = {k: [] for k in paths}
    for r in range(rounds):
        for name in list(paths) if r % 2 == 0 else list(paths)[::-1]:
            call, times = paths[name], []
            c0 = time.process_time()
            for _ in range(n):
                t = time.perf_counter()
                await call()
                times.append(time.perf_counter() - t)
            cpu[name].append((time.process_time() - c0) / n * 1e6)
            lat[name].append(statistics.median(times) * 1e6)
    print(f"{n} Range calls x {rounds} alternating rounds (medians)")
    print("| path | latency µs | CPU µs per call | calls/s, 8 in flight |\n|---|--:|--:|--:|")
    for name, call in paths.items():
        rate = ""
        if name != "blocking, direct":
            t = time.perf_counter()
            for _ in range(50):
                await asyncio.gather(*(call() for _ in range(8)))
            rate = f"{400 / (time.perf_counter() - t):.0f}"
        print(f"| {name} | {statistics.median(lat[name]):.0f} | {statistics.median(cpu[name]):.0f} | {rate} |")
    for _ in threads:
        jobs.put(None)
    pool.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    with etcd_cluster(args.members) as cluster:
        asyncio.run(measure(cluster.members[cluster.leader()].endpoint, args.calls, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

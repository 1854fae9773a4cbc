"""Loop-thread CPU per small file on Redis + file, in process (no kernel): what a mount's loop does for one file.

    cd /tmp && PYTHONPATH=TREE .venv/bin/python TREE/bench/redis_small_cpu.py [--files 1000] [--rounds 3] \
        [--meta-url redis://HOST:PORT/DB] [--profile OUT.prof] [--garbage]

Per file, as the kernel asks it of a mount for ``open(O_CREAT|O_TRUNC)`` + one 128 KiB write + close, 4 writers
at once: LOOKUP (negative), CREATE, GETATTR of the directory, WRITE, FLUSH, RELEASE through `VfsOperations`
on a fresh volume (``--trash-days 0``; a private redis-server unless `--meta-url`, an empty database). The mount's collector settings apply (`settle_for_serving`). Printed per round (a new
directory each, after one warm-up round): loop-thread CPU (``thread_time``) and whole-process CPU per file,
and the cyclic collections that ran (count, CPU s) with the objects the collector tracks at the end.
``--profile``: cProfile of the first measured round, timed by the thread's CPU clock (slower; shape only).
``--garbage``: 200 more files with ``gc.DEBUG_SAVEALL``, then the objects per file that only the cyclic
collector could free, by type (ADR 0072: none).
For an A/B, alternate runs of two trees with PYTHONPATH (run from /tmp so that the current directory's
``jfs`` does not shadow the tree under test).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jfs.adapters.fuse.collector import settle_for_serving
from jfs.adapters.fuse.operations import RequestContext
from jfs.adapters.fuse.vfs_operations import MountConfig, VfsOperations
from jfs.bootstrap import ClientOptions, open_client

DATA = b"x" * (128 << 10)
WRITERS = 4


async def _file(ops: VfsOperations, rc: RequestContext, d: int, name: bytes) -> None:
    with contextlib.suppress(OSError):
        await ops.lookup(rc, d, name)
    entry, opened = await ops.create(rc, d, name, 0o644, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    ino = entry.ino
    await ops.getattr(rc, d, None)
    await ops.write(rc, ino, opened.fh, 0, memoryview(DATA), 0)
    await ops.flush(rc, ino, opened.fh, 0)
    await ops.release(rc, ino, opened.fh, os.O_WRONLY, None)


async def _read(ops: VfsOperations, rc: RequestContext, d: int, name: bytes) -> None:
    entry = await ops.lookup(rc, d, name)
    ino = entry[0] if isinstance(entry, tuple) else entry.ino  # the reply's fields (ADR 0054) or an EntryOut
    opened = await ops.open(rc, ino, os.O_RDONLY)
    await ops.read(rc, ino, opened.fh, 0, 1 << 20)
    await ops.flush(rc, ino, opened.fh, 0)
    await ops.release(rc, ino, opened.fh, os.O_RDONLY, None)


async def _run(url: str, args: argparse.Namespace, work: str) -> None:
    client = await open_client(url, ClientOptions(cache_dir=os.path.join(work, "cache"), background_jobs=False))
    try:
        vfs = client.vfs
        ops = VfsOperations(vfs, MountConfig())
        rc = RequestContext(0, 0, 1)
        settle_for_serving()
        collections_run: dict[int, list[float]] = {}
        started = [0.0]

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                started[0] = time.thread_time()
            else:
                c = collections_run.setdefault(info["generation"], [0, 0.0])
                c[0] += 1
                c[1] += time.thread_time() - started[0]

        gc.callbacks.append(on_gc)
        loop_us: list[float] = []
        proc_us: list[float] = []
        read_loop_us: list[float] = []
        read_proc_us: list[float] = []
        for r in range(args.rounds + 1):
            d, _ = await vfs.mkdir(vfs.ctx(), client.root, b"round%d" % r, 0o755)

            async def writer(k: int, d: int = d) -> None:
                for i in range(k, args.files, WRITERS):
                    await _file(ops, rc, d, b"f%07d" % i)

            prof = cProfile.Profile(time.thread_time) if args.profile and r == 1 else None
            if prof is not None:
                prof.enable()
            t0, p0 = time.thread_time(), time.process_time()
            await asyncio.gather(*(writer(k) for k in range(WRITERS)))
            t1, p1 = time.thread_time(), time.process_time()
            if prof is not None:
                prof.disable()
                prof.dump_stats(args.profile)
            if r:
                loop_us.append((t1 - t0) / args.files * 1e6)
                proc_us.append((p1 - p0) / args.files * 1e6)
            if args.read:
                vfs.data.fetcher.mem.clear()  # the read goes to the store, as after drop_caches

                async def reader(k: int, d: int = d) -> None:
                    for i in range(k, args.files, WRITERS):
                        await _read(ops, rc, d, b"f%07d" % i)

                rprof = cProfile.Profile(time.thread_time) if args.profile_read and r == 1 else None
                if rprof is not None:
                    rprof.enable()
                t0, p0 = time.thread_time(), time.process_time()
                await asyncio.gather(*(reader(k) for k in range(WRITERS)))
                t1, p1 = time.thread_time(), time.process_time()
                if rprof is not None:
                    rprof.disable()
                    rprof.dump_stats(args.profile_read)
                if r:
                    read_loop_us.append((t1 - t0) / args.files * 1e6)
                    read_proc_us.append((p1 - p0) / args.files * 1e6)
        gc.callbacks.remove(on_gc)
        if read_loop_us:
            print(f"read (lookup, open, read 128 KiB, flush, release): loop-thread CPU µs/file: median "
                  f"{statistics.median(read_loop_us):.0f} ({min(read_loop_us):.0f}-{max(read_loop_us):.0f}); "
                  f"process: {statistics.median(read_proc_us):.0f} ({min(read_proc_us):.0f}-{max(read_proc_us):.0f})")
        print(f"loop-thread CPU µs/file: median {statistics.median(loop_us):.0f} ({min(loop_us):.0f}-{max(loop_us):.0f});"
              f" process: {statistics.median(proc_us):.0f} ({min(proc_us):.0f}-{max(proc_us):.0f});"
              f" cyclic collections {({g: (n, round(s, 4)) for g, (n, s) in collections_run.items()})};"
              f" tracked objects {len(gc.get_objects())}")
        if args.garbage:
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                d, _ = await vfs.mkdir(vfs.ctx(), client.root, b"garbage", 0o755)
                for i in range(200):
                    await _file(ops, rc, d, b"g%d" % i)
                gc.collect()
                kinds = collections.Counter(type(x).__name__ for x in gc.garbage)
                print(f"cyclic garbage per file: {len(gc.garbage) / 200:.1f}", kinds.most_common(12))
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
    finally:
        await client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--meta-url", default="")
    ap.add_argument("--profile", default="")
    ap.add_argument("--garbage", action="store_true")
    ap.add_argument("--profile-read", default="", help="with --read: cProfile of the first measured read round")
    ap.add_argument("--read", action="store_true",
                    help="after each round's writes, read each file once (lookup, open, read, flush, release; "
                         "the client's memory cache of blocks emptied first) and print its CPU per file too")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work, contextlib.ExitStack() as stack:
        url = args.meta_url
        if not url:
            from jfs.testing.servers import start_redis_server

            server = start_redis_server()
            stack.callback(server.stop)
            url = server.url + "/1"
        subprocess.run([str(Path(sys.executable).parent / "jfs"), "format", url, "bench", "--bucket",
                        os.path.join(work, "bucket"), "--trash-days", "0"], check=True,
                       capture_output=True)
        import uvloop

        uvloop.run(_run(url, args, work))


if __name__ == "__main__":
    main()

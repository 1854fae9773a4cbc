"""Loop-thread CPU per LOOKUP on Redis + file, in process (no kernel): what a mount's loop does for one cold stat.

    cd /tmp && PYTHONPATH=TREE .venv/bin/python -P TREE/bench/redis_lookup_cpu.py [--files 2000] [--rounds 5] \
        [--meta-url redis://HOST:PORT/DB] [--profile OUT.prof]

`--files` files are made in one directory (`Meta.mknod`, not timed); then each round LOOKUPs every one of them
through `VfsOperations.lookup` with a mount's client options (permissions left to the kernel, no entry or
attribute cache: the kernel's LOOKUP after drop_caches: the FUSE handler down to the Redis
FOLLOW script), 4 workers at once as compare.py's mdtest stat runs 4 processes. Printed: loop-thread CPU
(``thread_time``) per LOOKUP, median (min-max) over the rounds after one warm-up round. ``--profile``: cProfile
of the first measured round by the thread's CPU clock (slower; shape only). ``--ab``: rounds alternate between
the engine's `read_follow` (ADR 0094) and the read-only transaction it replaced (`read_follow` hidden from
`namespace.lookup`), in one process, so that the machine's load weighs on both alike. For an A/B of two trees,
alternate runs with PYTHONPATH and ``python -P``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
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
from jfs.domain.attrs import FileType

WORKERS = 4


async def _run(url: str, args: argparse.Namespace, work: str) -> list[float]:
    client = await open_client(url, ClientOptions(cache_dir=os.path.join(work, "cache"), background_jobs=False,
                                                     permission_checks=False, entry_cache=0, attr_cache=0))  # as a mount
    try:
        vfs = client.vfs
        ops = VfsOperations(vfs, MountConfig())
        rc = RequestContext(0, 0, 1)
        settle_for_serving()
        d, _ = await vfs.mkdir(vfs.ctx(), client.root, b"stat", 0o755)
        names = [b"f%d" % i for i in range(args.files)]
        for name in names:
            await vfs.meta.mknod(d, name, FileType.REGULAR, 0o644)
        per: list[float] = []
        txn: list[float] = []
        kv: Any = vfs.meta.kv
        follow = getattr(kv, "read_follow", None)
        for r in range((args.rounds + 1) * (2 if args.ab else 1)):
            old = args.ab and r % 2 == 1
            if args.ab or args.txn:
                kv.read_follow = None if old or args.txn else follow
            async def worker(k: int) -> None:
                lookup = ops.lookup
                for name in names[k::WORKERS]:
                    await lookup(rc, d, name)

            prof = cProfile.Profile(time.thread_time) if args.profile and r == 1 else None
            if prof is not None:
                prof.enable()
            t0 = time.thread_time()
            await asyncio.gather(*(worker(k) for k in range(WORKERS)))
            t1 = time.thread_time()
            if prof is not None:
                prof.disable()
                prof.dump_stats(args.profile)
            elif r >= (2 if args.ab else 1):
                (txn if old else per).append((t1 - t0) / args.files * 1e6)
        if txn:
            print(f"read-only transaction: loop-thread CPU µs/LOOKUP: median {statistics.median(txn):.1f} "
                  f"({min(txn):.1f}-{max(txn):.1f}) rounds {' '.join(f'{x:.1f}' for x in txn)}")
        return per
    finally:
        await client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--meta-url", default="")
    ap.add_argument("--profile", default="")
    ap.add_argument("--ab", action="store_true", help="alternate read_follow and the transaction it replaced")
    ap.add_argument("--txn", action="store_true", help="every round through the transaction read_follow replaced "
                    "(for instruction counts: `perf stat -e instructions:u` of a run with and without)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work, contextlib.ExitStack() as stack:
        url = args.meta_url
        if not url:
            from jfs.testing.servers import start_redis_server

            server = start_redis_server()
            stack.callback(server.stop)
            url = server.url + "/1"
        subprocess.run([str(Path(sys.executable).parent / "jfs"), "format", url, "bench", "--bucket",
                        os.path.join(work, "bucket"), "--trash-days", "0"], check=True, capture_output=True)
        import uvloop

        per = uvloop.run(_run(url, args, work))
        if per:
            print(f"loop-thread CPU µs/LOOKUP: median {statistics.median(per):.1f} ({min(per):.1f}-{max(per):.1f}) "
                  f"rounds {' '.join(f'{x:.1f}' for x in per)}")


if __name__ == "__main__":
    main()

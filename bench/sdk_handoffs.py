"""The sync SDK alone: wall latency and CPU seconds of this process per operation, for the hand-off to the
loop thread (an empty coroutine through `Client.run`) and for the rows of bench/sdk_bench.py. Meant for A/B
runs of two checkouts on a shared machine: alternate them several times and compare ranges.

Usage:  .venv/bin/python bench/sdk_handoffs.py [--files 1000] [--big-mib 128] [--calls 20000] [--big4-only]
        JFS_BENCH_CODE=/path/to/other/checkout .venv/bin/python bench/sdk_handoffs.py   # the other code

`JFS_BENCH_CODE` imports `jfs` from that directory instead of this environment's (editable) install, e.g.
``git archive <rev> jfs | tar -x -C /tmp/base`` then ``JFS_BENCH_CODE=/tmp/base``. SQLite + local directory,
volume formatted with ``--trash-days 0`` in a temporary directory removed at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

if os.environ.get("JFS_BENCH_CODE"):
    sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, os.environ["JFS_BENCH_CODE"])

import jfs  # noqa: E402

SMALL = b"s" * 4096
BLOCK = b"\xa5" * (1 << 20)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(label: str, n: int, fn: Callable[[], Any]) -> None:
    c0, t0 = cpu(), time.perf_counter()
    fn()
    wall, used = time.perf_counter() - t0, cpu() - c0
    print(f"{label:34} {n / wall:>10,.0f}/s  latency {wall / n * 1e6:>7,.1f} us  cpu {used / n * 1e6:>7,.1f} us/op",
          flush=True)


def parallel_big(c: jfs.Client, base: str, mib: int) -> None:
    def one(path: str) -> None:
        with c.open(path, "wb") as f:
            for _ in range(mib // 4):
                f.write(BLOCK)

    threads = [threading.Thread(target=one, args=(f"{base}/big4-{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


async def nothing() -> None:
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--big-mib", type=int, default=128)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--big4-only", action="store_true", help="only the 4-thread big write, twice")
    args = ap.parse_args()
    n = args.files
    work = tempfile.mkdtemp(prefix="jfs-sdk-handoffs-")
    url = f"sqlite3://{work}/meta.db"
    jfs_bin = os.path.join(os.path.dirname(sys.executable), "jfs")
    subprocess.run([jfs_bin, "format", url, "sdk-handoffs", "--bucket", f"{work}/bucket", "--trash-days", "0"],
                   check=True, capture_output=True)
    print(f"jfs from {os.path.dirname(jfs.__file__)}", flush=True)
    try:
        with jfs.Client(url, cache_dir=f"{work}/cache") as c:
            c.run(nothing())
            if args.big4_only:
                for k in range(2):
                    c.makedirs(f"/r{k}")
                    measure("big write 4t (per MiB)", args.big_mib, lambda k=k: parallel_big(c, f"/r{k}", args.big_mib))
                return
            measure("hand-off (empty coroutine)", args.calls, lambda: [c.run(nothing()) for _ in range(args.calls)])
            c.makedirs("/s")

            def put(prefix: str, buffering: int) -> None:
                for i in range(n):
                    with c.open(f"/s/{prefix}{i}", "wb", buffering=buffering) as f:
                        f.write(SMALL)

            measure("4 KiB create+write (buffered)", n, lambda: put("f", -1))
            measure("4 KiB create+write (buffering=0)", n, lambda: put("g", 0))
            measure("4 KiB read_bytes", n, lambda: [c.read_bytes(f"/s/f{i}") for i in range(n)])
            measure("stat (just read: cached names)", n, lambda: [c.stat(f"/s/f{i}") for i in range(n)])

            def big(path: str, mib: int) -> None:
                with c.open(path, "wb") as f:
                    for _ in range(mib):
                        f.write(BLOCK)

            measure("big write 1t (per MiB)", args.big_mib, lambda: big("/big1", args.big_mib))
            measure("big write 4t (per MiB)", args.big_mib, lambda: parallel_big(c, "", args.big_mib))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""compare.py's mdtest stat as it runs there, A/B: per round and mount a new tree (mkdir then create of
`--items` files in each of `--procs` directories, as compare.py's mdtest phases before its stat), then
drop_caches and `os.stat` of every file by `--procs` processes. Redis + local directory, one redis-server.

    cd /tmp && sudo .venv/bin/python bench/mdstat_seq_ab.py --rounds 4 --jfs new=.venv/bin/jfs \\
        --jfs base=/tmp/x/jfs-base [--juicefs .venv/bin/juicefs] [--workdir /tmp/x/mdseq]

Printed per round and as median (min-max): stats/s, mount CPU per stat (utime + stime of its process tree),
the mount's CPU during the drop_caches (the FORGETs of the round's inodes) and Redis CPU per stat. Mounts
run in an order rotated each round (docs/adr/0094-redis-kernel-lookup-read-without-a-transaction.md).
"""

from __future__ import annotations

import argparse
import atexit
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ab_bench import tree_cpu  # noqa: E402
from bench.comparison.backends import redis_server  # noqa: E402
from bench.comparison.harness import JfsMount, JuiceFSMount, Mount, drop_caches, progress, unmount_all  # noqa: E402
from bench.comparison.workloads import _md_phase as _job  # noqa: E402
from bench.redis_md_ab import _delta, _redis_info  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jfs", action="append", default=[], help="NAME=EXECUTABLE (repeatable)")
    ap.add_argument("--juicefs", default="")
    ap.add_argument("--workdir", default="/tmp/jfs-mdstat-seq")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("root only (drop_caches)")
    work = Path(args.workdir)
    subprocess.run(["rm", "-rf", str(work)], check=False)
    work.mkdir(parents=True)
    atexit.register(unmount_all)
    with redis_server() as url:
        host, port = url.split("//")[1].split(":")
        cli = ["redis-cli", "-h", host, "-p", port]
        mounts: dict[str, Mount] = {}
        for i, spec in enumerate(args.jfs):
            name, exe = spec.split("=", 1)
            mounts[name] = JfsMount("jfs", exe, f"{url}/{i + 1}", ["--bucket", str(work / f"{name}-bucket")], work / name)
        if args.juicefs:
            mounts["JuiceFS"] = JuiceFSMount("JuiceFS", args.juicefs, f"{url}/9",
                                             ["--bucket", str(work / "juicefs-bucket")], work / "juicefs")
        for m in mounts.values():
            m.root.mkdir(parents=True, exist_ok=True)
            m.format()
            m.mount()
        rows: dict[str, list[tuple[float, float, float, float]]] = {}
        order = list(mounts.items())
        n = args.procs * args.items
        with ProcessPoolExecutor(args.procs) as pool:
            list(pool.map(int, range(args.procs)))
            for r in range(args.rounds):
                for name, m in order:
                    dirs = [m.mnt / f"r{r}" / f"p{i}" for i in range(args.procs)]
                    for d in dirs:
                        d.mkdir(parents=True)
                    for phase in ("mkdir", "create"):
                        list(pool.map(_job, [(str(d), phase, args.items) for d in dirs]))
                    c0, t0 = tree_cpu(m.pid or 0), time.perf_counter()
                    drop_caches()
                    c1, i0, t1 = tree_cpu(m.pid or 0), _redis_info(cli), time.perf_counter()
                    list(pool.map(_job, [(str(d), "stat", args.items) for d in dirs]))
                    t2, c2, i1 = time.perf_counter(), tree_cpu(m.pid or 0), _redis_info(cli)
                    delta = _delta(i0, i1)
                    rcpu = (delta.get("used_cpu_sys", 0) + delta.get("used_cpu_user", 0)) / n * 1e6
                    row = (n / (t2 - t1), (c2 - c1) / n * 1e6, (c1 - c0) * 1e3, rcpu)
                    rows.setdefault(name, []).append(row)
                    progress(f"round {r + 1} {name}: {row[0]:,.0f} stats/s, mount CPU {row[1]:.1f} µs/stat, "
                             f"CPU in drop_caches {row[2]:.0f} ms ({t1 - t0:.2f} s), Redis CPU {row[3]:.1f} µs/stat")
                order = order[1:] + order[:1]
        print("| mount | stats/s | mount CPU µs/stat | mount CPU in drop_caches ms | Redis CPU µs/stat |")
        print("|---|--:|--:|--:|--:|")
        for name, xs in rows.items():
            cells = []
            for k in range(4):
                v = [x[k] for x in xs]
                cells.append(f"{statistics.median(v):,.1f} ({min(v):,.1f}–{max(v):,.1f})")
            print(f"| {name} | " + " | ".join(cells) + " |")
        for m in mounts.values():
            m.unmount()


if __name__ == "__main__":
    main()

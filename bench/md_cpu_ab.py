"""Mount CPU per metadata operation, A/B: this tree's jfs against another tree's, on Redis + file or SQLite + file.

    cd /tmp && /path/to/.venv/bin/python /path/to/bench/md_cpu_ab.py --engine redis --pairs 3 --procs 4 \
        --items 1000 --base-jfs /tmp/base-md/.venv/bin/jfs [--juicefs /path/to/juicefs]

Each tree mounts its own volume (Redis: one redis-server, databases 1 and 3; SQLite: one database file
each). Each round runs the mdtest phases (mkdir, create, stat after drop_caches, rename, unlink, rmdir;
`--procs` processes x `--items` each in their own directories, as `bench.comparison.workloads`) on every
mount, in an order rotated by one per round, so base and new alternate. Per phase and mount: the serving
process's CPU (/proc/PID/stat utime+stime of its process tree) per op, and ops/s (noise on a shared
machine). Median (min-max) over the rounds. Root only (drop_caches).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ab_bench import tree_cpu  # noqa: E402
from bench.comparison.backends import redis_server  # noqa: E402
from bench.comparison.harness import JfsMount, JuiceFSMount, Mount, drop_caches, progress, unmount_all  # noqa: E402
from bench.comparison.workloads import _md_phase as _phase  # noqa: E402

PHASES = ("mkdir", "create", "stat", "rename", "unlink", "rmdir")


def _fmt(v: list[float]) -> str:
    if not v:
        return "-"
    m = statistics.median(v)
    if m >= 100:
        return f"{m:,.0f} ({min(v):,.0f}-{max(v):,.0f})"
    if m < 0.05:  # ms per listed entry: µs matter
        return f"{m:.4f} ({min(v):.4f}-{max(v):.4f})"
    return f"{m:.3f} ({min(v):.3f}-{max(v):.3f})"


@contextlib.contextmanager
def _meta_urls(engine: str, work: Path, names: list[str]) -> Iterator[dict[str, str]]:
    if engine == "sqlite":
        yield {n: f"sqlite3://{work / n / 'meta.db'}" for n in names}
        return
    with redis_server() as url:
        yield {n: f"{url}/{db}" for n, db in zip(names, (1, 3, 5), strict=False)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engine", choices=("redis", "sqlite"), default="redis")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--base-jfs", default="", help="the other tree's jfs executable (none: only this tree)")
    ap.add_argument("--juicefs", default="", help="also a JuiceFS mount with this binary")
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--ls-entries", type=int, default=0,
                    help="also an `ls` phase: `ls -l` (after drop_caches) of one directory of this many files per "
                         "mount, made once before the rounds; its CPU is per entry")
    ap.add_argument("--workdir", default="/tmp/jfs-md-cpu-ab")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("root only (drop_caches)")
    phases = [p for p in args.phases.split(",") if p]
    work = Path(args.workdir)
    subprocess.run(["rm", "-rf", str(work)], check=False)
    work.mkdir(parents=True)
    atexit.register(unmount_all)
    here = Path(sys.executable).parent
    binaries = {"new": str(here / "jfs")}
    if args.base_jfs:
        binaries["base"] = args.base_jfs
    names = list(binaries) + (["JuiceFS"] if args.juicefs else [])
    for n in names:
        (work / n).mkdir()
    with _meta_urls(args.engine, work, names) as urls:
        mounts: dict[str, Mount] = {}
        for n in names:
            storage = ["--storage", "file", "--bucket", f"{work / n / 'bucket'}/"]
            if n == "JuiceFS":
                mounts[n] = JuiceFSMount("JuiceFS", args.juicefs, urls[n], storage, work / n)
            else:
                mounts[n] = JfsMount("jfs", binaries[n], urls[n], storage, work / n)
            mounts[n].format()
            mounts[n].mount()
            if args.ls_entries:
                big = mounts[n].mnt / "big"
                big.mkdir()
                per = -(-args.ls_entries // args.procs)
                subprocess.run(["bash", "-c", f"cd {big} && for p in $(seq 0 {args.procs - 1}); do "
                                f"(for i in $(seq 1 {per}); do : > $p-$i; done) & done; wait"], check=True)
        if args.ls_entries:
            phases.append("ls")
        progress("mounted: " + ", ".join(f"{k} pid {m.pid}" for k, m in mounts.items()))
        res: dict[str, dict[str, list[float]]] = {k: {} for k in names}
        with ProcessPoolExecutor(args.procs) as pool:
            list(pool.map(int, range(args.procs)))  # workers forked before the first timing
            for rnd in range(args.pairs):
                order = names[rnd % len(names):] + names[:rnd % len(names)]
                progress(f"round {rnd + 1}/{args.pairs}: {order}")
                for name in order:
                    m = mounts[name]
                    base = m.mnt / f"r{rnd}"
                    dirs = [base / f"p{i}" for i in range(args.procs)]
                    for d in dirs:
                        d.mkdir(parents=True)
                    for phase in phases:
                        if phase in ("stat", "ls"):
                            drop_caches()
                        c0, t0 = tree_cpu(m.pid or 0), time.perf_counter()
                        if phase == "ls":
                            subprocess.run(["ls", "-l", str(m.mnt / "big")], stdout=subprocess.DEVNULL, check=True)
                            n = args.procs * -(-args.ls_entries // args.procs)
                        else:
                            list(pool.map(_phase, [(str(d), phase, args.items) for d in dirs]))
                            n = args.procs * args.items
                        t1, c1 = time.perf_counter(), tree_cpu(m.pid or 0)
                        r = res[name]
                        r.setdefault(f"{phase} mount CPU ms/op", []).append((c1 - c0) / n * 1e3)
                        r.setdefault(f"{phase} ops/s", []).append(n / (t1 - t0))
        items: list[str] = []
        for per in res.values():
            items += [i for i in per if i not in items]
        items.sort(key=lambda i: (not i.endswith("ms/op"), phases.index(i.split()[0])))
        print(f"engine {args.engine}, {args.pairs} rounds, {args.procs} procs x {args.items} items")
        print("| item | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        for item in items:
            print(f"| {item} | " + " | ".join(_fmt(res[s].get(item, [])) for s in names) + " |")
        for m in mounts.values():
            m.unmount()


if __name__ == "__main__":
    main()

"""`jfs summary` and renames on a SQLite + file volume filled through its mount, base vs new vs JuiceFS, each
on the mount that created the tree (issue 17, "Scale"; ADR 0096).

Usage:  .venv/bin/python bench/sqlite_tree_ab.py --base-cli /tmp/X/jfs-base [--files 200000] [--per-dir 1000]
        [--rename 10000] [--rounds 3] [--juicefs PATH] [--workdir DIR] [--systems base,new,juicefs]

Per system: format a volume of its own (trash off), mount it, create ``--files`` empty files in
directories of ``--per-dir`` with 4 processes (bench/scale.py's tree and workers), ``du -s`` after
dropping the caches — the state scale.py's summary and rename phases start from. Then ``--rounds`` rounds,
systems in rotated order: ``summary`` of the tree (wall seconds, the mount's CPU per inode) and ``--rename``
renames within their directories (f -> f.r, or back when f.r is there; renames/s, the mount's CPU per rename).
The size of the database and of its WAL is printed after each step. ``--base-cli`` is an executable that
runs the base tree's CLI (e.g. ``cd / && PYTHONPATH=BASE python -P -c 'from jfs.cli import run; run()'``).
Needs root. Everything is unmounted and the work directory removed (unless ``--workdir``) on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comparison.harness import cpu_between, cpu_sample  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")

from scale import System, _chunks, _create, _pool_run, _rename_many, _worker_signals, drop_caches, say  # noqa: E402


def sizes(s: System) -> str:
    out = []
    db = Path(s.meta_url.removeprefix("sqlite3://"))
    for name in (db.name, db.name + "-wal"):
        p = db.parent / name
        out.append(f"{name} {p.stat().st_size / 2**20:.0f} MiB" if p.exists() else f"{name} -")
    return ", ".join(out)


def thread_cpu(s: System) -> float:
    """CPU seconds of the serving process's threads other than its main one (SQLite's workers and
    checkpointer, executors): work done off the event loop's thread."""
    total = 0.0
    for pid in s.servers:
        for task in Path(f"/proc/{pid}/task").iterdir():
            if task.name == str(pid):
                continue
            with contextlib.suppress(OSError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def build(s: System, pool: object, args: argparse.Namespace) -> None:
    s.format()
    s.mount()
    top = str(s.mnt / "tree")
    Path(top).mkdir(parents=True, exist_ok=True)
    jobs = []
    for d in range(-(-args.files // args.per_dir)):
        jobs.append((top, d, 0, min(args.per_dir, args.files - d * args.per_dir)))
    seconds = _pool_run(pool, _create, jobs)
    say(f"{s.name}: created {args.files:,} files ({args.files / seconds:,.0f}/s); {sizes(s)}")
    drop_caches()
    started = time.perf_counter()
    subprocess.run(["du", "-s", top], stdout=subprocess.DEVNULL, check=True)
    say(f"{s.name}: du -s {time.perf_counter() - started:.1f} s; {sizes(s)}")


def round_(s: System, pool: object, args: argparse.Namespace, r: int, out: dict[str, list[float]]) -> None:
    top = s.mnt / "tree"
    inodes = args.files + -(-args.files // args.per_dir)
    if args.du:  # scale.py's order: du -s after dropping the caches, then summary and renames
        drop_caches()
        started = time.perf_counter()
        subprocess.run(["du", "-s", str(top)], stdout=subprocess.DEVNULL, check=True)
        out.setdefault("du -s s", []).append(time.perf_counter() - started)
    off = thread_cpu(s)
    start, started = cpu_sample(s.servers), time.perf_counter()
    s.run("summary", str(top), timeout=7200)
    wall, cpu = time.perf_counter() - started, cpu_between(start, cpu_sample(s.servers)) or 0.0
    out.setdefault("summary off-loop CPU %", []).append((thread_cpu(s) - off) / max(cpu, 1e-9) * 100)
    off = thread_cpu(s)
    out.setdefault("summary s", []).append(wall)
    out.setdefault("summary CPU µs/inode", []).append(cpu / inodes * 1e6)
    pairs = []
    for n in range(args.rename):  # the direction per file: shared volumes are renamed in turns
        d, i = divmod(n, args.per_dir)
        src = f"{top}/d{d:05d}/f{i:05d}"
        pairs.append((src + ".r", src) if os.path.lexists(src + ".r") else (src, src + ".r"))
    start = cpu_sample(s.servers)
    seconds = _pool_run(pool, _rename_many, _chunks(pairs, 4))
    rcpu = cpu_between(start, cpu_sample(s.servers)) or 0.0
    out.setdefault("rename off-loop CPU %", []).append((thread_cpu(s) - off) / max(rcpu, 1e-9) * 100)
    out.setdefault("rename/s", []).append(args.rename / seconds)
    out.setdefault("rename CPU µs/op", []).append(rcpu / args.rename * 1e6)
    say(f"{s.name} round {r}: summary {wall:.2f} s ({cpu / inodes * 1e6:.2f} µs/inode), rename "
        f"{args.rename / seconds:,.0f}/s ({rcpu / args.rename * 1e6:.0f} µs/op); {sizes(s)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-cli", required=True)
    ap.add_argument("--files", type=int, default=200_000)
    ap.add_argument("--per-dir", type=int, default=1000)
    ap.add_argument("--rename", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--juicefs", default=str(Path(sys.executable).parent / "juicefs"))
    ap.add_argument("--systems", default="base,new,juicefs")
    ap.add_argument("--workdir")
    ap.add_argument("--volume", help="one SQLite volume (path of its meta.db) mounted by every jfs system, "
                    "built by the first unless --built; default: a volume per system")
    ap.add_argument("--du", action="store_true", help="drop the caches and du -s the tree before each round")
    ap.add_argument("--built", action="store_true", help="the --volume already holds the tree")
    args = ap.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="jfs-sqltree-"))
    new_cli = [sys.executable, "-c", "from jfs.cli import run; run()"]
    clis = {"base": [args.base_cli], "new": new_cli, "juicefs": [args.juicefs]}
    systems = []
    for name in args.systems.split(","):
        root = workdir / name
        root.mkdir(parents=True, exist_ok=True)
        url = f"sqlite3://{args.volume or root / 'meta.db'}" if name != "juicefs" else f"sqlite3://{root / 'meta.db'}"
        systems.append(System("juicefs" if name == "juicefs" else "jfs", clis[name], root, url, url))
    labels = args.systems.split(",")
    results: dict[str, dict[str, list[float]]] = {n: {} for n in labels}
    try:
        with mp.get_context("fork").Pool(4, initializer=_worker_signals) as pool:
            shared_built = args.built
            for s, n in zip(systems, labels, strict=True):
                if args.volume and n != "juicefs" and shared_built:
                    s.mount()
                    continue
                build(s, pool, args)
                shared_built = shared_built or (bool(args.volume) and n != "juicefs")
                say(f"{n}: built")
            for r in range(args.rounds):
                order = list(zip(systems, labels, strict=True))
                k = r % len(order)
                for s, n in order[k:] + order[:k]:
                    s.name = n
                    round_(s, pool, args, r, results[n])
    finally:
        for s in systems:
            s.unmount()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print("| system | " + " | ".join(next(iter(results.values())).keys()) + " |")
    for n, res in results.items():
        cells = [f"{statistics.median(v):,.2f} ({min(v):,.2f}–{max(v):,.2f})" for v in res.values()]
        print(f"| {n} | " + " | ".join(cells) + " |")
    return 0


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # unmount on any of them
        signal.signal(sig, _interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

"""Small-file write in `bench/compare.py`'s sequence: jfs trees and JuiceFS on Redis + file, alternating rounds.

Usage:  .venv/bin/python bench/smallw_seq.py [--rounds 3] [--big-mib 128] [--small 100] [-p 4]
        [--workdir DIR] [--pyspy SECONDS] TARGET [TARGET ...]

A TARGET is ``LABEL=TREE`` (a directory holding a ``jfs`` package, run with ``python -P``) or
``LABEL=juicefs``. Each round runs every target on a fresh volume (its own Redis database, FLUSHDB'd,
``--trash-days 0``, disk cache in the work directory) through compare.py's own `workload_bench`: with
``--big-mib`` > 0 a `juicefs bench` of big files only, then one of small files only (compare's first
workload); ``--big-mib 0`` runs the small files alone. Printed per target: small write / read / stat
files/s and the mount's CPU per 10k small-file ops (median and range over rounds). ``--pyspy S`` records
the jfs mounts for S seconds from the start of the small-file invocation (py-spy must be on PATH).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comparison import workloads  # noqa: E402
from comparison.backends import flush_redis_db, redis_server  # noqa: E402
from comparison.harness import DEFAULT, JfsMount, JuiceFSMount, RssSampler  # noqa: E402

BIN = Path(sys.executable).parent
KEYS = ("bench.small_write", "bench.small_read", "bench.stat", "bench.cpu_small")


def wrapper(workdir: Path, label: str, tree: str) -> str:
    """A `jfs` executable that runs `tree`'s package with this venv's Python (``-P``: no cwd on sys.path)."""
    path = workdir / f"jfs-{label}"
    path.write_text(f'#!/bin/sh\nPYTHONPATH={Path(tree).resolve()} exec {sys.executable} -P -m jfs.cli.main "$@"\n')
    path.chmod(0o755)
    return str(path)


def read_stats(mnt: Path) -> dict[str, float]:
    from jfs.app.metrics import parse_stats

    return parse_stats((mnt / ".stats").read_text())


def spy(pid: int, seconds: float, out: Path) -> None:
    subprocess.run(["py-spy", "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200", "-f", "raw",
                    "-o", str(out), "--nonblocking"], capture_output=True, check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--big-mib", type=int, default=128)
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("-p", type=int, default=4)
    ap.add_argument("--workdir", default="/tmp/smallw/seq")
    ap.add_argument("--pyspy", type=float, default=0.0)
    ap.add_argument("--settle", type=float, default=0.0, help="seconds to wait before the small files")
    ap.add_argument("--stats-top", type=int, default=40)
    ap.add_argument("targets", nargs="+")
    a = ap.parse_args()
    work = Path(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    juicefs = str(BIN / "juicefs")
    targets = []
    settles: dict[str, float] = {}
    for spec in a.targets:
        label, _, tree = spec.partition("=")
        tree, _, settle = tree.partition("@")
        settles[label] = float(settle or a.settle)
        targets.append((label, juicefs if tree == "juicefs" else wrapper(work, label, tree)))
    params = DEFAULT.__class__(**{**DEFAULT.__dict__, "threads": a.p, "big_file_mib": max(a.big_mib, 1),
                                  "small_file_count": a.small})
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in targets}
    diffs: dict[str, list[dict[str, float]]] = {}
    with redis_server() as url:
        for rnd in range(1, a.rounds + 1):
            order = targets if rnd % 2 else list(reversed(targets))
            for db, (label, binary) in enumerate(order, start=1):
                meta = f"{url}/{db}"
                flush_redis_db(meta)
                root = work / f"{label}-r{rnd}"
                root.mkdir()
                cls = JuiceFSMount if binary == juicefs else JfsMount
                mount = cls(label, binary, meta, ["--storage", "file", "--bucket", f"{root / 'bucket'}/"], root)
                mount.format()
                mount.mount()
                res: dict = {}
                try:
                    with RssSampler(mount) as sampler:
                        ctx = workloads.Context(mount, params, juicefs, sampler, f"{label}/r{rnd}", res,
                                                full=a.big_mib > 0)
                        spier = None
                        stats_before: dict[str, float] = {}
                        original = workloads.run
                        if cls is JfsMount or settles[label]:
                            original = workloads.run

                            def run(cmd, *, _o=original, **kw):  # type: ignore[no-untyped-def]
                                nonlocal spier
                                if "--small-file-count" in cmd and cmd[cmd.index("--small-file-count") + 1] != "0":
                                    time.sleep(settles[label])
                                    if cls is JfsMount:
                                        stats_before.update(read_stats(mount.mnt))
                                    if not a.pyspy:
                                        return _o(cmd, **kw)
                                    out = work / f"spy-{label}-r{rnd}.txt"
                                    spier = threading.Thread(target=spy, args=(mount.pid, a.pyspy, out))
                                    spier.start()
                                    time.sleep(0.5)
                                return _o(cmd, **kw)

                            workloads.run = run
                        try:
                            workloads.workload_bench(ctx)
                        finally:
                            workloads.run = original
                            if cls is JfsMount:
                                after = read_stats(mount.mnt)
                                diff = {k: after[k] - stats_before.get(k, 0.0) for k in after}
                                diffs.setdefault(label, []).append(diff)
                            if spier is not None:
                                spier.join()
                finally:
                    mount.unmount()
                    shutil.rmtree(root, ignore_errors=True)
                got = {k: float(res[k]) for k in KEYS if isinstance(res.get(k), float | int)}
                results[label].append(got)
                print(f"round {rnd} {label}: " + "  ".join(f"{k.split('.')[1]}={v:.4g}" for k, v in got.items()),
                      flush=True)
            for label, _ in targets:
                flush_redis_db(f"{url}/{[t[0] for t in order].index(label) + 1}")
    print(f"\n{'target':10} " + " ".join(f"{k.split('.')[1]:>26}" for k in KEYS))
    for label, rows in results.items():
        cells = []
        for k in KEYS:
            vals = [r[k] for r in rows if k in r]
            cells.append(f"{statistics.median(vals):9.4g} ({min(vals):.4g}–{max(vals):.4g})" if vals else "-")
        print(f"{label:10} " + " ".join(f"{c:>26}" for c in cells))
    for label, runs in diffs.items():
        keys = sorted({k for d in runs for k in d}, key=lambda k: -abs(statistics.median(d.get(k, 0) for d in runs)))
        print(f"\n.stats of {label} over the small-file invocation (median of rounds):")
        for k in keys[: a.stats_top]:
            print(f"  {k:60} {statistics.median(d.get(k, 0) for d in runs):14.6g}")
    os.sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())

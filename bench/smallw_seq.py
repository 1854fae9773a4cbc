"""Small-file write in `bench/compare.py`'s sequence: jfs trees and JuiceFS on Redis + file, alternating rounds.

Usage:  .venv/bin/python bench/smallw_seq.py [--rounds 3] [--big-mib 128] [--small 100] [-p 4]
        [--workdir DIR] [--settle S] [--pyspy SECONDS] [--stats-top N] TARGET [TARGET ...]

A TARGET is ``LABEL=TREE[@SETTLE]`` (a directory holding a ``jfs`` package, run with ``python -P``) or
``LABEL=juicefs[@SETTLE[@NICE]]``; SETTLE: seconds to wait between the big and the small files (default
``--settle``); NICE: a nice value set on the serving process's main thread once mounted (an experiment). Each round runs every target (order reversed in even rounds) on a fresh volume (its own
Redis database, FLUSHDB'd, ``--trash-days 0``, disk cache in the work directory) through compare.py's own
`workload_bench`: with ``--big-mib`` > 0 a `juicefs bench` of big files only, then one of small files only
(compare's first workload); ``--big-mib 0`` runs the small files alone, as `bench/ab_bench.py --big 0`.

Printed per target: small write / read / stat files/s and the mount's CPU per 10k small-file ops (median
and range over rounds); the kernel's Dirty / Writeback memory when the small files start; for jfs the
change of every `.stats` counter over the small-file invocation; the involuntary context switches of the
serving process (main thread, all threads) over it. ``--pyspy S`` records the jfs mounts
(raw py-spy output, 200 Hz) for S seconds from the start of the small-file invocation (py-spy on PATH).
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comparison import workloads  # noqa: E402
from comparison.backends import flush_redis_db, redis_server  # noqa: E402
from comparison.harness import DEFAULT, JfsMount, JuiceFSMount, Mount, RssSampler  # noqa: E402

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


def dirty_kib() -> list[str]:
    with open("/proc/meminfo") as f:
        return [ln.split()[1] for ln in f if ln.startswith(("Dirty:", "Writeback:"))]


def switches(pid: int) -> tuple[int, int]:
    """Involuntary context switches of process `pid`: (its main thread, all its threads)."""
    main = total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:
            continue
        n = int(next(ln.split()[1] for ln in text.splitlines() if ln.startswith("nonvoluntary_ctxt_switches")))
        total += n
        if task.name == str(pid):
            main = n
    return main, total


def spy(pid: int, seconds: float, out: Path) -> None:
    subprocess.run(["py-spy", "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200", "-f", "raw",
                    "-o", str(out), "--nonblocking"], capture_output=True, check=False)


class SmallHook:
    """Wraps `workloads.run`: before the small-file `juicefs bench` it waits `settle` s, reads `.stats`
    (jfs) and starts py-spy if asked; `finish` gives the `.stats` change over it."""

    def __init__(self, mount: Mount, is_jfs: bool, settle: float, pyspy: float, spy_out: Path, label: str) -> None:
        self.mount, self.is_jfs, self.settle, self.pyspy, self.spy_out = mount, is_jfs, settle, pyspy, spy_out
        self.label = label
        self.before: dict[str, float] = {}
        self.spier: threading.Thread | None = None
        self.switched: tuple[int, int] | None = None
        self.original = workloads.run

    def __enter__(self) -> SmallHook:
        workloads.run = self.run
        return self

    def run(self, cmd: list[str], **kw: Any) -> str:
        if "--small-file-count" in cmd and cmd[cmd.index("--small-file-count") + 1] != "0":
            time.sleep(self.settle)
            print(f"{self.label}: before the small files Dirty/Writeback kB: {dirty_kib()}", flush=True)
            pid = self.mount.pid
            start = switches(pid) if pid else None
            if self.is_jfs:
                self.before = read_stats(self.mount.mnt)
                if self.pyspy and self.mount.pid:
                    self.spier = threading.Thread(target=spy, args=(self.mount.pid, self.pyspy, self.spy_out))
                    self.spier.start()
                    time.sleep(0.5)
            out = self.original(cmd, **kw)
            if pid and start:
                end = switches(pid)
                self.switched = (end[0] - start[0], end[1] - start[1])
                print(f"{self.label}: involuntary switches over the small files: main thread {self.switched[0]}, "
                      f"all threads {self.switched[1]}", flush=True)
            return out
        return self.original(cmd, **kw)

    def __exit__(self, *exc: object) -> None:
        workloads.run = self.original
        if self.spier is not None:
            self.spier.join()

    def stats_change(self) -> dict[str, float]:
        after = read_stats(self.mount.mnt)
        return {k: after[k] - self.before.get(k, 0.0) for k in after}


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--big-mib", type=int, default=128)
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("-p", type=int, default=4)
    ap.add_argument("--workdir", default="/tmp/smallw/seq")
    ap.add_argument("--settle", type=float, default=0.0)
    ap.add_argument("--pyspy", type=float, default=0.0)
    ap.add_argument("--stats-top", type=int, default=40)
    ap.add_argument("targets", nargs="+")
    a = ap.parse_args()
    work = Path(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    juicefs = str(BIN / "juicefs")
    targets: list[tuple[str, str, float]] = []
    nices: dict[str, int] = {}
    for spec in a.targets:
        label, _, rest = spec.partition("=")
        tree, _, after = rest.partition("@")
        settle, _, nice = after.partition("@")
        targets.append((label, juicefs if tree == "juicefs" else wrapper(work, label, tree), float(settle or a.settle)))
        nices[label] = int(nice or 0)
    params = DEFAULT.__class__(**{**DEFAULT.__dict__, "threads": a.p, "big_file_mib": max(a.big_mib, 1),
                                  "small_file_count": a.small})
    results: dict[str, list[dict[str, float]]] = {t[0]: [] for t in targets}
    diffs: dict[str, list[dict[str, float]]] = {}
    with redis_server() as url:
        for rnd in range(1, a.rounds + 1):
            order = targets if rnd % 2 else list(reversed(targets))
            for db, (label, binary, settle) in enumerate(order, start=1):
                meta = f"{url}/{db}"
                flush_redis_db(meta)
                root = work / f"{label}-r{rnd}"
                root.mkdir()
                is_jfs = binary != juicefs
                cls = JfsMount if is_jfs else JuiceFSMount
                mount = cls(label, binary, meta, ["--storage", "file", "--bucket", f"{root / 'bucket'}/"], root)
                mount.format()
                mount.mount()
                if nices[label] and mount.pid:  # the serving process's main thread only (Linux: per thread)
                    os.setpriority(os.PRIO_PROCESS, mount.pid, nices[label])
                res: dict[str, Any] = {}
                try:
                    with RssSampler(mount) as sampler, SmallHook(mount, is_jfs, settle, a.pyspy,
                                                                 work / f"spy-{label}-r{rnd}.txt",
                                                                 f"{label}/r{rnd}") as hook:
                        ctx = workloads.Context(mount, params, juicefs, sampler, f"{label}/r{rnd}", res,
                                                full=a.big_mib > 0)
                        workloads.workload_bench(ctx)
                    if is_jfs:
                        diffs.setdefault(label, []).append(hook.stats_change())
                finally:
                    mount.unmount()
                    shutil.rmtree(root, ignore_errors=True)
                    flush_redis_db(meta)
                got = {k: float(res[k]) for k in KEYS if isinstance(res.get(k), float | int)}
                results[label].append(got)
                print(f"round {rnd} {label}: " + "  ".join(f"{k.split('.')[1]}={v:.4g}" for k, v in got.items()),
                      flush=True)
    print(f"\n{'target':10} " + " ".join(f"{k.split('.')[1]:>26}" for k in KEYS))
    for label, rows in results.items():
        cells = []
        for k in KEYS:
            vals = [r[k] for r in rows if k in r]
            cells.append(f"{statistics.median(vals):9.4g} ({min(vals):.4g}–{max(vals):.4g})" if vals else "-")
        print(f"{label:10} " + " ".join(f"{c:>26}" for c in cells))
    for label, runs in diffs.items():
        if not a.stats_top:
            break
        keys = sorted({k for d in runs for k in d}, key=lambda k: -abs(statistics.median(d.get(k, 0) for d in runs)))
        print(f"\n.stats of {label} over the small-file invocation (median of rounds):")
        for k in keys[: a.stats_top]:
            print(f"  {k:60} {statistics.median(d.get(k, 0) for d in runs):14.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`jfs summary` vs `juicefs summary` on existing Redis volumes: a fresh mount's first summary, a repeated
one, and the command's start-up alone (issue 17; ADR 0098).

Usage:  .venv/bin/python bench/summary_first_repeat.py JFS-URL JUICEFS-URL REDIS-PID SCRATCH [--cycles 3]

Per cycle (the system that goes first alternates): mounts both volumes afresh under SCRATCH, then for each
system ``summary`` of the root twice (``first``, ``repeat``) and ``summary`` of an empty directory
``.summary-empty`` (created once at the root: the command's start-up, its request and the mount's answer
without a walk), each timed as wall seconds, the command's CPU (wait4), the mount's CPU (/proc) and
redis-server's CPU (/proc of REDIS-PID); unmounts both. jfs runs as users run it (the console script's
entry, `jfs.cli.run`). Prints one line per run and the medians. Needs root (FUSE); leaves nothing mounted.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comparison.harness import fuse_servers  # noqa: E402
from summary_ab import proc_cpu, run_child  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("jfs_url")
    ap.add_argument("juicefs_url")
    ap.add_argument("redis_pid", type=int)
    ap.add_argument("scratch")
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--juicefs", default=str(Path(sys.executable).parent / "juicefs"))
    args = ap.parse_args()
    scratch = Path(args.scratch)
    jfs = [sys.executable, "-c", "from jfs.cli import run; run()"]
    systems = {"jfs": (jfs, args.jfs_url), "juicefs": ([args.juicefs], args.juicefs_url)}
    rows: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    for cycle in range(args.cycles):
        mnts: dict[str, Path] = {}
        try:
            for name, (cli, url) in systems.items():
                mnt = scratch / f"fr-{name}"
                mnt.mkdir(parents=True, exist_ok=True)
                subprocess.run([*cli, "mount", url, str(mnt), "-d", "--log", str(scratch / f"fr-{name}.log")],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
                mnts[name] = mnt
                (mnt / ".summary-empty").mkdir(exist_ok=True)
            time.sleep(1)
            order = list(systems) if cycle % 2 == 0 else list(systems)[::-1]
            for kind, sub in (("first", ""), ("repeat", ""), ("empty", ".summary-empty")):
                for name in order:
                    mnt = mnts[name]
                    servers = fuse_servers(mnt)
                    m0, r0 = sum(proc_cpu(p) for p in servers), proc_cpu(args.redis_pid)
                    sec, cpu = run_child([*systems[name][0], "summary", str(mnt / sub)])
                    mcpu = sum(proc_cpu(p) for p in servers) - m0
                    rcpu = proc_cpu(args.redis_pid) - r0
                    rows.setdefault((name, kind), []).append((sec, cpu, mcpu, rcpu))
                    print(f"cycle {cycle} {name:7} {kind:6}: {sec:6.3f} s  CLI CPU {cpu:5.2f}  mount CPU {mcpu:5.2f}"
                          f"  redis CPU {rcpu:5.2f}", flush=True)
        finally:
            for mnt in mnts.values():
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False, timeout=60,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
    print("\nsystem | run | wall s | command CPU s | mount CPU s | redis CPU s  (medians; wall per run)")
    for (name, kind), runs in rows.items():
        med = [statistics.median(r[i] for r in runs) for i in range(4)]
        print(f"| {name} | {kind} | {med[0]:.3f} | {med[1]:.2f} | {med[2]:.2f} | {med[3]:.2f} |  "
              f"({', '.join(f'{r[0]:.2f}' for r in runs)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

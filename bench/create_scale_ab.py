"""Does a create through the mount cost more late in a big volume than early? Base code vs this checkout.

Usage:  .venv/bin/python bench/create_scale_ab.py --base DIR [--code head=DIR --codes base,head,new] [--rounds 3] [--early 20000] [--late-at 200000]
        [--late 20000] [--processes 4] [--per-dir 1000] [--workdir DIR] [--py-spy SECONDS]

``--base DIR`` holds a ``jfs`` package (``git archive <commit> jfs | tar -x -C DIR``), run with
``python -P -m jfs.cli.main`` and PYTHONPATH=DIR (``-P``: the working directory never shadows it). One
private Redis server; per round and code (base, new, alternating, each on a freshly formatted volume of its
own database, trash off): mount, create files 0 – ``--early`` (measured), fill up to ``--late-at``
(measured too, reported as "fill"), then files ``--late-at`` – ``--late-at + --late`` (measured), unmount,
flush the database. The workload is `bench/scale.py`'s (``--processes`` processes, ``--per-dir`` files per
directory, open(O_CREAT) + close). Per segment: files/s, CPU µs per create of the processes serving the
mount and of redis-server (/proc/PID/stat), Redis's key count, the kernel's ``fuse_inode`` slab objects, the mount's RSS at the segment's end.
Prints one row per segment and the medians (with min–max) per code and segment. ``--py-spy N`` records N
seconds of the mount in the early and in the late segment of the first new-code round (flame graphs in
the work directory). Needs root (FUSE).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jfs.adapters.fuse.mounting import is_mounted

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comparison.harness import cpu_between, cpu_sample, fuse_servers, proc_cpu  # noqa: E402
from scale import _create, _worker_signals  # noqa: E402

from jfs.testing.servers import redis_server  # noqa: E402


def fuse_inodes() -> int:
    """Active objects of the kernel's ``fuse_inode`` slab (0 if unreadable)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/slabinfo").read_text().splitlines():
            if line.startswith("fuse_inode "):
                return int(line.split()[1])
    return 0


def rss_mib(servers: dict[int, int]) -> float:
    """Resident memory of the processes serving the mount (MiB)."""
    total = 0
    for pid in servers:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0])
    return total / 1024


def redis_cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=True).stdout


def segment_jobs(top: str, start: int, stop: int, per_dir: int) -> list[tuple[str, int, int, int]]:
    jobs = []
    n = start
    while n < stop:
        d, i = divmod(n, per_dir)
        end = min((d + 1) * per_dir, stop)
        jobs.append((top, d, i, end - d * per_dir))
        n = end
    return jobs


def run_one(code: str, binary: list[str], env: dict[str, str], url: str, port: int, db: int, root: Path,
            args: argparse.Namespace, pyspy: bool) -> list[dict[str, float | str]]:
    mnt, bucket = root / "mnt", root / "bucket"
    mnt.mkdir(parents=True, exist_ok=True)

    def jfs(*a: str) -> None:
        subprocess.run([*binary, *a], check=True, capture_output=True, env=env, cwd=root, timeout=300)

    jfs("format", url, "create-ab", "--trash-days", "0", "--storage", "file", "--bucket", f"{bucket}/")
    jfs("mount", url, str(mnt), "-d", "--cache-dir", str(root / "cache"), "--metrics", "off")
    rows: list[dict[str, float | str]] = []
    try:
        servers = fuse_servers(mnt)
        redis_pid = int(redis_cli(port, "INFO", "server").split("process_id:")[1].split()[0])
        top = str(mnt / "tree")
        os.makedirs(top, exist_ok=True)
        segments = [("early", 0, args.early), ("fill", args.early, args.late_at),
                    ("late", args.late_at, args.late_at + args.late)]
        with mp.get_context("fork").Pool(args.processes, initializer=_worker_signals) as pool:
            for name, start, stop in segments:
                spy = None
                if pyspy and name != "fill":
                    leaf = next(pid for pid in servers if pid not in servers.values())
                    spy = subprocess.Popen(["py-spy", "record", "-p", str(leaf), "-d", str(args.py_spy), "-r", "50",
                                            "-o", str(args.workdir_path / f"spy-{name}.svg"), "--nonblocking"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
                m0, r0, t0 = cpu_sample(servers), proc_cpu(redis_pid), time.perf_counter()
                for _ in pool.imap_unordered(_create, segment_jobs(top, start, stop, args.per_dir), chunksize=1):
                    pass
                m1, r1, t1 = cpu_sample(servers), proc_cpu(redis_pid), time.perf_counter()
                if spy is not None:
                    spy.wait()
                n = stop - start
                mount_cpu = cpu_between(m0, m1) or 0.0
                redis_cpu = (r1[0] - r0[0]) if r0 and r1 else 0.0
                row = {"code": code, "segment": name, "files": stop, "rate": n / (t1 - t0),
                       "mount_us": mount_cpu / n * 1e6, "redis_us": redis_cpu / n * 1e6,
                       "keys": int(redis_cli(port, "-n", str(db), "DBSIZE").strip() or 0),
                       "fuse_inode": fuse_inodes(), "rss_mib": rss_mib(servers)}
                rows.append(row)
                print(f"| {code} | {name} | {stop:,} | {row['rate']:,.0f} | {row['mount_us']:.0f} | "
                      f"{row['redis_us']:.0f} | {row['keys']:,} | {row['fuse_inode']:,} | {row['rss_mib']:.1f} |", flush=True)
    finally:
        subprocess.run([*binary, "umount", str(mnt)], capture_output=True, env=env, cwd=root, timeout=300)
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)
        redis_cli(port, "-n", str(db), "FLUSHDB")
        shutil.rmtree(bucket, ignore_errors=True)
        shutil.rmtree(root / "cache", ignore_errors=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--code", action="append", default=[], metavar="NAME=DIR",
                    help="another code to run like --base (e.g. head=DIR); list it in --codes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--early", type=int, default=20_000)
    ap.add_argument("--late-at", type=int, default=200_000)
    ap.add_argument("--late", type=int, default=20_000)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--per-dir", type=int, default=1000)
    ap.add_argument("--workdir")
    ap.add_argument("--py-spy", type=int, default=0)
    ap.add_argument("--codes", default="base,new")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (FUSE)")
    args.workdir_path = Path(args.workdir or tempfile.mkdtemp(prefix="jfs-create-ab-"))
    base = str(Path(args.base).resolve())
    codes = {"base": ([sys.executable, "-P", "-m", "jfs.cli.main"], {**os.environ, "PYTHONPATH": base}),
             "new": ([sys.executable, "-P", "-m", "jfs.cli.main"], dict(os.environ))}
    for spec in args.code:
        name, _, where = spec.partition("=")
        codes[name] = ([sys.executable, "-P", "-m", "jfs.cli.main"], {**os.environ, "PYTHONPATH": str(Path(where).resolve())})
    order = [c.strip() for c in args.codes.split(",")]
    rows: list[dict[str, float | str]] = []
    print("| code | segment | files | files/s | mount CPU µs/create | Redis CPU µs/create | keys | fuse_inode | mount RSS MiB |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    with redis_server() as server:
        db = 0
        for r in range(args.rounds):
            for code in (order if r % 2 == 0 else order[::-1]):
                db += 1
                binary, env = codes[code]
                root = args.workdir_path / f"{code}{r}"
                root.mkdir(parents=True, exist_ok=True)
                rows += run_one(code, binary, env, f"{server.url}/{db}", server.port, db, root, args,
                                pyspy=bool(args.py_spy) and code == "new" and r == 0)
    print("\n| code | segment | files/s | mount CPU µs/create | Redis CPU µs/create | mount RSS MiB |\n"
          "|---|---|---:|---:|---:|---:|")
    for code in order:
        for seg in ("early", "fill", "late"):
            sel = [x for x in rows if x["code"] == code and x["segment"] == seg]
            if not sel:
                continue
            cells = []
            for key in ("rate", "mount_us", "redis_us", "rss_mib"):
                vals = [float(x[key]) for x in sel]
                cells.append(f"{statistics.median(vals):,.0f} ({min(vals):,.0f}–{max(vals):,.0f})")
            print(f"| {code} | {seg} | {' | '.join(cells)} |")
    if not args.workdir:
        shutil.rmtree(args.workdir_path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""SQLite + SeaweedFS S3: RSS after mount and the small-file write of `juicefs bench` (128 KiB files, 4
writers), jfs builds side by side, alternating (issue 17, ADR 0049).

Usage:  .venv/bin/python bench/s3_small_ab.py --jfs base=/tmp/base/.venv/bin/jfs --jfs new=.venv/bin/jfs
        [--pairs 3] [--files 100] [--threads 4] [--kib 128] [--pyspy DIR]

One SeaweedFS for the whole run; per build and pair a fresh SQLite volume (``--trash-days 0``) and bucket,
mounted with a disk cache. Per run: the mount's RSS 2 s after mounting, then `threads` writers each
creating `files` files of `kib` KiB (open, one write, close — what `juicefs bench` does), timed, with the
mount's CPU (µs per file) and the object requests (`.stats`) per file. Then the same files read back
(after drop_caches) for CPU per read.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comparison.harness import JfsMount, JuiceFSMount, drop_caches, proc_cpu, rss_mib, run  # noqa: E402
from s3_randrw import requests, stats  # noqa: E402

from jfs.testing.seaweed import seaweed_s3  # noqa: E402


def write_files(d: Path, t: int, n: int, data: bytes) -> None:
    sub = d / f"t{t}"
    sub.mkdir()
    for i in range(n):
        with open(sub / f"f{i}", "wb") as f:
            f.write(data)


def read_files(d: Path, t: int, n: int) -> None:
    for i in range(n):
        with open(d / f"t{t}" / f"f{i}", "rb") as f:
            f.read()


def _one(fn, d: Path, extra: tuple, t: int) -> None:
    fn(d, t, *extra)


def one_run(label: str, binary: str, s3, work: Path, args: argparse.Namespace, n: int) -> dict:
    root = work / f"{label}-{n}"
    root.mkdir()
    bucket = f"sm-{label.lower()}-{n}"
    s3.client().create_bucket(Bucket=bucket)
    cls = JuiceFSMount if label.lower().startswith("juicefs") else JfsMount
    m = cls(label, binary, f"sqlite3://{root / 'meta.db'}", [
        "--storage", "s3", "--bucket", f"{s3.endpoint}/{bucket}",
        "--access-key", s3.access_key, "--secret-key", s3.secret_key], root, [])
    m.format()
    m.mount()
    pid = m.pid
    assert pid is not None
    out: dict = {"label": label}
    try:
        time.sleep(2)
        out["rss"] = rss_mib(pid)
        d = m.mnt / "small"
        d.mkdir()
        data = os.urandom(args.kib << 10)
        total = args.files * args.threads
        for phase in ("write", "read"):
            if phase == "read":
                drop_caches()
            spy = None
            if args.pyspy and phase == "write":
                spy = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "--rate", "200", "--threads", "--nonblocking",
                     "--pid", str(pid), "-o", f"{args.pyspy}/{label}-{n}-{phase}.txt", "-d", "20"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)
            s0, c0, t0 = requests(stats(m.mnt)), proc_cpu(pid), time.time()
            with ThreadPoolExecutor(args.threads) as pool:
                fn = write_files if phase == "write" else read_files
                extra = (args.files, data) if phase == "write" else (args.files,)
                list(pool.map(functools.partial(_one, fn, d, extra), range(args.threads)))
            t1 = time.time()
            s1, c1 = requests(stats(m.mnt)), proc_cpu(pid)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            cpu = (sum(c1) - sum(c0)) if c0 and c1 else float("nan")
            delta = {k: round((s1[k] - s0[k]) / total, 2) for k in s1 if s1[k] != s0[k]}
            out[phase] = {"rate": total / (t1 - t0), "cpu_us": cpu / total * 1e6}
            print(f"{label:>6} #{n} rss {out['rss']:.1f} MiB  {phase:5} {total / (t1 - t0):7.0f} files/s  "
                  f"cpu {cpu / total * 1e6:6.0f} µs/file  per file {delta}", flush=True)
    finally:
        m.unmount()
        run(["rm", "-rf", str(root)], timeout=120, check=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jfs", action="append", required=True, help="LABEL=PATH of a jfs (or juicefs*) binary")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--kib", type=int, default=128)
    ap.add_argument("--pyspy", default="")
    args = ap.parse_args()
    builds = [tuple(x.split("=", 1)) for x in args.jfs]
    if args.pyspy:
        Path(args.pyspy).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="jfs-s3sm-"))
    results: list[dict] = []
    try:
        with seaweed_s3(bucket="sm-probe") as s3:
            for n in range(args.pairs):
                for label, binary in builds:
                    results.append(one_run(label, binary, s3, work, args, n))
    finally:
        run(["rm", "-rf", str(work)], timeout=120, check=False)
    for label, _ in builds:
        mine = [r for r in results if r["label"] == label]
        print(f"{label:>6} rss {[round(r['rss'], 1) for r in mine]}  "
              f"write files/s {[round(r['write']['rate']) for r in mine]}  "
              f"write µs/file {[round(r['write']['cpu_us']) for r in mine]} "
              f"(median {statistics.median(r['write']['cpu_us'] for r in mine):.0f})  "
              f"read µs/file {[round(r['read']['cpu_us']) for r in mine]}")


if __name__ == "__main__":
    main()

"""bench/compare.py's fio sequence on SQLite + SeaweedFS S3, jfs builds side by side, with what the mount did
in each phase (issue 17: 4 KiB random read right after the random-write phase).

Usage:  .venv/bin/python bench/s3_randrw.py --jfs base=/tmp/base/.venv/bin/jfs --jfs new=.venv/bin/jfs
        [--pairs 2] [--seq-mib 512] [--rand-mib 256] [--runtime 8] [--short] [--again]
        [--pyspy DIR] [--probe]

One SeaweedFS for the whole run; per build and pair a fresh SQLite volume (``--trash-days 0``) and bucket,
mounted with a disk cache, builds alternating. The fio jobs are the ones of `bench/comparison/workloads.py`
(psync, buffered, ``--end_fsync=1`` on writes): sequential write + read of 1 x seq-mib and 4 x seq-mib/4
(`--short`: the 1-job pair only), the random write (rand-mib file, `runtime` s), drop_caches, the random
read of the 1-job file. `--again` reads a second time right after (is what slows it transient?).

Per phase: IOPS or MiB/s, the mount's CPU (µs per I/O), `.stats` deltas (object requests by method,
compactions, disk-cache hits/misses). `--pyspy DIR`: ``py-spy record --format raw --threads --idle`` of the
mount (threads on a CPU only) during the random read (`--pyspy-phase`). `--probe`: event-loop lag of the mount (a task sleeping 10 ms and measuring
how late it wakes; via a sitecustomize on PYTHONPATH), as percentiles per phase.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comparison.harness import JfsMount, JuiceFSMount, drop_caches, proc_cpu, run  # noqa: E402

from jfs.app.metrics import parse_stats  # noqa: E402
from jfs.testing.seaweed import seaweed_s3  # noqa: E402

MiB = 1 << 20
KEYS = ("GET", "PUT", "DELETE", "HEAD")
FIO_WRITE_ARGS: list[str] = []  # --fio-write-arg

PROBE = '''
import asyncio, os, time
_path = os.environ.get("JFS_LOOP_PROBE")
if _path:
    _orig = asyncio.run

    def _run(main, **kw):
        async def wrapper():
            loop = asyncio.get_running_loop()

            async def probe():
                with open(f"{_path}.{os.getpid()}", "a", buffering=1) as f:
                    while True:
                        t0 = loop.time()
                        await asyncio.sleep(0.01)
                        f.write(f"{time.time():.3f} {(loop.time() - t0 - 0.01) * 1000:.3f}\\n")

            task = loop.create_task(probe())
            try:
                return await main
            finally:
                task.cancel()

        return _orig(wrapper(), **kw)

    asyncio.run = _run
'''


def fio(directory: Path, out: Path, name: str, rw: str, bs: str, size_mib: int, jobs: int = 1,
        runtime: int | None = None) -> dict:
    cmd = ["fio", f"--name={name}", f"--directory={directory}", "--filename_format=$jobname.$jobnum",
           f"--rw={rw}", f"--bs={bs}", f"--size={size_mib}M", f"--numjobs={jobs}", "--direct=0",
           "--ioengine=psync", "--fallocate=none", "--group_reporting", "--output-format=json",
           f"--output={out}"]
    if "write" in rw:
        cmd.append("--end_fsync=1")
        cmd += FIO_WRITE_ARGS
    if runtime is not None:
        cmd += ["--time_based", f"--runtime={runtime}"]
    run(cmd, timeout=900)
    text = out.read_text()
    job = json.loads(text[text.index("{"):])["jobs"][0]
    return dict(job["write" if "write" in rw else "read"])


def stats(mnt: Path) -> dict[str, float]:
    return parse_stats((mnt / ".stats").read_text())


def requests(s: dict[str, float]) -> dict[str, float]:
    """Object requests, metadata transactions and cache counters from a parsed ``.stats`` (jfs's names; a
    JuiceFS mount's ``juicefs_`` object-request counters are read under the same keys)."""
    out = {}
    for k in KEYS:
        out[k] = s.get(f'jfs_object_request_durations_histogram_seconds_count{{method="{k}"}}',
                       s.get(f'juicefs_object_request_durations_histogram_seconds_count{{method="{k}"}}', 0.0))
    for k in ("PUT", "GET"):
        out[f"{k}_s"] = s.get(f'jfs_object_request_durations_histogram_seconds_sum{{method="{k}"}}',
                              s.get(f'juicefs_object_request_durations_histogram_seconds_sum{{method="{k}"}}', 0.0))
    out["txn"] = s.get('jfs_meta_ops_total{method="txn"}', 0.0)
    out["txn_s"] = s.get('jfs_meta_ops_durations_seconds_sum{method="txn"}', 0.0)
    out["compactions"] = s.get('jfs_compactions{result="done"}', 0.0)
    out["abandoned"] = s.get('jfs_compactions{result="abandoned"}', 0.0)
    out["cache_hits"] = s.get("jfs_blockcache_hits", 0.0)
    out["cache_miss"] = s.get("jfs_blockcache_miss", 0.0)
    return out


def weed_pid(data_dir: Path) -> int | None:
    """The pid of the ``weed server`` running in `data_dir` (master, volume, filer and S3 in one process)."""
    needle = f"-dir={data_dir}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "cmdline").read_bytes().split(b"\0"):
                    return int(entry.name)
    return None


def lag_summary(probe_files: list[Path], t0: float, t1: float) -> str:
    lags = []
    for f in probe_files:
        with contextlib.suppress(OSError):
            for line in f.read_text().splitlines():
                ts, _, ms = line.partition(" ")
                with contextlib.suppress(ValueError):
                    if t0 <= float(ts) <= t1:
                        lags.append(float(ms))
    if not lags:
        return "lag n/a"
    lags.sort()
    q = statistics.quantiles(lags, n=100) if len(lags) > 1 else [lags[0]] * 99
    return f"lag ms p50 {q[49]:.1f} p90 {q[89]:.1f} p99 {q[98]:.1f} max {lags[-1]:.1f} (n={len(lags)})"


def one_run(label: str, binary: str, endpoint: str, s3, work: Path, args: argparse.Namespace, n: int) -> dict:
    root = work / f"{label}-{n}"
    root.mkdir()
    bucket = f"rr-{label.lower()}-{n}"
    s3.client().create_bucket(Bucket=bucket)
    cls = JuiceFSMount if label.lower().startswith("juicefs") else JfsMount
    m = cls(label, binary, f"sqlite3://{root / 'meta.db'}", [
        "--storage", "s3", "--bucket", f"{endpoint}/{bucket}",
        "--access-key", s3.access_key, "--secret-key", s3.secret_key], root,
        [] if cls is JuiceFSMount else list(args.mount_arg))
    m.format()
    m.mount()
    pid = m.pid
    assert pid is not None
    probe_files = sorted(Path(args.probe_dir).glob(f"lag.{label}-{n}.*")) if args.probe else []
    out: dict = {"label": label}
    d = m.mnt / "fio"
    d.mkdir()
    try:
        phases: list[tuple[str, list]] = []
        jobs_list = (1,) if args.short else (1, 4)
        for jobs in jobs_list:
            size = args.seq_mib // jobs
            phases.append((f"seqw{jobs}", [f"seq{jobs}", "write", "1M", size, jobs]))
            phases.append((f"seqr{jobs}", [f"seq{jobs}", "read", "1M", size, jobs]))
        phases.append(("randw", ["rand", "randwrite", "4k", args.rand_mib, 1, args.runtime]))
        phases.append(("randr", ["seq1", "randread", "4k", args.seq_mib, 1, args.runtime]))
        if args.again:
            phases.append(("randr2", ["seq1", "randread", "4k", args.seq_mib, 1, args.runtime]))
        if args.phases:
            keep = args.phases.split(",")
            phases = [p for p in phases if p[0] in keep]
        for phase, spec in phases:
            if "read" in spec[1] and phase != "randr2":
                drop_caches()
            w0 = proc_cpu(args.weed) if args.weed else None
            s0, c0, t0 = requests(stats(m.mnt)), proc_cpu(pid), time.time()
            spy = None
            if args.pyspy and phase in args.pyspy_phase.split(","):
                spy = subprocess.Popen(
                    ["py-spy", "record", "--format", "raw", "--rate", "200", "--threads", "--nonblocking",
                     "--pid", str(pid), "-o", f"{args.pyspy}/{label}-{n}-{phase}.txt", "-d", str(args.runtime + 2)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            r = fio(d, root / f"{phase}.json", *spec)
            t1 = time.time()
            s1, c1 = requests(stats(m.mnt)), proc_cpu(pid)
            w1 = proc_cpu(args.weed) if args.weed else None
            if spy is not None:
                spy.wait(timeout=60)
            cpu = (sum(c1) - sum(c0)) if c0 and c1 else float("nan")
            srv = (sum(w1) - sum(w0)) if w0 and w1 else float("nan")
            ios = r["total_ios"]
            gib = r["io_bytes"] / (1 << 30) if "io_bytes" in r else ios * (1 << 20) / (1 << 30)
            delta = {k: round(s1[k] - s0[k], 1) for k in s1}
            rate = f"{r['iops']:8.0f} IOPS" if "rand" in phase else f"{r['bw_bytes'] / MiB:8.1f} MiB/s"
            lag = lag_summary(probe_files or sorted(Path(args.probe_dir).glob(f"lag.{label}-{n}.*")), t0, t1) \
                if args.probe else ""
            print(f"{label:>6} #{n} {phase:7} {rate}  {t1 - t0:5.1f} s  cpu {cpu:5.2f} s = "
                  f"{cpu / max(1, ios) * 1e6:6.0f} µs/io  weed {srv:5.2f} s  {delta}  {lag}", flush=True)
            out[phase] = {"iops": r["iops"], "bw": r["bw_bytes"], "cpu": cpu, "ios": ios, "wall": t1 - t0,
                          "srv": srv, "gib": gib, **delta}
    finally:
        m.unmount()
        run(["rm", "-rf", str(root)], timeout=120, check=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jfs", action="append", required=True,
                    help="LABEL=PATH of a jfs binary (repeatable); a label starting with 'juicefs' mounts JuiceFS")
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--seq-mib", type=int, default=512)
    ap.add_argument("--rand-mib", type=int, default=256)
    ap.add_argument("--runtime", type=int, default=8)
    ap.add_argument("--short", action="store_true", help="only the 1-job sequential pair before the random ones")
    ap.add_argument("--again", action="store_true", help="a second random read right after the first")
    ap.add_argument("--pyspy", default="", help="directory for py-spy raw profiles of the random read")
    ap.add_argument("--pyspy-phase", default="randr", help="phases to profile (comma-separated)")
    ap.add_argument("--probe", action="store_true", help="event-loop lag probe in the mount")
    ap.add_argument("--phases", default="", help="only these phases (comma-separated: seqw1,seqr1,seqw4,seqr4,"
                    "randw,randr,randr2)")
    ap.add_argument("--fio-write-arg", action="append", default=[],
                    help="extra fio option for the write phases, e.g. --buffer_compress_percentage=50 (repeatable)")
    ap.add_argument("--mount-arg", action="append", default=[], help="extra jfs mount option (repeatable)")
    args = ap.parse_args()
    builds = [tuple(x.split("=", 1)) for x in args.jfs]
    FIO_WRITE_ARGS.extend(args.fio_write_arg)
    work = Path(tempfile.mkdtemp(prefix="jfs-s3rr-"))
    args.probe_dir = str(work)
    if args.probe:
        (work / "site").mkdir()
        (work / "site" / "sitecustomize.py").write_text(PROBE)
        os.environ["PYTHONPATH"] = str(work / "site")
    if args.pyspy:
        Path(args.pyspy).mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    try:
        with seaweed_s3(bucket="rr-probe") as s3:
            args.weed = weed_pid(s3.data_dir)
            for n in range(args.pairs):
                for label, binary in builds:
                    if args.probe:
                        os.environ["JFS_LOOP_PROBE"] = str(work / f"lag.{label}-{n}")
                    results.append(one_run(label, binary, s3.endpoint, s3, work, args, n))
    finally:
        run(["rm", "-rf", str(work)], timeout=120, check=False)
    for label, _ in builds:
        mine = [r for r in results if r["label"] == label]
        for phase in ("seqw1", "seqw4"):
            rows = [r[phase] for r in mine if phase in r]
            if rows:
                med = statistics.median
                # JuiceFS's .stats is not read here: one PUT per 4 MiB block too (ADR 0068, request log)
                puts = "-" if label.lower().startswith("juicefs") else f"{med(x['PUT'] / x['gib'] for x in rows):.0f}"
                print(f"{label:>6} {phase:7} MiB/s {med(x['bw'] / MiB for x in rows):6.1f} "
                      f"{[round(x['bw'] / MiB) for x in rows]}  mount CPU s/GiB "
                      f"{med(x['cpu'] / x['gib'] for x in rows):5.2f}  weed CPU s/GiB "
                      f"{med(x['srv'] / x['gib'] for x in rows):5.2f} {[round(x['srv'] / x['gib'], 2) for x in rows]}  "
                      f"PUT/GiB {puts}", flush=True)
        for phase in ("randw", "randr", "randr2"):
            rows = [r[phase] for r in mine if phase in r]
            if rows:
                print(f"{label:>6} {phase:7} IOPS {[round(x['iops']) for x in rows]}  "
                      f"µs CPU/io {[round(x['cpu'] / max(1, x['ios']) * 1e6) for x in rows]}")


if __name__ == "__main__":
    main()

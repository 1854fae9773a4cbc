"""The small-file write of `juicefs bench` (128 KiB files, 4 writers) on one backend, jfs builds and JuiceFS
side by side, alternating (issue 17; ADR 0049 for S3, ADR 0064 for the data side of a small file).

Usage:  .venv/bin/python bench/s3_small_ab.py --jfs base=/tmp/base/jfs-bin --jfs new=.venv/bin/jfs \
            [--jfs juicefs=.venv/bin/juicefs] [--backend sqlite-s3|redis-file|sqlite-file] [--pairs 3]
            [--files 100] [--threads 4] [--kib 128] [--pyspy DIR] [--no-read] [--big-mib 128 [--settle S]]

A label starting with ``juicefs`` runs that binary as JuiceFS; any other is a jfs (a wrapper script that
sets PYTHONPATH to another tree serves as a base build). One SeaweedFS (``sqlite-s3``) or redis-server
(``redis-file``) for the whole run, the builds in an order rotated by one per round; per build and round a
fresh volume (``--trash-days 0``) in a fresh bucket / directory / Redis database (flushed after the run),
mounted with a disk cache. Per run: the mount's RSS 2 s after mounting, then `threads` writers each creating
`files` files of `kib` KiB in one shared directory (``--dirs per-writer``: one each) (open, one write, close
— what `juicefs bench` does), timed, with the mount's CPU (µs per file), the median
latency of each call (open with O_CREAT, write, close), for jfs the object requests and engine transactions
per file (``.stats``) and on Redis the commands and round trips (``total_reads_processed``) redis-server
handled per file (`INFO`, whole server: only the mount under test runs), on S3 the CPU SeaweedFS's
``weed server`` process spent per file (ADR 0068). Then the same files read back
(after drop_caches) for CPU per read (``--no-read`` skips it). Root only (drop_caches).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comparison.harness import JfsMount, JuiceFSMount, drop_caches, proc_cpu, rss_mib, run  # noqa: E402
from s3_randrw import requests, stats, weed_pid  # noqa: E402

BACKENDS = ("sqlite-s3", "redis-file", "sqlite-file")
FUSE_OPS = ("create", "write", "flush")


def _jfs_counters(mnt: Path) -> dict[str, float]:
    """`s3_randrw.requests` of the mount's ``.stats`` plus the count and total seconds of the FUSE ops a small
    file costs (``create``, ``write``, ``flush``: the time each spent in the mount). A JuiceFS mount's
    ``.stats`` gives its object requests (and their seconds) and its metadata transactions under the same keys."""
    s = stats(mnt)
    out = requests(s)
    for op in FUSE_OPS:
        out[op] = s.get(f'jfs_fuse_ops_total{{method="{op}"}}', 0.0)
        out[f"{op}_s"] = s.get(f'jfs_fuse_ops_durations_seconds_sum{{method="{op}"}}', 0.0)
    if "juicefs_object_request_errors" in s:  # JuiceFS's flat `.stats`: label values joined to the names
        for k in ("PUT", "GET", "HEAD", "DELETE"):
            out[k] = s.get(f"juicefs_object_request_durations_histogram_seconds_{k}_total", 0.0)
            out[f"{k}_s"] = s.get(f"juicefs_object_request_durations_histogram_seconds_{k}_sum", 0.0)
        out["txn"] = s.get("juicefs_transaction_durations_histogram_seconds_total", 0.0)
        out["txn_s"] = s.get("juicefs_transaction_durations_histogram_seconds_sum", 0.0)
        for op in FUSE_OPS:
            out[op] = s.get(f"juicefs_fuse_ops_total_{op}", 0.0)
            out[f"{op}_s"] = s.get(f"juicefs_fuse_ops_durations_seconds_{op}", 0.0)
    return out


def _mean_ms(s0: dict[str, float], s1: dict[str, float], key: str) -> float:
    """Mean milliseconds of one `key` request (``PUT``, ``txn``) between two `_jfs_counters` readings."""
    n = s1.get(key, 0.0) - s0.get(key, 0.0)
    return (s1.get(f"{key}_s", 0.0) - s0.get(f"{key}_s", 0.0)) / n * 1e3 if n else float("nan")


def write_files(d: Path, t: int, n: int, data: bytes) -> list[tuple[float, float, float]]:
    """`n` files in directory `d` (shared by the writers, as `juicefs bench`'s, or this writer's own); per
    file (open, write, close) seconds."""
    times = []
    flags = os.O_CREAT | os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC
    clock = time.perf_counter
    for i in range(n):
        t0 = clock()
        fd = os.open(d / f"f.{t}.{i}", flags, 0o644)
        t1 = clock()
        os.write(fd, data)
        t2 = clock()
        os.close(fd)
        times.append((t1 - t0, t2 - t1, clock() - t2))
    return times


def read_files(d: Path, t: int, n: int) -> list[tuple[float, float, float]]:
    for i in range(n):
        with open(d / f"f.{t}.{i}", "rb") as f:
            f.read()
    return []


def _one(fn, d: Path, extra: tuple, own_dirs: bool, t: int) -> list[tuple[float, float, float]]:
    return fn(d / f"w{t}" if own_dirs else d, t, *extra)


class Redis:
    """The redis-server of a `redis-file` run and its whole-server counters."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.port = url.rsplit(":", 1)[1].split("/")[0]

    def cli(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", self.port, *args], capture_output=True, text=True,
                              check=True, timeout=60).stdout

    def counters(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.cli("INFO", "all").splitlines():
            if line.startswith("cmdstat_"):
                name, rest = line.split(":", 1)
                out[name[8:]] = float(rest.split(",")[0].split("=")[1])
            elif line.startswith("total_reads_processed:"):
                out["round trips"] = float(line.split(":")[1])
        return out


@contextlib.contextmanager
def backend(name: str) -> Iterator[object]:
    if name == "sqlite-s3":
        from jfs.testing.seaweed import seaweed_s3

        with seaweed_s3(bucket="sm-probe") as s3:
            yield s3
    elif name == "redis-file":
        from jfs.testing.servers import start_redis_server

        server = start_redis_server(new_session=True)
        try:
            yield Redis(server.url)
        finally:
            server.stop()
    else:
        yield None


def one_run(label: str, binary: str, be: object, work: Path, args: argparse.Namespace, n: int, db: int) -> dict:
    binary, _, own_settle = binary.partition("@")  # PATH@SETTLE: this build's --settle
    settle = float(own_settle) if own_settle else args.settle
    root = work / f"{label}-{n}"
    root.mkdir()
    cls = JuiceFSMount if label.lower().startswith("juicefs") else JfsMount
    if args.backend == "sqlite-s3":
        bucket = f"sm-{label.lower()}-{n}"
        be.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        meta, storage = f"sqlite3://{root / 'meta.db'}", [
            "--storage", "s3", "--bucket", f"{be.endpoint}/{bucket}",  # type: ignore[attr-defined]
            "--access-key", be.access_key, "--secret-key", be.secret_key]  # type: ignore[attr-defined]
    else:
        storage = ["--storage", "file", "--bucket", f"{root / 'bucket'}/"]
        meta = f"{be.url}/{db}" if isinstance(be, Redis) else f"sqlite3://{root / 'meta.db'}"
    m = cls(label, binary, meta, storage, root, [])
    m.format()
    m.mount()
    pid = m.pid
    assert pid is not None
    out: dict = {"label": label}
    try:
        time.sleep(2)
        out["rss"] = rss_mib(pid)
        if args.big_mib:  # compare.py's first workload: `juicefs bench` of big files only (it deletes them)
            run([str(Path(sys.executable).parent / "juicefs"), "bench", str(m.mnt), "-p", str(args.threads),
                 "--small-file-size", f"{args.kib}K", "--big-file-size", f"{args.big_mib}M",
                 "--small-file-count", "0"], timeout=900)
            t_big, marks = time.monotonic(), []
            while True:  # the big files' block DELETEs done so far, until --settle seconds have passed
                marks.append((time.monotonic() - t_big, _jfs_counters(m.mnt)["DELETE"]))
                if marks[-1][0] >= settle:
                    break
                time.sleep(0.25)
            print(f"{label:>8} #{n} DELETEs done after the big files (s after, count): "
                  f"{[(round(t, 2), int(c)) for t, c in marks[:: max(1, len(marks) // 8)] + marks[-1:]]}", flush=True)
        d = m.mnt / "small"
        d.mkdir()
        own_dirs = args.dirs == "per-writer"
        for t in range(args.threads if own_dirs else 0):
            (d / f"w{t}").mkdir()
        data = os.urandom(args.kib << 10)
        total = args.files * args.threads
        for phase in ("write", "read"):
            if phase == "read":
                if args.no_read:
                    break
                drop_caches()
            spy = None
            if args.pyspy and phase == "write" and cls is JfsMount:
                spy = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "--rate", "200",
                     "--threads", "--nonblocking", "--pid", str(pid), "-o",
                     f"{args.pyspy}/{label}-{n}-{phase}.txt", "-d", "20"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)
            s0 = _jfs_counters(m.mnt)
            r0 = be.counters() if isinstance(be, Redis) else {}
            w0 = proc_cpu(args.weed) if args.weed else None
            c0, t0 = proc_cpu(pid), time.time()
            with ThreadPoolExecutor(args.threads) as pool:
                fn = write_files if phase == "write" else read_files
                extra = (args.files, data) if phase == "write" else (args.files,)
                times = [x for part in pool.map(functools.partial(_one, fn, d, extra, own_dirs), range(args.threads))
                         for x in part]
            t1 = time.time()
            c1 = proc_cpu(pid)
            w1 = proc_cpu(args.weed) if args.weed else None
            s1 = _jfs_counters(m.mnt)
            r1 = be.counters() if isinstance(be, Redis) else {}
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            cpu = (sum(c1) - sum(c0)) if c0 and c1 else float("nan")
            delta = {k: round((s1[k] - s0[k]) / total, 2) for k in s1 if s1[k] != s0[k] and not k.endswith("_s")}
            ops = {op: (s1[f"{op}_s"] - s0[f"{op}_s"]) / max(1.0, s1[op] - s0[op]) * 1e6 for op in FUSE_OPS if op in s1}
            redis = {k: round((r1[k] - r0.get(k, 0)) / total, 2) for k in r1 if r1[k] != r0.get(k, 0)}
            lat = [statistics.median(x[i] for x in times) * 1e6 for i in range(3)] if times else []
            srv = (sum(w1) - sum(w0)) / total * 1e6 if w0 and w1 else float("nan")
            put_ms, txn_ms = _mean_ms(s0, s1, "PUT"), _mean_ms(s0, s1, "txn")
            out[phase] = {"rate": total / (t1 - t0), "cpu_us": cpu / total * 1e6, "lat": lat, "srv_us": srv,
                          "redis_rt": redis.get("round trips", float("nan")), "ops": ops,
                          "put_ms": put_ms, "txn_ms": txn_ms}
            extra_txt = f"  open/write/close µs {[round(x) for x in lat]}" if lat else ""
            print(f"{label:>8} #{n} rss {out['rss']:.1f} MiB  {phase:5} {total / (t1 - t0):7.0f} files/s  "
                  f"cpu {cpu / total * 1e6:6.0f} µs/file  SeaweedFS {srv:6.0f} µs/file{extra_txt}", flush=True)
            if delta:
                print(f"{'':>8}    per file {delta}; mean PUT {put_ms:.1f} ms, txn {txn_ms:.1f} ms; mean µs in the mount "
                      f"{ {k: round(v) for k, v in ops.items()} }", flush=True)
            if redis:
                print(f"{'':>8}    redis per file {redis}", flush=True)
    finally:
        m.unmount()
        if isinstance(be, Redis):
            be.cli("-n", str(db), "FLUSHDB")
        run(["rm", "-rf", str(root)], timeout=120, check=False)
    return out


def _gap(w: list[dict]) -> str:
    """Median (min–max) over rounds of the mean FLUSH time in the mount minus the mean PUT time: what a
    close waits for besides its block's upload (freeze, commit, the hops between them)."""
    gaps = [x["ops"]["flush"] / 1e3 - x["put_ms"] for x in w if x["ops"].get("flush") and x["put_ms"] == x["put_ms"]]
    return f"{statistics.median(gaps):.1f} ({min(gaps):.1f}–{max(gaps):.1f})" if gaps else "-"


def _med(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jfs", action="append", required=True, help="LABEL=PATH[@SETTLE] of a jfs (or juicefs*) "
                    "binary; SETTLE overrides --settle for it")
    ap.add_argument("--backend", choices=BACKENDS, default="sqlite-s3")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--kib", type=int, default=128)
    ap.add_argument("--pyspy", default="")
    ap.add_argument("--no-read", action="store_true")
    ap.add_argument("--settle", type=float, default=0.0, help="with --big-mib: seconds between the big files "
                    "and the small ones (the DELETEs done meanwhile are printed)")
    ap.add_argument("--big-mib", type=int, default=0, help="first a `juicefs bench` of big files only (`threads` "
                    "files of BIG_MIB MiB written, read, deleted), as compare.py's sequence")
    ap.add_argument("--dirs", choices=("shared", "per-writer"), default="shared",
                    help="one directory for all writers (juicefs bench) or one each (the kernel then does not "
                         "serialize their creates on one directory's lock)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("root only (drop_caches)")
    builds = [tuple(x.split("=", 1)) for x in args.jfs]
    if args.pyspy:
        Path(args.pyspy).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="jfs-smallw-"))
    results: list[dict] = []
    try:
        with backend(args.backend) as be:
            args.weed = weed_pid(be.data_dir) if args.backend == "sqlite-s3" else None  # type: ignore[attr-defined]
            for n in range(args.pairs):
                for j in range(len(builds)):  # the order rotates by one per round
                    i = (j + n) % len(builds)
                    label, binary = builds[i]
                    results.append(one_run(label, binary, be, work, args, n, 1 + i % 15))
    finally:
        run(["rm", "-rf", str(work)], timeout=120, check=False)
    print(f"\n{args.backend}, {args.threads} writers x {args.files} files of {args.kib} KiB ({args.dirs} "
          f"directory), {args.pairs} rounds; median (min–max)")
    print("| build | write files/s | mount CPU µs/file | open µs | write µs | close µs | FLUSH in the mount µs |"
          " Redis round trips/file | read CPU µs/file | SeaweedFS CPU µs/file written | PUT ms (mean) | txn ms (mean) |"
          " FLUSH − PUT ms |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for label, _ in builds:
        mine = [r for r in results if r["label"] == label]
        w = [r["write"] for r in mine]
        lat = [statistics.median(x["lat"][i] for x in w) for i in range(3)]
        rts = [x["redis_rt"] for x in w]
        flushes = [x["ops"]["flush"] for x in w if "flush" in x["ops"]]
        flush = _med(flushes) if flushes else "-"
        reads = _med([r["read"]["cpu_us"] for r in mine]) if not args.no_read else "-"
        print(f"| {label} | {_med([x['rate'] for x in w])} | {_med([x['cpu_us'] for x in w])} | "
              f"{lat[0]:,.0f} | {lat[1]:,.0f} | {lat[2]:,.0f} | {flush} | "
              f"{statistics.median(rts):.1f} | {reads} | {_med([x['srv_us'] for x in w])} | "
              f"{statistics.median(x['put_ms'] for x in w):.1f} | {statistics.median(x['txn_ms'] for x in w):.1f} | "
              f"{_gap(w)} |")
    if len(builds) > 1:  # each build's rate over the first's, round by round (the rounds share the machine's load)
        first = [r["write"]["rate"] for r in results if r["label"] == builds[0][0]]
        for label, _ in builds[1:]:
            ratios = [a / b for a, b in zip(first, [r["write"]["rate"] for r in results if r["label"] == label],
                                            strict=False)]
            print(f"{builds[0][0]} / {label} write files/s by round: {[round(x, 2) for x in ratios]}, median "
                  f"{statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()

"""`jfs gateway` next to `juicefs gateway` (JuiceFS 1.4.2): same machine, same engine and bucket kind
(SQLite + local directory), one run, each system on its own freshly formatted volume.

Usage:  .venv/bin/python bench/gateway_bench.py [--objects 32] [--small 800] [--multipart-mib 1024]
        [--list-keys 10000] [--rounds 1] [--workdir DIR] [--juicefs PATH]
        [--only get8 [--repeat 3]] [--gateways jfs,JuiceFS]

Both gateways keep ETags (JuiceFS with ``--keep-etag``; jfs always does) and get the same credentials.
The clients are boto3 in threads of this process (path-style, SigV4). Rows:

* PUT / GET of `--objects` 4 MiB objects with 1 and 8 clients (MiB/s);
* PUT / GET of `--small` 4 KiB objects with 8 clients (ops/s);
* a `--multipart-mib` upload through boto3's transfer manager (8 MiB parts, 8 threads; MiB/s) and the
  gateway process's peak RSS during it (MiB, sampled every 50 ms from /proc);
* ListObjectsV2 of `--list-keys` keys, 1000 a page (keys/s).

``--only get8`` runs one row (``--only multipart,put8``: those rows, in that order, on one gateway), GET of 4 MiB objects with 8 clients (`--repeat` passes over the objects
after one 8-client PUT of them), and adds the gateway process's CPU seconds per GiB served (utime +
stime from /proc): on a shared machine CPU per byte is steadier than throughput (``--only get1``: one
client). ``--only put8``: the
same for PUT of 4 MiB objects with 8 clients (`--objects` keys overwritten `--repeat` times), user and
system CPU apart; ``--only put1`` with one client. ``--only multipart``: `--repeat` uploads of
`--multipart-mib` through the transfer manager, with CPU per GiB and the peak RSS. ``--gateways``
picks the sides (e.g. ``jfs`` alone, to compare two versions of jfs by running the script from each).
``--settle S``: each gateway waits S seconds after it started, before its rows (see `SETTLE`).

Prints a markdown table with jfs's ratio to JuiceFS for each row. With ``--rounds N`` the two gateways run
alternately (jfs first in odd rounds, JuiceFS first in even ones, each on a fresh volume), and the table
gives each side's range and the median of the per-round ratios: on a shared machine one run says little.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jfs.testing.gateways import ACCESS_KEY, SECRET_KEY
from jfs.testing.servers import free_port, stop_process

MiB = 1 << 20
BIG = os.urandom(4 * MiB)
SMALL = os.urandom(4096)


def _client(endpoint: str, pool: int = 16) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        region_name="us-east-1", config=Config(s3={"addressing_style": "path"},
                                                               signature_version="s3v4", max_pool_connections=pool))


def _wait(endpoint: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{endpoint}/minio/health/live", timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gateway did not come up")


SETTLE = 0.0
"""Seconds each gateway waits, serving, before its rows (``--settle``): memory the previous side freed
(its volume removed) has been given back to the host by then, so neither side starts on the other's
warm pages (ADR 0045: on this VM that is worth 10+ s of system CPU per GiB written)."""


@contextlib.contextmanager
def _serving(name: str, work: Path, format_argv: list[str],
             gateway_argv: Callable[[str], list[str]]) -> Iterator[tuple[str, str, int]]:
    """Format a volume (`format_argv`), then serve it with ``gateway_argv(ADDRESS)`` (log
    ``<name>-gateway.log`` in `work`) until the block ends: (endpoint, bucket "benchvol", gateway pid)."""
    subprocess.run(format_argv, check=True, capture_output=True)
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "MINIO_ROOT_USER": ACCESS_KEY, "MINIO_ROOT_PASSWORD": SECRET_KEY}
    with open(work / f"{name}-gateway.log", "wb") as log:
        proc = subprocess.Popen(gateway_argv(address), env=env, stdout=log, stderr=log)
        try:
            _wait(f"http://{address}", proc)
            time.sleep(SETTLE)
            yield f"http://{address}", "benchvol", proc.pid
        finally:
            stop_process(proc, grace=30)


def _jfs_gateway(work: Path) -> contextlib.AbstractContextManager[tuple[str, str, int]]:
    url, jfs = f"sqlite3://{work}/jfs.db", [sys.executable, "-m", "jfs.cli.main"]
    return _serving("jfs", work, [*jfs, "format", url, "benchvol", "--bucket", str(work / "jfs-bucket"), "--trash-days", "0"],
                    lambda address: [*jfs, "gateway", url, address, "--cache-dir", str(work / "jfs-cache")])


def _juicefs_gateway(work: Path, juicefs: str) -> contextlib.AbstractContextManager[tuple[str, str, int]]:
    url = f"sqlite3://{work}/juicefs.db"
    return _serving("juicefs", work, [juicefs, "format", url, "benchvol", "--storage", "file", "--bucket",
                                      f"{work}/jfs-ref-bucket/", "--trash-days", "0", "--no-update"],
                    lambda address: [juicefs, "gateway", url, address, "--keep-etag", "--no-usage-report",
                                     "--cache-dir", str(work / "juicefs-cache")])


def _put(s3: Any, bucket: str, key: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def _get(s3: Any, bucket: str, key: str) -> None:
    s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _parallel(n: int, jobs: Sequence[Callable[[], None]]) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        for f in [pool.submit(j) for j in jobs]:
            f.result()
    return time.perf_counter() - start


class PeakRss:
    """Samples a process's resident set every 50 ms while active."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self.peak = self._rss()
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float, int]:
    """(user, system) CPU seconds a process (all its threads) has used, and its minor page faults."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck, int(fields[7])


def run_get(endpoint: str, bucket: str, pid: int, args: argparse.Namespace, clients: int = 8) -> dict[str, float]:
    """The GET 4 MiB × `clients` row alone, `args.repeat` passes, with the gateway's CPU per GiB."""
    s3 = _client(endpoint)
    keys = [f"big8/{i}" for i in range(args.objects)]
    _parallel(8, [functools.partial(_put, s3, bucket, k, BIG) for k in keys])
    jobs = [functools.partial(_get, s3, bucket, k) for k in keys] * args.repeat
    cpu = cpu_seconds(pid)
    t = _parallel(clients, jobs)
    cpu = cpu_seconds(pid) - cpu
    gib = len(jobs) * 4 / 1024
    return {f"GET 4 MiB, {clients} client(s) (MiB/s)": len(jobs) * 4 / t, "gateway CPU per GiB served (s)": cpu / gib}


def _cpu_rows(pid: int, gib: float, before: tuple[float, float, int]) -> dict[str, float]:
    """The gateway's CPU seconds per GiB received since `before` (a `cpu_split`), user and system apart, and
    its minor page faults per MiB (first touches of fresh memory: ADR 0045, 0052)."""
    user, system, faults = cpu_split(pid)
    return {"gateway CPU per GiB received (s)": (user - before[0] + system - before[1]) / gib,
            "  of which user (s)": (user - before[0]) / gib, "  of which system (s)": (system - before[1]) / gib,
            "  minor faults per MiB": (faults - before[2]) / gib / 1024}


def run_put(endpoint: str, bucket: str, pid: int, args: argparse.Namespace, clients: int = 8) -> dict[str, float]:
    """The PUT 4 MiB × `clients` row alone (`args.objects` × `args.repeat` puts), with the gateway's CPU
    per GiB received (user and system apart: on a shared machine CPU per byte decides)."""
    s3 = _client(endpoint)
    jobs = [functools.partial(_put, s3, bucket, f"put{clients}/{i % args.objects}", BIG)
            for i in range(args.objects * args.repeat)]
    before = cpu_split(pid)
    t = _parallel(clients, jobs)
    return {f"PUT 4 MiB, {clients} client(s) (MiB/s)": len(jobs) * 4 / t, **_cpu_rows(pid, len(jobs) * 4 / 1024, before)}


def run_multipart(endpoint: str, bucket: str, pid: int, args: argparse.Namespace) -> dict[str, float]:
    """`args.repeat` multipart uploads of `args.multipart_mib` (the full run's settings), with the gateway's
    CPU per GiB received and its peak RSS."""
    s3 = _client(endpoint)
    before = cpu_split(pid)
    t = 0.0
    with PeakRss(pid) as rss:
        for _ in range(args.repeat):
            t += _multipart(s3, bucket, args.multipart_mib)
    return {f"multipart upload {args.multipart_mib} MiB (MiB/s)": args.repeat * args.multipart_mib / t,
            **_cpu_rows(pid, args.repeat * args.multipart_mib / 1024, before),
            "gateway peak RSS during the uploads (MiB)": rss.peak / MiB}


def _multipart(s3: Any, bucket: str, mib: int) -> float:
    """Seconds to upload `mib` MiB as "multipart/big" through boto3's transfer manager (8 MiB parts, 8
    threads), from a repeated random 8 MiB block (not held whole)."""
    from boto3.s3.transfer import TransferConfig

    size = mib * MiB
    chunk = os.urandom(8 * MiB)

    class Source(io.RawIOBase):
        """`size` bytes of a repeated random 8 MiB block, without holding them."""

        def __init__(self) -> None:
            self.pos = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            n = min(len(b), size - self.pos)
            off = self.pos % len(chunk)
            n = min(n, len(chunk) - off)
            b[:n] = chunk[off:off + n]
            self.pos += n
            return n

    cfg = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=8)
    start = time.perf_counter()
    s3.upload_fileobj(io.BufferedReader(Source(), 1 << 20), bucket, "multipart/big", Config=cfg)
    return time.perf_counter() - start


ONLY = ("get8", "get1", "put8", "put1", "multipart")


def run_only(endpoint: str, bucket: str, pid: int, args: argparse.Namespace, only: str) -> dict[str, float]:
    """One `--only` row (with its CPU rows) on the gateway at `endpoint`."""
    if only in ("get8", "get1"):
        return run_get(endpoint, bucket, pid, args, int(only[3:]))
    if only in ("put8", "put1"):
        return run_put(endpoint, bucket, pid, args, int(only[3:]))
    return run_multipart(endpoint, bucket, pid, args)


def run(endpoint: str, bucket: str, pid: int, args: argparse.Namespace) -> dict[str, float]:
    if args.only:
        rows: dict[str, float] = {}
        for only in args.only.split(","):
            rows.update({k if k.endswith("(MiB/s)") or k.endswith("(MiB)") else f"{k} [{only}]": v
                         for k, v in run_only(endpoint, bucket, pid, args, only).items()})
        return rows
    s3 = _client(endpoint)
    rows = {}
    n = args.objects
    for clients in (1, 8):
        keys = [f"big{clients}/{i}" for i in range(n)]
        t = _parallel(clients, [functools.partial(_put, s3, bucket, k, BIG) for k in keys])
        rows[f"PUT 4 MiB, {clients} client(s) (MiB/s)"] = n * 4 / t
        t = _parallel(clients, [functools.partial(_get, s3, bucket, k) for k in keys])
        rows[f"GET 4 MiB, {clients} client(s) (MiB/s)"] = n * 4 / t
    keys = [f"small/{i}" for i in range(args.small)]
    t = _parallel(8, [functools.partial(_put, s3, bucket, k, SMALL) for k in keys])
    rows["PUT 4 KiB, 8 clients (ops/s)"] = args.small / t
    t = _parallel(8, [functools.partial(_get, s3, bucket, k) for k in keys])
    rows["GET 4 KiB, 8 clients (ops/s)"] = args.small / t

    with PeakRss(pid) as rss:
        t = _multipart(s3, bucket, args.multipart_mib)
    rows[f"multipart upload {args.multipart_mib} MiB (MiB/s)"] = args.multipart_mib / t
    rows["gateway peak RSS during the upload (MiB)"] = rss.peak / MiB

    lkeys = [f"list/{i:06d}" for i in range(args.list_keys)]
    _parallel(8, [functools.partial(_put, s3, bucket, k, b"") for k in lkeys])
    start = time.perf_counter()
    seen = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="list/"):
        seen += len(page.get("Contents", []))
    t = time.perf_counter() - start
    assert seen == args.list_keys, seen
    rows[f"ListObjectsV2 of {args.list_keys} keys (keys/s)"] = seen / t
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=32)
    p.add_argument("--small", type=int, default=800)
    p.add_argument("--multipart-mib", type=int, default=1024)
    p.add_argument("--list-keys", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=1, help="alternate the two gateways this many times")
    p.add_argument("--workdir", default="")
    p.add_argument("--juicefs", default=str(Path(sys.executable).with_name("juicefs")))
    p.add_argument("--only", default=None, help=f"run these rows only, comma-separated (of {', '.join(ONLY)}; see above)")
    p.add_argument("--repeat", type=int, default=3, help="passes over the objects for --only get8 / put8 / put1; uploads for --only multipart")
    p.add_argument("--settle", type=float, default=0.0, help="seconds to wait after a gateway starts, before its rows")
    p.add_argument("--gateways", default="jfs,JuiceFS", help="comma-separated: jfs, JuiceFS or both")
    args = p.parse_args()
    if args.only and not set(args.only.split(",")) <= set(ONLY):
        p.error(f"--only takes a comma-separated list of {', '.join(ONLY)}")
    global SETTLE
    SETTLE = args.settle
    sides = [g for g in ("jfs", "JuiceFS") if g in args.gateways.split(",")]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="jfs-gw-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    try:
        for r in range(args.rounds):
            order = sides if r % 2 == 0 else sides[::-1]
            for name in order:
                sub = work / f"{name}-{r}"
                sub.mkdir(parents=True, exist_ok=True)
                cm = _jfs_gateway(sub) if name == "jfs" else _juicefs_gateway(sub, args.juicefs)
                with cm as (endpoint, bucket, pid):
                    results[name].append(run(endpoint, bucket, pid, args))
                shutil.rmtree(sub, ignore_errors=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    if len(sides) == 1:
        print(f"| row ({sides[0]}, {args.rounds} round(s)) | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " |")
        print("|---|" + "---:|" * args.rounds)
        for row in results[sides[0]][0]:
            print(f"| {row} | " + " | ".join(f"{r[row]:,.2f}" for r in results[sides[0]]) + " |")
        return
    if args.rounds == 1:
        print("| row | jfs gateway | JuiceFS 1.4.2 gateway | jfs / JuiceFS |")
        print("|---|---:|---:|---:|")
        for row, value in results["jfs"][0].items():
            ref = results["JuiceFS"][0][row]
            print(f"| {row} | {value:,.1f} | {ref:,.1f} | {value / ref if ref else float('nan'):.2f}x |")
        return
    print(f"| row ({args.rounds} alternating rounds) | jfs gateway | JuiceFS 1.4.2 gateway | jfs / JuiceFS (median) |")
    print("|---|---:|---:|---:|")
    for row in results["jfs"][0]:
        mine = [r[row] for r in results["jfs"]]
        theirs = [r[row] for r in results["JuiceFS"]]
        ratios = sorted(a / b for a, b in zip(mine, theirs, strict=True) if b)
        median = ratios[len(ratios) // 2] if len(ratios) % 2 else sum(ratios[len(ratios) // 2 - 1:][:2]) / 2
        print(f"| {row} | {min(mine):,.1f}-{max(mine):,.1f} | {min(theirs):,.1f}-{max(theirs):,.1f} | {median:.2f}x |")


if __name__ == "__main__":
    main()

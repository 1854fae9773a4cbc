"""Interleaved A/B of two `jfs webdav` trees on the small-file rows: CPU seconds of each server per 1,000
requests, robust on a loaded machine because both servers run at once and their batches alternate.

Usage:  .venv/bin/python bench/webdav_ab.py BASE_TREE NEW_TREE [--batches 10] [--size 200] [--workdir DIR]

Each tree is a checkout with its own ``.venv`` (its server is ``TREE/.venv/bin/python -m jfs.cli.main
webdav`` started in TREE, on its own fresh SQLite + local-directory volume, ``--no-access-log``). Then
`--batches` batches of `--size` PUTs of 4 KiB alternate between the two servers (which one goes first flips
every batch), then the GETs of those files the same way — as `bench/webdav_bench.py`'s rows, so that the
names are out of the SDK's 1 s name cache when they are read. One keep-alive connection per server. Prints
per server and row: CPU s per 1,000 requests (utime + stime of /proc/PID/stat over its own batches; user and
system apart), and files/s (median of the batches, and overall).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jfs.testing.servers import free_port, stop_process

USER, PASSWORD = "bench", "bench-pass"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def request(c: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> int:
    c.request(method, path, body=body, headers=AUTH)
    r = c.getresponse()
    r.read()
    return r.status


def start(tree: Path, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    work.mkdir(parents=True)
    py = str(tree / ".venv" / "bin" / "python")
    url = f"sqlite3://{work}/meta.db"
    subprocess.run([py, "-m", "jfs.cli.main", "format", url, "bench-ab", "--storage", "file", "--bucket",
                    str(work / "bucket"), "--trash-days", "0"], cwd=tree, check=True, capture_output=True)
    port = free_port()
    env = {**os.environ, "WEBDAV_USER": USER, "WEBDAV_PASSWORD": PASSWORD}
    with open(work / "log", "ab") as log:
        proc = subprocess.Popen([py, "-m", "jfs.cli.main", "webdav", url, f"127.0.0.1:{port}", "--cache-dir",
                                 str(work / "cache"), "--no-access-log", "--metrics", "off"],
                                cwd=tree, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server of {tree} exited: see {work / 'log'}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.2)
    stop_process(proc, grace=10)
    raise RuntimeError(f"the server of {tree} did not listen: see {work / 'log'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="webdav-ab-"))
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for name, tree in (("base", args.base), ("new", args.new)):
            servers[name] = start(tree.resolve(), work / name)
        conns = {k: http.client.HTTPConnection("127.0.0.1", port, timeout=600) for k, (_, port) in servers.items()}
        for c in conns.values():
            request(c, "MKCOL", "/ab")
        data = b"s" * 4096
        rates: dict[tuple[str, str], list[float]] = {}
        totals: dict[tuple[str, str], list[float]] = {}  # user, system, seconds
        for method in ("PUT", "GET"):
            for b in range(args.batches):
                for name in (("base", "new") if b % 2 == 0 else ("new", "base")):
                    c, pid = conns[name], servers[name][0].pid
                    u0, s0 = cpu(pid)
                    t = time.perf_counter()
                    for i in range(args.size):
                        status = request(c, method, f"/ab/f{b}-{i}", data if method == "PUT" else None)
                        assert status in (200, 201, 204), (name, method, status)
                    dt = time.perf_counter() - t
                    u1, s1 = cpu(pid)
                    rates.setdefault((name, method), []).append(args.size / dt)
                    tot = totals.setdefault((name, method), [0.0, 0.0, 0.0])
                    tot[0] += u1 - u0
                    tot[1] += s1 - s0
                    tot[2] += dt
        per = args.batches * args.size / 1000
        print(f"| row ({args.batches} x {args.size} each, interleaved) | CPU s / 1,000 | user | system | files/s "
              "(median of batches) | files/s (overall) |")
        print("|---|---:|---:|---:|---:|---:|")
        for method in ("PUT", "GET"):
            for name in ("base", "new"):
                u, s, secs = totals[(name, method)]
                print(f"| {method} 4 KiB, {name} | {(u + s) / per:.3f} | {u / per:.3f} | {s / per:.3f} | "
                      f"{statistics.median(rates[(name, method)]):.0f} | {args.batches * args.size / secs:.0f} |")
    finally:
        for proc, _ in servers.values():
            stop_process(proc, grace=30)
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

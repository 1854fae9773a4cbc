"""FUSE server micro-benchmark: memfs served by `jfs.adapters.fuse.server`, driven through the kernel.

Usage:  .venv/bin/python bench/fuse_bench.py [--seconds 3] [--mib 512] [--modes task,eager-task,inline]
        [--read-ahead-kb 1024]

For each dispatch mode (`MountOptions.dispatch`) it mounts a fresh memfs (attribute timeout 0, entry
timeout 60 s) and measures:

* getattr: ``os.stat`` of one file in a loop, by 1 thread, 4 threads and 4 processes. With an
  attribute timeout of 0 each ``stat`` costs two GETATTR requests (the kernel refreshes the root's
  attributes for its default_permissions check, then the file's) and no LOOKUP, so
  GETATTR/s = 2 x stat/s. Also the server's CPU time per GETATTR, which is robust to a busy machine.
* sequential write MiB/s: ``--mib`` MiB in 1 MiB ``write`` calls (one 1 MiB WRITE request each).
* sequential read MiB/s: the same file read back in 1 MiB ``read`` calls after reopening (the open
  drops the page cache), with the kernel's default readahead (128 KiB READs), and with
  ``--read-ahead-kb`` written to the mount's bdi (larger READs; root only).

Needs root (or fusermount3) and /dev/fuse. Prints a markdown table. The server is one Python process
(at most one core); the callers run in others.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from jfs.adapters.fuse.mounting import is_mounted, unmount

MiB = 1 << 20


class Server:
    def __init__(self, path: Path, pid: int) -> None:
        self.path = path
        self.pid = pid

    def cpu(self) -> float:
        """CPU seconds (user + system) the server process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def memfs(mnt: Path, *extra: str) -> Iterator[Server]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "jfs.adapters.fuse.memfs", str(mnt), "--attr-timeout", "0", "--entry-timeout", "60",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError("memfs did not start")
        yield Server(mnt, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)
        if is_mounted(mnt):
            unmount(mnt, lazy=True)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stat_loop(path: str, seconds: float) -> int:
    n = 0
    stat = os.stat
    deadline = time.perf_counter() + seconds
    while True:
        for _ in range(200):
            stat(path)
        n += 200
        if time.perf_counter() >= deadline:
            return n


def getattr_rate(server: Server, path: Path, seconds: float, workers: int, processes: bool) -> tuple[float, float]:
    """(ops/s, server CPU microseconds per op)."""
    cpu0 = server.cpu()
    t0 = time.perf_counter()
    if workers == 1:
        total = _stat_loop(str(path), seconds)
    elif processes:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers) as pool:
            total = sum(pool.starmap(_stat_loop, [(str(path), seconds)] * workers))
    else:
        counts: list[int] = []
        threads = [threading.Thread(target=lambda: counts.append(_stat_loop(str(path), seconds)))
                   for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = sum(counts)
    return total / (time.perf_counter() - t0), (server.cpu() - cpu0) / total * 1e6


def write_rate(path: Path, mib: int) -> float:
    block = os.urandom(MiB)
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY)
    try:
        t0 = time.perf_counter()
        for _ in range(mib):
            os.write(fd, block)
        os.fsync(fd)
        elapsed = time.perf_counter() - t0
    finally:
        os.close(fd)
    return mib / elapsed


def read_rate(path: Path) -> float:
    fd = os.open(path, os.O_RDONLY)
    buf = bytearray(MiB)
    total = 0
    try:
        t0 = time.perf_counter()
        while True:
            n = os.readv(fd, [buf])
            if not n:
                break
            total += n
        elapsed = time.perf_counter() - t0
    finally:
        os.close(fd)
    return total / MiB / elapsed


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="jfs-fuse-bench-") as tmp:
        mnt = Path(tmp) / "mnt"
        mnt.mkdir()
        extra = ["--dispatch", mode]
        with memfs(mnt, *extra, "--read-ahead-kb", "kernel") as server:
            f = mnt / "statme"
            f.write_bytes(b"x")
            os.stat(f)
            for label, workers, procs in (("1 thread", 1, False), ("4 threads", 4, False),
                                          ("4 processes", 4, True)):
                rate, cpu = getattr_rate(server, f, args.seconds, workers, procs)
                results[f"os.stat/s, {label}"] = rate
                results[f"GETATTR/s, {label}"] = 2 * rate
                results[f"server CPU us per GETATTR, {label}"] = cpu / 2
            data = mnt / "data"
            cpu0 = server.cpu()
            results["seq write MiB/s (1 MiB writes)"] = write_rate(data, args.mib)
            results["seq write server CPU ms/MiB"] = (server.cpu() - cpu0) / args.mib * 1e3
            cpu0 = server.cpu()
            results["seq read MiB/s (1 MiB reads, readahead 128 KiB)"] = read_rate(data)
            results["seq read server CPU ms/MiB (readahead 128 KiB)"] = (server.cpu() - cpu0) / args.mib * 1e3
        if args.read_ahead_kb and os.geteuid() == 0:
            with memfs(mnt, *extra, "--read-ahead-kb", str(args.read_ahead_kb)) as server:
                data = mnt / "data"
                write_rate(data, args.mib)
                cpu0 = server.cpu()
                results[f"seq read MiB/s (1 MiB reads, readahead {args.read_ahead_kb} KiB)"] = read_rate(data)
                results[f"seq read server CPU ms/MiB (readahead {args.read_ahead_kb} KiB)"] = (
                    (server.cpu() - cpu0) / args.mib * 1e3)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each getattr measurement")
    ap.add_argument("--mib", type=int, default=512, help="size of the sequential file")
    ap.add_argument("--modes", default="task,eager-task,inline", help="MountOptions.dispatch values to compare")
    ap.add_argument("--read-ahead-kb", type=int, default=1024)
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    table = {mode: run_mode(mode, args) for mode in modes}
    print(f"\nFUSE server benchmark (memfs; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
          f"kernel {os.uname().release})\n")
    print("| measurement | " + " | ".join(modes) + " |")
    print("|---|" + "---:|" * len(modes))
    for key in table[modes[0]]:
        print(f"| {key} | " + " | ".join(f"{table[m].get(key, float('nan')):,.{1 if 'CPU' in key else 0}f}"
                                          for m in modes) + " |")


if __name__ == "__main__":
    main()

"""CPU per 1,000 small files created through the SDK, in-process (no mounts, no root).

Usage:  .venv/bin/python bench/sdk_small_cpu.py [--files 2000] [--rounds 3] [--size 4096] [--profile OUT.prof]
        .venv/bin/python bench/sdk_small_cpu.py --count [--files 2000] [--rounds 1]
        .venv/bin/python bench/sdk_small_cpu.py --sched [--files 2000] [--rounds 1]
        PYTHONPATH=/tmp/base .venv/bin/python bench/sdk_small_cpu.py ...   # another checkout's jfs (A/B)

Formats a fresh SQLite + local-directory volume (``--trash-days 0``) per round, warms the client up with 50
files, then creates `--files` files of `--size` bytes (default 4 KiB; 0: create + close only, no data path)
with ``open(p, "wb")`` + write + close (the `sdk_bench.py` "4 KiB create+write" row) and prints files/s and
this process's CPU seconds (user, system) per 1,000 files. On a shared machine the CPU figure is the one to
compare (A/B, alternating runs). ``--profile`` runs cProfile in every thread, timed by each thread's CPU clock (inflates the figures; for the
shape of the costs only) and writes the merged stats. ``--count`` prints, per file, the SQL statements and
transactions (``BEGIN``) of every SQLite connection of the process, the event-loop passes and callbacks, the thread-pool
submissions and the hand-offs to the client's loop thread (counting itself costs CPU: not for timing).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


class Counts:
    """Counters of what one file costs besides CPU (``--count``): installed by wrapping the stdlib."""

    def __init__(self) -> None:
        import collections

        self.n: collections.Counter[str] = collections.Counter()
        self.on = False

    def install(self) -> None:
        import asyncio
        import concurrent.futures
        import sqlite3

        counts = self
        real_connect = sqlite3.connect

        def trace(sql: str) -> None:
            if counts.on:
                counts.n["sql statements"] += 1
                head = sql.split(None, 1)[0].upper() if sql.strip() else ""
                if head == "BEGIN":
                    counts.n["sql transactions (BEGIN)"] += 1
                counts.n[f"sql {head}"] += 1

        def connect(*a: object, **kw: object) -> sqlite3.Connection:
            conn = real_connect(*a, **kw)  # type: ignore[arg-type]
            conn.set_trace_callback(trace)
            return conn

        sqlite3.connect = connect  # type: ignore[assignment]
        real_run = asyncio.Handle._run

        def run(self: asyncio.Handle) -> None:
            if counts.on:
                counts.n["loop callbacks"] += 1
            real_run(self)

        asyncio.Handle._run = run  # type: ignore[method-assign]
        real_once = asyncio.BaseEventLoop._run_once  # type: ignore[attr-defined]

        def run_once(self: asyncio.BaseEventLoop) -> None:
            if counts.on:
                counts.n["loop passes"] += 1
            real_once(self)

        asyncio.BaseEventLoop._run_once = run_once  # type: ignore[attr-defined]
        real_submit = concurrent.futures.ThreadPoolExecutor.submit

        def submit(self: concurrent.futures.ThreadPoolExecutor, *a: object, **kw: object) -> object:
            if counts.on:
                counts.n["thread-pool submissions"] += 1
            return real_submit(self, *a, **kw)  # type: ignore[arg-type]

        concurrent.futures.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign,assignment]
        from jfs.sdk import sync

        real_handoff = sync._LoopThread.run

        def handoff(self: sync._LoopThread, coro: object) -> object:
            if counts.on:
                counts.n["hand-offs to the loop thread"] += 1
            return real_handoff(self, coro)  # type: ignore[arg-type]

        sync._LoopThread.run = handoff  # type: ignore[method-assign,assignment]

    def report(self, files: int) -> None:
        for key, value in sorted(self.n.items()):
            print(f"  {key:32} {value / files:8.2f} per file", flush=True)


COUNTS: Counts | None = None
SCHED = False


def _threads_sched() -> dict[str, tuple[str, int, int]]:
    """Thread id -> (name, CPU ns, run-queue wait ns) of this process's threads."""
    names = {str(t.native_id): t.name for t in threading.enumerate()}
    out: dict[str, tuple[str, int, int]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            cpu, wait, _ = Path(f"/proc/self/task/{tid}/schedstat").read_text().split()
        except (OSError, ValueError):
            continue
        out[tid] = (names.get(tid, tid), int(cpu), int(wait))
    return out


def _report_sched(files: int, r0: resource.struct_rusage, r1: resource.struct_rusage,
                  s0: dict[str, tuple[str, int, int]], s1: dict[str, tuple[str, int, int]], lat: list[float]) -> None:
    lat.sort()
    print(f"  context switches per file: voluntary {(r1.ru_nvcsw - r0.ru_nvcsw) / files:.2f}, involuntary "
          f"{(r1.ru_nivcsw - r0.ru_nivcsw) / files:.2f}; file wall time p10 {lat[len(lat) // 10] * 1e6:.0f} us, "
          f"p50 {lat[len(lat) // 2] * 1e6:.0f} us", flush=True)
    for tid, (name, cpu, wait) in s1.items():
        _, cpu0, wait0 = s0.get(tid, (name, 0, 0))
        c, w = (cpu - cpu0) / 1e3 / files, (wait - wait0) / 1e3 / files
        if c >= 1 or w >= 1:
            print(f"  {name:28} CPU {c:7.0f} us/file, run-queue wait {w:7.0f} us/file", flush=True)


def one_round(files: int, data: bytes, profiles: list[cProfile.Profile] | None) -> tuple[float, float, float]:
    """(files/s, user CPU s per 1,000 files, system CPU s per 1,000 files) of one fresh volume."""
    import jfs

    work = Path(tempfile.mkdtemp(prefix="jfs-small-cpu-"))
    try:
        url = f"sqlite3://{work}/jfs.db"
        subprocess.run([str(Path(sys.executable).parent / "jfs"), "format", url, "smallcpu", "--bucket",
                        str(work / "bucket"), "--trash-days", "0"], check=True, capture_output=True)
        with jfs.Client(url, cache_dir=str(work / "cache")) as c:
            c.makedirs("/d", exist_ok=True)
            for i in range(50):
                with c.open(f"/d/warm{i}", "wb") as f:
                    f.write(data)
            main = cProfile.Profile(time.thread_time) if profiles is not None else None
            if main is not None:
                main.enable()
            if COUNTS is not None:
                COUNTS.n.clear()
                COUNTS.on = True
            lat: list[float] = []
            s0 = _threads_sched() if SCHED else {}
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            if SCHED:
                clock = time.perf_counter
                for i in range(files):
                    start = clock()
                    with c.open(f"/d/f{i}", "wb") as f:
                        f.write(data)
                    lat.append(clock() - start)
            else:
                for i in range(files):
                    with c.open(f"/d/f{i}", "wb") as f:
                        f.write(data)
            t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            if SCHED:
                _report_sched(files, r0, r1, s0, _threads_sched(), lat)
            if COUNTS is not None:
                COUNTS.on = False
                COUNTS.report(files)
            if main is not None and profiles is not None:
                main.disable()
                profiles.append(main)
        k = 1000 / files
        return files / (t1 - t0), (r1.ru_utime - r0.ru_utime) * k, (r1.ru_stime - r0.ru_stime) * k
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=int, default=4096, help="bytes per file (0: create + close only)")
    ap.add_argument("--profile", metavar="OUT")
    ap.add_argument("--count", action="store_true", help="count SQL statements, loop callbacks, hops per file")
    ap.add_argument("--sched", action="store_true", help="context switches, per-thread CPU and run-queue waits")
    args = ap.parse_args()
    global SCHED
    SCHED = args.sched
    if args.count:
        global COUNTS
        COUNTS = Counts()
        COUNTS.install()
    profiles: list[cProfile.Profile] | None = None
    if args.profile:
        profiles = []
        run = threading.Thread.run

        def profiled_run(self: threading.Thread) -> None:
            p = cProfile.Profile(time.thread_time)
            assert profiles is not None
            profiles.append(p)
            p.enable()
            try:
                run(self)
            finally:
                p.disable()

        threading.Thread.run = profiled_run  # type: ignore[method-assign]
    for r in range(args.rounds):
        rate, user, sys_ = one_round(args.files, b"s" * args.size, profiles)
        print(f"round {r + 1}: {rate:.0f} files/s, CPU {user + sys_:.3f} s/1000 files "
              f"(user {user:.3f}, system {sys_:.3f})", flush=True)
    if profiles:
        stats = pstats.Stats(profiles[0])
        for p in profiles[1:]:
            stats.add(p)
        stats.dump_stats(args.profile)
        stats.sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()

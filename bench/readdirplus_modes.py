"""What each READDIRPLUS mode of a jfs mount (`--readdir-plus always|auto|never`, ADR 0080) costs for the listing
workloads users run, next to JuiceFS 1.4.2 (which lets the kernel choose, "auto"): wall time, mount CPU per
entry and the FUSE requests by opcode, counted by the kernel (tracepoint ``fuse:fuse_request_send`` with a
histogram trigger in a tracing instance of our own, keyed by connection, so other mounts do not count). Root only.

    cd /tmp && /path/to/.venv/bin/python /path/to/bench/readdirplus_modes.py --backend redis-file \
        --entries 10000 --rounds 3 --juicefs /path/to/juicefs [--modes always,auto] [--workloads ls,ls_l]

One directory of `--entries` empty files is made in process (bench/ls_cold_ab.py's fill), `jfs dump`ed and
`juicefs load`ed into a second database, so that every system lists the same names. Every jfs mode mounts the
same volume. Per round, mount and workload: ``cold`` (the mount remounted: no dentry, inode or listing in the
kernel; the engine's own caches, e.g. SQLite's pages in the page cache, stay as they are for every system)
then ``warm`` (at once after). Rounds rotate the order of the mounts. Figures under load: only same-run
comparisons mean anything.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import collections
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ab_bench import tree_cpu  # noqa: E402
from bench.comparison.backends import redis_server  # noqa: E402
from bench.comparison.harness import JfsMount, JuiceFSMount, Mount, progress, unmount_all  # noqa: E402
from bench.ls_cold_ab import _fill  # noqa: E402

TRACING = Path("/sys/kernel/tracing")
OPCODES = {1: "LOOKUP", 3: "GETATTR", 27: "OPENDIR", 28: "READDIR", 29: "RELEASEDIR", 44: "READDIRPLUS",
           2: "FORGET", 42: "BATCH_FORGET"}
SHOWN = ("READDIRPLUS", "READDIR", "LOOKUP", "GETATTR")


class OpCounter:
    """Kernel-side count of one mount's FUSE requests by opcode: the events of the tracepoint in a tracing
    instance of our own, filtered on the connection, read back from its buffer (no histogram triggers in this
    kernel)."""

    def __init__(self, name: str = "jfs-rdplus-bench") -> None:
        self.inst = TRACING / "instances" / name
        self.inst.mkdir(exist_ok=True)
        (self.inst / "buffer_size_kb").write_text("65536\n")
        self.event = self.inst / "events/fuse/fuse_request_send"
        atexit.register(self.close)

    def start(self, conn: int) -> None:
        (self.event / "enable").write_text("0\n")
        (self.event / "filter").write_text(f"connection == {conn}\n")
        (self.inst / "trace").write_text("")
        (self.event / "enable").write_text("1\n")

    def stop(self) -> collections.Counter[str]:
        (self.event / "enable").write_text("0\n")
        text = (self.inst / "trace").read_text()
        m = re.search(r"entries-in-buffer/entries-written: (\d+)/(\d+)", text)
        if m and m[1] != m[2]:
            progress(f"tracing lost events: {m[0]}")
        return collections.Counter(OPCODES.get(int(x), x) for x in re.findall(r" opcode (\d+) ", text))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            (self.event / "enable").write_text("0\n")
        with contextlib.suppress(OSError):
            self.inst.rmdir()


def tree_ns(pid: int) -> float:
    """CPU seconds (nanosecond resolution: ``/proc/PID/task/TID/schedstat``'s run time) of every thread of
    `pid` and of its live descendants; the tick-counted utime + stime of `tree_cpu` is 1 µs per entry at 10k."""
    kids: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    kids[int(f.read().rsplit(")", 1)[1].split()[1])].append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{p}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
    return total / 1e9


def connection(path: Path) -> int:
    """The kernel's dev_t of the FUSE connection serving `path` (MKDEV: major << 20 | minor)."""
    dev = os.stat(path).st_dev
    return (os.major(dev) << 20) | os.minor(dev)


def _run(cmd: list[str]) -> Callable[[Path], None]:
    def go(d: Path) -> None:
        subprocess.run([*cmd[:1], *(str(d) if a == "{}" else a for a in cmd[1:])], stdout=subprocess.DEVNULL,
                       check=True, env={**os.environ, "LC_ALL": "C"})
    return go


def _listdir(d: Path) -> None:
    os.listdir(d)


def _scandir_stat(d: Path) -> None:
    with os.scandir(d) as it:
        for e in it:
            e.stat()


def _ls_then_ls_l(d: Path) -> None:
    _run(["ls", "{}"])(d)
    _run(["ls", "-l", "{}"])(d)


WORKLOADS: dict[str, Callable[[Path], None]] = {
    "ls": _run(["ls", "{}"]),
    "listdir": _listdir,
    "find_name": _run(["find", "{}", "-name", "no-such-name"]),
    "find_type_f": _run(["find", "{}", "-type", "f"]),
    "ls_l": _run(["ls", "-l", "{}"]),
    "du_s": _run(["du", "-s", "{}"]),
    "scandir_stat": _scandir_stat,
    "ls_then_ls_l": _ls_then_ls_l,
}


@contextlib.contextmanager
def _urls(backend: str, work: Path) -> Iterator[tuple[str, str]]:
    if backend == "sqlite-file":
        yield f"sqlite3://{work / 'jfs.db'}", f"sqlite3://{work / 'juicefs.db'}"
    else:
        with redis_server() as url:
            yield f"{url}/1", f"{url}/2"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=("sqlite-file", "redis-file"), default="redis-file")
    ap.add_argument("--entries", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jfs", default=str(Path(sys.executable).parent / "jfs"))
    ap.add_argument("--juicefs", default="")
    ap.add_argument("--modes", default="always,auto,never")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--workdir", default="/tmp/rdplus/modes")
    ap.add_argument("--rm", type=int, default=0,
                    help="also, once per mount at the end: `rm -rf` of a directory of this many files, cold")
    ap.add_argument("--json", default="", help="also write the samples here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("root only (mounts, tracing)")
    work = Path(args.workdir)
    subprocess.run(["rm", "-rf", str(work)], check=False)
    work.mkdir(parents=True)
    atexit.register(unmount_all)
    counter = OpCounter()
    n = args.entries
    loads = [w for w in args.workloads.split(",") if w]
    with _urls(args.backend, work) as (jfs_url, juice_url):
        bucket = ["--storage", "file", "--bucket", f"{work / 'bucket'}/"]
        subprocess.run([args.jfs, "format", jfs_url, "bench-rdplus", "--trash-days", "0", *bucket], check=True,
                       capture_output=True)
        t0 = time.perf_counter()
        asyncio.run(_fill(jfs_url, n))
        names = [f"jfs-{mode}" for mode in args.modes.split(",") if mode] + (["JuiceFS"] if args.juicefs else [])
        for name in names if args.rm else ():
            asyncio.run(_fill(jfs_url, args.rm, f"rm-{name}".encode()))
        progress(f"{n} files made in {time.perf_counter() - t0:.1f} s")
        mounts: dict[str, Mount] = {
            f"jfs-{mode}": JfsMount("jfs", args.jfs, jfs_url, bucket, work / f"jfs-{mode}",
                                    extra=["--readdir-plus", mode])
            for mode in args.modes.split(",") if mode
        }
        if args.juicefs:
            dump = work / "dump.json"
            subprocess.run([args.jfs, "dump", jfs_url, str(dump)], check=True, capture_output=True)
            subprocess.run([args.juicefs, "load", juice_url, str(dump)], check=True, capture_output=True)
            mounts["JuiceFS"] = JuiceFSMount("JuiceFS", args.juicefs, juice_url, bucket, work / "juicefs")
        for m in mounts.values():
            m.mount()
        samples: dict[tuple[str, str, str], list[dict[str, float]]] = collections.defaultdict(list)
        order = list(mounts.items())
        for r in range(args.rounds):
            progress(f"round {r + 1}/{args.rounds}: {[k for k, _ in order]}")
            for wl in loads:
                for name, m in order:
                    m.remount()
                    conn = connection(m.mnt)
                    d = m.mnt / "big"
                    for phase in ("cold", "warm"):
                        counter.start(conn)
                        c0, n0, t0 = tree_cpu(m.pid or 0), tree_ns(m.pid or 0), time.perf_counter()
                        WORKLOADS[wl](d)
                        t1, n1, c1 = time.perf_counter(), tree_ns(m.pid or 0), tree_cpu(m.pid or 0)
                        s: dict[str, float] = {"s": t1 - t0, "cpu_us": (c1 - c0) / n * 1e6,
                                               "run_us": (n1 - n0) / n * 1e6, **counter.stop()}
                        samples[(wl, name, phase)].append(s)
                        progress(f"{r + 1} {wl} {name} {phase} {s['s']:.3f}s {s['cpu_us']:.2f}us {s['run_us']:.2f}us "
                                 + " ".join(f"{k}={int(s.get(k, 0))}" for k in SHOWN))
            order = order[1:] + order[:1]
        for name, m in mounts.items() if args.rm else ():
            m.remount()
            conn = connection(m.mnt)
            counter.start(conn)
            c0, n0, t0 = tree_cpu(m.pid or 0), tree_ns(m.pid or 0), time.perf_counter()
            subprocess.run(["rm", "-rf", str(m.mnt / f"rm-{name}")], check=True)
            t1, n1, c1 = time.perf_counter(), tree_ns(m.pid or 0), tree_cpu(m.pid or 0)
            s = {"s": t1 - t0, "cpu_us": (c1 - c0) / args.rm * 1e6, "run_us": (n1 - n0) / args.rm * 1e6,
                 **counter.stop()}
            samples[(f"rm_rf_{args.rm}", name, "cold")].append(s)
            progress(f"rm -rf {name} {s}")
        for m in mounts.values():
            m.unmount()
    if args.json:
        Path(args.json).write_text(json.dumps({"|".join(k): v for k, v in samples.items()}))
    print(f"\n{args.backend}, {n:,} entries, {args.rounds} rounds: median (min-max); requests: median per listing")
    print("| workload | mount | phase | seconds | mount CPU µs/entry | run µs/entry | " + " | ".join(SHOWN) + " |")
    print("|---|---|---|--:|--:|--:|" + "--:|" * len(SHOWN))
    for (wl, name, phase), xs in samples.items():
        cells = []
        for k, fmt in (("s", "{:.3f}"), ("cpu_us", "{:.2f}"), ("run_us", "{:.2f}")):
            v = [x[k] for x in xs]
            cells.append(f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))}-{fmt.format(max(v))})")
        cells += [f"{statistics.median([x.get(k, 0) for x in xs]):.0f}" for k in SHOWN]
        print(f"| {wl} | {name} | {phase} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

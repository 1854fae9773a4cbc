"""Where a Redis + file mount spends one metadata operation: py-spy profile, CPU and Redis commands per op.

    cd /tmp && /path/to/.venv/bin/python /path/to/bench/redis_md_profile.py --phases stat,rename,small,ls \
        [--juicefs /path/to/juicefs] [--py-spy /path/to/py-spy] [--items 2000] [--procs 4] \
        [--base-jfs /path/to/other/jfs --rounds 5 --phases stat,ls]

One redis-server; this tree's jfs on db 1 (and JuiceFS on db 2 with `--juicefs`). Per mount and phase:
ops/s, mount CPU per op (/proc/PID/stat of its process tree), client commands per op and redis-server read
events per op (`INFO commandstats` / `total_reads_processed` deltas; commands run inside Lua scripts are
counted by commandstats too, so `evalsha` is shown apart), and for jfs a raw py-spy profile of the phase
(``WORK/<phase>.spy``; fold it with ``bench/redis_md_profile.py --fold FILE``).

Phases: ``stat`` (os.stat of each file after drop_caches: LOOKUP), ``rename`` (same directory),
``small`` (create + write 128 KiB + close: CREATE+WRITE+FLUSH+RELEASE), ``read`` and ``statsmall`` (after
``small`` in the same round: read each of its files to the end / stat each, after drop_caches: juicefs bench's
"Read small file" and "Stat file"), ``ls`` (``ls -l`` of a 10k directory
after drop_caches: READDIRPLUS). With `--base-jfs` another tree's jfs mounts a volume of its own (db 3);
with `--rounds N` the phases run N times per mount in an order rotated each round (A/B alternating; stat, ls
and small repeat: small writes into a new directory each round) and a median (min-max) table follows.
Root only.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ab_bench import tree_cpu  # noqa: E402
from bench.comparison.backends import redis_server  # noqa: E402
from bench.comparison.harness import JfsMount, JuiceFSMount, Mount, drop_caches, progress, unmount_all  # noqa: E402
from bench.fuse_trace import FuseTrace  # noqa: E402
from bench.redis_md_ab import _delta, _redis_info  # noqa: E402

SMALL = b"x" * (128 << 10)


def _job(job: tuple[str, str, int]) -> None:
    directory, phase, n = job
    for j in range(n):
        if phase == "create":
            os.close(os.open(f"{directory}/f{j}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        elif phase == "stat":
            os.stat(f"{directory}/f{j}")
        elif phase == "rename":
            os.rename(f"{directory}/f{j}", f"{directory}/r{j}")
        elif phase == "small":
            fd = os.open(f"{directory}/s{j}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            os.write(fd, SMALL)
            os.close(fd)
        elif phase == "read":  # the files `small` wrote (same round), after drop_caches: open, read, close
            fd = os.open(f"{directory}/s{j}", os.O_RDONLY)
            while os.read(fd, 1 << 20):
                pass
            os.close(fd)
        elif phase == "statsmall":  # os.stat of the files `small` wrote (same round): "Stat file"
            os.stat(f"{directory}/s{j}")


def fold(path: str, top: int = 40) -> None:
    """Print the hottest leaf functions and the inclusive share of every function of a raw py-spy file."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    print(f"{total} samples\n-- self")
    for f, n in own.most_common(top):
        print(f"{100 * n / total:5.1f}% {f}")
    print("-- inclusive")
    for f, n in incl.most_common(top * 2):
        print(f"{100 * n / total:5.1f}% {f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phases", default="stat,rename,small,ls")
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--ls-entries", type=int, default=10000)
    ap.add_argument("--ls-remount", action="store_true",
                    help="ls phase as compare.py's: remount and drop caches (cold), then `ls -l` again at once "
                         "(phase ls-warm); wall time and mount CPU of each, per entry")
    ap.add_argument("--juicefs", default="")
    ap.add_argument("--base-jfs", default="", help="also another tree's jfs executable, on its own volume (db 3)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the phases this many times per mount, in an order rotated by one each round "
                         "(repeatable phases only: stat, ls)")
    ap.add_argument("--py-spy", default="")
    ap.add_argument("--spy-round", type=int, default=0, help="the round (0-based) profiled with --py-spy")
    ap.add_argument("--workdir", default="/tmp/jfs-redis-md-profile")
    ap.add_argument("--fold", default="", help="only fold this raw py-spy file and exit")
    ap.add_argument("--fuse-ops", action="store_true",
                    help="also count the FUSE requests per op of each phase by opcode (fuse_request_send tracepoint)")
    args = ap.parse_args()
    if args.fold:
        fold(args.fold)
        return
    if os.geteuid() != 0:
        sys.exit("root only (drop_caches)")
    phases = [p for p in args.phases.split(",") if p]
    work = Path(args.workdir)
    subprocess.run(["rm", "-rf", str(work)], check=False)
    work.mkdir(parents=True)
    atexit.register(unmount_all)
    here = Path(sys.executable).parent
    with redis_server() as url:
        host, port = url.split("//")[1].split(":")
        cli = ["redis-cli", "-h", host, "-p", port]
        mounts: dict[str, Mount] = {
            "jfs": JfsMount("jfs", str(here / "jfs"), f"{url}/1", ["--bucket", str(work / "jfs-bucket")], work / "jfs")
        }
        if args.base_jfs:
            mounts["jfs-base"] = JfsMount("jfs", args.base_jfs, f"{url}/3", ["--bucket", str(work / "base-bucket")],
                                          work / "jfs-base")
        if args.juicefs:
            mounts["JuiceFS"] = JuiceFSMount("JuiceFS", args.juicefs, f"{url}/2",
                                             ["--bucket", str(work / "juice-bucket")], work / "juicefs")
        for m in mounts.values():
            m.root.mkdir(parents=True, exist_ok=True)
            m.format()
            m.mount()
        progress("mounted: " + ", ".join(f"{k} pid {m.pid}" for k, m in mounts.items()))
        rows: list[str] = []
        samples: dict[tuple[str, str], list[tuple[float, float, float, float]]] = collections.defaultdict(list)
        fuse_ops: dict[tuple[str, str], list[dict[str, float]]] = collections.defaultdict(list)
        with ProcessPoolExecutor(args.procs) as pool:
            list(pool.map(int, range(args.procs)))
            for m in mounts.values():
                dirs = [m.mnt / f"p{i}" for i in range(args.procs)]
                for d in dirs:
                    d.mkdir(parents=True)
                if {"stat", "rename"} & set(phases):
                    list(pool.map(_job, [(str(d), "create", args.items) for d in dirs]))
                if "ls" in phases:
                    big = m.mnt / "big"
                    big.mkdir()
                    per = args.ls_entries // args.procs
                    subprocess.run(["bash", "-c", f"cd {big} && for p in $(seq 0 {args.procs - 1}); do "
                                    f"(for i in $(seq 1 {per}); do : > $p-$i; done) & done; wait"], check=True)
            order = list(mounts.items())
            for r in range(args.rounds):
                if args.rounds > 1:
                    progress(f"round {r + 1}/{args.rounds}: {[n for n, _ in order]}")
                for name, m in order:
                    dirs = [m.mnt / f"p{i}" for i in range(args.procs)]
                    run_phases = [x for p in phases for x in ((p, "ls-warm") if p == "ls" and args.ls_remount else (p,))]
                    for phase in run_phases:
                        if phase == "ls" and args.ls_remount:
                            m.remount()
                        if phase != "ls-warm":
                            drop_caches()
                        spy = None
                        if args.py_spy and name == "jfs" and r == args.spy_round:
                            spy = subprocess.Popen([args.py_spy, "record", "--format", "raw", "--rate", "500",
                                                    "--pid", str(m.pid), "-o", str(work / f"{phase}.spy")],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                            time.sleep(1.0)
                        trace = FuseTrace(m.mnt, f"redis-md-{os.getpid()}") if args.fuse_ops else None
                        if trace is not None:
                            trace.__enter__()
                        i0, c0, t0 = _redis_info(cli), tree_cpu(m.pid or 0), time.perf_counter()
                        if phase in ("ls", "ls-warm"):
                            subprocess.run(["ls", "-l", str(m.mnt / "big")], stdout=subprocess.DEVNULL, check=True)
                            n = args.ls_entries
                        else:
                            where = dirs
                            if phase == "small":  # a directory of its own per round: repeatable
                                where = [d / f"small{r}" for d in dirs]
                                for d in where:
                                    d.mkdir()
                            elif phase in ("read", "statsmall"):
                                where = [d / f"small{r}" for d in dirs]
                            list(pool.map(_job, [(str(d), phase, args.items) for d in where]))
                            n = args.procs * args.items
                        t1, c1, i1 = time.perf_counter(), tree_cpu(m.pid or 0), _redis_info(cli)
                        if trace is not None:
                            trace.__exit__(None, None, None)
                            fuse_ops[(name, phase)].append({k: v / n for k, v in trace.counts.items()})
                        if spy is not None:
                            spy.send_signal(2)
                            spy.wait(30)
                        d = _delta(i0, i1)
                        cmds = {k[8:]: v / n for k, v in d.items() if k.startswith("cmdstat_") and k != "cmdstat_info"}
                        reads = (d.get("total_reads_processed", 0) - 2) / n
                        rcpu = (d.get("used_cpu_sys", 0) + d.get("used_cpu_user", 0)) / n * 1e6
                        c = ", ".join(f"{k} {v:.2f}" for k, v in sorted(cmds.items()))
                        samples[(name, phase)].append((n / (t1 - t0), (c1 - c0) / n * 1e6, reads, rcpu))
                        rows.append(f"| {name} | {phase} | {n / (t1 - t0):,.0f} | {(c1 - c0) / n * 1e6:.0f} | "
                                    f"{reads:.2f} | {rcpu:.1f} | {c} |")
                        progress(rows[-1])
                order = order[1:] + order[:1]
        print("| mount | phase | ops/s | mount CPU µs/op | redis read events/op | redis CPU µs/op | commands/op |")
        print("|---|---|--:|--:|--:|--:|---|")
        print("\n".join(rows))
        if args.rounds > 1:
            print("\nmedian (min-max) over the rounds:")
            print("| mount | phase | ops/s | mount CPU µs/op | redis CPU µs/op |")
            print("|---|---|--:|--:|--:|")
            for (name, phase), xs in samples.items():
                cells = []
                for k, fmt in ((0, "{:,.0f}"), (1, "{:.2f}"), (3, "{:.2f}")):
                    v = [x[k] for x in xs]
                    cells.append(f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))}-{fmt.format(max(v))})")
                print(f"| {name} | {phase} | " + " | ".join(cells) + " |")
        if fuse_ops:
            print("\nFUSE requests per op by opcode (median over the rounds; fuse_request_send tracepoint):")
            print("| mount | phase | total | by opcode |")
            print("|---|---|--:|---|")
            for (name, phase), runs in fuse_ops.items():
                ops = sorted({k for r in runs for k in r})
                med = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in ops}
                by = ", ".join(f"{k} {v:.2f}" for k, v in sorted(med.items(), key=lambda kv: -kv[1]) if v >= 0.005)
                print(f"| {name} | {phase} | {sum(med.values()):.2f} | {by} |")
        for m in mounts.values():
            m.unmount()


if __name__ == "__main__":
    main()

"""`ls -l` of one big directory on Redis + file, cold (remount + drop_caches, as compare.py) and warm (at once
after), through two jfs trees on ONE volume and JuiceFS 1.4.2 on a copy of it: wall time, mount CPU and
redis-server CPU per entry, rounds alternating the order. Root only.

    cd /tmp && /path/to/.venv/bin/python /path/to/bench/ls_cold_ab.py --entries 100000 --rounds 5 \
        --jfs /path/to/new/jfs --base-jfs /path/to/base/jfs --juicefs /path/to/juicefs [--workdir DIR]

The directory is filled in process through this tree's engine (64 creates in flight: minutes faster than
through a loaded mount), `jfs dump`ed and `juicefs load`ed into a second database of the same redis-server,
so that every system lists the same names. Both jfs trees mount the same volume (each remounted before its
cold listing); `--jfs` defaults to this tree's `jfs`. Per round and system: ``cold`` and ``warm`` rows;
then medians (min-max). Mount CPU is user + system of the serving process tree (/proc), redis-server's from
``INFO`` (``used_cpu_*``), `ls`'s own from wait4, all per listed entry; the kernel counts the mount's listing
requests (READDIRPLUS + READDIR) and LOOKUP + GETATTR (bench/readdirplus_modes.py's tracepoint counter);
figures under load mean only same-run comparisons.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import collections
import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ab_bench import tree_cpu  # noqa: E402
from bench.comparison.backends import redis_server  # noqa: E402
from bench.comparison.harness import JfsMount, JuiceFSMount, Mount, drop_caches, progress, unmount_all  # noqa: E402
from bench.redis_md_ab import _delta, _redis_info  # noqa: E402


async def _fill(url: str, entries: int, name: bytes = b"big") -> None:
    from jfs.bootstrap import ClientOptions, open_client
    from jfs.domain.attrs import FileType

    client = await open_client(url, ClientOptions(cache_dir=None, permission_checks=False, entry_cache=0,
                                                  attr_cache=0, background_jobs=False))
    try:
        vfs = client.vfs
        ctx = vfs.ctx()
        d, _ = await vfs.mkdir(ctx, client.root, name, 0o755)
        sem = asyncio.Semaphore(64)

        async def make(i: int) -> None:
            async with sem:
                await vfs.mknod(ctx, d, b"file-%07d" % i, FileType.REGULAR, 0o644)

        await asyncio.gather(*(make(i) for i in range(entries)))
    finally:
        await client.close()


def _fill_through_mount(top: Path, entries: int, workers: int) -> None:
    """As bench/scale.py's big-directory phase: `workers` x 4 jobs, each creating (open O_CREAT + close) a
    contiguous range of names ``f%05d`` through the mount, `workers` processes at a time."""
    import multiprocessing

    from bench.scale import _create

    os.makedirs(top, exist_ok=True)
    per = -(-entries // (workers * 4))
    jobs = [(str(top), 0, i, min(i + per, entries)) for i in range(0, entries, per)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(_create, jobs)
    # _create puts them in d00000 under `top`; the listed directory is that one.


def _ls(m: Mount, entries: int, rel: str = "big") -> float:
    """`ls -l` of the directory, its output checked; the CPU seconds (user + system, wait4) of `ls` itself."""
    proc = subprocess.Popen(["ls", "-l", str(m.mnt / rel)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    lines = proc.stdout.read().count(b"\n")
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or lines != entries + 1:
        raise SystemExit(f"{m.root.name}: ls -l listed {lines - 1} entries, expected {entries}")
    return usage.ru_utime + usage.ru_stime


def _commandstats(cli: list[str]) -> dict[str, int]:
    """calls per command so far (INFO commandstats)."""
    out = subprocess.run(cli + ["INFO", "commandstats"], check=True, capture_output=True, text=True).stdout
    calls = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, _, rest = line.partition(":")
            calls[name[8:]] = int(rest.split(",")[0].split("=")[1])
    return calls


def _rss(pid: int) -> int:
    """resident MiB of `pid` (0 when unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=5)
    here = Path(sys.executable).parent
    ap.add_argument("--jfs", default=str(here / "jfs"))
    ap.add_argument("--base-jfs", default="")
    ap.add_argument("--juicefs", default="")
    ap.add_argument("--workdir", default="/tmp/jfs-ls-cold-ab")
    ap.add_argument("--fill", choices=("engine", "mount"), default="engine",
                    help="engine: in process, 64 creates in flight; mount: as bench/scale.py (through a jfs "
                         "mount, --processes x 4 jobs of open(O_CREAT)+close)")
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--cold", choices=("remount", "drop"), default="remount",
                    help="remount: remount + drop_caches before the cold listing; drop: drop_caches only, the "
                         "mount left up (bench/scale.py's way)")
    ap.add_argument("--volume-files", type=int, default=0,
                    help="N > 0: instead of filling, `jfs load` / `juicefs load` one synthetic dump of N files in "
                         "directories of 1,000 plus the listed directory (bench/scale_offline.py's shape: the 1M "
                         "volume of bench/scale.py's listing phase)")
    ap.add_argument("--small", action="store_true",
                    help="with --volume-files: also load the listed directory alone (a volume of ~100k inodes) into "
                         "another database and list it through a mount of --jfs named jfs-small, in the same rounds")
    ap.add_argument("--prime-dirs", type=int, default=0,
                    help="with --volume-files: before every cold listing, `du -s` of that many of the mount's "
                         "directories of 1,000 (the kernel then holds their inodes, and the drop before the listing "
                         "evicts them: scale.py's ~200,000 at its drop); prints the mount's CPU in the drop")
    ap.add_argument("--prime-du", action="store_true",
                    help="with --volume-files: `du -s` of every mount's whole tree once after mounting (the mount "
                         "and the kernel then have seen every inode, as after scale.py's create and stat phases)")
    ap.add_argument("--py-spy", default="",
                    help="path of py-spy: record (--native --idle) the first jfs mount's cold listing of round 1")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("root only (mounts, drop_caches)")
    from bench.readdirplus_modes import OpCounter, connection  # it imports this module's fill

    ops = OpCounter(f"jfs-ls-cold-ab-{os.getpid()}")  # one instance per run: concurrent runs do not share it
    work = Path(args.workdir)
    subprocess.run(["rm", "-rf", str(work)], check=False)
    work.mkdir(parents=True)
    atexit.register(unmount_all)
    with redis_server() as url, contextlib.ExitStack() as stack:
        stack.callback(unmount_all)  # before the server stops, also on failure (a jfs mount without it hangs)
        host, port = url.split("//")[1].split(":")
        cli = ["redis-cli", "-h", host, "-p", port]
        bucket = ["--bucket", str(work / "bucket")]
        jfs_url, juice_url = f"{url}/1", f"{url}/2"
        subprocess.run([args.jfs, "format", jfs_url, "bench-ls", "--trash-days", "0", *bucket], check=True,
                       capture_output=True)
        t0 = time.perf_counter()
        rel = "big"
        if args.volume_files:
            from bench.scale_offline import write_dump

            subprocess.run(cli + ["-n", "1", "FLUSHDB"], check=True, capture_output=True)
            (work / "bucket").mkdir(exist_ok=True)
            write_dump(work / "dump.json", args.volume_files, 1000, str(work / "bucket"), big=args.entries)
            subprocess.run([args.jfs, "load", jfs_url, str(work / "dump.json")], check=True, capture_output=True)
        elif args.fill == "engine":
            asyncio.run(_fill(jfs_url, args.entries))
        else:
            filler = JfsMount("jfs", args.jfs, jfs_url, bucket, work / "fill")
            filler.mount()
            try:
                _fill_through_mount(filler.mnt / "big", args.entries, args.processes)
            finally:
                filler.unmount()
            rel = "big/d00000"
        progress(f"{args.entries} files made in {time.perf_counter() - t0:.1f} s")
        mounts: dict[str, Mount] = {"jfs": JfsMount("jfs", args.jfs, jfs_url, bucket, work / "jfs")}
        if args.base_jfs:
            mounts["jfs-base"] = JfsMount("jfs", args.base_jfs, jfs_url, bucket, work / "jfs-base")
        if args.volume_files and args.small:
            from bench.scale_offline import write_dump

            (work / "bucket-small").mkdir(exist_ok=True)
            write_dump(work / "small.json", 0, 1000, str(work / "bucket-small"), big=args.entries)
            subprocess.run([args.jfs, "load", f"{url}/3", str(work / "small.json")], check=True, capture_output=True)
            mounts["jfs-small"] = JfsMount("jfs", args.jfs, f"{url}/3", bucket, work / "jfs-small")
        if args.juicefs:
            dump = work / "dump.json"
            if not args.volume_files:
                subprocess.run([args.jfs, "dump", jfs_url, str(dump)], check=True, capture_output=True)
            subprocess.run([args.juicefs, "load", juice_url, str(dump)], check=True, capture_output=True)
            mounts["JuiceFS"] = JuiceFSMount("JuiceFS", args.juicefs, juice_url, bucket, work / "juicefs")
        for m in mounts.values():
            m.mount()
            if args.prime_du:
                t0 = time.perf_counter()
                subprocess.run(["du", "-s", str(m.mnt)], check=True, capture_output=True)
                progress(f"{m.mnt.name}: du -s in {time.perf_counter() - t0:.1f} s, mount RSS {_rss(m.pid or 0)} MiB")
        spy = None
        samples: dict[tuple[str, str], list[tuple[float, float, float]]] = collections.defaultdict(list)
        rows: list[str] = []
        order = list(mounts.items())
        n = args.entries
        for r in range(args.rounds):
            progress(f"round {r + 1}/{args.rounds}: {[k for k, _ in order]}")
            for name, m in order:
                if args.cold == "remount":
                    m.remount()
                else:
                    os.sync()
                if args.prime_dirs and (m.mnt / "d00000").exists():  # not in --small's volume
                    subprocess.run(["du", "-s", *(str(m.mnt / f"d{d:05d}") for d in range(args.prime_dirs))],
                                   check=True, capture_output=True)
                    os.sync()
                    c0, t0 = tree_cpu(m.pid or 0), time.perf_counter()
                    drop_caches()
                    progress(f"{name}: drop of {args.prime_dirs * 1001:,} inodes {time.perf_counter() - t0:.3f} s, "
                             f"mount CPU in it {tree_cpu(m.pid or 0) - c0:.3f} s")
                else:
                    drop_caches()
                for phase in ("cold", "warm"):
                    if args.py_spy and r == 0 and phase == "cold" and name == "jfs":
                        spy = subprocess.Popen([args.py_spy, "record", "--native", "--idle", "-r", "250", "-f",
                                                "speedscope", "-o", str(work / "ls-cold.speedscope.json"), "-p",
                                                str(m.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        time.sleep(2)
                    ops.start(connection(m.mnt))
                    s0 = _commandstats(cli)
                    i0, c0, t0 = _redis_info(cli), tree_cpu(m.pid or 0), time.perf_counter()
                    ls_cpu = _ls(m, n, rel) / n * 1e6
                    t1, c1, i1 = time.perf_counter(), tree_cpu(m.pid or 0), _redis_info(cli)
                    calls = {k: v - s0.get(k, 0) for k, v in _commandstats(cli).items() if v - s0.get(k, 0)}
                    count = ops.stop()
                    if spy is not None:
                        spy.send_signal(2)
                        spy.wait()
                        spy = None
                    progress(f"{name} {phase}: redis calls {calls}, mount RSS {_rss(m.pid or 0)} MiB")
                    d = _delta(i0, i1)
                    rcpu = (d.get("used_cpu_sys", 0) + d.get("used_cpu_user", 0)) / n * 1e6
                    plus, asked = count["READDIRPLUS"] + count["READDIR"], count["LOOKUP"] + count["GETATTR"]
                    samples[(name, phase)].append((t1 - t0, (c1 - c0) / n * 1e6, rcpu, ls_cpu, plus, asked))
                    rows.append(f"| {r + 1} | {name} | {phase} | {t1 - t0:.3f} | {(c1 - c0) / n * 1e6:.2f} | {rcpu:.2f}"
                                f" | {ls_cpu:.2f} | {plus} | {asked} |")
                    progress(rows[-1])
            order = order[1:] + order[:1]
        for m in mounts.values():
            m.unmount()
    print(f"\n`ls -l` of {n:,} entries; per round:")
    print("| round | mount | phase | seconds | mount CPU µs/entry | redis CPU µs/entry | ls CPU µs/entry"
          " | listing requests | LOOKUP + GETATTR |")
    print("|---|---|---|--:|--:|--:|--:|--:|--:|")
    print("\n".join(rows))
    print("\nmedian (min-max) over the rounds:")
    print("| mount | phase | seconds | mount CPU µs/entry | redis CPU µs/entry | ls CPU µs/entry | listing requests"
          " | LOOKUP + GETATTR |")
    print("|---|---|--:|--:|--:|--:|--:|--:|")
    for (name, phase), xs in samples.items():
        cells = []
        for k, fmt in ((0, "{:.3f}"), (1, "{:.2f}"), (2, "{:.2f}"), (3, "{:.2f}"), (4, "{:.0f}"), (5, "{:.0f}")):
            v = [x[k] for x in xs]
            cells.append(f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))}-{fmt.format(max(v))})")
        print(f"| {name} | {phase} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

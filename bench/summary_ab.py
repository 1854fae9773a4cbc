"""`jfs summary` and `jfs fsck` on Redis, A/B and next to JuiceFS (issue 17, "Scale"; ADR 0061).

Usage:  .venv/bin/python bench/summary_ab.py [--files 100000] [--per-dir 1000] [--pairs 3]
        [--base /tmp/base-X] [--ops summary,fsck] [--juicefs PATH] [--fill] [--du] [--main-cli]

Starts a throwaway redis-server and fills db 1 (jfs) and db 3 (JuiceFS) with ``--files`` empty files in
directories of ``--per-dir`` (the shape of `bench/scale.py`'s tree): by default through the synthetic dump
of `bench/scale_offline.py`, loaded with this checkout's ``jfs load`` and with ``juicefs load`` (then
``juicefs config --dir-stats``, as a volume JuiceFS formats keeps them); with ``--fill`` by formatting empty
volumes and creating the files through the mounts, 4 processes as scale.py does (a loaded volume's keys
sit in Redis's memory in index order, which makes every walk cheaper for Redis than on a volume written by
clients: ADR 0083). It mounts db 1 twice — base (``--base``: a directory holding another checkout's
``jfs`` package, run with PYTHONPATH from ``/``: from the checkout, ``python -m`` would import the
checkout's package first) and new (this checkout) — and db 3 with JuiceFS. Then, ``--pairs`` times, in
alternating order: ``summary`` of the mount's root (the command's own CPU from wait4, the serving mount's
CPU from /proc, redis-server's CPU from /proc) and ``fsck`` of the engine (the command's CPU; JuiceFS's
fsck without ``--path`` checks the objects of every slice only). One warm-up summary per system first
(JuiceFS computes its missing directory statistics then; printed as ``first``), after ``du -s`` of every
mount with ``--du``. Prints one line per run and a median table. Needs root (FUSE). Everything it mounts
is unmounted, the server stopped, its temporary directory removed.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comparison.harness import fuse_servers  # noqa: E402
from scale_offline import write_dump  # noqa: E402

from jfs.testing.servers import redis_server  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """user + system seconds of `pid` (its own threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds from wait4) of `argv`; raises on failure."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd="/")
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # fsck exits 1 when it finds problems: still a run
        raise RuntimeError(f"{argv[:3]} failed ({code}): {proc.stderr.read().decode()[-600:] if proc.stderr else ''}")
    return seconds, usage.ru_utime + usage.ru_stime


def _create(job: tuple[str, int, int]) -> None:
    top, d, count = job
    base = f"{top}/d{d:05d}"
    os.makedirs(base, exist_ok=True)
    for i in range(count):
        os.close(os.open(f"{base}/f{i:06d}", os.O_CREAT | os.O_WRONLY, 0o644))


def fill(mnt: Path, files: int, per_dir: int) -> None:
    """`files` empty files in directories of `per_dir` under `mnt`, created by 4 processes (one directory
    each at a time, as bench/scale.py creates its tree)."""
    jobs = [(str(mnt), d, min(per_dir, files - d * per_dir)) for d in range(-(-files // per_dir))]
    with mp.get_context("fork").Pool(4) as pool:
        pool.map(_create, jobs, chunksize=1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--per-dir", type=int, default=1000)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--base", default="", help="directory holding the base checkout's jfs package")
    ap.add_argument("--juicefs", default=str(Path(sys.executable).parent / "juicefs"))
    ap.add_argument("--ops", default="summary,fsck")
    ap.add_argument("--du", action="store_true",
                    help="drop caches and `du -s` every mount first (as bench/scale.py does before its summary: the "
                         "mount then knows every inode the kernel looked up)")
    ap.add_argument("--fill", action="store_true",
                    help="format empty volumes and create the files through the mounts (4 processes, as "
                         "bench/scale.py): Redis's memory then holds them in creation order, not index order")
    ap.add_argument("--main-cli", action="store_true",
                    help="run jfs as bench/scale.py does (`python -m jfs.cli.main`), not the console script's entry")
    args = ap.parse_args()
    ops = args.ops.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="summary-ab-"))
    src = tmp / "src.json"
    (tmp / "bucket").mkdir()
    if args.fill:
        entries = args.files + -(-args.files // args.per_dir) + 2
    else:
        entries = write_dump(src, args.files, args.per_dir, str(tmp / "bucket"))
        print(f"synthetic dump: {entries} entries", flush=True)
    py = sys.executable
    new_env = dict(os.environ)
    cli = [py, "-m", "jfs.cli.main"] if args.main_cli else [py, "-c", "from jfs.cli import run; run()"]
    systems: list[tuple[str, list[str], dict[str, str]]] = [("new", cli, new_env)]
    if args.base:
        systems.insert(0, ("base", cli, dict(os.environ, PYTHONPATH=args.base)))
    results: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    mounted: list[Path] = []
    with redis_server() as server:
        rpid = server.process.pid
        jurl, kurl = f"{server.url}/1", f"{server.url}/3"
        quiet: dict[str, Any] = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        if args.fill:  # empty volumes, filled below through their mounts
            (tmp / "kbucket").mkdir()
            subprocess.run([*systems[-1][1], "format", jurl, "ab-jfs", "--trash-days", "0", "--storage", "file",
                            "--bucket", f"{tmp / 'bucket'}/"], env=new_env, **quiet)
            subprocess.run([args.juicefs, "format", "--trash-days", "0", kurl, "ab-juicefs", "--storage", "file",
                            "--bucket", f"{tmp / 'kbucket'}/"], **quiet)
        else:
            subprocess.run([*systems[-1][1], "load", jurl, str(src)], env=new_env, **quiet)
            subprocess.run([args.juicefs, "load", kurl, str(src)], **quiet)
            subprocess.run([args.juicefs, "config", kurl, "--dir-stats"], **quiet)
        try:
            mounts: dict[str, tuple[list[str], dict[str, str], Path]] = {}
            for name, cli, env in systems:
                mnt = tmp / f"mnt-{name}"
                mnt.mkdir()
                subprocess.run([*cli, "mount", jurl, str(mnt), "-d", "--log", str(tmp / f"{name}.log")],
                               check=True, env=env, stdout=subprocess.DEVNULL, cwd="/")
                mounted.append(mnt)
                mounts[name] = (cli, env, mnt)
            kmnt = tmp / "mnt-juicefs"
            kmnt.mkdir()
            subprocess.run([args.juicefs, "mount", kurl, str(kmnt), "-d", "--log", str(tmp / "juicefs.log")],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            mounted.append(kmnt)
            mounts["juicefs"] = ([args.juicefs], dict(os.environ), kmnt)
            if args.fill:
                for name in ("new", "juicefs"):  # base mounts the same engine as new
                    started = time.perf_counter()
                    fill(mounts[name][2], args.files, args.per_dir)
                    print(f"{name}: {args.files:,} files created through the mount in "
                          f"{time.perf_counter() - started:.0f} s", flush=True)
            if args.du:
                Path("/proc/sys/vm/drop_caches").write_text("3\n")
                for _cli, _env, mnt in mounts.values():
                    subprocess.run(["du", "-s", str(mnt)], check=True, stdout=subprocess.DEVNULL)
            for name, (cli, env, mnt) in mounts.items() if "summary" in ops else ():  # warm-up (JuiceFS fills
                servers = fuse_servers(mnt)  # its directory statistics then)
                m0 = sum(proc_cpu(p) for p in servers)
                sec, cpu = run_child([*cli, "summary", str(mnt)], env)
                mcpu = sum(proc_cpu(p) for p in servers) - m0
                print(f"first   {name:7} summary: {sec:6.2f} s  CLI CPU {cpu:5.2f}  mount CPU {mcpu:5.2f}", flush=True)
            for pair in range(args.pairs):
                order = list(mounts) if pair % 2 == 0 else list(mounts)[::-1]
                for name in order:
                    cli, env, mnt = mounts[name]
                    if "summary" in ops:
                        servers = fuse_servers(mnt)
                        m0 = sum(proc_cpu(p) for p in servers)
                        r0 = proc_cpu(rpid)
                        sec, cpu = run_child([*cli, "summary", str(mnt)], env)
                        mcpu = sum(proc_cpu(p) for p in servers) - m0
                        rcpu = proc_cpu(rpid) - r0
                        results.setdefault((name, "summary"), []).append((sec, cpu, mcpu, rcpu))
                        print(f"pair {pair} {name:7} summary: {sec:6.2f} s  CLI CPU {cpu:5.2f}  mount CPU {mcpu:5.2f}"
                              f"  redis CPU {rcpu:5.2f}", flush=True)
                    if "fsck" in ops:
                        url = kurl if name == "juicefs" else jurl
                        r0 = proc_cpu(rpid)
                        sec, cpu = run_child([*cli, "fsck", url], env)
                        rcpu = proc_cpu(rpid) - r0
                        results.setdefault((name, "fsck"), []).append((sec, cpu, 0.0, rcpu))
                        print(f"pair {pair} {name:7} fsck:    {sec:6.2f} s  CPU {cpu:5.2f}  redis CPU {rcpu:5.2f}",
                              flush=True)
        finally:
            for mnt in mounted:
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False, timeout=60,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
    shutil.rmtree(tmp, ignore_errors=True)  # the dump (≈ 230 MiB at 1M) and the bucket
    print(f"\nmedians ({entries:,} entries): op | system | wall s | command CPU s | mount CPU s | redis CPU s")
    for (name, op), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        med = [statistics.median(r[i] for r in runs) for i in range(4)]
        spread = ", ".join(f"{r[0]:.2f}" for r in runs)
        print(f"| {op} | {name} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.2f} | {med[3]:.2f} |  (wall per run: {spread})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Dump/load benchmark: entries/s and peak memory of `jfs dump` and `jfs load` on a big volume.

Usage:  .venv/bin/python bench/dump_bench.py [--engines sqlite,redis] [--files 100000[,20000…]] [--per-dir 1000]
        [--concurrency 64] [--threads 10]

For each engine and size it formats a fresh volume and fills it through the metadata engine (no FUSE):
`--files` regular files in directories of `--per-dir`, each with one 4 KiB slice, every 100th file with an
xattr and every 1000th with a second (hard) link. Then it runs, each as its own ``jfs`` process, ``dump``
(to a file) and ``load`` (of that file into a fresh engine of the same kind), and reports entries/s as the
command measured it, the wall time of the process, and its peak RSS (``wait4``). Comparing the peak RSS of
two sizes shows whether memory stays flat. `sqlite` uses temp files; `redis` a throwaway redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from jfs.adapters.kv.registry import open_kv
from jfs.app.meta import Meta
from jfs.app.meta.engine import format_meta
from jfs.domain.attrs import ROOT_INODE, FileType
from jfs.domain.settings import Settings
from jfs.testing.engines import wipe_engine


@contextmanager
def engine_urls(name: str, tmp: str) -> Iterator[tuple[str, str]]:
    """(source URL, empty destination URL) of engine `name`."""
    if name == "sqlite":
        yield f"sqlite3://{tmp}/src.db", f"sqlite3://{tmp}/dst.db"
    elif name == "redis":
        from jfs.testing.servers import redis_server

        with redis_server() as server:
            yield server.url + "/1", server.url + "/2"
    else:
        raise SystemExit(f"unknown engine {name}")


async def fill(url: str, files: int, per_dir: int, concurrency: int) -> float:
    kv = await open_kv(url)
    await kv.reset()
    await format_meta(kv, Settings(name="bench", trash_days=0))
    m = await Meta.load(kv)
    await m.start_session(background=False)
    start = time.perf_counter()
    ndirs = -(-files // per_dir)
    dirs = [(await m.mkdir(ROOT_INODE, b"d%05d" % d, 0o755))[0] for d in range(ndirs)]
    queue = iter(range(files))

    async def worker() -> None:
        for i in queue:
            parent = dirs[i // per_dir]
            ino, _ = await m.mknod(parent, b"file-%07d.dat" % i, FileType.REGULAR, 0o644)
            await m.write_slice(ino, 0, 0, await m.next_slice_id(), 4096, 0, 4096)
            if i % 100 == 0:
                await m.setxattr(ino, b"user.tag", b"bench %d" % i)
            if i % 1000 == 0:
                await m.link(ino, ROOT_INODE, b"link-%07d" % i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await m.close()
    await kv.close()
    return elapsed


@dataclass
class Run:
    rate: float
    wall: float
    max_rss_mib: float
    line: str


def run_cli(*args: str) -> Run:
    """Run ``jfs ARGS`` as a child process; its summary line, wall time and peak RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "jfs.cli.main", "-q", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"jfs {' '.join(args)} failed:\n{err.decode(errors='replace')}")
    text = (out + err).decode(errors="replace")
    m = re.search(r"\(([\d,]+) entries/s\)", text)
    line = next((ln for ln in text.splitlines() if "entries" in ln), text.strip())
    return Run(float(m.group(1).replace(",", "")) if m else 0.0, wall, usage.ru_maxrss / 1024, line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="sqlite,redis")
    parser.add_argument("--files", default="100000", help="comma-separated sizes")
    parser.add_argument("--per-dir", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--threads", type=int, default=10, help="jfs dump --threads")
    args = parser.parse_args()
    rows = []
    for engine in args.engines.split(","):
        for files in (int(n) for n in args.files.split(",")):
            with tempfile.TemporaryDirectory(prefix="jfs-dump-bench-") as tmp, engine_urls(engine, tmp) as (src, dst):
                fill_s = asyncio.run(fill(src, files, args.per_dir, args.concurrency))
                print(f"{engine}: created {files} files in {fill_s:.1f} s ({files / fill_s:,.0f} files/s)", flush=True)
                path = os.path.join(tmp, "dump.json")
                dump = run_cli("dump", src, path, "--threads", str(args.threads))
                print(f"  dump: {dump.line}", flush=True)
                size = os.path.getsize(path)
                asyncio.run(wipe_engine(dst))
                load = run_cli("load", dst, path)
                print(f"  load: {load.line}", flush=True)
                rows.append((engine, files, size, dump, load))
    print("\n| engine | files | dump MiB | dump entries/s | dump wall s | dump peak RSS MiB "
          "| load entries/s | load wall s | load peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for engine, files, size, dump, load in rows:
        print(f"| {engine} | {files:,} | {size / 2**20:.1f} | {dump.rate:,.0f} | {dump.wall:.1f} | {dump.max_rss_mib:.0f} "
              f"| {load.rate:,.0f} | {load.wall:.1f} | {load.max_rss_mib:.0f} |")


if __name__ == "__main__":
    main()

"""Does a metadata operation's CPU grow with the volume? The engine path alone (no FUSE), one process.

Usage:  .venv/bin/python bench/scale_engine.py [--engine sqlite|redis] [--files 200000] [--segment 10000]
        [--per-dir 1000] [--concurrency 16]

Creates ``--files`` files (``--per-dir`` per directory, `Meta.mknod`, ``--concurrency`` tasks), and after
every ``--segment`` files looks up 2,000 random existing ones (`Meta.lookup`); prints this process's CPU
(user + system, all threads) per create and per lookup of each segment. CPU, not wall time, so that a busy
machine still gives comparable figures (issue 17, "Scale": cost must not grow with the volume).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from meta_bench import engine_url  # noqa: E402

from jfs.adapters.kv.registry import open_kv  # noqa: E402
from jfs.app.meta import Meta  # noqa: E402
from jfs.app.meta.engine import format_meta  # noqa: E402
from jfs.domain.attrs import ROOT_INODE, FileType  # noqa: E402
from jfs.domain.settings import Settings  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(url: str, args: argparse.Namespace) -> None:
    kv = await open_kv(url)
    await kv.reset()
    await format_meta(kv, Settings(name="scale", trash_days=0))
    m = await Meta.load(kv)
    await m.start_session(background=False)
    dirs: list[int] = []
    rng = random.Random(7)
    done = 0
    print("| files | create CPU µs/op | lookup CPU µs/op |\n|---:|---:|---:|", flush=True)
    while done < args.files:
        todo = list(range(done, min(done + args.segment, args.files)))
        while len(dirs) * args.per_dir < todo[-1] + 1:
            dirs.append((await m.mkdir(ROOT_INODE, b"d%05d" % len(dirs), 0o755))[0])
        queue = iter(todo)

        async def creator(queue: Iterator[int] = queue) -> None:
            for n in queue:
                await m.mknod(dirs[n // args.per_dir], b"f%05d" % (n % args.per_dir), FileType.REGULAR, 0o644)

        c0 = cpu()
        await asyncio.gather(*(creator() for _ in range(args.concurrency)))
        c1 = cpu()
        done = todo[-1] + 1
        picks = iter([rng.randrange(done) for _ in range(2000)])

        async def looker(picks: Iterator[int] = picks) -> None:
            for n in picks:
                await m.lookup(dirs[n // args.per_dir], b"f%05d" % (n % args.per_dir))

        await asyncio.gather(*(looker() for _ in range(args.concurrency)))
        c2 = cpu()
        print(f"| {done:,} | {(c1 - c0) / len(todo) * 1e6:,.0f} | {(c2 - c1) / 2000 * 1e6:,.0f} |", flush=True)
    await m.close()
    await kv.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", default="sqlite")
    ap.add_argument("--files", type=int, default=200_000)
    ap.add_argument("--segment", type=int, default=10_000)
    ap.add_argument("--per-dir", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    async with engine_url(args.engine) as url:
        await run(url, args)


if __name__ == "__main__":
    asyncio.run(main())

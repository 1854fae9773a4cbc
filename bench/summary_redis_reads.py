"""Redis CPU of the ways a summary could read a directory page (ADR 0083).

Usage:  .venv/bin/python bench/summary_redis_reads.py META-URL REDIS-PID [--top INODE] [--dirs 200]
        [--rounds 4] [--width 8]

For the first ``--dirs`` subdirectories of directory ``--top`` (default the root) of a jfs volume on Redis,
reads every page, ``--width`` directories at a time, in alternating order per round, by:

- ``native``: `follow_range` as the summary does (ZRANGEBYLEX, MGET of the dentries, MGET of the records);
- ``sort#k``: ZLEXCOUNT ×2, ``SORT_RO i BY nosort LIMIT … GET # GET k*`` (names and dentries in one
  reply, ADR 0082's command), MGET of the records;
- ``sortk``: the same with ``GET k*`` only (dentries without names);
- ``tally`` / ``tally-top10``: the TALLY script of ADR 0093 (`bench/summary_lua_tally.py`; checked first
  against `jfs.domain.tally` of the native page) (the same three reads inside
  Redis, a reply of sums; with the 10 biggest files, as a summary's first two levels ask);
- ``names+dentries``: ZRANGEBYLEX and the MGET of the dentries only (what the records' MGET costs is the
  difference to ``native``).

Prints the median wall seconds, redis-server's CPU (/proc of REDIS-PID) and this process's CPU per round.
Reads only; the volume is not changed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from jfs.adapters.kv import redis_batch
from jfs.adapters.kv.registry import open_kv
from jfs.app.meta import store
from jfs.domain import keys
from jfs.domain.records import decode_dentry
from jfs.domain.tally import tally

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summary_lua_tally import tally_page  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PTR = store.entry_attr_pointer(0)


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def run(args: argparse.Namespace) -> None:
    kv = await open_kv(args.url)
    top = keys.dentry_prefix(args.top)
    got = await kv.follow_range(top, keys.prefix_end(top), 4096, PTR, ())  # type: ignore[attr-defined]
    dirs = [decode_dentry(v)[1] for v in got.values][:args.dirs]

    async def native(ino: int) -> None:
        p = keys.dentry_prefix(ino)
        await kv.follow_range(p, keys.prefix_end(p), 4096, PTR, (keys.attr(ino),))  # type: ignore[attr-defined]

    async def by_sort(ino: int, names: bool) -> None:
        p = keys.dentry_prefix(ino)
        rank, n = await asyncio.gather(kv._read(b"ZLEXCOUNT", b"i", b"-", b"(" + p),  # type: ignore[attr-defined]
                                       kv._read(b"ZLEXCOUNT", b"i", b"[" + p, b"(" + keys.prefix_end(p)))  # type: ignore[attr-defined]
        if names:
            reply = await kv._read(b"SORT_RO", b"i", b"BY", b"nosort", b"LIMIT", rank, n,  # type: ignore[attr-defined]
                                   b"GET", b"#", b"GET", b"k*")
            values = reply[1::2]
        else:
            values = await kv._read(b"SORT_RO", b"i", b"BY", b"nosort", b"LIMIT", rank, n, b"GET", b"k*")  # type: ignore[attr-defined]
        packed = redis_batch._mget_pointed(values, PTR, redis_batch._mget_tail([keys.attr(ino)]), 1)
        if packed is not None:
            await kv._read_packed(packed)  # type: ignore[attr-defined]

    async def names_dentries(ino: int) -> None:
        p = keys.dentry_prefix(ino)
        listed = await kv._read(b"ZRANGEBYLEX", b"i", b"[" + p, b"(" + keys.prefix_end(p), b"LIMIT", b"0", 4096)  # type: ignore[attr-defined]
        if listed:
            await kv._read_packed(redis_batch._mget(listed))  # type: ignore[attr-defined]

    async def tallied(ino: int, top: int) -> None:
        p = keys.dentry_prefix(ino)
        got = await tally_page(kv, p, keys.prefix_end(p), 4096, PTR, keys.attr(ino), top)
        assert got is not None

    for ino in dirs:  # the script sums what the mount's column tally sums (else its figures mean nothing)
        p = keys.dentry_prefix(ino)
        page = await kv.follow_range(p, keys.prefix_end(p), 4096, PTR, (keys.attr(ino),))  # type: ignore[attr-defined]
        want = tally(page.targets, 10)
        got = await tally_page(kv, p, keys.prefix_end(p), 4096, PTR, keys.attr(ino), 10)
        assert got is not None
        assert got[:3] == (want.files, want.length, want.space), (ino, got[:3], want)
        assert sorted(r[0] for r in got[3]) == [page.keys[i] for i in want.dirs]
        assert sorted(r[0] for r in got[4]) == sorted(page.keys[i] for i in want.top)

    ways: dict[str, Callable[[int], Awaitable[None]]] = {
        "native": native,
        "tally": lambda ino: tallied(ino, 0),
        "tally-top10": lambda ino: tallied(ino, 10),
        "sort#k": lambda ino: by_sort(ino, True),
        "sortk": lambda ino: by_sort(ino, False),
        "names+dentries": names_dentries,
    }
    sem = asyncio.Semaphore(args.width)

    async def one(fn: Callable[[int], Awaitable[None]], ino: int) -> None:
        async with sem:
            await fn(ino)

    results: dict[str, list[tuple[float, float, float]]] = {}
    for r in range(args.rounds):
        for name in list(ways) if r % 2 == 0 else list(ways)[::-1]:
            c0, p0, t0 = proc_cpu(args.redis_pid), time.process_time(), time.perf_counter()
            await asyncio.gather(*(one(ways[name], ino) for ino in dirs))
            results.setdefault(name, []).append((time.perf_counter() - t0, proc_cpu(args.redis_pid) - c0,
                                                 time.process_time() - p0))
    print(f"{len(dirs)} directories, {args.rounds} rounds: way | wall s | redis CPU s | client CPU s (medians) "
          "| redis CPU per round")
    for name, rows in results.items():
        med = [statistics.median(row[i] for row in rows) for i in range(3)]
        print(f"| {name} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.2f} | {', '.join(f'{row[1]:.2f}' for row in rows)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("redis_pid", type=int)
    ap.add_argument("--top", type=int, default=1)
    ap.add_argument("--dirs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--width", type=int, default=8)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()

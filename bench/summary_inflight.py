"""Where a `jfs summary` walk's wall time goes on Redis, without FUSE or the CLI (issue 17; ADR 0098).

Usage:  .venv/bin/python bench/summary_inflight.py META-URL REDIS-PID [--rounds 4] [--widths 8,32,128]

Runs `jfs.app.tree_jobs.summary_tree` of the root in this process, once per ``--widths`` value of
`tree_jobs.PREFETCH` per round (alternating order per round), and prints per run: wall seconds, this
process's CPU (user + system, /proc/self: the walk is one thread, so wall − CPU is the loop waiting on
Redis), redis-server's CPU (/proc of REDIS-PID), the pages read (`totals_page` calls), the Redis round trips
(commands sent), the mean and peak pages in flight, and the totals (which must not change with the width).
Reads only; the volume is not changed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

from jfs.adapters.kv.redis import RedisKV
from jfs.app import tree_jobs
from jfs.app.meta import dir_totals
from jfs.compose import open_meta_and_store
from jfs.domain.attrs import ROOT_INODE

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int | str) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Probe:
    """Counts pages and commands and samples the pages in flight (time-weighted)."""

    def __init__(self) -> None:
        self.pages = self.trips = self.now = self.peak = 0
        self.area = 0.0
        self.since = time.perf_counter()

    def _move(self, d: int) -> None:
        t = time.perf_counter()
        self.area += self.now * (t - self.since)
        self.since = t
        self.now += d
        self.peak = max(self.peak, self.now)


PROBE = [Probe()]
"""The probe of the current run (the wrappers below are installed once)."""


def instrument() -> None:
    page = dir_totals.totals_page

    async def counted_page(*a: Any, **k: Any) -> Any:
        probe = PROBE[0]
        probe.pages += 1
        probe._move(1)
        try:
            return await page(*a, **k)
        finally:
            probe._move(-1)

    tree_jobs.totals_page = counted_page  # type: ignore[assignment]
    read, packed = RedisKV._read, RedisKV._read_packed

    async def counted_read(self: RedisKV, *a: Any) -> Any:
        PROBE[0].trips += 1
        return await read(self, *a)

    async def counted_packed(self: RedisKV, c: bytes) -> Any:
        PROBE[0].trips += 1
        return await packed(self, c)

    RedisKV._read = counted_read  # type: ignore[method-assign]
    RedisKV._read_packed = counted_packed  # type: ignore[method-assign]


async def run(args: argparse.Namespace) -> None:
    widths = [int(w) for w in args.widths.split(",")]
    rows: dict[int, list[tuple[float, ...]]] = {}
    instrument()
    async with open_meta_and_store(args.url) as (meta, _store):
        for r in range(args.rounds):
            for w in widths if r % 2 == 0 else widths[::-1]:
                tree_jobs.PREFETCH = w
                probe = PROBE[0] = Probe()
                c0, r0, t0 = proc_cpu("self"), proc_cpu(args.redis_pid), time.perf_counter()
                doc = await tree_jobs.summary_tree(meta, ROOT_INODE, "/")
                wall = time.perf_counter() - t0
                cpu, rcpu = proc_cpu("self") - c0, proc_cpu(args.redis_pid) - r0
                mean = probe.area / wall
                rows.setdefault(w, []).append((wall, cpu, rcpu, probe.pages, probe.trips, mean, probe.peak))
                print(f"round {r} width {w:4}: {wall:5.2f} s  client CPU {cpu:5.2f}  redis CPU {rcpu:5.2f}  "
                      f"pages {probe.pages}  trips {probe.trips}  in flight mean {mean:5.1f} peak {probe.peak}  "
                      f"files {doc['files']} dirs {doc['dirs']} length {doc['length']}", flush=True)
    print("\nwidth | wall s | client CPU s | redis CPU s | pages | trips | in flight mean | peak  (medians)")
    for w, runs in rows.items():
        med = [statistics.median(x[i] for x in runs) for i in range(7)]
        print(f"| {w} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.2f} | {med[3]:.0f} | {med[4]:.0f} | {med[5]:.1f} | "
              f"{med[6]:.0f} |  (wall per run: {', '.join(f'{x[0]:.2f}' for x in runs)})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("redis_pid", type=int)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--widths", default="8,32,128")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()

"""`PageReadingKV.read_pages` on Redis in process, base vs new: client CPU and Redis CPU per pair (ADR 0082).

Usage:  .venv/bin/python bench/redis_pages_ab.py --url redis://127.0.0.1:PORT/1 --base /tmp/X/base
        [--rounds 3] [--page 4096] [--begin A --end B]

Reads ``[--begin, --end)`` of a loaded volume (e.g. one `bench/fsck_gc_ab.py` or ``jfs load`` filled) page by
page, as fsck's scan and gc's chunk scan do, in a child process per tree (``--base``: a directory holding
another checkout's ``jfs`` package, from ``git archive``; new: this checkout), alternating the order each
round. Per run: the child's own CPU (process time around the scan) and redis-server's (``INFO cpu``), per
pair. Prints one line per run and the medians with the spread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


async def _child(url: str, begin: bytes, end: bytes, page: int) -> dict[str, float]:
    from jfs.adapters.kv.registry import open_kv

    kv = await open_kv(url)

    async def redis_cpu() -> float:
        info = (await kv._client.execute(b"INFO", b"cpu")).decode()  # type: ignore[attr-defined]
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        return float(fields["used_cpu_sys"]) + float(fields["used_cpu_user"])

    r0, t0, n = await redis_cpu(), time.process_time(), 0
    async for got in kv.read_pages(begin, end, page):  # type: ignore[attr-defined]
        n += len(got)
    cpu = time.process_time() - t0
    rcpu = await redis_cpu() - r0
    return {"pairs": n, "client_us": cpu * 1e6 / max(n, 1), "redis_us": rcpu * 1e6 / max(n, 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--base", default="")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--page", type=int, default=4096)
    ap.add_argument("--begin", default="A")
    ap.add_argument("--end", default="B")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        got = asyncio.run(_child(args.url, args.begin.encode(), args.end.encode(), args.page))
        print(json.dumps(got))
        return 0
    if not args.base:
        ap.error("--base is required")
    trees = {"base": args.base, "new": str(HERE)}
    rows: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
    for r in range(args.rounds):
        for name in (["base", "new"] if r % 2 == 0 else ["new", "base"]):
            env = {**os.environ, "PYTHONPATH": trees[name]}
            out = subprocess.run([sys.executable, __file__, "--child", "--url", args.url, "--page", str(args.page),
                                  "--begin", args.begin, "--end", args.end],
                                 env=env, cwd="/", check=True, capture_output=True, text=True).stdout
            got = json.loads(out.strip().splitlines()[-1])
            rows[name].append(got)
            print(f"round {r} {name:4}: {got['pairs']:.0f} pairs  client {got['client_us']:.3f} µs/pair  "
                  f"redis {got['redis_us']:.3f} µs/pair", flush=True)
    for name, runs in rows.items():
        for col in ("client_us", "redis_us"):
            vals = sorted(x[col] for x in runs)
            print(f"{name} {col}: median {statistics.median(vals):.3f} ({vals[0]:.3f}–{vals[-1]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

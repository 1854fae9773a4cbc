"""Slice commits on Redis with and without the guessed records (`CommitTails`, ADR 0002 addendum).

    .venv/bin/python bench/slice_commit_bench.py [--pairs 10] [--commits 300]

A throwaway redis-server and one `Meta`; each sample is `--commits` 4 KiB `write_slice` commits to one
chunk (cleared between samples, as compaction would keep it short), alternating "guess" (the default) and
"read-first" (`CommitTails.take` answering None). Prints µs per commit, median and every sample.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jfs.adapters.kv.registry import open_kv  # noqa: E402
from jfs.app.meta import Meta  # noqa: E402
from jfs.app.meta.engine import format_meta  # noqa: E402
from jfs.domain import keys  # noqa: E402
from jfs.domain.attrs import ROOT_INODE  # noqa: E402
from jfs.domain.settings import Settings  # noqa: E402
from jfs.ports.kv import Tx  # noqa: E402
from jfs.testing.servers import start_redis_server  # noqa: E402


async def run(url: str, pairs: int, commits: int) -> None:
    kv = await open_kv(url)
    await format_meta(kv, Settings(name="slice-commit-bench", trash_days=0))
    m = await Meta.load(kv)
    await m.start_session(background=False)
    ino, _ = await m.create(ROOT_INODE, b"f", 0o644)
    take = m.tails.take
    samples: dict[str, list[float]] = {"guess": [], "read-first": []}
    pos = 0
    for r in range(pairs):
        for mode in ("guess", "read-first") if r % 2 == 0 else ("read-first", "guess"):
            m.tails.take = take if mode == "guess" else (lambda ino, indx: None)  # type: ignore[method-assign]
            start = time.perf_counter()
            for _ in range(commits):
                await m.write_slice(ino, 0, (pos % 16000) * 4096, await m.next_slice_id(), 4096, 0, 4096)
                pos += 1
            samples[mode].append((time.perf_counter() - start) / commits * 1e6)

            async def clear(tx: Tx) -> None:
                tx.delete(keys.chunk(ino, 0))

            await m.kv.txn(clear)
            m.tails.clear()
    for mode, v in samples.items():
        print(f"{mode}: median {statistics.median(v):.0f} µs/commit; " + " ".join(f"{x:.0f}" for x in v))
    await m.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--commits", type=int, default=300)
    args = ap.parse_args()
    server = start_redis_server()
    try:
        asyncio.run(run(server.url + "/3", args.pairs, args.commits))
    finally:
        server.stop()


if __name__ == "__main__":
    main()

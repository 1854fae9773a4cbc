"""CPU cost of user/group quota charging (ADR 0026): create + truncate to 5000 bytes + close, as uid 1000, on
the memory engine, without and with a user quota, in alternating pairs; CPU seconds of this process (the
machine is shared, wall time is too noisy). Usage: ``python bench/owner_quota_cost.py [files] [pairs]``."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from jfs.adapters.kv.registry import open_kv
from jfs.app.meta import Meta, owner_quota
from jfs.app.meta.context import Ctx
from jfs.app.meta.engine import format_meta
from jfs.app.ops import quota_cmd
from jfs.domain.attrs import ROOT_INODE
from jfs.domain.settings import Settings

CTX = Ctx(uid=1000, gid=100, check=False)


async def one(files: int, with_quota: bool) -> float:
    """CPU seconds for `files` create/truncate/close rounds on a fresh memory volume."""
    kv = await open_kv("memory://")
    await format_meta(kv, Settings(name="bench", trash_days=0))
    m = await Meta.load(kv)
    if with_quota:
        await quota_cmd.set_owner_quota(m, owner_quota.USER, 1000, inodes=10**9, settle=0)
    start = time.process_time()
    for i in range(files):
        ino, _ = await m.create(ROOT_INODE, b"f%d" % i, 0o644, CTX)
        await m.truncate(ino, 5000, CTX)
        await m.close_file(ino)
    spent = time.process_time() - start
    await m.close()
    await kv.close()
    return spent


async def main(files: int, pairs: int) -> None:
    ratios = []
    for pair in range(pairs):
        order = (False, True) if pair % 2 == 0 else (True, False)
        spent = {q: await one(files, q) for q in order}
        ratios.append(spent[False] / spent[True])
        print(f"pair {pair}: without {files / spent[False]:.0f} files/CPU-s, with a user quota "
              f"{files / spent[True]:.0f} files/CPU-s, with/without {ratios[-1]:.2f}")  # fmt: skip
    print(f"median with/without: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [1500, 8][len(args) :])))

"""CPU of the SDK's layers above the VFS for a small file (ADR 0051), in one thread (no loop-thread hops).

Usage:  .venv/bin/python bench/sdk_layers_cpu.py [FILES]

Formats a fresh SQLite + local-directory volume (``--trash-days 0``), then creates FILES (default 2,000)
4 KiB files through `AsyncClient.open(p, "wb")` + `write_close` (what `jfs.Client`'s buffered files do on
its loop thread) and as many through `VFS.create` + `write` + `close` directly, and prints the thread CPU
time per file of each: the difference of the totals is what the SDK's own layers cost. On a shared machine
compare runs A/B, alternating.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jfs.sdk.aio import AsyncClient

clock = time.thread_time


def fresh_volume(work: Path) -> str:
    url = f"sqlite3://{work}/jfs.db"
    subprocess.run([str(Path(sys.executable).parent / "jfs"), "format", url, "layers", "--bucket",
                    str(work / "bucket"), "--trash-days", "0"], check=True, capture_output=True)
    return url


async def main(n: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="jfs-layers-"))
    try:
        url = fresh_volume(work)
        data = b"s" * 4096
        async with AsyncClient(url, cache_dir=str(work / "cache")) as c:
            await c.makedirs("/d", exist_ok=True)
            await c.makedirs("/e", exist_ok=True)
            for i in range(50):
                f = await c.open(f"/d/w{i}", "wb")
                await f.write_close([data])
            sdk = [0.0, 0.0]
            for i in range(n):
                t0 = clock()
                f = await c.open(f"/d/f{i}", "wb")
                t1 = clock()
                await f.write_close([data])
                t2 = clock()
                sdk[0] += t1 - t0
                sdk[1] += t2 - t1
            vfs, ctx = c.client.vfs, c.ctx
            parent = (await c.client.paths.resolve(ctx, "/e"))[0]
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            direct = [0.0, 0.0]
            for i in range(n):
                t0 = clock()
                ino, _, of = await vfs.create(ctx, parent, f"f{i}".encode(), 0o666, flags)
                t1 = clock()
                await vfs.write(ctx, ino, of.fh, 0, data, owned=True)
                await vfs.close(ctx, ino, of.fh, c._lock_owner, of.fh)
                t2 = clock()
                direct[0] += t1 - t0
                direct[1] += t2 - t1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    k = 1e6 / n
    print(f"sdk: open {sdk[0] * k:.0f} write+close {sdk[1] * k:.0f} total {sum(sdk) * k:.0f} us | "
          f"vfs: create {direct[0] * k:.0f} write+close {direct[1] * k:.0f} total {sum(direct) * k:.0f} us")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))

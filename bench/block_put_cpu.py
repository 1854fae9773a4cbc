"""CPU seconds per GiB of the block write path, in process: `BlockStore.put` of 4 MiB blocks through the
mount's store layers (`TimedStore` around `EncryptedStore` around a `file` bucket on /dev/shm), the block
joined from 1 MiB pieces first as the writer does. Steadier than MiB/s through a mount on a shared machine.

Usage:  .venv/bin/python bench/block_put_cpu.py [--blocks 64] [--rounds 5] [--compress lz4] [--plain]

Prints the best and median CPU s/GiB (process CPU: every thread) and wall MiB/s of the rounds. To compare
two trees, run it from each tree's directory with ``python -m`` semantics (``cd TREE && python
/path/to/bench/block_put_cpu.py``) — it imports `jfs` from the current directory first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.getcwd())

from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from jfs.adapters.objects.file import FileStore  # noqa: E402
from jfs.app.data.blocks import BlockStore  # noqa: E402
from jfs.app.data.config import DataConfig  # noqa: E402
from jfs.app.data.crypto import EncryptedStore, Sealer  # noqa: E402
from jfs.app.data.pages import PageList  # noqa: E402
from jfs.app.metrics import TimedStore  # noqa: E402

MiB = 1 << 20
SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None


async def run(args: argparse.Namespace) -> None:
    config = DataConfig(volume="vol", uuid="u", block_size=4 * MiB, compression=args.compress)
    sealer = None if args.plain else Sealer(rsa.generate_private_key(65537, 2048))
    root = tempfile.mkdtemp(prefix="block-put-cpu-", dir=SHM)
    files = FileStore(root)
    store = files if sealer is None else EncryptedStore(files, sealer)
    blocks = BlockStore(TimedStore(store), config)
    pieces = [memoryview(bytearray(os.urandom(MiB))).toreadonly() for _ in range(8)]
    uploads = asyncio.Semaphore(20)
    sid = 1

    async def one(i: int) -> None:
        async with uploads:
            pl = PageList()
            for j in range(4):
                pl.write(j * MiB, pieces[(i + j) % 8])
            data = await blocks.cpu(pl.join)
            await blocks.put(sid + i, 0, data)

    cpu, rate = [], []
    try:
        for _ in range(args.rounds):
            c, t = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(args.blocks)))
            gib = args.blocks * 4 / 1024
            cpu.append((time.process_time() - c) / gib)
            rate.append(args.blocks * 4 / (time.perf_counter() - t))
            sid += args.blocks
            shutil.rmtree(os.path.join(root, "vol"), ignore_errors=True)
    finally:
        await blocks.close()
        await store.close()
        shutil.rmtree(root, ignore_errors=True)
    kind = "plain" if args.plain else "encrypted"
    print(f"{kind} {args.compress}: CPU s/GiB best {min(cpu):.2f} median {statistics.median(cpu):.2f}; "
          f"MiB/s median {statistics.median(rate):.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--compress", default="lz4", choices=["none", "lz4", "zstd"])
    ap.add_argument("--plain", action="store_true", help="no encryption")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()

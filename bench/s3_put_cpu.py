"""Process CPU per S3 PUT of one block through `S3Store` against a throwaway SeaweedFS: signed payload
(SHA-256 of the body, ``JFS_S3_SIGNED_PAYLOAD=true``) vs ``UNSIGNED-PAYLOAD`` (the default, ADR 0049),
alternating rounds.

Usage:  .venv/bin/python bench/s3_put_cpu.py [--rounds 6] [--puts 32] [--kib 4096]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jfs.adapters.objects.s3 import S3Store  # noqa: E402
from jfs.testing.seaweed import seaweed_s3  # noqa: E402


async def round_cpu(store: S3Store, data: bytes, puts: int, tag: str) -> float:
    t0 = time.process_time()
    for i in range(puts):
        await store.put(f"cpu/{tag}/{i}", data)
    return (time.process_time() - t0) / puts * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--puts", type=int, default=32)
    ap.add_argument("--kib", type=int, default=4096)
    args = ap.parse_args()
    data = os.urandom(args.kib << 10)
    with seaweed_s3(bucket="put-cpu") as s3:
        stores = {}
        for mode, env in (("signed", "true"), ("unsigned", "")):
            os.environ["JFS_S3_SIGNED_PAYLOAD"] = env
            stores[mode] = S3Store(s3.url, access_key=s3.access_key, secret_key=s3.secret_key)
        results: dict[str, list[float]] = {m: [] for m in stores}
        for r in range(args.rounds):
            for mode, store in stores.items():
                results[mode].append(await round_cpu(store, data, args.puts, f"{mode}{r}"))
        for mode, xs in results.items():
            print(f"{mode:>8}: {statistics.median(xs):6.0f} µs CPU per {args.kib} KiB PUT (median of "
                  f"{args.rounds}; {[round(x) for x in xs]})")
        for store in stores.values():
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())

"""Process CPU per S3 PUT of one block through `S3Store` against a throwaway SeaweedFS: signed payload
(SHA-256 of the body, ``JFS_S3_SIGNED_PAYLOAD=true``) vs ``UNSIGNED-PAYLOAD`` (the default, ADR 0049),
alternating rounds.

Usage:  .venv/bin/python bench/s3_put_cpu.py [--rounds 6] [--puts 32] [--kib 4096]
        .venv/bin/python bench/s3_put_cpu.py --deletes   (CPU of one 1,000-key DeleteObjects, ours vs boto3)
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


if __name__ == "__main__" and "--deletes" not in sys.argv:
    asyncio.run(main())


async def delete_cpu(rounds: int = 3, keys_per_request: int = 1000) -> None:
    """Process CPU of one DeleteObjects request of `keys_per_request` keys: `ObjectRequests.delete_many`
    vs boto3's ``delete_objects`` (the objects are put again before each round)."""
    with seaweed_s3(bucket="del-cpu") as s3:
        store = S3Store(s3.url, access_key=s3.access_key, secret_key=s3.secret_key)
        fast = store._requests
        results: dict[str, list[float]] = {"fast": [], "boto3": []}
        for r in range(rounds):
            for mode in results:
                keys = [f"del/{mode}{r}/chunks/0/1/{i}_0_4096" for i in range(keys_per_request)]
                await asyncio.gather(*(store.put(k, b"x") for k in keys))
                store._requests = fast if mode == "fast" else None
                t0 = time.process_time()
                errors = store._delete_objects(keys)
                results[mode].append((time.process_time() - t0) * 1e3)
                store._requests = fast
                assert not errors
        for mode, xs in results.items():
            print(f"DeleteObjects of {keys_per_request} keys, {mode:>5}: {statistics.median(xs):6.1f} ms CPU "
                  f"(median of {rounds}; {[round(x, 1) for x in xs]})")
        await store.close()


if __name__ == "__main__" and "--deletes" in sys.argv:
    asyncio.run(delete_cpu())

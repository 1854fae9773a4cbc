"""System CPU of the ``file`` store's block writes with and without spare files (ADR 0045).

Each round writes `--blocks` 4 MiB objects through `FileStore.put` (its thread pool, as the data path
does), deletes them (a replaced object's blocks) and pauses `--pause` seconds; the system CPU per GiB
written is printed for every round, stores without and with spares alternating. On a VM whose balloon
reports freed memory to the host, a write into fresh page-cache pages after a pause costs an order of
magnitude more system time than a write over the pages of files kept from the previous round.

Usage:  .venv/bin/python bench/gateway_spares.py [--blocks 64] [--rounds 4] [--pause 5] [--runs 2]
        [--dir /tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import tempfile

from jfs.adapters.objects.file import FileStore

BLOCK = os.urandom(4 << 20)


def _sys() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


async def _run(root: str, spares: bool, blocks: int, rounds: int, pause: float) -> list[float]:
    os.makedirs(root)
    store = FileStore(root, spares=spares)
    out = []
    try:
        for r in range(rounds):
            s0 = _sys()
            await asyncio.gather(*[store.put(f"v/chunks/{r}/{i}", BLOCK) for i in range(blocks)])
            out.append((_sys() - s0) / (blocks * 4 / 1024))
            await asyncio.gather(*[store.delete(f"v/chunks/{r}/{i}") for i in range(blocks)])
            await asyncio.sleep(pause)
    finally:
        await store.close()
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blocks", type=int, default=64)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--pause", type=float, default=5.0)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--dir", default="/tmp")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="spares-", dir=args.dir)
    try:
        for run in range(args.runs):
            for spares in (False, True) if run % 2 == 0 else (True, False):
                figures = asyncio.run(_run(os.path.join(work, f"{run}-{spares}"), spares, args.blocks, args.rounds,
                                           args.pause))
                print(f"run {run} spares={'on ' if spares else 'off'}: system CPU s/GiB written per round: "
                      + " ".join(f"{x:.2f}" for x in figures), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

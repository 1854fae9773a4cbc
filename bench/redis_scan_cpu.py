"""Redis CPU per listed entry of a scan: the READ script's op 's' (a listing page's scan, after its directory
read) and, where the tree has it, the SCAN script (a transaction's first scan) (ADR 0060).

    cd /tmp && /path/to/.venv/bin/python /path/to/bench/redis_scan_cpu.py [--entries 100000] [--others 200000] \
        [--page 4096] [--calls 40] [--rounds 5] [--base-tree /tmp/base]

One redis-server on a free port; a database with `--entries` directory entries of one directory and
`--others` other keys in the index ``i``. Each round reads the directory's first `--page` entries with
keys and values `--calls` times through each script, alternating, and takes redis-server's CPU (``INFO
cpu`` used_cpu_user + used_cpu_sys deltas) per entry; for scale, the same for a plain MGET of `--page`
attribute-sized values (what a listing's second read costs). Median (min-max) over the rounds. With
`--base-tree DIR` another checkout's READ script (``DIR/jfs/adapters/kv/redis_lua.py``) is loaded too
and called with the same arguments, alternating with this tree's: the A/B in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jfs  # noqa: E402
from bench.comparison.backends import redis_server  # noqa: E402
from jfs.adapters.kv.redis import open_redis  # noqa: E402
from jfs.adapters.kv.redis_tx import RedisTx  # noqa: E402
from jfs.adapters.kv.resp import bulks  # noqa: E402

DIR = b"A\x00\x00\x00\x00\x00\x00\x00\x07D"


def _cpu(info: bytes) -> float:
    fields = dict(line.split(":", 1) for line in info.decode().splitlines() if ":" in line)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


async def _run(url: str, args: argparse.Namespace) -> None:
    kv = await open_redis(f"{url}/1")
    try:
        await kv._call(b"FLUSHDB")
        total = args.entries + args.others
        for s in range(0, total, 5000):
            mset: list[bytes | int] = []
            index: list[bytes | int] = []
            for i in range(s, min(s + 5000, total)):
                if i < args.entries:
                    k, v = DIR + b"file-%08d" % i, b"\x01" + (1000 + i).to_bytes(8, "big")
                else:
                    k, v = b"A" + i.to_bytes(8, "big") + b"I", b"x" * 80
                mset += [b"k" + k, v]
                index += [0, k]
            await kv._call(b"MSET", *mset)
            await kv._call(b"ZADD", b"i", *index)
        end = DIR[:-1] + b"E"
        page = args.page
        attrs = [b"kA" + i.to_bytes(8, "big") + b"I" for i in range(args.entries, args.entries + page)]

        async def read() -> object:
            return await kv._script("read", 9, bulks((0, 0, b"s", 0, DIR, end, page, 0, 0)))

        async def scan() -> object:
            return await kv._script("scan", 4, bulks((DIR, end, page, 0)))

        async def mget() -> object:
            return await kv._call(b"MGET", *attrs)

        calls = {"READ op s": read, "MGET of attributes": mget}
        if args.base_tree:
            scope: dict[str, object] = {}
            exec((Path(args.base_tree) / "jfs/adapters/kv/redis_lua.py").read_text(), scope)  # noqa: S102
            base_sha = await kv._call(b"SCRIPT", b"LOAD", scope["READ"])

            async def base_read() -> object:
                return await kv._client.evalsha(base_sha, 9, bulks((0, 0, b"s", 0, DIR, end, page, 0, 0)))

            calls["READ op s (base tree)"] = base_read
        if "scan" in kv._sha:
            calls["SCAN"] = scan
            assert RedisTx._pairs(await read(), False) == RedisTx._pairs(await scan(), False), "the scripts disagree"
        res: dict[str, list[float]] = {k: [] for k in calls}
        for r in range(args.rounds):
            names = list(calls)
            names = names[r % len(names):] + names[: r % len(names)]
            for name in names:
                c0 = _cpu(await kv._call(b"INFO", b"cpu"))
                for _ in range(args.calls):
                    await calls[name]()
                c1 = _cpu(await kv._call(b"INFO", b"cpu"))
                res[name].append((c1 - c0) / (args.calls * page) * 1e6)
        print(f"jfs from {Path(jfs.__file__).parent}")
        print(f"redis-server CPU µs per entry ({page} entries per call, {args.calls} calls per round, "
              f"{args.rounds} rounds), median (min-max):")
        for name, v in res.items():
            print(f"  {name}: {statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})")
    finally:
        await kv.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--others", type=int, default=200_000)
    ap.add_argument("--page", type=int, default=4096)
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--base-tree", default="", help="another checkout whose READ script to compare with")
    args = ap.parse_args()
    with redis_server() as url:
        asyncio.run(_run(url, args))


if __name__ == "__main__":
    main()

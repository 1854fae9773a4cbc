"""Redis's own time for the mount's listing reads of one 100,000-entry directory, in a 1M-file volume and
alone (ADR 0091): the reads `redis_batch.follow_range` sends per page of 4,096 (ZRANGEBYLEX of the index,
MGET of the dentries, MGET of the records they point at), the same directory `jfs load`ed into two
databases of one throwaway redis-server, rounds alternating; per listed entry, from INFO commandstats.

    .venv/bin/python bench/ls_redis_keyspace.py [--files 1000000] [--entries 100000] [--rounds 4] [--juicefs PATH]

With ``--juicefs``, the same dumps are also ``juicefs load``ed (databases 2 and 4) and read as JuiceFS 1.4.2's
mount lists a directory on Redis: HSCAN of the directory's hash ``d<ino>`` (COUNT 10000), MGET of the
``i<ino>`` records its entries name (type byte + big-endian inode).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_offline import write_dump  # noqa: E402

from jfs.domain import keys  # noqa: E402
from jfs.testing.servers import redis_server  # noqa: E402

PAGE = 4096


def _usec(c: object, name: str) -> int:
    return c.info("commandstats").get(f"cmdstat_{name}", {}).get("usec", 0)  # type: ignore[attr-defined]


def _juicefs_listing(c: object, big: int) -> tuple[float, float]:
    """(HSCAN, MGET) µs per entry inside Redis for JuiceFS's reads of directory `big`."""
    c.execute_command("CONFIG", "RESETSTAT")  # type: ignore[attr-defined]
    cursor, n = b"0", 0
    while True:
        cursor, flat = c.execute_command("HSCAN", f"d{big}", cursor, "COUNT", 10000)  # type: ignore[attr-defined]
        values = list(flat.values()) if isinstance(flat, dict) else flat[1::2]  # redis-py parses HSCAN to a dict
        if values:
            c.execute_command("MGET", *[f"i{int.from_bytes(v[1:9], 'big')}" for v in values])  # type: ignore[attr-defined]
            n += len(values)
        if cursor in (b"0", 0):
            break
    return _usec(c, "hscan") / n, _usec(c, "mget") / n


def main() -> None:
    import redis

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--juicefs", default="")
    args = ap.parse_args()
    jfs = str(Path(sys.executable).parent / "jfs")
    ndirs = -(-args.files // 1000)
    with tempfile.TemporaryDirectory(prefix="ls-redis-keyspace-") as tmp, redis_server() as server:
        work = Path(tmp)
        vols = {"volume": (1, 2 + ndirs + args.files, args.files), "alone": (3, 2, 0)}
        for name, (db, _, files) in vols.items():
            write_dump(work / f"{name}.json", files, 1000, str(work / "bucket"), big=args.entries)
            subprocess.run([jfs, "load", f"{server.url}/{db}", str(work / f"{name}.json")], check=True,
                           capture_output=True)
            if args.juicefs:
                subprocess.run([args.juicefs, "load", f"{server.url}/{db + 1}", str(work / f"{name}.json")],
                               check=True, capture_output=True)
            (work / f"{name}.json").unlink()
        host, port = server.url.split("//")[1].split(":")
        got: dict[str, list[tuple[float, float, float]]] = {k: [] for k in vols}
        order = list(vols.items())
        juice: dict[str, list[tuple[float, float]]] = {k: [] for k in vols}
        for _ in range(args.rounds):
            for name, (db, big, _) in order:
                c = redis.Redis(host=host, port=int(port), db=db)
                c.execute_command("CONFIG", "RESETSTAT")
                prefix = keys.dentry_prefix(big)
                begin, n, dentries = b"[" + prefix, 0, 0
                t0 = time.perf_counter()
                while True:
                    ks = c.execute_command("ZRANGEBYLEX", "i", begin, b"(" + prefix + b"\xff", "LIMIT", 0, PAGE)
                    if not ks:
                        break
                    u0 = _usec(c, "mget")
                    c.execute_command("MGET", *[b"k" + k for k in ks])
                    dentries += _usec(c, "mget") - u0
                    records = c.execute_command("MGET", *[b"k" + keys.attr(big + 1 + n + i) for i in range(len(ks))])
                    assert records[0] is not None and records[-1] is not None, "records not where the dump put them"
                    n += len(ks)
                    begin = b"(" + ks[-1]
                    if len(ks) < PAGE:
                        break
                zr, mget = _usec(c, "zrangebylex"), _usec(c, "mget")
                got[name].append((zr / n, dentries / n, (mget - dentries) / n))
                print(f"{name}: {n} entries {time.perf_counter() - t0:.3f} s; µs/entry in Redis: zrangebylex "
                      f"{zr / n:.3f}, mget dentries {dentries / n:.3f}, mget records {(mget - dentries) / n:.3f}",
                      flush=True)
                if args.juicefs:
                    juice[name].append(_juicefs_listing(redis.Redis(host=host, port=int(port), db=db + 1), big))
                    print(f"{name}, JuiceFS: µs/entry in Redis: hscan {juice[name][-1][0]:.3f}, mget records "
                          f"{juice[name][-1][1]:.3f}", flush=True)
            order.reverse()
        print("\nmedian (min-max) µs per entry | ZRANGEBYLEX | MGET dentries | MGET records")
        for name, xs in got.items():
            cells = [f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})" for v in zip(*xs, strict=True)]
            print(f"| {name} | " + " | ".join(cells) + " |")
        if args.juicefs:
            print("\nJuiceFS: median (min-max) µs per entry | HSCAN | MGET records")
            for name, ys in juice.items():
                cells = [f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})" for v in zip(*ys, strict=True)]
                print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

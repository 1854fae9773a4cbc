"""The SQLite engine paths that issue 17's 1M-file SQLite run found growing (ADR 0057), measured without FUSE:
CPU of this process per lookup (cold, after ``drop_caches``, or warm) and per rename, on a copy of a volume.

Usage:  .venv/bin/python bench/scale_sqlite_paths.py make DIR [--dirs 1000]     # DIR/meta.db: 1,000 files a dir
        .venv/bin/python bench/scale_sqlite_paths.py cold|warm|rename DIR/meta.db [--ops 5000]

``make`` writes a JuiceFS-format dump of ``--dirs`` × 1,000 empty files (inodes interleaved four directories at
a time, as four processes creating at once) and loads it with ``jfs load`` (about 30 s of CPU at 1M files).
``rename`` does what the kernel asks of a mount for ``rename(f, f.r)``: lookup, negative lookup, rename,
getattr of the directory. Each measurement runs on a fresh copy of the database (removed afterwards). Run it
with each tree's interpreter for an A/B, alternating; needs root for ``drop_caches``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import subprocess
import sys
from pathlib import Path

T = 1796553309


def _attr(ino: int, typ: str, mode: int, nlink: int) -> str:
    return json.dumps({"inode": ino, "type": typ, "mode": mode, "uid": 0, "gid": 0, "atime": T, "mtime": T,
                       "ctime": T, "atimensec": 0, "mtimensec": 0, "ctimensec": 0, "nlink": nlink, "length": 0},
                      separators=(",", ":"))


def inode_numbers(n_dirs: int, per: int = 1000) -> dict[tuple[int, int | None], int]:
    """(dir, file or None for the directory) → inode, four directories at a time, files interleaved."""
    inos: dict[tuple[int, int | None], int] = {}
    nxt = 3
    for g in range(0, n_dirs, 4):
        group = list(range(g, min(g + 4, n_dirs)))
        for d in group:
            inos[(d, None)] = nxt
            nxt += 1
        for i in range(per):
            for d in group:
                inos[(d, i)] = nxt
                nxt += 1
    return inos


def make(root: Path, n_dirs: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    inos = inode_numbers(n_dirs)
    dump = root / "volume.json"
    setting = {"Name": "scale-paths", "UUID": "00000000-0000-4000-8000-000000000057", "Storage": "file",
               "Bucket": f"{root}/bucket/", "BlockSize": 4096, "Compression": "none", "TrashDays": 0,
               "MetaVersion": 1}
    counters = {"usedSpace": 0, "usedInodes": 0, "nextInodes": max(inos.values()) + 1025, "nextChunk": 1,
                "nextSession": 1, "nextTrash": 0}
    with dump.open("w") as out:
        out.write(json.dumps({"Setting": setting, "Counters": counters, "Sustained": [], "DelFiles": []})[:-1])
        out.write(f',"FSTree":{{"attr":{_attr(1, "directory", 0o777, 3)},"entries":{{"tree":{{"attr":'
                  f'{_attr(2, "directory", 0o755, n_dirs + 2)},"entries":{{\n')
        for d in range(n_dirs):
            files = ",".join(f'"f{i:05d}":{{"attr":{_attr(inos[(d, i)], "regular", 0o644, 1)}}}' for i in range(1000))
            sep = "," if d < n_dirs - 1 else ""
            out.write(f'"d{d:05d}":{{"attr":{_attr(inos[(d, None)], "directory", 0o755, 2)},"entries":{{{files}}}}}{sep}\n')
        out.write("}}}}}\n")
    jfs = str(Path(sys.executable).with_name("jfs"))
    subprocess.run([jfs, "load", f"sqlite3://{root}/meta.db", str(dump)], check=True)
    dump.unlink()


def _drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def measure(what: str, db: str, ops: int) -> float:
    from jfs.adapters.kv.registry import open_kv
    from jfs.app.meta import Meta
    from jfs.domain.errors import FSError

    kv = await open_kv(f"sqlite3://{db}")
    m = await Meta.load(kv)
    try:
        tree = (await m.lookup(1, b"tree"))[0]
        dirs = []
        for d in range(0, 1000, 50):  # 20 directories spread over the tree (fewer in a small one)
            try:
                dirs.append((await m.lookup(tree, b"d%05d" % d))[0])
            except FSError:
                break
        rng = random.Random(3)
        picks = [(dirs[rng.randrange(len(dirs))], b"f%05d" % rng.randrange(1000)) for _ in range(ops)]
        if what == "warm":
            for d, f in picks:
                await m.lookup(d, f)
        elif what == "cold":
            _drop_caches()
        start = _cpu()
        if what in ("cold", "warm"):
            for d, f in picks:
                await m.lookup(d, f)
        else:
            for i in range(ops):
                d, f = dirs[i % len(dirs)], b"f%05d" % (i // len(dirs))
                await m.lookup(d, f)
                try:
                    await m.lookup(d, f + b".r")
                except FSError:
                    pass
                await m.rename(d, f, d, f + b".r")
                await m.getattr(d)
        return (_cpu() - start) / ops * 1e6
    finally:
        await kv.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["make", "cold", "warm", "rename"])
    ap.add_argument("path")
    ap.add_argument("--dirs", type=int, default=1000)
    ap.add_argument("--ops", type=int, default=5000)
    args = ap.parse_args()
    if args.what == "make":
        make(Path(args.path), args.dirs)
        return
    db = f"{args.path}.{os.getpid()}.copy"
    shutil.copy(args.path, db)
    try:
        us = asyncio.run(measure(args.what, db, args.ops))
    finally:
        for suffix in ("", "-wal", "-shm"):
            with __import__("contextlib").suppress(FileNotFoundError):
                os.remove(db + suffix)
    print(f"{sys.prefix}: {args.what} {us:.1f} µs of CPU per op ({args.ops} ops)")


if __name__ == "__main__":
    main()

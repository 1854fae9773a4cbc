"""Data-path throughput through `DataPath` (no FUSE): big-file sequential write/read, small-file rates.

Usage:  .venv/bin/python bench/data_bench.py [--setups file-none,file-lz4,s3-none] [--size-mib 1024]
        [--io-kib 1024] [--small-files 1000] [--small-kib 128] [--block-mib 4] [--profile OUT.html]

Each setup is a fresh volume: metadata in SQLite (a temp file), data in a ``file`` bucket under a temp
directory (objects not fsynced, as in production — ADR 0023 — unless ``--fsync``), in a throwaway SeaweedFS S3 server
(jfs.testing.seaweed), or in memory (``mem-*``: the data path's own CPU cost, no storage I/O). No disk cache (blocks are read from the store) unless ``--cache``.
A ``-crc`` suffix (``file-none-crc``) formats the volume with block checksums (ADR 0008).

* big file: one file written sequentially with `--io-kib` writes, flushed and closed; then read back
  sequentially through a new handle with `--io-kib` reads (memory cache cold: written blocks are not kept).
* small files: `--small-files` files of `--small-kib` each, created + written + closed one after another,
  then each opened + read + closed.

Prints a markdown table. For reference, JuiceFS 1.4.2 ``juicefs bench`` on SQLite + local directory on the
development machine: ~590 MiB/s big-file write, ~1150 MiB/s read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.file import FileStore
from jfs.adapters.objects.registry import open_store
from jfs.ports.objects import ObjectStore
from jfs.testing.data_harness import DataVolume

MiB = 1 << 20


@dataclass
class Result:
    setup: str
    write_mibs: float
    read_mibs: float
    small_write_fps: float
    small_read_fps: float


@contextlib.contextmanager
def _seaweed() -> Iterator[tuple[str, str, str]]:
    from jfs.testing.seaweed import seaweed_s3

    with seaweed_s3(bucket="jfs-data-bench") as server:
        yield server.url, server.access_key, server.secret_key


@contextlib.asynccontextmanager
async def volume(
    setup: str, tmp: str, args: argparse.Namespace, s3: tuple[str, str, str] | None
) -> AsyncIterator[DataVolume]:
    storage, compression, *flags = setup.split("-")
    os.makedirs(tmp, exist_ok=True)
    bucket = os.path.join(tmp, f"bucket-{setup}")

    async def opener() -> ObjectStore:
        if storage == "file":
            store = FileStore(bucket + "/", fsync=args.fsync)
            await store.create_bucket()
            return store
        if storage == "mem":
            return await open_store("mem", f"data-bench-{os.path.basename(tmp)}-{setup}")
        assert s3 is not None
        return await open_store("s3", s3[0], access_key=s3[1], secret_key=s3[2])

    kv = await open_kv(f"sqlite3://{tmp}/meta-{setup}.db")
    overrides: dict[str, object] = {}
    if args.cache:
        overrides["cache_dir"] = os.path.join(tmp, f"cache-{setup}")
    vol = await DataVolume.create(
        kv,
        opener,
        name=f"bench-{setup}",
        block_kib=args.block_mib * 1024,
        compression=compression,
        checksum="crc" in flags,
        **overrides,
    )
    try:
        yield vol
    finally:
        await vol.close()
        shutil.rmtree(bucket, ignore_errors=True)


async def big_file(vol: DataVolume, size: int, io: int) -> tuple[float, float]:
    bufs = [os.urandom(io) for _ in range(16)]
    ino = await vol.new_file(b"big")
    dp = vol.dp
    h = await dp.open(ino, os.O_WRONLY)
    t0 = time.perf_counter()
    for i, off in enumerate(range(0, size, io)):
        await dp.write(h, off, bufs[i % 16])
    await dp.release(h)
    t_write = time.perf_counter() - t0

    dp.mem.clear()
    h = await dp.open(ino)
    t0 = time.perf_counter()
    off = 0
    while True:
        data = await dp.read(h, off, io)
        if not data:
            break
        off += len(data)
    t_read = time.perf_counter() - t0
    await dp.release(h)
    assert off == size, (off, size)
    return size / MiB / t_write, size / MiB / t_read


async def small_files(vol: DataVolume, n: int, size: int) -> tuple[float, float]:
    payload = os.urandom(size)
    dp = vol.dp
    inos = []
    t0 = time.perf_counter()
    for i in range(n):
        ino = await vol.new_file(f"small-{i}".encode())
        h = await dp.open(ino, os.O_WRONLY)
        await dp.write(h, 0, payload)
        await dp.release(h)
        inos.append(ino)
    t_write = time.perf_counter() - t0
    dp.mem.clear()
    t0 = time.perf_counter()
    for ino in inos:
        h = await dp.open(ino)
        data = await dp.read(h, 0, size)
        await dp.release(h)
        assert len(data) == size
    t_read = time.perf_counter() - t0
    return n / t_write, n / t_read


async def run(args: argparse.Namespace) -> list[Result]:
    results = []
    setups = args.setups.split(",")
    with contextlib.ExitStack() as stack:
        s3 = stack.enter_context(_seaweed()) if any(s.startswith("s3") for s in setups) else None
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="jfs-data-bench-", dir=args.tmp))
        for run_no, setup in enumerate(setups):
            os.sync()  # start each setup without the previous one's dirty pages still being written back
            async with volume(setup, f"{tmp}/{run_no}", args, s3) as vol:
                w, r = await big_file(vol, args.size_mib * MiB, args.io_kib << 10)
                sw, sr = await small_files(vol, args.small_files, args.small_kib << 10)
            results.append(Result(setup, w, r, sw, sr))
            print(
                f"{setup}: write {w:.0f} MiB/s, read {r:.0f} MiB/s, small {sw:.0f}/{sr:.0f} files/s",
                flush=True,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", default="file-none,file-lz4,s3-none")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--io-kib", type=int, default=1024)
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--small-kib", type=int, default=128)
    parser.add_argument("--block-mib", type=int, default=4)
    parser.add_argument("--cache", action="store_true", help="enable the disk cache (in the temp dir)")
    parser.add_argument(
        "--fsync", action="store_true", help="file storage fsyncs every object (JFS_FILE_FSYNC=1 in a mount)"
    )
    parser.add_argument("--tmp", default=None, help="directory for the temp files (default: $TMPDIR)")
    parser.add_argument("--profile", default=None, help="write a pyinstrument HTML profile here")
    args = parser.parse_args()

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="enabled")
        profiler.start()
        results = asyncio.run(run(args))
        profiler.stop()
        with open(args.profile, "w") as f:
            f.write(profiler.output_html())
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    else:
        results = asyncio.run(run(args))
    print()
    print(
        f"| setup | big write MiB/s | big read MiB/s | {args.small_files} x {args.small_kib} KiB write files/s | read files/s |"
    )
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.setup} | {r.write_mibs:.0f} | {r.read_mibs:.0f} | {r.small_write_fps:.0f} | {r.small_read_fps:.0f} |"
        )


if __name__ == "__main__":
    main()

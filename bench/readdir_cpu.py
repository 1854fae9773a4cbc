"""CPU per directory entry of a READDIRPLUS listing through `VfsOperations` (no kernel, no mount): the
Python cost of `ls -l` on the mount's side, on Redis (or any meta URL).

    cd /tmp && /path/to/.venv/bin/python /path/to/bench/readdir_cpu.py [--meta-url redis://...] \
        [--entries 10000] [--size 32768] [--rounds 5]

Formats a fresh volume (a throwaway redis-server unless `--meta-url`), creates `--entries` files in one
directory through the engine, then lists it `--rounds` times as the kernel does (OPENDIR, READDIRPLUS
requests of `--size` bytes until one comes back empty, RELEASEDIR) and prints the process CPU
(user + sys) per entry of each round and their median. Redis's CPU is not included.

With `--lookups`: instead of listing, each round answers a kernel LOOKUP of every file (`VfsOperations.lookup`
and the reply's encoding, 16 at a time) and prints the CPU per LOOKUP. With `--replay` as well (Redis only):
the first LOOKUP's reply is recorded and every later command of the Redis connection answered with it at
once, from memory — the Python path of a LOOKUP alone, without the socket, one name looked up over and over,
timed by the loop thread's CPU (ADR 0067); steadier than the socket-bound figure for A/B of Python changes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jfs.adapters.fuse.operations import DirentSink, RequestContext  # noqa: E402
from jfs.adapters.fuse.vfs_operations import MountConfig, VfsOperations  # noqa: E402
from jfs.bootstrap import ClientOptions, open_client  # noqa: E402
from jfs.domain.attrs import FileType  # noqa: E402


async def _run(url: str, entries: int, size: int, rounds: int, work: str, lookups: bool = False,
               replay: bool = False) -> list[float]:
    client = await open_client(url, ClientOptions(cache_dir=None, permission_checks=False, entry_cache=0,
                                                  attr_cache=0, background_jobs=False))
    try:
        vfs = client.vfs
        ctx = vfs.ctx()
        d, _ = await vfs.mkdir(ctx, client.root, b"big", 0o755)
        sem = asyncio.Semaphore(64)

        async def make(i: int) -> None:
            async with sem:
                await vfs.mknod(ctx, d, b"f%07d" % i, FileType.REGULAR, 0o644)

        await asyncio.gather(*(make(i) for i in range(entries)))
        ops = VfsOperations(vfs, MountConfig(readdir_cache=False))
        rc = RequestContext(0, 0, 1)
        if lookups and replay:
            return await _replayed_lookups(client.kv, ops, rc, d, rounds)
        if lookups:
            return await _lookups(ops, rc, d, entries, rounds)
        out: list[float] = []
        prof = None
        if os.environ.get("READDIR_PROFILE"):
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        for _ in range(rounds):
            t0 = time.process_time()
            opened = await ops.opendir(rc, d, os.O_RDONLY)
            offset, n = 0, 0
            while True:
                sink = DirentSink(size, True)
                await ops.readdir(rc, d, opened.fh, offset, sink)
                if not sink.count:
                    break
                n += sink.count
                offset = _last_offset(sink)
            await ops.releasedir(rc, d, opened.fh)
            out.append((time.process_time() - t0) / n * 1e6)
            assert n == entries + 2, n
        if prof is not None:
            prof.disable()
            prof.dump_stats(os.environ["READDIR_PROFILE"])
        return out
    finally:
        await client.close()


async def _lookups(ops: VfsOperations, rc: RequestContext, d: int, entries: int, rounds: int) -> list[float]:
    from jfs.adapters.fuse.dispatch import OpcodeTable

    table = OpcodeTable(ops, lambda data: None, lambda parts: None)
    encode = table._e_entry
    out: list[float] = []
    for _ in range(rounds):
        t0 = time.process_time()

        async def worker(k: int) -> None:
            for i in range(k, entries, 16):
                encode(i, await ops.lookup(rc, d, b"f%07d" % i))

        await asyncio.gather(*(worker(k) for k in range(16)))
        out.append((time.process_time() - t0) / entries * 1e6)
    return out


async def _replayed_lookups(kv: object, ops: VfsOperations, rc: RequestContext, d: int, rounds: int,
                            n: int = 20000) -> list[float]:
    from jfs.adapters.fuse.dispatch import OpcodeTable

    inner = kv
    while hasattr(inner, "inner"):  # TimedKV, RetryingKV wrappers
        inner = inner.inner
    conn = inner._client._conns[0]  # type: ignore[attr-defined]
    real = conn.send
    sent: list[asyncio.Future[object]] = []

    def record(packed: bytes) -> asyncio.Future[object]:
        fut: asyncio.Future[object] = real(packed)
        sent.append(fut)
        return fut

    conn.send = record
    await ops.lookup(rc, d, b"f%07d" % 0)
    reply = sent[-1].result()
    loop = asyncio.get_running_loop()

    def replay(packed: bytes) -> asyncio.Future[object]:
        fut = loop.create_future()
        fut.set_result(reply)
        return fut

    conn.send = replay
    encode = OpcodeTable(ops, lambda data: None, lambda parts: None)._e_entry
    out: list[float] = []
    try:
        for _ in range(rounds):
            t0 = time.thread_time()
            for i in range(n):
                encode(i, await ops.lookup(rc, d, b"f%07d" % 0))
            out.append((time.thread_time() - t0) / n * 1e6)
    finally:
        conn.send = real
    return out


def _last_offset(sink: DirentSink) -> int:
    """The `off` of the reply's last dirent (where the kernel resumes)."""
    from jfs.adapters.fuse import protocol as p

    buf = bytes(sink.payload)
    pos, off = 0, 0
    while pos < len(buf):
        ino, off, namelen, _ = p.DIRENT.unpack_from(buf, pos + p.DIRENTPLUS_SIZE - p.DIRENT_SIZE)
        pos += (p.DIRENTPLUS_SIZE + namelen + 7) & ~7
    return off


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meta-url", default="")
    ap.add_argument("--entries", type=int, default=10000)
    ap.add_argument("--size", type=int, default=32768, help="READDIRPLUS buffer size the kernel asks for")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--lookups", action="store_true", help="LOOKUP each file instead of listing")
    ap.add_argument("--replay", action="store_true", help="with --lookups: Redis replies replayed from memory")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work, contextlib.ExitStack() as stack:
        url = args.meta_url
        if not url:
            from jfs.testing.servers import start_redis_server

            server = start_redis_server()
            stack.callback(server.stop)
            url = server.url + "/1"
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        subprocess.run([str(Path(sys.executable).parent / "jfs"), "format", url, "bench", "--bucket",
                        os.path.join(work, "bucket"), "--trash-days", "0"], check=True, capture_output=True)
        us = runner(_run(url, args.entries, args.size, args.rounds, work, args.lookups, args.replay))
    print(f"µs CPU per {'LOOKUP' if args.lookups else 'entry'} per round:", " ".join(f"{u:.2f}" for u in us), f"median {statistics.median(us):.2f}")


if __name__ == "__main__":
    main()

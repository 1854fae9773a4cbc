"""CPU of the FUSE server per OPEN + FLUSH + RELEASE of a read-only handle, in process (ADR 0090).

    cd /tmp && PYTHONPATH=TREE /path/to/.venv/bin/python /path/to/bench/close_now_cpu.py [--files 2000] [--rounds 5]

A `FuseServer` over `VfsOperations` of an in-memory volume (memory KV, memory store) with one written file
is attached to one end of a SEQPACKET socket pair; the other end, in the same process and loop, sends
OPEN(O_RDONLY), FLUSH and RELEASE of the new handle, one request at a time, as a reader's open + close
makes the kernel do. Per round: process CPU (``getrusage``) per open-close triple, the sending side
included (the same for every tree). For an A/B, alternate runs of two trees with PYTHONPATH (from /tmp).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import uuid

from jfs.adapters.fuse import protocol as p
from jfs.adapters.fuse.mounting import MountOptions
from jfs.adapters.fuse.server import FuseServer
from jfs.adapters.fuse.vfs_operations import MountConfig, VfsOperations
from jfs.adapters.kv.memory import open_memory
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.vfs import VFS, VfsConfig
from jfs.domain.attrs import ROOT_INODE
from jfs.testing.data_harness import DataVolume


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _call(sock: socket.socket, loop: asyncio.AbstractEventLoop, unique: int, opcode: int, nodeid: int,
                body: bytes) -> bytes:
    msg = p.IN_HEADER.pack(p.IN_HEADER_SIZE + len(body), opcode, unique, nodeid, 0, 0, 77, 0, 0) + body
    await loop.sock_sendall(sock, msg)
    data = await loop.sock_recv(sock, 1 << 16)
    _, error, got = p.OUT_HEADER.unpack_from(data)
    assert got == unique and error == 0, (opcode, error)
    return data[p.OUT_HEADER_SIZE:]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    store = MemoryStore(f"mem://close-now-{uuid.uuid4().hex}")

    async def opener() -> MemoryStore:
        return store

    v = await DataVolume.create(await open_memory(f"memory://close-now-{uuid.uuid4().hex}"), opener)
    vfs = VFS(v.meta, v.dp, VfsConfig())
    ctx = vfs.ctx()
    ino, _, f = await vfs.create(ctx, ROOT_INODE, b"f", 0o644, os.O_WRONLY)
    await vfs.write(ctx, ino, f.fh, 0, b"x" * 4096)
    await vfs.release(ctx, ino, f.fh)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    server = FuseServer(VfsOperations(vfs, MountConfig()), "/nonexistent", MountOptions(drain_timeout=1))
    server.attach(theirs.detach())
    serving = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    unique = 2
    await _call(ours, loop, unique, p.Opcode.INIT, 0, p.INIT_IN.pack(7, 38, 1 << 17, 0xFFFF_FFFF, 0))
    per: list[float] = []
    for r in range(args.rounds + 1):
        c0 = _cpu()
        for _ in range(args.files):
            unique += 2
            fh = p.OPEN_OUT.unpack(await _call(ours, loop, unique, p.Opcode.OPEN, ino, p.OPEN_IN.pack(os.O_RDONLY, 0)))[0]
            unique += 2
            await _call(ours, loop, unique, p.Opcode.FLUSH, ino, p.FLUSH_IN.pack(fh, 0, 0, 9))
            unique += 2
            await _call(ours, loop, unique, p.Opcode.RELEASE, ino, p.RELEASE_IN.pack(fh, os.O_RDONLY, 0, 0))
        if r:  # the first round warms up
            per.append((_cpu() - c0) / args.files * 1e6)
    print(f"process CPU µs per OPEN+FLUSH+RELEASE: median {statistics.median(per):.1f} "
          f"(min {min(per):.1f}, max {max(per):.1f}) over {args.rounds} rounds of {args.files}")
    ours.close()
    await asyncio.wait_for(serving, 5)
    await v.stop()


if __name__ == "__main__":
    asyncio.run(main())

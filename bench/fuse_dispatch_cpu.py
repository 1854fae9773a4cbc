"""CPU per FUSE request of the server's dispatch modes, in process, on uvloop (ADR 0060).

    cd /tmp && /path/to/.venv/bin/python /path/to/bench/fuse_dispatch_cpu.py [--requests 20000] \
        [--rounds 5] [--depth 8] [--suspends 1] [--modes task,inline] [--loop uvloop|asyncio]

A `FuseServer` is attached to one end of a SEQPACKET socket pair; a child process plays the kernel:
it keeps `--depth` LOOKUPs in flight and reads their replies. The LOOKUP handler awaits `--suspends`
futures, each resolved from a loop callback (as a Redis reply is, from the connection's
``data_received``), then answers. Per round and mode: the server process's CPU (user + system, from
``getrusage(RUSAGE_SELF)``, which leaves the child out) per request; modes alternate within each round. Median
(min-max) over the rounds. The modes are the tree's own (`MountOptions.dispatch`): ADR 0060's task-free
figures came from commit 53b66ae of branch wt-redismd, whose ``inline`` was the task-free driver.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import socket
import stat
import statistics
import struct
import sys
import time
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jfs.adapters.fuse import protocol as p  # noqa: E402
from jfs.adapters.fuse.mounting import MountOptions  # noqa: E402
from jfs.adapters.fuse.operations import Attr, AttrOut, EntryOut, Operations, RequestContext  # noqa: E402


class _Ops(Operations):
    suspends = 1

    def __init__(self) -> None:
        self.attr = Attr(2, stat.S_IFREG | 0o644, size=100)

    async def getattr(self, ctx: RequestContext, ino: int, fh: int | None) -> AttrOut:
        return AttrOut(self.attr, 1.0)

    async def lookup(self, ctx: RequestContext, parent: int, name: bytes) -> EntryOut:
        loop = asyncio.get_running_loop()
        for _ in range(self.suspends):
            fut = loop.create_future()
            loop.call_soon(fut.set_result, None)
            await fut
        return EntryOut(2, self.attr, generation=1, entry_timeout=1.0, attr_timeout=1.0)


def _kernel(sock: socket.socket, n: int, depth: int) -> None:
    """The child: INIT, then `n` LOOKUPs with `depth` in flight."""
    sock.setblocking(True)
    init = p.INIT_IN.pack(7, 38, 1 << 17, 0, 0)
    sock.sendall(p.IN_HEADER.pack(p.IN_HEADER_SIZE + len(init), p.Opcode.INIT, 1, 0, 0, 0, 1, 0, 0) + init)
    sock.recv(1 << 16)
    body = b"f\0"
    head = struct.Struct(p.IN_HEADER.format)
    sent = got = 0
    while got < n:
        while sent < n and sent - got < depth:
            sent += 1
            sock.sendall(head.pack(p.IN_HEADER_SIZE + len(body), p.Opcode.LOOKUP, 2 * sent + 2, 1, 0, 0, 1, 0, 0)
                         + body)
        sock.recv(1 << 16)
        got += 1
    sock.close()


async def _round(mode: str, n: int, depth: int, suspends: int) -> float:
    from jfs.adapters.fuse.server import FuseServer

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ops = _Ops()
    ops.suspends = suspends
    server = FuseServer(ops, "/nonexistent", MountOptions(dispatch=mode, drain_timeout=1))
    server.attach(theirs.detach())
    pid = os.fork()
    if pid == 0:
        try:
            _kernel(ours, n, depth)
        finally:
            os._exit(0)
    ours.close()
    t0 = resource.getrusage(resource.RUSAGE_SELF)
    await server.serve()  # ends at the child's close
    t1 = resource.getrusage(resource.RUSAGE_SELF)
    os.waitpid(pid, 0)  # noqa: ASYNC222 - the child has closed its end: it is exiting
    return ((t1.ru_utime - t0.ru_utime) + (t1.ru_stime - t0.ru_stime)) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--suspends", type=int, default=1)
    ap.add_argument("--modes", default="task,inline")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    modes = args.modes.split(",")
    if args.loop == "uvloop":
        import uvloop
        new_loop = uvloop.new_event_loop
    else:
        new_loop = asyncio.new_event_loop
    res: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(args.rounds):
        order = modes[r % len(modes):] + modes[: r % len(modes)]
        for mode in order:
            loop = new_loop()
            try:
                res[mode].append(loop.run_until_complete(_round(mode, args.requests, args.depth, args.suspends)))
            finally:
                loop.close()
        print(f"round {r + 1}: " + ", ".join(f"{m} {res[m][-1]:.1f}" for m in modes), flush=True)
        time.sleep(0.1)
    print(f"server CPU µs per LOOKUP ({args.loop}, depth {args.depth}, {args.suspends} suspension(s)), "
          "median (min-max):")
    for m in modes:
        v = res[m]
        print(f"  {m}: {statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})")


if __name__ == "__main__":
    main()

"""``python -m jfs.cli.dump_worker``: a worker process of ``jfs dump`` (`jfs.app.ops.dump_workers`).

Not a command for users: ``jfs dump`` starts it with pipes on stdin/stdout. It reads the hello frame (the
META-URL with its password, the read concurrency, the checksum block size, the log level), opens the engine and answers
page requests until its input ends. Anything printed goes to stderr: stdout carries only the frames.
Imports only what a worker needs (the engine adapters, not the CLI), so that it starts quickly.
"""

from __future__ import annotations

import asyncio
import os
import sys


async def _main(out_fd: int) -> int:
    from jfs.adapters.kv.registry import open_kv
    from jfs.app.ops.dump_workers import read_frame, serve
    from jfs.cli.logs import setup_logging

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(out_fd, "wb", buffering=0))
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    hello = await read_frame(reader)
    if hello is None:
        return 0
    setup_logging(hello.get("log_level", "info"))
    os.environ.setdefault("JFS_SQLITE_CACHE_KIB", "4096")  # as `jfs.compose.one_pass_engine_caches`
    os.environ.setdefault("JFS_SQLITE_MMAP_MIB", "0")
    kv = await open_kv(hello["url"])
    try:
        await serve(kv, hello, reader, writer)
    finally:
        await kv.close()
        writer.close()
    return 0


def main() -> int:
    out_fd = os.dup(1)  # the frames' channel; fd 1 (print, logging) goes to stderr from here on
    os.dup2(2, 1)
    try:
        return asyncio.run(_main(out_fd))
    except (KeyboardInterrupt, BrokenPipeError):
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Dump pages read and rendered by worker processes, written in order by the dumping process.

Why: on Redis a dump is bound by Python work per node (listing, decoding, rendering: `jfs.app.ops.dump_page`),
one core's worth, while the engine has CPU to spare; JuiceFS's Go dump uses every core. Worker processes
each hold their own engine connection and render whole pages (`PageReader.page`); the dumping process only
walks the tree and writes the pages' text in order, so the output is byte for byte what one process writes.

Contract:

* `WorkerPages.start(argv, count, hello)` starts `count` processes running `argv` (the CLI's
  ``python -m jfs.cli.dump_worker``), sends each `hello` (the META-URL, with its password, through the pipe:
  never on a command line) and returns a `PageSource`. `page` sends a request to the worker with the fewest
  in flight and returns its reply. A worker's failure (an engine error in a page, a crash, a closed pipe)
  raises OpsError from the `page` calls it concerns; `close` ends every worker (stdin closed, then killed
  after `STOP_GRACE` seconds).
* `serve` is the worker's side: requests are served concurrently (the `PageReader` bounds the engine
  calls), replies go back as they complete, each tagged with its request's id; it returns at the end of
  its input.
* Frames on the pipes: a 4-byte little-endian length and a pickle (the processes are the same program; the
  pipes are private to them).
* Multi-client safety: workers only read, like the in-process dump (each node read consistently; the dump
  as a whole is not a snapshot, as before).
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from jfs.app.errors import OpsError
from jfs.app.ops.dump_page import Page, PageReader
from jfs.ports.kv import KV

log = structlog.get_logger("jfs.app.ops.dump")

_LEN = struct.Struct("<I")
STOP_GRACE = 5.0
"""Seconds a worker has to exit after its input closed before it is killed."""


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next object on `reader`; None at a clean end of input."""
    try:
        head = await reader.readexactly(_LEN.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    return pickle.loads(await reader.readexactly(_LEN.unpack(head)[0]))  # noqa: S301 - our own worker's pipe


def write_frame(writer: asyncio.StreamWriter, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_LEN.pack(len(data)) + data)


MIN_ENTRIES = 20_000
"""Smallest volume (its inode counter) for which workers are started: each costs an interpreter's start."""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """How to start dump workers: the command, how many, and the META-URL they open (password included)."""

    argv: tuple[str, ...]
    count: int
    url: str = field(repr=False)
    log_level: str = "info"


@dataclass(slots=True)
class _Worker:
    proc: asyncio.subprocess.Process
    waiting: dict[int, asyncio.Future[Page]] = field(default_factory=dict)
    reader_task: asyncio.Task[None] | None = None
    failed: str | None = None


class WorkerPages:
    """A `PageSource` served by worker processes (see the module docstring)."""

    def __init__(self, workers: list[_Worker]) -> None:
        self._workers = workers
        self._next_id = 0

    @classmethod
    async def start(cls, argv: Sequence[str], count: int, hello: dict[str, Any]) -> WorkerPages:
        workers: list[_Worker] = []
        try:
            for _ in range(count):
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 22)
                worker = _Worker(proc)
                workers.append(worker)
                assert proc.stdin is not None
                write_frame(proc.stdin, hello)  # type: ignore[arg-type]
            pages = cls(workers)
            for worker in workers:
                worker.reader_task = asyncio.ensure_future(pages._replies(worker))
            return pages
        except BaseException:
            await cls(workers).close()
            raise

    async def page(self, ino: int, after: bytes, depth: int) -> Page:
        worker = min(self._workers, key=lambda w: len(w.waiting))
        if worker.failed is not None:
            raise OpsError(worker.failed)
        self._next_id += 1
        rid = self._next_id
        fut: asyncio.Future[Page] = asyncio.get_running_loop().create_future()
        worker.waiting[rid] = fut
        assert worker.proc.stdin is not None
        try:
            write_frame(worker.proc.stdin, (rid, ino, after, depth))  # type: ignore[arg-type]
            await worker.proc.stdin.drain()
            return await fut
        finally:
            worker.waiting.pop(rid, None)

    async def _replies(self, worker: _Worker) -> None:
        assert worker.proc.stdout is not None
        reason = "a dump worker process ended unexpectedly"
        try:
            while True:
                reply = await read_frame(worker.proc.stdout)
                if reply is None:
                    break
                rid, ok, value = reply
                fut = worker.waiting.get(rid)
                if fut is None or fut.done():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(OpsError(f"dump worker: {value}"))
        except (OSError, asyncio.IncompleteReadError, pickle.UnpicklingError, ValueError) as exc:
            reason = f"lost a dump worker process: {exc}"
        worker.failed = reason
        for fut in worker.waiting.values():
            if not fut.done():
                fut.set_exception(OpsError(reason))

    async def close(self) -> None:
        """End every worker (input closed; killed if it has not exited after `STOP_GRACE` seconds)."""
        for worker in self._workers:
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()
        for worker in self._workers:
            try:
                await asyncio.wait_for(worker.proc.wait(), STOP_GRACE)
            except (TimeoutError, asyncio.CancelledError):
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()
                await worker.proc.wait()
            if worker.reader_task is not None:
                worker.reader_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker.reader_task


async def serve(kv: KV, hello: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The worker's side: answer page requests from `reader` on `writer` until the end of input."""
    pages = PageReader(kv, int(hello.get("threads", 10)), int(hello.get("sums_block", 0)), int(hello.get("page", 0)),
                       hello.get("marked"))
    tasks: set[asyncio.Task[None]] = set()

    async def one(rid: int, ino: int, after: bytes, depth: int) -> None:
        try:
            reply: tuple[int, bool, Any] = (rid, True, await pages.page(ino, after, depth))
        except Exception as exc:  # noqa: BLE001 - reported to the dumping process, which fails the dump
            log.warning("dump_worker_page_failed", inode=ino, error=str(exc))
            reply = (rid, False, f"{type(exc).__name__}: {exc}")
        write_frame(writer, reply)
        await writer.drain()

    while True:
        request = await read_frame(reader)
        if request is None:
            break
        task = asyncio.ensure_future(one(*request))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)

"""Serving a file system over ``/dev/fuse`` with one asyncio event loop: the request loop.

Concurrency model: the device fd is non-blocking and watched with ``loop.add_reader``. Each readable
event reads requests (one per ``read``) until the device is drained or a batch limit is hit, decodes
each one synchronously (names are copied out, the WRITE payload is a view of the request buffer) and
starts its handler as an asyncio task; the task writes the reply with one ``write``/``writev``. So a
slow handler (a lock wait, a remote read) never delays a fast one (a cached ``getattr``).

Request buffers come from a small pool of ``bytearray`` s sized ``max_write + 4 KiB``; a buffer is
re-used for the next read right after decoding, except for WRITE whose payload view must stay valid
until the handler returns — then the reader takes another buffer from the pool.

Placed writes (ADR 0030): after two large WRITEs of a file in a row, each where the last ended, the server asks the file system where the same file's
next WRITE at the offset right after it would go (`Operations.write_target`) and reads the device with
``readv`` into [80-byte header, that buffer, a request buffer]. If the request read is that WRITE and fits,
its payload is already in place and is handed to ``write`` as a view of it; anything else is copied back
into a plain request buffer and dispatched as usual. No offer is made while a placed write is pending.

Each request is decoded and its reply encoded by the opcode table (`dispatch`), except INIT, DESTROY
and INTERRUPT, which are the connection's and handled here.

Life cycle: `FuseServer.mount` opens the device and mounts (``mount(2)`` as root, ``fusermount3``
otherwise; see `mounting`); `FuseServer.serve` runs the loop until the kernel ends the connection (unmount, DESTROY,
``ENODEV``), drains in-flight handlers and calls ``Operations.destroy``; `FuseServer.run` does both
and unmounts on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import inspect
import io
import os
import signal
import sys
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from typing import Any, Final

import structlog

from jfs.adapters.fuse import protocol as p
from jfs.adapters.fuse.dispatch import Decoder, Encoder, OpcodeTable, Work
from jfs.adapters.fuse.mounting import (
    MountOptions,
    is_mounted,
    mount_device,
    mount_with_fusermount,
    mount_with_syscall,
    set_read_ahead,
    unmount,
)
from jfs.adapters.fuse.notify import KernelNotifier
from jfs.adapters.fuse.operations import Buffer, ConnectionInfo, Operations, RequestContext

log = structlog.get_logger("jfs.fuse")

_WRITE: Final = int(p.Opcode.WRITE)
_TASK: Final = "task"
_EAGER_TASK: Final = "eager-task"
_INLINE: Final = "inline"
_EAGER_START: Final = sys.version_info >= (3, 12)
_NOTIFY_REPLY: Final = int(p.Opcode.NOTIFY_REPLY)


LENT_BUFFERS = 32
"""Most WRITE buffers tracked while a handler keeps their data (beyond that they are simply dropped)."""
PLACE_MIN = 512 << 10
"""A WRITE at least this long makes the server ask where the next one of its file would go."""
_PLACED: Final = bytearray()
"""`_run`'s `wbuf` for a placed write: nothing to recycle, one placed write fewer pending."""


@types.coroutine
def _resume(coro: Coroutine[Any, Any, None], yielded: Any) -> Generator[Any, Any, None]:
    """Continue `coro`, which already yielded `yielded` to us, as if a task had been running it."""
    send = coro.send
    throw = coro.throw
    while True:
        try:
            value = yield yielded
        except BaseException as exc:  # noqa: B036 - cancellation and everything else goes to the coroutine
            try:
                yielded = throw(exc)
            except StopIteration:
                return
        else:
            try:
                yielded = send(value)
            except StopIteration:
                return


class FuseServer:
    """Serves one `Operations` at one mount point.

    Typical use::

        server = FuseServer(MyFs(), "/mnt/x", MountOptions(fsname="jfs:vol"))
        await server.run()          # mount, serve until unmounted or SIGTERM/SIGINT, clean up

    `notifier` sends the kernel cache invalidations (see `KernelNotifier`); the file system gets it
    as ``ConnectionInfo.notifier``.
    """

    def __init__(self, ops: Operations, mountpoint: str | os.PathLike[str], options: MountOptions | None = None) -> None:
        self.ops = ops
        self.mountpoint = os.path.abspath(mountpoint)
        self.options = options or MountOptions()
        o = self.options
        self._allow_other = os.geteuid() == 0 if o.allow_other is None else o.allow_other
        if o.readdirplus not in ("auto", "always", "never"):
            raise ValueError(f"readdirplus must be auto, always or never, not {o.readdirplus!r}")
        for name in (o.fsname, o.subtype):
            if any(c in name for c in ",\\ \t\n"):
                raise ValueError(f"fsname/subtype may not contain commas, backslashes or white space: {name!r}")
        self.fd = -1
        self.conn: ConnectionInfo | None = None
        self._fio: io.FileIO | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._via_fusermount = False
        self._mounted = False
        self._ended: asyncio.Future[None] | None = None
        self._ready = asyncio.Event()
        self._stopping = False
        self._inflight: dict[int, tuple[asyncio.Task[None], int]] = {}
        self._interruptible = frozenset(ops.interruptible)
        self._bufsize = max(o.max_write + p.MAX_HEADER_ROOM, p.MIN_READ_BUFFER)
        self._pool: list[bytearray] = []
        self._lent: list[bytearray] = []  # WRITE buffers whose data a handler kept (oldest first)
        self._rbuf = self._new_buffer()
        self._leak_warned = False
        self.notifier = KernelNotifier()
        self._device: tuple[int, int] | None = None
        self._opcodes = OpcodeTable(ops, self._write, self._writev)
        self._table: list[Decoder | None] = [None] * p.MAX_OPCODE
        for opcode, decoder in self._opcodes.decoders().items():
            self._table[opcode] = decoder
        self._table[p.Opcode.INIT] = self._d_init
        self._table[p.Opcode.DESTROY] = self._d_destroy
        self._table[p.Opcode.INTERRUPT] = self._d_interrupt
        if o.dispatch not in (_TASK, _EAGER_TASK, _INLINE):
            raise ValueError(f"dispatch must be task, eager-task or inline, not {o.dispatch!r}")
        self._mode = o.dispatch
        self._ready_queue: Any = None
        self._dispatch_one: Callable[[bytearray, int], bool] = self._dispatch_debug if o.debug else self._dispatch
        self._place = o.place_writes and type(ops).write_target is not Operations.write_target
        self._next_write: tuple[int, int, int] | None = None
        """(ino, fh, offset) of the WRITE a sequential writer is expected to send next."""
        self._last_end: tuple[int, int, int] | None = None
        """(ino, fh, end) of the last WRITE read, if large."""
        self._placing = 0
        """Placed writes whose handler has not returned yet."""
        self._head = bytearray(p.WRITE_DATA_OFFSET)

    # ------------------------------------------------------------------ public life cycle

    @property
    def ready(self) -> asyncio.Event:
        """Set once INIT is answered (the mount then serves requests)."""
        return self._ready

    async def mount(self) -> None:
        """Open /dev/fuse and mount it at `mountpoint`. INIT is answered once `serve` runs."""
        if self._mounted:
            raise RuntimeError("already mounted")
        o = self.options
        use_fusermount = o.use_fusermount if o.use_fusermount is not None else os.geteuid() != 0
        if not await asyncio.to_thread(os.path.isdir, self.mountpoint):
            raise NotADirectoryError(errno.ENOTDIR, "mount point is not a directory", self.mountpoint)
        if use_fusermount:
            self.fd = await asyncio.to_thread(mount_with_fusermount, self.mountpoint, o, self._allow_other)
            os.set_blocking(self.fd, False)
            self._via_fusermount = True
        else:
            self.fd = mount_with_syscall(self.mountpoint, o, self._allow_other)
        self._mounted = True
        self._fio = io.FileIO(self.fd, "r", closefd=False)
        log.info("fuse_mounted", mountpoint=self.mountpoint, fsname=o.fsname, subtype=o.subtype,
                 via="fusermount3" if use_fusermount else "mount(2)")

    def attach(self, fd: int) -> None:
        """Serve an already-open FUSE device `fd` instead of mounting (a mount made by someone else,
        e.g. a supervisor passing the fd across an upgrade; or a SEQPACKET socket in tests). The
        server owns `fd` from now on and closes it when `serve` returns; it does not unmount."""
        if self.fd >= 0:
            raise RuntimeError("already has a device")
        os.set_blocking(fd, False)
        self.fd = fd
        self._fio = io.FileIO(fd, "r", closefd=False)

    async def serve(self) -> None:
        """Answer requests until the kernel ends the connection; then drain, call ``destroy`` and close.

        Returns normally after an unmount (by anyone), DESTROY, or a `request_stop`.
        """
        if self.fd < 0:
            raise RuntimeError("mount() first")
        loop = self._loop = asyncio.get_running_loop()
        self._ready_queue = getattr(loop, "_ready", None)
        if self._mode == _EAGER_TASK and not _EAGER_START and self._ready_queue is None:
            # A loop without asyncio's ready queue (uvloop): plain tasks (measured cheaper there than
            # `inline`, whose resumptions run through a Python generator; ADR 0037).
            self._mode = _TASK
        self._ended = loop.create_future()
        loop.add_reader(self.fd, self._on_readable)
        try:
            await self._ended
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(self.fd)
            await self._drain()
            if self._ready.is_set():
                try:
                    await self.ops.destroy()
                except Exception:
                    log.error("fuse_destroy_failed", exc_info=True)
            await self.notifier.close()
            os.close(self.fd)
            self.fd = -1
            self._fio = None
            log.info("fuse_connection_closed", mountpoint=self.mountpoint)

    async def run(self, *, handle_signals: bool = True) -> None:
        """Mount, serve until unmounted (or SIGTERM/SIGINT when `handle_signals`), clean up."""
        await self.mount()
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.serve()
        finally:
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            self._unmount_quietly()

    def request_stop(self) -> None:
        """Begin a graceful stop: lazy unmount now; the connection ends when the last user lets go,
        or is aborted after ``stop_timeout`` seconds. `serve` then drains and returns."""
        if self._stopping:
            return
        self._stopping = True
        log.info("fuse_stop_requested", mountpoint=self.mountpoint)
        self._unmount_quietly()
        if self._loop is not None:
            self._loop.call_later(self.options.stop_timeout, self._abort_connection)

    def unmount(self, *, lazy: bool = True) -> None:
        """Unmount the file system (the connection then ends and `serve` returns). Raises OSError."""
        unmount(self.mountpoint, lazy=lazy, fusermount=self._via_fusermount)
        self._mounted = False

    # ------------------------------------------------------------------ ending

    def _unmount_quietly(self) -> None:
        if not self._mounted or not is_mounted(self.mountpoint):
            self._mounted = False
            return
        try:
            self.unmount(lazy=True)
        except OSError as exc:
            log.warning("fuse_unmount_failed", mountpoint=self.mountpoint, error=str(exc))

    def _abort_connection(self) -> None:
        """End a connection that outlived a lazy unmount (files still open): abort it via fusectl if
        mounted, else stop reading (closing the fd in `serve` aborts it)."""
        if self._ended is None or self._ended.done():
            return
        dev = self._device
        if dev is not None:  # fusectl names a connection by the minor of its device number
            with contextlib.suppress(OSError), open(f"/sys/fs/fuse/connections/{dev[1]}/abort", "w") as f:
                f.write("1")
        log.warning("fuse_connection_aborted", mountpoint=self.mountpoint, inflight=len(self._inflight))
        self._end_connection()

    def _end_connection(self) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)

    async def _drain(self) -> None:
        if not self._inflight:
            return
        tasks = [t for t, _ in self._inflight.values()]
        _, pending = await asyncio.wait(tasks, timeout=self.options.drain_timeout)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("fuse_drain_timeout", cancelled=len(pending))
            await asyncio.wait(pending, timeout=1)

    # ------------------------------------------------------------------ the request loop

    def _new_buffer(self) -> bytearray:
        buf = bytearray(self._bufsize)
        # Give the buffer slack so the append/pop of `_recycle` never reallocates.
        buf.append(0)
        buf.pop()
        return buf

    def _recycle(self, buf: bytearray) -> None:
        """Return a WRITE request buffer to the pool unless a view of it is still alive somewhere; a
        buffer whose data the handler keeps (`Operations.keeps_write_data`) is lent: `_take_buffer`
        takes it back once the views are gone (a fresh 1 MiB buffer costs its zeroing and page faults:
        a quarter of the loop under sequential writes)."""
        try:
            buf.append(0)  # BufferError while any memoryview of buf exists
            buf.pop()
        except BufferError:
            if self.ops.keeps_write_data:
                if len(self._lent) < LENT_BUFFERS:
                    self._lent.append(buf)
            elif not self._leak_warned:
                self._leak_warned = True
                log.warning("fuse_write_buffer_kept",
                            hint="a write handler kept a view of its data beyond returning; copy it instead")
            return
        if len(self._pool) < self.options.pool_buffers:
            self._pool.append(buf)

    def _take_buffer(self) -> bytearray:
        """A request buffer: from the pool, else a lent one whose data were let go of, else a new one."""
        if self._pool:
            return self._pool.pop()
        lent = self._lent
        for i, buf in enumerate(lent):
            try:
                buf.append(0)
                buf.pop()
            except BufferError:
                continue
            del lent[i]
            return buf
        return self._new_buffer()

    def _on_readable(self) -> None:
        fio = self._fio
        if fio is None:
            return
        dispatch = self._dispatch_one
        for _ in range(self.options.read_batch):
            if self._next_write is not None and not self._placing:
                target = self._target(self._next_write)
                if target is not None:
                    if not self._read_placed(target):
                        return
                    continue
            buf = self._rbuf
            try:
                n = fio.readinto(buf)
            except OSError as exc:
                code = exc.errno
                if code in (errno.ENOENT, errno.EINTR, errno.EAGAIN):
                    continue  # ENOENT: the request was interrupted and dropped before we read it
                if code not in (errno.ENODEV, errno.ECONNABORTED, errno.EBADF):
                    log.error("fuse_device_read_failed", errno=errno.errorcode.get(code or 0, code))
                self._end_connection()
                return
            if n is None:
                return  # EAGAIN: drained
            if n == 0:
                self._end_connection()
                return
            try:
                if dispatch(buf, n):
                    self._rbuf = self._take_buffer()
            except Exception:
                log.error("fuse_dispatch_failed", exc_info=True)

    def _target(self, expected: tuple[int, int, int]) -> memoryview | None:
        try:
            target = self.ops.write_target(*expected)
        except Exception:
            log.error("fuse_write_target_failed", exc_info=True)
            target = None
        if target is None:
            self._next_write = None  # re-armed by the next large WRITE
        return target

    def _read_placed(self, target: memoryview) -> bool:
        """Read one request with the expected WRITE's payload going to `target`, and dispatch it.
        False when the device is drained or the connection ended."""
        head = self._head
        spill = self._rbuf
        try:
            n = os.readv(self.fd, [head, target, spill])
        except OSError as exc:
            code = exc.errno
            if code in (errno.ENOENT, errno.EINTR):
                return True
            if code == errno.EAGAIN:
                return False
            if code not in (errno.ENODEV, errno.ECONNABORTED, errno.EBADF):
                log.error("fuse_device_read_failed", errno=errno.errorcode.get(code or 0, code))
            self._end_connection()
            return False
        if n == 0:
            self._end_connection()
            return False
        h = len(head)
        try:
            if n > h and self._dispatch_placed(target, n):
                return True
            # Not the expected WRITE: the request, made whole again in the request buffer, goes the usual way.
            k = min(max(0, n - h), len(target))
            rest = bytes(spill[: n - h - k]) if n > h + k else b""
            spill[: min(n, h)] = head[: min(n, h)]
            if k:
                spill[h : h + k] = target[:k]
            if rest:
                spill[h + k : n] = rest
            if self._dispatch_one(spill, n):
                self._rbuf = self._take_buffer()
        except Exception:
            log.error("fuse_dispatch_failed", exc_info=True)
        return True

    def _dispatch_placed(self, target: memoryview, n: int) -> bool:
        """Start the expected WRITE whose payload is in `target`; False if the request is something else."""
        head = self._head
        _, opcode, unique, nodeid, uid, gid, pid, _, _ = p.IN_HEADER.unpack_from(head)
        if opcode != _WRITE:
            return False
        fh, offset, size, write_flags, _, _, _ = p.WRITE_IN.unpack_from(head, p.IN_HEADER_SIZE)
        if (nodeid, fh, offset) != self._next_write or size > len(target) or n != len(head) + size:
            return False
        if self.options.debug:
            log.debug("fuse_request", op="WRITE", unique=unique, nodeid=nodeid, uid=uid, gid=gid, pid=pid, len=n,
                      placed=True)
        self._next_write = self._last_end = (nodeid, fh, offset + size) if size >= PLACE_MIN else None
        self._placing += 1
        aw = self.ops.write(RequestContext(uid, gid, pid), nodeid, fh, offset, target[:size], write_flags)
        self._start(unique, opcode, aw, self._opcodes.encode_write, _PLACED)
        return True

    def _dispatch(self, buf: bytearray, n: int) -> bool:
        """Decode one request and start its handler; True when the handler now owns `buf`."""
        _, opcode, unique, nodeid, uid, gid, pid, _, _ = p.IN_HEADER.unpack_from(buf)
        decoder = self._table[opcode] if opcode < p.MAX_OPCODE else None
        if decoder is None:
            if opcode != _NOTIFY_REPLY:
                self._reply_error(unique, errno.ENOSYS)
            return False
        try:
            work = decoder(nodeid, RequestContext(uid, gid, pid), buf, n)
        except OSError as exc:
            self._reply_error(unique, exc.errno)
            return False
        except Exception:  # a malformed request (or a decoder bug): never take the mount down
            log.error("fuse_bad_request", op=_opname(opcode), unique=unique, exc_info=True)
            self._reply_error(unique, errno.EIO)
            return False
        if work is None:
            return False
        owns: bool = opcode == _WRITE
        if owns and self._place:
            # Offer a buffer only to a run of large WRITEs of one file, each where the last ended: writers
            # of several files interleave their requests, and a guess for the wrong file costs a copy.
            fh, offset, size = p.WRITE_IN.unpack_from(buf, p.IN_HEADER_SIZE)[:3]
            after = (nodeid, fh, offset + size) if size >= PLACE_MIN else None
            self._next_write = after if after is not None and self._last_end == (nodeid, fh, offset) else None
            self._last_end = after
        self._start(unique, opcode, work[0], work[1], buf if owns else None)
        return owns

    def _dispatch_debug(self, buf: bytearray, n: int) -> bool:
        _, opcode, unique, nodeid, uid, gid, pid, _, _ = p.IN_HEADER.unpack_from(buf)
        try:
            name = p.Opcode(opcode).name
        except ValueError:
            name = str(opcode)
        log.debug("fuse_request", op=name, unique=unique, nodeid=nodeid, uid=uid, gid=gid, pid=pid, len=n)
        return self._dispatch(buf, n)

    def _start(self, unique: int, opcode: int, aw: Awaitable[Any], enc: Encoder | None,
               wbuf: bytearray | None) -> None:
        loop = self._loop
        assert loop is not None
        runner = self._run(unique, opcode, aw, enc, wbuf)
        mode = self._mode
        if mode == _EAGER_TASK:
            if _EAGER_START:
                task = asyncio.Task(runner, loop=loop, eager_start=True)  # type: ignore[call-arg]
                if task.done():
                    return
            else:
                ready = self._ready_queue
                before = len(ready)
                task = loop.create_task(runner)
                if len(ready) == before + 1:
                    # Python < 3.12: run the step the new task just scheduled now rather than in the
                    # next loop iteration (what 3.12's eager_start does).
                    ready.pop()._run()
                    if task.done():
                        return
        elif mode == _INLINE:
            context = contextvars.copy_context()
            try:
                yielded = context.run(runner.send, None)
            except StopIteration:
                return
            task = loop.create_task(_resume(runner, yielded), context=context)
        else:
            task = loop.create_task(runner)
        self._inflight[unique] = (task, opcode)

    async def _run(self, unique: int, opcode: int, aw: Awaitable[Any], enc: Encoder | None,
                   wbuf: bytearray | None) -> None:
        try:
            result = await aw
            if enc is not None:
                enc(unique, result)
        except OSError as exc:
            if enc is not None:
                self._reply_error(unique, exc.errno)
            elif self.options.debug:
                log.debug("fuse_noreply_failed", opcode=opcode, errno=exc.errno)
        except asyncio.CancelledError:
            if enc is not None:
                self._reply_error(unique, errno.EINTR)
        except Exception:
            log.error("fuse_handler_failed", op=_opname(opcode), unique=unique, exc_info=True)
            if enc is not None:
                self._reply_error(unique, errno.EIO)
        finally:
            self._inflight.pop(unique, None)
            if wbuf is _PLACED:
                self._placing -= 1
            elif wbuf is not None:
                self._recycle(wbuf)

    # ------------------------------------------------------------------ replies

    def _write(self, data: Buffer) -> None:
        try:
            os.write(self.fd, data)
        except OSError as exc:
            self._write_failed(exc)

    def _writev(self, parts: Sequence[Buffer]) -> None:
        try:
            os.writev(self.fd, parts)
        except OSError as exc:
            self._write_failed(exc)

    def _write_failed(self, exc: OSError) -> None:
        # ENOENT: the request was interrupted or aborted meanwhile; ENODEV: the connection is gone.
        if exc.errno in (errno.ENOENT, errno.ENODEV, errno.ECONNABORTED, errno.EBADF):
            return
        log.error("fuse_reply_rejected", errno=errno.errorcode.get(exc.errno or 0, exc.errno), error=str(exc))

    def _reply_error(self, unique: int, err: int | None) -> None:
        if not err or err < 0 or err >= 512:
            err = errno.EIO
        self._write(p.OUT_HEADER.pack(p.OUT_HEADER_SIZE, -err, unique))

    def _reply_empty(self, unique: int, _result: object) -> None:
        self._write(p.OUT_HEADER.pack(p.OUT_HEADER_SIZE, 0, unique))

    # ------------------------------------------------------------------ the connection's requests

    def _d_init(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        _, _, unique = p.IN_HEADER.unpack_from(buf)[:3]
        major, minor, max_readahead, flags = p.INIT_IN_BASE.unpack_from(buf, p.IN_HEADER_SIZE)
        if major != p.KERNEL_VERSION:
            if major > p.KERNEL_VERSION:
                # Reply with our major only; the kernel retries INIT with it.
                self._write(p.OUT_HEADER.pack(p.OUT_HEADER_SIZE + 8, 0, unique)
                            + p.INIT_OUT.pack(p.KERNEL_VERSION, p.KERNEL_MINOR_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0)[:8])
                return None
            log.error("fuse_protocol_unsupported", kernel=f"{major}.{minor}")
            raise OSError(errno.EPROTO, "kernel protocol too old")
        if minor < p.MIN_KERNEL_MINOR:
            log.error("fuse_protocol_unsupported", kernel=f"{major}.{minor}")
            raise OSError(errno.EPROTO, "kernel protocol too old")
        if flags & p.FUSE_INIT_EXT and n >= p.IN_HEADER_SIZE + p.INIT_IN.size:
            flags |= p.INIT_IN.unpack_from(buf, p.IN_HEADER_SIZE)[4] << 32
        o = self.options
        want = p.FUSE_BIG_WRITES | p.FUSE_ATOMIC_O_TRUNC | p.FUSE_MAX_PAGES | p.FUSE_SETXATTR_EXT | p.FUSE_INIT_EXT
        want |= p.FUSE_ASYNC_READ if o.async_read else 0
        want |= p.FUSE_POSIX_LOCKS if o.posix_locks else 0
        want |= p.FUSE_FLOCK_LOCKS if o.flock_locks else 0
        want |= p.FUSE_PARALLEL_DIROPS if o.parallel_dirops else 0
        want |= p.FUSE_WRITEBACK_CACHE if o.writeback_cache else 0
        want |= p.FUSE_AUTO_INVAL_DATA if o.auto_inval_data else 0
        want |= p.FUSE_CACHE_SYMLINKS if o.cache_symlinks else 0
        if o.readdirplus == "auto":
            want |= p.FUSE_DO_READDIRPLUS | p.FUSE_READDIRPLUS_AUTO
        elif o.readdirplus == "always":
            want |= p.FUSE_DO_READDIRPLUS
        agreed = want & flags
        minor = min(minor, p.KERNEL_MINOR_VERSION)
        self._opcodes.setxattr_ext = bool(agreed & p.FUSE_SETXATTR_EXT)
        max_pages = min(256, (o.max_write + 4095) // 4096)
        readahead = min(max_readahead, o.max_readahead)
        self.conn = ConnectionInfo(
            proto_major=major, proto_minor=minor, kernel_flags=flags, flags=agreed, max_write=o.max_write,
            max_read=o.max_read, max_readahead=readahead, max_pages=max_pages, max_background=o.max_background,
            congestion_threshold=o.congestion_threshold, time_gran=1, notifier=self.notifier)
        reply = p.INIT_OUT.pack(major, minor, readahead, agreed & 0xFFFF_FFFF, o.max_background,
                                o.congestion_threshold, o.max_write, 1, max_pages, 0, agreed >> 32)
        if minor < 23:
            reply = reply[: p.COMPAT_22_INIT_OUT_SIZE]
        return self._init(unique, reply), None

    async def _init(self, unique: int, reply: bytes) -> None:
        assert self.conn is not None
        try:
            await self.ops.init(self.conn)
        except Exception as exc:
            log.error("fuse_init_failed", exc_info=True)
            self._reply_error(unique, exc.errno if isinstance(exc, OSError) else errno.EIO)
            self._end_connection()
            return
        self._write(p.OUT_HEADER.pack(p.OUT_HEADER_SIZE + len(reply), 0, unique) + reply)
        c = self.conn
        self.notifier.open(self.fd, c.proto_minor, c.kernel_flags)
        self._ready.set()
        self._device = mount_device(self.mountpoint)  # gone from mountinfo after a lazy unmount
        log.info("fuse_init", proto=f"{c.proto_major}.{c.proto_minor}", max_write=c.max_write,
                 max_readahead=c.max_readahead, flags=hex(c.flags), kernel_flags=hex(c.kernel_flags))
        if self.options.read_ahead_kb is not None:
            set_read_ahead(self._device, self.options.read_ahead_kb)

    def _d_destroy(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        return self._destroy(), self._reply_empty

    async def _destroy(self) -> None:
        assert self._loop is not None
        self._loop.call_soon(self._end_connection)

    def _d_interrupt(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        (target,) = p.INTERRUPT_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        self._interrupt(target)
        # No reply: the interrupted request's own reply (EINTR or its result) answers it; a request
        # not found here has already been answered.
        return None

    def _interrupt(self, unique: int) -> None:
        """Cancel the handler task of request `unique` if its opcode is interruptible and it still runs.

        A task that has not taken its first step yet (its request and the INTERRUPT were read in the
        same wake-up: the kernel queues the INTERRUPT of a request whose caller already had a signal
        pending the moment the request is read, ahead of all other requests) is cancelled only after
        that step: cancelling it before would close `_run` unstarted, outside its ``try``, and the
        request would never be answered (its caller stuck in the system call for good)."""
        entry = self._inflight.get(unique)
        if entry is None or entry[1] not in self._interruptible:
            return
        task = entry[0]
        if task.done():
            return
        if _unstarted(task):
            assert self._loop is not None
            self._loop.call_soon(self._interrupt, unique)  # the task's first step is queued before this
            return
        task.cancel()


def _unstarted(task: asyncio.Task[Any]) -> bool:
    """Whether `task` has not run its coroutine (`_run`, or `_resume` in inline mode) at all yet."""
    coro = task.get_coro()
    if isinstance(coro, types.CoroutineType):
        return inspect.getcoroutinestate(coro) == inspect.CORO_CREATED
    if isinstance(coro, types.GeneratorType):
        return inspect.getgeneratorstate(coro) == inspect.GEN_CREATED
    return False


def _opname(opcode: int) -> str:
    try:
        return p.Opcode(opcode).name
    except ValueError:
        return str(opcode)

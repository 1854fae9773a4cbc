"""Mounting and serving a file system over ``/dev/fuse`` with one asyncio event loop.

Concurrency model: the device fd is non-blocking and watched with ``loop.add_reader``. Each readable
event reads requests (one per ``read``) until the device is drained or a batch limit is hit, decodes
each one synchronously (names are copied out, the WRITE payload is a view of the request buffer) and
starts its handler as an asyncio task; the task writes the reply with one ``write``/``writev``. So a
slow handler (a lock wait, a remote read) never delays a fast one (a cached ``getattr``).

Request buffers come from a small pool of ``bytearray`` s sized ``max_write + 4 KiB``; a buffer is
re-used for the next read right after decoding, except for WRITE whose payload view must stay valid
until the handler returns — then the reader takes another buffer from the pool.

Life cycle: `FuseServer.mount` opens the device and mounts (``mount(2)`` as root, ``fusermount3``
otherwise); `FuseServer.serve` runs the loop until the kernel ends the connection (unmount, DESTROY,
``ENODEV``), drains in-flight handlers and calls ``Operations.destroy``; `FuseServer.run` does both
and unmounts on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import ctypes.util
import errno
import io
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog

from jfs.adapters.fuse import protocol as p
from jfs.adapters.fuse.operations import (
    AttrOut,
    Buffer,
    ConnectionInfo,
    DirentSink,
    EntryOut,
    FileLock,
    OpenOut,
    Operations,
    ReadResult,
    RequestContext,
    SetattrRequest,
    StatFs,
)

log = structlog.get_logger("jfs.fuse")

MS_RDONLY: Final = 1
MS_NOSUID: Final = 2
MS_NODEV: Final = 4
MNT_DETACH: Final = 2
FUSERMOUNT: Final = "fusermount3"
_NS: Final = 1_000_000_000
_IOV_MAX: Final = 1024
_WRITE: Final = int(p.Opcode.WRITE)
_TASK: Final = "task"
_EAGER_TASK: Final = "eager-task"
_INLINE: Final = "inline"
_EAGER_START: Final = sys.version_info >= (3, 12)
_NOTIFY_REPLY: Final = int(p.Opcode.NOTIFY_REPLY)

Encoder = Callable[[int, Any], None]
Work = tuple[Awaitable[Any], Encoder | None]
Decoder = Callable[[int, RequestContext, bytearray, int], Work | None]


@dataclass(slots=True)
class MountOptions:
    """How to mount and what to negotiate at INIT. Cache timeouts are per reply (see `EntryOut`)."""

    fsname: str = "jfs"
    """Shown as the mount source in /proc/mounts and ``df``."""
    subtype: str = "jfs"
    """The file-system type is ``fuse.<subtype>``."""
    allow_other: bool | None = None
    """Let other users access the mount; default: when running as root (non-root needs
    ``user_allow_other`` in /etc/fuse.conf)."""
    default_permissions: bool = True
    """The kernel checks permissions against the mode bits (no ACCESS requests, no checks in the FS)."""
    read_only: bool = False
    max_write: int = 1 << 20
    """Largest WRITE payload (the kernel also caps it at ``max_pages`` pages, 256 = 1 MiB here)."""
    max_read: int = 1 << 20
    """Largest READ the kernel sends (``max_read`` mount option)."""
    max_readahead: int = 1 << 20
    """Upper bound we accept for the kernel's readahead window (it never goes above what it offers)."""
    read_ahead_kb: int | None = 1024
    """Kernel readahead window for this mount, written to ``/sys/class/bdi/<dev>/read_ahead_kb`` after
    INIT (root only; skipped otherwise). The kernel starts FUSE mounts at 128 KiB; 1024 (JuiceFS's
    value) lets sequential reads arrive as 1 MiB READs. ``None`` leaves the kernel's default."""
    max_background: int = 200
    congestion_threshold: int = 150
    writeback_cache: bool = False
    """Let the kernel cache writes (FUSE_WRITEBACK_CACHE); off by default, as in JuiceFS."""
    async_read: bool = True
    readdirplus: str = "auto"
    """"auto" (FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO), "always" or "never"."""
    posix_locks: bool = True
    flock_locks: bool = True
    parallel_dirops: bool = True
    auto_inval_data: bool = True
    """Drop cached pages when a GETATTR shows a changed mtime or size (another client wrote)."""
    cache_symlinks: bool = False
    """Let the kernel cache READLINK results (FUSE_CACHE_SYMLINKS)."""
    use_fusermount: bool | None = None
    """Mount via fusermount3 even as root (``None``: only when not root)."""
    extra_options: tuple[str, ...] = ()
    """More ``-o`` style options appended to the mount data (e.g. ``"blksize=4096"`` is fuseblk-only)."""
    debug: bool = False
    """Log every request and reply at debug level."""
    dispatch: str = "eager-task"
    """How a decoded request starts its handler:

    * ``"eager-task"`` (default): as an asyncio Task whose first step runs at once, inside the reader
      callback (Python 3.12's ``eager_start``; emulated on 3.11). A handler that never suspends is
      answered before the next request is read; one that suspends continues as an ordinary task.
      Saves a loop iteration per request and keeps full task semantics.
    * ``"task"``: an ordinary task, first run in the next loop iteration.
    * ``"inline"``: no Task until the handler first suspends (the fastest: no Task at all for
      requests answered from memory). Its synchronous prefix runs in a private contextvars copy but
      outside any task, so code that needs ``asyncio.current_task()`` before its first suspending
      ``await`` (``asyncio.timeout``, ``TaskGroup``) fails there: only for handlers known not to."""
    drain_timeout: float = 10.0
    """How long `serve` waits for in-flight handlers after the connection ended, before cancelling them."""
    stop_timeout: float = 10.0
    """After a stop request, how long to wait for the lazy unmount to end the connection (open files
    keep it alive) before aborting it."""
    pool_buffers: int = 16
    """How many idle request buffers to keep."""
    read_batch: int = 64
    """Requests read per readable event before yielding to the loop."""


LENT_BUFFERS = 32
"""Most WRITE buffers tracked while a handler keeps their data (beyond that they are simply dropped)."""


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


class _Libc:
    """The few libc calls Python does not expose (mount, umount2)."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                                   ctypes.c_char_p]
        self.lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None:
        if self.lib.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount {target}: {os.strerror(err)}")

    def umount2(self, target: str, flags: int) -> None:
        if self.lib.umount2(target.encode(), flags) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"umount {target}: {os.strerror(err)}")


_libc: _Libc | None = None


def libc() -> _Libc:
    global _libc
    if _libc is None:
        _libc = _Libc()
    return _libc


def mount_device(mountpoint: str) -> tuple[int, int] | None:
    """(major, minor) of the FUSE mount at `mountpoint` from /proc/self/mountinfo, without touching it."""
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8") as f:
        found = None
        for line in f:
            fields = line.split()
            if len(fields) > 4 and _unescape(fields[4]) == mountpoint:
                major, _, minor = fields[2].partition(":")
                found = (int(major), int(minor))
        return found  # the last one is the top of the stack
    return None


def _unescape(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def is_mounted(mountpoint: str | os.PathLike[str]) -> bool:
    """Whether a FUSE file system is mounted exactly at `mountpoint` (per /proc/self/mountinfo)."""
    return mount_device(os.path.abspath(mountpoint)) is not None


def unmount(mountpoint: str | os.PathLike[str], *, lazy: bool = True, fusermount: bool | None = None) -> None:
    """Unmount `mountpoint`: ``umount2`` as root, else ``fusermount3 -u [-z]``. Raises OSError."""
    target = os.path.abspath(mountpoint)
    if fusermount is None:
        fusermount = os.geteuid() != 0
    if not fusermount:
        libc().umount2(target, MNT_DETACH if lazy else 0)
        return
    args = [FUSERMOUNT, "-u"] + (["-z"] if lazy else []) + ["--", target]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(errno.EIO, f"{' '.join(args)}: {done.stderr.strip()}")


class _NotifyWriter:
    """Writes notifications that may block in the kernel from a thread of its own.

    INVAL_ENTRY and DELETE lock the parent directory in the kernel and INVAL_INODE with a page range
    locks pages; the request holding that lock may be waiting for a reply from this very loop, so
    writing them from the loop thread could deadlock the mount.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._queue: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="jfs-fuse-notify", daemon=True)
        self._thread.start()
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()

    def put(self, message: list[bytes]) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._queue.put(message)

    def _run(self) -> None:
        while True:
            message = self._queue.get()
            if message is None:
                return
            _write_notification(self._fd, message)
            with self._lock:
                self._pending -= 1
                if not self._pending:
                    self._idle.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)


def _write_notification(fd: int, message: list[bytes]) -> None:
    try:
        os.writev(fd, message)
    except OSError as exc:
        # ENOENT: the kernel does not have that inode/entry cached, nothing to invalidate.
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ENODEV):
            log.warning("fuse_notify_failed", errno=errno.errorcode.get(exc.errno or 0, exc.errno))


class FuseServer:
    """Serves one `Operations` at one mount point.

    Typical use::

        server = FuseServer(MyFs(), "/mnt/x", MountOptions(fsname="jfs:vol"))
        await server.run()          # mount, serve until unmounted or SIGTERM/SIGINT, clean up

    The server is also the file system's `Notifier` (``ConnectionInfo.notifier``): call
    `notify_inval_inode`, `notify_inval_entry` and `notify_delete` to drop what the kernel caches
    after a change it did not see (another client, a background job). All three may be called from
    inside any handler; they never block the loop.
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
        self._setxattr_ext = False
        self._proto_minor = 0
        self._kernel_flags = 0
        self._notifier: _NotifyWriter | None = None
        self._device: tuple[int, int] | None = None
        self._table: list[Decoder | None] = [None] * p.MAX_OPCODE
        self._install_decoders()
        if o.dispatch not in (_TASK, _EAGER_TASK, _INLINE):
            raise ValueError(f"dispatch must be task, eager-task or inline, not {o.dispatch!r}")
        self._mode = o.dispatch
        self._ready_queue: Any = None
        self._dispatch_one: Callable[[bytearray, int], bool] = self._dispatch_debug if o.debug else self._dispatch

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
            self.fd = await asyncio.to_thread(self._mount_fusermount)
            os.set_blocking(self.fd, False)
            self._via_fusermount = True
        else:
            self.fd = os.open("/dev/fuse", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                libc().mount(o.fsname, self.mountpoint, f"fuse.{o.subtype}", self._mount_flags(),
                             ",".join(self._mount_data()))
            except BaseException:
                os.close(self.fd)
                self.fd = -1
                raise
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
            self._mode = _TASK  # a loop without asyncio's ready queue (uvloop): plain tasks
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
            if self._notifier is not None:
                await asyncio.to_thread(self._notifier.close)
                self._notifier = None
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

    # ------------------------------------------------------------------ notifications

    def notify_inval_inode(self, ino: int, offset: int = -1, length: int = 0) -> None:
        """Drop the kernel's cached attributes of `ino` and, when ``offset >= 0``, its cached data in
        ``[offset, offset + length)`` (``length <= 0``: to the end).

        Attribute-only invalidation (the default) is written at once, so it takes effect before the
        reply of the handler calling it (e.g. unlink of one hard link: stat of another shows the new
        nlink). With a data range it is queued to a writer thread (the kernel may wait for pages
        locked by an in-flight READ) and takes effect shortly after.
        """
        if not self._can_notify(12):
            return
        body = p.NOTIFY_INVAL_INODE_OUT.pack(ino, offset, length)
        message = [p.OUT_HEADER.pack(p.OUT_HEADER_SIZE + len(body), p.NotifyCode.INVAL_INODE, 0) + body]
        if offset < 0:
            _write_notification(self.fd, message)
        else:
            self._notify_async(message)

    def notify_inval_entry(self, parent: int, name: bytes, *, expire_only: bool = False) -> None:
        """Drop the kernel's cached lookup of `name` in `parent` (also a cached negative lookup).

        `expire_only` marks it stale instead of unhashing it (kernels offering FUSE_HAS_EXPIRE_ONLY;
        otherwise a full invalidation is sent). Queued to the writer thread (the kernel locks the
        directory, which a request waiting on this loop may hold); takes effect shortly after.
        """
        if not self._can_notify(12):
            return
        flags = p.FUSE_EXPIRE_ONLY if expire_only and self._kernel_flags & p.FUSE_HAS_EXPIRE_ONLY else 0
        body = p.NOTIFY_INVAL_ENTRY_OUT.pack(parent, len(name), flags)
        total = p.OUT_HEADER_SIZE + len(body) + len(name) + 1
        self._notify_async([p.OUT_HEADER.pack(total, p.NotifyCode.INVAL_ENTRY, 0) + body, name + b"\0"])

    def notify_delete(self, parent: int, child: int, name: bytes) -> None:
        """Tell the kernel `name` (node `child`) left `parent`: the dentry is dropped and, if the child
        is cached, it is marked deleted (open files of a removed directory see it gone). Queued to the
        writer thread, like `notify_inval_entry`."""
        if not self._can_notify(18):
            return
        body = p.NOTIFY_DELETE_OUT.pack(parent, child, len(name), 0)
        total = p.OUT_HEADER_SIZE + len(body) + len(name) + 1
        self._notify_async([p.OUT_HEADER.pack(total, p.NotifyCode.DELETE, 0) + body, name + b"\0"])

    async def notifications_done(self, timeout: float | None = None) -> bool:
        """Wait until queued notifications have been written. Never await this inside a handler of a
        request on the same directory (the kernel would wait for that handler: deadlock)."""
        if self._notifier is None:
            return True
        return await asyncio.to_thread(self._notifier.wait_idle, timeout)

    def _can_notify(self, minor: int) -> bool:
        return self.fd >= 0 and self._ready.is_set() and self._proto_minor >= minor

    def _notify_async(self, message: list[bytes]) -> None:
        if self._notifier is None:
            self._notifier = _NotifyWriter(self.fd)
        self._notifier.put(message)

    # ------------------------------------------------------------------ mounting

    def _mount_flags(self) -> int:
        return MS_NOSUID | MS_NODEV | (MS_RDONLY if self.options.read_only else 0)

    def _common_options(self) -> list[str]:
        o = self.options
        opts = [f"max_read={o.max_read}"]
        if self._allow_other:
            opts.append("allow_other")
        if o.default_permissions:
            opts.append("default_permissions")
        opts.extend(o.extra_options)
        return opts

    def _mount_data(self) -> list[str]:
        return [f"fd={self.fd}", f"rootmode={stat.S_IFDIR:o}", f"user_id={os.getuid()}",
                f"group_id={os.getgid()}", *self._common_options()]

    def _mount_fusermount(self) -> int:
        """Mount through fusermount3 and receive the device fd over the _FUSE_COMMFD socket."""
        o = self.options
        opts = [f"fsname={o.fsname}", f"subtype={o.subtype}", "ro" if o.read_only else "rw", "nosuid", "nodev",
                *self._common_options()]
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with ours, theirs:
            env = dict(os.environ, _FUSE_COMMFD=str(theirs.fileno()))
            proc = subprocess.Popen([FUSERMOUNT, "-o", ",".join(opts), "--", self.mountpoint], env=env,
                                    pass_fds=(theirs.fileno(),), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            theirs.close()
            _, stderr = proc.communicate(timeout=60)
            if proc.returncode != 0:
                raise OSError(errno.EIO, f"fusermount3 failed: {stderr.strip()}")
            _, fds, _, _ = socket.recv_fds(ours, 1, 1)
        if not fds:
            raise OSError(errno.EIO, "fusermount3 sent no file descriptor")
        os.set_inheritable(fds[0], False)
        return fds[0]

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
            if wbuf is not None:
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

    def _e_empty(self, unique: int, _result: object) -> None:
        self._write(p.OUT_HEADER.pack(p.OUT_HEADER_SIZE, 0, unique))

    def _e_bytes(self, unique: int, data: Buffer) -> None:
        self._writev([p.OUT_HEADER.pack(p.OUT_HEADER_SIZE + len(data), 0, unique), data])

    def _e_read(self, unique: int, data: ReadResult) -> None:
        if type(data) is list:
            if len(data) >= _IOV_MAX:
                data = [b"".join(data)]
            size = 0
            for part in data:
                size += len(part)
            self._writev([p.OUT_HEADER.pack(p.OUT_HEADER_SIZE + size, 0, unique), *data])
        else:
            assert not isinstance(data, list)
            self._writev([p.OUT_HEADER.pack(p.OUT_HEADER_SIZE + len(data), 0, unique), data])

    def _e_attr(self, unique: int, out: AttrOut) -> None:
        a = out.attr
        t = out.timeout
        ts = int(t) if t > 0 else 0
        asec, ansec = divmod(a.atime_ns, _NS)
        msec, mnsec = divmod(a.mtime_ns, _NS)
        csec, cnsec = divmod(a.ctime_ns, _NS)
        self._write(p.HDR_ATTR_OUT.pack(
            p.HDR_ATTR_OUT.size, 0, unique, ts, int((t - ts) * 1e9) if t > 0 else 0, 0,
            a.ino, a.size, a.blocks, asec, msec, csec, ansec, mnsec, cnsec, a.mode, a.nlink, a.uid, a.gid,
            a.rdev, a.blksize, 0))

    def _e_entry(self, unique: int, e: EntryOut) -> None:
        a = e.attr
        et = e.entry_timeout
        at = e.attr_timeout
        es = int(et) if et > 0 else 0
        as_ = int(at) if at > 0 else 0
        asec, ansec = divmod(a.atime_ns, _NS)
        msec, mnsec = divmod(a.mtime_ns, _NS)
        csec, cnsec = divmod(a.ctime_ns, _NS)
        self._write(p.HDR_ENTRY_OUT.pack(
            p.HDR_ENTRY_OUT.size, 0, unique, e.ino, e.generation, es, as_,
            int((et - es) * 1e9) if et > 0 else 0, int((at - as_) * 1e9) if at > 0 else 0,
            a.ino, a.size, a.blocks, asec, msec, csec, ansec, mnsec, cnsec, a.mode, a.nlink, a.uid, a.gid,
            a.rdev, a.blksize, 0))

    def _e_create(self, unique: int, result: tuple[EntryOut, OpenOut]) -> None:
        entry, opened = result
        self._write(p.HDR_ENTRY_OPEN_OUT.pack(p.HDR_ENTRY_OPEN_OUT.size, 0, unique, *entry.pack_fields(),
                                              opened.fh, opened.flags, 0))

    def _e_open(self, unique: int, out: OpenOut) -> None:
        self._write(p.HDR_OPEN_OUT.pack(p.HDR_OPEN_OUT.size, 0, unique, out.fh, out.flags, 0))

    def _e_write(self, unique: int, count: int) -> None:
        self._write(p.HDR_WRITE_OUT.pack(p.HDR_WRITE_OUT.size, 0, unique, count, 0))

    def _e_statfs(self, unique: int, s: StatFs) -> None:
        self._write(p.HDR_STATFS_OUT.pack(p.HDR_STATFS_OUT.size, 0, unique, s.blocks, s.bfree, s.bavail,
                                          s.files, s.ffree, s.bsize, s.namelen, s.frsize, 0))

    def _e_lk(self, unique: int, lk: FileLock) -> None:
        self._write(p.HDR_LK_OUT.pack(p.HDR_LK_OUT.size, 0, unique, lk.start, lk.end, lk.type, lk.pid))

    def _e_lseek(self, unique: int, offset: int) -> None:
        self._write(p.HDR_LSEEK_OUT.pack(p.HDR_LSEEK_OUT.size, 0, unique, offset))

    # ------------------------------------------------------------------ decoders (one per opcode)

    def _install_decoders(self) -> None:
        op = p.Opcode
        table: dict[int, Decoder] = {
            op.INIT: self._d_init,
            op.DESTROY: self._d_destroy,
            op.INTERRUPT: self._d_interrupt,
            op.FORGET: self._d_forget,
            op.BATCH_FORGET: self._d_batch_forget,
            op.LOOKUP: self._d_lookup,
            op.GETATTR: self._d_getattr,
            op.SETATTR: self._d_setattr,
            op.READLINK: self._d_readlink,
            op.SYMLINK: self._d_symlink,
            op.MKNOD: self._d_mknod,
            op.MKDIR: self._d_mkdir,
            op.UNLINK: self._d_unlink,
            op.RMDIR: self._d_rmdir,
            op.RENAME: self._d_rename,
            op.RENAME2: self._d_rename2,
            op.LINK: self._d_link,
            op.OPEN: self._d_open,
            op.CREATE: self._d_create,
            op.READ: self._d_read,
            op.WRITE: self._d_write,
            op.STATFS: self._d_statfs,
            op.RELEASE: self._d_release,
            op.FSYNC: self._d_fsync,
            op.FLUSH: self._d_flush,
            op.SETXATTR: self._d_setxattr,
            op.GETXATTR: self._d_getxattr,
            op.LISTXATTR: self._d_listxattr,
            op.REMOVEXATTR: self._d_removexattr,
            op.OPENDIR: self._d_opendir,
            op.READDIR: self._d_readdir,
            op.READDIRPLUS: self._d_readdirplus,
            op.RELEASEDIR: self._d_releasedir,
            op.FSYNCDIR: self._d_fsyncdir,
            op.GETLK: self._d_getlk,
            op.SETLK: self._d_setlk,
            op.SETLKW: self._d_setlkw,
            op.ACCESS: self._d_access,
            op.FALLOCATE: self._d_fallocate,
            op.COPY_FILE_RANGE: self._d_copy_file_range,
            op.LSEEK: self._d_lseek,
        }
        for opcode, decoder in table.items():
            self._table[opcode] = decoder

    # --- connection

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
        self._proto_minor = minor
        self._kernel_flags = flags
        self._setxattr_ext = bool(agreed & p.FUSE_SETXATTR_EXT)
        max_pages = min(256, (o.max_write + 4095) // 4096)
        readahead = min(max_readahead, o.max_readahead)
        self.conn = ConnectionInfo(
            proto_major=major, proto_minor=minor, kernel_flags=flags, flags=agreed, max_write=o.max_write,
            max_read=o.max_read, max_readahead=readahead, max_pages=max_pages, max_background=o.max_background,
            congestion_threshold=o.congestion_threshold, time_gran=1, notifier=self)
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
        self._ready.set()
        self._device = mount_device(self.mountpoint)  # gone from mountinfo after a lazy unmount
        c = self.conn
        log.info("fuse_init", proto=f"{c.proto_major}.{c.proto_minor}", max_write=c.max_write,
                 max_readahead=c.max_readahead, flags=hex(c.flags), kernel_flags=hex(c.kernel_flags))
        if self.options.read_ahead_kb is not None:
            self._set_read_ahead(self.options.read_ahead_kb)

    def _set_read_ahead(self, kb: int) -> None:
        dev = self._device
        if dev is None or os.geteuid() != 0:
            return
        try:
            Path(f"/sys/class/bdi/{dev[0]}:{dev[1]}/read_ahead_kb").write_text(str(kb))
        except OSError as exc:
            log.warning("fuse_read_ahead_not_set", error=str(exc))

    def _d_destroy(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        return self._destroy(), self._e_empty

    async def _destroy(self) -> None:
        assert self._loop is not None
        self._loop.call_soon(self._end_connection)

    def _d_interrupt(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        (target,) = p.INTERRUPT_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        entry = self._inflight.get(target)
        if entry is not None and entry[1] in self._interruptible:
            entry[0].cancel()
        # No reply: the interrupted request's own reply (EINTR or its result) answers it; a request
        # not found here has already been answered.
        return None

    def _d_forget(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        (nlookup,) = p.FORGET_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.forget([(nodeid, nlookup)]), None

    def _d_batch_forget(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        count, _ = p.BATCH_FORGET_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        start = p.IN_HEADER_SIZE + p.BATCH_FORGET_IN.size
        items = list(p.FORGET_ONE.iter_unpack(memoryview(buf)[start:start + count * p.FORGET_ONE.size]))
        return self.ops.forget(items), None

    # --- names and attributes

    def _d_lookup(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE, n)
        return self.ops.lookup(ctx, nodeid, name), self._e_entry

    def _d_getattr(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        flags, _, fh = p.GETATTR_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.getattr(ctx, nodeid, fh if flags & p.FUSE_GETATTR_FH else None), self._e_attr

    def _d_setattr(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        (valid, _, fh, size, lock_owner, atime, mtime, ctime, atimensec, mtimensec, ctimensec, mode, _, uid,
         gid, _) = p.SETATTR_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        atime_now = bool(valid & p.FATTR_ATIME_NOW)
        mtime_now = bool(valid & p.FATTR_MTIME_NOW)
        req = SetattrRequest(
            valid,
            mode=mode & 0o7777 if valid & p.FATTR_MODE else None,
            uid=uid if valid & p.FATTR_UID else None,
            gid=gid if valid & p.FATTR_GID else None,
            size=size if valid & p.FATTR_SIZE else None,
            atime_ns=atime * _NS + atimensec if valid & p.FATTR_ATIME and not atime_now else None,
            mtime_ns=mtime * _NS + mtimensec if valid & p.FATTR_MTIME and not mtime_now else None,
            ctime_ns=ctime * _NS + ctimensec if valid & p.FATTR_CTIME else None,
            atime_now=atime_now,
            mtime_now=mtime_now,
            fh=fh if valid & p.FATTR_FH else None,
            lock_owner=lock_owner if valid & p.FATTR_LOCKOWNER else None,
            kill_suidgid=bool(valid & p.FATTR_KILL_SUIDGID),
        )
        return self.ops.setattr(ctx, nodeid, req), self._e_attr

    def _d_readlink(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        return self.ops.readlink(ctx, nodeid), self._e_bytes

    def _d_symlink(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        name, off = p.cstring(buf, p.IN_HEADER_SIZE, n)
        target, _ = p.cstring(buf, off, n)
        return self.ops.symlink(ctx, nodeid, name, target), self._e_entry

    def _d_mknod(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        mode, rdev, umask, _ = p.MKNOD_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE + p.MKNOD_IN.size, n)
        ctx.umask = umask
        return self.ops.mknod(ctx, nodeid, name, mode, rdev), self._e_entry

    def _d_mkdir(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        mode, umask = p.MKDIR_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE + p.MKDIR_IN.size, n)
        ctx.umask = umask
        return self.ops.mkdir(ctx, nodeid, name, stat.S_IFDIR | (mode & 0o7777)), self._e_entry

    def _d_unlink(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE, n)
        return self.ops.unlink(ctx, nodeid, name), self._e_empty

    def _d_rmdir(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE, n)
        return self.ops.rmdir(ctx, nodeid, name), self._e_empty

    def _d_rename(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        (newdir,) = p.RENAME_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        old, off = p.cstring(buf, p.IN_HEADER_SIZE + p.RENAME_IN.size, n)
        new, _ = p.cstring(buf, off, n)
        return self.ops.rename(ctx, nodeid, old, newdir, new, 0), self._e_empty

    def _d_rename2(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        newdir, flags, _ = p.RENAME2_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        old, off = p.cstring(buf, p.IN_HEADER_SIZE + p.RENAME2_IN.size, n)
        new, _ = p.cstring(buf, off, n)
        return self.ops.rename(ctx, nodeid, old, newdir, new, flags), self._e_empty

    def _d_link(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        (old,) = p.LINK_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE + p.LINK_IN.size, n)
        return self.ops.link(ctx, old, nodeid, name), self._e_entry

    # --- files

    def _d_open(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        flags, _ = p.OPEN_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.open(ctx, nodeid, flags), self._e_open

    def _d_create(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        flags, mode, umask, _ = p.CREATE_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE + p.CREATE_IN.size, n)
        ctx.umask = umask
        return self.ops.create(ctx, nodeid, name, mode, flags), self._e_create

    def _d_read(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, offset, size, _, _, _, _ = p.READ_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.read(ctx, nodeid, fh, offset, size), self._e_read

    def _d_write(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, offset, size, write_flags, _, _, _ = p.WRITE_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        data = memoryview(buf)[p.WRITE_DATA_OFFSET:p.WRITE_DATA_OFFSET + size]
        return self.ops.write(ctx, nodeid, fh, offset, data, write_flags), self._e_write

    def _d_statfs(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        return self.ops.statfs(ctx, nodeid), self._e_statfs

    def _d_release(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, flags, release_flags, lock_owner = p.RELEASE_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        owner = lock_owner if release_flags & p.FUSE_RELEASE_FLOCK_UNLOCK else None
        return self.ops.release(ctx, nodeid, fh, flags, owner), self._e_empty

    def _d_fsync(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, flags, _ = p.FSYNC_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.fsync(ctx, nodeid, fh, bool(flags & p.FUSE_FSYNC_FDATASYNC)), self._e_empty

    def _d_flush(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, _, _, lock_owner = p.FLUSH_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.flush(ctx, nodeid, fh, lock_owner), self._e_empty

    def _d_fallocate(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, offset, length, mode, _ = p.FALLOCATE_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.fallocate(ctx, nodeid, fh, offset, length, mode), self._e_empty

    def _d_copy_file_range(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh_in, off_in, nodeid_out, fh_out, off_out, length, flags = p.COPY_FILE_RANGE_IN.unpack_from(
            buf, p.IN_HEADER_SIZE)
        return (self.ops.copy_file_range(ctx, nodeid, fh_in, off_in, nodeid_out, fh_out, off_out, length, flags),
                self._e_write)

    def _d_lseek(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, offset, whence, _ = p.LSEEK_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.lseek(ctx, nodeid, fh, offset, whence), self._e_lseek

    # --- xattrs

    def _d_setxattr(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        if self._setxattr_ext:
            size, flags, _, _ = p.SETXATTR_IN.unpack_from(buf, p.IN_HEADER_SIZE)
            off = p.IN_HEADER_SIZE + p.SETXATTR_IN.size
        else:
            size, flags = p.SETXATTR_IN_COMPAT.unpack_from(buf, p.IN_HEADER_SIZE)
            off = p.IN_HEADER_SIZE + p.SETXATTR_IN_COMPAT.size
        name, off = p.cstring(buf, off, n)
        if off + size > n:
            raise OSError(errno.EINVAL, "xattr value beyond the request")
        value = bytes(buf[off:off + size])
        return self.ops.setxattr(ctx, nodeid, name, value, flags), self._e_empty

    def _d_getxattr(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        size, _ = p.GETXATTR_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE + p.GETXATTR_IN.size, n)
        return self._getxattr(ctx, nodeid, name, size), self._e_bytes

    async def _getxattr(self, ctx: RequestContext, ino: int, name: bytes, size: int) -> bytes:
        return _sized(await self.ops.getxattr(ctx, ino, name), size)

    def _d_listxattr(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        size, _ = p.GETXATTR_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self._listxattr(ctx, nodeid, size), self._e_bytes

    async def _listxattr(self, ctx: RequestContext, ino: int, size: int) -> bytes:
        names = await self.ops.listxattr(ctx, ino)
        return _sized(b"".join(name + b"\0" for name in names), size)

    def _d_removexattr(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE, n)
        return self.ops.removexattr(ctx, nodeid, name), self._e_empty

    # --- directories

    def _d_opendir(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        flags, _ = p.OPEN_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.opendir(ctx, nodeid, flags), self._e_open

    def _d_readdir(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, offset, size, _, _, _, _ = p.READ_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self._readdir(ctx, nodeid, fh, offset, DirentSink(size, False)), self._e_bytes

    def _d_readdirplus(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, offset, size, _, _, _, _ = p.READ_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self._readdir(ctx, nodeid, fh, offset, DirentSink(size, True)), self._e_bytes

    async def _readdir(self, ctx: RequestContext, ino: int, fh: int, offset: int, sink: DirentSink) -> bytearray:
        await self.ops.readdir(ctx, ino, fh, offset, sink)
        return sink.payload

    def _d_releasedir(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, _, _, _ = p.RELEASE_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.releasedir(ctx, nodeid, fh), self._e_empty

    def _d_fsyncdir(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, flags, _ = p.FSYNC_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.fsyncdir(ctx, nodeid, fh, bool(flags & p.FUSE_FSYNC_FDATASYNC)), self._e_empty

    # --- file system, permissions, locks

    def _d_access(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        mask, _ = p.ACCESS_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.access(ctx, nodeid, mask), self._e_empty

    def _d_getlk(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, owner, start, end, typ, pid, _, _ = p.LK_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.getlk(ctx, nodeid, fh, owner, FileLock(start, end, typ, pid)), self._e_lk

    def _d_setlk(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        return self._setlk(nodeid, ctx, buf, False)

    def _d_setlkw(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        return self._setlk(nodeid, ctx, buf, True)

    def _setlk(self, nodeid: int, ctx: RequestContext, buf: bytearray, sleep: bool) -> Work:
        fh, owner, start, end, typ, pid, lk_flags, _ = p.LK_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        if lk_flags & p.FUSE_LK_FLOCK:
            return self.ops.flock(ctx, nodeid, fh, owner, typ, sleep), self._e_empty
        return self.ops.setlk(ctx, nodeid, fh, owner, FileLock(start, end, typ, pid), sleep), self._e_empty


def _sized(value: bytes, size: int) -> bytes:
    """The GETXATTR/LISTXATTR answer for a caller buffer of `size` bytes (0: it only asks the size)."""
    if size == 0:
        return p.GETXATTR_OUT.pack(len(value), 0)
    if len(value) > size:
        raise OSError(errno.ERANGE, "buffer too small")
    return value


def _opname(opcode: int) -> str:
    try:
        return p.Opcode(opcode).name
    except ValueError:
        return str(opcode)

"""Kernel cache invalidations: the unsolicited FUSE notifications a file system sends to the kernel.

`KernelNotifier` is the `Notifier` a file system gets in ``ConnectionInfo.notifier``. Notifications that
may block in the kernel go through a writer thread of their own (`_NotifyWriter`).
"""

from __future__ import annotations

import asyncio
import errno
import os
import queue
import threading

import structlog

from jfs.adapters.fuse import protocol as p

log = structlog.get_logger("jfs.fuse")


class KernelNotifier:
    """Sends cache invalidations over one FUSE connection: `notify_inval_inode`, `notify_inval_entry`
    and `notify_delete` drop what the kernel caches after a change it did not see (another client, a
    background job). All three may be called from inside any handler; they never block the loop.

    Silent until `open` (the server calls it once INIT is answered) and after `close`; each
    notification is also dropped when the negotiated protocol minor is too old for it.
    """

    def __init__(self) -> None:
        self._fd = -1
        self._proto_minor = 0
        self._kernel_flags = 0
        self._writer: _NotifyWriter | None = None

    def open(self, fd: int, proto_minor: int, kernel_flags: int) -> None:
        """Start notifying over device `fd`, with what INIT negotiated."""
        self._fd = fd
        self._proto_minor = proto_minor
        self._kernel_flags = kernel_flags

    async def close(self) -> None:
        """Write what is queued, stop the writer thread and go silent (before the device fd is closed)."""
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)
            self._writer = None
        self._fd = -1

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
            _write_notification(self._fd, message)
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
        if self._writer is None:
            return True
        return await asyncio.to_thread(self._writer.wait_idle, timeout)

    def _can_notify(self, minor: int) -> bool:
        return self._fd >= 0 and self._proto_minor >= minor

    def _notify_async(self, message: list[bytes]) -> None:
        if self._writer is None:
            self._writer = _NotifyWriter(self._fd)
        self._writer.put(message)


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

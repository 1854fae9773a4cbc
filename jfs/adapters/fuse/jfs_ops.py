"""The jfs file system served over FUSE: translates kernel requests into metadata-engine and data-path
calls. It holds no file-system rules of its own — only kernel-facing concerns: attribute and entry cache
timeouts, kernel cache invalidation after local changes, directory-handle offsets, file handles, the lock
owners a close must release, and the virtual files of the root."""

from __future__ import annotations

import asyncio
import errno
import functools
import itertools
import os
import stat
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

import structlog

from jfs.adapters.fuse.operations import (
    Attr,
    AttrOut,
    ConnectionInfo,
    DirentSink,
    EntryOut,
    FileLock,
    Notifier,
    OpenOut,
    Operations,
    ReadResult,
    RequestContext,
    SetattrRequest,
    StatFs,
)
from jfs.adapters.fuse.protocol import split_timeout
from jfs.app import tools
from jfs.app.data.files import DataPath, Handle
from jfs.app.info import inode_info
from jfs.app.internal import BY_INODE, CONTROL_INODE, INTERNAL, TRASH_NAME, AccessLog, Stats, render_config
from jfs.app.meta import Ctx, Meta
from jfs.app.meta.readdir import Entry
from jfs.app.meta.setattr import NOW, SetAttr
from jfs.app.metrics import layer_gauges
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, FileType
from jfs.domain.attrs import Attr as JAttr
from jfs.domain.errors import FSError
from jfs.domain.locks import F_UNLCK, MAX_END
from jfs.ports.kv import KVError

log = structlog.get_logger("jfs.fuse")
T = TypeVar("T")
P = ParamSpec("P")

_UNSERVED_XATTRS = (b"security.", b"system.posix_acl_")
SEEK_DATA = 3
SEEK_HOLE = 4


def _stale_when_gone(
    method: Callable[Concatenate[JfsOperations, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[JfsOperations, P], Coroutine[Any, Any, T]]:
    """Answer ESTALE instead of ENOENT from an operation addressed to inodes (the request's node, the
    source of a link, the parent of a new name): ENOENT there means such an inode is gone — removed
    by another client while this kernel still caches a name for it. ESTALE makes the kernel's path
    walk retry once with LOOKUP_REVAL (open, stat, access, chmod, mkdir, ... all do), so the cached
    name is looked up again and the caller gets the present answer (the new file, or ENOENT from the
    fresh lookup) instead of an error for a file it never saw deleted. On an open descriptor, where
    there is no path to retry, the caller gets ESTALE, as from NFS."""

    @functools.wraps(method)
    async def run(ops: JfsOperations, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(ops, *args, **kwargs)
        except FileNotFoundError:
            raise FSError(errno.ESTALE) from None

    return run


@dataclass(frozen=True, slots=True)
class MountConfig:
    attr_timeout: float = 1.0
    entry_timeout: float = 1.0
    dir_entry_timeout: float = 1.0
    negative_timeout: float = 0.0
    enable_xattr: bool = False
    permission_checks: bool = False
    """Check permissions in jfs too (off when the kernel does it with ``default_permissions``)."""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class _DirHandle:
    entries: list[Entry] = field(default_factory=list)
    cursor: bytes | None = b""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


NAMES_SWEEP = 4096
"""Names recorded between two sweeps of the expired ones (`JfsOperations._named`)."""
NOTIFY_WAIT = 5.0
"""Longest wait, in seconds, for the kernel to take the invalidations before a lock is answered."""

KEEP_WRITE_BUFFER_MIN = 512 << 10
"""WRITE payloads at least this long are kept without a copy (at most 2x the bytes pinned, for 1 MiB
request buffers)."""


class JfsOperations(Operations):
    """FUSE operations of one jfs mount."""

    keeps_write_data = True  # WRITE payloads go into the page lists as they are (no copy on the loop)

    def __init__(self, meta: Meta, data: DataPath, config: MountConfig | None = None) -> None:
        self.meta = meta
        self.data = data
        self.config = config or MountConfig()
        self.notifier: Notifier | None = None
        self.stats = Stats()
        self.accesslog = AccessLog()
        self._files: dict[int, Handle] = {}
        self._dirs: dict[int, _DirHandle] = {}
        self._internal: dict[int, bytes] = {}
        self._control: dict[int, bytearray] = {}
        self._control_who: dict[int, Ctx] = {}  # who wrote each pending request: requests run as that user
        self._fh = itertools.count(1)
        self._plock_owners: set[tuple[int, int]] = set()
        self._flock_owners: set[tuple[int, int]] = set()
        self._opened: dict[int, tuple[int, int]] = {}  # ino -> (mtime, length) seen at the last open
        self._names: dict[int, dict[bytes, float]] = {}  # parent -> name -> when the kernel's entry expires
        self._names_added = 0

    # ------------------------------------------------------------------ plumbing

    async def init(self, conn: ConnectionInfo) -> None:
        self.notifier = conn.notifier

    def _ctx(self, rc: RequestContext) -> Ctx:
        return Ctx(uid=rc.uid, gid=rc.gid, pid=rc.pid, umask=rc.umask, check=self.config.permission_checks)

    async def _timed(self, op: str, rc: RequestContext | None, args: str, call: Awaitable[T]) -> T:
        start = time.perf_counter()
        status = "OK"
        try:
            return await call
        except OSError as exc:
            status = os.strerror(exc.errno or errno.EIO)
            raise
        except KVError as exc:  # the engine is unreachable, or a commit's outcome is unknown: EIO, one line
            status = os.strerror(errno.EIO)
            log.error("meta_engine_failed", op=op, error=str(exc))
            raise FSError(errno.EIO, str(exc)) from None
        finally:
            elapsed = time.perf_counter() - start
            self.stats.record(op, elapsed, status != "OK")
            if self.accesslog.active and rc is not None:
                self.accesslog.log(rc.uid, rc.gid, rc.pid, op, args, status, elapsed)

    def _size(self, ino: int, a: JAttr) -> int:
        """st_size: a file's length including what this mount wrote and did not commit yet."""
        if a.typ is FileType.REGULAR:
            local = self.data.file_length(ino)
            return local if local is not None and local > a.length else a.length
        return 4096 if a.typ is FileType.DIRECTORY else a.length

    def _attr(self, ino: int, a: JAttr) -> Attr:
        size = self._size(ino, a)
        return Attr(
            ino, a.st_mode, nlink=a.nlink, uid=a.uid, gid=a.gid, rdev=a.rdev, size=size,
            blksize=65536, atime_ns=a.atime_ns, mtime_ns=a.mtime_ns, ctime_ns=a.ctime_ns,
        )

    def _named(self, parent: int, name: bytes, timeout: float) -> None:
        """Remember that the kernel may cache `name` in `parent` for `timeout` seconds (see `_locked`)."""
        if timeout <= 0:
            return
        names = self._names.get(parent)
        if names is None:
            names = self._names[parent] = {}
        names[name] = time.monotonic() + timeout
        self._names_added += 1
        if self._names_added >= NAMES_SWEEP:
            self._names_added = 0
            now = time.monotonic()
            for p in list(self._names):
                live = {n: t for n, t in self._names[p].items() if t > now}
                if live:
                    self._names[p] = live
                else:
                    del self._names[p]

    def _entry(self, ino: int, a: JAttr) -> EntryOut:
        timeout = self.config.dir_entry_timeout if a.typ is FileType.DIRECTORY else self.config.entry_timeout
        return EntryOut(ino, self._attr(ino, a), generation=1, entry_timeout=timeout,
                        attr_timeout=self.config.attr_timeout)

    def _entry_fields(self, ino: int, a: JAttr) -> tuple[int, ...]:
        """``self._entry(ino, a).pack_fields()`` without building the objects (every entry of a listing)."""
        size = self._size(ino, a)
        es, ens = split_timeout(self.config.dir_entry_timeout if a.typ is FileType.DIRECTORY
                                else self.config.entry_timeout)  # fmt: skip
        as_, ans = split_timeout(self.config.attr_timeout)
        asec, ansec = divmod(a.atime_ns, 1_000_000_000)
        msec, mnsec = divmod(a.mtime_ns, 1_000_000_000)
        csec, cnsec = divmod(a.ctime_ns, 1_000_000_000)
        return (ino, 1, es, as_, ens, ans, ino, size, (size + 511) >> 9, asec, msec, csec, ansec, mnsec, cnsec,
                a.st_mode, a.nlink, a.uid, a.gid, a.rdev, 65536, 0)  # fmt: skip

    def _internal_attr(self, ino: int) -> Attr:
        mode = 0o666 if ino == CONTROL_INODE else BY_INODE[ino].mode
        now = time.time_ns()
        return Attr(ino, stat.S_IFREG | mode, nlink=1, size=0, atime_ns=now, mtime_ns=now, ctime_ns=now)

    def _invalidate(self, ino: int, *, data: bool = False) -> None:
        """Drop the kernel's cached attributes of `ino` (e.g. nlink after a local unlink of another name),
        and with `data` its cached pages too (asynchronously)."""
        if self.notifier is not None and ino:
            try:
                self.notifier.notify_inval_inode(ino, 0 if data else -1, 0)
            except OSError:
                pass

    # Locks order this client's view of a file against other clients (as NFS does): what a lock holder
    # wrote is committed before the lock is released, and a lock just taken revalidates what this client
    # and its kernel cache, so the writes of the previous holder — on any client — are seen at once.

    async def _unlocking(self, ino: int) -> None:
        await self.data.publish(ino)

    async def _locked(self, ino: int) -> None:
        await self.data.refresh(ino)
        self._invalidate(ino)
        await self._expire_names(self.data.parent_of(ino))

    async def _expire_names(self, parent: int | None) -> None:
        """Expire the names this mount handed the kernel in `parent` (the directory of a file just locked)
        that it may still cache, and wait until the kernel has them: the previous lock holder, on another
        client, may have removed or replaced them — as SQLite's rollback journal next to its database.
        A cached name of a removed file would otherwise be opened without a lookup; jfs answers ESTALE
        then and the kernel retries the walk, but only once, and the retry may meet the next removal."""
        if parent is None or self.notifier is None:
            return
        names = self._names.pop(parent, None)
        if not names:
            return
        now = time.monotonic()
        live = [name for name, until in names.items() if until > now]
        if not live:
            return
        for name in live:
            self.notifier.notify_inval_entry(parent, name, expire_only=True)
        await self.notifier.notifications_done(NOTIFY_WAIT)

    # ------------------------------------------------------------------ names

    async def lookup(self, ctx: RequestContext, parent: int, name: bytes) -> EntryOut:
        if name == b".control":
            return EntryOut(CONTROL_INODE, self._internal_attr(CONTROL_INODE), generation=1, entry_timeout=3600,
                            attr_timeout=3600)
        if parent == ROOT_INODE:
            f = INTERNAL.get(name)
            if f is not None:
                return EntryOut(f.ino, self._internal_attr(f.ino), generation=1, entry_timeout=3600,
                                attr_timeout=3600)
        try:
            ino, attr = await self._timed("lookup", ctx, f"{parent},{name!r}",
                                          self.meta.lookup(parent, name, self._ctx(ctx)))
        except FileNotFoundError:
            if self.config.negative_timeout > 0:
                return EntryOut.negative(self.config.negative_timeout)
            raise
        out = self._entry(ino, attr)
        self._named(parent, name, out.entry_timeout)
        return out

    @_stale_when_gone
    async def getattr(self, ctx: RequestContext, ino: int, fh: int | None) -> AttrOut:
        if ino in INTERNAL_INODES:
            return AttrOut(self._internal_attr(ino), 3600)
        attr = await self._timed("getattr", ctx, str(ino), self.meta.getattr(ino))
        return AttrOut(self._attr(ino, attr), self.config.attr_timeout)

    @_stale_when_gone
    async def setattr(self, ctx: RequestContext, ino: int, req: SetattrRequest) -> AttrOut:
        if ino in INTERNAL_INODES:
            raise FSError(errno.EPERM)

        async def run() -> JAttr:
            c = self._ctx(ctx)
            attr: JAttr | None = None
            if req.size is not None:
                attr = await self.data.truncate(ino, req.size, c)
            change = SetAttr(
                mode=None if req.mode is None else req.mode & 0o7777,
                uid=req.uid,
                gid=req.gid,
                atime=NOW if req.atime_now else req.atime_ns,
                mtime=NOW if req.mtime_now else req.mtime_ns,
            )
            if any(v is not None for v in (change.mode, change.uid, change.gid, change.atime, change.mtime)):
                attr = await self.meta.setattr(ino, change, c)
            if attr is None:
                attr = await self.meta.getattr(ino)
            return attr

        attr = await self._timed("setattr", ctx, f"{ino},{req!r}", run())
        return AttrOut(self._attr(ino, attr), self.config.attr_timeout)

    @_stale_when_gone
    async def readlink(self, ctx: RequestContext, ino: int) -> bytes:
        return await self._timed("readlink", ctx, str(ino), self.meta.readlink(ino))

    @_stale_when_gone
    async def mknod(self, ctx: RequestContext, parent: int, name: bytes, mode: int, rdev: int) -> EntryOut:
        typ = FileType.from_mode(mode)
        if typ in (FileType.DIRECTORY, FileType.SYMLINK):
            raise FSError(errno.EINVAL)
        ino, attr = await self._timed("mknod", ctx, f"{parent},{name!r},{mode:o}",
                                      self.meta.mknod(parent, name, typ, mode & 0o7777, self._ctx(ctx), rdev=rdev))
        out = self._entry(ino, attr)
        self._named(parent, name, out.entry_timeout)
        return out

    @_stale_when_gone
    async def mkdir(self, ctx: RequestContext, parent: int, name: bytes, mode: int) -> EntryOut:
        ino, attr = await self._timed("mkdir", ctx, f"{parent},{name!r},{mode:o}",
                                      self.meta.mkdir(parent, name, mode & 0o7777, self._ctx(ctx)))
        out = self._entry(ino, attr)
        self._named(parent, name, out.entry_timeout)
        return out

    @_stale_when_gone
    async def symlink(self, ctx: RequestContext, parent: int, name: bytes, target: bytes) -> EntryOut:
        ino, attr = await self._timed("symlink", ctx, f"{parent},{name!r}",
                                      self.meta.symlink(parent, name, target, self._ctx(ctx)))
        out = self._entry(ino, attr)
        self._named(parent, name, out.entry_timeout)
        return out

    @_stale_when_gone
    async def link(self, ctx: RequestContext, ino: int, new_parent: int, new_name: bytes) -> EntryOut:
        attr = await self._timed("link", ctx, f"{ino},{new_parent},{new_name!r}",
                                 self.meta.link(ino, new_parent, new_name, self._ctx(ctx)))
        out = self._entry(ino, attr)
        self._named(new_parent, new_name, out.entry_timeout)
        return out

    async def unlink(self, ctx: RequestContext, parent: int, name: bytes) -> None:
        ino, attr = await self._timed("unlink", ctx, f"{parent},{name!r}",
                                      self.meta.unlink(parent, name, self._ctx(ctx)))
        if attr.nlink:
            self._invalidate(ino)  # other names of a hard-linked file must show the new nlink at once

    async def rmdir(self, ctx: RequestContext, parent: int, name: bytes) -> None:
        await self._timed("rmdir", ctx, f"{parent},{name!r}", self.meta.rmdir(parent, name, self._ctx(ctx)))

    async def rename(self, ctx: RequestContext, parent: int, name: bytes, new_parent: int, new_name: bytes,
                     flags: int) -> None:
        _, _, victim = await self._timed(
            "rename", ctx, f"{parent},{name!r},{new_parent},{new_name!r},{flags}",
            self.meta.rename_ex(parent, name, new_parent, new_name, flags, self._ctx(ctx)))
        self._invalidate(victim)

    # ------------------------------------------------------------------ files

    def _handle(self, fh: int) -> Handle:
        h = self._files.get(fh)
        if h is None:
            raise FSError(errno.EBADF)
        return h

    @_stale_when_gone
    async def open(self, ctx: RequestContext, ino: int, flags: int) -> OpenOut:
        if ino in INTERNAL_INODES:
            return self._open_internal(ino)
        h = await self._timed("open", ctx, f"{ino},{flags:o}", self.data.open(ino, flags, self._ctx(ctx)))
        self._files[h.fh] = h
        attr = await self.meta.getattr(ino)
        seen = (attr.mtime_ns, attr.length)
        keep = self._opened.get(ino) == seen and not flags & os.O_TRUNC
        self._opened[ino] = seen
        return OpenOut(h.fh, keep_cache=keep)

    def _open_internal(self, ino: int) -> OpenOut:
        fh = -next(self._fh)
        if ino == CONTROL_INODE:
            self._control[fh] = bytearray()
        elif ino == BY_INODE_STATS:
            extra = {"jfs_used_space_bytes": float(self.meta._used_space), "jfs_used_inodes": float(self.meta._used_inodes)}
            extra.update(layer_gauges(self.meta, self.data))
            self._internal[fh] = self.stats.render(extra)
        elif ino == BY_INODE_CONFIG:
            self._internal[fh] = render_config(self.meta.settings.to_dict(mask_secrets=True), self.config.options)
        else:
            self.accesslog.open(fh)
        return OpenOut(fh & 0xFFFFFFFFFFFFFFFF, direct_io=True)

    @_stale_when_gone
    async def create(self, ctx: RequestContext, parent: int, name: bytes, mode: int,
                     flags: int) -> tuple[EntryOut, OpenOut]:
        c = self._ctx(ctx)

        async def run() -> tuple[int, JAttr, Handle]:
            ino, attr = await self.meta.mknod(parent, name, FileType.REGULAR, mode & 0o7777, c)
            h = await self.data.open(ino, flags & ~os.O_TRUNC, Ctx(uid=c.uid, gid=c.gid, check=False), created=attr)
            return ino, attr, h

        ino, attr, h = await self._timed("create", ctx, f"{parent},{name!r},{mode:o}", run())
        self._files[h.fh] = h
        self._opened[ino] = (attr.mtime_ns, attr.length)
        out = self._entry(ino, attr)
        self._named(parent, name, out.entry_timeout)
        return out, OpenOut(h.fh)

    @_stale_when_gone
    async def read(self, ctx: RequestContext, ino: int, fh: int, offset: int, size: int) -> ReadResult:
        if ino in INTERNAL_INODES:
            return await self._read_internal(fh, offset, size)
        return await self._timed("read", None, "", self.data.read_buffer(self._handle(fh), offset, size))

    async def _read_internal(self, fh: int, offset: int, size: int) -> bytes:
        key = fh - (1 << 64) if fh >= 1 << 63 else fh
        if key in self._control:
            who = self._control_who.pop(key, Ctx(uid=65534, gid=65534, check=True))
            self._internal[key] = await self._answer(bytes(self._control.pop(key)), who)
        if key in self._internal:
            return self._internal[key][offset:offset + size]
        return await self.accesslog.read(key, size)

    async def _answer(self, request: bytes, who: Ctx) -> bytes:
        """Serve one `.control` request: JSON ``{"op": "info", "inode": N, "recursive": bool}``."""
        import json

        try:
            req = json.loads(request or b"{}")
            op = req.get("op")
            if op == "info":
                doc = await inode_info(self.meta, int(req["inode"]), recursive=bool(req.get("recursive", True)))
            elif op == "summary":
                doc = await tools.summary_tree(self.meta, int(req["inode"]), str(req.get("name", "")),
                                               depth=int(req.get("depth", 2)), entries=int(req.get("entries", 10)))
            elif op == "rmr":
                doc = await self._rmr(int(req["parent"]), os.fsencode(str(req["name"])), int(req.get("threads", 16)),
                                      who)
            elif op == "warmup":
                doc = await tools.warmup(self.meta, self.data, [int(i) for i in req["inodes"]],
                                         threads=int(req.get("threads", 16)))
            else:
                raise ValueError(f"unknown request {op!r}")
        except OSError as exc:
            doc = {"error": os.strerror(exc.errno or errno.EIO), "errno": exc.errno}
        except (ValueError, KeyError, TypeError) as exc:
            doc = {"error": f"bad request: {exc}", "errno": errno.EINVAL}
        return json.dumps(doc).encode()

    async def _rmr(self, parent: int, name: bytes, threads: int, who: Ctx) -> dict[str, Any]:
        """`.control` op ``rmr``: remove `name` in `parent` recursively, then drop the kernel's entry."""
        if not name or name in (b".", b"..") or b"/" in name or (parent == ROOT_INODE and name in INTERNAL):
            raise FSError(errno.EINVAL)
        doc = await tools.remove_tree(self.meta, parent, name, threads=threads, ctx=who)
        if self.notifier is not None:
            try:
                self.notifier.notify_delete(parent, doc["inode"], name)
            except OSError:
                pass
            self._invalidate(parent)
        return doc

    @_stale_when_gone
    async def write(self, ctx: RequestContext, ino: int, fh: int, offset: int, data: memoryview,
                    write_flags: int) -> int:
        if ino == CONTROL_INODE:
            key = fh - (1 << 64) if fh >= 1 << 63 else fh
            buf = self._control.setdefault(key, bytearray())
            self._control_who[key] = _caller(ctx)
            buf += data
            self._internal.pop(key, None)
            return len(data)
        if ino in INTERNAL_INODES:
            raise FSError(errno.EPERM)
        h = self._handle(fh)
        if h.flags & os.O_APPEND:
            # The kernel puts an O_APPEND write at the end of file it has cached, which may predate another
            # client's appends (made under a lock this client now holds): append at the real end instead.
            end = self.data.file_length(ino)
            if end is not None and end > offset:
                offset = end
                self._invalidate(ino, data=True)  # the kernel copied the bytes into its cache elsewhere
        # A big payload is kept as a view of the request buffer (the server hands the buffer over); a small
        # one is copied, or it would pin a whole request buffer (max_write bytes) for a few bytes.
        owned = len(data) >= KEEP_WRITE_BUFFER_MIN
        return await self._timed("write", None, "", self.data.write(h, offset, data if owned else bytes(data),
                                                                    owned=owned))

    @_stale_when_gone
    async def flush(self, ctx: RequestContext, ino: int, fh: int, lock_owner: int) -> None:
        if ino in INTERNAL_INODES:
            return
        try:
            await self._timed("flush", ctx, str(ino), self.data.flush(self._handle(fh)))
        finally:  # the POSIX locks of the closing owner go after its writes are committed
            if (ino, lock_owner) in self._plock_owners:
                self._plock_owners.discard((ino, lock_owner))
                await self.meta.setlk(ino, lock_owner, F_UNLCK, 0, MAX_END, ctx.pid)

    async def release(self, ctx: RequestContext, ino: int, fh: int, flags: int, flock_owner: int | None) -> None:
        if ino in INTERNAL_INODES:
            key = fh - (1 << 64) if fh >= 1 << 63 else fh
            self._internal.pop(key, None)
            self._control.pop(key, None)
            self._control_who.pop(key, None)
            self.accesslog.close(key)
            return
        h = self._files.pop(fh, None)
        try:
            if h is not None:
                await self._timed("release", ctx, str(ino), self.data.release(h))
        finally:  # the flock goes after the writes are committed
            if flock_owner is not None and (ino, flock_owner) in self._flock_owners:
                self._flock_owners.discard((ino, flock_owner))
                await self.meta.flock(ino, flock_owner, "U")

    @_stale_when_gone
    async def fsync(self, ctx: RequestContext, ino: int, fh: int, datasync: bool) -> None:
        if ino in INTERNAL_INODES:
            return
        await self._timed("fsync", ctx, str(ino), self.data.fsync(self._handle(fh), datasync))

    @_stale_when_gone
    async def fallocate(self, ctx: RequestContext, ino: int, fh: int, offset: int, length: int, mode: int) -> None:
        await self._timed("fallocate", ctx, f"{ino},{offset},{length},{mode}",
                          self.data.fallocate(ino, mode, offset, length, self._ctx(ctx)))

    @_stale_when_gone
    async def copy_file_range(self, ctx: RequestContext, ino_in: int, fh_in: int, off_in: int, ino_out: int,
                              fh_out: int, off_out: int, length: int, flags: int) -> int:
        n, _ = await self._timed("copy_file_range", ctx, f"{ino_in},{off_in},{ino_out},{off_out},{length}",
                                 self.data.copy_file_range(ino_in, off_in, ino_out, off_out, length, flags,
                                                           self._ctx(ctx)))
        return n

    @_stale_when_gone
    async def lseek(self, ctx: RequestContext, ino: int, fh: int, offset: int, whence: int) -> int:
        attr = await self.meta.getattr(ino)
        length = max(attr.length, self.data.file_length(ino) or 0)
        if offset >= length:
            raise FSError(errno.ENXIO)
        # Holes are reported only at the end of the file (allowed by POSIX: data may be reported anywhere).
        return offset if whence == SEEK_DATA else length

    # ------------------------------------------------------------------ directories

    @_stale_when_gone
    async def opendir(self, ctx: RequestContext, ino: int, flags: int) -> OpenOut:
        attr = await self._timed("opendir", ctx, str(ino), self.meta.getattr(ino))
        if attr.typ is not FileType.DIRECTORY:
            raise FSError(errno.ENOTDIR)
        fh = next(self._fh)
        self._dirs[fh] = _DirHandle()
        return OpenOut(fh)

    @_stale_when_gone
    async def readdir(self, ctx: RequestContext, ino: int, fh: int, offset: int, out: DirentSink) -> None:
        d = self._dirs.get(fh)
        if d is None:
            raise FSError(errno.EBADF)
        async with d.lock:
            await self._readdir(ctx, ino, d, offset, out)

    async def _readdir(self, ctx: RequestContext, ino: int, d: _DirHandle, offset: int, out: DirentSink) -> None:
        # Offsets: 1 = ".", 2 = "..", 3.. = position in the handle's entry list (+ virtual root entries).
        if offset == 0:
            if not out.add(b".", ino, stat.S_IFDIR, 1):
                return
            offset = 1
        if offset == 1:
            parent = ROOT_INODE
            if ino != ROOT_INODE:
                parent = (await self.meta.getattr(ino)).parent or ROOT_INODE
            if not out.add(b"..", parent, stat.S_IFDIR, 2):
                return
            offset = 2
        extras: list[tuple[bytes, int, int]] = []
        if ino == ROOT_INODE:
            extras = [(f.name, f.ino, stat.S_IFREG) for f in INTERNAL.values()] + [(TRASH_NAME, TRASH_INODE, stat.S_IFDIR)]
        i = offset - 2
        while i < len(extras):
            name, child, mode = extras[i]
            entry = None
            if out.plus and child in BY_INODE:
                entry = EntryOut(child, self._internal_attr(child), generation=1, entry_timeout=3600, attr_timeout=3600)
            if not out.add(name, child, mode, i + 3, entry):
                return
            i += 1
        base = 2 + len(extras)
        pos = offset - base if offset > base else 0
        while True:
            while pos >= len(d.entries):
                if d.cursor is None:
                    return
                page, d.cursor = await self._timed(
                    "readdir", ctx, str(ino),
                    self.meta.readdir_page(ino, d.cursor, 4096, self._ctx(ctx), plus=out.plus))
                d.entries.extend(page)
            e = d.entries[pos]
            entry = self._entry_fields(e.ino, e.attr) if out.plus and e.attr is not None else None
            if not out.add(e.name, e.ino, e.typ.s_ifmt, base + pos + 1, entry):
                return
            pos += 1

    async def releasedir(self, ctx: RequestContext, ino: int, fh: int) -> None:
        self._dirs.pop(fh, None)

    async def fsyncdir(self, ctx: RequestContext, ino: int, fh: int, datasync: bool) -> None:
        return None

    # ------------------------------------------------------------------ volume, xattrs, locks

    async def statfs(self, ctx: RequestContext, ino: int) -> StatFs:
        st = await self._timed("statfs", ctx, str(ino), self.meta.statfs())
        bsize = 4096
        return StatFs(blocks=st.total_space // bsize, bfree=st.avail_space // bsize, bavail=st.avail_space // bsize,
                      files=st.used_inodes + st.avail_inodes, ffree=st.avail_inodes, bsize=bsize, namelen=255)

    @_stale_when_gone
    async def access(self, ctx: RequestContext, ino: int, mask: int) -> None:
        if ino in INTERNAL_INODES:
            return
        from jfs.app.meta.rules import check_perm

        attr = await self.meta.getattr(ino)
        if mask:
            check_perm(Ctx(uid=ctx.uid, gid=ctx.gid, check=True), attr, mask & 7)

    def _xattr_gate(self) -> None:
        if not self.config.enable_xattr:
            # ENOSYS (as JuiceFS without --enable-xattr): the kernel remembers it, answers EOPNOTSUPP
            # itself and stops sending xattr requests — `ls -l` then costs no round trip per entry.
            raise FSError(errno.ENOSYS)

    @_stale_when_gone
    async def setxattr(self, ctx: RequestContext, ino: int, name: bytes, value: bytes, flags: int) -> None:
        self._xattr_gate()
        if name.startswith(_UNSERVED_XATTRS):
            raise FSError(errno.EOPNOTSUPP, "POSIX ACLs and security labels are not supported")
        await self._timed("setxattr", ctx, f"{ino},{name!r}", self.meta.setxattr(ino, name, value, flags, self._ctx(ctx)))

    @_stale_when_gone
    async def getxattr(self, ctx: RequestContext, ino: int, name: bytes) -> bytes:
        self._xattr_gate()
        if ino in INTERNAL_INODES or name.startswith(_UNSERVED_XATTRS):
            # `ls -l` asks for security.selinux and system.posix_acl_access of every entry: answer without
            # a metadata round trip (jfs stores neither ACLs nor security labels).
            raise FSError(errno.ENODATA)
        return await self._timed("getxattr", ctx, f"{ino},{name!r}", self.meta.getxattr(ino, name, self._ctx(ctx)))

    @_stale_when_gone
    async def listxattr(self, ctx: RequestContext, ino: int) -> Sequence[bytes]:
        self._xattr_gate()
        if ino in INTERNAL_INODES:
            return []
        return await self._timed("listxattr", ctx, str(ino), self.meta.listxattr(ino, self._ctx(ctx)))

    @_stale_when_gone
    async def removexattr(self, ctx: RequestContext, ino: int, name: bytes) -> None:
        self._xattr_gate()
        await self._timed("removexattr", ctx, f"{ino},{name!r}", self.meta.removexattr(ino, name, self._ctx(ctx)))

    @_stale_when_gone
    async def getlk(self, ctx: RequestContext, ino: int, fh: int, owner: int, lock: FileLock) -> FileLock:
        info = await self._timed("getlk", ctx, str(ino),
                                 self.meta.getlk(ino, owner, lock.type, lock.start, min(lock.end, MAX_END)))
        return FileLock(info.start, info.end, info.type, info.pid)

    @_stale_when_gone
    async def setlk(self, ctx: RequestContext, ino: int, fh: int, owner: int, lock: FileLock, sleep: bool) -> None:
        if lock.type != F_UNLCK:
            self._plock_owners.add((ino, owner))
        else:
            await self._unlocking(ino)
        await self._timed("setlk", ctx, f"{ino},{lock!r}",
                          self.meta.setlk(ino, owner, lock.type, lock.start, min(lock.end, MAX_END), ctx.pid, block=sleep))
        if lock.type != F_UNLCK:
            await self._locked(ino)

    @_stale_when_gone
    async def flock(self, ctx: RequestContext, ino: int, fh: int, owner: int, type: int, sleep: bool) -> None:
        ltype = {0: "R", 1: "W", 2: "U"}[type]
        if ltype != "U":
            self._flock_owners.add((ino, owner))
        else:
            await self._unlocking(ino)
        await self._timed("flock", ctx, f"{ino},{ltype}", self.meta.flock(ino, owner, ltype, block=sleep))
        if ltype != "U":
            await self._locked(ino)


def _caller(rc: RequestContext) -> Ctx:
    """The full credentials (with supplementary groups from /proc) of a request's caller, checks on."""
    groups: frozenset[int] = frozenset()
    try:
        with open(f"/proc/{rc.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Groups:"):
                    groups = frozenset(int(g) for g in line.split()[1:])
                    break
    except (OSError, ValueError):
        pass
    return Ctx(uid=rc.uid, gid=rc.gid, groups=groups, pid=rc.pid, check=True)


INTERNAL_INODES = frozenset(BY_INODE) | {CONTROL_INODE}
BY_INODE_STATS = INTERNAL[b".stats"].ino
BY_INODE_CONFIG = INTERNAL[b".config"].ino

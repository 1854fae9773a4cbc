"""`VFS`: the inode-level file-system API of one client, on the metadata engine and the data path.

What it owns (so that every face behaves the same):
- open-file handles (the data path's), directory handles with their listing snapshot, and the handles of
  the virtual files in the root (``.stats``, ``.config``, ``.accesslog``, ``.control``);
- the attributes a caller sees: a file's length including this client's uncommitted writes, st_nlink 0 for
  a file whose last name went to the trash;
- close-to-open: an open reports whether cached pages of the file may be kept (unchanged since the last
  open here); O_APPEND writes go to the real end of the file;
- locks: what a holder wrote is committed before its lock is released, and a lock just taken revalidates
  what this client caches (and, through the `Invalidator`, what the kernel caches);
- the lock owners a close must release, the ``.control`` requests, the access log and per-op counters,
  and the mapping of engine failures to EIO with one log line.

Errors are FSError (an OSError with errno). Times are nanoseconds. `Ctx` names the caller; with
`VfsConfig.permission_checks` off (a kernel that checks with ``default_permissions``) the engine skips them.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Container, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NoReturn, Protocol, TypeVar

import structlog

from jfs.app.data.files import DataPath, Handle
from jfs.app.data.pages import Buffer
from jfs.app.meta import Ctx, Meta
from jfs.app.meta.readdir import Entry, StoredEntry
from jfs.app.meta.rules import check_perm
from jfs.app.meta.setattr import NOW, SetAttr
from jfs.app.metrics import juicefs_stats, layer_gauges
from jfs.app.vfs.close_now import CloseNow
from jfs.app.vfs.control import answer_control
from jfs.app.vfs.names import NameCache
from jfs.app.vfs.opened import OpenedFiles
from jfs.app.vfs.xattrs import UNSERVED_XATTRS, XattrOps
from jfs.app.virtual_files import (
    BY_INODE,
    CONTROL_INODE,
    INTERNAL_INODES,
    TRASH_NAME,
    VIRTUAL_FILES,
    AccessLog,
    Stats,
    render_config,
)
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, Attr, FileType, posix_nlink
from jfs.domain.chunks import CHUNK_SIZE
from jfs.domain.errors import FSError
from jfs.domain.locks import F_UNLCK, MAX_END
from jfs.domain.slices import read_pieces
from jfs.ports.kv import KVError

log = structlog.get_logger("jfs.vfs")
T = TypeVar("T")

SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE = 0, 1, 2, 3, 4
STATS_INODE = VIRTUAL_FILES[b".stats"].ino
CONFIG_INODE = VIRTUAL_FILES[b".config"].ino
DIR_PAGE = 4096
"""Entries an open directory reads from the engine at a time (`VFS.readdir`)."""
_SPECIAL_FH = itertools.count(1 << 48)  # directory and virtual-file handles, apart from the data path's


@dataclass(frozen=True, slots=True)
class VfsConfig:
    permission_checks: bool = True
    """Check permissions in jfs (off when the kernel checks them with ``default_permissions``)."""
    enable_xattr: bool = True
    read_only: bool = False
    """Refuse every change with EROFS."""
    options: dict[str, Any] = field(default_factory=dict)
    """The client's options, shown in ``.config``."""


class Invalidator(Protocol):
    """Tells a face's cache (the kernel's, for FUSE) that something it may hold changed behind it."""

    def inval_inode(self, ino: int, *, data: bool) -> None:
        """Attributes of `ino` are stale (and with `data` its cached pages too)."""

    def inval_entry(self, parent: int, ino: int, name: bytes) -> None:
        """The name `name` in `parent` (of `ino`) is gone."""

    async def lock_granted(self, ino: int, parent: int | None) -> None:
        """A lock on `ino` (in directory `parent`, if known) was just granted: names the face may cache
        near it can be stale (the previous holder, on another client, may have replaced them). Returns once
        the face has taken that in."""


@dataclass(frozen=True, slots=True)
class OpenFile:
    fh: int
    keep_cache: bool = False
    """The file is unchanged since its last open here: cached pages may be kept (close-to-open)."""
    direct_io: bool = False
    """A virtual file whose content is made at open/read: must not be cached."""


@dataclass
class _DirHandle:
    ino: int
    entries: list[Entry | StoredEntry] = field(default_factory=list)
    cursor: bytes | None = b""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ahead: asyncio.Task[tuple[Sequence[Entry | StoredEntry], bytes | None]] | None = None
    """The page after `entries`, being read while the caller consumes them (`VFS.readdir`)."""

    def drop_ahead(self) -> None:
        """Forget the page read ahead (cancelled if under way, its failure if any retrieved)."""
        task, self.ahead = self.ahead, None
        if task is None:
            return
        if task.done():
            if not task.cancelled():
                task.exception()
        else:
            task.cancel()


class DirEntry(NamedTuple):
    """One entry of a listing: `offset` is where the next call resumes; `attr` only with plus (a tuple:
    listings make thousands of them)."""

    name: bytes
    ino: int
    typ: FileType
    offset: int
    attr: Attr | None = None


class VFS(XattrOps, CloseNow):
    """The file-system API of one client of a volume (one Meta with a session, one DataPath)."""

    def __init__(self, meta: Meta, data: DataPath, config: VfsConfig | None = None) -> None:
        self.meta = meta
        self.data = data
        self.local_length: Callable[[int], int | None] = data.file_length
        """A file's length with this client's uncommitted writes if it is open here, else None: `visible`
        shows it when longer than the stored record's (for callers packing records themselves, ADR 0071)."""
        self.open_inodes: Container[int] = data.open_inodes
        """The inodes `local_length` may answer for (a live view): for the others it is None."""
        self.config = config or VfsConfig()
        self.root = ROOT_INODE
        """The directory served as this client's root (a mount's ``--subdir``): the virtual files
        (``.stats``, ``.config``, ...) and ``.trash`` are listed and found there."""
        self.invalidator: Invalidator | None = None
        self.names: NameCache | None = None
        """The name and attribute cache of path-based faces (None for FUSE: the kernel caches); the VFS
        drops from it what its own changes make stale."""
        self.stats = Stats()
        self.accesslog = AccessLog()
        self._files: dict[int, Handle] = {}
        self._dirs: dict[int, _DirHandle] = {}
        self._internal: dict[int, bytes] = {}
        self._control: dict[int, bytearray] = {}
        self._control_who: dict[int, Ctx] = {}  # who wrote each pending request: requests run as that user
        self._plock_owners: set[tuple[int, int]] = set()
        self._flock_owners: set[tuple[int, int]] = set()
        self._opened = OpenedFiles()  # (mtime, length) seen at recent opens, bounded (issue 17)

    # ------------------------------------------------------------------ plumbing

    def ctx(self, uid: int = 0, gid: int = 0, *, groups: frozenset[int] = frozenset(), pid: int = 0,
            umask: int = 0) -> Ctx:
        """The caller context of a request, with permission checks as this VFS is configured."""
        return Ctx(uid=uid, gid=gid, groups=groups, pid=pid, umask=umask, check=self.config.permission_checks)

    async def _timed(self, op: str, ctx: Ctx | None, args: str, call: Awaitable[T]) -> T:
        start = time.perf_counter()
        err = 0  # the errno the operation failed with
        try:
            return await call
        except OSError as exc:
            err = exc.errno or errno.EIO
            raise
        except KVError as exc:  # the engine is unreachable, or a commit's outcome is unknown: EIO, one line
            err = errno.EIO
            log.error("meta_engine_failed", op=op, error=str(exc))
            raise FSError(errno.EIO, str(exc)) from None
        finally:
            elapsed = time.perf_counter() - start
            self.stats.record(op, elapsed, err != 0)
            if self.accesslog.readers and ctx is not None:  # `.active` without the property call
                self.accesslog.log(ctx.uid, ctx.gid, ctx.pid, op, args, os.strerror(err) if err else "OK", elapsed)

    def _took(self, op: str, ctx: Ctx | None, args: Callable[[], str], start: float, err: int = 0) -> None:
        """`_timed`'s bookkeeping for an operation timed inline (the commonest ones, ADR 0047: no wrapping
        coroutine; the access log's arguments and status are formatted only while someone reads the log)."""
        elapsed = time.perf_counter() - start
        self.stats.record(op, elapsed, err != 0)
        if self.accesslog.readers and ctx is not None:  # `.active` without the property call
            self.accesslog.log(ctx.uid, ctx.gid, ctx.pid, op, args(), os.strerror(err) if err else "OK", elapsed)

    def _fail(self, op: str, ctx: Ctx | None, args: Callable[[], str], start: float, exc: BaseException) -> NoReturn:
        """`_took` for an inline-timed operation that raised `exc`, counted as `_timed` counts it, then raise
        `exc` again, or EIO instead of an engine failure (logged): its ``except BaseException`` clause."""
        try:
            if isinstance(exc, KVError):
                self._took(op, ctx, args, start, errno.EIO)
                log.error("meta_engine_failed", op=op, error=str(exc))
                raise FSError(errno.EIO, str(exc)) from None
            self._took(op, ctx, args, start, (exc.errno or errno.EIO) if isinstance(exc, OSError) else 0)
            raise exc
        finally:  # `exc`'s traceback holds this frame: no reference cycle through it (a negative LOOKUP each)
            del exc

    @property
    def open_handles(self) -> int:
        """Open files and directories (``juicefs_fuse_open_handlers``)."""
        return len(self._files) + len(self._dirs)

    def _writable(self) -> None:
        if self.config.read_only:
            raise FSError(errno.EROFS)

    def visible(self, ino: int, a: Attr) -> Attr:
        """`a` as callers see it: length with this client's uncommitted writes, POSIX nlink (copied only
        when it differs from the stored record)."""
        nlink = posix_nlink(ino, a)
        length = a.length
        if a.typ is FileType.REGULAR:
            local = self.local_length(ino)
            if local is not None and local > length:
                length = local
        if nlink == a.nlink and length == a.length:
            return a
        out = a.copy()
        out.nlink, out.length = nlink, length
        return out

    @staticmethod
    def internal_attr(ino: int) -> Attr:
        mode = 0o666 if ino == CONTROL_INODE else BY_INODE[ino].mode
        now = time.time_ns()
        return Attr(FileType.REGULAR, mode, atime_ns=now, mtime_ns=now, ctime_ns=now, parent=ROOT_INODE)

    def _invalidate(self, ino: int, *, data: bool = False) -> None:
        if self.invalidator is not None and ino:
            try:
                self.invalidator.inval_inode(ino, data=data)
            except OSError:
                pass

    # ------------------------------------------------------------------ names and attributes

    async def lookup(self, ctx: Ctx, parent: int, name: bytes, *, dir_known: bool = False) -> tuple[int, Attr]:
        """The inode and attributes of `name` in `parent` (virtual files included). ENOENT, ENOTDIR, EACCES.
        `dir_known`: the caller knows `parent` as a directory (the kernel's LOOKUP; `Meta.lookup`)."""
        if name == b".control":
            return CONTROL_INODE, self.internal_attr(CONTROL_INODE)
        if parent == self.root:
            f = VIRTUAL_FILES.get(name)
            if f is not None:
                return f.ino, self.internal_attr(f.ino)
        start = time.perf_counter()
        try:
            ino, attr = await self.meta.lookup(parent, name, ctx, dir_known=dir_known)
        except BaseException as exc:
            self._fail("lookup", ctx, lambda: f"{parent},{name!r}", start, exc)
        self._took("lookup", ctx, lambda: f"{parent},{name!r}", start)
        return ino, self.visible(ino, attr)

    async def getattr(self, ctx: Ctx, ino: int) -> Attr:
        if ino in INTERNAL_INODES:
            return self.internal_attr(ino)
        start = time.perf_counter()
        try:
            attr = await self.meta.getattr(ino)
        except BaseException as exc:
            self._fail("getattr", ctx, lambda: str(ino), start, exc)
        self._took("getattr", ctx, lambda: str(ino), start)
        return self.visible(ino, attr)

    async def getattr_recent(self, ctx: Ctx, ino: int, within: float) -> tuple[Attr, float]:
        """`getattr`, except that a directory's attributes as this client's own latest commit left them
        no more than `within` seconds ago are returned without asking the engine (`Meta.recent_dir_attr`);
        the second item is their age in seconds (0 when read now). For a face that shortens its cache's
        timeout by the age (the kernel's GETATTR after a change this mount made in the directory)."""
        known = self.getattr_known(ctx, ino, within)
        return known if known is not None else (await self.getattr(ctx, ino), 0.0)

    def getattr_known(self, ctx: Ctx, ino: int, within: float) -> tuple[Attr, float] | None:
        """`getattr_recent`'s hit (attributes, age), counted as a getattr; None when none. Never waits."""
        hit = None if ino in INTERNAL_INODES else self.meta.recent_dir_attr(ino, within)
        if hit is None:
            return None
        self._took("getattr", ctx, lambda: str(ino), time.perf_counter())
        attr, age = hit
        return self.visible(ino, attr), age

    async def setattr(self, ctx: Ctx, ino: int, change: SetAttr) -> Attr:
        """chmod/chown/utimens and truncate (`change.size`; pending writes committed first) in one call."""
        if ino in INTERNAL_INODES:
            raise FSError(errno.EPERM)
        self._writable()

        async def run() -> Attr:
            attr: Attr | None = None
            if change.size is not None:
                attr = await self.data.truncate(ino, change.size, ctx)
            rest = SetAttr(mode=change.mode, uid=change.uid, gid=change.gid, atime=change.atime,
                           mtime=change.mtime, flags=change.flags, ctime=change.ctime)
            if any(v is not None for v in (rest.mode, rest.uid, rest.gid, rest.atime, rest.mtime, rest.flags)):
                attr = await self.meta.setattr(ino, rest, ctx)
            if attr is None:
                attr = await self.meta.getattr(ino)
            return attr

        attr = await self._timed("setattr", ctx, f"{ino},{change!r}", run())
        if self.names is not None:
            self.names.forget_attr(ino)
        return self.visible(ino, attr)

    async def readlink(self, ctx: Ctx, ino: int) -> bytes:
        return await self._timed("readlink", ctx, str(ino), self.meta.readlink(ino))

    def _changed(self, *inodes: int) -> None:
        if self.names is not None:
            self.names.forget_attr(*inodes)

    def _renamed(self, parent: int, name: bytes) -> None:
        if self.names is not None:
            self.names.forget_entry(parent, name)

    async def mknod(self, ctx: Ctx, parent: int, name: bytes, typ: FileType, mode: int, rdev: int = 0) -> tuple[int, Attr]:
        self._writable()
        self._changed(parent)
        return await self._timed("mknod", ctx, f"{parent},{name!r},{mode:o}",
                                 self.meta.mknod(parent, name, typ, mode & 0o7777, ctx, rdev=rdev))

    async def mkdir(self, ctx: Ctx, parent: int, name: bytes, mode: int) -> tuple[int, Attr]:
        self._writable()
        self._changed(parent)
        return await self._timed("mkdir", ctx, f"{parent},{name!r},{mode:o}",
                                 self.meta.mkdir(parent, name, mode & 0o7777, ctx))

    async def symlink(self, ctx: Ctx, parent: int, name: bytes, target: bytes) -> tuple[int, Attr]:
        self._writable()
        self._changed(parent)
        return await self._timed("symlink", ctx, f"{parent},{name!r},{target!r}",
                                 self.meta.symlink(parent, name, target, ctx))

    async def link(self, ctx: Ctx, ino: int, parent: int, name: bytes) -> tuple[int, Attr]:
        self._writable()
        self._changed(ino, parent)
        attr = await self._timed("link", ctx, f"{ino},{parent},{name!r}", self.meta.link(ino, parent, name, ctx))
        return ino, self.visible(ino, attr)

    async def unlink(self, ctx: Ctx, parent: int, name: bytes) -> None:
        self._writable()
        self._renamed(parent, name)
        ino, attr = await self._timed("unlink", ctx, f"{parent},{name!r}", self.meta.unlink(parent, name, ctx))
        self._changed(ino, parent)
        if attr.nlink:
            self._invalidate(ino)  # other names of a hard-linked file must show the new nlink at once

    async def rmdir(self, ctx: Ctx, parent: int, name: bytes) -> None:
        self._writable()
        self._renamed(parent, name)
        await self._timed("rmdir", ctx, f"{parent},{name!r}", self.meta.rmdir(parent, name, ctx))
        self._changed(parent)

    async def rename(self, ctx: Ctx, parent: int, name: bytes, new_parent: int, new_name: bytes, flags: int = 0) -> None:
        """rename/renameat2 (RENAME_NOREPLACE, RENAME_EXCHANGE)."""
        self._writable()
        self._renamed(parent, name)
        self._renamed(new_parent, new_name)
        moved, _, victim = await self._timed(
            "rename", ctx, f"{parent},{name!r},{new_parent},{new_name!r},{flags}",
            self.meta.rename_ex(parent, name, new_parent, new_name, flags, ctx))
        self._changed(moved, victim, parent, new_parent)
        self._invalidate(victim)

    # ------------------------------------------------------------------ files

    def handle(self, fh: int) -> Handle:
        h = self._files.get(fh)
        if h is None:
            raise FSError(errno.EBADF)
        return h

    async def open(self, ctx: Ctx, ino: int, flags: int, *, fresh: Attr | None = None) -> OpenFile:
        """open(2) of an existing inode (O_TRUNC truncates). EACCES, EPERM, EISDIR, EROFS. `fresh`: the
        inode's attributes as the caller just read them from the engine, unchanged by `visible` (a path
        face's lookup in the same call): the open checks them instead of reading them again."""
        if ino in INTERNAL_INODES:
            return self._open_internal(ino, ctx)
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            self._writable()
        start = time.perf_counter()  # timed inline (ADR 0079), as `lookup`: no wrapping coroutine, no args text
        try:
            h = await self.data.open(ino, flags, ctx, fresh=fresh)
        except BaseException as exc:
            self._fail("open", ctx, lambda: f"{ino},{flags:o}", start, exc)
        self._took("open", ctx, lambda: f"{ino},{flags:o}", start)
        self._files[h.fh] = h
        attr = h.opened if h.opened is not None else await self.meta.getattr(ino)
        keep = self._opened.reopened(ino, (attr.mtime_ns, attr.length)) and not flags & os.O_TRUNC
        return OpenFile(h.fh, keep_cache=keep)

    def _open_internal(self, ino: int, ctx: Ctx) -> OpenFile:
        fh = next(_SPECIAL_FH)
        if ino == CONTROL_INODE:
            self._control[fh] = bytearray()
            self._control_who[fh] = ctx
        elif ino == STATS_INODE:
            extra = {"jfs_used_space_bytes": float(self.meta.used_space),
                     "jfs_used_inodes": float(self.meta.used_inodes)}
            extra.update(layer_gauges(self.meta, self.data))
            extra.update(juicefs_stats(self))  # JuiceFS's names too: `juicefs stats` / `juicefs bench` read them
            self._internal[fh] = self.stats.render(extra)
        elif ino == CONFIG_INODE:
            self._internal[fh] = render_config(self.meta.settings.to_dict(mask_secrets=True), self.config.options)
        else:
            self.accesslog.open(fh)
        return OpenFile(fh, direct_io=True)

    async def create(self, ctx: Ctx, parent: int, name: bytes, mode: int, flags: int) -> tuple[int, Attr, OpenFile]:
        """Create and open a regular file (O_EXCL semantics: EEXIST when the name exists)."""
        self._writable()
        self._changed(parent)
        start = time.perf_counter()  # timed inline (ADR 0051: no wrapping coroutines, as `lookup`)
        try:
            ino, attr = await self.meta.mknod(parent, name, FileType.REGULAR, mode & 0o7777, ctx)
            h = await self.data.open(ino, flags & ~os.O_TRUNC, Ctx(uid=ctx.uid, gid=ctx.gid, check=False),
                                     created=attr)
        except BaseException as exc:
            self._fail("create", ctx, lambda: f"{parent},{name!r},{mode:o}", start, exc)
        self._took("create", ctx, lambda: f"{parent},{name!r},{mode:o}", start)
        self._files[h.fh] = h  # not in `_opened`: the kernel has no pages of a new file to keep (ADR 0092)
        return ino, attr, OpenFile(h.fh)

    async def read(self, ctx: Ctx | None, ino: int, fh: int, offset: int, size: int) -> Buffer:
        """Up to `size` bytes at `offset` (a buffer nobody changes later); EIO if data is unreadable."""
        if ino in INTERNAL_INODES:
            return await self._read_internal(fh, offset, size)
        h, start = self.handle(fh), time.perf_counter()  # timed inline (ADR 0079)
        try:
            data = await self.data.read_buffer(h, offset, size)
        except BaseException as exc:
            self._fail("read", ctx, str, start, exc)
        self._took("read", ctx, str, start)
        self.stats.meters["read"].bytes += len(data)
        return data

    def read_now(self, ino: int, fh: int, offset: int, size: int) -> Buffer | list[Buffer] | None:
        """`read` (without an access log: no caller is known) if it can be answered at once from the
        caches; None: call `read`."""
        h = self._files.get(fh)
        if h is None or h.ino != ino:
            return None
        start = time.perf_counter()
        data = self.data.read_now(h, offset, size)
        if data is not None:
            self.stats.record("read", time.perf_counter() - start, False)
            self.stats.meters["read"].bytes += sum(map(len, data)) if isinstance(data, list) else len(data)
        return data

    async def _read_internal(self, fh: int, offset: int, size: int) -> bytes:
        if fh in self._control:
            who = self._control_who.pop(fh, Ctx(uid=65534, gid=65534, check=True))
            self._internal[fh] = await answer_control(self, bytes(self._control.pop(fh)), who)
        if fh in self._internal:
            return self._internal[fh][offset:offset + size]
        return await self.accesslog.read(fh, size)

    async def write(self, ctx: Ctx | None, ino: int, fh: int, offset: int, data: Buffer, *,
                    owned: bool = False) -> int:
        """Buffer `data` at `offset` (O_APPEND handles: at the end of the file); returns its length.
        `owned`: the caller hands `data` over and nobody changes it again (no copy)."""
        if ino == CONTROL_INODE:
            buf = self._control.setdefault(fh, bytearray())
            if ctx is not None:
                self._control_who[fh] = ctx
            buf += data
            self._internal.pop(fh, None)
            return len(data)
        if ino in INTERNAL_INODES:
            raise FSError(errno.EPERM)
        h = self.handle(fh)
        if h.flags & os.O_APPEND:
            # A face's idea of the end (the kernel's cached size) may predate another client's appends
            # (made under a lock this client now holds): append at the real end instead.
            end = self.data.file_length(ino)
            if end is None or end < offset:
                end = offset
            if end > offset:
                offset = end
                self._invalidate(ino, data=True)  # the kernel copied the bytes into its cache elsewhere
        if self.names is not None:
            self.names.forget_attr(ino)
        start = time.perf_counter()
        try:
            n = await self.data.write(h, offset, data, owned=owned)
        except BaseException as exc:
            self._fail("write", ctx, str, start, exc)
        self._took("write", ctx, str, start)
        self.stats.meters["write"].bytes += n
        return n

    def write_target(self, ino: int, fh: int, offset: int) -> memoryview | None:
        """A buffer the payload of the next `write` of `fh` at `offset` may be read into, so that the data
        path keeps it without a copy (ADR 0030); None when there is none. The caller then calls `write`
        with (a prefix of) that view, owned, before anything else writes the file."""
        if ino in INTERNAL_INODES:
            return None
        h = self._files.get(fh)
        if h is None or h.ino != ino or h.flags & os.O_APPEND:
            return None
        return self.data.write_target(h, offset)

    async def append_offset(self, ino: int) -> int:
        """The end of file an O_APPEND write goes to (committed length or this client's pending end)."""
        attr = await self.meta.getattr(ino)
        return max(attr.length, self.data.file_length(ino) or 0)

    async def flush(self, ctx: Ctx, ino: int, fh: int, lock_owner: int | None = None) -> None:
        """Commit the file's pending writes (close(2) of one descriptor); releases `lock_owner`'s POSIX locks."""
        if ino in INTERNAL_INODES:
            return
        try:
            h, start = self.handle(fh), time.perf_counter()  # timed inline (ADR 0079)
            try:
                await self.data.flush(h)
            except BaseException as exc:
                self._fail("flush", ctx, lambda: str(ino), start, exc)
            self._took("flush", ctx, lambda: str(ino), start)
        finally:  # the POSIX locks of the closing owner go after its writes are committed
            if lock_owner is not None and (ino, lock_owner) in self._plock_owners:
                self._plock_owners.discard((ino, lock_owner))
                await self.meta.setlk(ino, lock_owner, F_UNLCK, 0, MAX_END, ctx.pid)

    async def release(self, ctx: Ctx, ino: int, fh: int, flock_owner: int | None = None) -> None:
        """Close a handle (after committing its writes); releases `flock_owner`'s flock."""
        if ino in INTERNAL_INODES or fh in self._internal or fh in self._control:
            self._internal.pop(fh, None)
            self._control.pop(fh, None)
            self._control_who.pop(fh, None)
            self.accesslog.close(fh)
            return
        h = self._files.pop(fh, None)
        try:
            if h is not None:
                start = time.perf_counter()
                try:
                    await self.data.release(h)
                except BaseException as exc:
                    self._fail("release", ctx, lambda: str(ino), start, exc)
                self._took("release", ctx, lambda: str(ino), start)
        finally:  # the flock goes after the writes are committed
            if flock_owner is not None and (ino, flock_owner) in self._flock_owners:
                self._flock_owners.discard((ino, flock_owner))
                await self.meta.flock(ino, flock_owner, "U")

    async def close(self, ctx: Ctx, ino: int, fh: int, lock_owner: int | None = None,
                    flock_owner: int | None = None) -> None:
        """`flush` then `release`, as a face without a kernel in between closes its last descriptor (the SDK):
        the same commits, lock releases and errors (the flush's first, raised once the handle is closed). When
        `lock_owner` holds no POSIX lock on the file, `release` alone does it (it commits the writes too):
        one operation instead of two (ADR 0044)."""
        if ino in INTERNAL_INODES or (lock_owner is not None and (ino, lock_owner) in self._plock_owners):
            try:
                await self.flush(ctx, ino, fh, lock_owner)
            finally:
                await self.release(ctx, ino, fh, flock_owner)
            return
        await self.release(ctx, ino, fh, flock_owner)

    async def fsync(self, ctx: Ctx, ino: int, fh: int, datasync: bool = False) -> None:
        if ino in INTERNAL_INODES:
            return
        await self._timed("fsync", ctx, str(ino), self.data.fsync(self.handle(fh), datasync))

    async def fallocate(self, ctx: Ctx, ino: int, offset: int, length: int, mode: int = 0) -> None:
        self._writable()
        await self._timed("fallocate", ctx, f"{ino},{offset},{length},{mode}",
                          self.data.fallocate(ino, mode, offset, length, ctx))
        self._changed(ino)

    async def copy_file_range(self, ctx: Ctx, ino_in: int, off_in: int, ino_out: int, off_out: int, length: int,
                              flags: int = 0) -> int:
        """Copy by slice reference (no data moves); returns the bytes copied."""
        self._writable()
        n, _ = await self._timed("copy_file_range", ctx, f"{ino_in},{off_in},{ino_out},{off_out},{length}",
                                 self.data.copy_file_range(ino_in, off_in, ino_out, off_out, length, flags, ctx))
        self._changed(ino_out)
        return n

    async def lseek(self, ctx: Ctx, ino: int, offset: int, whence: int) -> int:
        """SEEK_DATA / SEEK_HOLE from the file's slice map: the real holes of a sparse file. ENXIO past the
        end (SEEK_DATA also when only holes follow)."""
        await self.data.publish(ino)  # pending writes are data: commit them so the map shows them
        attr = await self.meta.getattr(ino)
        length = max(attr.length, self.data.file_length(ino) or 0)
        if offset < 0 or offset >= length:
            raise FSError(errno.ENXIO)
        if whence not in (SEEK_DATA, SEEK_HOLE):
            raise FSError(errno.EINVAL)
        at = offset
        while at < length:
            indx, pos = divmod(at, CHUNK_SIZE)
            end = min(CHUNK_SIZE, length - indx * CHUNK_SIZE)
            records = await self.meta.read_chunk(ino, indx)
            for piece in read_pieces(records, pos, end - pos) if records else ():
                if (piece.id != 0) == (whence == SEEK_DATA):
                    return max(at, indx * CHUNK_SIZE + piece.pos)
            if not records and whence == SEEK_HOLE:
                return at
            at = (indx + 1) * CHUNK_SIZE
        if whence == SEEK_DATA:
            raise FSError(errno.ENXIO)
        return length

    # ------------------------------------------------------------------ directories

    async def opendir(self, ctx: Ctx, ino: int) -> int:
        attr = await self._timed("opendir", ctx, str(ino), self.meta.getattr(ino))
        if attr.typ is not FileType.DIRECTORY:
            raise FSError(errno.ENOTDIR)
        fh = next(_SPECIAL_FH)
        self._dirs[fh] = _DirHandle(ino)
        return fh

    async def readdir(self, ctx: Ctx, ino: int, fh: int, offset: int, *, plus: bool = False
                      ) -> AsyncGenerator[DirEntry, None]:
        """`readdir_runs` an entry at a time, attributes (`plus` only) as callers see them."""
        async with aclosing(self.readdir_runs(ctx, ino, fh, offset, plus=plus)) as runs:
            async for first, run in runs:
                for k, (name, child, typ, attr) in enumerate(run, first):
                    yield DirEntry(name, child, typ, k, self.visible(child, attr) if plus and isinstance(attr, Attr) else None)

    async def readdir_runs(self, ctx: Ctx, ino: int, fh: int, offset: int, *, plus: bool = False,
                           limit: int = DIR_PAGE, records: bool = False
                           ) -> AsyncGenerator[tuple[int, Sequence[Entry | StoredEntry]], None]:
        """The entries of open directory `fh` from `offset` (0 = the start): ``.``, ``..``, the root's virtual
        files and ``.trash``, then the stored ones in name order from a snapshot read page by page; as runs
        ``(first, run)`` of at most `limit` entries, ``run[k]`` resuming at offset ``first + k``. With `plus`,
        attributes (None: unknown) are as stored: show them through `visible`; else ignore them. With
        `records` as well, a stored entry's attributes are its undecoded record (`Attr.decode`; the virtual
        entries' stay `Attr`s): for a caller that packs the fields itself and applies `local_length` and
        `posix_nlink` as `visible` does (ADR 0071). Take any prefix and stop (close the generator): the
        handle's lock is held until then."""
        d = self._dirs.get(fh)
        if d is None:
            raise FSError(errno.EBADF)
        async with d.lock:
            # Offsets: 1 = ".", 2 = "..", 3.. = position in the virtual entries then the entry list.
            if offset == 0:
                yield 1, (Entry(b".", ino, FileType.DIRECTORY),)
                offset = 1
            if offset == 1:
                parent = ROOT_INODE
                if ino not in (ROOT_INODE, self.root):
                    parent = (await self.meta.getattr(ino)).parent or ROOT_INODE
                yield 2, (Entry(b"..", parent, FileType.DIRECTORY),)
                offset = 2
            extras: list[Entry] = []
            if ino == self.root:
                extras = [Entry(f.name, f.ino, FileType.REGULAR) for f in VIRTUAL_FILES.values()]
                if ino == ROOT_INODE:  # the trash is the volume's, not a subdir's
                    extras.append(Entry(TRASH_NAME, TRASH_INODE, FileType.DIRECTORY))
                extras = [e._replace(attr=self.internal_attr(e.ino)) if plus and e.ino in BY_INODE else e
                          for e in extras]  # fmt: skip
            for i in range(offset - 2, len(extras), limit):
                yield i + 3, extras[i : i + limit]
            base = 2 + len(extras)
            pos = offset - base if offset > base else 0
            while True:
                while pos >= len(d.entries):
                    if d.cursor is None:
                        return
                    ahead, d.ahead = d.ahead, None
                    if ahead is not None:
                        page, d.cursor = await ahead
                    else:
                        page, d.cursor = await self._dir_page(ctx, ino, d.cursor, plus, records)
                    d.entries.extend(page)
                    if d.cursor is not None:  # read the next page while the caller takes this one in
                        d.ahead = asyncio.create_task(self._dir_page(ctx, ino, d.cursor, plus, records))
                run = d.entries[pos : pos + limit]
                yield base + pos + 1, run
                pos += len(run)

    async def _dir_page(self, ctx: Ctx, ino: int, cursor: bytes, plus: bool, records: bool = False
                        ) -> tuple[Sequence[Entry | StoredEntry], bytes | None]:
        return await self._timed("readdir", ctx, str(ino),
                                 self.meta.readdir_page(ino, cursor, DIR_PAGE, ctx, plus=plus, records=records))

    async def releasedir(self, ctx: Ctx, ino: int, fh: int) -> None:
        d = self._dirs.pop(fh, None)
        if d is not None:
            d.drop_ahead()

    async def listdir(self, ctx: Ctx, ino: int, *, plus: bool = False) -> list[Entry]:
        """Every stored entry of directory `ino` (no ``.``, ``..`` or virtual files), in name order."""
        out: list[Entry] = []
        cursor: bytes | None = b""
        while cursor is not None:
            page, cursor = await self._timed("readdir", ctx, str(ino),
                                             self.meta.readdir_page(ino, cursor, 4096, ctx, plus=plus))
            out.extend(e if e.attr is None else e._replace(attr=self.visible(e.ino, e.attr)) for e in page)
        return out

    async def iterdir(self, ctx: Ctx, ino: int, after: bytes = b"", *, plus: bool = False, page: int = 1024
                      ) -> AsyncIterator[Entry]:
        """The stored entries of directory `ino` whose names sort after `after`, in name order, read a page
        at a time as the caller consumes them (a listing that stops early reads only what it used)."""
        cursor: bytes | None = after
        while cursor is not None:
            entries, cursor = await self._timed("readdir", ctx, str(ino),
                                                self.meta.readdir_page(ino, cursor, page, ctx, plus=plus))
            for e in entries:
                yield e if e.attr is None else e._replace(attr=self.visible(e.ino, e.attr))

    # ------------------------------------------------------------------ volume, permissions, xattrs, locks

    async def statfs(self, ctx: Ctx) -> tuple[int, int, int, int]:
        """(total bytes, available bytes, total inodes, available inodes)."""
        st = await self._timed("statfs", ctx, "", self.meta.statfs())
        return st.total_space, st.avail_space, st.used_inodes + st.avail_inodes, st.avail_inodes

    async def access(self, ctx: Ctx, ino: int, mask: int) -> None:
        """access(2): EACCES when the caller lacks any of `mask` (R_OK/W_OK/X_OK bits); always checked."""
        if ino in INTERNAL_INODES:
            return
        attr = await self.meta.getattr(ino)
        if mask & 7:
            check_perm(Ctx(uid=ctx.uid, gid=ctx.gid, groups=ctx.groups, check=True), attr, mask & 7)
        if mask & os.W_OK and self.config.read_only:
            raise FSError(errno.EROFS)

    # Locks order this client's view of a file against other clients (as NFS does): what a lock holder
    # wrote is committed before the lock is released, and a lock just taken revalidates what this client
    # and its face's cache hold, so the writes of the previous holder — on any client — are seen at once.

    async def _unlocking(self, ino: int) -> None:
        await self.data.publish(ino)

    async def _locked(self, ino: int) -> None:
        await self.data.refresh(ino)
        self._invalidate(ino)
        parent = self.data.parent_of(ino)
        # The previous holder, on another client, may have changed the directories near the file.
        self.meta.own_dirs.forget(ino, *(() if parent is None else (parent,)))
        if self.invalidator is not None:
            await self.invalidator.lock_granted(ino, parent)
        elif self.names is not None:
            self.names.clear()  # a path face's cached names near the file may be stale the same way

    async def getlk(self, ctx: Ctx, ino: int, owner: int, ltype: int, start: int, end: int) -> tuple[int, int, int, int]:
        """The first lock that would block (type, start, end, pid); type F_UNLCK when none would."""
        info = await self._timed("getlk", ctx, str(ino), self.meta.getlk(ino, owner, ltype, start, min(end, MAX_END)))
        return info.type, info.start, info.end, info.pid

    async def setlk(self, ctx: Ctx, ino: int, owner: int, ltype: int, start: int, end: int, *, block: bool) -> None:
        """fcntl F_SETLK(W) for `owner` on [start, end] (inclusive); EAGAIN when refused without `block`."""
        if ltype != F_UNLCK:
            self._plock_owners.add((ino, owner))
        else:
            await self._unlocking(ino)
        await self._timed("setlk", ctx, f"{ino},{ltype},{start},{end}",
                          self.meta.setlk(ino, owner, ltype, start, min(end, MAX_END), ctx.pid, block=block))
        if ltype != F_UNLCK:
            await self._locked(ino)

    async def flock(self, ctx: Ctx, ino: int, owner: int, ltype: str, *, block: bool) -> None:
        """flock(2) for `owner`: `ltype` "R" (shared), "W" (exclusive) or "U" (unlock)."""
        if ltype != "U":
            self._flock_owners.add((ino, owner))
        else:
            await self._unlocking(ino)
        await self._timed("flock", ctx, f"{ino},{ltype}", self.meta.flock(ino, owner, ltype, block=block))
        if ltype != "U":
            await self._locked(ino)

    async def release_owner(self, ino: int, owner: int, pid: int = 0) -> None:
        """Drop every lock `owner` holds on `ino` (a face's client went away without unlocking)."""
        if (ino, owner) in self._plock_owners:
            self._plock_owners.discard((ino, owner))
            await self.meta.setlk(ino, owner, F_UNLCK, 0, MAX_END, pid)
        if (ino, owner) in self._flock_owners:
            self._flock_owners.discard((ino, owner))
            await self.meta.flock(ino, owner, "U")


__all__ = ["INTERNAL_INODES", "NOW", "UNSERVED_XATTRS", "VFS", "DirEntry", "Invalidator", "OpenFile", "VfsConfig"]

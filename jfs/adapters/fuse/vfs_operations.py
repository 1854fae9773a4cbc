"""The jfs file system served over FUSE: translation only — a kernel request is decoded into one `VFS`
call and its answer encoded into the reply. What stays here is kernel-facing: attribute and entry cache
timeouts, the kernel's cache invalidations (the VFS's `Invalidator`), the caller's credentials from the
request header, and directory listings packed into the kernel's buffer."""

from __future__ import annotations

import errno
import functools
import inspect
import struct
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from jfs.adapters.fuse.listings import KernelListings
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
from jfs.adapters.fuse.protocol import DIRENT, DIRENT_SIZE, DIRENTPLUS, DIRENTPLUS_SIZE, split_timeout
from jfs.app.data.pages import BlockArena
from jfs.app.meta import Ctx
from jfs.app.meta.readdir import Entry, StoredEntry
from jfs.app.meta.setattr import NOW, SetAttr
from jfs.app.vfs import VFS
from jfs.app.vfs.core import INTERNAL_INODES
from jfs.app.vfs.listing_view import RECORD_TYPES, VIEWED_PARENTS, record_view
from jfs.domain.attrs import PLAIN_RECORD, PLAIN_RECORD_SIZE, ROOT_INODE, FileType, is_trash_inode
from jfs.domain.attrs import Attr as JAttr
from jfs.domain.errors import FSError


@dataclass(frozen=True, slots=True)
class MountConfig:
    attr_timeout: float = 1.0
    entry_timeout: float = 1.0
    dir_entry_timeout: float = 1.0
    negative_timeout: float = 0.0
    readdir_cache: bool = True
    """Let the kernel serve repeated listings of an unchanged directory from its cache (ADR 0024)."""
    options: dict[str, Any] = field(default_factory=dict)


KEEP_WRITE_BUFFER_MIN = 512 << 10
"""WRITE payloads at least this long are kept without a copy (at most 2x the bytes pinned, for 1 MiB
request buffers)."""
VIRTUAL_TIMEOUT = 3600.0
T = TypeVar("T")
P = ParamSpec("P")


CALLERS_KEPT = 4096
"""Caller contexts (uid, gid, pid, umask) kept for reuse across requests (`VfsOperations._ctx`)."""
NAMES_SWEEP = 4096
"""Names recorded between two sweeps of the expired ones (`_KernelCache.named`)."""
NOTIFY_WAIT = 5.0
"""Longest wait, in seconds, for the kernel to take the invalidations before a lock is answered."""


class _KernelCache:
    """The VFS's `Invalidator` for a kernel mount: FUSE notifications (errors ignored: best effort), and the
    names this mount handed the kernel with how long it may cache them (ADR 0014)."""

    def __init__(self, listings: KernelListings, root: int = ROOT_INODE) -> None:
        self.notifier: Notifier | None = None
        self.listings = listings
        self._root = root  # the kernel's node 1 (``--subdir``)
        self._names: dict[int, dict[bytes, float]] = {}  # parent -> name -> when the kernel's entry expires
        self._added = 0

    def _node(self, ino: int) -> int:
        return ROOT_INODE if ino == self._root else ino

    def inval_inode(self, ino: int, *, data: bool) -> None:
        self.listings.changed(ino)
        if self.notifier is not None:
            self.notifier.notify_inval_inode(self._node(ino), 0 if data else -1, 0)

    def inval_entry(self, parent: int, ino: int, name: bytes) -> None:
        self.listings.changed(parent)
        self.listings.changed(ino)
        if self.notifier is not None:
            self.notifier.notify_delete(self._node(parent), ino, name)

    def named(self, parent: int, name: bytes, timeout: float) -> None:
        """The kernel may cache `name` in `parent` for `timeout` seconds from now."""
        if timeout <= 0:
            return
        names = self._names.get(parent)
        if names is None:
            names = self._names[parent] = {}
        names[name] = time.monotonic() + timeout
        self._added += 1
        if self._added >= NAMES_SWEEP:
            self._added = 0
            now = time.monotonic()
            for p in list(self._names):
                live = {n: t for n, t in self._names[p].items() if t > now}
                if live:
                    self._names[p] = live
                else:
                    del self._names[p]

    async def lock_granted(self, ino: int, parent: int | None) -> None:
        """Expire the names in `parent` (the directory of a file just locked) the kernel may still cache,
        and wait until it has taken that in: the previous lock holder, on another client, may have removed
        or replaced them — as SQLite's rollback journal next to its database. A cached name of a removed
        file would otherwise be opened without a lookup; jfs answers ESTALE then and the kernel retries the
        walk, but only once, and the retry may meet the next removal. The kernel's cached listing of
        `parent` is dropped at its next opendir for the same reason (and that of `ino` itself, when a
        directory is what was locked)."""
        self.listings.changed(ino)
        if parent is None:
            self.listings.changed_all()
            return
        self.listings.changed(parent)
        if self.notifier is None:
            return
        names = self._names.pop(parent, None)
        if not names:
            return
        now = time.monotonic()
        live = [name for name, until in names.items() if until > now]
        if not live:
            return
        for name in live:
            self.notifier.notify_inval_entry(self._node(parent), name, expire_only=True)
        await self.notifier.notifications_done(NOTIFY_WAIT)


_S_IFMT = {t: t.s_ifmt for t in FileType}
_DTYPE = {t: t.s_ifmt >> 12 for t in FileType}
_DIRECTORY = FileType.DIRECTORY
_VIRTUAL_VALID = (*split_timeout(VIRTUAL_TIMEOUT), *split_timeout(VIRTUAL_TIMEOUT))
_DIRENTPLUS_PACK = DIRENTPLUS.pack
_DIRENT_PACK = DIRENT.pack
_NEG_ENTRY_FIELDS = (0,) * 22  # a zero fuse_entry_out: "no attributes supplied"
_PAD = tuple(b"\0" * n for n in range(8))


class _ByNameLength(dict[int, Any]):
    """``self[namelen]``: ``make(namelen)``, made at the first use of that length and kept (names are at most
    a few hundred bytes: one value per length seen)."""

    def __init__(self, make: Callable[[int], Any]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, namelen: int) -> Any:
        value = self[namelen] = self.make(namelen)
        return value


_PLUS_RECLEN = _ByNameLength(lambda n: (DIRENTPLUS_SIZE + n + 7) & ~7)
"""The padded length of a ``fuse_direntplus`` record by name length (`protocol.dirent_size`)."""
_PLUS_NAMED = _ByNameLength(lambda n: struct.Struct(f"{DIRENTPLUS.format}{(n + 7) & ~7}s").pack)
"""``_PLUS_NAMED[len(name)](*DIRENTPLUS fields, name)``: a whole ``fuse_direntplus`` record with its name
zero-padded to 8 bytes (the ``s`` code pads) in one call, where a struct, the name and the padding were three
appends: `_pack_plus` packs every entry of a listing (ADR 0088)."""


def _pack_plain(out: DirentSink, first: int, run: Sequence[Entry | StoredEntry]) -> bool:
    """`VfsOperations._pack_plus` for a plain READDIR reply (names, inodes and types only)."""
    buf = out.buffer
    size = out.size
    used = len(buf)
    added = 0
    for off, (name, child, typ, _) in enumerate(run, first):
        namelen = len(name)
        reclen = (DIRENT_SIZE + namelen + 7) & ~7
        used += reclen
        if used > size:
            out.count += added
            return False
        buf += _DIRENT_PACK(child, off, namelen, _DTYPE[typ])
        buf += name
        buf += _PAD[reclen - DIRENT_SIZE - namelen]
        added += 1
    out.count += added
    return True

NODE_ARGUMENTS = ("ino", "parent", "new_parent", "ino_in", "ino_out")
"""Parameters of `VfsOperations` methods that name a kernel node."""


def _serve_subdir(ops: VfsOperations, root: int) -> None:
    """Make `ops` serve directory `root` as the kernel's node 1: every operation taking a node gets an
    instance-level wrapper that translates node 1 to `root` (the names the kernel learns below it are
    ordinary inodes; nothing maps back but the invalidations, see `_KernelCache`)."""
    for name in dir(type(ops)):
        if name.startswith("_"):
            continue
        method = getattr(ops, name)
        if not inspect.iscoroutinefunction(method):
            continue
        params = list(inspect.signature(method).parameters)
        positions = [i for i, p in enumerate(params) if p in NODE_ARGUMENTS]
        if positions:
            setattr(ops, name, _translating(method, positions, root))


def _translating(method: Callable[..., Coroutine[Any, Any, T]], positions: list[int], root: int
                 ) -> Callable[..., Coroutine[Any, Any, T]]:
    @functools.wraps(method)
    def call(*args: Any) -> Coroutine[Any, Any, T]:
        if any(args[i] == ROOT_INODE for i in positions if i < len(args)):
            args = tuple(root if i in positions and a == ROOT_INODE else a for i, a in enumerate(args))
        return method(*args)

    return call


def _stale_when_gone(
    method: Callable[Concatenate[VfsOperations, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[VfsOperations, P], Coroutine[Any, Any, T]]:
    """Answer ESTALE instead of ENOENT from an operation addressed to inodes (the request's node, the
    source of a link, the parent of a new name): ENOENT there means such an inode is gone — removed by
    another client while this kernel still caches a name for it. ESTALE makes the kernel's path walk
    retry once with LOOKUP_REVAL (open, stat, access, chmod, mkdir, ... all do), so the cached name is
    looked up again and the caller gets the present answer instead of an error for a file it never saw
    deleted. On an open descriptor, where there is no path to retry, the caller gets ESTALE, as from NFS."""

    @functools.wraps(method)
    async def run(ops: VfsOperations, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(ops, *args, **kwargs)
        except FileNotFoundError:
            raise FSError(errno.ESTALE) from None

    return run


class VfsOperations(Operations):
    """FUSE operations of one jfs mount, onto its VFS."""

    keeps_write_data = True  # WRITE payloads go into the page lists as they are (no copy on the loop)

    def __init__(self, vfs: VFS, config: MountConfig | None = None, *, root: int = ROOT_INODE) -> None:
        """`root`: the directory of the volume served as the mount's root (``--subdir``); the kernel
        knows it as node 1 (FUSE's root), every request naming node 1 is translated to it."""
        self.vfs = vfs
        self.config = config or MountConfig()
        c = self.config
        ttl = min(c.attr_timeout, c.entry_timeout, c.dir_entry_timeout) if c.readdir_cache else 0.0
        self._listings = KernelListings(ttl)
        self._ctxs: dict[tuple[int, int, int, int], Ctx] = {}
        self._kernel = _KernelCache(self._listings, root)
        if root != ROOT_INODE:
            vfs.root = root
            _serve_subdir(self, root)

    async def init(self, conn: ConnectionInfo) -> None:
        self._kernel.notifier = conn.notifier
        self.vfs.invalidator = self._kernel

    def _named(self, parent: int, name: bytes, out: EntryOut) -> EntryOut:
        self._kernel.named(parent, name, out.entry_timeout)
        return out

    def _added(self, parent: int, name: bytes, out: EntryOut) -> EntryOut:
        """`_named` for a name this mount just made in `parent` (whose listing changed)."""
        self._listings.changed(parent)
        self._kernel.named(parent, name, out.entry_timeout)
        return out

    def _ctx(self, rc: RequestContext) -> Ctx:
        # One (immutable) Ctx per caller, kept: building one per request cost more than the lookup here.
        key = (rc.uid, rc.gid, rc.pid, rc.umask)
        ctx = self._ctxs.get(key)
        if ctx is None:
            if len(self._ctxs) >= CALLERS_KEPT:
                self._ctxs.clear()
            ctx = self._ctxs[key] = self.vfs.ctx(rc.uid, rc.gid, pid=rc.pid, umask=rc.umask)
        return ctx

    # ------------------------------------------------------------------ encoding

    def _attr(self, ino: int, a: JAttr) -> Attr:
        size = 4096 if a.typ is FileType.DIRECTORY else a.length
        return Attr(
            ino, a.st_mode, nlink=a.nlink, uid=a.uid, gid=a.gid, rdev=a.rdev, size=size,
            blksize=65536, atime_ns=a.atime_ns, mtime_ns=a.mtime_ns, ctime_ns=a.ctime_ns,
        )

    def _timeouts(self, ino: int, a: JAttr) -> tuple[float, float]:
        if ino in INTERNAL_INODES:
            return VIRTUAL_TIMEOUT, VIRTUAL_TIMEOUT
        entry = self.config.dir_entry_timeout if a.typ is FileType.DIRECTORY else self.config.entry_timeout
        return entry, self.config.attr_timeout

    def _entry(self, ino: int, a: JAttr) -> EntryOut:
        entry, attr = self._timeouts(ino, a)
        return EntryOut(ino, self._attr(ino, a), generation=1, entry_timeout=entry, attr_timeout=attr)

    @functools.cached_property
    def _dir_valid(self) -> tuple[int, int, int, int]:
        """The (entry s, entry ns, attr s, attr ns) validity of a directory's entry (every one of a listing)."""
        c = self.config
        return (*split_timeout(c.dir_entry_timeout), *split_timeout(c.attr_timeout))

    @functools.cached_property
    def _file_valid(self) -> tuple[int, int, int, int]:
        """`_dir_valid` of any other entry."""
        c = self.config
        return (*split_timeout(c.entry_timeout), *split_timeout(c.attr_timeout))

    def _entry_fields(self, ino: int, a: JAttr) -> tuple[int, ...]:
        """``self._entry(ino, a).pack_fields()`` without building the objects (every entry of a listing)."""
        typ = a.typ
        if ino in INTERNAL_INODES:
            es, ens, as_, ans = (*split_timeout(VIRTUAL_TIMEOUT), *split_timeout(VIRTUAL_TIMEOUT))
        else:
            es, ens, as_, ans = self._dir_valid if typ is FileType.DIRECTORY else self._file_valid
        size = 4096 if typ is FileType.DIRECTORY else a.length
        asec, ansec = divmod(a.atime_ns, 1_000_000_000)
        msec, mnsec = divmod(a.mtime_ns, 1_000_000_000)
        csec, cnsec = divmod(a.ctime_ns, 1_000_000_000)
        return (ino, 1, es, as_, ens, ans, ino, size, (size + 511) >> 9, asec, msec, csec, ansec, mnsec, cnsec,
                _S_IFMT[typ] | (a.mode & 0o7777), a.nlink, a.uid, a.gid, a.rdev, 65536, 0)  # fmt: skip

    # ------------------------------------------------------------------ names

    async def lookup(self, ctx: RequestContext, parent: int, name: bytes) -> EntryOut | tuple[int, ...]:
        try:
            ino, attr = await self.vfs.lookup(self._ctx(ctx), parent, name, dir_known=True)
        except FileNotFoundError:
            if self.config.negative_timeout > 0:
                return EntryOut.negative(self.config.negative_timeout)
            raise
        # The reply's field values straight from the record (the most frequent request: no Attr, EntryOut).
        c = self.config
        if ino in INTERNAL_INODES:
            entry_timeout = VIRTUAL_TIMEOUT
        else:
            entry_timeout = c.dir_entry_timeout if attr.typ is _DIRECTORY else c.entry_timeout
        self._kernel.named(parent, name, entry_timeout)
        return self._entry_fields(ino, attr)

    @_stale_when_gone
    async def getattr(self, ctx: RequestContext, ino: int, fh: int | None) -> AttrOut:
        # A directory this mount has just changed (the kernel drops its attributes then and asks again at the
        # next path walk) is answered from what the change's commit left, on engines that keep it (etcd),
        # and the kernel may keep that for the attribute timeout less its age: as long as if it had asked
        # when the commit was sent (docs/adr/0043-etcd-directory-attributes-known-from-own-commits.md).
        attr, age = await self.vfs.getattr_recent(self._ctx(ctx), ino, self.config.attr_timeout)
        return AttrOut(self._attr(ino, attr), self._timeouts(ino, attr)[1] - age)

    def getattr_now(self, ctx: RequestContext, ino: int) -> AttrOut | None:
        # `getattr`'s answer from this mount's own change (ADR 0037) without a task and three coroutines
        # per request (docs/adr/0054-mount-requests-answered-in-place-and-listings-packed-in-runs.md). The
        # root goes the usual way: under --subdir the kernel's node 1 is translated there.
        if ino == ROOT_INODE:
            return None
        known = self.vfs.getattr_known(self._ctx(ctx), ino, self.config.attr_timeout)
        if known is None:
            return None
        attr, age = known
        return AttrOut(self._attr(ino, attr), self._timeouts(ino, attr)[1] - age)

    @_stale_when_gone
    async def setattr(self, ctx: RequestContext, ino: int, req: SetattrRequest) -> AttrOut:
        change = SetAttr(
            mode=None if req.mode is None else req.mode & 0o7777,
            uid=req.uid,
            gid=req.gid,
            atime=NOW if req.atime_now else req.atime_ns,
            mtime=NOW if req.mtime_now else req.mtime_ns,
            size=req.size,
        )
        attr = await self.vfs.setattr(self._ctx(ctx), ino, change)
        return AttrOut(self._attr(ino, attr), self.config.attr_timeout)

    @_stale_when_gone
    async def readlink(self, ctx: RequestContext, ino: int) -> bytes:
        return await self.vfs.readlink(self._ctx(ctx), ino)

    @_stale_when_gone
    async def mknod(self, ctx: RequestContext, parent: int, name: bytes, mode: int, rdev: int) -> EntryOut:
        typ = FileType.from_mode(mode)
        if typ in (FileType.DIRECTORY, FileType.SYMLINK):
            raise FSError(errno.EINVAL)
        return self._added(parent, name, self._entry(*await self.vfs.mknod(self._ctx(ctx), parent, name, typ, mode, rdev)))

    @_stale_when_gone
    async def mkdir(self, ctx: RequestContext, parent: int, name: bytes, mode: int) -> EntryOut:
        return self._added(parent, name, self._entry(*await self.vfs.mkdir(self._ctx(ctx), parent, name, mode)))

    @_stale_when_gone
    async def symlink(self, ctx: RequestContext, parent: int, name: bytes, target: bytes) -> EntryOut:
        return self._added(parent, name, self._entry(*await self.vfs.symlink(self._ctx(ctx), parent, name, target)))

    @_stale_when_gone
    async def link(self, ctx: RequestContext, ino: int, new_parent: int, new_name: bytes) -> EntryOut:
        return self._added(new_parent, new_name, self._entry(*await self.vfs.link(self._ctx(ctx), ino, new_parent, new_name)))

    async def unlink(self, ctx: RequestContext, parent: int, name: bytes) -> None:
        try:
            await self.vfs.unlink(self._ctx(ctx), parent, name)
        finally:  # after the change too: a listing may have begun while it was under way
            self._listings.changed(parent)

    async def rmdir(self, ctx: RequestContext, parent: int, name: bytes) -> None:
        try:
            await self.vfs.rmdir(self._ctx(ctx), parent, name)
        finally:
            self._listings.changed(parent)

    async def rename(self, ctx: RequestContext, parent: int, name: bytes, new_parent: int, new_name: bytes,
                     flags: int) -> None:
        try:
            await self.vfs.rename(self._ctx(ctx), parent, name, new_parent, new_name, flags)
        finally:
            self._listings.changed(parent)
            self._listings.changed(new_parent)

    # ------------------------------------------------------------------ files

    @_stale_when_gone
    async def open(self, ctx: RequestContext, ino: int, flags: int) -> OpenOut:
        # A `.control` request runs as the user who wrote it, with supplementary groups.
        c = _caller(ctx, self.vfs) if ino in INTERNAL_INODES else self._ctx(ctx)
        f = await self.vfs.open(c, ino, flags)
        return OpenOut(f.fh, keep_cache=f.keep_cache, direct_io=f.direct_io)

    @_stale_when_gone
    async def create(self, ctx: RequestContext, parent: int, name: bytes, mode: int,
                     flags: int) -> tuple[EntryOut, OpenOut]:
        ino, attr, f = await self.vfs.create(self._ctx(ctx), parent, name, mode, flags)
        return self._added(parent, name, self._entry(ino, attr)), OpenOut(f.fh)

    @_stale_when_gone
    async def read(self, ctx: RequestContext, ino: int, fh: int, offset: int, size: int) -> ReadResult:
        return await self.vfs.read(None, ino, fh, offset, size)

    def read_now(self, ino: int, fh: int, offset: int, size: int) -> ReadResult | None:
        return self.vfs.read_now(ino, fh, offset, size)

    @_stale_when_gone
    async def write(self, ctx: RequestContext, ino: int, fh: int, offset: int, data: memoryview,
                    write_flags: int) -> int:
        # A big payload is kept as a view of the request buffer (the server hands the buffer over); a small
        # one is copied, or it would pin a whole request buffer (max_write bytes) for a few bytes. A placed
        # payload (read into the buffer `write_target` offered) is the data path's own already.
        owned = len(data) >= KEEP_WRITE_BUFFER_MIN or type(data.obj) is BlockArena
        c = _caller(ctx, self.vfs) if ino in INTERNAL_INODES else None
        return await self.vfs.write(c, ino, fh, offset, data if owned else bytes(data), owned=owned)

    def write_target(self, ino: int, fh: int, offset: int) -> memoryview | None:
        return self.vfs.write_target(ino, fh, offset)

    @_stale_when_gone
    async def flush(self, ctx: RequestContext, ino: int, fh: int, lock_owner: int) -> None:
        await self.vfs.flush(self._ctx(ctx), ino, fh, lock_owner)

    async def release(self, ctx: RequestContext, ino: int, fh: int, flags: int, flock_owner: int | None) -> None:
        await self.vfs.release(self._ctx(ctx), ino, fh, flock_owner)

    def flush_now(self, ctx: RequestContext, ino: int, fh: int, lock_owner: int) -> bool:
        return self.vfs.flush_now(self._ctx(ctx), ino, fh, lock_owner)

    def release_now(self, ctx: RequestContext, ino: int, fh: int, flags: int, flock_owner: int | None) -> bool:
        return self.vfs.release_now(self._ctx(ctx), ino, fh, flock_owner)

    @_stale_when_gone
    async def fsync(self, ctx: RequestContext, ino: int, fh: int, datasync: bool) -> None:
        await self.vfs.fsync(self._ctx(ctx), ino, fh, datasync)

    @_stale_when_gone
    async def fallocate(self, ctx: RequestContext, ino: int, fh: int, offset: int, length: int, mode: int) -> None:
        await self.vfs.fallocate(self._ctx(ctx), ino, offset, length, mode)

    @_stale_when_gone
    async def copy_file_range(self, ctx: RequestContext, ino_in: int, fh_in: int, off_in: int, ino_out: int,
                              fh_out: int, off_out: int, length: int, flags: int) -> int:
        return await self.vfs.copy_file_range(self._ctx(ctx), ino_in, off_in, ino_out, off_out, length, flags)

    @_stale_when_gone
    async def lseek(self, ctx: RequestContext, ino: int, fh: int, offset: int, whence: int) -> int:
        return await self.vfs.lseek(self._ctx(ctx), ino, offset, whence)

    # ------------------------------------------------------------------ directories

    @_stale_when_gone
    async def opendir(self, ctx: RequestContext, ino: int, flags: int) -> OpenOut:
        fh = await self.vfs.opendir(self._ctx(ctx), ino)
        if is_trash_inode(ino):  # filled and emptied by every client's removals and the trash cleaner
            return OpenOut(fh)
        keep = self._listings.keep(ino)
        return OpenOut(fh, cache_dir=self._listings.ttl > 0, keep_cache=keep)

    @_stale_when_gone
    async def readdir(self, ctx: RequestContext, ino: int, fh: int, offset: int, out: DirentSink) -> None:
        plus = out.plus
        if offset == 0:
            self._listings.started(fh, ino)
        if not plus:  # names without attributes: not a listing the kernel may keep (ADR 0080)
            self._listings.unattributed(fh)
        # A run never needs more entries than the smallest records fill the reply with.
        most = out.size // (DIRENTPLUS_SIZE if plus else DIRENT_SIZE) + 1
        pack = self._pack_plus if plus else _pack_plain
        # aclosing: a full buffer ends the iteration early, and the listing's lock must go with it.
        runs_of = self.vfs.readdir_runs(self._ctx(ctx), ino, fh, offset, plus=plus, limit=most, records=plus)
        async with aclosing(runs_of) as runs:
            async for first, run in runs:
                if not pack(out, first, run):
                    return
        self._listings.finished(fh)

    def _pack_plus(self, out: DirentSink, first: int, run: Sequence[Entry | StoredEntry]) -> bool:
        """Append `run` (``run[k]`` resumes at ``first + k``) to a READDIRPLUS reply as far as it fits; False
        when it did not all fit. The records of `DirentSink.add` with `_entry_fields`, packed in one pass
        (no DirEntry per entry: a listing packs thousands). An attribute given as the
        stored record (`readdir_runs(records=True)`) is packed from its fields without an `Attr`
        (`jfs.app.vfs.listing_view`, ADR 0071); any other record is decoded and goes through `visible`."""
        buf = out.buffer
        size = out.size
        used = len(buf)
        visible = self.vfs.visible
        open_inodes = self.vfs.open_inodes
        record_fields = record_view(self.vfs.local_length, open_inodes)
        unpack_record = PLAIN_RECORD.unpack_from
        decode = JAttr.decode
        dir_valid, file_valid = self._dir_valid, self._file_valid
        added = 0
        plus_reclen, plus_named = _PLUS_RECLEN, _PLUS_NAMED
        for off, (name, child, typ, attr) in enumerate(run, first):
            namelen = len(name)
            used += plus_reclen[namelen]
            if used > size:
                out.count += added
                return False
            if attr is None:
                buf += plus_named[namelen](*_NEG_ENTRY_FIELDS, child, off, namelen, _DTYPE[typ], name)
                added += 1
                continue
            if child in INTERNAL_INODES:
                es, ens, as_, ans = _VIRTUAL_VALID
            elif typ is _DIRECTORY:
                es, ens, as_, ans = dir_valid
            else:
                es, ens, as_, ans = file_valid
            # A plain record is unpacked here; `record_view` only where `VIEWED_PARENTS`' contract says it may
            # change a field (an inode open here, a parent in the trash). Other records: decoded, `visible`.
            if type(attr) is bytes and len(attr) == PLAIN_RECORD_SIZE and attr[1] >> 4 in RECORD_TYPES:
                (_, mode, uid, gid, asec, ansec, msec, mnsec, csec, cnsec, nlink, length, rdev,
                 parent) = unpack_record(attr)  # fmt: skip
                mode &= 0o7777
                if parent >= VIEWED_PARENTS or child in open_inodes:
                    fields = record_fields(child, attr)
                    assert fields is not None  # a plain record always has its fields
                    mode, nlink, uid, gid, rdev, length, asec, ansec, msec, mnsec, csec, cnsec = fields
            else:
                a = visible(child, decode(attr) if isinstance(attr, bytes) else attr)
                asec, ansec = divmod(a.atime_ns, 1_000_000_000)
                msec, mnsec = divmod(a.mtime_ns, 1_000_000_000)
                csec, cnsec = divmod(a.ctime_ns, 1_000_000_000)
                mode, nlink, uid, gid, rdev, length = a.mode & 0o7777, a.nlink, a.uid, a.gid, a.rdev, a.length
            if typ is _DIRECTORY:
                length = 4096
            buf += plus_named[namelen](
                child, 1, es, as_, ens, ans, child, length, (length + 511) >> 9, asec, msec, csec, ansec, mnsec,
                cnsec, _S_IFMT[typ] | mode, nlink, uid, gid, rdev, 65536, 0, child, off, namelen, _DTYPE[typ], name)  # fmt: skip
            added += 1
        out.count += added
        return True

    async def releasedir(self, ctx: RequestContext, ino: int, fh: int) -> None:
        self._listings.closed(fh)
        await self.vfs.releasedir(self._ctx(ctx), ino, fh)

    async def fsyncdir(self, ctx: RequestContext, ino: int, fh: int, datasync: bool) -> None:
        return None

    # ------------------------------------------------------------------ volume, xattrs, locks

    async def statfs(self, ctx: RequestContext, ino: int) -> StatFs:
        total, avail, files, ffree = await self.vfs.statfs(self._ctx(ctx))
        bsize = 4096
        return StatFs(blocks=total // bsize, bfree=avail // bsize, bavail=avail // bsize, files=files, ffree=ffree,
                      bsize=bsize, namelen=255)

    @_stale_when_gone
    async def access(self, ctx: RequestContext, ino: int, mask: int) -> None:
        await self.vfs.access(self._ctx(ctx), ino, mask)

    @_stale_when_gone
    async def setxattr(self, ctx: RequestContext, ino: int, name: bytes, value: bytes, flags: int) -> None:
        await self.vfs.setxattr(self._ctx(ctx), ino, name, value, flags)

    @_stale_when_gone
    async def getxattr(self, ctx: RequestContext, ino: int, name: bytes) -> bytes:
        return await self.vfs.getxattr(self._ctx(ctx), ino, name)

    @_stale_when_gone
    async def listxattr(self, ctx: RequestContext, ino: int) -> Sequence[bytes]:
        return await self.vfs.listxattr(self._ctx(ctx), ino)

    @_stale_when_gone
    async def removexattr(self, ctx: RequestContext, ino: int, name: bytes) -> None:
        await self.vfs.removexattr(self._ctx(ctx), ino, name)

    @_stale_when_gone
    async def getlk(self, ctx: RequestContext, ino: int, fh: int, owner: int, lock: FileLock) -> FileLock:
        typ, start, end, pid = await self.vfs.getlk(self._ctx(ctx), ino, owner, lock.type, lock.start, lock.end)
        return FileLock(start, end, typ, pid)

    @_stale_when_gone
    async def setlk(self, ctx: RequestContext, ino: int, fh: int, owner: int, lock: FileLock, sleep: bool) -> None:
        await self.vfs.setlk(self._ctx(ctx), ino, owner, lock.type, lock.start, lock.end, block=sleep)

    @_stale_when_gone
    async def flock(self, ctx: RequestContext, ino: int, fh: int, owner: int, type: int, sleep: bool) -> None:
        await self.vfs.flock(self._ctx(ctx), ino, owner, {0: "R", 1: "W", 2: "U"}[type], block=sleep)


def _caller(rc: RequestContext, vfs: VFS) -> Ctx:
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

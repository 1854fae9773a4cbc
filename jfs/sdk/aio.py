"""`AsyncClient`: a jfs volume in-process, with an asyncio API modelled on `os`, `os.path`, `shutil` and
`open()` — no FUSE, no root.

It is a full client of the volume (a session in `jfs status`, heartbeats, locks, trash, quotas, the
close-to-open rules of a mount). Paths are relative to the client's root (``subdir``); ``/a`` and ``a`` are
the same. Errors are the built-in `OSError` subclasses (FileNotFoundError, PermissionError, …) with errno
and the path; a volume that cannot be opened raises `jfs.app.errors.VolumeError` (one line).
"""

from __future__ import annotations

import errno
import functools
import os
import stat as stat_mod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from jfs.app import tree_jobs
from jfs.app.meta import Ctx
from jfs.app.meta.setattr import NOW, SetAttr
from jfs.bootstrap import Client, ClientOptions, open_client
from jfs.domain.attrs import ROOT_INODE, Attr, FileType, is_trash_inode
from jfs.domain.errors import FSError
from jfs.sdk.async_files import AsyncFile, AsyncTextFile
from jfs.sdk.errors import os_error
from jfs.sdk.modes import parse_mode
from jfs.sdk.stat import stat_result

T = TypeVar("T")
PathLike = str | bytes | os.PathLike[str]


def quiet_logs() -> None:
    """Unless the application configured structlog itself, jfs logs warnings and errors only, on stderr
    (structlog's default would print every debug event on stdout)."""
    import logging
    import sys

    import structlog

    if not structlog.is_configured():
        structlog.configure(
            processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso"),
                        structlog.processors.LogfmtRenderer(key_order=["timestamp", "level", "event"])],
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        )


def fspath(path: PathLike) -> str:
    p = os.fspath(path)
    return os.fsdecode(p)


def options_from(**kw: Any) -> ClientOptions:
    """ClientOptions from keyword arguments, sizes accepted with units (``cache_size="10G"``)."""
    from jfs.sdk.modes import parse_size

    for key in ("cache_size", "buffer_size"):
        if key in kw and isinstance(kw[key], str):
            kw[key] = parse_size(kw[key])
    unknown = set(kw) - set(ClientOptions.__slots__)  # type: ignore[attr-defined]
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    return ClientOptions(**kw)


@dataclass(frozen=True, slots=True)
class DirEntry:
    """An entry of `scandir`, like `os.DirEntry` (attributes read with the listing)."""

    name: str
    path: str
    inode_number: int
    attr: Attr

    def inode(self) -> int:
        return self.inode_number

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self.attr.typ is FileType.DIRECTORY

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return self.attr.typ is FileType.REGULAR

    def is_symlink(self) -> bool:
        return self.attr.typ is FileType.SYMLINK

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return stat_result(self.inode_number, self.attr)


class AsyncClient:
    """One client of a volume. ``async with AsyncClient(meta_url, **options) as c:`` or
    ``c = await AsyncClient.connect(...)`` … ``await c.close()``.

    Options are those of `jfs.bootstrap.ClientOptions` (cache_dir, cache_size, buffer_size, read_only,
    subdir, …). Not thread-safe: use it from one event loop (the sync `jfs.Client` is safe from threads).
    """

    def __init__(self, meta_url: str, **options: Any) -> None:
        quiet_logs()
        self.meta_url = meta_url
        self._options = options_from(**options)
        self._client: Client | None = None
        umask = os.umask(0)
        os.umask(umask)
        self.ctx = Ctx(uid=os.getuid(), gid=os.getgid(), groups=frozenset(os.getgroups()), pid=os.getpid(),
                       umask=umask, check=True)
        self._lock_owner = id(self)

    @classmethod
    async def connect(cls, meta_url: str, **options: Any) -> AsyncClient:
        c = cls(meta_url, **options)
        await c.open_volume()
        return c

    async def open_volume(self) -> None:
        if self._client is None:
            self._client = await open_client(self.meta_url, self._options)

    async def __aenter__(self) -> AsyncClient:
        await self.open_volume()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Commit buffered data, end the session, release every connection (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    @property
    def client(self) -> Client:
        if self._client is None:
            raise ValueError("the client is closed (or not opened yet)")
        return self._client

    @property
    def name(self) -> str:
        """The volume's name."""
        return self.client.meta.settings.name

    async def _call(self, path: PathLike | None, run: Callable[[], Awaitable[T]], path2: PathLike | None = None) -> T:
        """Run `run`; an FSError becomes the built-in OSError subclass with the path(s)."""
        try:
            return await run()
        except FSError as exc:
            raise os_error(exc, path, path2) from None

    # ------------------------------------------------------------------ resolution

    async def _resolve(self, path: PathLike, *, follow: bool = True) -> tuple[int, Attr]:
        return await self.client.paths.resolve(self.ctx, fspath(path), follow=follow)

    async def _parent(self, path: PathLike) -> tuple[int, bytes]:
        return await self.client.paths.resolve_parent(self.ctx, fspath(path))

    # ------------------------------------------------------------------ os.path

    async def stat(self, path: PathLike, *, follow_symlinks: bool = True) -> os.stat_result:
        async def run() -> os.stat_result:
            ino, attr = await self._resolve(path, follow=follow_symlinks)
            return stat_result(ino, attr)

        return await self._call(path, run)

    async def lstat(self, path: PathLike) -> os.stat_result:
        return await self.stat(path, follow_symlinks=False)

    async def exists(self, path: PathLike) -> bool:
        try:
            await self.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    async def isdir(self, path: PathLike) -> bool:
        try:
            return stat_mod.S_ISDIR((await self.stat(path)).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False

    async def isfile(self, path: PathLike) -> bool:
        try:
            return stat_mod.S_ISREG((await self.stat(path)).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False

    async def islink(self, path: PathLike) -> bool:
        try:
            return stat_mod.S_ISLNK((await self.lstat(path)).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False

    async def getsize(self, path: PathLike) -> int:
        return (await self.stat(path)).st_size

    # ------------------------------------------------------------------ directories

    async def scandir(self, path: PathLike = "/") -> list[DirEntry]:
        """The entries of a directory with their attributes, in name order (no ``.``/``..``)."""
        base = fspath(path).rstrip("/")

        async def run() -> list[DirEntry]:
            ino, attr = await self._resolve(path)
            if attr.typ is not FileType.DIRECTORY:
                raise FSError(errno.ENOTDIR)
            entries = await self.client.vfs.listdir(self.ctx, ino, plus=True)
            return [DirEntry(os.fsdecode(e.name), f"{base}/{os.fsdecode(e.name)}", e.ino, e.attr)
                    for e in entries if e.attr is not None]

        return await self._call(path, run)

    async def listdir(self, path: PathLike = "/") -> list[str]:
        base_ino: list[int] = []

        async def run() -> list[str]:
            ino, attr = await self._resolve(path)
            if attr.typ is not FileType.DIRECTORY:
                raise FSError(errno.ENOTDIR)
            base_ino.append(ino)
            return [os.fsdecode(e.name) for e in await self.client.vfs.listdir(self.ctx, ino)]

        return await self._call(path, run)

    async def walk(self, top: PathLike = "/", topdown: bool = True) -> AsyncIterator[tuple[str, list[str], list[str]]]:
        """Like `os.walk` (symlinks to directories are not followed)."""
        top_s = fspath(top)
        try:
            entries = await self.scandir(top_s)
        except OSError:
            return
        dirs = [e.name for e in entries if e.is_dir()]
        files = [e.name for e in entries if not e.is_dir()]
        if topdown:
            yield top_s, dirs, files
        for d in dirs:
            async for item in self.walk(f"{top_s.rstrip('/')}/{d}", topdown):
                yield item
        if not topdown:
            yield top_s, dirs, files

    async def mkdir(self, path: PathLike, mode: int = 0o777) -> None:
        async def run() -> None:
            parent, name = await self._parent(path)
            await self.client.vfs.mkdir(self.ctx, parent, name, mode)

        await self._call(path, run)

    async def makedirs(self, path: PathLike, mode: int = 0o777, exist_ok: bool = False) -> None:
        parts = [p for p in fspath(path).split("/") if p and p != "."]
        for i in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:i])
            try:
                await self.mkdir(sub, mode)
            except FileExistsError:
                if i == len(parts) and not exist_ok:
                    raise
                if not await self.isdir(sub):
                    raise
        if not parts and not exist_ok:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), fspath(path))

    async def rmdir(self, path: PathLike) -> None:
        async def run() -> None:
            parent, name = await self._parent(path)
            await self.client.vfs.rmdir(self.ctx, parent, name)

        await self._call(path, run)

    async def remove(self, path: PathLike) -> None:
        async def run() -> None:
            parent, name = await self._parent(path)
            await self.client.vfs.unlink(self.ctx, parent, name)

        await self._call(path, run)

    unlink = remove

    async def rmtree(self, path: PathLike, *, threads: int = 16) -> dict[str, int]:
        """Remove a directory tree (or a file) on the server side, as `jfs rmr`: page by page, in parallel;
        files go to the trash when it is on. Returns the counts removed."""
        async def run() -> dict[str, int]:
            parent, name = await self._parent(path)
            if self.client.vfs.config.read_only:
                raise FSError(errno.EROFS)
            try:
                return await tree_jobs.remove_tree(self.client.meta, parent, name, threads=threads, ctx=self.ctx)
            finally:
                if self.client.vfs.names is not None:
                    self.client.vfs.names.clear()

        return await self._call(path, run)

    # ------------------------------------------------------------------ names

    async def rename(self, src: PathLike, dst: PathLike, *, flags: int = 0) -> None:
        """rename(2): replaces a file or an empty directory at `dst` (RENAME_NOREPLACE/EXCHANGE via flags)."""
        async def run() -> None:
            sp, sn = await self._parent(src)
            dp, dn = await self._parent(dst)
            await self.client.vfs.rename(self.ctx, sp, sn, dp, dn, flags)

        await self._call(src, run, dst)

    replace = rename

    async def link(self, src: PathLike, dst: PathLike) -> None:
        async def run() -> None:
            ino, _ = await self._resolve(src, follow=False)
            dp, dn = await self._parent(dst)
            await self.client.vfs.link(self.ctx, ino, dp, dn)

        await self._call(src, run, dst)

    async def symlink(self, target: PathLike, path: PathLike) -> None:
        """Create `path` as a symbolic link to `target` (argument order of `os.symlink`)."""
        async def run() -> None:
            parent, name = await self._parent(path)
            await self.client.vfs.symlink(self.ctx, parent, name, os.fsencode(target))

        await self._call(path, run)

    async def readlink(self, path: PathLike) -> str:
        async def run() -> str:
            ino, attr = await self._resolve(path, follow=False)
            if attr.typ is not FileType.SYMLINK:
                raise FSError(errno.EINVAL)
            return os.fsdecode(await self.client.vfs.readlink(self.ctx, ino))

        return await self._call(path, run)

    # ------------------------------------------------------------------ attributes

    async def _setattr(self, path: PathLike, change: SetAttr, *, follow: bool = True) -> None:
        async def run() -> None:
            ino, _ = await self._resolve(path, follow=follow)
            await self.client.vfs.setattr(self.ctx, ino, change)

        await self._call(path, run)

    async def chmod(self, path: PathLike, mode: int, *, follow_symlinks: bool = True) -> None:
        await self._setattr(path, SetAttr(mode=mode & 0o7777), follow=follow_symlinks)

    async def chown(self, path: PathLike, uid: int, gid: int, *, follow_symlinks: bool = True) -> None:
        await self._setattr(path, SetAttr(uid=None if uid == -1 else uid, gid=None if gid == -1 else gid),
                            follow=follow_symlinks)

    async def utime(self, path: PathLike, times: tuple[float, float] | None = None, *,
                    ns: tuple[int, int] | None = None, follow_symlinks: bool = True) -> None:
        """Like `os.utime`: (atime, mtime) in seconds or `ns` in nanoseconds; neither = now."""
        if ns is not None:
            change = SetAttr(atime=ns[0], mtime=ns[1])
        elif times is not None:
            change = SetAttr(atime=int(times[0] * 1e9), mtime=int(times[1] * 1e9))
        else:
            change = SetAttr(atime=NOW, mtime=NOW)
        await self._setattr(path, change, follow=follow_symlinks)

    async def truncate(self, path: PathLike, length: int) -> None:
        await self._setattr(path, SetAttr(size=length))

    async def getxattr(self, path: PathLike, name: str | bytes, *, follow_symlinks: bool = True) -> bytes:
        async def run() -> bytes:
            ino, _ = await self._resolve(path, follow=follow_symlinks)
            return await self.client.vfs.getxattr(self.ctx, ino, os.fsencode(name))

        return await self._call(path, run)

    async def setxattr(self, path: PathLike, name: str | bytes, value: bytes, flags: int = 0, *,
                       follow_symlinks: bool = True) -> None:
        async def run() -> None:
            ino, _ = await self._resolve(path, follow=follow_symlinks)
            await self.client.vfs.setxattr(self.ctx, ino, os.fsencode(name), bytes(value), flags)

        await self._call(path, run)

    async def listxattr(self, path: PathLike, *, follow_symlinks: bool = True) -> list[str]:
        async def run() -> list[str]:
            ino, _ = await self._resolve(path, follow=follow_symlinks)
            return [os.fsdecode(n) for n in await self.client.vfs.listxattr(self.ctx, ino)]

        return await self._call(path, run)

    async def removexattr(self, path: PathLike, name: str | bytes, *, follow_symlinks: bool = True) -> None:
        async def run() -> None:
            ino, _ = await self._resolve(path, follow=follow_symlinks)
            await self.client.vfs.removexattr(self.ctx, ino, os.fsencode(name))

        await self._call(path, run)

    async def statvfs(self) -> dict[str, int]:
        """Total and available bytes and inodes of the volume."""
        total, avail, files, ffree = await self.client.vfs.statfs(self.ctx)
        return {"total_space": total, "avail_space": avail, "total_inodes": files, "avail_inodes": ffree}

    # ------------------------------------------------------------------ tools

    async def summary(self, path: PathLike = "/", *, depth: int = 0, entries: int = 10) -> dict[str, Any]:
        """Recursive totals (files, dirs, length, space) of a tree, like `jfs summary`."""
        async def run() -> dict[str, Any]:
            ino, _ = await self._resolve(path)
            return await tree_jobs.summary_tree(self.client.meta, ino, fspath(path), depth=depth, entries=entries,
                                            ctx=self.ctx)

        return await self._call(path, run)

    async def warmup(self, *paths: PathLike, threads: int = 16) -> dict[str, Any]:
        """Load the blocks of files (directories: recursively) into the local caches, like `jfs warmup`."""
        inodes = []
        for p in paths:
            ino, _ = await self._call(p, lambda at=p: self._resolve(at))  # type: ignore[misc]
            inodes.append(ino)
        return await tree_jobs.warmup(self.client.meta, self.client.data, inodes, threads=threads, ctx=self.ctx)

    async def copy_file(self, src: PathLike, dst: PathLike) -> int:
        """Copy a file's content by slice reference (no data is read or written); returns the bytes copied.
        `dst` is created or truncated."""
        async with await self.open(src, "rb") as fin:
            length = (await self.stat(src)).st_size
            async with await self.open(dst, "wb") as fout:
                done = 0
                while done < length:
                    n = await self._call(src, functools.partial(
                        self.client.vfs.copy_file_range, self.ctx, fin.ino, done, fout.ino, done, length - done), dst)
                    if n == 0:
                        break
                    done += n
                return done

    # ------------------------------------------------------------------ files

    async def open(self, path: PathLike, mode: str = "r", buffering: int = -1, encoding: str | None = None,
                   errors: str | None = None, newline: str | None = None, *, perm: int = 0o666) -> Any:
        """Open a file like the built-in `open()`; returns an `AsyncFile` (binary) or `AsyncTextFile`."""
        m = parse_mode(mode)
        if m.binary and (encoding is not None or errors is not None or newline is not None):
            raise ValueError("binary mode doesn't take an encoding, errors or newline argument")
        try:
            ino, fh = await self._open_handle(path, m.flags, perm)
        except FSError as exc:
            raise os_error(exc, path) from None
        f = AsyncFile(self, fspath(path), ino, fh, m)
        if m.binary:
            return f
        return AsyncTextFile(f, encoding or "utf-8", errors or "strict", newline)

    async def _open_handle(self, path: PathLike, flags: int, perm: int) -> tuple[int, int]:
        """(inode, handle) for open(2) `flags` on `path`.

        With O_CREAT and a name this client does not know, the create is tried first (one transaction that
        fails with EEXIST when the name exists) instead of a lookup that would fail with ENOENT first; on
        any failure of it the general path below decides, so errors are those of open(2) (an existing
        file opens even where a create would be refused: a read-only directory, an inode quota)."""
        vfs = self.client.vfs
        if flags & os.O_CREAT:
            parent, name = await self._parent(path)
            if self._may_create_first(parent, name):
                try:
                    ino, _, f = await vfs.create(self.ctx, parent, name, perm, flags)
                    return ino, f.fh
                except FSError:
                    pass
        while True:
            names = vfs.names
            stored = names.stored if names is not None else 0
            try:
                ino, attr = await self._resolve(path)
            except FSError as exc:
                if exc.errno != errno.ENOENT or not flags & os.O_CREAT:
                    raise
                parent, name = await self._parent(path)
                try:
                    ino, _, f = await vfs.create(self.ctx, parent, name, perm, flags)
                except FSError as exc2:
                    if exc2.errno == errno.EEXIST and not flags & os.O_EXCL:
                        continue  # created meanwhile by someone else: open it
                    raise
                return ino, f.fh
            if flags & os.O_CREAT and flags & os.O_EXCL:
                raise FSError(errno.EEXIST)
            if attr.typ is FileType.DIRECTORY:
                raise FSError(errno.EISDIR)
            f = await vfs.open(self.ctx, ino, flags, fresh=self._fresh(ino, attr, flags, stored))
            return ino, f.fh

    def _fresh(self, ino: int, attr: Attr, flags: int, stored: int) -> Attr | None:
        """`attr` when the open may take it as read (`VFS.open`'s `fresh`): this call's path walk read it from
        the engine (not the name cache), for a read-only open of a regular file outside the trash (whose
        attributes `VFS.visible` leaves as stored)."""
        names = self.client.vfs.names
        if (names is None or flags & (os.O_ACCMODE | os.O_TRUNC) != os.O_RDONLY or attr.typ is not FileType.REGULAR
                or is_trash_inode(attr.parent) or names.fresh_since(ino, stored) is not attr):
            return None
        return attr

    def _may_create_first(self, parent: int, name: bytes) -> bool:
        """Whether `name` in `parent` is neither known to the name cache nor one the VFS answers itself
        (``.control``, the virtual files and ``.trash`` of the root)."""
        vfs = self.client.vfs
        if name == b".control" or (parent in (vfs.root, ROOT_INODE) and name.startswith(b".")):
            return False
        return vfs.names is None or vfs.names.entry(parent, name) is None

    async def stat_and_read(self, path: PathLike, limit: int) -> tuple[os.stat_result, bytes | None]:
        """`stat(path)` and, for a regular file of at most `limit` bytes, its content — with one path walk,
        whose engine read the open reuses (a small file: two metadata reads, not three). The content is
        None for anything else, and when opening or reading fails (a `read_bytes` then says why); errors
        of the stat are raised as by `stat`."""
        names = self.client.vfs.names
        stored = names.stored if names is not None else 0
        ino, attr = await self._call(path, lambda: self._resolve(path))
        st = stat_result(ino, attr)
        if attr.typ is not FileType.REGULAR or attr.length > limit:
            return st, None
        vfs = self.client.vfs
        try:
            opened = await self._call(path, lambda: vfs.open(
                self.ctx, ino, os.O_RDONLY, fresh=self._fresh(ino, attr, os.O_RDONLY, stored)))
            f = AsyncFile(self, fspath(path), ino, opened.fh, parse_mode("rb"))
            try:
                data: bytes = await f.read(attr.length)
            finally:
                await f.close()
        except OSError:
            return st, None
        return st, data

    async def read_bytes(self, path: PathLike) -> bytes:
        async with await self.open(path, "rb") as f:
            data: bytes = await f.read()
            return data

    async def write_bytes(self, path: PathLike, data: bytes) -> int:
        async with await self.open(path, "wb") as f:
            n: int = await f.write(data)
            return n

    async def read_text(self, path: PathLike, encoding: str = "utf-8") -> str:
        return (await self.read_bytes(path)).decode(encoding)

    async def write_text(self, path: PathLike, text: str, encoding: str = "utf-8") -> int:
        return await self.write_bytes(path, text.encode(encoding))

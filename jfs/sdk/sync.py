"""`Client`: the synchronous SDK. An `AsyncClient` runs on one event loop (`jfs.sdk.loop.ClientLoop`): a
thread that makes a call runs the loop itself when no other thread does and the background thread only
while no caller does (``JFS_SDK_LOOP=thread``: the background thread runs it and every call is handed to it); so
one `Client` is safe to use from several threads at once. `open()` returns real
`io` objects (buffered binary, or `io.TextIOWrapper` for text) as the built-in `open()` does.

Closed by `close()`, by leaving a ``with`` block, or at interpreter exit: buffered data is committed and
the session removed.
"""

from __future__ import annotations

import atexit
import errno
import io
import os
import stat as stat_mod
import threading
import weakref
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from jfs.sdk.aio import AsyncClient, DirEntry, PathLike, fspath
from jfs.sdk.async_files import AsyncFile
from jfs.sdk.loop import ClientLoop as _LoopThread
from jfs.sdk.modes import parse_mode
from jfs.sdk.stat import stat_result

T = TypeVar("T")

_LIVE: weakref.WeakSet[Client] = weakref.WeakSet()


def _close_all() -> None:
    for client in list(_LIVE):
        try:
            client.close()
        except Exception:  # noqa: BLE001 - interpreter exit: nothing more can be done
            pass


def _register_exit_hook() -> None:
    """Close live clients at interpreter exit *before* the thread pools shut down (uploads and SQLite
    run on them): threading's exit hooks run before `atexit`'s, the last registered first."""
    import concurrent.futures.thread  # noqa: F401  (its exit hook must be registered before ours)

    try:
        threading._register_atexit(_close_all)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        atexit.register(_close_all)


_register_exit_hook()


class Client:
    """A jfs volume in-process: ``with jfs.Client("redis://host/1") as fs: fs.listdir("/")``.

    Options are those of `jfs.bootstrap.ClientOptions`: cache_dir, cache_size ("10G"), buffer_size,
    max_uploads, read_only, subdir, heartbeat, background_jobs, enable_xattr. The volume is opened at once
    (`jfs.app.errors.VolumeError` with one line when it cannot be).
    """

    def __init__(self, meta_url: str, **options: Any) -> None:
        self._aio = AsyncClient(meta_url, **options)
        self._loop = _LoopThread(f"jfs-client:{meta_url.split('://')[0]}")
        try:
            self._loop.run(self._aio.open_volume())
        except BaseException:
            self._loop.stop()
            raise
        self._closed = False
        self._files: weakref.WeakSet[io.IOBase] = weakref.WeakSet()
        _LIVE.add(self)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Commit buffered data, end the session, stop the loop thread (idempotent)."""
        if self._closed:
            return
        # Files still open hold bytes in their Python buffers: push them through before the client goes.
        for f in list(self._files):
            try:
                f.close()
            except Exception:  # noqa: BLE001 - one file's failure must not keep the others' data back
                pass
        self._closed = True
        _LIVE.discard(self)
        try:
            self._loop.run(self._aio.close())
        finally:
            self._loop.stop()

    @property
    def aio(self) -> AsyncClient:
        """The asyncio client underneath (use it only from `run`)."""
        return self._aio

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of the underlying `AsyncClient` on the client's loop and return its result."""
        if self._closed:
            coro.close()
            raise ValueError("the client is closed")
        return self._loop.run(coro)

    @property
    def name(self) -> str:
        return self._aio.name

    # ------------------------------------------------------------------ files

    def open(self, path: PathLike, mode: str = "r", buffering: int = -1, encoding: str | None = None,
             errors: str | None = None, newline: str | None = None, *, perm: int = 0o666) -> Any:
        """Like the built-in `open()`: a buffered binary file (BufferedReader / BufferedWriter /
        BufferedRandom), an unbuffered `RawFile` with ``buffering=0``, or an `io.TextIOWrapper` (`TextFile`)."""
        m = parse_mode(mode)
        if m.binary and (encoding is not None or errors is not None or newline is not None):
            raise ValueError("binary mode doesn't take an encoding, errors or newline argument")
        if not m.binary and buffering == 0:
            raise ValueError("can't have unbuffered text I/O")
        afile: AsyncFile = self.run(self._aio.open(path, mode.replace("t", "") + ("" if m.binary else "b"), perm=perm))
        raw = RawFile(self, afile)
        if buffering == 0:
            self._files.add(raw)
            return raw
        size = buffering if buffering > 1 else 1 << 20
        buffered: io.BufferedIOBase
        if m.readable and m.writable:
            buffered = BufferedRandom(raw, size)
        elif m.writable:
            buffered = BufferedWriter(raw, size)
            buffered._direct_min = size
        else:
            buffered = BufferedReader(raw, size)
            buffered._direct_min = size
        if m.binary:
            self._files.add(buffered)
            return buffered
        text = TextFile(buffered, encoding=encoding or "utf-8", errors=errors, newline=newline,
                        line_buffering=buffering == 1)
        self._files.add(text)
        return text

    def walk(self, top: PathLike = "/", topdown: bool = True) -> Iterator[tuple[str, list[str], list[str]]]:
        """Like `os.walk` (symlinks to directories are not followed): `AsyncClient.walk`, one level per call."""
        steps = self._aio.walk(top, topdown)

        async def step() -> tuple[str, list[str], list[str]] | None:
            return await anext(steps, None)

        while (item := self.run(step())) is not None:
            yield item

    def scandir(self, path: PathLike = "/") -> list[DirEntry]:
        return self.run(self._aio.scandir(path))

    # ------------------------------------------------------------------ os, os.path, shutil (see AsyncClient)

    def _cached_stat(self, path: PathLike, follow: bool) -> os.stat_result | None:
        """The stat of `path` from the name cache, in the calling thread (no hop to the loop), or None when a
        component is not fresh in it. Consistent with the hop: every change this client made is dropped from
        the cache before its call returns."""
        client = self._aio._client
        if self._closed or client is None:
            return None
        hit = client.paths.cached(fspath(path), follow=follow)
        return None if hit is None else stat_result(*hit)

    def stat(self, path: PathLike, *, follow_symlinks: bool = True) -> os.stat_result:
        return self._cached_stat(path, follow_symlinks) or self.run(
            self._aio.stat(path, follow_symlinks=follow_symlinks))

    def lstat(self, path: PathLike) -> os.stat_result:
        return self._cached_stat(path, False) or self.run(self._aio.lstat(path))

    def exists(self, path: PathLike) -> bool:
        return self._cached_stat(path, True) is not None or self.run(self._aio.exists(path))

    def isdir(self, path: PathLike) -> bool:
        st = self._cached_stat(path, True)
        return stat_mod.S_ISDIR(st.st_mode) if st is not None else self.run(self._aio.isdir(path))

    def isfile(self, path: PathLike) -> bool:
        st = self._cached_stat(path, True)
        return stat_mod.S_ISREG(st.st_mode) if st is not None else self.run(self._aio.isfile(path))

    def islink(self, path: PathLike) -> bool:
        st = self._cached_stat(path, False)
        return stat_mod.S_ISLNK(st.st_mode) if st is not None else self.run(self._aio.islink(path))

    def getsize(self, path: PathLike) -> int:
        st = self._cached_stat(path, True)
        return st.st_size if st is not None else self.run(self._aio.getsize(path))

    def listdir(self, path: PathLike = '/') -> list[str]:
        return self.run(self._aio.listdir(path))

    def mkdir(self, path: PathLike, mode: int = 0o777) -> None:
        return self.run(self._aio.mkdir(path, mode))

    def makedirs(self, path: PathLike, mode: int = 0o777, exist_ok: bool = False) -> None:
        return self.run(self._aio.makedirs(path, mode, exist_ok))

    def rmdir(self, path: PathLike) -> None:
        return self.run(self._aio.rmdir(path))

    def remove(self, path: PathLike) -> None:
        return self.run(self._aio.remove(path))

    def rmtree(self, path: PathLike, *, threads: int = 16) -> dict[str, int]:
        """Remove a directory tree (or a file) on the server side, as `jfs rmr`: page by page, in parallel;
        files go to the trash when it is on. Returns the counts removed."""
        return self.run(self._aio.rmtree(path, threads=threads))

    def rename(self, src: PathLike, dst: PathLike, *, flags: int = 0) -> None:
        """rename(2): replaces a file or an empty directory at `dst` (RENAME_NOREPLACE/EXCHANGE via flags)."""
        return self.run(self._aio.rename(src, dst, flags=flags))

    def replace(self, src: PathLike, dst: PathLike, *, flags: int = 0) -> None:
        """rename(2): replaces a file or an empty directory at `dst` (RENAME_NOREPLACE/EXCHANGE via flags)."""
        return self.run(self._aio.replace(src, dst, flags=flags))

    def link(self, src: PathLike, dst: PathLike) -> None:
        return self.run(self._aio.link(src, dst))

    def symlink(self, target: PathLike, path: PathLike) -> None:
        """Create `path` as a symbolic link to `target` (argument order of `os.symlink`)."""
        return self.run(self._aio.symlink(target, path))

    def readlink(self, path: PathLike) -> str:
        return self.run(self._aio.readlink(path))

    def chmod(self, path: PathLike, mode: int, *, follow_symlinks: bool = True) -> None:
        return self.run(self._aio.chmod(path, mode, follow_symlinks=follow_symlinks))

    def chown(self, path: PathLike, uid: int, gid: int, *, follow_symlinks: bool = True) -> None:
        return self.run(self._aio.chown(path, uid, gid, follow_symlinks=follow_symlinks))

    def utime(self, path: PathLike, times: tuple[float, float] | None = None, *, ns: tuple[int, int] | None = None, follow_symlinks: bool = True) -> None:
        """Like `os.utime`: (atime, mtime) in seconds or `ns` in nanoseconds; neither = now."""
        return self.run(self._aio.utime(path, times, ns=ns, follow_symlinks=follow_symlinks))

    def truncate(self, path: PathLike, length: int) -> None:
        return self.run(self._aio.truncate(path, length))

    def getxattr(self, path: PathLike, name: str | bytes, *, follow_symlinks: bool = True) -> bytes:
        return self.run(self._aio.getxattr(path, name, follow_symlinks=follow_symlinks))

    def setxattr(self, path: PathLike, name: str | bytes, value: bytes, flags: int = 0, *, follow_symlinks: bool = True) -> None:
        return self.run(self._aio.setxattr(path, name, value, flags, follow_symlinks=follow_symlinks))

    def listxattr(self, path: PathLike, *, follow_symlinks: bool = True) -> list[str]:
        return self.run(self._aio.listxattr(path, follow_symlinks=follow_symlinks))

    def removexattr(self, path: PathLike, name: str | bytes, *, follow_symlinks: bool = True) -> None:
        return self.run(self._aio.removexattr(path, name, follow_symlinks=follow_symlinks))

    def statvfs(self) -> dict[str, int]:
        """Total and available bytes and inodes of the volume."""
        return self.run(self._aio.statvfs())

    def summary(self, path: PathLike = '/', *, depth: int = 0, entries: int = 10) -> dict[str, Any]:
        """Recursive totals (files, dirs, length, space) of a tree, like `jfs summary`."""
        return self.run(self._aio.summary(path, depth=depth, entries=entries))

    def warmup(self, *paths: PathLike, threads: int = 16) -> dict[str, Any]:
        """Load the blocks of files (directories: recursively) into the local caches, like `jfs warmup`."""
        return self.run(self._aio.warmup(*paths, threads=threads))

    def copy_file(self, src: PathLike, dst: PathLike) -> int:
        """Copy a file's content by slice reference (no data is read or written); returns the bytes copied.
        `dst` is created or truncated."""
        return self.run(self._aio.copy_file(src, dst))

    def read_bytes(self, path: PathLike) -> bytes:
        return self.run(self._aio.read_bytes(path))

    def write_bytes(self, path: PathLike, data: bytes) -> int:
        return self.run(self._aio.write_bytes(path, data))

    def read_text(self, path: PathLike, encoding: str = 'utf-8') -> str:
        return self.run(self._aio.read_text(path, encoding))

    def write_text(self, path: PathLike, text: str, encoding: str = 'utf-8') -> int:
        return self.run(self._aio.write_text(path, text, encoding))

    unlink = remove

    def __repr__(self) -> str:
        return f"<jfs.Client {self._aio.meta_url.split('@')[-1]!r}{' closed' if self._closed else ''}>"


class RawFile(io.RawIOBase):
    """An unbuffered binary file of a `Client` (what `open(..., buffering=0)` returns).

    While a buffered wrapper closes it (`_LockingMixin.close`), the bytes that wrapper still holds are kept
    here and sent with the close in one hand-off to the loop; every other call sends them first. Outside that
    window each call is one hand-off, as an unbuffered file must be.
    """

    def __init__(self, client: Client, afile: AsyncFile) -> None:
        super().__init__()
        self._client = client
        self._f = afile
        self.name = afile.name
        self.mode = afile.mode
        self._closing = False
        self._pending: list[bytes] = []
        self._pending_len = 0

    def readable(self) -> bool:
        return self._f.mode.readable

    def writable(self) -> bool:
        return self._f.mode.writable

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a jfs file has no operating-system file descriptor")

    def _send_pending(self) -> None:
        if self._pending:
            chunks, self._pending, self._pending_len = self._pending, [], 0
            for chunk in chunks:
                self._client.run(self._f.write(chunk))

    def readinto(self, b: Any) -> int:
        self._send_pending()
        view = memoryview(b).cast("B")
        data = self._client.run(self._f.read_buffer(len(view)))
        n = len(data)
        view[:n] = data
        return n

    def read_direct(self, size: int) -> bytes:
        """Up to `size` bytes as `bytes`, copied once from the data path's buffer (`BufferedReader.read`)."""
        self._send_pending()
        data = self._client.run(self._f.read_buffer(size))
        return data if type(data) is bytes else bytes(data)

    def readall(self) -> bytes:
        self._send_pending()
        return self._client.run(self._f.read())

    def write(self, b: Any) -> int:
        if self._closing and not self.closed and not self._f.closed and self._f.mode.writable:
            data = bytes(b)
            self._pending.append(data)
            self._pending_len += len(data)
            return len(data)
        self._send_pending()
        return self._client.run(self._f.write(b if type(b) is bytes else bytes(b)))

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if self._pending and offset == 0 and whence == os.SEEK_CUR and not self._f.mode.append:
            return self._f.tell() + self._pending_len
        self._send_pending()
        if whence in (os.SEEK_SET, os.SEEK_CUR) and not self._f.closed:
            # Only the position changes (no I/O): no hand-off. The buffered wrappers seek like this often.
            pos = offset if whence == os.SEEK_SET else self._f.pos + offset
            if pos < 0:
                raise OSError(errno.EINVAL, "negative seek position", self.name)
            self._f.pos = pos
            return pos
        return self._client.run(self._f.seek(offset, whence))

    def tell(self) -> int:
        if self._pending and not self._f.mode.append:
            return self._f.tell() + self._pending_len
        self._send_pending()
        return self._f.tell()

    def truncate(self, size: int | None = None) -> int:
        self._send_pending()
        return self._client.run(self._f.truncate(size))

    def flush(self) -> None:
        """Commit what was written so far (other clients see it from their next open)."""
        if not self.closed and self._f.mode.writable and not self._f.closed:
            self._send_pending()
            self._client.run(self._f.flush())

    def fsync(self) -> None:
        self._send_pending()
        self._client.run(self._f.fsync())

    def flock(self, operation: int) -> None:
        self._send_pending()
        self._client.run(self._f.flock(operation))

    def lockf(self, cmd: int, length: int = 0, start: int = 0, whence: int = os.SEEK_SET) -> None:
        self._send_pending()
        self._client.run(self._f.lockf(cmd, length, start, whence))

    def close(self) -> None:
        if self.closed:
            return
        chunks, self._pending, self._pending_len = self._pending, [], 0
        try:
            if not self._client._closed:
                self._client.run(self._f.write_close(chunks) if chunks else self._f.close())
        finally:
            super().close()

    @property
    def ino(self) -> int:
        return self._f.ino


class _LockingMixin:
    """fsync/flock/lockf on a buffered file of a `Client` (delegated to its `RawFile`), and a close that
    hands the last buffered bytes and the close to the loop together."""

    def _raw(self) -> RawFile:
        raw = self.raw  # type: ignore[attr-defined]
        assert isinstance(raw, RawFile)
        return raw

    def fsync(self) -> None:
        """Commit buffered bytes and make them durable."""
        self.flush()  # type: ignore[attr-defined]
        self._raw().fsync()

    def flock(self, operation: int) -> None:
        self._raw().flock(operation)

    def lockf(self, cmd: int, length: int = 0, start: int = 0, whence: int = os.SEEK_SET) -> None:
        self._raw().lockf(cmd, length, start, whence)

    def close(self) -> None:
        raw = self.raw  # type: ignore[attr-defined]
        if isinstance(raw, RawFile) and not raw.closed:
            raw._closing = True
        super().close()  # type: ignore[misc]


class BufferedReader(_LockingMixin, io.BufferedReader):
    def read(self, size: int | None = -1) -> bytes:
        """As `io.BufferedReader.read`; a read of at least the buffer's size with nothing buffered goes to
        the file directly (one copy of the data instead of two: into the buffer, then out of it)."""
        if size is not None and size >= self._direct_min and not self.closed:
            raw = self.raw
            if isinstance(raw, RawFile) and raw.tell() == self.tell():
                data = raw.read_direct(size)
                self.seek(0, os.SEEK_CUR)  # the wrapper caches the raw position: refresh it (no hand-off)
                return data
        return super().read(size)

    _direct_min = 1 << 20


class BufferedWriter(_LockingMixin, io.BufferedWriter):
    def write(self, b: Any) -> int:
        """As `io.BufferedWriter.write`; a `bytes` object of at least the buffer's size goes to the file as it
        is (it is immutable: the data path may keep it without the copy the standard wrapper would make)."""
        if type(b) is bytes and len(b) >= self._direct_min and not self.closed:
            self.flush()
            n = len(b)
            self.raw.write(b)  # a RawFile writes all of it (or raises)
            self.seek(0, os.SEEK_CUR)  # the wrapper caches the raw position: refresh it (no hand-off)
            return n
        return super().write(b)

    _direct_min = 1 << 20


class BufferedRandom(_LockingMixin, io.BufferedRandom):
    pass


class TextFile(io.TextIOWrapper):
    """`io.TextIOWrapper` whose close hands the last bytes over with the close, as the buffered files do."""

    def close(self) -> None:
        raw = getattr(self.buffer, "raw", None)
        if isinstance(raw, RawFile) and not raw.closed:
            raw._closing = True
        super().close()

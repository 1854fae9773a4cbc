"""`Client`: the synchronous SDK. An `AsyncClient` runs on an event loop in a background thread; every
call is handed to it, so one `Client` is safe to use from several threads at once. `open()` returns real
`io` objects (buffered binary, or `io.TextIOWrapper` for text) as the built-in `open()` does.

Closed by `close()`, by leaving a ``with`` block, or at interpreter exit: buffered data is committed and
the session removed.
"""

from __future__ import annotations

import asyncio
import atexit
import io
import os
import threading
import weakref
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from jfs.sdk.aio import AsyncClient, DirEntry, PathLike
from jfs.sdk.async_files import AsyncFile
from jfs.sdk.modes import parse_mode

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


class _LoopThread:
    """An event loop running in a daemon thread; `run` executes a coroutine there and waits for it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, name=name, daemon=True)
        self.thread.start()
        ready.wait()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("a jfs.Client may not be called from its own event loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


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
        BufferedRandom), an unbuffered `RawFile` with ``buffering=0``, or an `io.TextIOWrapper`."""
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
        else:
            buffered = BufferedReader(raw, size)
        if m.binary:
            self._files.add(buffered)
            return buffered
        text = io.TextIOWrapper(buffered, encoding=encoding or "utf-8", errors=errors, newline=newline,
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

    def stat(self, path: PathLike, *, follow_symlinks: bool = True) -> os.stat_result:
        return self.run(self._aio.stat(path, follow_symlinks=follow_symlinks))

    def lstat(self, path: PathLike) -> os.stat_result:
        return self.run(self._aio.lstat(path))

    def exists(self, path: PathLike) -> bool:
        return self.run(self._aio.exists(path))

    def isdir(self, path: PathLike) -> bool:
        return self.run(self._aio.isdir(path))

    def isfile(self, path: PathLike) -> bool:
        return self.run(self._aio.isfile(path))

    def islink(self, path: PathLike) -> bool:
        return self.run(self._aio.islink(path))

    def getsize(self, path: PathLike) -> int:
        return self.run(self._aio.getsize(path))

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
    """An unbuffered binary file of a `Client` (what `open(..., buffering=0)` returns)."""

    def __init__(self, client: Client, afile: AsyncFile) -> None:
        super().__init__()
        self._client = client
        self._f = afile
        self.name = afile.name
        self.mode = afile.mode

    def readable(self) -> bool:
        return self._f.mode.readable

    def writable(self) -> bool:
        return self._f.mode.writable

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a jfs file has no operating-system file descriptor")

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self._client.run(self._f.read(len(view)))
        n = len(data)
        view[:n] = data
        return n

    def readall(self) -> bytes:
        return self._client.run(self._f.read())

    def write(self, b: Any) -> int:
        return self._client.run(self._f.write(bytes(b)))

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._client.run(self._f.seek(offset, whence))

    def tell(self) -> int:
        return self._f.tell()

    def truncate(self, size: int | None = None) -> int:
        return self._client.run(self._f.truncate(size))

    def flush(self) -> None:
        """Commit what was written so far (other clients see it from their next open)."""
        if not self.closed and self._f.mode.writable and not self._f.closed:
            self._client.run(self._f.flush())

    def fsync(self) -> None:
        self._client.run(self._f.fsync())

    def flock(self, operation: int) -> None:
        self._client.run(self._f.flock(operation))

    def lockf(self, cmd: int, length: int = 0, start: int = 0, whence: int = os.SEEK_SET) -> None:
        self._client.run(self._f.lockf(cmd, length, start, whence))

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._client._closed:
                self._client.run(self._f.close())
        finally:
            super().close()

    @property
    def ino(self) -> int:
        return self._f.ino


class _LockingMixin:
    """fsync/flock/lockf on a buffered file of a `Client` (delegated to its `RawFile`)."""

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


class BufferedReader(_LockingMixin, io.BufferedReader):
    pass


class BufferedWriter(_LockingMixin, io.BufferedWriter):
    pass


class BufferedRandom(_LockingMixin, io.BufferedRandom):
    pass

"""``file`` storage — a local (or network-mounted) directory as the bucket.

The bucket is an absolute directory such as ``/var/jfs/``; a key ``vol/chunks/0/4/4105_0_8000`` is the file
``/var/jfs/vol/chunks/0/4/4105_0_8000``. Directories are created on demand by `put` and never removed
(empty ones are harmless and cheap to list past).

Atomicity and durability: `put` writes an unnamed temp file (``O_TMPFILE``) in the object's own directory and
gives it the object's name once written (``linkat`` through ``/proc/self/fd``: one directory entry made, none
renamed or left behind by a crash, ADR 0044); where the file system or ``/proc`` does not allow that, or the
name exists already, it writes a named temp file ``.jfs-tmp.<name>.<pid>-<random>-<n>`` and renames it over
the real name with `os.replace`. Either way a reader or a crash of the process sees the old object, the new
one, or nothing — never a partial object. By default nothing
is fsynced, as JuiceFS's ``file`` storage does not fsync either (ADR 0023): an object survives a crash of
the process at once and a power loss once the kernel has written it back (~30 s); until then a power loss
may leave a committed block missing or short (ext4's default ``data=ordered``), which reads report as EIO;
a file system that may instead expose zeros is caught only by block checksums (``format --checksum``). With
``fsync=True`` the temp file is fsynced before the rename, so a name never points at data that are not on
disk; with ``fsync_dir=True`` the directory — and any directory created for the object — is fsynced after
the rename too, so the name itself survives a power loss. `open_file` turns both on when
``$JFS_FILE_FSYNC=1`` (jfs commits the metadata referencing a block only after its put returned, so
acknowledged writes then survive power loss, given a metadata engine that does too).
Names starting with ``.jfs-tmp.`` are reserved: `list` skips them (leftovers of a crash) and `put`
refuses such keys.

Keys must be relative, ``/``-separated, without empty, ``.`` or ``..`` components. A key cannot be both
an object and a "directory" of other keys (``a`` and ``a/b``): that put fails with ObjectStoreError.

`list` walks the tree lazily in true key order (a directory ``a`` sorts as ``a/``, so ``a-b`` comes
before ``a/x``), holding one directory listing per level, and pages the results to the event loop.
All blocking I/O runs in a thread pool owned by the store, except a small ranged `get` whose bytes are
already in the page cache: it is read on the caller's thread with ``RWF_NOWAIT`` (which fails instead of
waiting for the disk), saving two thread hops per small random read (the block store asks for a small
uncompressed block as the range of its length, so small-file reads take this path too); `get_now` is that
path alone, for the FUSE read loop, and `warm` asks the kernel to read an object into the page cache ahead of
such reads (ADR 0065); `get_pooled` reads a whole block into a recycled buffer of `file_blocks` (with
``O_DIRECT`` when it is not in the page cache) and returns a read-only view of it (ADR 0070). A whole-object
`get` never tries it: for a big cold object the open alone could block the caller on the disk. A small
`put` without fsync (at most `INLINE_PUT_MAX` bytes: a small file's block) is written on the caller's thread
too, unless most of the recent ones were slow (`INLINE_PUT_SLOW`). A missing bucket directory makes every operation fail with ObjectStoreUnavailable until `create_bucket` makes it.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import errno
import functools
import itertools
import os
import resource
import secrets
import shutil
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import BinaryIO, TypeVar

import structlog

from jfs.adapters.direct_files import DirectWriter
from jfs.adapters.objects import file_pages
from jfs.adapters.objects.file_blocks import MIN_BYTES as POOLED_MIN
from jfs.adapters.objects.file_blocks import BlockBuffers
from jfs.adapters.objects.file_pages import WrittenPages
from jfs.ports.objects import ObjectInfo, ObjectNotFound, ObjectStoreError, ObjectStoreUnavailable

T = TypeVar("T")
log = structlog.get_logger("jfs.objects")

TMP_PREFIX = ".jfs-tmp."
PAGE = 1000
COPY_BYTES = 1 << 20  # `put_file`'s copy buffer
NOWAIT_MAX = 256 * 1024  # largest ranged get tried on the caller's thread
INLINE_PUT_MAX = 128 * 1024
"""Largest `put` done on the caller's thread (no fsync asked): a few system calls into the page cache cost
less than the two thread hops of the pool. 128 KiB, so that a small file of `juicefs bench` (one 128 KiB
block) is stored without a hop (ADR 0101: on a quiet machine +22 % files/s and −30 % mount CPU per file on
SQLite + file, +8 % and −22 % on Redis + file; ADR 0064 had kept 64 KiB after a run on a loaded machine).
Slow inline puts still send the next ones to the pool (`INLINE_PUT_SLOW`)."""
_now = time.monotonic
INLINE_PUT_SLOW = 0.002
INLINE_PUT_WINDOW = 8
INLINE_PUT_PAUSE = 10.0
"""When the median of the last INLINE_PUT_WINDOW inline puts takes more than INLINE_PUT_SLOW seconds (a
network file system, a busy disk), the puts of the next INLINE_PUT_PAUSE seconds go through the pool, so
the caller's loop is not held up. A median, not a mean: on a loaded machine a put of a few microseconds now
and then waits milliseconds for the CPU or the GIL, and such outliers must not switch the fast path off
(with a mean, one 20 ms hiccup did, for ten seconds). The history survives a pause, so a disk still slow
after it pauses again at its first slow put.

A slow put counts only if its thread was not preempted during it (its involuntary context switches,
``getrusage(RUSAGE_THREAD)``, unchanged): a put that waited for a CPU says nothing about the storage, and
the pool would not make it faster. On a machine with more runnable threads than cores, a thread that runs
the loop without sleeping (the SDK's caller driving its own loop, ADR 0058) was preempted in 3–7 % of its
puts, in bursts enough to pause the fast path for ten seconds at a time. Slow storage shows as sleeps in
the kernel (voluntary switches), which still count. Where ``RUSAGE_THREAD`` is missing, every slow put
counts."""
_RUSAGE_THREAD: int | None = getattr(resource, "RUSAGE_THREAD", None)
_SLOW_MAJORITY = INLINE_PUT_WINDOW // 2 + 1
_WINDOW_MASK = (1 << INLINE_PUT_WINDOW) - 1


def _preemptions() -> int:
    """Involuntary context switches of the calling thread so far (0 where the platform cannot tell)."""
    if _RUSAGE_THREAD is None:
        return 0
    return resource.getrusage(_RUSAGE_THREAD).ru_nivcsw


class _TempNames:
    """Unique temp-file names without a system call each: a random tag per process (renewed in a forked
    child, which would otherwise repeat its parent's names) and a counter."""

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self.tag = f"{os.getpid():x}-{secrets.token_hex(4)}-"
        self.counter = itertools.count()
        self.generation = getattr(self, "generation", -1) + 1  # bumped in a forked child (see `_TempPool`)

    def next(self) -> str:
        return f"{self.tag}{next(self.counter)}"


_temp_names = _TempNames()


class _UnnamedTemps:
    """Whether puts make unnamed temp files (``O_TMPFILE``), and the ``/proc`` directory their ``linkat``
    goes through (``linkat(fd, "", …, AT_EMPTY_PATH)`` would need CAP_DAC_READ_SEARCH; through
    ``/proc/self/fd/N`` with AT_SYMLINK_FOLLOW it needs nothing). Turned off for the process by the first file
    system that refuses ``O_TMPFILE`` or when ``/proc`` is missing."""

    def __init__(self) -> None:
        self.usable = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
        self._proc: int | None = None

    def proc_fd(self) -> int:
        if self._proc is None:
            self._proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._proc


_unnamed_temps = _UnnamedTemps()
_O_TMPFILE_FLAGS = os.O_WRONLY | getattr(os, "O_TMPFILE", 0) | os.O_CLOEXEC
_NO_TMPFILE = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})
"""What `open` answers for ``O_TMPFILE`` where the file system (or an old kernel) cannot make one."""
_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
TEMP_POOL_SIZE = 64
TEMP_POOL_LOW = 16
"""`_TempPool` keeps up to TEMP_POOL_SIZE unnamed temp files open and tops itself up when TEMP_POOL_LOW or fewer
are left."""
TEMP_POOL_RETRY = 1.0  # seconds without refills after one failed (a full disk, too many open files)
TEMP_POOL_START = 4
"""The pool is first filled at the TEMP_POOL_START-th put: a command that puts an object or two (``format``)
never pays for 64 files it does not use."""


class _TempPool:
    """Unnamed temp files (``O_TMPFILE``) opened ahead of need in the bucket's root directory, so that a small
    put on the caller's thread writes, links and closes a file instead of also making one: the inode's
    allocation (the largest part of a small put, ADR 0044/0051) is done by one of the store's threads, a batch
    at a time, off the caller's critical path. ``linkat`` gives such a file a name in any directory of the same
    file system, so one pool serves every object directory.

    Contract: `take` never blocks and never makes a file itself (None when the pool is empty: the caller makes
    its own). A taken descriptor is the caller's (write, link, close). A forked child never uses its parent's
    descriptors (they would share the parent's files): it drops them. `close` closes what is left; the kernel
    frees unnamed files, so nothing is ever left in the bucket, after a crash either. Thread-safe (a deque)."""

    def __init__(self, root: str, submit: Callable[[Callable[[], None]], object]) -> None:
        self._root = root
        self._submit = submit
        self._fds: collections.deque[int] = collections.deque()
        self._generation = _temp_names.generation
        self._filling = False
        self._closed = False
        self._retry_at = 0.0
        self._takes = 0
        self.usable = True  # False for good once the file system refused O_TMPFILE or a link across directories

    def take(self) -> int | None:
        if self._generation != _temp_names.generation:  # a forked child: its parent's files are not its own
            self._generation = _temp_names.generation
            self._filling = False  # a refill running at the fork went with the parent's threads
            self._drop()
        fds = self._fds
        if not fds and self._takes < TEMP_POOL_START:
            self._takes += 1
            if self._takes < TEMP_POOL_START:
                return None
        fd = fds.popleft() if fds else None
        if len(fds) <= TEMP_POOL_LOW and not self._filling and self.usable and not self._closed:
            if self._retry_at == 0.0 or _now() >= self._retry_at:
                self._filling = True
                try:
                    self._submit(self._fill)
                except RuntimeError:  # the store's threads are shutting down
                    self._filling = False
        return fd

    def _fill(self) -> None:
        """Top the pool up (on one of the store's threads)."""
        try:
            while len(self._fds) < TEMP_POOL_SIZE and self.usable and not self._closed:
                try:
                    fd = os.open(self._root, _O_TMPFILE_FLAGS, 0o666)
                except OSError as exc:
                    if exc.errno in _NO_TMPFILE:
                        self.usable = False
                    self._retry_at = _now() + TEMP_POOL_RETRY  # puts make their own files (and see the error)
                    return
                self._fds.append(fd)
            self._retry_at = 0.0
        finally:
            self._filling = False

    def _drop(self) -> None:
        while self._fds:
            try:
                os.close(self._fds.popleft())
            except (IndexError, OSError):
                pass

    def stop(self) -> None:
        """No more refills from now on."""
        self._closed = True

    def close(self) -> None:
        """Close the files left (call after `stop`, once no `_fill` runs: the store's threads stopped)."""
        self._closed = True
        self._drop()


class FileStore:
    """A directory tree behind the object-store port."""

    def __init__(
        self, root: str, *, fsync: bool = False, fsync_dir: bool = False, max_workers: int = 16,
        written_pages: WrittenPages | None = None, direct: DirectWriter | None = None,
        block_buffers: BlockBuffers | None = None,
    ) -> None:
        if root.startswith("file://"):
            root = root[len("file://") :]
        self.root = os.path.abspath(root)
        self.url = self.root.rstrip("/") + "/"
        self.fsync = fsync
        self.fsync_dir = fsync_dir
        self.written_pages = written_pages  # page-cache budget for written objects (file_pages.py), None: kernel's
        self.direct = direct  # objects of DIRECT_MIN bytes or more written with O_DIRECT (ADR 0059), None: never
        self.block_buffers = block_buffers
        """Recycled buffers for `get_pooled` (ADR 0070); None: it reads into new bytes, as `get`."""
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="jfs-file")
        self._inline_paused_until = 0.0
        self._inline_slow = 0  # one bit per recent inline put, newest lowest: 1 = slower than INLINE_PUT_SLOW
        self._temps = _TempPool(self.root, self._pool.submit)

    # -- plumbing ------------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    def _path(self, key: str) -> str:
        parts = key.split("/")
        if not key or key.startswith("/") or "\x00" in key or any(p in ("", ".", "..") for p in parts):
            raise ObjectStoreError(f"invalid object key '{key}' for file storage {self.url}")
        return os.path.join(self.root, *parts)

    def _missing_bucket(self) -> ObjectStoreUnavailable | None:
        if os.path.isdir(self.root):
            return None
        return ObjectStoreUnavailable(f"bucket directory {self.url} does not exist (create it with format)")

    def _fail(self, op: str, key: str, exc: OSError) -> ObjectStoreError:
        if isinstance(exc, PermissionError):
            return ObjectStoreUnavailable(f"permission denied on {self.url}: {op} '{key}': {exc.strerror}")
        return ObjectStoreError(f"file storage {self.url}: {op} '{key}' failed: {exc.strerror or exc}")

    # -- operations ----------------------------------------------------------------------------------

    async def create_bucket(self) -> None:
        """Create the bucket directory (and its parents); succeeds if it already exists."""
        await self._run(self._create_bucket)
        log.info("bucket_created", url=self.url)

    def _create_bucket(self) -> None:
        try:
            os.makedirs(self.root, 0o777, exist_ok=True)
        except OSError as exc:  # one line naming the directory and why
            failed = str(exc.filename or self.root)
            parent = os.path.dirname(failed)
            if isinstance(exc, FileExistsError):
                reason = f"{failed} exists and is not a directory"
            elif isinstance(exc, FileNotFoundError) and os.path.isdir(parent):  # e.g. under /proc
                reason = f"{parent} does not allow creating directories ({exc.strerror})"
            else:
                reason = f"{exc.strerror or exc}" + ("" if failed == self.root else f" ({failed})")
            kind = ObjectStoreUnavailable if isinstance(exc, PermissionError) else ObjectStoreError
            raise kind(f"cannot create the bucket directory {self.url}: {reason}") from exc

    async def put(self, key: str, data: bytes | memoryview) -> None:
        path = self._path(key)
        if os.path.basename(path).startswith(TMP_PREFIX):
            raise ObjectStoreError(f"object key '{key}' uses the reserved prefix {TMP_PREFIX!r}")
        if len(data) <= INLINE_PUT_MAX and not self.fsync and _now() >= self._inline_paused_until:
            preempted = _preemptions()
            start = _now()
            try:
                self._put(key, path, data)
            finally:
                now = _now()
                was_slow = now - start > INLINE_PUT_SLOW and _preemptions() == preempted
                slow = ((self._inline_slow << 1) | was_slow) & _WINDOW_MASK
                self._inline_slow = slow
                if slow.bit_count() >= _SLOW_MAJORITY:
                    self._inline_paused_until = now + INLINE_PUT_PAUSE
            return
        await self._run(self._put, key, path, data)

    async def put_file(self, key: str, path: str) -> None:
        """`FileUploads`: copy the local file `path` in (through a temp file, as `put`)."""
        target = self._path(key)
        if os.path.basename(target).startswith(TMP_PREFIX):
            raise ObjectStoreError(f"object key '{key}' uses the reserved prefix {TMP_PREFIX!r}")

        def copy() -> None:
            with open(path, "rb") as src:
                self._put(key, target, src)

        await self._run(copy)

    def _open_temp(self, directory: str, name: str) -> tuple[str | None, int]:
        """(temp name, fd) of a new temp file in `directory`; the name is None for an unnamed one (``O_TMPFILE``,
        named later by `_publish`). Raises what `os.open` raises (FileNotFoundError: no such directory)."""
        if _unnamed_temps.usable:
            try:
                return None, os.open(directory, _O_TMPFILE_FLAGS, 0o666)
            except OSError as exc:
                if exc.errno not in _NO_TMPFILE:
                    raise
                _unnamed_temps.usable = False  # this file system cannot: named temp files from now on
        tmp = os.path.join(directory, f"{TMP_PREFIX}{name}.{_temp_names.next()}")
        return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)

    @staticmethod
    def _publish(tmp: str | None, fd: int, directory: str, name: str, path: str) -> None:
        """Give the written temp file (named `tmp`, or unnamed `fd`) the name `path`, replacing an object of
        that name. A named `tmp` is left for the caller to remove if this fails."""
        if tmp is not None:
            os.replace(tmp, path)
            return
        proc = _unnamed_temps.proc_fd()
        try:
            os.link(f"self/fd/{fd}", path, src_dir_fd=proc, follow_symlinks=True)
            return
        except FileExistsError:  # an overwrite (or a directory of that name): link aside, then rename over
            pass
        aside = os.path.join(directory, f"{TMP_PREFIX}{name}.{_temp_names.next()}")
        os.link(f"self/fd/{fd}", aside, src_dir_fd=proc, follow_symlinks=True)
        try:
            os.replace(aside, path)
        except BaseException:
            os.unlink(aside)
            raise

    def _put_pooled(self, fd: int, directory: str, name: str, path: str, data: bytes | memoryview) -> bool | None:
        """Put `data` through the pooled unnamed file `fd` (closed here). True/False: published (whether
        `directory` was made for it); None: not published and nothing left behind — any failure (a missing
        bucket, a prefix that is an object, a full disk, another file system under the bucket) is left to the
        usual path, which reports it (the data are bytes: written again there)."""
        try:
            self._write_data(fd, data)
            if self.fsync:
                os.fsync(fd)
            try:
                self._publish(None, fd, directory, name, path)
                return False
            except FileNotFoundError:
                if self._missing_bucket():
                    return None
                os.makedirs(directory, exist_ok=True)
                self._publish(None, fd, directory, name, path)
                return True
        except OSError as exc:
            if exc.errno == errno.EXDEV:  # a directory under the bucket on another file system
                self._temps.usable = False
            return None
        finally:
            os.close(fd)

    def _goes_direct(self, data: bytes | memoryview) -> bool:
        return self.direct is not None and self.direct.usable and len(data) >= DIRECT_MIN

    def _write_data(self, fd: int, data: bytes | memoryview) -> None:
        """All of `data` into the new, empty temp file `fd`: around the page cache when `_goes_direct`."""
        if self.direct is not None and len(data) >= DIRECT_MIN and self.direct.write_fd(fd, [data]):
            return
        _write_all(fd, data)

    def _put(self, key: str, path: str, data: bytes | memoryview | BinaryIO) -> None:
        directory, name = os.path.split(path)
        created: bool | None = None
        if _unnamed_temps.usable and self._temps.usable and isinstance(data, bytes | memoryview):
            fd = self._temps.take()
            if fd is not None:
                created = self._put_pooled(fd, directory, name, path, data)
        if created is None:
            created = self._put_own(key, path, directory, name, data)
        if self.written_pages is not None and isinstance(data, bytes | memoryview) and not self._goes_direct(data):
            self.written_pages.written(path, len(data))
        if self.fsync_dir:
            self._sync_dir(directory)
            # New directories are entries of their parents: make those durable too, up to the bucket.
            while created and directory != self.root:
                directory = os.path.dirname(directory)
                self._sync_dir(directory)

    def _put_own(self, key: str, path: str, directory: str, name: str, data: bytes | memoryview | BinaryIO) -> bool:
        """Put through a temp file made here (unnamed, or named where that is not possible); returns whether
        `directory` was made for it."""
        created = False
        try:
            try:
                tmp, fd = self._open_temp(directory, name)
            except FileNotFoundError:
                if missing := self._missing_bucket():
                    raise missing from None
                os.makedirs(directory, exist_ok=True)
                created = True
                tmp, fd = self._open_temp(directory, name)
        except (FileExistsError, NotADirectoryError) as exc:  # 'a/b' while 'a' is an object
            raise ObjectStoreError(
                f"file storage {self.url}: cannot put '{key}': a prefix of it is an object"
            ) from exc
        except OSError as exc:
            raise self._fail("put", key, exc) from exc
        try:
            try:
                if isinstance(data, bytes | memoryview):
                    # Plain write(2)s: a buffered file object would add fstat, ioctl and lseek calls per put.
                    self._write_data(fd, data)
                else:
                    with open(fd, "wb", closefd=False) as f:
                        shutil.copyfileobj(data, f, COPY_BYTES)
                if self.fsync:
                    os.fsync(fd)
                self._publish(tmp, fd, directory, name, path)
            finally:
                os.close(fd)
        except BaseException as exc:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError as cleanup:
                    log.warning("temp_file_left", path=tmp, error=str(cleanup))
            if isinstance(exc, IsADirectoryError):
                raise ObjectStoreError(
                    f"file storage {self.url}: cannot put '{key}': other keys live under it"
                ) from exc
            if isinstance(exc, OSError):
                raise self._fail("put", key, exc) from exc
            raise
        return created

    @staticmethod
    def _sync_dir(directory: str) -> None:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _not_found(self, key: str) -> ObjectStoreError:
        return self._missing_bucket() or ObjectNotFound(f"object '{key}' not found in {self.url}")

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        if 0 < limit <= NOWAIT_MAX and _RWF_NOWAIT:
            data = self._get_cached(key, off, limit)
            if data is not None:
                return data
        return await self._run(self._get, key, off, limit)

    async def get_pooled(self, key: str, limit: int) -> bytes | memoryview:
        """Bytes [0, limit) of `key` (fewer when the object ends first), as `get(key, 0, limit)`, but read into
        one of `block_buffers`' recycled buffers when it can (an object of `file_blocks.MIN_BYTES` or more, a
        buffer free): a read-only memoryview then, whose bytes stay as read while any view of them is alive
        (ADR 0070). For whole-block reads of stored-as-is blocks; errors as `get`. A `limit` below
        `file_blocks.MIN_BYTES` is `get` itself (a small block keeps its no-hop read from the page cache),
        except that a block read from the page cache comes as a read-only view of the new buffer it was read
        into, which nothing else holds (no copy into new bytes, ADR 0079)."""
        if self.block_buffers is None or limit < POOLED_MIN:
            if 0 < limit <= NOWAIT_MAX and _RWF_NOWAIT:
                buf = self._read_cached(key, 0, limit)
                if buf is not None:
                    return memoryview(buf).toreadonly()
            return await self._run(self._get, key, 0, limit)
        return await self._run(self._get_pooled, key, limit)

    def _get_pooled(self, key: str, limit: int) -> bytes | memoryview:
        buffers = self.block_buffers
        if buffers is not None and limit > 0:
            path = self._path(key)
            try:
                view = buffers.read(path, limit)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise self._not_found(key) from None
            except OSError as exc:
                raise self._fail("get", key, exc) from exc
            if view is not None:
                return view
        return self._get(key, 0, limit)

    def get_now(self, key: str, off: int, limit: int) -> bytes | None:
        """Bytes [off, off+limit) of `key` (at most `NOWAIT_MAX`, `limit` > 0) when the page cache holds
        them all, read on the caller's thread without waiting for the disk; None otherwise (not cached, too
        big, the platform has no ``RWF_NOWAIT``, a missing object, any error: `get` answers those). Fewer
        bytes when the object ends first, as `get`. The loop's no-hop read of a warmed block (ADR 0065)."""
        if not (0 < limit <= NOWAIT_MAX and _RWF_NOWAIT):
            return None
        return self._get_cached(key, off, limit)

    def _get_cached(self, key: str, off: int, limit: int) -> bytes | None:
        """Bytes [off, off+limit) of `key` if the page cache holds them all, else None (never blocks on
        the disk; a missing object or any error also gives None and is left to `_get`)."""
        buf = self._read_cached(key, off, limit)
        return None if buf is None else bytes(buf)

    def _read_cached(self, key: str, off: int, limit: int) -> bytearray | None:
        """`_get_cached`'s bytes in the new buffer they were read into (nobody else holds it)."""
        try:
            fd = os.open(self._path(key), os.O_RDONLY | os.O_CLOEXEC)
        except (OSError, ObjectStoreError):
            return None
        try:
            n = max(0, min(limit, os.fstat(fd).st_size - off))
            buf = bytearray(n)
            if n and os.preadv(fd, [buf], off, _RWF_NOWAIT) != n:
                return None
            return buf
        except OSError:  # BlockingIOError: not cached
            return None
        finally:
            os.close(fd)

    def _get(self, key: str, off: int, limit: int) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                # Clamped: a read of n bytes allocates n bytes up front, however short the file.
                n = max(0, size - off if limit < 0 else min(limit, size - off))
                if off:
                    f.seek(off)
                return f.read(n)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise self._not_found(key) from None
        except OSError as exc:
            raise self._fail("get", key, exc) from exc

    def warm(self, key: str) -> bool:
        """Ask the kernel to read object `key` into the page cache ahead of the reads to come
        (``POSIX_FADV_WILLNEED``, given on one of the store's threads); returns at once. True when the
        advice was queued, False where the platform has none or the store is closing (nothing asked).

        Only advice (ADR 0065): the bytes, names and sizes of objects are untouched; a missing object, a bad
        key or any error of the advice is ignored; the reads that follow are served by `get` as always. It
        is how a ranged read of a ``file`` bucket's block makes the rest of the block local, instead of
        copying the block into the disk cache (a second copy of a file that is on a local disk already).
        """
        if _WILLNEED is None:
            return False
        try:
            path = self._path(key)
            self._pool.submit(file_pages.advise, path, _WILLNEED)
        except (ObjectStoreError, RuntimeError):  # a bad key; the pool is shut down
            return False
        return True

    async def head(self, key: str) -> ObjectInfo:
        return await self._run(self._head, key)

    def _head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise self._not_found(key) from None
        except OSError as exc:
            raise self._fail("head", key, exc) from exc
        if not stat.S_ISREG(st.st_mode):
            raise self._not_found(key)
        return ObjectInfo(key, st.st_size, st.st_mtime)

    async def delete(self, key: str) -> None:
        await self._run(self._delete, key)

    def _delete(self, key: str) -> None:
        path = self._path(key)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            if missing := self._missing_bucket():
                raise missing from None
        except IsADirectoryError:
            pass  # a "directory" of other keys is not an object: nothing to delete
        except OSError as exc:
            if exc.errno != errno.EISDIR:
                raise self._fail("delete", key, exc) from exc

    async def list(
        self, prefix: str = "", start_after: str = "", limit: int | None = None
    ) -> AsyncIterator[ObjectInfo]:
        if limit is not None and limit <= 0:
            return
        walker = await self._run(self._walker, prefix, start_after)
        remaining = limit
        while True:
            n = PAGE if remaining is None else min(PAGE, remaining)
            page = await self._run(lambda n=n: list(islice(walker, n)))
            for info in page:
                yield info
            if remaining is not None:
                remaining -= len(page)
                if remaining <= 0:
                    return
            if len(page) < n:
                return

    def _walker(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        if missing := self._missing_bucket():
            raise missing
        base = prefix.rpartition("/")[0]
        if base and any(p in ("", ".", "..") for p in base.split("/")):
            return iter(())
        return self._walk(base + "/" if base else "", prefix, start_after)

    def _entries(self, dir_key: str) -> builtins.list[tuple[str, os.DirEntry[str]]]:
        """The entries of directory `dir_key` as (sort name, entry); a directory's sort name ends in '/'."""
        path = os.path.join(self.root, dir_key) if dir_key else self.root
        out: builtins.list[tuple[str, os.DirEntry[str]]] = []
        try:
            with os.scandir(path) as it:
                for e in it:
                    if e.name.startswith(TMP_PREFIX):
                        continue
                    if e.is_dir(follow_symlinks=False):
                        out.append((e.name + "/", e))
                    elif e.is_file(follow_symlinks=False):
                        out.append((e.name, e))
        except (FileNotFoundError, NotADirectoryError):
            return []
        out.sort(key=lambda item: item[0])
        return out

    def _walk(self, dir_key: str, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        # Depth-first in sorted order yields keys in ascending order. Returning from a level is enough
        # once past the prefix: every later entry of the enclosing levels sorts after it too.
        for name, entry in self._entries(dir_key):
            key = dir_key + name
            if not key.startswith(prefix):
                if name.endswith("/") and prefix.startswith(key):
                    pass  # the prefix continues inside this directory
                elif key > prefix:
                    return
                else:
                    continue
            if name.endswith("/"):
                if key < start_after and not start_after.startswith(key):
                    continue  # the whole subtree sorts before start_after
                yield from self._walk(key, prefix, start_after)
                continue
            if key <= start_after:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while listing
            yield ObjectInfo(key, st.st_size, st.st_mtime)

    async def close(self) -> None:
        self._temps.stop()
        await asyncio.to_thread(self._pool.shutdown, True)
        self._temps.close()
        if self.block_buffers is not None:
            self.block_buffers.close()


_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """write(2) all of `data` (a regular file takes it in one call but for a signal or a full disk)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


DIRECT_ENV = "JFS_FILE_DIRECT_WRITES"
"""``1`` makes `open_file` write objects of `DIRECT_MIN` bytes or more with ``O_DIRECT`` (ADR 0059): `jfs mount`
sets it for itself unless given (``0``: off)."""
DIRECT_MIN = 1 << 20
"""Smaller objects (small files' blocks, likely read again soon) always go through the page cache."""

POOLED_ENV = "JFS_FILE_POOLED_READS"
"""``0`` makes `open_file`'s store read whole blocks into new bytes instead of recycled buffers (ADR 0070)."""

HUGE_ENV = "JFS_FILE_HUGE_BUFFERS"
"""``0`` makes the recycled buffers of `get_pooled` small-page memory (ADR 0073; default: advised huge pages)."""

FSYNC_ENV = "JFS_FILE_FSYNC"
"""``1`` makes `open_file` fsync every object and its directory before `put` returns (ADR 0023)."""


async def open_file(bucket: str, **_: str) -> FileStore:
    """Open the directory `bucket` (credentials are ignored).

    Objects are not fsynced, as JuiceFS's ``file`` storage does not fsync them (ADR 0023): a `put` that
    returned survives a crash of the process, not necessarily a power loss. ``$JFS_FILE_FSYNC=1`` makes
    every `put` fsync the object and its directory (and new parent directories) before it returns.
    ``$JFS_FILE_KEEP_WRITTEN_MIB`` bounds the page cache its written objects keep (`file_pages`);
    ``$JFS_FILE_DIRECT_WRITES=1`` writes objects of `DIRECT_MIN` bytes or more with ``O_DIRECT`` (ADR 0059);
    ``$JFS_FILE_POOLED_READS=0`` makes `get_pooled` read into new bytes (ADR 0070; default: recycled buffers),
    ``$JFS_FILE_HUGE_BUFFERS=0`` leaves those buffers in small pages (ADR 0073; default: huge pages advised).
    """
    durable = os.environ.get(FSYNC_ENV, "0") == "1"
    direct = DirectWriter() if os.environ.get(DIRECT_ENV, "").strip() == "1" else None
    pooled = os.environ.get(POOLED_ENV, "1").strip() != "0"
    huge = os.environ.get(HUGE_ENV, "1").strip() != "0"
    return FileStore(
        bucket, fsync=durable, fsync_dir=durable, written_pages=file_pages.from_env(), direct=direct,
        block_buffers=BlockBuffers(huge=huge) if pooled else None,
    )

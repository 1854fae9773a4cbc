"""Write-back staging (``jfs mount --writeback``, JuiceFS's ``rawstaging``): `StagingStore` wraps the
object store so that a PUT lands in a local directory, durably, and returns; the object is uploaded in
the background and its staged file removed once the store has it.

Contract:

* ``put(key, data)`` writes ``<dir>/<key>`` through a temp file, fsyncs the file and its directory, then
  returns: the caller (the data path) commits the slice to the metadata engine right after, so from then
  on the metadata references an object that, until uploaded, exists **only on this host's disk**. That is
  the trade: writes cost a local fsync instead of an object-store round trip, and a crash of the mount
  (SIGKILL, OOM, power loss with a disk that honours fsync) loses nothing — the next client started with
  the same cache directory (`start`) uploads every staged object before anything else — but losing the
  disk itself before the upload loses those blocks, and other clients reading them meanwhile get
  EIO/not-found (they are not in the bucket yet).
* ``get``/``head`` of a staged key are answered from the staged file (this client reads its own writes);
  ``delete`` removes the staged file too.
* Uploads run in the background, `concurrency` at a time, retried with back-off until they succeed;
  `close` waits for them all (a graceful unmount leaves nothing staged), unless `close(wait=False)`.
* Bounded: a PUT that would take the staged bytes over `max_bytes`, or that finds the
  staging directory's file system with less than `free_ratio` of its space free, is not staged but
  uploaded directly (the caller waits for the store, as without ``--writeback``; JuiceFS falls back the
  same way when its cache disk is full). Counted in `direct`. `max_bytes` None = no bound, 0 = stage
  nothing.
* `pending` / `pending_bytes` count staged objects not yet uploaded and their size (``.stats``:
  ``juicefs_staging_blocks``, ``juicefs_staging_block_bytes``; `status` for `jfs status`, published in
  the client's session record at each heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import structlog

from jfs.ports.objects import ObjectInfo, ObjectNotFound, ObjectStore

log = structlog.get_logger(__name__)

TMP_SUFFIX = ".tmp"
RETRY_FIRST = 0.5
RETRY_MAX = 30.0


def _free_ratio(path: str) -> float:
    """The share of the file system of `path` that is free (for unprivileged users); 1.0 if unknown."""
    while path and not os.path.isdir(path):
        path = os.path.dirname(path)
    try:
        st = os.statvfs(path or "/")
    except OSError:
        return 1.0
    return st.f_bavail / st.f_blocks if st.f_blocks else 1.0


def staging_dir(cache_dir: str, uuid: str) -> str:
    """Where a volume's staged objects live: ``<cache_dir>/<uuid>/rawstaging`` (JuiceFS's place)."""
    return os.path.join(os.path.abspath(cache_dir), uuid, "rawstaging")


class StagingStore:
    """An ObjectStore whose PUTs are staged in `root` and uploaded to `inner` in the background."""

    def __init__(self, inner: ObjectStore, root: str, *, concurrency: int = 20, max_bytes: int | None = None,
                 free_ratio: float = 0.0) -> None:
        self.inner = inner
        self.url = inner.url
        self.root = root
        self.max_bytes = max_bytes
        self.free_ratio = free_ratio
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._uploads: dict[str, asyncio.Task[None]] = {}
        self._sizes: dict[str, int] = {}
        """Size of each staged object not yet uploaded (what `pending_bytes` sums)."""
        self.pending_bytes = 0
        self.uploaded = 0
        self.direct = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def pending(self) -> int:
        return len(self._uploads)

    def status(self) -> dict[str, Any]:
        """What `jfs status` shows of this client's staging (``Staging`` of its session record)."""
        return {"Blocks": self.pending, "Bytes": self.pending_bytes, "Direct": self.direct, "Dir": self.root}

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/"))

    # -- start: what a previous process left staged -----------------------------------------------------

    async def start(self) -> StagingStore:
        """Queue the upload of every object a previous client left staged in `root`."""
        keys = await asyncio.to_thread(self._scan)
        for key, size in keys:
            self._schedule(key, size)
        if keys:
            log.warning("staged_blocks_found", count=len(keys), dir=self.root,
                        detail="left by a previous mount: uploading them")
        return self

    def _scan(self) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                path = os.path.join(dirpath, name)
                if name.endswith(TMP_SUFFIX):  # a put that never returned: nobody references it
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                    continue
                with contextlib.suppress(OSError):
                    size = os.stat(path).st_size
                    found.append((os.path.relpath(path, self.root).replace(os.sep, "/"), size))
        return sorted(found)

    # -- the ObjectStore port ---------------------------------------------------------------------------

    async def create_bucket(self) -> None:
        await self.inner.create_bucket()

    async def put(self, key: str, data: bytes | memoryview) -> None:
        size = len(data) if isinstance(data, bytes) else data.nbytes
        if self.max_bytes is not None and self.pending_bytes + size > self.max_bytes:
            await self._put_direct(key, data, "staging_full")
            return
        self._reserve(key, size)  # before the thread runs: concurrent puts see it
        try:
            staged = await asyncio.to_thread(self._stage, self._path(key), data, self.free_ratio)
        except BaseException:
            self._release(key)
            raise
        if not staged:
            self._release(key)
            await self._put_direct(key, data, "disk_full")
            return
        self._schedule(key, size)

    async def _put_direct(self, key: str, data: bytes | memoryview, reason: str) -> None:
        if self.direct == 0:
            log.warning("staging_bypassed", reason=reason, staged_bytes=self.pending_bytes,
                        limit=self.max_bytes, free_ratio=self.free_ratio,
                        detail="uploading blocks directly until the staging directory has room")
        self.direct += 1
        await self.inner.put(key, data)

    def _reserve(self, key: str, size: int) -> None:
        if key not in self._sizes:
            self._sizes[key] = size
            self.pending_bytes += size

    def _release(self, key: str) -> None:
        self.pending_bytes -= self._sizes.pop(key, 0)

    @staticmethod
    def _stage(path: str, data: bytes | memoryview, free_ratio: float) -> bool:
        """Write `data` durably at `path`; False (nothing written) when the disk has too little room."""
        directory = os.path.dirname(path)
        if free_ratio > 0 and _free_ratio(directory) < free_ratio:
            return False
        os.makedirs(directory, exist_ok=True)
        tmp = f"{path}.{secrets.token_hex(4)}{TMP_SUFFIX}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)  # the rename itself must survive a crash
        finally:
            os.close(fd)
        return True

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        try:
            return await asyncio.to_thread(self._read, self._path(key), off, limit)
        except FileNotFoundError:
            return await self.inner.get(key, off, limit)

    @staticmethod
    def _read(path: str, off: int, limit: int) -> bytes:
        with open(path, "rb") as f:
            f.seek(off)
            return f.read() if limit < 0 else f.read(limit)

    async def head(self, key: str) -> ObjectInfo:
        try:
            st = await asyncio.to_thread(os.stat, self._path(key))
        except FileNotFoundError:
            return await self.inner.head(key)
        return ObjectInfo(key, st.st_size, st.st_mtime)

    async def delete(self, key: str) -> None:
        task = self._uploads.get(key)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(task)  # then delete what it uploaded
        staged = False
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(os.unlink, self._path(key))
            staged = True
        try:
            await self.inner.delete(key)
        except ObjectNotFound:
            if not staged:
                raise

    def list(self, prefix: str = "", start_after: str = "", limit: int | None = None) -> AsyncIterator[ObjectInfo]:
        return self.inner.list(prefix, start_after, limit)

    # -- background uploads -----------------------------------------------------------------------------

    def _schedule(self, key: str, size: int) -> None:
        if key in self._uploads:
            return
        self._reserve(key, size)
        task = asyncio.get_running_loop().create_task(self._upload(key), name=f"upload-{key}")
        self._uploads[key] = task

        def done(_: asyncio.Task[None]) -> None:
            self._uploads.pop(key, None)
            self._release(key)

        task.add_done_callback(done)

    async def _upload(self, key: str) -> None:
        delay = RETRY_FIRST
        path = self._path(key)
        while True:
            async with self._slots:
                try:
                    data = await asyncio.to_thread(self._read, path, 0, -1)
                except FileNotFoundError:
                    return  # deleted meanwhile
                try:
                    await self.inner.put(key, data)
                except Exception as exc:  # noqa: BLE001 (any failure: keep it staged, try again)
                    log.warning("staged_upload_failed", key=key, error=str(exc) or type(exc).__name__,
                                retry_in=delay)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        await asyncio.to_thread(os.unlink, path)
                    self.uploaded += 1
                    return
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)

    async def flush(self) -> None:
        """Wait until every object staged so far is uploaded."""
        while self._uploads:
            await asyncio.gather(*list(self._uploads.values()), return_exceptions=True)

    async def close(self, *, wait: bool = True) -> None:
        """Upload what is staged (`wait`) or leave it for the next client, then close `inner`."""
        try:
            if wait and self._uploads:
                log.info("staged_uploads_waiting", count=len(self._uploads))
                await self.flush()
            for task in list(self._uploads.values()):
                task.cancel()
            await asyncio.gather(*list(self._uploads.values()), return_exceptions=True)
        finally:
            await self.inner.close()

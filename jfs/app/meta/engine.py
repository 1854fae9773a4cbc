"""`Meta`: the metadata engine of one client, written once on the KV port.

It owns per-client state that must not live in the engine: the id pools, the cached usage used for
capacity checks, the table of files this client has open (for unlinked-but-open files), the session id,
and the background jobs (heartbeat, stale-session cleanup, pending deletions, trash expiry in
`trash_purge`, the refresh of `has_quotas`). Each operation is one transaction implemented in the
module named after its family (namespace, remove, rename, setattr, chunks, xattrs, readdir, locks,
sessions).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, Literal, TypeVar, overload

import structlog

from jfs.app.errors import VolumeError
from jfs.app.meta import (
    access,
    chunks,
    locks,
    namespace,
    quota,
    remove,
    rename,
    sessions,
    statfs,
    store,
    xattrs,
)
from jfs.app.meta import readdir as listing
from jfs.app.meta import setattr as setattr_ops
from jfs.app.meta.background import BackgroundJobs
from jfs.app.meta.context import ROOT_CTX, Ctx
from jfs.app.meta.ids import INODE_BATCH, SLICE_BATCH, IdPool
from jfs.app.meta.own_dirs import OwnDirAttrs
from jfs.app.meta.rules import check_perm
from jfs.app.meta.tails import CommitTails
from jfs.app.meta.trash import trash_root_attr
from jfs.app.meta.trash_purge import purge_trash_if_elected
from jfs.app.metrics import TimedKV
from jfs.domain import keys
from jfs.domain.attrs import (
    FLAG_APPEND,
    FLAG_IMMUTABLE,
    ROOT_INODE,
    TRASH_INODE,
    Attr,
    FileType,
    align4k,
    is_trash_inode,
)
from jfs.domain.compaction import CompactionPlan
from jfs.domain.errors import FSError
from jfs.domain.permissions import MAY_READ, MAY_WRITE
from jfs.domain.records import NewSlice, SliceRecord, encode_i64
from jfs.domain.settings import Settings
from jfs.ports.kv import KV, Tx

log = structlog.get_logger("jfs.meta")

HEARTBEAT = 12.0
SESSION_TTL_FACTOR = 5
DELFILE_AGE = 3600

LOCK_STRIPES = 1024
T = TypeVar("T")

# open(2)'s access mode -> the permission `Meta.open` checks (an unknown mode: read, as the kernel's).
_OPEN_MASKS = {os.O_RDONLY: MAY_READ, os.O_WRONLY: MAY_WRITE, os.O_RDWR: MAY_READ | MAY_WRITE}

FreeHook = Callable[[list[tuple[int, int]]], Awaitable[list[tuple[int, int]] | None]]


class VolumeNotFormatted(VolumeError):
    """The engine holds no jfs/JuiceFS volume."""


class VolumeExists(VolumeError):
    """`format` found an existing volume and was not told to overwrite it."""


async def read_settings(kv: KV) -> Settings:
    """The volume's settings; VolumeNotFormatted when the engine is empty."""

    async def body(tx: Tx) -> bytes | None:
        return await tx.get(keys.SETTING)

    raw = await kv.read(body)
    if raw is None:
        raise VolumeNotFormatted(f"no volume found in {kv.url}: run 'jfs format' first")
    settings = Settings.from_json(raw)
    settings.check_supported()
    return settings


async def format_meta(kv: KV, settings: Settings, *, force: bool = False) -> Settings:
    """Write a new volume (settings, root directory, trash root, counters) into an empty engine.

    With `force` an existing volume's settings are replaced, keeping its UUID; name, block size and
    compression may not change (they name and frame existing objects).
    """
    settings.validate()
    now = time.time_ns()

    async def body(tx: Tx) -> Settings:
        raw = await tx.get(keys.SETTING)
        if raw is not None:
            old = Settings.from_json(raw)
            if not force:
                raise VolumeExists(f"volume '{old.name}' already exists in {kv.url} (use --force to update it)")
            for field in ("name", "block_size", "compression", "hash_prefix"):
                if getattr(old, field) != getattr(settings, field):
                    raise VolumeExists(f"cannot change {field} of existing volume '{old.name}'")
            settings.uuid = old.uuid
            tx.put(keys.SETTING, settings.to_json())
            return settings
        tx.put(keys.SETTING, settings.to_json())
        root = Attr(
            typ=FileType.DIRECTORY, mode=0o777, atime_ns=now, mtime_ns=now, ctime_ns=now,
            nlink=2, length=4096, parent=ROOT_INODE,
        )
        tx.put(keys.attr(ROOT_INODE), root.encode())
        tx.put(keys.attr(TRASH_INODE), trash_root_attr(now).encode())
        tx.put(keys.counter(keys.NEXT_INODE), encode_i64(2))
        tx.put(keys.counter(keys.NEXT_CHUNK), encode_i64(1))
        for name in (keys.NEXT_SESSION, keys.NEXT_TRASH, keys.USED_SPACE, keys.TOTAL_INODES):
            tx.put(keys.counter(name), encode_i64(0))
        return settings

    return await kv.txn(body)


def _client_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jfs")
    except PackageNotFoundError:
        return "unknown"


class Meta:
    """The metadata engine bound to one KV and one volume. Use `Meta.load(kv)`; close with `close()`."""

    def __init__(self, kv: KV, settings: Settings) -> None:
        self.kv: KV = TimedKV.wrap(kv)  # counts and times every transaction for .stats (jfs.app.metrics)
        self.settings = settings
        self.sid = 0
        self.free_hook: FreeHook | None = None
        self._inodes = IdPool(self._alloc(keys.NEXT_INODE), INODE_BATCH, minimum=2)
        self._slices = IdPool(self._alloc(keys.NEXT_CHUNK), SLICE_BATCH, minimum=1)
        self._open: dict[int, int] = {}
        self._held: dict[int, int] = {}
        """Open counts of the handles opened while the file had a name outside the trash: through them a
        file deleted into the trash stays writable (POSIX: an unlinked file is usable until its last close)."""
        self.sustained: set[int] = set()
        """Open inodes this client unlinked (``sustained`` records): only their last close needs a
        transaction."""
        self._used_space = 0
        self._used_inodes = 0
        self.has_quotas = False
        """Whether any directory quota exists (refreshed every quota.REFRESH_INTERVAL s by the heartbeat loop):
        when not, quota checks cost nothing."""
        self.has_owner_quotas = False
        """Whether any user or group quota record exists (refreshed with `has_quotas`; `owner_quota`)."""
        self._jobs = BackgroundJobs(log)
        self._heartbeat: asyncio.Task[None] | None = None
        self._files_job: asyncio.Future[None] | None = None
        self._trash_job: asyncio.Future[Any] | None = None
        self._session_info: dict[str, Any] = {}
        self._published: dict[str, Any] = {}
        self.session_extra: Callable[[], dict[str, Any]] | None = None
        """Live fields this client publishes in its session record at each heartbeat (`jfs status`): the
        record is rewritten only when they changed, in the heartbeat's own transaction."""
        self.heartbeat_interval = HEARTBEAT
        # Striped in-process locks on inodes touched by a write transaction: on optimistic engines they
        # turn local conflicts (many tasks creating in one directory) into a queue instead of retries.
        # Engines that serialize writers anyway skip them, so group commit keeps batching.
        self._serial = bool(getattr(kv, "serializes_writers", False))
        self._ilocks = [asyncio.Lock() for _ in range(LOCK_STRIPES)]
        self.tails = CommitTails()
        """What this client's slice commits last wrote (`chunks.write_slice` assumes it instead of reading)."""
        self.own_dirs = OwnDirAttrs()
        """What this client's last change of a directory's entries left in its attributes (ADR 0037)."""
        self._recent_value: Callable[[bytes, float], tuple[bytes | None, float] | None] | None = getattr(
            kv, "recent_value", None
        )  # etcd: values this client's own commits left (`recent_dir_attr`, ADR 0043)

    @classmethod
    async def load(cls, kv: KV) -> Meta:
        """The engine for the volume stored in `kv`; VolumeNotFormatted when there is none."""
        m = cls(kv, await read_settings(kv))
        defer_adds = getattr(kv, "defer_adds", None)
        if defer_adds is not None:  # etcd: usage deltas batched as JuiceFS does (ADR 0034)
            defer_adds([keys.counter(keys.USED_SPACE), keys.counter(keys.TOTAL_INODES)])
        await m.refresh_usage()
        return m

    async def txn(self, body: Callable[[Tx], Awaitable[T]], *inodes: int) -> T:
        """Run a write transaction, serialized in this process with others touching the same `inodes`."""
        async with self.locked(*inodes):
            self.tails.forget(inodes)  # under the lock: a slice commit after this one reads first
            self.own_dirs.forget(*inodes)
            return await self.kv.txn(body)

    async def txn_dirs(self, body: Callable[[Tx], Awaitable[T]], *inodes: int) -> tuple[T, int]:
        """`txn` for a change of the entries of the directories among `inodes`: also returns the sequence
        number under which the caller records what it left in them (`OwnDirAttrs.wrote`). Begun under the
        locks (engines that take none run this client's write transactions in the order they are issued),
        so per directory the transactions commit in the order of their numbers."""
        async with self.locked(*inodes):
            self.tails.forget(inodes)
            seq = self.own_dirs.begin(*inodes)
            return await self.kv.txn(body), seq

    def locked(self, *inodes: int) -> contextlib.AbstractAsyncContextManager[None]:
        """``async with``: hold this process's locks of `inodes` (none on engines that serialize writers
        themselves: a shared no-op then, not a generator-based context manager per transaction)."""
        if self._serial or not inodes:
            return _NO_LOCKS
        return _StripeLocks([self._ilocks[s] for s in sorted({i % LOCK_STRIPES for i in inodes})])

    # ------------------------------------------------------------------ ids, usage, bookkeeping

    def _alloc(self, name: bytes) -> Callable[[int], Awaitable[int]]:
        async def fetch(batch: int) -> int:
            async def body(tx: Tx) -> int:
                return await tx.incr_by(keys.counter(name), batch)

            return await self.kv.txn(body)

        return fetch

    async def next_inode(self) -> int:
        return await self._inodes.next()

    async def next_slice_id(self) -> int:
        return await self._slices.next()

    async def refresh_usage(self) -> None:
        self._used_space, self._used_inodes = await statfs.read_usage(self.kv)
        await quota.refresh_flags(self)  # QUOTA HOOK

    @property
    def used_space(self) -> int:
        """Bytes used by the volume, as last read or updated by this client."""
        return self._used_space

    @property
    def used_inodes(self) -> int:
        return self._used_inodes

    def note_usage(self, space: int, inodes: int) -> None:
        self._used_space += space
        self._used_inodes += inodes

    def check_space(self, new_length: int) -> None:
        """ENOSPC when the volume has a capacity and is already full (checked against cached usage)."""
        cap = self.settings.capacity
        if cap and self._used_space >= cap and new_length > 0:
            raise FSError(errno.ENOSPC)

    def check_inode_quota(self, n: int) -> None:
        limit = self.settings.inodes
        if limit and self._used_inodes + n > limit:
            raise FSError(errno.ENOSPC, "inode limit reached")

    # ------------------------------------------------------------------ open files and deletion

    def open_file(self, ino: int, *, held: bool = True) -> None:
        """Record that this client opened `ino` (an unlinked file keeps its data until the last close).

        `held`: the file had a name outside the trash when opened (false for a file opened inside the
        trash); the same value must be passed to `close_file`.
        """
        self._open[ino] = self._open.get(ino, 0) + 1
        if held:
            self._held[ino] = self._held.get(ino, 0) + 1

    async def close_file(self, ino: int, *, held: bool = True) -> None:
        """Record a close; the last close of an unlinked file deletes it."""
        if self._record_close(ino, held) == 0 and ino in self.sustained:
            self.sustained.discard(ino)
            await self._finish_sustained(ino)

    def close_file_now(self, ino: int, *, held: bool = True) -> bool:
        """`close_file` without waiting: recorded and True, unless it is the last close of an unlinked
        file (its deletion needs the engine): then nothing is recorded and False."""
        if ino in self.sustained and self._open.get(ino, 0) <= 1:
            return False
        self._record_close(ino, held)
        return True

    def _record_close(self, ino: int, held: bool) -> int:
        """Count one close of `ino` (and of a held handle); returns how many opens are left."""
        if held:
            kept = self._held.get(ino, 0) - 1
            if kept > 0:
                self._held[ino] = kept
            else:
                self._held.pop(ino, None)
        left = self._open.get(ino, 0) - 1
        if left > 0:
            self._open[ino] = left
            return left
        self._open.pop(ino, None)
        return 0

    def is_open(self, ino: int) -> bool:
        return ino in self._open

    def holds(self, ino: int) -> bool:
        """Whether this client has `ino` open through a handle opened before the file went to the trash:
        changes through such handles are allowed although the trash is otherwise read-only."""
        return ino in self._held

    async def _finish_sustained(self, ino: int) -> None:
        now = time.time_ns()

        async def body(tx: Tx) -> int | None:
            key = keys.sustained(self.sid, ino)
            if await tx.get(key) is None:
                return None
            tx.delete(key)
            raw = await tx.get(keys.attr(ino))
            if raw is None:
                return None
            attr = Attr.decode(raw)
            if attr.nlink:
                return None
            await remove.delete_inode(tx, ino, attr, now, self)
            return attr.length

        length = await self.kv.txn(body)
        if length is not None:
            self.note_usage(-align4k(length), -1)
            if length > 0:
                await self.cleanup_file(ino, length)

    async def after_drop(self, ino: int, attr: Attr, fate: str) -> None:
        """Follow-up after an inode lost a name outside a transaction (usage, background data deletion)."""
        if fate == "sustained" and not self.is_open(ino) and ino in self.sustained:
            # The last close ran while the transaction was in flight (a body on an engine's worker thread
            # saw the file open): nobody is left to finish it, so finish it now.
            self.sustained.discard(ino)
            self.spawn(self._finish_sustained(ino))
            return
        if fate == "deleted":
            space = align4k(attr.length if attr.typ is FileType.REGULAR else 0)
            self.note_usage(-space, -1)
            if attr.typ is FileType.REGULAR and attr.length > 0:
                self.spawn(self.cleanup_file(ino, attr.length))

    async def cleanup_file(self, ino: int, length: int) -> None:
        await chunks.cleanup_file(self, ino, length)

    async def free_slices(self, freed: list[tuple[int, int]]) -> None:
        """Hand unreferenced slices to the data path for deletion, then drop their pending records.

        The hook returns the slices whose blocks are gone (None = all of them); the others stay pending
        (K = -1) for gc. A failing hook never fails the operation that freed the slices: it committed.
        """
        if self.free_hook is None or not freed:
            return  # no data path attached: the slices stay pending (K = -1) for gc
        try:
            deleted = await self.free_hook(freed)
        except Exception as exc:
            log.warning("slice_deletion_failed", slices=len(freed), error=str(exc))
            return
        done = freed if deleted is None else deleted
        if done:
            await chunks.forget_slices(self, list(done))

    async def forget_slices(self, slices: list[tuple[int, int]]) -> None:
        """Drop the pending-delete records of freed slices whose blocks a free hook deleted later."""
        await chunks.forget_slices(self, slices)

    def spawn(self, coro: Awaitable[Any]) -> None:
        self._jobs.spawn(coro)

    async def drain(self) -> None:
        """Wait for every background job started so far (tests, unmount)."""
        await self._jobs.drain()

    # ------------------------------------------------------------------ sessions

    async def start_session(self, mountpoint: str = "", *, heartbeat: float = HEARTBEAT, background: bool = True) -> int:
        """Register this client and (with `background`) start the heartbeat and cleanup jobs."""
        self.heartbeat_interval = heartbeat
        self._session_info = {
            "Version": f"jfs-{_client_version()}",  # `jfs status` shows each client's release (upgrades)
            "HostName": socket.gethostname(),
            "MountPoint": mountpoint,
            "MountTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "ProcessID": os.getpid(),
        }
        self.sid = await sessions.new_session(self, self._session_info, self._ttl())
        self._published = self._session_info
        log.info("session_started", sid=self.sid)
        if background:
            self._heartbeat = asyncio.get_running_loop().create_task(self._heartbeat_loop())
        return self.sid

    def _ttl(self) -> int:
        return max(1, int(self.heartbeat_interval * SESSION_TTL_FACTOR))

    async def _heartbeat_loop(self) -> None:
        # Ticks at least every quota.REFRESH_INTERVAL s: between heartbeats it only refreshes has_quotas
        # (one short scan), so a quota set by another client takes effect here within a tick.
        tick = min(self.heartbeat_interval, quota.REFRESH_INTERVAL)  # QUOTA HOOK
        next_beat = time.monotonic() + self.heartbeat_interval
        while True:
            await asyncio.sleep(tick)
            try:
                if time.monotonic() >= next_beat - tick / 2:
                    next_beat = time.monotonic() + self.heartbeat_interval
                    await self.heartbeat_once()
                else:
                    await quota.refresh_flags(self)  # QUOTA HOOK
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an engine hiccup must not kill the heartbeat
                log.warning("heartbeat_failed", error=str(exc))

    async def heartbeat_once(self) -> None:
        """One round of periodic work: renew the session, reload settings and usage, clean up after others."""
        info = self._session_info if self.session_extra is None else {**self._session_info, **self.session_extra()}
        await sessions.heartbeat(self, self.sid, self._ttl(), info, rewrite=info != self._published)
        self._published = info
        self.settings = await read_settings(self.kv)
        await self.refresh_usage()
        if await sessions.try_elect(self, keys.LAST_CLEANUP_SESSIONS, self.heartbeat_interval * 0.9):
            await self.clean_stale_sessions()
        # Long jobs run in the background: a heartbeat must never outlast the session's lifetime.
        if self._files_job is None or self._files_job.done():
            self._files_job = asyncio.ensure_future(self._cleanup_old_delfiles())
        if self._trash_job is None or self._trash_job.done():
            self._trash_job = asyncio.ensure_future(purge_trash_if_elected(self))

    async def _cleanup_old_delfiles(self) -> None:
        if await sessions.try_elect(self, keys.LAST_CLEANUP_FILES, DELFILE_AGE * 0.9):
            for ino, length in await sessions.pending_delfiles(self, DELFILE_AGE):
                await self.cleanup_file(ino, length)

    async def clean_stale_sessions(self, now: int | None = None) -> list[int]:
        """Clean every session whose expiry passed; returns their ids."""
        stale = [s for s in await sessions.find_stale(self, now) if s != self.sid]
        for sid in stale:
            log.info("cleaning_stale_session", sid=sid)
            await sessions.clean_session(self, sid)
        return stale

    async def list_sessions(self) -> list[dict[str, Any]]:
        return await sessions.list_sessions(self)

    async def close(self) -> None:
        """End this client's session cleanly (releasing its locks and sustained files) and stop jobs."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        for job in (self._files_job, self._trash_job):
            if job is not None and not job.done():
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job
        await self.drain()
        if self.sid:
            self._open.clear()
            await sessions.clean_session(self, self.sid)
            self.sid = 0
        await self._inodes.close()
        await self._slices.close()

    # ------------------------------------------------------------------ namespace operations

    # `getattr` and `lookup` return the engine's coroutine rather than awaiting it in one of their own: one
    # coroutine frame less on the mount's commonest requests (ADR 0047).

    def getattr(self, ino: int) -> Coroutine[Any, Any, Attr]:
        def body(tx: Tx) -> Awaitable[Attr]:
            return store.get_attr(tx, ino)

        return self.kv.read(body)

    def recent_dir_attr(self, ino: int, within: float) -> tuple[Attr, float] | None:
        """``(attributes, age)`` of directory `ino` as this client's own latest commit that wrote or
        compared them left them, sent at most `within` seconds ago (`age` before now), without a round trip;
        None when they are older, `ino` is not a directory or this client has learnt of a later version
        since. Another client's change after that commit is not seen: for a face whose own cache tolerates
        `within` of staleness (docs/adr/0043-…). Engines that keep the values their client's commits left
        (etcd) answer; on the others, the record of this client's last change of the directory's entries
        (`own_dirs`, ADR 0037)."""
        if within <= 0:
            return None
        if self._recent_value is None:
            return self.own_dirs.get(ino, within)
        hit = self._recent_value(keys.attr(ino), within)
        if hit is None or hit[0] is None:
            return None
        attr = Attr.decode(hit[0])
        return (attr, hit[1]) if attr.typ is FileType.DIRECTORY else None

    async def getattr_named(self, ino: int, ctx: Ctx = ROOT_CTX, mask: int = 0, *,
                            searchable: set[int] | None = None) -> Attr:
        """`getattr` for a request that names `ino` by number (no path lookup checked anything): EACCES
        unless `ctx` may search every directory on a path from the root to `ino` and holds the `mask`
        rights on it. `searchable`: a cache of directories found searchable, shared by one request."""
        return await access.named_inode(self, ctx, ino, mask, searchable=searchable)

    def lookup(self, parent: int, name: bytes, ctx: Ctx = ROOT_CTX, *,
               dir_known: bool = False) -> Coroutine[Any, Any, tuple[int, Attr]]:
        """`namespace.lookup` (`dir_known`: the caller knows `parent` is a directory)."""
        return namespace.lookup(self, ctx, parent, name, dir_known=dir_known)

    async def mknod(
        self, parent: int, name: bytes, typ: FileType, mode: int, ctx: Ctx = ROOT_CTX, *, rdev: int = 0
    ) -> tuple[int, Attr]:
        if typ in (FileType.DIRECTORY, FileType.SYMLINK):
            raise FSError(errno.EINVAL, "use mkdir/symlink")
        return await namespace.mknod(self, ctx, parent, name, typ, mode, rdev=rdev)

    async def create(self, parent: int, name: bytes, mode: int, ctx: Ctx = ROOT_CTX) -> tuple[int, Attr]:
        """Create a regular file and record it as open by this client."""
        ino, attr = await namespace.mknod(self, ctx, parent, name, FileType.REGULAR, mode)
        self.open_file(ino)
        return ino, attr

    async def mkdir(self, parent: int, name: bytes, mode: int, ctx: Ctx = ROOT_CTX) -> tuple[int, Attr]:
        return await namespace.mknod(self, ctx, parent, name, FileType.DIRECTORY, mode)

    async def symlink(self, parent: int, name: bytes, target: bytes, ctx: Ctx = ROOT_CTX) -> tuple[int, Attr]:
        return await namespace.mknod(self, ctx, parent, name, FileType.SYMLINK, 0o777, target=target)

    async def readlink(self, ino: int) -> bytes:
        return await namespace.readlink(self, ino)

    async def link(self, ino: int, parent: int, name: bytes, ctx: Ctx = ROOT_CTX) -> Attr:
        return await namespace.link(self, ctx, ino, parent, name)

    async def unlink(self, parent: int, name: bytes, ctx: Ctx = ROOT_CTX) -> tuple[int, Attr]:
        """Remove a non-directory name; returns the victim's (ino, attributes after the removal)."""
        return await remove.unlink(self, ctx, parent, name)

    async def rmdir(self, parent: int, name: bytes, ctx: Ctx = ROOT_CTX) -> None:
        await remove.rmdir(self, ctx, parent, name)

    async def rename(
        self, src_parent: int, src_name: bytes, dst_parent: int, dst_name: bytes, flags: int = 0, ctx: Ctx = ROOT_CTX
    ) -> tuple[int, Attr]:
        ino, attr, _ = await rename.rename(self, ctx, src_parent, src_name, dst_parent, dst_name, flags)
        return ino, attr

    async def rename_ex(
        self, src_parent: int, src_name: bytes, dst_parent: int, dst_name: bytes, flags: int = 0, ctx: Ctx = ROOT_CTX
    ) -> tuple[int, Attr, int]:
        """`rename`, also returning the inode that lost the destination name (0 if none)."""
        return await rename.rename(self, ctx, src_parent, src_name, dst_parent, dst_name, flags)

    async def setattr(self, ino: int, change: setattr_ops.SetAttr, ctx: Ctx = ROOT_CTX) -> Attr:
        return await setattr_ops.setattr(self, ctx, ino, change)

    async def truncate(self, ino: int, length: int, ctx: Ctx = ROOT_CTX) -> Attr:
        return await setattr_ops.truncate(self, ctx, ino, length)

    async def open(self, ino: int, flags: int, ctx: Ctx = ROOT_CTX, *, fresh: Attr | None = None) -> Attr:
        """Check access for open(2) `flags` and record the file as open by this client. `fresh`: the
        inode's attributes as the caller read them from the engine within the same request (a path walk's
        lookup): checked instead of read again, as JuiceFS's ``Open`` takes a valid attr from its caller."""
        mask = _OPEN_MASKS.get(flags & os.O_ACCMODE, MAY_READ)
        if flags & os.O_TRUNC:
            mask |= MAY_WRITE

        def check(attr: Attr) -> Attr:
            if mask & MAY_WRITE:
                if attr.typ is FileType.DIRECTORY:
                    raise FSError(errno.EISDIR)
                if is_trash_inode(attr.parent) or attr.flags & FLAG_IMMUTABLE:
                    raise FSError(errno.EPERM)
                if attr.flags & FLAG_APPEND and not flags & os.O_APPEND:
                    raise FSError(errno.EPERM, "append-only file")
            check_perm(ctx, attr, mask)
            return attr

        async def body(tx: Tx) -> Attr:
            return check(await store.get_attr(tx, ino))

        attr = check(fresh) if fresh is not None else await self.kv.read(body)
        if attr.typ is FileType.REGULAR:
            self.open_file(ino, held=not is_trash_inode(attr.parent))
        return attr

    def readdir(self, ino: int, ctx: Ctx = ROOT_CTX, *, plus: bool = False) -> AsyncIterator[listing.Entry]:
        return listing.readdir(self, ctx, ino, plus=plus)

    @overload
    async def readdir_page(self, ino: int, after: bytes = ..., limit: int = ..., ctx: Ctx = ..., *, plus: bool = ...,
                           records: Literal[False] = ...) -> tuple[list[listing.Entry], bytes | None]: ...
    @overload
    async def readdir_page(self, ino: int, after: bytes = ..., limit: int = ..., ctx: Ctx = ..., *, plus: bool = ...,
                           records: Literal[True]) -> tuple[list[listing.StoredEntry], bytes | None]: ...
    @overload
    async def readdir_page(self, ino: int, after: bytes = ..., limit: int = ..., ctx: Ctx = ..., *, plus: bool = ...,
                           records: bool) -> tuple[list[listing.Entry] | list[listing.StoredEntry], bytes | None]: ...
    async def readdir_page(
        self, ino: int, after: bytes = b"", limit: int = listing.PAGE, ctx: Ctx = ROOT_CTX, *, plus: bool = False,
        records: bool = False,
    ) -> tuple[list[listing.Entry] | list[listing.StoredEntry], bytes | None]:
        return await listing.readdir_page(self, ctx, ino, after, limit, plus=plus, records=records)

    # ------------------------------------------------------------------ xattrs

    async def getxattr(self, ino: int, name: bytes, ctx: Ctx = ROOT_CTX) -> bytes:
        return await xattrs.get_xattr(self, ctx, ino, name)

    async def getxattr_many(self, inodes: list[int], name: bytes, ctx: Ctx = ROOT_CTX) -> list[bytes | None]:
        return await xattrs.get_xattr_many(self, ctx, inodes, name)

    async def setxattr(self, ino: int, name: bytes, value: bytes, flags: int = 0, ctx: Ctx = ROOT_CTX) -> None:
        await xattrs.set_xattr(self, ctx, ino, name, value, flags)

    async def listxattr(self, ino: int, ctx: Ctx = ROOT_CTX) -> list[bytes]:
        return await xattrs.list_xattrs(self, ctx, ino)

    async def removexattr(self, ino: int, name: bytes, ctx: Ctx = ROOT_CTX) -> None:
        await xattrs.remove_xattr(self, ctx, ino, name)

    # ------------------------------------------------------------------ data map

    async def write_slice(
        self, ino: int, indx: int, pos: int, slice_id: int, size: int, off: int, length: int, mtime_ns: int = 0,
        sums: bytes | None = None,
    ) -> tuple[Attr, int]:
        return await chunks.write_slice(self, ino, indx, pos, slice_id, size, off, length, mtime_ns, sums)

    async def write_slices(self, ino: int, indx: int, slices: Sequence[NewSlice]) -> tuple[Attr, int]:
        return await chunks.write_slices(self, ino, indx, slices)

    async def read_block_sums(self, slice_id: int) -> bytes | None:
        """The block-checksum record of a slice (ADR 0008), None if it has none."""
        return await chunks.read_block_sums(self, slice_id)

    async def read_chunk(self, ino: int, indx: int) -> list[SliceRecord]:
        return await chunks.read_chunk(self, ino, indx)

    async def fallocate(self, ino: int, mode: int, off: int, length: int, ctx: Ctx = ROOT_CTX) -> Attr:
        return await chunks.fallocate(self, ctx, ino, mode, off, length)

    async def copy_file_range(
        self, src: int, off_in: int, dst: int, off_out: int, size: int, flags: int = 0, ctx: Ctx = ROOT_CTX
    ) -> tuple[int, Attr]:
        return await chunks.copy_file_range(self, ctx, src, off_in, dst, off_out, size, flags)

    async def compact_swap(
        self, ino: int, indx: int, plan: CompactionPlan, new_id: int, sums: bytes | None = None
    ) -> list[tuple[int, int]] | None:
        return await chunks.compact_swap(self, ino, indx, plan, new_id, sums)

    # ------------------------------------------------------------------ locks

    async def flock(self, ino: int, owner: int, ltype: str, *, block: bool = False) -> None:
        await locks.flock(self, ino, owner, ltype, block=block)

    async def getlk(self, ino: int, owner: int, ltype: int, start: int, end: int) -> locks.LockInfo:
        return await locks.getlk(self, ino, owner, ltype, start, end)

    async def setlk(
        self, ino: int, owner: int, ltype: int, start: int, end: int, pid: int, *, block: bool = False
    ) -> None:
        await locks.setlk(self, ino, owner, ltype, start, end, pid, block=block)

    # ------------------------------------------------------------------ volume

    async def statfs(self) -> statfs.StatFS:
        used, inodes = await statfs.read_usage(self.kv)
        self._used_space, self._used_inodes = used, inodes
        return statfs.compute(used, inodes, self.settings.capacity, self.settings.inodes)


class _NoLocks:
    """`Meta.locked` where nothing needs locking."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_LOCKS = _NoLocks()


class _StripeLocks:
    """`Meta.locked`: lock stripes taken in order on entry, released in reverse order on exit."""

    __slots__ = ("_locks",)

    def __init__(self, locks: list[asyncio.Lock]) -> None:
        self._locks = locks

    async def __aenter__(self) -> None:
        taken = 0
        try:
            for lock in self._locks:
                await lock.acquire()
                taken += 1
        except BaseException:
            for lock in reversed(self._locks[:taken]):
                lock.release()
            raise

    async def __aexit__(self, *exc: object) -> None:
        for lock in reversed(self._locks):
            lock.release()

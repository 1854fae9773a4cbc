"""Automatic metadata backup (``jfs mount --backup-meta INTERVAL``, JuiceFS's ``pkg/vfs/backup.go``).

Contract:

* Every ``INTERVAL / 10`` (at least `MIN_CHECK` s) a client checks the volume's ``lastBackup`` counter
  (unix seconds); when INTERVAL has passed since, it claims the backup in one transaction that writes the
  counter (a concurrent claimer conflicts and re-reads it, so one client per interval backs up, whichever
  mount gets there first), dumps the metadata (`jfs.app.ops.dump.dump_meta`: the JSON of ``jfs dump`` /
  ``juicefs dump``, secrets removed) gzip-compressed (level 1) and stores it as
  ``<volume>/meta/dump-YYYY-MM-DD-HHMMSS.json.gz`` (UTC), JuiceFS's name. ``jfs load META-URL FILE``
  restores it into an empty engine.
* Memory stays flat whatever the volume's size: the dump streams (page by page, `dump_meta`) into a
  temporary file in `workdir` (the client's cache directory), compressed and written by a thread
  (`_GzipFile`), and the file is uploaded from disk (`jfs.ports.objects.put_file`: a multipart upload on
  S3), bypassing write-back staging and the client's bandwidth limits; the file is removed afterwards,
  and one left by a killed process is removed by the next backup. Only the reading of the engine runs on
  the event loop, as any metadata request does. So unlike JuiceFS (which skips volumes over 1 M inodes
  for intervals up to an hour) every volume is backed up; a dump takes about as long as ``jfs dump``, so
  choose an interval well above that.
* After a successful backup, older backups are thinned as JuiceFS does (`expired`): every backup of the
  last 2 days is kept; before that, one per day back to 2 weeks, one per week back to about 2 months, one
  per 30 days beyond (the oldest of each window). Objects under ``meta/`` whose names do not parse are
  left alone. A failed backup deletes nothing.
* A failed backup is logged and tried again at the next check; the claim is not rolled back (the next
  attempt comes one INTERVAL later), so a broken backend does not make every client retry at once.
* `GAUGES` (process-wide, as JuiceFS's): the time and duration of this process's last backup, exported as
  ``juicefs_last_successful_backup`` / ``juicefs_last_backup_duration`` by clients that run the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import gzip
import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from jfs.app.ops.dump import dump_meta
from jfs.domain import keys
from jfs.domain.records import decode_i64, encode_i64
from jfs.ports.kv import KV, Tx
from jfs.ports.objects import ObjectStore, put_file

log = structlog.get_logger(__name__)

LAST_BACKUP = keys.counter(b"lastBackup")
"""Unix seconds of the last claimed backup of the volume."""
MIN_CHECK = 1.0
DUMP_THREADS = 2
"""Concurrent node reads of a backup's dump (JuiceFS uses 2): a backup should not load the engine."""
STAMP = "%Y-%m-%d-%H%M%S"
PREFIX, SUFFIX = "dump-", ".json.gz"
TEMP_PREFIX = ".backup-meta-"
QUEUED_PIECES = 16
"""Pieces of dump text (`jfs.app.ops.dump.FLUSH_BYTES` each) waiting for the compressing thread, at most."""


@dataclass
class BackupGauges:
    running: bool = False
    """A `MetaBackup` job was started in this process (the gauges are exported only then)."""
    last_success: float = 0.0
    """Unix time of the last successful backup made by this process (0 = none yet)."""
    last_duration: float = 0.0
    """Seconds the last backup attempt of this process took."""


GAUGES = BackupGauges()


def backup_key(volume: str, when: float) -> str:
    """The object key of a backup made at unix time `when`."""
    stamp = datetime.fromtimestamp(when, UTC).strftime(STAMP)
    return f"{volume}/meta/{PREFIX}{stamp}{SUFFIX}"


def backup_time(name: str) -> datetime | None:
    """When the backup object `name` (a key, or its last segment) was made; None if not a backup's name."""
    base = name.rsplit("/", 1)[-1]
    if not (base.startswith(PREFIX) and base.endswith(SUFFIX)):
        return None
    try:
        return datetime.strptime(base[len(PREFIX):-len(SUFFIX)], STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def expired(times: Iterable[datetime], now: datetime) -> list[datetime]:
    """The backups (by time) to delete at `now`, JuiceFS's rotation: all of the 2 days before `now` are
    kept; older ones fall into windows reaching back from there — 1 day wide until 14 days before `now`,
    7 days until 63, then 30 days — and of each window only the oldest backup is kept."""
    doomed: list[datetime] = []
    span = 2  # days between `now` and `edge`, the start of the current window
    edge = now - timedelta(days=span)
    window: list[datetime] = []  # the backups seen in the current window, newest first
    for t in sorted(set(times), reverse=True):
        if t < edge:
            doomed += window[:-1]
            window = []
            while t < edge:
                step = 1 if span < 14 else 7 if span < 60 else 30
                span += step
                edge -= timedelta(days=step)
            window.append(t)
        elif span > 2:
            window.append(t)
    doomed += window[:-1]
    return doomed


async def claim(kv: KV, interval: float, now: float) -> bool:
    """Whether this client is the one to back up now (it then wrote `now` as the last backup)."""

    async def body(tx: Tx) -> bool:
        last = decode_i64(await tx.get(LAST_BACKUP))
        if now - last < interval:
            return False
        tx.put(LAST_BACKUP, encode_i64(int(now)))
        return True

    return await kv.txn(body)


class _GzipFile:
    """A gzip file (level 1) written by a thread: `write` queues a piece and returns (it waits only when
    `QUEUED_PIECES` are queued), `close` finishes the file. An error of the thread is raised by the next
    `write` or by `close`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.size = 0
        self._pieces: queue.Queue[bytes | None] = queue.Queue(QUEUED_PIECES)
        self._error: BaseException | None = None
        self._file = open(path, "wb")  # noqa: SIM115 (closed by the thread)
        self._thread = threading.Thread(target=self._run, name="jfs-backup-gzip", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ended = False
        try:
            with self._file, gzip.GzipFile(fileobj=self._file, mode="wb", compresslevel=1) as gz:
                while (piece := self._pieces.get()) is not None:
                    gz.write(piece)
                ended = True
            self.size = os.path.getsize(self.path)
        except BaseException as exc:  # noqa: BLE001 (handed to the writer)
            self._error = exc
            while not ended:  # let `write` and `close` go on
                ended = self._pieces.get() is None

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._pieces.put(data)

    def close(self) -> None:
        """Wait for the thread to finish the file (blocking: call it off the event loop)."""
        self._pieces.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def _remove_leftovers(workdir: str) -> None:
    """Remove the temporary files of backups whose process is gone (killed during a backup)."""
    for path in glob.glob(os.path.join(glob.escape(workdir), f"{TEMP_PREFIX}*{SUFFIX}")):
        pid = os.path.basename(path)[len(TEMP_PREFIX):-len(SUFFIX)]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                continue  # alive: another client's backup in progress
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        with contextlib.suppress(OSError):
            os.unlink(path)


async def backup_now(kv: KV, store: ObjectStore, volume: str, now: float | None = None,
                     workdir: str | None = None) -> str:
    """Dump the metadata into the bucket through a temporary file in `workdir` (default: the system's
    temporary directory), then thin the older backups; returns the object key."""
    now = time.time() if now is None else now
    workdir = workdir or tempfile.gettempdir()
    await asyncio.to_thread(os.makedirs, workdir, exist_ok=True)
    await asyncio.to_thread(_remove_leftovers, workdir)
    path = os.path.join(workdir, f"{TEMP_PREFIX}{os.getpid()}{SUFFIX}")
    start = time.perf_counter()
    try:
        out = await asyncio.to_thread(_GzipFile, path)
        try:
            result = await dump_meta(kv, out.write, threads=DUMP_THREADS)
        finally:
            await asyncio.to_thread(out.close)
        key = backup_key(volume, now)
        await put_file(store, key, path)
    finally:
        GAUGES.last_duration = time.perf_counter() - start
        with contextlib.suppress(OSError):
            await asyncio.to_thread(os.unlink, path)
    GAUGES.last_success = now
    log.info("backup_meta_done", key=key, entries=result.entries, bytes=out.size,
             seconds=round(time.perf_counter() - start, 3))
    await thin_backups(store, volume, now)
    return key


async def thin_backups(store: ObjectStore, volume: str, now: float) -> list[str]:
    """Delete the backups of `volume` that `expired` names at `now`; returns their keys. A failed deletion
    is logged and left for the next time."""
    found: dict[datetime, str] = {}
    async for info in store.list(f"{volume}/meta/"):
        when = backup_time(info.key)
        if when is not None and "/" not in info.key[len(volume) + len("/meta/"):]:
            found[when] = info.key
    doomed = [found[t] for t in expired(found, datetime.fromtimestamp(now, UTC))]
    for key in doomed:
        try:
            await store.delete(key)
        except Exception as exc:  # noqa: BLE001 (tried again after the next backup)
            log.warning("backup_meta_delete_failed", key=key, error=str(exc) or type(exc).__name__)
    if doomed:
        log.info("backup_meta_thinned", deleted=len(doomed), kept=len(found) - len(doomed))
    return doomed


class MetaBackup:
    """The background job of one client: `start`, then `close` (cancels a backup in progress: no
    object is written then)."""

    def __init__(self, kv: KV, store: ObjectStore, volume: str, interval: float, workdir: str | None = None) -> None:
        if interval <= 0:
            raise ValueError("the backup interval must be positive")
        self.kv = kv
        self.store = store
        self.volume = volume
        self.interval = interval
        self.workdir = workdir
        self.check = max(MIN_CHECK, interval / 10)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> MetaBackup:
        GAUGES.running = True
        self._task = asyncio.get_running_loop().create_task(self._run(), name="backup-meta")
        return self

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check)
            try:
                if await claim(self.kv, self.interval, time.time()):
                    await backup_now(self.kv, self.store, self.volume, workdir=self.workdir)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 (any failure: log it, try at the next interval)
                log.warning("backup_meta_failed", error=str(exc) or type(exc).__name__)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

"""Automatic metadata backup (``jfs mount --backup-meta INTERVAL``, JuiceFS's ``pkg/vfs/backup.go``).

Contract:

* Every ``INTERVAL / 10`` (at least `MIN_CHECK` s) a client checks the volume's ``lastBackup`` counter
  (unix seconds); when INTERVAL has passed since, it claims the backup in one transaction that writes the
  counter (a concurrent claimer conflicts and re-reads it, so one client per interval backs up, whichever
  mount gets there first), dumps the metadata (`jfs.app.ops.dump.dump_meta`: the JSON of ``jfs dump`` /
  ``juicefs dump``, secrets removed) gzip-compressed (level 1) and PUTs it as
  ``<volume>/meta/dump-YYYY-MM-DD-HHMMSS.json.gz`` (UTC), JuiceFS's name. ``jfs load META-URL FILE``
  restores it into an empty engine.
* A volume of more than `MAX_INODES` inodes is not backed up automatically (a warning says so; use
  ``jfs dump``), as in JuiceFS: the dump is built in memory and its writing runs on the event loop.
* A failed backup is logged and tried again at the next check; the claim is not rolled back (the next
  attempt comes one INTERVAL later), so a broken backend does not make every client retry at once.
* Old backups are kept (no retention policy yet): remove them from the bucket by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import time
from datetime import UTC, datetime

import structlog

from jfs.app.ops.dump import dump_meta
from jfs.domain import keys
from jfs.domain.records import decode_i64, encode_i64
from jfs.ports.kv import KV, Tx
from jfs.ports.objects import ObjectStore

log = structlog.get_logger(__name__)

LAST_BACKUP = keys.counter(b"lastBackup")
"""Unix seconds of the last claimed backup of the volume."""
MAX_INODES = 1_000_000
MIN_CHECK = 1.0


def backup_key(volume: str, when: float) -> str:
    """The object key of a backup made at unix time `when`."""
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d-%H%M%S")
    return f"{volume}/meta/dump-{stamp}.json.gz"


async def claim(kv: KV, interval: float, now: float) -> bool:
    """Whether this client is the one to back up now (it then wrote `now` as the last backup)."""

    async def body(tx: Tx) -> bool:
        last = decode_i64(await tx.get(LAST_BACKUP))
        if now - last < interval:
            return False
        tx.put(LAST_BACKUP, encode_i64(int(now)))
        return True

    return await kv.txn(body)


async def backup_now(kv: KV, store: ObjectStore, volume: str, now: float | None = None) -> str | None:
    """Dump the metadata into the bucket; the object key, or None when the volume is too big."""
    now = time.time() if now is None else now
    inodes = decode_i64(await kv.read(lambda tx: tx.get(keys.counter(keys.TOTAL_INODES))))
    if inodes > MAX_INODES:
        log.warning("backup_meta_skipped", inodes=inodes, limit=MAX_INODES,
                    detail="too many inodes for the automatic backup: use jfs dump")
        return None
    buf = io.BytesIO()
    start = time.perf_counter()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1) as gz:
        await dump_meta(kv, gz.write)
    key = backup_key(volume, now)
    await store.put(key, buf.getvalue())
    log.info("backup_meta_done", key=key, bytes=buf.tell(), seconds=round(time.perf_counter() - start, 3))
    return key


class MetaBackup:
    """The background job of one client: `start`, then `close` (cancels a backup in progress: no
    object is written then)."""

    def __init__(self, kv: KV, store: ObjectStore, volume: str, interval: float) -> None:
        if interval <= 0:
            raise ValueError("the backup interval must be positive")
        self.kv = kv
        self.store = store
        self.volume = volume
        self.interval = interval
        self.check = max(MIN_CHECK, interval / 10)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> MetaBackup:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="backup-meta")
        return self

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check)
            try:
                if await claim(self.kv, self.interval, time.time()):
                    await backup_now(self.kv, self.store, self.volume)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 (any failure: log it, try at the next interval)
                log.warning("backup_meta_failed", error=str(exc) or type(exc).__name__)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

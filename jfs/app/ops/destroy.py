"""`jfs destroy`: delete a volume for good — every object under ``<volume>/`` and all of its metadata.

Guards: the caller names the volume's UUID (a typo cannot destroy the wrong volume), and the volume must
have no live session (a mounted client would keep writing into a volume that no longer exists). Expired
sessions of crashed clients do not count. The CLI adds a confirmation prompt.

Order: objects first, then the metadata (`KV.reset`), so an interrupted destroy can simply be run again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from jfs.app.errors import ActiveSessions, VolumeError
from jfs.app.meta import sessions, statfs
from jfs.app.meta.engine import Meta, read_settings
from jfs.app.ops.gc import DEFAULT_THREADS, DELETE_BATCH, bounded
from jfs.app.progress import ProgressBoard, QuietBoard
from jfs.app.volume import BucketOpener
from jfs.domain.settings import Settings
from jfs.ports.kv import KV

log = structlog.get_logger("jfs.destroy")


@dataclass
class VolumeSummary:
    """What the CLI shows before asking for confirmation."""

    settings: Settings
    used_space: int
    used_inodes: int
    sessions: list[dict[str, Any]] = field(default_factory=list)
    """Live sessions (expiry in the future)."""
    stale_sessions: int = 0


@dataclass
class DestroyReport:
    objects: int = 0
    bytes: int = 0
    failed: int = 0
    seconds: float = 0.0


async def _live_sessions(kv: KV) -> tuple[list[dict[str, Any]], int]:
    meta = Meta(kv, await read_settings(kv))
    now = int(time.time())
    all_sessions = await sessions.list_sessions(meta)
    live = [s for s in all_sessions if s["Expire"] >= now]
    return live, len(all_sessions) - len(live)


async def describe(kv: KV) -> VolumeSummary:
    """Settings, usage and live sessions of the volume in `kv`; VolumeNotFormatted if there is none."""
    settings = await read_settings(kv)
    used, inodes = await statfs.read_usage(kv)
    live, stale = await _live_sessions(kv)
    return VolumeSummary(settings, used, inodes, live, stale)


def _session_line(s: dict[str, Any]) -> str:
    where = f"{s.get('HostName', '?')}:{s.get('MountPoint', '') or '-'}"
    return f"sid {s['Sid']} on {where} (pid {s.get('ProcessID', '?')})"


async def destroy_volume(
    kv: KV, uuid: str, open_bucket: BucketOpener, *, threads: int = DEFAULT_THREADS,
    progress: ProgressBoard | None = None,
) -> DestroyReport:
    """Delete every object under ``<volume>/`` and every metadata key of the volume in `kv` (the caller
    closes `kv`); its bucket is opened with `open_bucket` only once the guards have passed.

    Raises VolumeError when there is no volume (VolumeNotFormatted) or `uuid` is not its UUID,
    ActiveSessions when a client still has it mounted, and ObjectStoreError when objects could not be
    deleted (the metadata is then kept, so the command can be repeated).
    """
    started = time.monotonic()
    progress = progress or QuietBoard()
    settings = await read_settings(kv)
    if uuid != settings.uuid:
        raise VolumeError(f"UUID {uuid} is not the UUID of volume '{settings.name}' (jfs status shows it)")
    live, _ = await _live_sessions(kv)
    if live:
        raise ActiveSessions(
            f"volume '{settings.name}' has {len(live)} active session(s): "
            + "; ".join(_session_line(s) for s in live)
            + " — unmount them first",
            live,
        )
    report = DestroyReport()
    store = await open_bucket(settings, reads_data=False)  # deleting objects needs no decryption
    prefix = f"{settings.name}/"
    bar = progress.bar("Deleted objects", unit="objects")
    try:
        batch: list[tuple[str, int]] = []

        async def one(key: str, size: int) -> None:
            await store.delete(key)
            report.objects += 1
            report.bytes += size
            bar.advance()

        async def flush() -> None:
            for r in await bounded((one(k, s) for k, s in batch), threads):
                if isinstance(r, BaseException):
                    report.failed += 1
                    log.warning("object_delete_failed", error=str(r))
            batch.clear()

        async for obj in store.list(prefix):
            batch.append((obj.key, obj.size))
            if len(batch) >= DELETE_BATCH:
                await flush()
        await flush()
    finally:
        bar.close()
        await store.close()
    if report.failed:
        raise VolumeError(
            f"{report.failed} objects of volume '{settings.name}' could not be deleted; metadata kept, "
            "run destroy again"
        )
    await kv.reset()
    report.seconds = time.monotonic() - started
    log.info("volume_destroyed", name=settings.name, uuid=uuid, objects=report.objects, bytes=report.bytes)
    return report

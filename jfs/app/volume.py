"""Volume-level use cases behind the CLI: format, status, config."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from jfs.app.compose import normalize_bucket, open_bucket, open_engine
from jfs.app.meta import statfs
from jfs.app.meta.engine import Meta, VolumeExists, VolumeNotFormatted, format_meta, read_settings
from jfs.domain.settings import Settings
from jfs.ports.objects import ObjectNotFound, ObjectStore

UUID_OBJECT = "juicefs_uuid"
MUTABLE = ("trash_days", "capacity", "inodes", "access_key", "secret_key", "session_token", "checksum")


class VolumeError(Exception):
    """A volume-level failure with a message ready for the user (one line)."""


async def _probe_bucket(store: ObjectStore, name: str) -> None:
    """Write, read back and delete a probe object; VolumeError when the bucket is not writable."""
    key = f"{name}/testing/{secrets.token_hex(8)}"
    payload = secrets.token_bytes(64)
    await store.put(key, payload)
    try:
        if await store.get(key) != payload:
            raise VolumeError(f"bucket {store.url} returned different bytes than written")
    finally:
        await store.delete(key)


async def format_volume(meta_url: str, settings: Settings, *, force: bool = False) -> Settings:
    """Create a volume: check the bucket is reachable and writable, refuse an existing volume (unless
    `force`) or a bucket prefix that belongs to another volume, then write the metadata and the UUID
    object. Returns the stored settings."""
    settings.bucket = normalize_bucket(settings.storage, settings.bucket)
    settings.validate()
    store = await open_bucket(settings)  # a malformed bucket address fails here, before the engine is touched
    try:
        kv = await open_engine(meta_url)
        try:
            try:
                existing = await read_settings(kv)
            except VolumeNotFormatted:
                existing = None
            if existing is not None and not force:
                raise VolumeError(
                    f"volume '{existing.name}' already exists in {kv.url} (use --force to update it)"
                )
            await store.create_bucket()
            await _probe_bucket(store, settings.name)
            try:
                owner = (await store.get(f"{settings.name}/{UUID_OBJECT}")).decode(errors="replace").strip()
            except ObjectNotFound:
                owner = ""
            if owner and (existing is None or owner != existing.uuid):
                raise VolumeError(
                    f"bucket {store.url} already holds volume '{settings.name}' with UUID {owner}: "
                    "use another bucket or volume name"
                )
            try:
                stored = await format_meta(kv, settings, force=force)
            except VolumeExists as exc:
                raise VolumeError(str(exc)) from None
            await store.put(f"{settings.name}/{UUID_OBJECT}", stored.uuid.encode())
            return stored
        finally:
            await kv.close()
    finally:
        await store.close()


@asynccontextmanager
async def loaded_volume(meta_url: str) -> AsyncIterator[Meta]:
    """The metadata engine of the volume at `meta_url`, loaded (no session); the engine connection is
    closed on exit. VolumeError when the engine holds no volume."""
    kv = await open_engine(meta_url)
    try:
        try:
            meta = await Meta.load(kv)
        except VolumeNotFormatted as exc:
            raise VolumeError(str(exc)) from None
        yield meta
    finally:
        await kv.close()


async def volume_status(meta_url: str, *, session: int | None = None) -> dict[str, Any]:
    """Settings (secrets masked), sessions and usage of the volume at `meta_url`."""
    async with loaded_volume(meta_url) as meta:
        sessions = await meta.list_sessions()
        now = int(time.time())
        for s in sessions:
            s["Stale"] = s["Expire"] < now
        if session is not None:
            sessions = [s for s in sessions if s["Sid"] == session]
            if not sessions:
                raise VolumeError(f"session {session} not found")
        st = await meta.statfs()
        return {
            "Setting": meta.settings.to_dict(mask_secrets=True),
            "Sessions": sessions,
            "Statistic": {
                "UsedSpace": st.used_space,
                "AvailableSpace": st.avail_space,
                "UsedInodes": st.used_inodes,
                "AvailableInodes": st.avail_inodes,
            },
        }


async def update_settings(meta_url: str, changes: dict[str, object]) -> tuple[Settings, Settings]:
    """Change the settings that may change on a live volume; returns (old, new)."""
    bad = sorted(set(changes) - set(MUTABLE))
    if bad:
        raise VolumeError(f"cannot change {', '.join(bad)} of an existing volume")
    kv = await open_engine(meta_url)
    try:
        try:
            old = await read_settings(kv)
        except VolumeNotFormatted as exc:
            raise VolumeError(str(exc)) from None
        new = Settings.from_json(old.to_json())
        for key, value in changes.items():
            setattr(new, key, value)
        new.validate()
        await format_meta(kv, new, force=True)
        return old, new
    finally:
        await kv.close()


__all__ = ["VolumeError", "format_volume", "volume_status", "update_settings", "statfs"]

"""Volume-level use cases behind the CLI: format, status, config.

They receive the opened engine (`KV`) or the loaded `Meta`, never a META-URL: `jfs.compose` (the
composition root) opens those and has the URL-taking wrappers the CLI calls. A bucket is opened through a
`BucketOpener` passed in (`jfs.compose.open_bucket`), since format opens the bucket of settings that are
not stored yet. Failures a user can act on are `VolumeError` (one line).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from typing import Any, Protocol

from jfs.app.data.compress import CorruptBlock
from jfs.app.data.crypto import plain_settings, seal_settings
from jfs.app.errors import VolumeError
from jfs.app.meta import statfs
from jfs.app.meta.engine import Meta, VolumeNotFormatted, format_meta, read_settings
from jfs.domain.settings import Settings
from jfs.ports.kv import KV
from jfs.ports.objects import ObjectNotFound, ObjectStore

MUTABLE = ("trash_days", "capacity", "inodes", "access_key", "secret_key", "session_token", "checksum")
UUID_OBJECT = "juicefs_uuid"
"""The object ``<volume>/juicefs_uuid`` holds the UUID of the volume that owns the bucket prefix."""


class BucketOpener(Protocol):
    """Opens the object store of a volume's settings (`jfs.compose.open_bucket`): with `reads_data`, one
    that seals and opens objects of an encrypted volume; with `check_key`, the key must open the
    ``juicefs_uuid`` object."""

    async def __call__(self, settings: Settings, *, reads_data: bool = True, check_key: bool = True) -> ObjectStore: ...


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


async def format_volume(
    kv: KV, settings: Settings, open_bucket: BucketOpener, *, force: bool = False, encrypt_secret: bool = False
) -> Settings:
    """Create a volume in the engine `kv`: check the bucket is reachable and writable, refuse an existing
    volume (unless `force`) or a bucket prefix that belongs to another volume, then write the metadata and
    the UUID object. Returns the stored settings. `settings.bucket` must be normalized and the settings
    valid already (`jfs.compose.format_volume` does that, and checks the bucket address before it opens
    the engine).

    `settings` carries its secrets in plain text; they are stored sealed (``KeyEncrypted``, as JuiceFS
    does) when the volume is encrypted (`settings.encrypt_key`, the RSA key PEM) or `encrypt_secret`.
    An encrypted volume's ``juicefs_uuid`` object is sealed like every block. `force` keeps the existing
    volume's encryption; it cannot add, drop or change it (the objects are sealed, or not, already).
    """
    try:
        existing = await read_settings(kv)
    except VolumeNotFormatted:
        existing = None
    if existing is not None and not force:
        raise VolumeError(f"volume '{existing.name}' already exists in {kv.url} (use --force to update it)")
    if existing is not None:
        existing.check_readable()
        _keep_encryption(plain_settings(existing), settings)
        settings.uuid = existing.uuid  # the UUID seals the secrets: the final one
        encrypt_secret = encrypt_secret or existing.key_encrypted
    store = await open_bucket(settings, check_key=False)
    try:
        await store.create_bucket()
        await _probe_bucket(store, settings.name)
        try:
            owner = (await store.get(f"{settings.name}/{UUID_OBJECT}")).decode(errors="replace").strip()
        except ObjectNotFound:
            owner = ""
        except CorruptBlock:  # sealed under another key, or not sealed at all
            raise VolumeError(
                f"bucket {store.url} already holds volume '{settings.name}', "
                f"{'encrypted with another key' if settings.encrypt_key else 'encrypted'}: "
                "use another bucket or volume name"
            ) from None
        if owner and (existing is None or owner != existing.uuid):
            raise VolumeError(
                f"bucket {store.url} already holds volume '{settings.name}' with UUID {owner}: "
                "use another bucket or volume name"
            )
        if settings.encrypt_key or encrypt_secret:
            settings = seal_settings(settings)
        stored = await format_meta(kv, settings, force=force)  # VolumeExists (a VolumeError) when raced
        await store.put(f"{settings.name}/{UUID_OBJECT}", stored.uuid.encode())
        return stored
    finally:
        await store.close()


def _keep_encryption(old: Settings, new: Settings) -> None:
    """`format --force`: `new` takes `old`'s encryption (plain key); VolumeError for a change of it."""
    if not new.encrypt_key:
        new.encrypt_key, new.encrypt_algo = old.encrypt_key, old.encrypt_algo
    elif not old.encrypt_key:
        raise VolumeError(f"cannot encrypt existing volume '{old.name}': its objects are stored unencrypted")
    elif new.encrypt_key != old.encrypt_key or new.encrypt_algo != old.encrypt_algo:
        raise VolumeError(f"cannot change the encryption key or algorithm of existing volume '{old.name}'")


async def volume_status(meta: Meta, *, session: int | None = None) -> dict[str, Any]:
    """Settings (secrets masked), sessions and usage of the volume of `meta`."""
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


def check_changes(changes: dict[str, object]) -> None:
    """VolumeError when `changes` names a setting that may not change on an existing volume."""
    bad = sorted(set(changes) - set(MUTABLE) - {"encrypt_secret"})
    if bad:
        raise VolumeError(f"cannot change {', '.join(bad)} of an existing volume")


async def update_settings(kv: KV, changes: dict[str, object]) -> tuple[Settings, Settings]:
    """Change the settings that may change on a live volume; returns (old, new). Secrets stay sealed when
    they were (``KeyEncrypted``); ``encrypt_secret=True`` seals plain ones (JuiceFS's ``--encrypt-secret``).
    VolumeError for a setting that may not change, VolumeNotFormatted for an empty engine."""
    check_changes(changes)
    old = await read_settings(kv)
    encrypt_secret = bool(changes.pop("encrypt_secret", False))
    plain_old = plain_settings(old)
    new = Settings.from_json(plain_old.to_json())
    for key, value in changes.items():
        setattr(new, key, value)
    new.validate()
    sealed = seal_settings(new) if old.key_encrypted or encrypt_secret else new
    await format_meta(kv, sealed, force=True)
    # Compared in plain text: a re-sealed secret differs in bytes (fresh nonce), not in value.
    return replace(plain_old, key_encrypted=old.key_encrypted), replace(new, key_encrypted=sealed.key_encrypted)


__all__ = [
    "UUID_OBJECT", "BucketOpener", "VolumeError", "VolumeNotFormatted", "format_volume", "volume_status",
    "update_settings", "check_changes", "statfs",
]

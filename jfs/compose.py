"""The composition root: turns a META-URL and a volume's settings into live adapters.

The one module outside the faces that knows concrete adapters (through the scheme registries of
`jfs.adapters.kv` and `jfs.adapters.objects`). Everything that starts from a META-URL opens its volume here:

* `open_engine` / `opened_engine`: the engine's `KV` (``$META_PASSWORD`` supplies a missing password);
* `open_bucket`: the object store of a volume's settings (the one gate between a volume and its data:
  credentials, encryption, the key check);
* `open_volume`: engine + loaded `Meta` (no session unless asked) + the object store on demand, closed
  in the reverse order; what ops commands (gc, fsck, quota, restore, mdtest, status, ...) run on;
* `format_volume`, `volume_status`, `update_settings`: the URL-taking wrappers of `jfs.app.volume` that the
  CLI calls.

`jfs.bootstrap` builds a full client (data path, session, VFS) on top of these. The use cases in
`jfs.app` receive what is opened here (`KV`, `Meta`, `ObjectStore`), never a URL, and never import this
module or `jfs.adapters` (`tests/unit/test_layering.py`). Errors: `jfs.app.errors.VolumeError` (including
`VolumeNotFormatted`) and the ports' errors; a malformed META-URL or bucket address is `BadMetaURL` /
`BadStorage`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.registry import open_store
from jfs.app import volume as volume_cases
from jfs.app.data.crypto import EncryptedStore, KeyProblem, SealBroken, plain_settings, volume_sealer
from jfs.app.meta import Meta
from jfs.app.meta.engine import HEARTBEAT
from jfs.app.volume import UUID_OBJECT
from jfs.domain.settings import Settings
from jfs.ports.kv import KV
from jfs.ports.objects import ObjectNotFound, ObjectStore


def with_env_password(meta_url: str) -> str:
    """Insert ``$META_PASSWORD`` into a network META-URL that carries no password (keeps it out of ps)."""
    password = os.environ.get("META_PASSWORD")
    scheme, sep, rest = meta_url.partition("://")
    if not password or not sep or scheme in ("sqlite3", "memory", "unix"):
        return meta_url
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        cred, _, host = netloc.rpartition("@")
        if ":" in cred:
            return meta_url  # the URL has its own password
        return f"{scheme}://{cred}:{quote(password, safe='')}@{host}{slash}{path}"
    return f"{scheme}://:{quote(password, safe='')}@{netloc}{slash}{path}"


ONE_PASS_SQLITE_CACHE_KIB = 4096


def one_pass_engine_caches() -> None:
    """Small engine page caches for a tool that reads or writes the metadata once (dump, load, gc, fsck),
    unless the user set them: its memory then stays flat however large the volume (a SQLite connection's
    cache fills up to its size with pages it never reads again; a memory-mapped file's pages would count in
    its RSS up to the file's size: no mapping, ADR 0057). Call before opening the engine."""
    os.environ.setdefault("JFS_SQLITE_CACHE_KIB", str(ONE_PASS_SQLITE_CACHE_KIB))
    os.environ.setdefault("JFS_SQLITE_MMAP_MIB", "0")


async def open_engine(meta_url: str) -> KV:
    """Connect to the engine of `meta_url` (``$META_PASSWORD`` supplies a missing password); the caller
    closes it."""
    return await open_kv(with_env_password(meta_url))


@asynccontextmanager
async def opened_engine(meta_url: str) -> AsyncIterator[KV]:
    """`open_engine`, closed on exit."""
    kv = await open_engine(meta_url)
    try:
        yield kv
    finally:
        await kv.close()


def normalize_bucket(storage: str, bucket: str) -> str:
    """A `file` bucket becomes an absolute directory path ending in ``/`` (as JuiceFS stores it)."""
    if storage == "file":
        path = os.path.abspath(os.path.expanduser(bucket or "~/.jfs/local"))
        return path.rstrip("/") + "/"
    return bucket


async def open_bucket(settings: Settings, *, reads_data: bool = True, check_key: bool = True) -> ObjectStore:
    """The object store of a volume, with credentials from its settings (sealed ones opened) or the
    environment; for an encrypted volume, an `EncryptedStore` that seals and opens every object.

    The one gate between a volume and its data, before any connection: a volume jfs cannot read
    (`Settings.check_readable`) raises `EncryptedVolume`, an unusable key (no or wrong
    ``$JFS_RSA_PASSPHRASE``) `KeyProblem` — so mount (and what needs a mount: warmup, bench), gc and fsck
    stop with one line and change nothing. With `check_key`, the ``juicefs_uuid`` object (when present)
    must open with the key, else `KeyProblem`: the setting's key is not the one the objects were sealed
    with. Only `destroy`, which deletes objects without reading them, passes ``reads_data=False``.
    """
    plain = plain_settings(settings)
    sealer = None
    if reads_data:
        settings.check_readable()
        sealer = volume_sealer(plain)
    store = await open_store(
        plain.storage,
        plain.bucket,
        access_key=plain.access_key or os.environ.get("AWS_ACCESS_KEY_ID", ""),
        secret_key=plain.secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        session_token=plain.session_token or os.environ.get("AWS_SESSION_TOKEN", ""),
    )
    if sealer is None:
        return store
    sealed = EncryptedStore(store, sealer)
    if check_key:
        try:
            await check_volume_key(sealed, settings.name)
        except BaseException:
            await sealed.close()
            raise
    return sealed


async def check_volume_key(store: EncryptedStore, name: str) -> None:
    """KeyProblem when the volume's ``juicefs_uuid`` object exists but does not open with the key."""
    try:
        await store.get(f"{name}/{UUID_OBJECT}")
    except ObjectNotFound:
        return
    except SealBroken as exc:
        raise KeyProblem(
            f"the RSA key of volume '{name}' does not open its objects ({exc}): the key does not match the volume"
        ) from None


class Volume:
    """An opened volume: the engine (`kv`), its loaded metadata engine (`meta`) and, opened on the first
    `store()` call, its object store. Built and closed by `open_volume`."""

    def __init__(self, kv: KV, meta: Meta, *, reads_data: bool = True) -> None:
        self.kv = kv
        self.meta = meta
        self._reads_data = reads_data
        self._store: ObjectStore | None = None
        self._session = False

    @property
    def settings(self) -> Settings:
        return self.meta.settings

    async def store(self) -> ObjectStore:
        """The volume's object store (`open_bucket` on its settings), opened once; closed with the volume."""
        if self._store is None:
            self._store = await open_bucket(self.meta.settings, reads_data=self._reads_data)
        return self._store

    async def close(self) -> None:
        """Close what was opened, in the reverse order: the object store, the session, the engine."""
        try:
            try:
                if self._store is not None:
                    await self._store.close()
            finally:
                if self._session:
                    await self.meta.close()
        finally:
            await self.kv.close()


@asynccontextmanager
async def open_volume(
    meta_url: str, *, session: str | None = None, heartbeat: float = HEARTBEAT, background: bool = True,
    reads_data: bool = True,
) -> AsyncIterator[Volume]:
    """The volume at `meta_url`: engine connected, `Meta` loaded; with `session` (its label in
    ``jfs status``), a client session started (heartbeat and, with `background`, the background jobs) and
    ended on exit. The object store is opened only when asked for (`Volume.store`; `reads_data=False`: no
    decryption, see `open_bucket`). Everything is closed on exit, in the reverse order.

    VolumeNotFormatted (a VolumeError) when the engine holds no volume; nothing is left open then.
    """
    kv = await open_engine(meta_url)
    try:
        meta = await Meta.load(kv)
    except BaseException:
        await kv.close()
        raise
    vol = Volume(kv, meta, reads_data=reads_data)
    try:
        if session is not None:
            vol._session = True  # (set first: a half-started session is ended too)
            await meta.start_session(session, heartbeat=heartbeat, background=background)
        yield vol
    finally:
        await vol.close()


@asynccontextmanager
async def open_meta_and_store(meta_url: str) -> AsyncIterator[tuple[Meta, ObjectStore]]:
    """The loaded engine (no session) and the object store of the volume at `meta_url`, what the offline
    tools (gc, fsck) take; both closed on exit. Errors as `open_volume`."""
    async with open_volume(meta_url) as vol:
        yield vol.meta, await vol.store()


# ------------------------------------------------------------------------ URL wrappers of jfs.app.volume


async def format_volume(
    meta_url: str, settings: Settings, *, force: bool = False, encrypt_secret: bool = False
) -> Settings:
    """`jfs.app.volume.format_volume` on the engine of `meta_url`. The bucket address is normalized and
    checked first: a malformed one fails (BadStorage) before the engine is touched."""
    settings.bucket = normalize_bucket(settings.storage, settings.bucket)
    settings.validate()
    await (await open_bucket(settings, reads_data=False)).close()
    async with opened_engine(meta_url) as kv:
        return await volume_cases.format_volume(
            kv, settings, open_bucket, force=force, encrypt_secret=encrypt_secret
        )


async def volume_status(meta_url: str, *, session: int | None = None) -> dict[str, Any]:
    """`jfs.app.volume.volume_status` of the volume at `meta_url`."""
    async with open_volume(meta_url) as vol:
        return await volume_cases.volume_status(vol.meta, session=session)


async def update_settings(meta_url: str, changes: dict[str, object]) -> tuple[Settings, Settings]:
    """`jfs.app.volume.update_settings` on the engine of `meta_url` (the changes are checked before it is
    opened)."""
    volume_cases.check_changes(changes)
    async with opened_engine(meta_url) as kv:
        return await volume_cases.update_settings(kv, changes)


__all__ = [
    "UUID_OBJECT", "Volume", "check_volume_key", "format_volume", "normalize_bucket", "open_bucket",
    "open_engine", "open_volume", "opened_engine", "update_settings", "volume_status", "with_env_password",
]

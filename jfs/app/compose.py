"""The composition root: turns a META-URL and a volume's settings into live adapters.

The only module of the app layer that knows concrete adapters (through the scheme registries).
"""

from __future__ import annotations

import os
from urllib.parse import quote

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.registry import open_store
from jfs.app.data.crypto import EncryptedStore, KeyProblem, SealBroken, plain_settings, volume_sealer
from jfs.domain.settings import Settings
from jfs.ports.kv import KV
from jfs.ports.objects import ObjectNotFound, ObjectStore

UUID_OBJECT = "juicefs_uuid"


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


async def open_engine(meta_url: str) -> KV:
    """Connect to the engine of `meta_url` (``$META_PASSWORD`` supplies a missing password)."""
    return await open_kv(with_env_password(meta_url))


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

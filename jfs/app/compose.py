"""The composition root: turns a META-URL and a volume's settings into live adapters.

The only module of the app layer that knows concrete adapters (through the scheme registries).
"""

from __future__ import annotations

import os
from urllib.parse import quote

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.registry import open_store
from jfs.domain.settings import Settings
from jfs.ports.kv import KV
from jfs.ports.objects import ObjectStore


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


async def open_bucket(settings: Settings, *, reads_data: bool = True) -> ObjectStore:
    """The object store of a volume, with credentials from its settings or the environment.

    The one gate between a volume and its data: a volume jfs cannot read (encrypted) is refused here, before
    any connection, with `EncryptedVolume` — so mount (and what needs a mount: warmup, bench), gc and fsck
    stop with one line and change nothing. Only `destroy`, which deletes objects without reading them,
    passes ``reads_data=False``.
    """
    if reads_data:
        settings.check_readable()
    return await open_store(
        settings.storage,
        settings.bucket,
        access_key=settings.access_key or os.environ.get("AWS_ACCESS_KEY_ID", ""),
        secret_key=settings.secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        session_token=settings.session_token or os.environ.get("AWS_SESSION_TOKEN", ""),
    )

"""Storage registry: storage type -> opener, extensible through the ``jfs.objects`` entry-point group.

A third-party package registers a storage type by declaring, in its own pyproject.toml::

    [project.entry-points."jfs.objects"]
    mystore = "my_package.module:open_mystore"

where ``open_mystore(bucket: str, *, access_key: str, secret_key: str, session_token: str)
-> Awaitable[ObjectStore]``. jfs's own adapters are listed below as the fallback used when jfs runs from a
source tree without installed metadata; an entry point of the same name wins.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable
from typing import Protocol

from jfs.adapters.plugins import registered
from jfs.ports.objects import ObjectStore, ObjectStoreUnavailable


class ObjectStoreOpener(Protocol):
    def __call__(
        self, bucket: str, *, access_key: str = "", secret_key: str = "", session_token: str = ""
    ) -> Awaitable[ObjectStore]: ...


BUILTIN: dict[str, str] = {
    "file": "jfs.adapters.objects.file:open_file",
    "s3": "jfs.adapters.objects.s3:open_s3",
    "mem": "jfs.adapters.objects.memory:open_memory",
    "memory": "jfs.adapters.objects.memory:open_memory",
}


class BadStorage(ValueError):
    """The storage type is unknown or the bucket address is malformed."""


def opener_for(storage: str) -> ObjectStoreOpener:
    """The opener registered for `storage`; raises BadStorage for unknown types."""
    for ep in registered("jfs.objects"):
        if ep.name == storage:
            return ep.load()  # type: ignore[no-any-return]
    if storage in BUILTIN:
        module, _, attr = BUILTIN[storage].partition(":")
        try:
            return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
        except ImportError as exc:
            raise ObjectStoreUnavailable(f"storage '{storage}' cannot be loaded: {exc}") from None
    known = sorted(set(BUILTIN) | {ep.name for ep in registered("jfs.objects")})
    raise BadStorage(f"unknown object storage '{storage}' (known: {', '.join(known)})")


async def open_store(
    storage: str, bucket: str, *, access_key: str = "", secret_key: str = "", session_token: str = ""
) -> ObjectStore:
    """Open `bucket` of type `storage` (``file``, ``s3``, ``mem``/``memory`` or a registered plug-in).

    Opening does not check that the bucket exists (`create_bucket` at format time makes it); operations
    on a missing or refused bucket raise ObjectStoreUnavailable.
    """
    if not bucket and storage.lower() not in ("mem", "memory"):
        raise BadStorage(f"storage '{storage}' needs a bucket")
    opener = opener_for(storage.lower())
    return await opener(bucket, access_key=access_key, secret_key=secret_key, session_token=session_token)

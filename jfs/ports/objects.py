"""The object-store port: a flat namespace of immutable blobs (one per data block).

Contract (proved by `tests/contract/test_object_contract.py` for every adapter):

* Keys are ``/``-separated strings; values are bytes. Every operation is idempotent.
* `put` replaces atomically: a reader sees the old object, the new one, or (for a new key) nothing — never
  a partial object.
* `get(key, off, limit)` returns bytes ``[off, off+limit)`` (``limit < 0`` = to the end); a range past the
  end is truncated, possibly to b"". A missing key raises `ObjectNotFound`.
* `delete` of a missing key succeeds silently.
* `head` returns the size in bytes and the last-modification time; a missing key raises `ObjectNotFound`.
* `list(prefix, start_after, limit)` yields objects whose key starts with `prefix` and is greater than
  `start_after`, in ascending key order (code point order, the same as UTF-8 byte order), at most `limit`
  (``None`` = all), paging internally. Caveat: some S3-compatible servers (SeaweedFS) list a "directory"
  ``a/…`` before its siblings ``a!``, ``a-b``, ``a.b`` (characters below ``/``); jfs only relies on the
  order among keys under one ``<volume>/`` prefix, whose segments never contain such siblings.
* `create_bucket` makes the bucket (format time); it succeeds if the bucket already exists. Opening a
  store never checks the bucket: every other operation on a missing bucket raises `ObjectStoreUnavailable`.
* Transient failures are retried inside the adapter; what escapes is `ObjectStoreUnavailable` (cannot
  reach or authenticate, bucket missing) or `ObjectStoreError`. Messages are one line naming the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


class ObjectStoreError(Exception):
    """A failure of the object store that retrying did not cure."""


class ObjectNotFound(ObjectStoreError):
    """The key does not exist."""


class ObjectStoreUnavailable(ObjectStoreError):
    """The store cannot be reached, the bucket is missing, or the credentials are refused."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    mtime: float
    """Last modification, seconds since the epoch."""


class ObjectStore(Protocol):
    """A bucket (or a local directory) holding the blocks of one or more volumes."""

    url: str
    """Where the objects live (no credentials in it); used in messages."""

    async def create_bucket(self) -> None: ...

    async def put(self, key: str, data: bytes | memoryview) -> None: ...

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes: ...

    async def head(self, key: str) -> ObjectInfo: ...

    async def delete(self, key: str) -> None: ...

    def list(self, prefix: str = "", start_after: str = "", limit: int | None = None) -> AsyncIterator[ObjectInfo]: ...

    async def close(self) -> None: ...


class FileUploads(Protocol):
    """An optional capability of a store: `put_file(key, path)` stores the content of the local file `path`
    as `key` without holding it in memory (S3: a multipart upload streamed from the file), with `put`'s
    atomicity. Callers fall back to reading the file and `put` for stores without it (`put_file`)."""

    async def put_file(self, key: str, path: str) -> None: ...


async def put_file(store: ObjectStore, key: str, path: str) -> None:
    """Store the local file `path` as `key`: streamed when `store` has `FileUploads`, else read whole."""
    upload = getattr(store, "put_file", None)
    if upload is not None:
        await upload(key, path)
        return
    import asyncio
    from pathlib import Path

    await store.put(key, await asyncio.to_thread(Path(path).read_bytes))

"""The object-store port: a flat namespace of immutable blobs (one per data block).

Contract (proved by `tests/contract/test_object_contract.py` for every adapter):

* Keys are ``/``-separated strings; values are bytes. Every operation is idempotent.
* `put` replaces atomically: a reader sees the old object, the new one, or (for a new key) nothing — never
  a partial object.
* `get(key, off, limit)` returns bytes ``[off, off+limit)`` (``limit < 0`` = to the end); a range past the
  end is truncated, possibly to b"". A missing key raises `ObjectNotFound`.
* `delete` of a missing key succeeds silently.
* `list(prefix, start_after, limit)` yields objects whose key starts with `prefix` and is greater than
  `start_after`, in ascending key order, at most `limit` (``None`` = all), paging internally.
* Transient failures are retried inside the adapter; what escapes is `ObjectStoreUnavailable` (cannot
  reach or authenticate) or `ObjectStoreError`.
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

    async def put(self, key: str, data: bytes | memoryview) -> None: ...

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes: ...

    async def head(self, key: str) -> ObjectInfo: ...

    async def delete(self, key: str) -> None: ...

    def list(self, prefix: str = "", start_after: str = "", limit: int | None = None) -> AsyncIterator[ObjectInfo]: ...

    async def close(self) -> None: ...

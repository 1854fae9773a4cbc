"""The s3 adapter against a real SeaweedFS: refusals become one clear ObjectStoreUnavailable line."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from jfs.adapters.objects.registry import open_store
from jfs.adapters.objects.s3 import S3Store
from jfs.ports.objects import ObjectNotFound, ObjectStore, ObjectStoreUnavailable
from jfs.testing.object_fixtures import *  # noqa: F403  (the seaweed_s3 session fixture)
from jfs.testing.seaweed import SeaweedS3

Op = Callable[[ObjectStore], Awaitable[object]]


async def _list(s: ObjectStore) -> list[str]:
    return [i.key async for i in s.list("x/")]


OPS: dict[str, Op] = {
    "put": lambda s: s.put("x/k", b"data"),
    "get": lambda s: s.get("x/k"),
    "range-get": lambda s: s.get("x/k", 1, 2),
    "head": lambda s: s.head("x/k"),
    "list": _list,
}


async def _opened(server: SeaweedS3, bucket: str, access_key: str, secret_key: str) -> ObjectStore:
    return await open_store("s3", f"{server.endpoint}/{bucket}", access_key=access_key, secret_key=secret_key)


@pytest.fixture
async def missing_bucket(seaweed_s3: SeaweedS3) -> AsyncIterator[ObjectStore]:
    s = await _opened(
        seaweed_s3, f"missing-{uuid.uuid4().hex[:8]}", seaweed_s3.access_key, seaweed_s3.secret_key
    )
    yield s
    await s.close()


def _assert_one_line(exc: BaseException, *fragments: str) -> None:
    msg = str(exc)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, msg


@pytest.mark.parametrize("op", [*OPS, "delete"])
async def test_missing_bucket_is_unavailable(
    missing_bucket: ObjectStore, seaweed_s3: SeaweedS3, op: str
) -> None:
    call = OPS.get(op) or (lambda s: s.delete("x/k"))
    bucket = missing_bucket.url.rsplit("/", 1)[1]
    with pytest.raises(ObjectStoreUnavailable) as err:
        await call(missing_bucket)
    _assert_one_line(err.value, f"bucket '{bucket}' does not exist at {seaweed_s3.endpoint}")


async def test_create_bucket_makes_a_missing_bucket_usable(missing_bucket: ObjectStore) -> None:
    await missing_bucket.create_bucket()
    await missing_bucket.create_bucket()
    with pytest.raises(ObjectNotFound):
        await missing_bucket.head("x/k")
    await missing_bucket.put("x/k", b"data")
    assert await missing_bucket.get("x/k") == b"data"


@pytest.mark.parametrize("op", list(OPS))
async def test_wrong_secret_key_is_refused(seaweed_s3: SeaweedS3, op: str) -> None:
    s = await _opened(seaweed_s3, seaweed_s3.bucket, seaweed_s3.access_key, "not-the-secret")
    try:
        with pytest.raises(ObjectStoreUnavailable) as err:
            await OPS[op](s)
    finally:
        await s.close()
    _assert_one_line(err.value, f"credentials refused by {seaweed_s3.endpoint}", f"'{seaweed_s3.access_key}'")
    assert "not-the-secret" not in str(err.value)


@pytest.mark.parametrize("op", list(OPS))
async def test_unknown_access_key_is_refused(seaweed_s3: SeaweedS3, op: str) -> None:
    s = await _opened(seaweed_s3, seaweed_s3.bucket, "nobody", "whatever-secret")
    try:
        with pytest.raises(ObjectStoreUnavailable) as err:
            await OPS[op](s)
    finally:
        await s.close()
    _assert_one_line(
        err.value, f"credentials refused by {seaweed_s3.endpoint}", "unknown access key 'nobody'"
    )


async def test_unreachable_endpoint_fails_fast_with_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    s = S3Store(
        f"http://127.0.0.1:{port}/bkt", access_key="a", secret_key="b", max_attempts=2, connect_timeout=1
    )
    started = time.monotonic()
    try:
        for op in OPS.values():
            with pytest.raises(ObjectStoreUnavailable) as err:
                await op(s)
            _assert_one_line(err.value, f"cannot connect to http://127.0.0.1:{port}", "refused")
    finally:
        await s.close()
    assert time.monotonic() - started < 15

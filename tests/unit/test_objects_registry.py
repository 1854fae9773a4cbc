"""Object-store plumbing without a server: registry, memory sharing, fault injection, S3 URL and error mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, IncompleteReadError  # type: ignore[import-untyped]

from jfs.adapters.objects.faulty import FaultyStore
from jfs.adapters.objects.file import FileStore
from jfs.adapters.objects.memory import MemoryStore
from jfs.adapters.objects.registry import BadStorage, open_store
from jfs.adapters.objects.s3 import S3Store, parse_bucket_url
from jfs.ports.objects import ObjectNotFound, ObjectStoreError, ObjectStoreUnavailable


async def test_open_store_by_type(tmp_path: Path) -> None:
    assert isinstance(await open_store("mem", ""), MemoryStore)
    assert isinstance(await open_store("MEMORY", "x"), MemoryStore)
    f = await open_store("file", f"{tmp_path}/b/")
    assert isinstance(f, FileStore) and f.url == f"{tmp_path}/b/"
    await f.close()
    s = await open_store("s3", "http://127.0.0.1:9/bkt", access_key="a", secret_key="b")
    assert isinstance(s, S3Store) and s.url == "http://127.0.0.1:9/bkt"
    await s.close()


async def test_unknown_storage_and_bad_buckets_are_value_errors() -> None:
    with pytest.raises(BadStorage, match=r"unknown object storage 'gcs' \(known: file, mem, memory, s3\)"):
        await open_store("gcs", "bucket")
    with pytest.raises(BadStorage, match="needs a bucket"):
        await open_store("file", "")
    with pytest.raises(BadStorage, match="malformed S3 bucket"):
        await open_store("s3", "127.0.0.1:9000/bkt")
    assert issubclass(BadStorage, ValueError)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8333/jfs", ("http://127.0.0.1:8333", "jfs", "us-east-1", "path")),
        ("https://minio.local/data/", ("https://minio.local", "data", "us-east-1", "path")),
        (
            "https://mybkt.s3.eu-west-3.amazonaws.com",
            ("https://s3.eu-west-3.amazonaws.com", "mybkt", "eu-west-3", "virtual"),
        ),
        ("https://mybkt.s3.amazonaws.com", ("https://s3.amazonaws.com", "mybkt", "us-east-1", "virtual")),
        ("https://b.oss.example.com:8443", ("https://oss.example.com:8443", "b", "us-east-1", "virtual")),
    ],
)
def test_parse_bucket_url(
    url: str, expected: tuple[str, str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert parse_bucket_url(url) == expected


@pytest.mark.parametrize("url", ["ftp://h/b", "http:///b", "http://h/b/prefix", "https://localhost"])
def test_parse_bucket_url_rejects(url: str) -> None:
    with pytest.raises(BadStorage):
        parse_bucket_url(url)


async def test_memory_buckets_are_shared_by_name_and_private_when_unnamed() -> None:
    a, b = await open_store("mem", "shared-test"), await open_store("mem", "shared-test")
    await a.put("k", b"v")
    assert await b.get("k") == b"v"
    p, q = await open_store("mem", ""), await open_store("mem", "")
    await p.put("k", b"v")
    with pytest.raises(ObjectNotFound):
        await q.get("k")


async def test_faulty_store_injects_seeded_failures() -> None:
    def run(seed: int) -> FaultyStore:
        return FaultyStore(MemoryStore(), 0.3, seed=seed)

    async def outcomes(store: FaultyStore) -> list[bool]:
        out = []
        for i in range(200):
            try:
                await store.put(f"k{i}", b"x")
                out.append(True)
            except ObjectStoreError as exc:
                assert "injected failure: put" in str(exc) and not isinstance(exc, ObjectStoreUnavailable)
                out.append(False)
        return out

    first, again, other = await outcomes(run(7)), await outcomes(run(7)), await outcomes(run(8))
    assert first == again != other
    assert 30 < first.count(False) < 90
    store = run(7)
    await outcomes(store)
    assert store.injected["put"] == first.count(False) and store.injected["get"] == 0
    # heads and lists are not in the default ops: they always work
    assert len([i async for i in store.list()]) == first.count(True)


async def test_faulty_put_may_land_before_failing() -> None:
    inner = MemoryStore()
    store = FaultyStore(inner, 1.0, put_lands=1.0, ops=["put"])
    with pytest.raises(ObjectStoreError):
        await store.put("k", b"landed")
    assert await store.get("k") == b"landed"
    with pytest.raises(ValueError):
        FaultyStore(inner, 1.5)


class _Body:
    def __init__(self, data: bytes, fail: bool) -> None:
        self.data, self.fail = data, fail

    def read(self) -> bytes:
        if self.fail:
            raise IncompleteReadError(actual_bytes=3, expected_bytes=10)
        return self.data


class _FakeClient:
    """Stands in for the boto3 client: scripted get_object results."""

    def __init__(self, results: list[Any]) -> None:
        self.results = results
        self.calls: list[dict[str, Any]] = []

    def get_object(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        r = self.results.pop(0)
        if isinstance(r, Exception):
            raise r
        return r

    def close(self) -> None:
        pass


def _client_error(code: str, status: int, op: str = "GetObject") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "multi\nline message"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        op,
    )


async def test_s3_get_fails_once_on_a_body_that_breaks_off() -> None:
    """A broken body is one failed attempt: the block store's budget retries it (ADR 0017), not the adapter."""
    s = S3Store("http://127.0.0.1:9/bkt", access_key="a", secret_key="b")
    fake = _FakeClient([{"Body": _Body(b"", True)}, {"Body": _Body(b"0123456789", False)}])
    s._client = fake
    s._requests = None  # the boto3 path (ObjectRequests: tests/integration/test_s3_object_requests.py)
    with pytest.raises(ObjectStoreError, match="3 read"):
        await s.get("k")
    assert len(fake.calls) == 1
    assert await s.get("k") == b"0123456789"
    await s.close()


async def test_s3_range_requests_and_servers_that_ignore_ranges() -> None:
    s = S3Store("http://127.0.0.1:9/bkt", access_key="a", secret_key="b")
    fake = _FakeClient(
        [
            {"Body": _Body(b"234", False), "ContentRange": "bytes 2-4/10"},
            {"Body": _Body(b"0123456789", False)},  # Range ignored: the adapter slices
            _client_error("InvalidRange", 416),
        ]
    )
    s._client = fake
    s._requests = None
    assert await s.get("k", 2, 3) == b"234"
    assert await s.get("k", 7, -1) == b"789"
    assert await s.get("k", 50, 5) == b""
    assert [c.get("Range") for c in fake.calls] == ["bytes=2-4", "bytes=7-", "bytes=50-54"]
    await s.close()


async def test_s3_server_errors_after_retries_are_one_line_store_errors() -> None:
    s = S3Store("http://127.0.0.1:9/bkt", access_key="a", secret_key="b")
    s._bucket_seen = True
    s._requests = None
    s._client = _FakeClient([_client_error("InternalError", 500), _client_error("NoSuchKey", 404)])
    with pytest.raises(ObjectStoreError) as err:
        await s.get("k")
    assert type(err.value) is ObjectStoreError
    assert (
        str(err.value)
        == "S3 get 'k' on bucket 'bkt' at http://127.0.0.1:9 failed: InternalError multi line message"
    )
    with pytest.raises(ObjectNotFound):
        await s.get("k")
    await s.close()

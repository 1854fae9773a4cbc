"""`ObjectRequests` (the s3 adapter's GET/PUT without boto3): signatures SeaweedFS accepts for awkward keys,
ranges, botocore-compatible errors, and botocore-like retries of 5xx answers (a local fake server)."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from jfs.adapters.objects.s3 import S3Store
from jfs.adapters.objects.s3_requests import Credentials, ObjectRequests
from jfs.ports.objects import ObjectNotFound, ObjectStoreError
from jfs.testing.object_fixtures import *  # noqa: F403  (the seaweed_s3 session fixture)
from jfs.testing.seaweed import SeaweedS3
from jfs.testing.servers import local_http_server


def _requests(endpoint: str, bucket: str, ak: str, sk: str, attempts: int = 3) -> ObjectRequests:
    return ObjectRequests(
        endpoint, bucket, "us-east-1", "path", Credentials(ak, sk), max_connections=4, attempts=attempts,
        connect_timeout=2, read_timeout=5, verify=None,
    )  # fmt: skip


@pytest.mark.parametrize("key", ["vol/chunks/0/4/4105_0_8000", "a b/c+d=e&f", "ünï/cödé~x", "q?x#y%z"])
async def test_awkward_keys_round_trip_through_seaweedfs(seaweed_s3: SeaweedS3, key: str) -> None:
    s = S3Store(seaweed_s3.url, access_key=seaweed_s3.access_key, secret_key=seaweed_s3.secret_key)
    try:
        assert s._requests is not None  # the fast path is in use
        await s.put(key, b"0123456789")
        assert await s.get(key) == b"0123456789"
        assert await s.get(key, 2, 3) == b"234"
        assert await s.get(key, 8) == b"89"
        assert await s.get(key, 20, 5) == b""  # past the end
        assert (await s.head(key)).size == 10  # boto3 sees what the fast path stored
        await s.delete(key)
        with pytest.raises(ObjectNotFound):
            await s.get(key)
    finally:
        await s.close()


async def test_boto3_only_switch(seaweed_s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JFS_S3_BOTO3", "true")
    s = S3Store(seaweed_s3.url, access_key=seaweed_s3.access_key, secret_key=seaweed_s3.secret_key)
    try:
        assert s._requests is None
        await s.put("boto3/k", b"x")
        assert await s.get("boto3/k") == b"x"
    finally:
        await s.close()


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503 SlowDown to the first `fail` requests, then 200 with a fixed body (or 404 NoSuchKey)."""

    fail = 0
    seen: list[tuple[str, str, str]] = []  # noqa: RUF012 - reset per test
    payloads: list[str] = []  # noqa: RUF012 - reset per test

    def _answer(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        self.rfile.read(n)
        type(self).seen.append((self.command, self.path, self.headers.get("authorization", "")))
        type(self).payloads.append(self.headers.get("x-amz-content-sha256", ""))
        if type(self).fail > 0:
            type(self).fail -= 1
            self._send(503, b"<Error><Code>SlowDown</Code><Message>easy</Message></Error>")
        elif self.path.endswith("/broken"):  # announces 10 bytes, sends 3 and hangs up
            self.send_response(200)
            self.send_header("content-length", "10")
            self.end_headers()
            self.wfile.write(b"012")
            self.wfile.flush()
            self.close_connection = True
        elif self.path.endswith("/norange"):  # ignores the Range header
            self._send(200, b"0123456789")
        elif self.path.endswith("/missing"):
            self._send(404, b"<Error><Code>NoSuchKey</Code><Message>no</Message></Error>")
        else:
            self._send(200, b"" if self.command == "PUT" else b"body")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[str]:
    _Flaky.fail = 0
    _Flaky.seen = []
    _Flaky.payloads = []
    with local_http_server(_Flaky) as url:
        yield url


def test_5xx_answers_are_retried_then_succeed(flaky: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jfs.adapters.objects.s3_requests.time.sleep", lambda s: None)
    r = _requests(flaky, "bkt", "AK", "SK", attempts=3)
    _Flaky.fail = 2
    assert r.get("k") == (b"body", False)
    assert len(_Flaky.seen) == 3
    method, path, auth = _Flaky.seen[-1]
    assert (method, path) == ("GET", "/bkt/k")
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AK/") and "SignedHeaders=host;x-amz-content-sha256;x-amz-date" in auth


def test_attempts_are_bounded_and_the_last_error_is_a_client_error(flaky: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jfs.adapters.objects.s3_requests.time.sleep", lambda s: None)
    r = _requests(flaky, "bkt", "AK", "SK", attempts=2)
    _Flaky.fail = 5
    with pytest.raises(ClientError) as err:
        r.put("k", b"data")
    assert err.value.response["Error"]["Code"] == "SlowDown"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert len(_Flaky.seen) == 2


def test_a_4xx_answer_is_not_retried(flaky: str) -> None:
    r = _requests(flaky, "bkt", "AK", "SK", attempts=3)
    with pytest.raises(ClientError) as err:
        r.get("missing")
    assert err.value.response["Error"]["Code"] == "NoSuchKey"
    assert len(_Flaky.seen) == 1


async def test_the_store_maps_fast_path_errors_to_the_port(flaky: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jfs.adapters.objects.s3_requests.time.sleep", lambda s: None)
    s = S3Store(f"{flaky}/bkt", access_key="AK", secret_key="SK", max_attempts=2)
    try:
        s._bucket_seen = True  # a 404 without a known bucket would be diagnosed through boto3's ListObjectsV2
        with pytest.raises(ObjectNotFound):
            await s.get("missing")
        _Flaky.fail = 5
        with pytest.raises(ObjectStoreError, match="SlowDown"):
            await s.put("k", b"x")
    finally:
        await s.close()


def test_virtual_host_addressing_and_session_token() -> None:
    r = ObjectRequests(
        "https://s3.eu-west-1.amazonaws.com", "bkt", "eu-west-1", "virtual", Credentials("AK", "SK", "TOKEN"),
        max_connections=1, attempts=1, connect_timeout=1, read_timeout=1, verify=None,
    )  # fmt: skip
    try:
        assert r.host == "bkt.s3.eu-west-1.amazonaws.com"
        h = r.signed_headers("GET", "/k", "UNSIGNED-PAYLOAD", {"range": "bytes=0-1"})
        assert h["x-amz-security-token"] == "TOKEN" and h["range"] == "bytes=0-1"
        assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token," in h["authorization"]
        assert "/eu-west-1/s3/aws4_request" in h["authorization"]
    finally:
        r.close()


async def test_a_body_that_breaks_off_is_one_failed_attempt(flaky: str) -> None:
    s = S3Store(f"{flaky}/bkt", access_key="AK", secret_key="SK", max_attempts=3)
    try:
        with pytest.raises(ObjectStoreError):
            await s.get("broken")
        assert len(_Flaky.seen) == 1  # not re-sent: the block store's budget retries (ADR 0017)
    finally:
        await s.close()


async def test_a_server_that_ignores_ranges_is_sliced(flaky: str) -> None:
    s = S3Store(f"{flaky}/bkt", access_key="AK", secret_key="SK")
    try:
        assert await s.get("norange", 2, 3) == b"234"
        assert await s.get("norange", 7) == b"789"
    finally:
        await s.close()


async def test_deletes_take_the_fast_path_and_no_boto3_client_is_built(
    seaweed_s3: SeaweedS3, tmp_path: Path
) -> None:
    """A mount that only puts, gets and deletes blocks never builds boto3's client (ADR 0049)."""
    s = S3Store(seaweed_s3.url, access_key=seaweed_s3.access_key, secret_key=seaweed_s3.secret_key)
    try:
        keys = ["del/a&b<c>", "del/ü x", "del/plain", "del/q?x"]
        for k in keys:
            await s.put(k, b"x")
        assert await s.get(keys[0]) == b"x"
        await asyncio.gather(*(s.delete(k) for k in [*keys, "del/never-existed"]))
        assert s._boto3_client is None
        small = tmp_path / "backup.json.gz"
        small.write_bytes(b"z" * 1000)
        await s.put_file("del/backup", str(small))  # below the multipart size: one fast-path PUT
        assert await s.get("del/backup") == b"z" * 1000 and s._boto3_client is None
        await s.delete("del/backup")
        assert [i.key async for i in s.list("del/")] == []  # a listing builds the client
        assert s._boto3_client is not None
    finally:
        await s.close()


def test_delete_objects_reports_per_key_errors() -> None:
    """The errors of a DeleteObjects answer are boto3's shape (namespaced XML as S3 sends it)."""
    answer = (b'<?xml version="1.0"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
              b"<Error><Key>k1</Key><Code>InternalError</Code><Message>later</Message></Error></DeleteResult>")
    seen: list[tuple[str, str, bytes]] = []

    class _Answer(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            seen.append((self.path, self.headers.get("content-md5", ""), body))
            self.send_response(200)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = _requests(f"http://127.0.0.1:{server.server_address[1]}", "bkt", "ak", "sk")
        assert r.delete_many(["k1", "k&2"]) == [{"Key": "k1", "Code": "InternalError", "Message": "later"}]
        path, md5, body = seen[0]
        assert path == "/bkt?delete=" and md5 and b"<Key>k&amp;2</Key>" in body and b"<Quiet>true</Quiet>" in body
        r.close()
    finally:
        server.shutdown()
        server.server_close()


async def test_put_bodies_are_not_hashed_unless_asked(flaky: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """UNSIGNED-PAYLOAD over http too (as JuiceFS; ADR 0049); JFS_S3_SIGNED_PAYLOAD=true signs the hash."""
    import hashlib

    for env, expected in (("", "UNSIGNED-PAYLOAD"), ("true", hashlib.sha256(b"abc").hexdigest())):
        monkeypatch.setenv("JFS_S3_SIGNED_PAYLOAD", env)
        s = S3Store(f"{flaky}/bkt", access_key="ak", secret_key="sk")
        try:
            await s.put("k", b"abc")
        finally:
            await s.close()
        assert _Flaky.payloads[-1] == expected


@pytest.mark.parametrize("boto3_only", ["", "true"])
async def test_objects_are_stored_as_octet_streams(
    seaweed_s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch, boto3_only: str
) -> None:
    """Every PUT declares ``application/octet-stream`` as JuiceFS's do (ADR 0068): a server left to guess
    (SeaweedFS sniffs untyped bodies) stores and answers the type we sent, on both request paths."""
    monkeypatch.setenv("JFS_S3_BOTO3", boto3_only)
    s = S3Store(seaweed_s3.url, access_key=seaweed_s3.access_key, secret_key=seaweed_s3.secret_key)
    key = f"ctype/{boto3_only or 'fast'}/1_0_16"
    try:
        assert (s._requests is None) == bool(boto3_only)
        await s.put(key, b"<html>text</html>")  # a body a sniffer would call text/html
        head = seaweed_s3.client().head_object(Bucket=seaweed_s3.bucket, Key=key)
        assert head["ContentType"] == "application/octet-stream"
        assert await s.get(key) == b"<html>text</html>"
    finally:
        await s.close()


async def test_a_multipart_file_upload_is_an_octet_stream_too(
    seaweed_s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`put_file` above the multipart size goes through boto3's transfer manager: typed as every PUT."""
    import jfs.adapters.objects.s3 as s3_module

    monkeypatch.setattr(s3_module, "UPLOAD_PART", 5 << 20)
    big = tmp_path / "backup.html"
    big.write_bytes(b"<html>" + b"x" * (6 << 20))
    s = S3Store(seaweed_s3.url, access_key=seaweed_s3.access_key, secret_key=seaweed_s3.secret_key)
    sent: list[str] = []  # SeaweedFS types a multipart object octet-stream anyway: check what is sent

    def note(request: Any, **_: Any) -> None:
        value = request.headers.get("Content-Type", "")
        sent.append(value.decode() if isinstance(value, bytes) else value)

    s._client.meta.events.register("before-send.s3.CreateMultipartUpload", note)
    try:
        await s.put_file("ctype/multipart", str(big))
        assert sent == ["application/octet-stream"]
        head = seaweed_s3.client().head_object(Bucket=seaweed_s3.bucket, Key="ctype/multipart")
        assert head["ContentType"] == "application/octet-stream"
        assert head["ContentLength"] == big.stat().st_size
    finally:
        await s.close()

"""`jfs gateway` with real S3 clients (boto3 incl. its transfer manager and presigned URLs, the AWS CLI)
against a real gateway process, on SQLite + file and on Redis + SeaweedFS; a FUSE mount of the same volume
sees what the gateway writes and the reverse; bad input gets S3's error and the gateway keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from botocore.compat import HAS_CRT
from botocore.exceptions import ClientError

from jfs.testing.engines import wipe_engine
from jfs.testing.gateways import ACCESS_KEY, SECRET_KEY, RunningGateway, gateway
from jfs.testing.mounts import format_volume, mounted
from jfs.testing.mounts import jfs as jfs_cli
from jfs.testing.object_fixtures import seaweed_s3  # noqa: F401  (fixture)

VOLUME = "gwvol"
AWS = str(Path(sys.executable).with_name("aws"))


def _volume(kind: str, base: Path, request: pytest.FixtureRequest) -> tuple[str, Path]:
    """(META-URL, bucket dir or None) of a freshly formatted volume."""
    if kind == "sqlite-file":
        url = f"sqlite3://{base}/meta.db"
        format_volume(url, str(base / "bucket"), VOLUME)
        return url, base / "bucket"
    url = f"{request.getfixturevalue('redis_server_url')}/13"
    asyncio.run(wipe_engine(url))
    s3 = request.getfixturevalue("seaweed_s3")
    bucket = f"gw-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=bucket)
    format_volume(url, f"{s3.endpoint}/{bucket}", VOLUME, "--storage", "s3", "--access-key", s3.access_key,
                  "--secret-key", s3.secret_key)
    return url, base / "none"


@pytest.fixture(scope="module", params=["sqlite-file", "redis-s3"])
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningGateway, str]]:
    base = tmp_path_factory.mktemp(request.param)
    url, _ = _volume(request.param, base, request)
    with gateway(url, base) as g:
        yield g, url


@pytest.fixture
def s3(gw: tuple[RunningGateway, str]) -> Any:
    return gw[0].client()


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _keys(s3: Any, **kw: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=VOLUME, **kw).get("Contents", [])]


def test_objects_roundtrip_with_metadata_ranges_and_conditions(s3: Any) -> None:
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [VOLUME]
    s3.head_bucket(Bucket=VOLUME)
    data = os.urandom(3 << 20)
    put = s3.put_object(Bucket=VOLUME, Key="rt/obj.bin", Body=data, Metadata={"color": "blue"},
                        ContentType="application/x-test", ContentMD5=__import__("base64").b64encode(
                            hashlib.md5(data).digest()).decode())
    etag = f'"{hashlib.md5(data).hexdigest()}"'
    assert put["ETag"] == etag
    head = s3.head_object(Bucket=VOLUME, Key="rt/obj.bin")
    assert (head["ETag"], head["ContentLength"], head["Metadata"], head["ContentType"]) == \
        (etag, len(data), {"color": "blue"}, "application/x-test")
    assert s3.get_object(Bucket=VOLUME, Key="rt/obj.bin")["Body"].read() == data
    r = s3.get_object(Bucket=VOLUME, Key="rt/obj.bin", Range="bytes=100-199")
    assert r["Body"].read() == data[100:200] and r["ContentRange"] == f"bytes 100-199/{len(data)}"
    assert s3.get_object(Bucket=VOLUME, Key="rt/obj.bin", Range="bytes=-10")["Body"].read() == data[-10:]
    assert s3.get_object(Bucket=VOLUME, Key="rt/obj.bin", Range=f"bytes={len(data) - 5}-")["Body"].read() == data[-5:]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=VOLUME, Key="rt/obj.bin", Range=f"bytes={len(data)}-")
    assert _code(e) == "InvalidRange"
    assert s3.get_object(Bucket=VOLUME, Key="rt/obj.bin", IfMatch=etag)["ContentLength"] == len(data)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=VOLUME, Key="rt/obj.bin", IfMatch='"0123"')
    assert _code(e) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=VOLUME, Key="rt/obj.bin", IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=VOLUME, Key="rt/obj.bin", IfModifiedSince=future)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=VOLUME, Key="rt/obj.bin", IfUnmodifiedSince=past)
    assert _code(e) == "PreconditionFailed"
    r = s3.get_object(Bucket=VOLUME, Key="rt/obj.bin", ResponseContentType="text/csv")
    assert r["ContentType"] == "text/csv"
    # Overwrite, then delete: the key goes, and so does the directory it made.
    s3.put_object(Bucket=VOLUME, Key="rt/obj.bin", Body=b"v2")
    assert s3.get_object(Bucket=VOLUME, Key="rt/obj.bin")["Body"].read() == b"v2"
    assert "color" not in s3.head_object(Bucket=VOLUME, Key="rt/obj.bin")["Metadata"]
    s3.delete_object(Bucket=VOLUME, Key="rt/obj.bin")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=VOLUME, Key="rt/obj.bin")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=VOLUME, Key="rt/obj.bin")
    assert _code(e) == "NoSuchKey"
    assert _keys(s3, Prefix="rt") == []
    s3.delete_object(Bucket=VOLUME, Key="never/existed")  # S3: deleting a missing key succeeds
    # Folder objects and empty objects.
    s3.put_object(Bucket=VOLUME, Key="rt/folder/", Body=b"")
    assert _keys(s3, Prefix="rt/") == ["rt/folder/"]
    s3.put_object(Bucket=VOLUME, Key="rt/empty", Body=b"")
    assert s3.get_object(Bucket=VOLUME, Key="rt/empty")["Body"].read() == b""
    s3.delete_objects(Bucket=VOLUME, Delete={"Objects": [{"Key": "rt/folder/"}, {"Key": "rt/empty"}]})
    assert _keys(s3, Prefix="rt") == []


def test_listing_in_s3_byte_order_with_delimiter_and_pages(s3: Any) -> None:
    keys = ["ls/a-x", "ls/a/b", "ls/a/c/d", "ls/a0", "ls/b", "ls/sp ace", "ls/plus+x", "ls/é", "ls/z/", "ls/a!b",
            "ls/a.b/c", "ls/a/c-d", "ls/a/c!"]
    for k in keys:
        s3.put_object(Bucket=VOLUME, Key=k, Body=b"" if k.endswith("/") else k.encode())
    want = sorted(keys, key=lambda k: k.encode())
    assert _keys(s3, Prefix="ls/") == want
    paged, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=VOLUME, Prefix="ls/", MaxKeys=1, **kw)  # every key is once the marker
        assert r["KeyCount"] <= 1
        paged += [o["Key"] for o in r.get("Contents", [])]
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
    assert paged == want
    r = s3.list_objects_v2(Bucket=VOLUME, Prefix="ls/", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["ls/a.b/", "ls/a/", "ls/z/"]
    assert [o["Key"] for o in r["Contents"]] == [k for k in want if k.count("/") == 1]
    assert _keys(s3, Prefix="ls/a", StartAfter="ls/a/b") == ["ls/a/c!", "ls/a/c-d", "ls/a/c/d", "ls/a0"]
    r = s3.list_objects_v2(Bucket=VOLUME, Prefix="ls/a/", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["ls/a/b", "ls/a/c!", "ls/a/c-d"]
    assert r["CommonPrefixes"] == [{"Prefix": "ls/a/c/"}]
    r = s3.list_objects_v2(Bucket=VOLUME, Prefix="ls/", Delimiter="-")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["ls/a-", "ls/a/c-"]
    # v1 with markers, through the paginator (botocore asks encoding-type=url and decodes the keys)
    pages = s3.get_paginator("list_objects").paginate(Bucket=VOLUME, Prefix="ls/", PaginationConfig={"PageSize": 3})
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == want
    etags = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=VOLUME, Prefix="ls/b")["Contents"]}
    assert etags == {"ls/b": f'"{hashlib.md5(b"ls/b").hexdigest()}"'}
    s3.delete_objects(Bucket=VOLUME, Delete={"Objects": [{"Key": k} for k in keys]})
    assert _keys(s3, Prefix="ls/") == []


def test_multipart_by_transfer_manager_and_by_hand(s3: Any) -> None:
    from boto3.s3.transfer import TransferConfig

    data = os.urandom(23 << 20)
    cfg = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20, max_concurrency=4)
    s3.upload_fileobj(io.BytesIO(data), VOLUME, "mp/tm.bin", Config=cfg)
    out = io.BytesIO()
    s3.download_fileobj(VOLUME, "mp/tm.bin", out, Config=cfg)
    assert out.getvalue() == data
    md5s = b"".join(hashlib.md5(data[i:i + (5 << 20)]).digest() for i in range(0, len(data), 5 << 20))
    assert s3.head_object(Bucket=VOLUME, Key="mp/tm.bin")["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-5"'

    up = s3.create_multipart_upload(Bucket=VOLUME, Key="mp/hand", Metadata={"k": "v"})["UploadId"]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=VOLUME).get("Uploads", [])] == [up]
    p1 = s3.upload_part(Bucket=VOLUME, Key="mp/hand", UploadId=up, PartNumber=1, Body=data[:5 << 20])["ETag"]
    p2 = s3.upload_part(Bucket=VOLUME, Key="mp/hand", UploadId=up, PartNumber=2, Body=b"tail")["ETag"]
    p3 = s3.upload_part_copy(Bucket=VOLUME, Key="mp/hand", UploadId=up, PartNumber=3,
                             CopySource={"Bucket": VOLUME, "Key": "mp/tm.bin"},
                             CopySourceRange="bytes=10-19")["CopyPartResult"]["ETag"]
    assert p3 == f'"{hashlib.md5(data[10:20]).hexdigest()}"'
    parts = s3.list_parts(Bucket=VOLUME, Key="mp/hand", UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 << 20), (2, 4), (3, 10)]
    with pytest.raises(ClientError) as e:  # a part other than the last below 5 MiB
        s3.complete_multipart_upload(Bucket=VOLUME, Key="mp/hand", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": p1}, {"PartNumber": 2, "ETag": p2}, {"PartNumber": 3, "ETag": p3}]})
    assert _code(e) == "EntityTooSmall"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=VOLUME, Key="mp/hand", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]})
    assert _code(e) == "InvalidPart"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=VOLUME, Key="mp/hand", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": p2}, {"PartNumber": 1, "ETag": p1}]})
    assert _code(e) == "InvalidPartOrder"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=VOLUME, Key="mp/hand")  # nothing visible before completion
    s3.complete_multipart_upload(Bucket=VOLUME, Key="mp/hand", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": p1}, {"PartNumber": 3, "ETag": p3}]})
    body = s3.get_object(Bucket=VOLUME, Key="mp/hand")
    assert body["Body"].read() == data[:5 << 20] + data[10:20] and body["Metadata"] == {"k": "v"}
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=VOLUME, Key="mp/hand", UploadId=up)
    assert _code(e) == "NoSuchUpload"

    up = s3.create_multipart_upload(Bucket=VOLUME, Key="mp/aborted")["UploadId"]
    s3.upload_part(Bucket=VOLUME, Key="mp/aborted", UploadId=up, PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket=VOLUME, Key="mp/aborted", UploadId=up)
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=VOLUME, Key="mp/aborted", UploadId=up, PartNumber=2, Body=b"x")
    assert _code(e) == "NoSuchUpload"
    assert s3.list_multipart_uploads(Bucket=VOLUME).get("Uploads", []) == []
    assert _keys(s3, Prefix="mp/") == ["mp/hand", "mp/tm.bin"]
    s3.delete_objects(Bucket=VOLUME, Delete={"Objects": [{"Key": "mp/hand"}, {"Key": "mp/tm.bin"}]})


def test_copy_object_references_slices_and_keeps_or_replaces_metadata(gw: tuple[RunningGateway, str], s3: Any,
                                                                       tmp_path: Path) -> None:
    data = os.urandom(9 << 20)
    s3.put_object(Bucket=VOLUME, Key="cp/src", Body=data, Metadata={"a": "1"}, ContentType="text/x-src")
    before = _stored_bytes(gw[1])
    r = s3.copy_object(Bucket=VOLUME, Key="cp/dst", CopySource={"Bucket": VOLUME, "Key": "cp/src"})
    assert r["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    if before is not None:
        assert _stored_bytes(gw[1]) == before  # the copy wrote no data block
    head = s3.head_object(Bucket=VOLUME, Key="cp/dst")
    assert (head["Metadata"], head["ContentType"]) == ({"a": "1"}, "text/x-src")
    assert s3.get_object(Bucket=VOLUME, Key="cp/dst")["Body"].read() == data
    s3.copy_object(Bucket=VOLUME, Key="cp/dst", CopySource={"Bucket": VOLUME, "Key": "cp/src"},
                   MetadataDirective="REPLACE", Metadata={"b": "2"})
    assert s3.head_object(Bucket=VOLUME, Key="cp/dst")["Metadata"] == {"b": "2"}
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=VOLUME, Key="cp/src", CopySource={"Bucket": VOLUME, "Key": "cp/src"})
    assert _code(e) == "InvalidRequest"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=VOLUME, Key="cp/x", CopySource={"Bucket": VOLUME, "Key": "cp/missing"})
    assert _code(e) == "NoSuchKey"
    s3.put_object_tagging(Bucket=VOLUME, Key="cp/src", Tagging={"TagSet": [{"Key": "t", "Value": "1"}]})
    assert s3.get_object_tagging(Bucket=VOLUME, Key="cp/src")["TagSet"] == [{"Key": "t", "Value": "1"}]
    s3.delete_objects(Bucket=VOLUME, Delete={"Objects": [{"Key": "cp/src"}, {"Key": "cp/dst"}]})


def _stored_bytes(meta_url: str) -> int | None:
    """Bytes in the volume's file bucket (None for other stores)."""
    if not meta_url.startswith("sqlite3://"):
        return None
    bucket = Path(meta_url.removeprefix("sqlite3://")).parent / "bucket"
    return sum(p.stat().st_size for p in bucket.rglob("*") if p.is_file())


@contextlib.contextmanager
def _signing_clock(when: datetime.datetime) -> Iterator[None]:
    """botocore signs at `when`: its own signers and, with awscrt installed (a jfs dependency), the CRT
    signers botocore uses instead."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch("botocore.auth.get_current_datetime", return_value=when))
        if HAS_CRT:
            stack.enter_context(mock.patch("botocore.crt.auth.get_current_datetime", return_value=when))
        yield


def test_presigned_urls_get_and_put_and_expiry(s3: Any) -> None:
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": VOLUME, "Key": "ps/up"}, ExpiresIn=60)
    req = urllib.request.Request(put_url, data=b"presigned body", method="PUT")
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": VOLUME, "Key": "ps/up"}, ExpiresIn=60)
    with urllib.request.urlopen(get_url) as r:
        assert r.read() == b"presigned body"
    with pytest.raises(urllib.error.HTTPError) as e:  # the signature covers the key
        urllib.request.urlopen(get_url.replace("ps/up", "ps/uq"))
    assert e.value.code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in e.value.read()
    old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    with _signing_clock(old):
        expired = s3.generate_presigned_url("get_object", Params={"Bucket": VOLUME, "Key": "ps/up"}, ExpiresIn=60)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(expired)
    assert e.value.code == 403 and b"<Code>AccessDenied</Code>" in e.value.read()
    s3.delete_object(Bucket=VOLUME, Key="ps/up")


def _raw(g: RunningGateway, request: bytes) -> bytes:
    """Send raw bytes, return the raw answer (the connection is closed by us)."""
    with socket.create_connection(("127.0.0.1", g.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                part = sock.recv(65536)
            except TimeoutError:
                break
            if not part:
                break
            chunks.append(part)
            if b"\r\n\r\n" in b"".join(chunks) and b"Connection: close" not in request:
                break
        return b"".join(chunks)


def test_bad_input_gets_s3_errors_and_changes_nothing(gw: tuple[RunningGateway, str], s3: Any) -> None:
    g, _ = gw
    s3.put_object(Bucket=VOLUME, Key="bad/file", Body=b"f")
    s3.put_object(Bucket=VOLUME, Key="bad/dir/x", Body=b"x")
    cases = {
        "bad/../escape": "XMinioInvalidObjectName", "bad//double": "XMinioInvalidObjectName",
        "bad/./dot": "XMinioInvalidObjectName", ".sys/tmp/x": "XMinioInvalidObjectName",
        ".trash/x": "XMinioInvalidObjectName", "bad/file/under": "XMinioParentIsObject",
        "bad/dir": "XMinioObjectExistsAsDirectory", "k" * 1025: "KeyTooLongError",
        "bad/" + "n" * 256: "KeyTooLongError",
    }
    for key, code in cases.items():
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=VOLUME, Key=key, Body=b"nope")
        assert _code(e) == code, key
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=VOLUME, Key="bad/md5", Body=b"data", ContentMD5="1B2M2Y8AsgTpgAmY7PhCfg==")
    assert _code(e) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="no-such-bucket", Key="x")
    assert _code(e) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=VOLUME, Key="bad/dir")
    assert _code(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket=VOLUME, Delete={"Objects": []})
    assert _code(e) == "MalformedXML"
    up = s3.create_multipart_upload(Bucket=VOLUME, Key="bad/mp")["UploadId"]
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    def signed(method: str, path: str, body: bytes, **headers: str) -> bytes:
        req = AWSRequest(method=method, url=f"{g.endpoint}{path}", data=body,
                         headers={"Host": f"127.0.0.1:{g.port}", **headers})
        req.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(req)
        prepared = req.prepare()
        fields = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        return (head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body

    answer = _raw(g, signed("POST", f"/{VOLUME}/bad/mp?uploadId={up}", b"<CompleteMultipartUpload><Part>"))
    assert b" 400 " in answer.split(b"\r\n")[0] and b"<Code>MalformedXML</Code>" in answer
    answer = _raw(g, signed("PUT", f"/{VOLUME}/bad/sha", b"payload").replace(b"payload", b"PAYLOAD"))
    assert b"<Code>XAmzContentSHA256Mismatch</Code>" in answer
    # Wrong keys, a skewed clock, no signature at all.
    wrong = g.client()
    wrong._request_signer._credentials = Credentials(ACCESS_KEY, "not-the-secret")
    with pytest.raises(ClientError) as e:
        wrong.put_object(Bucket=VOLUME, Key="bad/wrong", Body=b"x")
    assert _code(e) == "SignatureDoesNotMatch"
    unknown = g.client()
    unknown._request_signer._credentials = Credentials("someone-else", SECRET_KEY)
    with pytest.raises(ClientError) as e:
        unknown.list_objects_v2(Bucket=VOLUME)
    assert _code(e) == "InvalidAccessKeyId"
    skewed = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    with _signing_clock(skewed), pytest.raises(ClientError) as e:
        s3.put_object(Bucket=VOLUME, Key="bad/skew", Body=b"x")
    assert _code(e) == "RequestTimeTooSkewed"
    with pytest.raises(urllib.error.HTTPError) as e2:
        urllib.request.urlopen(f"{g.endpoint}/{VOLUME}/bad/file")
    assert e2.value.code == 403 and b"AccessDenied" in e2.value.read()
    # Oversize headers: refused by the HTTP layer, the gateway keeps serving.
    answer = _raw(g, b"GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert answer.split(b"\r\n")[0].split()[1] == b"400"
    # An upload cut short: nothing is published.
    req = signed("PUT", f"/{VOLUME}/bad/short", b"0123456789")
    answer = _raw(g, req.replace(b"Content-Length: 10", b"Content-Length: 20").replace(b"Connection: close\r\n", b""))
    s3.abort_multipart_upload(Bucket=VOLUME, Key="bad/mp", UploadId=up)
    assert _keys(s3, Prefix="bad/") == ["bad/dir/x", "bad/file"]
    s3.delete_objects(Bucket=VOLUME, Delete={"Objects": [{"Key": "bad/dir/x"}, {"Key": "bad/file"}]})
    assert g.proc.poll() is None


def _aws(g: RunningGateway, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    r = subprocess.run([AWS, "--endpoint-url", g.endpoint, *args], capture_output=True, text=True, env=env,
                       timeout=300)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_aws_cli_cp_sync_ls_rm_and_s3api(gw: tuple[RunningGateway, str], tmp_path: Path) -> None:
    g, _ = gw
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    big = os.urandom(17 << 20)  # above the CLI's 8 MiB multipart threshold
    (src / "big.bin").write_bytes(big)
    (src / "d" / "small.txt").write_text("small")
    (src / "sp ace+plus").write_text("odd name")
    _aws(g, "s3", "sync", "--only-show-errors", str(src), f"s3://{VOLUME}/cli/")
    ls = _aws(g, "s3", "ls", "--recursive", f"s3://{VOLUME}/cli/").stdout
    assert sorted(line.split(None, 3)[3] for line in ls.splitlines()) == \
        ["cli/big.bin", "cli/d/small.txt", "cli/sp ace+plus"]
    assert "PRE d/" in _aws(g, "s3", "ls", f"s3://{VOLUME}/cli/").stdout
    again = _aws(g, "s3", "sync", str(src), f"s3://{VOLUME}/cli/").stdout
    assert again.strip() == ""  # nothing changed: nothing copied
    back = tmp_path / "back"
    _aws(g, "s3", "cp", "--only-show-errors", "--recursive", f"s3://{VOLUME}/cli/", str(back))
    assert (back / "big.bin").read_bytes() == big and (back / "sp ace+plus").read_text() == "odd name"
    head = json.loads(_aws(g, "s3api", "head-object", "--bucket", VOLUME, "--key", "cli/d/small.txt").stdout)
    assert head["ContentLength"] == 5 and head["ETag"] == f'"{hashlib.md5(b"small").hexdigest()}"'
    r = _aws(g, "s3api", "get-object", "--bucket", VOLUME, "--key", "cli/big.bin", "--range", "bytes=0-9",
             str(tmp_path / "range"))
    assert (tmp_path / "range").read_bytes() == big[:10] and "bytes 0-9/" in r.stdout
    url = _aws(g, "s3", "presign", f"s3://{VOLUME}/cli/d/small.txt", "--expires-in", "60").stdout.strip()
    with urllib.request.urlopen(url) as resp:
        assert resp.read() == b"small"
    missing = _aws(g, "s3api", "head-object", "--bucket", VOLUME, "--key", "cli/nope", check=False)
    assert missing.returncode != 0 and "404" in missing.stderr
    _aws(g, "s3", "rm", "--only-show-errors", "--recursive", f"s3://{VOLUME}/cli/")
    assert _aws(g, "s3", "ls", "--recursive", f"s3://{VOLUME}/cli/", check=False).stdout.strip() == ""


def test_a_mount_and_the_gateway_see_each_other(gw: tuple[RunningGateway, str], s3: Any) -> None:
    _, url = gw
    outside = Path(tempfile.mkdtemp(prefix="jfs-gw-"))
    try:
        with mounted(url, outside / "mnt") as mnt:
            (mnt / "fuse" / "sub").mkdir(parents=True)
            (mnt / "fuse" / "sub" / "from-mount").write_bytes(b"written by the mount")
            assert _keys(s3, Prefix="fuse/") == ["fuse/sub/from-mount"]
            got = s3.get_object(Bucket=VOLUME, Key="fuse/sub/from-mount")
            assert got["Body"].read() == b"written by the mount"
            s3.put_object(Bucket=VOLUME, Key="fuse/from-gateway", Body=b"written by the gateway",
                          Metadata={"who": "gw"})
            assert (mnt / "fuse" / "from-gateway").read_bytes() == b"written by the gateway"
            assert os.getxattr(mnt / "fuse" / "from-gateway", "user.s3.meta.who") == b"gw"
            (mnt / "fuse" / "from-gateway").write_bytes(b"changed on the mount")
            time.sleep(1.2)  # the gateway's attribute cache
            head = s3.head_object(Bucket=VOLUME, Key="fuse/from-gateway")
            assert head["ContentLength"] == len(b"changed on the mount")
            assert head["ETag"] != f'"{hashlib.md5(b"written by the gateway").hexdigest()}"'  # no stale MD5
            assert s3.get_object(Bucket=VOLUME, Key="fuse/from-gateway")["Body"].read() == b"changed on the mount"
            s3.delete_objects(Bucket=VOLUME, Delete={"Objects": [{"Key": "fuse/from-gateway"},
                                                                 {"Key": "fuse/sub/from-mount"}]})
            assert not (mnt / "fuse").exists()
    finally:
        shutil.rmtree(outside, ignore_errors=True)
    fsck = jfs_cli("fsck", url, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_multi_buckets_and_credentials_required(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), VOLUME)
    env = {k: v for k, v in os.environ.items() if k not in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")}
    r = subprocess.run([sys.executable, "-m", "jfs.cli.main", "gateway", url, "127.0.0.1:1"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("jfs: error: no credentials") and "Traceback" not in r.stderr
    with gateway(url, tmp_path, "--multi-buckets", "--access-log", str(tmp_path / "access.log")) as g:
        s3 = g.client()
        assert s3.list_buckets()["Buckets"] == []
        _aws(g, "s3", "mb", "s3://alpha")
        s3.create_bucket(Bucket="beta")
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket="alpha")
        assert _code(e) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket="Bad_Name")
        assert _code(e) == "InvalidBucketName"
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["alpha", "beta"]
        s3.put_object(Bucket="alpha", Key="k", Body=b"v")
        with pytest.raises(ClientError) as e:
            s3.delete_bucket(Bucket="alpha")
        assert _code(e) == "BucketNotEmpty"
        assert s3.get_bucket_location(Bucket="alpha")["LocationConstraint"] is None
        assert "Status" not in s3.get_bucket_versioning(Bucket="alpha")
        s3.delete_object(Bucket="alpha", Key="k")
        _aws(g, "s3", "rb", "s3://alpha")
        s3.delete_bucket(Bucket="beta")
        with pytest.raises(ClientError) as e:
            s3.head_bucket(Bucket="alpha")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    log_lines = (tmp_path / "access.log").read_text().splitlines()
    assert any('"PUT /beta HTTP/1.1" 200' in line for line in log_lines)


def test_a_gateway_killed_during_uploads_leaves_no_partial_object(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), VOLUME)
    with gateway(url, tmp_path) as g:
        s3 = g.client()
        s3.put_object(Bucket=VOLUME, Key="kill/old", Body=b"the old version")
        up = s3.create_multipart_upload(Bucket=VOLUME, Key="kill/mp")["UploadId"]
        s3.upload_part(Bucket=VOLUME, Key="kill/mp", UploadId=up, PartNumber=1, Body=os.urandom(5 << 20))
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        socks = []
        for key in ("kill/new", "kill/old"):
            req = AWSRequest("PUT", f"{g.endpoint}/{VOLUME}/{key}", headers={
                "Host": f"127.0.0.1:{g.port}", "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
                "Content-Length": str(64 << 20)})
            S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(req)
            head = f"PUT /{VOLUME}/{key} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
            sock = socket.create_connection(("127.0.0.1", g.port))
            sock.sendall(head.encode() + b"\r\n" + os.urandom(20 << 20))  # a third of the body
            socks.append(sock)
        time.sleep(1.0)
        g.proc.kill()
        g.proc.wait()
        for sock in socks:
            sock.close()
    with gateway(url, tmp_path) as g:
        s3 = g.client()
        assert _keys(s3) == ["kill/old"]
        assert s3.get_object(Bucket=VOLUME, Key="kill/old")["Body"].read() == b"the old version"
        with pytest.raises(ClientError):
            s3.head_object(Bucket=VOLUME, Key="kill/mp")
        assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=VOLUME).get("Uploads", [])] == [up]


def test_s3cmd_and_rclone(gw: tuple[RunningGateway, str], tmp_path: Path) -> None:
    g, _ = gw
    cfg = tmp_path / "s3cmd.cfg"
    cfg.write_text(f"[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\nhost_base = 127.0.0.1:{g.port}\n"
                   f"host_bucket = 127.0.0.1:{g.port}\nuse_https = False\nsignature_v2 = False\n"
                   "bucket_location = us-east-1\n")
    bindir = Path(sys.executable).parent

    def s3cmd(*args: str) -> str:
        r = subprocess.run([str(bindir / "s3cmd"), "-c", str(cfg), *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    s3cmd("put", str(src / "a.txt"), f"s3://{VOLUME}/s3cmd/a.txt")
    s3cmd("sync", f"{src}/", f"s3://{VOLUME}/s3cmd/tree/")
    listing = s3cmd("ls", "--recursive", f"s3://{VOLUME}/s3cmd/")
    assert {line.split()[-1] for line in listing.splitlines()} == {
        f"s3://{VOLUME}/s3cmd/a.txt", f"s3://{VOLUME}/s3cmd/tree/a.txt", f"s3://{VOLUME}/s3cmd/tree/sub/b.bin"}
    s3cmd("get", f"s3://{VOLUME}/s3cmd/tree/sub/b.bin", str(tmp_path / "b.back"))
    assert (tmp_path / "b.back").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    s3cmd("del", "--recursive", "--force", f"s3://{VOLUME}/s3cmd/")
    assert s3cmd("ls", "--recursive", f"s3://{VOLUME}/s3cmd/").strip() == ""

    env = {**os.environ, "RCLONE_CONFIG": str(tmp_path / "rclone.conf"), "RCLONE_CONFIG_GW_TYPE": "s3",
           "RCLONE_CONFIG_GW_PROVIDER": "Minio", "RCLONE_CONFIG_GW_ACCESS_KEY_ID": ACCESS_KEY,
           "RCLONE_CONFIG_GW_SECRET_ACCESS_KEY": SECRET_KEY, "RCLONE_CONFIG_GW_ENDPOINT": g.endpoint,
           "RCLONE_CONFIG_GW_REGION": "us-east-1"}

    def rclone(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([str(bindir / "rclone"), *args], capture_output=True, text=True, timeout=300, env=env)
        if check:
            assert r.returncode == 0, r.stdout + r.stderr
        return r

    rclone("sync", str(src), f"gw:{VOLUME}/rclone")
    rclone("check", str(src), f"gw:{VOLUME}/rclone")  # sizes and MD5s (the ETags) match
    s3 = g.client()
    s3.put_object(Bucket=VOLUME, Key="rclone/sub/from-s3", Body=b"made through the gateway")
    back = tmp_path / "back"
    rclone("sync", f"gw:{VOLUME}/rclone", str(back))
    assert (back / "sub" / "from-s3").read_bytes() == b"made through the gateway"
    rclone("check", str(back), f"gw:{VOLUME}/rclone")
    (back / "a.txt").write_text("changed")
    assert rclone("check", str(back), f"gw:{VOLUME}/rclone", check=False).returncode != 0
    rclone("purge", f"gw:{VOLUME}/rclone")
    assert _keys(s3, Prefix="rclone/") == []


def test_an_unreachable_engine_gets_an_s3_error_and_the_gateway_recovers(tmp_path: Path) -> None:
    import signal

    from jfs.testing.servers import RedisServerError, redis_server

    try:
        server_cm = redis_server()
        server = server_cm.__enter__()
    except RedisServerError as exc:
        pytest.skip(str(exc))
    try:
        url = f"{server.url}/1?read_timeout=2s&dial_timeout=1s"
        format_volume(url, str(tmp_path / "bucket"), VOLUME)
        with gateway(url, tmp_path, "--attr-cache", "0", "--entry-cache", "0") as g:
            s3 = g.client(read_timeout=60, connect_timeout=5)
            s3.put_object(Bucket=VOLUME, Key="eng/k", Body=b"before")
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                with pytest.raises(ClientError) as e:
                    s3.get_object(Bucket=VOLUME, Key="eng/k")
                assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (500, 503)
                with pytest.raises(ClientError) as e:
                    s3.put_object(Bucket=VOLUME, Key="eng/new", Body=b"x")
                assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (500, 503)
                with pytest.raises(urllib.error.HTTPError) as e2:
                    urllib.request.urlopen(f"{g.endpoint}/minio/health/ready", timeout=30)
                assert e2.value.code in (500, 503)
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            assert s3.get_object(Bucket=VOLUME, Key="eng/k")["Body"].read() == b"before"
            assert _keys(s3) == ["eng/k"]  # the refused PUT left nothing
            assert g.proc.poll() is None
            log = g.log.read_text()
            assert "Traceback" not in log
    finally:
        server_cm.__exit__(None, None, None)


def test_tls(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), VOLUME)
    with gateway(url, tmp_path, "--cert-file", str(cert), "--key-file", str(key), tls=True) as g:
        s3 = g.client(verify=str(cert))
        s3.put_object(Bucket=VOLUME, Key="tls/k", Body=b"over https")
        assert s3.get_object(Bucket=VOLUME, Key="tls/k")["Body"].read() == b"over https"
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # no plain HTTP on a TLS address
            urllib.request.urlopen(f"http://127.0.0.1:{g.port}/minio/health/live", timeout=5).read()

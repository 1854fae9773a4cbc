"""Additional checksums (``x-amz-checksum-*``) against a real `jfs gateway`: the current boto3 sends CRC32
by default (a header over HTTP, an aws-chunked trailer over HTTPS); every algorithm is verified, a wrong
one is BadDigest and stores nothing, and the checksum comes back where S3 returns it (PutObject,
UploadPart, ListParts, CompleteMultipartUpload, GET/HEAD with ChecksumMode=ENABLED). CRC64NVME needs
awscrt in the client (botocore computes it with CRT only): the module passes with ``BOTO_DISABLE_CRT=true``
too, its CRC64NVME cases skipped."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crc32c
import pytest
from awscrt import checksums as crt  # type: ignore[import-untyped]
from botocore.compat import HAS_CRT
from botocore.exceptions import ClientError

from jfs.testing.gateways import ACCESS_KEY, SECRET_KEY, RunningGateway, gateway
from jfs.testing.mounts import format_volume
from jfs.testing.tls import make_pki

VOLUME = "sumvol"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _crc32(data: bytes) -> str:
    return _b64(zlib.crc32(data).to_bytes(4, "big"))


EXPECTED = {
    "CRC32": _crc32,
    "CRC32C": lambda d: _b64(crc32c.crc32c(d).to_bytes(4, "big")),
    "SHA1": lambda d: _b64(hashlib.sha1(d).digest()),
    "SHA256": lambda d: _b64(hashlib.sha256(d).digest()),
    "CRC64NVME": lambda d: _b64(crt.crc64nvme(d).to_bytes(8, "big")),
}
needs_crt = pytest.mark.skipif(not HAS_CRT, reason="botocore computes CRC64NVME only with awscrt (BOTO_DISABLE_CRT)")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    base = tmp_path_factory.mktemp("sums")
    url = f"sqlite3://{base}/meta.db"
    format_volume(url, str(base / "bucket"), VOLUME)
    with gateway(url, base) as g:
        yield g


def _keys(s3: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=VOLUME).get("Contents", [])]


def test_default_crc32_is_verified_stored_and_returned(gw: RunningGateway) -> None:
    s3 = gw.client()
    data = os.urandom(3 << 20)
    r = s3.put_object(Bucket=VOLUME, Key="d/default", Body=data)  # boto3 >= 1.36: CRC32 by default
    assert r["ChecksumCRC32"] == _crc32(data)
    head = s3.head_object(Bucket=VOLUME, Key="d/default", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == _crc32(data)
    got = s3.get_object(Bucket=VOLUME, Key="d/default", ChecksumMode="ENABLED")  # botocore validates it
    assert got["ChecksumCRC32"] == _crc32(data) and got["Body"].read() == data
    assert "ChecksumCRC32" not in s3.head_object(Bucket=VOLUME, Key="d/default")
    part = s3.get_object(Bucket=VOLUME, Key="d/default", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert "ChecksumCRC32" not in part and part["Body"].read() == data[:10]


@pytest.mark.parametrize("algorithm", sorted(EXPECTED))
def test_each_algorithm_verified(gw: RunningGateway, algorithm: str) -> None:
    if algorithm == "CRC64NVME" and not HAS_CRT:
        pytest.skip("botocore computes CRC64NVME only with awscrt")
    s3 = gw.client()
    data = os.urandom(200_000)
    given = {f"Checksum{algorithm}": EXPECTED[algorithm](data)}
    if algorithm != "CRC32C" or HAS_CRT:  # botocore computes CRC32C only with awscrt: give the value then
        given = {"ChecksumAlgorithm": algorithm}
    r = s3.put_object(Bucket=VOLUME, Key=f"alg/{algorithm}", Body=data, **given)
    assert r[f"Checksum{algorithm}"] == EXPECTED[algorithm](data)
    head = s3.head_object(Bucket=VOLUME, Key=f"alg/{algorithm}", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == EXPECTED[algorithm](data)


def test_a_wrong_checksum_is_bad_digest_and_stores_nothing(gw: RunningGateway) -> None:
    s3 = gw.client()
    s3.put_object(Bucket=VOLUME, Key="bad/old", Body=b"old")
    for algorithm, fn in EXPECTED.items():
        wrong = fn(b"something else")
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=VOLUME, Key="bad/new", Body=b"x" * 100_000, **{f"Checksum{algorithm}": wrong})
        assert e.value.response["Error"]["Code"] == "BadDigest", algorithm
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=VOLUME, Key="bad/old", Body=b"new", **{f"Checksum{algorithm}": wrong})
        assert e.value.response["Error"]["Code"] == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=VOLUME, Key="bad/new", Body=b"x", ChecksumCRC32="not base64!")
    assert e.value.response["Error"]["Code"] == "InvalidRequest"
    assert "bad/new" not in _keys(s3)
    assert s3.get_object(Bucket=VOLUME, Key="bad/old")["Body"].read() == b"old"


def _raw_trailer_put(gw: RunningGateway, key: str, data: bytes, trailer_value: str) -> tuple[int, bytes]:
    """An aws-chunked STREAMING-UNSIGNED-PAYLOAD-TRAILER PUT with an x-amz-checksum-crc32 trailer, as
    SDKs send over HTTPS, on a raw socket; returns (status, body)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    payload = (f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n"
               + f"x-amz-checksum-crc32:{trailer_value}\r\n\r\n".encode())
    req = AWSRequest("PUT", f"{gw.endpoint}/{VOLUME}/{key}", headers={
        "Host": f"127.0.0.1:{gw.port}", "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "Content-Encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": str(len(data)), "Content-Length": str(len(payload))})
    req.context["checksum"] = {"request_algorithm": {"in": "trailer", "algorithm": "crc32",
                                                     "name": "x-amz-checksum-crc32"}}
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(req)
    head = f"PUT /{VOLUME}/{key} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
    with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"Connection: close\r\n\r\n" + payload)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    return status, reply.partition(b"\r\n\r\n")[2]


def test_trailing_checksums_verified(gw: RunningGateway) -> None:
    s3 = gw.client()
    data = os.urandom(300_000)
    status, body = _raw_trailer_put(gw, "trail/ok", data, _crc32(data))
    assert status == 200, body
    assert s3.head_object(Bucket=VOLUME, Key="trail/ok", ChecksumMode="ENABLED")["ChecksumCRC32"] == _crc32(data)
    status, body = _raw_trailer_put(gw, "trail/bad", data, _crc32(b"other"))
    assert status == 400 and b"<Code>BadDigest</Code>" in body
    assert "trail/bad" not in _keys(s3)


def _signed_trailer_put(gw: RunningGateway, key: str, data: bytes, checksum: str, *, sign_checksum: str | None = None,
                        signature: str | None = "computed") -> tuple[int, bytes]:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER PUT on a raw socket, signed with botocore's SigV4
    (the seed: its canonical request and key derivation; each chunk's and the trailer's string-to-sign
    is written here from AWS's spec, then signed with botocore's `SigV4Auth.signature`): two data
    chunks, the 0-byte chunk, an ``x-amz-checksum-crc32`` trailer and its ``x-amz-trailer-signature``.
    `sign_checksum`: sign another trailer value than the one sent; `signature`: send this one instead
    (None: none)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    chunks = [data[: len(data) // 2], data[len(data) // 2:], b""]
    trailer = f"x-amz-checksum-crc32:{checksum}"
    body_len = sum(len(f"{len(c):x};chunk-signature=".encode()) + 64 + 2 + len(c) + 2 for c in chunks) - 2
    body_len += len(trailer) + 2 + (len("x-amz-trailer-signature:") + 64 + 2 if signature is not None else 0) + 2
    req = AWSRequest("PUT", f"{gw.endpoint}/{VOLUME}/{key}", headers={
        "Host": f"127.0.0.1:{gw.port}", "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "Content-Encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": str(len(data)), "Content-Length": str(body_len)})
    auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1")
    auth.add_auth(req)  # SigV4Auth (not S3SigV4Auth) keeps the streaming x-amz-content-sha256 as given
    previous = str(req.headers["Authorization"]).rpartition("Signature=")[2]
    stamp, scope = req.context["timestamp"], auth.credential_scope(req)
    payload = b""
    for c in chunks:
        previous = auth.signature("\n".join(("AWS4-HMAC-SHA256-PAYLOAD", stamp, scope, previous,
                                             hashlib.sha256(b"").hexdigest(), hashlib.sha256(c).hexdigest())), req)
        payload += f"{len(c):x};chunk-signature={previous}\r\n".encode() + c + (b"\r\n" if c else b"")
    signed_trailer = f"x-amz-checksum-crc32:{sign_checksum or checksum}\n"
    trailer_sig = auth.signature("\n".join(("AWS4-HMAC-SHA256-TRAILER", stamp, scope, previous,
                                            hashlib.sha256(signed_trailer.encode()).hexdigest())), req)
    payload += f"{trailer}\r\n".encode()
    if signature is not None:
        payload += f"x-amz-trailer-signature:{trailer_sig if signature == 'computed' else signature}\r\n".encode()
    payload += b"\r\n"
    assert len(payload) == body_len
    head = f"PUT /{VOLUME}/{key} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
    with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"Connection: close\r\n\r\n" + payload)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1]), reply.partition(b"\r\n\r\n")[2]


def test_signed_trailers_are_verified(gw: RunningGateway) -> None:
    """The trailer of a signed aws-chunked upload counts only under its x-amz-trailer-signature: a
    changed value, a changed or missing signature are SignatureDoesNotMatch and store nothing."""
    s3 = gw.client()
    data = os.urandom(200_000)
    status, body = _signed_trailer_put(gw, "strail/ok", data, _crc32(data))
    assert status == 200, body
    got = s3.get_object(Bucket=VOLUME, Key="strail/ok", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == _crc32(data) and got["Body"].read() == data
    s3.put_object(Bucket=VOLUME, Key="strail/old", Body=b"old")
    for key, kwargs in [("strail/new", {"sign_checksum": _crc32(b"what was signed")}),  # value changed in flight
                        ("strail/new", {"signature": "0" * 64}),
                        ("strail/new", {"signature": None}),
                        ("strail/old", {"signature": "f" * 64})]:
        status, body = _signed_trailer_put(gw, key, data, _crc32(data), **kwargs)  # type: ignore[arg-type]
        assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body, (kwargs, body)
    status, body = _signed_trailer_put(gw, "strail/new", data, _crc32(b"other"))  # signed, but the wrong CRC
    assert status == 400 and b"<Code>BadDigest</Code>" in body
    assert [k for k in _keys(s3) if k.startswith("strail/")] == ["strail/ok", "strail/old"]
    assert s3.get_object(Bucket=VOLUME, Key="strail/old")["Body"].read() == b"old"


def test_multipart_part_checksums_and_composite(gw: RunningGateway) -> None:
    s3 = gw.client()
    parts = [os.urandom(5 << 20), os.urandom(1000)]
    up = s3.create_multipart_upload(Bucket=VOLUME, Key="mp/obj", ChecksumAlgorithm="CRC32")["UploadId"]
    done = []
    for n, body in enumerate(parts, 1):
        r = s3.upload_part(Bucket=VOLUME, Key="mp/obj", UploadId=up, PartNumber=n, Body=body,
                           ChecksumAlgorithm="CRC32")
        assert r["ChecksumCRC32"] == _crc32(body)
        done.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    listed = s3.list_parts(Bucket=VOLUME, Key="mp/obj", UploadId=up)["Parts"]
    assert [p["ChecksumCRC32"] for p in listed] == [_crc32(b) for b in parts]
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=VOLUME, Key="mp/obj", UploadId=up, PartNumber=3, Body=b"zzz",
                       ChecksumCRC32=_crc32(b"yyy"))
    assert e.value.response["Error"]["Code"] == "BadDigest"
    r = s3.complete_multipart_upload(Bucket=VOLUME, Key="mp/obj", UploadId=up, MultipartUpload={"Parts": done})
    composite = _b64(zlib.crc32(b"".join(base64.b64decode(_crc32(b)) for b in parts)).to_bytes(4, "big")) + "-2"
    assert r["ChecksumCRC32"] == composite
    head = s3.head_object(Bucket=VOLUME, Key="mp/obj", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == composite
    got = s3.get_object(Bucket=VOLUME, Key="mp/obj", ChecksumMode="ENABLED")  # composite: not validated by SDKs
    assert got["Body"].read() == b"".join(parts)


@needs_crt
def test_crc64nvme_multipart_is_a_full_object_checksum(gw: RunningGateway) -> None:
    """CRC64NVME has only S3's FULL_OBJECT type: the object's checksum is the CRC of its whole content
    (combined from the parts'), no ``-N``; botocore validates it on GET; a wrong whole-object value given
    to CompleteMultipartUpload is BadDigest and publishes nothing; COMPOSITE is refused."""
    s3 = gw.client()
    crc64 = EXPECTED["CRC64NVME"]
    parts = [os.urandom(5 << 20), os.urandom((5 << 20) + 1), os.urandom(777)]
    whole = b"".join(parts)
    r = s3.create_multipart_upload(Bucket=VOLUME, Key="mp64/obj", ChecksumAlgorithm="CRC64NVME")
    assert r["ChecksumAlgorithm"] == "CRC64NVME" and r["ChecksumType"] == "FULL_OBJECT"
    up = r["UploadId"]
    done = []
    for n, body in enumerate(parts, 1):
        pr = s3.upload_part(Bucket=VOLUME, Key="mp64/obj", UploadId=up, PartNumber=n, Body=body,
                            ChecksumAlgorithm="CRC64NVME")
        assert pr["ChecksumCRC64NVME"] == crc64(body)
        done.append({"PartNumber": n, "ETag": pr["ETag"], "ChecksumCRC64NVME": pr["ChecksumCRC64NVME"]})
    with pytest.raises(ClientError) as e:  # a part of another algorithm than the upload's
        s3.upload_part(Bucket=VOLUME, Key="mp64/obj", UploadId=up, PartNumber=4, Body=b"z", ChecksumAlgorithm="CRC32")
    assert e.value.response["Error"]["Code"] == "InvalidRequest"
    assert [p["ChecksumCRC64NVME"] for p in s3.list_parts(Bucket=VOLUME, Key="mp64/obj", UploadId=up)["Parts"]] \
        == [crc64(b) for b in parts]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=VOLUME, Key="mp64/obj", UploadId=up, MultipartUpload={"Parts": done},
                                     ChecksumCRC64NVME=crc64(b"not the object"), ChecksumType="FULL_OBJECT")
    assert e.value.response["Error"]["Code"] == "BadDigest"
    assert "mp64/obj" not in _keys(s3)
    r = s3.complete_multipart_upload(Bucket=VOLUME, Key="mp64/obj", UploadId=up, MultipartUpload={"Parts": done},
                                     ChecksumCRC64NVME=crc64(whole), ChecksumType="FULL_OBJECT")
    assert r["ChecksumCRC64NVME"] == crc64(whole) and r["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=VOLUME, Key="mp64/obj", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == crc64(whole) and head["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket=VOLUME, Key="mp64/obj", ChecksumMode="ENABLED")  # full object: botocore checks it
    assert got["Body"].read() == whole
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket=VOLUME, Key="mp64/other", ChecksumAlgorithm="CRC64NVME",
                                   ChecksumType="COMPOSITE")
    assert e.value.response["Error"]["Code"] == "InvalidRequest"


@needs_crt
def test_crc32_full_object_multipart(gw: RunningGateway) -> None:
    s3 = gw.client()
    parts = [os.urandom(5 << 20), os.urandom(4321)]
    up = s3.create_multipart_upload(Bucket=VOLUME, Key="mpfull/obj", ChecksumAlgorithm="CRC32",
                                    ChecksumType="FULL_OBJECT")["UploadId"]
    done = []
    for n, body in enumerate(parts, 1):
        pr = s3.upload_part(Bucket=VOLUME, Key="mpfull/obj", UploadId=up, PartNumber=n, Body=body,
                            ChecksumAlgorithm="CRC32")
        done.append({"PartNumber": n, "ETag": pr["ETag"], "ChecksumCRC32": pr["ChecksumCRC32"]})
    r = s3.complete_multipart_upload(Bucket=VOLUME, Key="mpfull/obj", UploadId=up, MultipartUpload={"Parts": done})
    assert r["ChecksumCRC32"] == _crc32(b"".join(parts)) and r["ChecksumType"] == "FULL_OBJECT"


def test_boto3_over_https_sends_trailers_and_they_are_checked(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), VOLUME)
    with gateway(url, tmp_path, "--cert-file", str(pki.server_cert), "--key-file", str(pki.server_key),
                 tls=True) as g:
        s3 = g.client(verify=str(pki.ca))
        data = os.urandom(1 << 20)
        sent: list[dict[str, str]] = []
        s3.meta.events.register("before-send.s3.PutObject",
                                lambda request, **_: sent.append({k.lower(): (v.decode() if isinstance(v, bytes) else v)
                                                                  for k, v in request.headers.items()}))
        r = s3.put_object(Bucket=VOLUME, Key="tls/streamed", Body=io.BytesIO(data))  # aws-chunked + trailer
        assert r["ChecksumCRC32"] == _crc32(data)
        assert sent[0]["x-amz-trailer"] == "x-amz-checksum-crc32"
        if HAS_CRT:
            r = s3.put_object(Bucket=VOLUME, Key="tls/crc64", Body=io.BytesIO(data), ChecksumAlgorithm="CRC64NVME")
            assert sent[-1]["x-amz-trailer"] == "x-amz-checksum-crc64nvme"
            assert r["ChecksumCRC64NVME"] == EXPECTED["CRC64NVME"](data)
        s3.upload_fileobj(io.BytesIO(data * 9), VOLUME, "tls/managed")  # transfer manager: multipart
        got = s3.get_object(Bucket=VOLUME, Key="tls/managed", ChecksumMode="ENABLED")
        assert got["Body"].read() == data * 9

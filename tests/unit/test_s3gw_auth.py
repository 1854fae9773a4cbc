"""The gateway's request checks without a server: SigV4 against AWS's published example and botocore's
signer, aws-chunked payloads, SigV2 presigned URLs, ranges and key-to-path rules."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from botocore.auth import HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from jfs.adapters.s3gw.body import chunked_body, plain_body
from jfs.adapters.s3gw.errors import S3Error
from jfs.adapters.s3gw.server import parse_range
from jfs.adapters.s3gw.sigv4 import STREAMING_TRAILER, Signed, Verifier
from jfs.app.objectview import ObjectError
from jfs.app.objectview.keys import key_parts

# The example of AWS's "Signature Calculations for the Authorization Header: Transferring Payload in
# Multiple Chunks" (S3 API reference): a 66,560-byte object in chunks of 65,536 and 1,024 bytes.
AK, SK = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNK_SIGS = ["ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
              "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
              "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"]
EXAMPLE_HEADERS = {
    "content-encoding": ["aws-chunked"], "content-length": ["66824"], "host": ["s3.amazonaws.com"],
    "x-amz-content-sha256": ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD"], "x-amz-date": ["20130524T000000Z"],
    "x-amz-decoded-content-length": ["66560"], "x-amz-storage-class": ["REDUCED_REDUNDANCY"],
    "authorization": [f"AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/s3/aws4_request,SignedHeaders="
                      "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                      f"x-amz-decoded-content-length;x-amz-storage-class,Signature={SEED}"]}
EXAMPLE_TIME = datetime(2013, 5, 24, tzinfo=UTC).timestamp()


class FakeStream:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self, n: int = -1) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        return out

    async def readline(self) -> bytes:
        i = self.data.find(b"\n")
        cut = len(self.data) if i < 0 else i + 1
        out, self.data = self.data[:cut], self.data[cut:]
        return out


def _example_body(sigs: list[str]) -> bytes:
    a = b"a" * 65536
    return (f"10000;chunk-signature={sigs[0]}\r\n".encode() + a + b"\r\n"
            + f"400;chunk-signature={sigs[1]}\r\n".encode() + a[:1024] + b"\r\n"
            + f"0;chunk-signature={sigs[2]}\r\n\r\n".encode())


async def _collect(it: object) -> bytes:
    out = bytearray()
    async for piece in it:  # type: ignore[attr-defined]
        out += piece
    return bytes(out)


def _verify_example(clock: float = EXAMPLE_TIME, headers: dict[str, list[str]] | None = None) -> object:
    h = headers or EXAMPLE_HEADERS
    return Verifier({AK: SK}, clock=lambda: clock).verify(
        "PUT", "/examplebucket/chunkObject.txt", "", lambda n: h.get(n, []), {})


def test_aws_chunked_example_verifies_seed_and_every_chunk() -> None:
    signed = _verify_example()
    data = asyncio.run(_collect(chunked_body(FakeStream(_example_body(CHUNK_SIGS)), signed, 66560, 5)))  # type: ignore[arg-type]
    assert data == b"a" * 66560


def test_aws_chunked_tampered_chunk_or_length_fails_before_the_end() -> None:
    signed = _verify_example()
    body = _example_body(CHUNK_SIGS).replace(b"a" * 10, b"b" * 10, 1)
    with pytest.raises(S3Error) as e:
        asyncio.run(_collect(chunked_body(FakeStream(body), signed, 66560, 5)))  # type: ignore[arg-type]
    assert e.value.code == "SignatureDoesNotMatch"
    with pytest.raises(S3Error) as e:  # cut short: never a complete payload
        asyncio.run(_collect(chunked_body(FakeStream(_example_body(CHUNK_SIGS)[:60000]), signed, 66560, 5)))  # type: ignore[arg-type]
    assert e.value.code == "IncompleteBody"


# AWS's "Signature calculations for trailing headers (chunked uploads)" example: the same 66,560 bytes,
# an x-amz-checksum-crc32c trailer and its x-amz-trailer-signature.
TRAILER_SEED = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
TRAILER_CHUNK_SIGS = ["b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
                      "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
                      "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"]
TRAILER_SIG = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"


def _trailer_example(checksum: str = "sOO8/Q==", signature: str | None = TRAILER_SIG) -> bytes:
    body = _example_body(TRAILER_CHUNK_SIGS)[:-2]  # the 0-byte chunk's line, then the trailer
    body += f"x-amz-checksum-crc32c:{checksum}\r\n".encode()
    if signature is not None:
        body += f"x-amz-trailer-signature:{signature}\r\n".encode()
    return body + b"\r\n"


def _trailer_signed() -> Signed:
    headers = {**EXAMPLE_HEADERS, "x-amz-content-sha256": [STREAMING_TRAILER],
               "x-amz-trailer": ["x-amz-checksum-crc32c"],
               "authorization": [f"AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/s3/aws4_request,SignedHeaders="
                                 "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
                                 f"x-amz-storage-class;x-amz-trailer,Signature={TRAILER_SEED}"]}
    signed = _verify_example(headers=headers)
    assert isinstance(signed, Signed) and signed.signature == TRAILER_SEED
    return signed


def test_aws_signed_trailer_example_verifies() -> None:
    got: list[tuple[str, str]] = []
    data = asyncio.run(_collect(chunked_body(FakeStream(_trailer_example()), _trailer_signed(), 66560, 5,  # type: ignore[arg-type]
                                             lambda n, v: got.append((n, v)))))
    assert data == b"a" * 66560
    assert got == [("x-amz-checksum-crc32c", "sOO8/Q==")]


@pytest.mark.parametrize("body", [
    _trailer_example(checksum="AAAAAA=="),  # the trailer's value changed under its signature
    _trailer_example(signature="0" * 64),  # the trailer's signature changed
    _trailer_example(signature=TRAILER_CHUNK_SIGS[2]),
    _trailer_example(signature=None),  # no signature at all
])
def test_aws_signed_trailer_tampered_or_unsigned_is_refused(body: bytes) -> None:
    got: list[tuple[str, str]] = []
    with pytest.raises(S3Error) as e:
        asyncio.run(_collect(chunked_body(FakeStream(body), _trailer_signed(), 66560, 5,  # type: ignore[arg-type]
                                          lambda n, v: got.append((n, v)))))
    assert e.value.code == "SignatureDoesNotMatch"
    assert got == []  # an unverified trailer never reaches the checksum


def test_example_with_a_wrong_secret_or_a_skewed_clock_is_refused() -> None:
    with pytest.raises(S3Error) as e:
        Verifier({AK: SK + "x"}, clock=lambda: EXAMPLE_TIME).verify(
            "PUT", "/examplebucket/chunkObject.txt", "", lambda n: EXAMPLE_HEADERS.get(n, []), {})
    assert e.value.code == "SignatureDoesNotMatch"
    with pytest.raises(S3Error) as e:
        _verify_example(clock=EXAMPLE_TIME + 3600)
    assert e.value.code == "RequestTimeTooSkewed"
    with pytest.raises(S3Error) as e:
        Verifier({"other": SK}).verify("PUT", "/examplebucket/chunkObject.txt", "",
                                       lambda n: EXAMPLE_HEADERS.get(n, []), {})
    assert e.value.code == "InvalidAccessKeyId"


def _split(url: str) -> tuple[str, str, dict[str, str]]:
    from urllib.parse import unquote

    parts = urlsplit(url)
    query = {unquote(k): unquote(v) for k, _, v in (i.partition("=") for i in parts.query.split("&") if i)}
    return parts.path, parts.query, query


def test_botocore_signed_requests_verify_and_tampering_fails() -> None:
    creds = Credentials("access", "secret-key")
    body = b"hello world"
    req = AWSRequest("PUT", "http://127.0.0.1:9000/bkt/a%20b/c+d~e?uploadId=1&partNumber=2", data=body,
                     headers={"Host": "127.0.0.1:9000", "x-amz-meta-x": "  two  spaces "})
    req.context["payload_signing_enabled"] = True
    S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
    headers = {k.lower(): [v] for k, v in req.headers.items()}
    path, raw_query, query = _split(req.url)
    v = Verifier({"access": "secret-key"})
    signed = v.verify("PUT", path, raw_query, lambda n: headers.get(n, []), query)
    assert signed.payload == hashlib.sha256(body).hexdigest()
    assert asyncio.run(_collect(plain_body(FakeStream(body), len(body), signed, 5))) == body
    with pytest.raises(S3Error) as e:
        asyncio.run(_collect(plain_body(FakeStream(b"HELLO WORLD"), len(body), signed, 5)))
    assert e.value.code == "XAmzContentSHA256Mismatch"
    with pytest.raises(S3Error) as e:
        v.verify("PUT", path.replace("c+d", "c+e"), raw_query, lambda n: headers.get(n, []), query)
    assert e.value.code == "SignatureDoesNotMatch"


def test_presigned_urls_v4_and_v2_verify_until_they_expire() -> None:
    creds = Credentials("access", "secret-key")
    req = AWSRequest("GET", "http://127.0.0.1:9000/bkt/some%20key", headers={"Host": "127.0.0.1:9000"})
    S3SigV4QueryAuth(creds, "s3", "us-east-1", expires=60).add_auth(req)
    path, raw_query, query = _split(req.url)
    now = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    host = {"host": ["127.0.0.1:9000"]}
    Verifier({"access": "secret-key"}, clock=lambda: now + 30).verify("GET", path, raw_query,
                                                                       lambda n: host.get(n, []), query)
    with pytest.raises(S3Error) as e:
        Verifier({"access": "secret-key"}, clock=lambda: now + 61).verify("GET", path, raw_query,
                                                                           lambda n: host.get(n, []), query)
    assert e.value.code == "AccessDenied" and "expired" in e.value.message

    req = AWSRequest("GET", "http://127.0.0.1:9000/bkt/some%20key", headers={"Host": "127.0.0.1:9000"})
    HmacV1QueryAuth(creds, expires=60).add_auth(req)
    path, raw_query, query = _split(req.url)
    expires = int(query["Expires"])
    Verifier({"access": "secret-key"}, clock=lambda: expires - 1).verify("GET", path, raw_query,
                                                                          lambda n: host.get(n, []), query)
    with pytest.raises(S3Error) as e:
        Verifier({"access": "secret-key"}, clock=lambda: expires + 1).verify("GET", path, raw_query,
                                                                              lambda n: host.get(n, []), query)
    assert e.value.code == "AccessDenied"
    with pytest.raises(S3Error) as e:
        Verifier({"access": "secret-key"}, clock=lambda: expires - 1).verify(
            "GET", path + "x", raw_query, lambda n: host.get(n, []), query)
    assert e.value.code == "SignatureDoesNotMatch"


def test_unsigned_requests_are_refused() -> None:
    with pytest.raises(S3Error) as e:
        Verifier({"a": "b"}).verify("GET", "/", "", lambda n: [], {})
    assert e.value.code == "AccessDenied"


@pytest.mark.parametrize(("header", "want"), [
    ("bytes=0-9", (0, 10)), ("bytes=5-", (5, 100)), ("bytes=-10", (90, 100)), ("bytes=90-200", (90, 100)),
    ("bytes=-200", (0, 100)), ("bytes=9-5", None), ("items=0-1", None), ("bytes=0-1,5-6", None), ("bytes=x-1", None),
])
def test_ranges(header: str, want: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == want


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(S3Error) as e:
        parse_range(header, 100)
    assert e.value.code == "InvalidRange"


@pytest.mark.parametrize("key", ["a/../b", "..", "a//b", "/a", "./a", "a/./b", "a\0b", ".sys/x", ".trash/x",
                                 ".control", "x" * 256, "a/" * 600])
def test_keys_that_cannot_be_paths_are_refused(key: str) -> None:
    with pytest.raises(ObjectError):
        key_parts(key)


def test_keys_map_to_components() -> None:
    assert key_parts("a/b/c") == ([b"a", b"b", b"c"], False)
    assert key_parts("a/b/") == ([b"a", b"b"], True)
    assert key_parts("sp ace/é+~") == ([b"sp ace", "é+~".encode()], False)

"""Parsing and checking of S3's additional checksums (jfs.adapters.s3gw.checksums, body.digested)."""

from __future__ import annotations

import asyncio
import base64
import zlib
from collections.abc import AsyncIterator

import pytest

from jfs.adapters.s3gw import checksums
from jfs.adapters.s3gw.body import coalesce, digested
from jfs.adapters.s3gw.errors import S3Error
from jfs.app.objectview.checksums import composite, digest_of, stored_checksum


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


async def _pieces(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def _run(headers: dict[str, str], *parts: bytes, trailer: tuple[str, str] | None = None) -> bytes:
    cs = checksums.from_request(headers)
    assert cs is not None
    h, check = checksums.check(cs)

    async def go() -> bytes:
        out = bytearray()
        async for piece in digested(coalesce(_pieces(*parts), 8), [h], [check]):
            out += piece
        return bytes(out)

    if trailer is not None:
        cs.set_trailer(*trailer)
    data = asyncio.run(go())
    assert cs.slot.value == base64.b64encode(digest_of(cs.algorithm, data)).decode()
    return data


def test_header_checksums_verified() -> None:
    assert _run({"x-amz-checksum-crc32": _crc32(b"hello world")}, b"hello", b" world") == b"hello world"
    sha = base64.b64encode(digest_of("sha256", b"abc")).decode()
    assert _run({"X-Amz-Checksum-Sha256": sha, "x-amz-sdk-checksum-algorithm": "SHA256"}, b"abc") == b"abc"
    with pytest.raises(S3Error) as e:
        _run({"x-amz-checksum-crc32": _crc32(b"other")}, b"hello")
    assert e.value.code == "BadDigest"


def test_trailer_checksum_verified_and_required() -> None:
    headers = {"x-amz-trailer": "x-amz-checksum-crc32c"}
    value = base64.b64encode(digest_of("crc32c", b"data")).decode()
    assert _run(headers, b"da", b"ta", trailer=("x-amz-checksum-crc32c", value)) == b"data"
    with pytest.raises(S3Error) as e:
        _run(headers, b"data")  # the trailer never came
    assert e.value.code == "InvalidRequest"
    with pytest.raises(S3Error) as e:
        _run(headers, b"data", trailer=("x-amz-checksum-crc32c", base64.b64encode(b"\0\0\0\0").decode()))
    assert e.value.code == "BadDigest"


@pytest.mark.parametrize("headers", [
    {"x-amz-checksum-crc32": "nope"},
    {"x-amz-checksum-crc32": base64.b64encode(b"12345").decode()},  # 5 bytes, CRC32 has 4
    {"x-amz-checksum-crc64nvme": "AAAAAAAAAAA="},
    {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
    {"x-amz-trailer": "x-amz-meta-foo"},
])
def test_malformed_declarations_are_invalid_requests(headers: dict[str, str]) -> None:
    with pytest.raises(S3Error) as e:
        checksums.from_request(headers)
    assert e.value.code == "InvalidRequest"


def test_no_declaration_and_mode_headers_are_not_checksums() -> None:
    assert checksums.from_request({"x-amz-checksum-mode": "ENABLED", "Content-Length": "3"}) is None


def test_composite_and_stored() -> None:
    parts = [b"a" * 10, b"b" * 3]
    values = [_crc32(p) for p in parts]
    raw = b"".join(zlib.crc32(p).to_bytes(4, "big") for p in parts)
    assert composite("crc32", values) == _crc32(raw) + "-2"
    assert stored_checksum({"content-type": "x", "x-amz-checksum-sha1": "v"}) == ("sha1", "v")
    assert stored_checksum({"content-type": "x"}) is None

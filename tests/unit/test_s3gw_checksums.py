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
from jfs.app.objectview import ObjectError
from jfs.app.objectview.checksums import composite, digest_of, full_object, stored_checksum
from jfs.app.objectview.multipart import Multipart


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
    {"x-amz-checksum-crc64nvme": "AAAAAAA="},  # 5 bytes, CRC64NVME has 8
    {"x-amz-checksum-md5": "AAAAAAAAAAAAAAAAAAAAAA=="},  # not an additional-checksum algorithm
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


def _crc64nvme_reference(data: bytes) -> int:
    """CRC-64/NVME bit by bit (reflected polynomial 0x9A6C9329AC4BC9B5, init and xorout all ones): an
    independent check of the library the gateway uses, for small inputs only."""
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x9A6C9329AC4BC9B5 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def test_crc64nvme_is_the_standard_crc() -> None:
    assert digest_of("crc64nvme", b"123456789").hex() == "ae8b14860a799888"  # the catalogue's check value
    for data in (b"", b"a", bytes(range(256)) * 3):
        assert int.from_bytes(digest_of("crc64nvme", data), "big") == _crc64nvme_reference(data)
    value = base64.b64encode(digest_of("crc64nvme", b"hello world")).decode()
    assert _run({"x-amz-checksum-crc64nvme": value}, b"hello", b" world") == b"hello world"
    assert _run({"x-amz-trailer": "x-amz-checksum-crc64nvme"}, b"hello world",
                trailer=("x-amz-checksum-crc64nvme", value)) == b"hello world"
    with pytest.raises(S3Error) as e:
        _run({"x-amz-checksum-crc64nvme": value}, b"hello there")
    assert e.value.code == "BadDigest"


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "crc64nvme"])
def test_full_object_checksum_combines_part_crcs(algorithm: str) -> None:
    parts = [b"x" * 1000, b"", b"yz" * 777, b"q"]
    values = [(base64.b64encode(digest_of(algorithm, p)).decode(), len(p)) for p in parts]
    assert full_object(algorithm, values) == base64.b64encode(digest_of(algorithm, b"".join(parts))).decode()


def test_multipart_checksum_declarations_follow_s3() -> None:
    assert Multipart.checksum_declaration(None, None) is None
    assert Multipart.checksum_declaration("CRC64NVME", None) == ("crc64nvme", "FULL_OBJECT")
    assert Multipart.checksum_declaration("CRC32", None) == ("crc32", "COMPOSITE")
    assert Multipart.checksum_declaration("crc32c", "full_object") == ("crc32c", "FULL_OBJECT")
    assert Multipart.checksum_declaration("SHA256", "COMPOSITE") == ("sha256", "COMPOSITE")
    for algorithm, kind in (("CRC64NVME", "COMPOSITE"), ("SHA1", "FULL_OBJECT"), ("MD5", None), (None, "COMPOSITE")):
        with pytest.raises(ObjectError) as e:
            Multipart.checksum_declaration(algorithm, kind)
        assert e.value.code == "InvalidRequest"


def test_complete_declares_the_object_checksum_not_the_body() -> None:
    value = base64.b64encode(digest_of("crc64nvme", b"x")).decode()
    assert checksums.object_checksum({"x-amz-checksum-crc64nvme": value, "x-amz-checksum-type": "FULL_OBJECT",
                                      "Content-Type": "application/xml"}) == ("crc64nvme", value)
    assert checksums.object_checksum({"x-amz-checksum-crc32": "AAAAAA==-3"}) == ("crc32", "AAAAAA==-3")
    assert checksums.object_checksum({"x-amz-checksum-type": "FULL_OBJECT"}) is None

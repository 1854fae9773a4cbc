"""S3's additional checksums (CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256) as objects keep them: the
algorithms, the slot a verified payload's checksum lands in, and the checksum of a multipart object
(COMPOSITE, or FULL_OBJECT for the CRCs).

CRC32 comes from `zlib_ng` (python-zlib-ng: zlib-ng's PCLMUL/VPCLMUL CRC-32, 0.04 s of CPU per GiB where
CPython's `zlib` of Debian's zlib 1.2 takes 0.2), CRC32C from the `crc32c` package (hardware-accelerated), CRC64NVME and the
combination of part CRCs into a full-object CRC from `awscrt.checksums` (AWS's own C library, the one
botocore uses for them), the SHAs from `hashlib`; all release the GIL on big buffers. A stored checksum
travels in the object's record as the header ``x-amz-checksum-<algorithm>`` (base64, ``-N`` appended for
a multipart object's composite; a full-object checksum has no suffix).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import crc32c
from zlib_ng import zlib_ng

HEADER_PREFIX = "x-amz-checksum-"


class _Crc:
    """A CRC with hashlib's update/digest (`size` bytes, big-endian, as S3 encodes it)."""

    def __init__(self, fn: Callable[[bytes, int], int], size: int = 4) -> None:
        self._fn = fn
        self._size = size
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = self._fn(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._size, "big")


def _crc32c(data: bytes, value: int) -> int:
    return int(crc32c.crc32c(data, value))


@functools.cache
def _crt() -> Any:
    """`awscrt.checksums`, imported on first use: loading AWS's C library costs ~0.05-0.1 s of CPU, which
    ``jfs gc`` (it imports this package for the gateway's unfinished uploads) never needs (ADR 0063)."""
    from awscrt import checksums  # type: ignore[import-untyped]

    return checksums


def _crc64nvme(data: bytes, value: int) -> int:
    return int(_crt().crc64nvme(data, value))


FACTORIES: dict[str, Callable[[], Any]] = {
    "crc32": lambda: _Crc(zlib_ng.crc32),
    "crc32c": lambda: _Crc(_crc32c),
    "crc64nvme": lambda: _Crc(_crc64nvme, 8),
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
}
"""Algorithm name (as in the header) → a new hasher with ``update``/``digest``."""
SIZES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}

COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"
_COMBINE: dict[str, str] = {"crc32": "combine_crc32", "crc32c": "combine_crc32c", "crc64nvme": "combine_crc64nvme"}
"""Algorithm → the `awscrt.checksums` function that combines two CRCs (crc of A, crc of B, length of B)."""
TYPES: dict[str, frozenset[str]] = {
    "crc32": frozenset({COMPOSITE, FULL_OBJECT}), "crc32c": frozenset({COMPOSITE, FULL_OBJECT}),
    "crc64nvme": frozenset({FULL_OBJECT}), "sha1": frozenset({COMPOSITE}), "sha256": frozenset({COMPOSITE})}
"""The multipart checksum types S3 allows per algorithm (CRC64NVME: full-object only; the SHAs: composite
only)."""


def digest_of(algorithm: str, data: bytes) -> bytes:
    h = FACTORIES[algorithm]()
    h.update(data)
    return bytes(h.digest())


@dataclass(slots=True)
class ChecksumSlot:
    """A payload checksum verified while the body streams: `algorithm`, and `value` (base64) once the
    whole body matched it. The object view stores a filled slot with the object."""

    algorithm: str
    value: str | None = None

    def header(self) -> dict[str, str]:
        return {HEADER_PREFIX + self.algorithm: self.value} if self.value else {}


def stored_checksum(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """(algorithm, value) of the checksum kept among an object's stored headers, or None."""
    for name, value in headers.items():
        if name.startswith(HEADER_PREFIX) and name[len(HEADER_PREFIX):] in FACTORIES:
            return name[len(HEADER_PREFIX):], value
    return None


def default_type(algorithm: str) -> str:
    """The multipart checksum type S3 uses when CreateMultipartUpload names only the algorithm."""
    return FULL_OBJECT if algorithm == "crc64nvme" else COMPOSITE


def full_object(algorithm: str, parts: list[tuple[str, int]]) -> str:
    """The FULL_OBJECT checksum of a multipart object from its parts' (base64 CRC, size), in order: the
    CRC of the whole object, combined from the parts' (no data read)."""
    combine: Callable[[int, int, int], int] = getattr(_crt(), _COMBINE[algorithm])
    value = 0
    for i, (b64, size) in enumerate(parts):
        crc = int.from_bytes(base64.b64decode(b64), "big")
        value = crc if i == 0 else combine(value, crc, size)
    return base64.b64encode(value.to_bytes(SIZES[algorithm], "big")).decode()


def composite(algorithm: str, part_values: list[str]) -> str:
    """S3's COMPOSITE checksum of a multipart object: the checksum of the parts' raw checksums, ``-N``."""
    raw = b"".join(base64.b64decode(v) for v in part_values)
    return f"{base64.b64encode(digest_of(algorithm, raw)).decode()}-{len(part_values)}"

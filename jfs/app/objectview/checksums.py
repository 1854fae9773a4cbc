"""S3's additional checksums (CRC32, CRC32C, SHA-1, SHA-256) as objects keep them: the algorithms, the
slot a verified payload's checksum lands in, and the COMPOSITE checksum of a multipart object.

CRC32 comes from `zlib`, CRC32C from the `crc32c` package (hardware-accelerated), the SHAs from `hashlib`;
all release the GIL on big buffers. A stored checksum travels in the object's record as the header
``x-amz-checksum-<algorithm>`` (base64, ``-N`` appended for a multipart object's composite).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import crc32c

HEADER_PREFIX = "x-amz-checksum-"


class _Crc:
    """A CRC with hashlib's update/digest (4 bytes, big-endian, as S3 encodes it)."""

    def __init__(self, fn: Callable[[bytes, int], int]) -> None:
        self._fn = fn
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = self._fn(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


def _crc32c(data: bytes, value: int) -> int:
    return int(crc32c.crc32c(data, value))


FACTORIES: dict[str, Callable[[], Any]] = {
    "crc32": lambda: _Crc(zlib.crc32),
    "crc32c": lambda: _Crc(_crc32c),
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
}
"""Algorithm name (as in the header) → a new hasher with ``update``/``digest``."""
SIZES = {"crc32": 4, "crc32c": 4, "sha1": 20, "sha256": 32}


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


def composite(algorithm: str, part_values: list[str]) -> str:
    """S3's COMPOSITE checksum of a multipart object: the checksum of the parts' raw checksums, ``-N``."""
    raw = b"".join(base64.b64decode(v) for v in part_values)
    return f"{base64.b64encode(digest_of(algorithm, raw)).decode()}-{len(part_values)}"

"""S3's additional payload checksums (``x-amz-checksum-crc32`` / ``crc32c`` / ``crc64nvme`` / ``sha1`` /
``sha256``): the
one a request declares (a header, or an aws-chunked trailer named by ``x-amz-trailer``), computed while the
body streams and compared at its end (the algorithms: `jfs.app.objectview.checksums`).

A mismatch raises S3Error BadDigest *before the body iterator ends*, so the object is dropped, never
published (`body.digested` feeds the hasher with the payload's other digests).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any

from jfs.adapters.s3gw.errors import S3Error
from jfs.app.objectview.checksums import FACTORIES, HEADER_PREFIX, SIZES, ChecksumSlot


def _decode(algorithm: str, value: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != SIZES[algorithm]:
        raise S3Error("InvalidRequest", f"Value for {HEADER_PREFIX}{algorithm} header is invalid.")
    return raw


class PayloadChecksum:
    """The checksum one request's payload must match: `algorithm`, the expected digest (from a header at
    once, from the trailer when the body ends) and the `slot` the object view stores once it held."""

    def __init__(self, algorithm: str, expected: bytes | None, from_trailer: bool) -> None:
        self.algorithm = algorithm
        self.expected = expected
        self.from_trailer = from_trailer
        self.slot = ChecksumSlot(algorithm)

    def set_trailer(self, name: str, value: str) -> None:
        """A trailer line of the aws-chunked body (others than the announced checksum are ignored)."""
        if name.strip().lower() == HEADER_PREFIX + self.algorithm:
            self.expected = _decode(self.algorithm, value)


_NOT_VALUES = frozenset({"mode", "algorithm", "type"})
"""``x-amz-checksum-<these>`` headers name a mode or an algorithm: they carry no checksum."""


def from_request(headers: Mapping[str, str]) -> PayloadChecksum | None:
    """The checksum a request declares (a header, or ``x-amz-trailer``); None for none. InvalidRequest for
    two, an unknown algorithm or a malformed value."""
    declared = [(n.lower()[len(HEADER_PREFIX):], v) for n, v in headers.items()
                if n.lower().startswith(HEADER_PREFIX) and n.lower()[len(HEADER_PREFIX):] not in _NOT_VALUES]
    trailer = headers.get("x-amz-trailer", "").strip().lower()
    if trailer:
        if not trailer.startswith(HEADER_PREFIX) or declared:
            raise S3Error("InvalidRequest", "The x-amz-trailer header is not a single x-amz-checksum-* name.")
        declared = [(trailer[len(HEADER_PREFIX):], "")]
    if not declared:
        return None
    if len(declared) > 1:
        raise S3Error("InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple checksum Types are "
                      "not allowed.")
    algorithm, value = declared[0]
    if algorithm not in FACTORIES:
        raise S3Error("InvalidRequest", f"The {algorithm!r} checksum algorithm is not supported by this gateway.")
    if trailer:
        return PayloadChecksum(algorithm, None, True)
    return PayloadChecksum(algorithm, _decode(algorithm, value), False)


def check(checksum: PayloadChecksum) -> tuple[Any, Callable[[], None]]:
    """A hasher to feed with the whole payload and the check to run at its end: BadDigest unless the
    digest is the expected one (a trailer that never came: InvalidRequest); on success
    `checksum.slot.value` is the base64 digest."""
    h = FACTORIES[checksum.algorithm]()

    def done() -> None:
        got = bytes(h.digest())
        if checksum.expected is None:
            raise S3Error("InvalidRequest", f"The announced trailer {HEADER_PREFIX}{checksum.algorithm} was not sent.")
        if got != checksum.expected:
            raise S3Error("BadDigest", f"The {checksum.algorithm.upper()} you specified did not match the calculated "
                          "checksum.")
        checksum.slot.value = base64.b64encode(got).decode()

    return h, done


def object_checksum(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """(algorithm, base64) of the whole-object checksum a CompleteMultipartUpload declares in an
    ``x-amz-checksum-<algorithm>`` header (a composite's ``-N`` is kept), or None; InvalidRequest as
    `from_request`."""
    values = {k.lower(): v.strip() for k, v in headers.items()
              if k.lower().startswith(HEADER_PREFIX) and k.lower()[len(HEADER_PREFIX):] not in _NOT_VALUES}
    declared = from_request({k: v.partition("-")[0] for k, v in values.items()})
    if declared is None:
        return None
    return declared.algorithm, values[HEADER_PREFIX + declared.algorithm]

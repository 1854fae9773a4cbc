"""AWS Signature Version 4 pieces shared by both sides of S3: the gateway that verifies requests
(`jfs.adapters.s3gw.sigv4`) and the object-store client that signs its block requests
(`jfs.adapters.objects.s3_requests`). Pure computation."""

from __future__ import annotations

import functools
import hashlib
import hmac


@functools.lru_cache(maxsize=64)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 key of one day (``YYYYMMDD``), region and service. Cached: it is the same for every
    request of a day, and four HMACs a request are a measurable share of a small request's CPU."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key

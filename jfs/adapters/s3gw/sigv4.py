"""AWS Signature Version 4 verification: the Authorization header and presigned URLs.

The canonical request is rebuilt from the request as received (path and query decoded, then encoded the
AWS way), signed with the key derived from the secret, and compared in constant time. The primitives are
the standard library's `hmac`/`hashlib` (ADR 0011: botocore signs, it has no verifier; the tests check
this module against botocore-signed requests). What the body must still satisfy is returned as `Signed`
(a SHA-256 to match, or the seed signature of an aws-chunked stream).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from jfs.adapters.s3gw.errors import S3Error
from jfs.domain.sigv4 import signing_key

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
MAX_SKEW = 15 * 60
MAX_EXPIRES = 7 * 24 * 3600
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_V2_SUBRESOURCES = frozenset({
    "acl", "cors", "delete", "lifecycle", "location", "logging", "notification", "partNumber", "policy",
    "requestPayment", "restore", "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning", "versions",
    "website", "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires"})


def _header_names(headers: Callable[[str], Sequence[str]]) -> Sequence[str]:
    names = getattr(headers, "names", None)
    return list(names()) if callable(names) else []


@dataclass(frozen=True, slots=True)
class Signed:
    """A verified request: what its payload must match."""

    payload: str
    """The x-amz-content-sha256 value: a hex SHA-256, UNSIGNED-PAYLOAD or a STREAMING-… mode."""
    signing_key: bytes
    amz_date: str
    scope: str
    signature: str
    """The request's signature (the seed of an aws-chunked stream's chunk signatures)."""

    def chunk_signature(self, previous: str, chunk_sha256: str) -> str:
        text = "\n".join(("AWS4-HMAC-SHA256-PAYLOAD", self.amz_date, self.scope, previous, EMPTY_SHA256,
                          chunk_sha256))
        return hmac.new(self.signing_key, text.encode(), hashlib.sha256).hexdigest()

    def trailer_signature(self, previous: str, trailers: list[tuple[str, str]]) -> str:
        """The ``x-amz-trailer-signature`` of a signed aws-chunked stream's trailer headers: chained to
        `previous` (the final 0-byte chunk's signature), over the SHA-256 of the headers in canonical form
        (``name:value\n`` each, name lower-case, value trimmed, sorted by name; the signature itself
        excluded)."""
        canonical = "".join(f"{n}:{v}\n" for n, v in sorted((n.strip().lower(), v.strip()) for n, v in trailers))
        text = "\n".join(("AWS4-HMAC-SHA256-TRAILER", self.amz_date, self.scope, previous,
                          hashlib.sha256(canonical.encode()).hexdigest()))
        return hmac.new(self.signing_key, text.encode(), hashlib.sha256).hexdigest()


def _uri_encode(text: str, safe: str = "") -> str:
    return quote(text, safe=safe + "~")


def canonical_query(raw_query: str, skip: str = "") -> str:
    pairs = []
    for item in raw_query.split("&") if raw_query else ():
        k, _, v = item.partition("=")
        k, v = unquote(k), unquote(v)
        if k != skip:
            pairs.append((_uri_encode(k), _uri_encode(v)))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(method: str, raw_path: str, raw_query: str, headers: Callable[[str], Sequence[str]],
                      signed_headers: list[str], payload: str, skip_query: str = "") -> str:
    lines = []
    for name in signed_headers:
        values = headers(name)
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}\n")
    return "\n".join((method, raw_path, canonical_query(raw_query, skip_query), "".join(lines),
                      ";".join(signed_headers), payload))


def canonical_paths(raw_path: str) -> list[str]:
    """The path as the client may have signed it: re-encoded the AWS way, or exactly as sent (clients
    that leave ``+``, ``!`` … unencoded sign them so)."""
    encoded = _uri_encode(unquote(raw_path), "/")
    return [encoded] if encoded == raw_path else [encoded, raw_path]


def _parse_time(stamp: str) -> float:
    """Seconds since the epoch of an ISO 8601 basic UTC stamp (``20130524T000000Z``); parsed by hand:
    `strptime` costs more than the rest of a signature check."""
    try:
        if len(stamp) != 16 or stamp[8] != "T" or stamp[15] != "Z" or not (stamp[:8] + stamp[9:15]).isdigit():
            raise ValueError(stamp)
        return datetime(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[9:11]), int(stamp[11:13]),
                        int(stamp[13:15]), tzinfo=UTC).timestamp()
    except ValueError:
        raise S3Error("AccessDenied", "The request date is not in ISO 8601 basic format (X-Amz-Date).") from None


class Verifier:
    """Checks requests against one credential pair (`keys`: access key → secret key)."""

    def __init__(self, keys: Mapping[str, str], clock: Callable[[], float] = time.time) -> None:
        self.keys = dict(keys)
        self.clock = clock

    def _secret(self, access_key: str) -> str:
        secret = self.keys.get(access_key)
        if secret is None:
            raise S3Error("InvalidAccessKeyId", "The Access Key Id you provided does not exist in our records.")
        return secret

    def _credential(self, credential: str) -> tuple[str, str, str, str, str]:
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise S3Error("AuthorizationHeaderMalformed", f"The credential {credential!r} is malformed.")
        return parts[0], parts[1], parts[2], parts[3], "/".join(parts[1:])

    def verify(self, method: str, raw_path: str, raw_query: str, headers: Callable[[str], Sequence[str]],
               query: Mapping[str, str]) -> Signed:
        """Verify a request (header-signed or presigned); S3Error AccessDenied when it is neither."""
        auth = (headers("authorization") or [""])[0]
        if auth.startswith(ALGORITHM + " "):
            return self._verify_header(method, raw_path, raw_query, headers, auth)
        if query.get("X-Amz-Algorithm") == ALGORITHM:
            return self._verify_presigned(method, raw_path, raw_query, headers, query)
        if auth.startswith("AWS ") or ("Signature" in query and "AWSAccessKeyId" in query):
            return self._verify_v2(method, raw_path, headers, query, auth)
        if auth or "Signature" in query or query.get("X-Amz-Algorithm"):
            raise S3Error("AccessDenied", "Unsupported authorization: sign with AWS Signature Version 4.")
        raise S3Error("AccessDenied", "Anonymous requests are not allowed: sign them with your access key.")

    def _verify_header(self, method: str, raw_path: str, raw_query: str,
                       headers: Callable[[str], Sequence[str]], auth: str) -> Signed:
        fields: dict[str, str] = {}
        for item in auth[len(ALGORITHM):].split(","):
            k, sep, v = item.strip().partition("=")
            if sep:
                fields[k] = v
        if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
            raise S3Error("AuthorizationHeaderMalformed", "The authorization header is malformed.")
        access_key, date, region, service, scope = self._credential(fields["Credential"])
        secret = self._secret(access_key)
        amz_date = (headers("x-amz-date") or [""])[0]
        if not amz_date:
            raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
        when = _parse_time(amz_date)
        if abs(self.clock() - when) > MAX_SKEW:
            raise S3Error("RequestTimeTooSkewed",
                          "The difference between the request time and the server's time is too large.")
        if not amz_date.startswith(date):
            raise S3Error("AuthorizationHeaderMalformed", "The credential date does not match x-amz-date.")
        payload = (headers("x-amz-content-sha256") or [""])[0]
        if not payload:
            raise S3Error("InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
        if payload not in (UNSIGNED, STREAMING, STREAMING_TRAILER, STREAMING_UNSIGNED_TRAILER) and \
                not _HEX64.match(payload):
            raise S3Error("InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-… or a "
                          "SHA-256 in hex.")
        signed_headers = fields["SignedHeaders"].split(";")
        if "host" not in signed_headers:
            raise S3Error("AccessDenied", "The host header must be signed.")
        key = signing_key(secret, date, region, service)
        expected = self._match(key, amz_date, scope, fields["Signature"], [
            canonical_request(method, p, raw_query, headers, signed_headers, payload) for p in canonical_paths(raw_path)])
        if expected is None:
            raise S3Error("SignatureDoesNotMatch", "The request signature we calculated does not match the "
                          "signature you provided. Check your key and signing method.")
        return Signed(payload, key, amz_date, scope, expected)

    def _verify_presigned(self, method: str, raw_path: str, raw_query: str,
                          headers: Callable[[str], Sequence[str]], query: Mapping[str, str]) -> Signed:
        for name in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"):
            if name not in query:
                raise S3Error("AuthorizationQueryParametersError", f"Query-string authentication requires {name}.")
        access_key, date, region, service, scope = self._credential(query["X-Amz-Credential"])
        secret = self._secret(access_key)
        amz_date = query["X-Amz-Date"]
        when = _parse_time(amz_date)
        try:
            expires = int(query["X-Amz-Expires"])
        except ValueError:
            raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires must be a number.") from None
        if not 0 <= expires <= MAX_EXPIRES:
            raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires must be between 0 and 604800.")
        now = self.clock()
        if when - now > MAX_SKEW:
            raise S3Error("AccessDenied", "Request is not valid yet.")
        if now > when + expires:
            raise S3Error("AccessDenied", "Request has expired.")
        signed_headers = query["X-Amz-SignedHeaders"].split(";")
        payload = query.get("X-Amz-Content-Sha256", UNSIGNED)
        key = signing_key(secret, date, region, service)
        expected = self._match(key, amz_date, scope, query["X-Amz-Signature"], [
            canonical_request(method, p, raw_query, headers, signed_headers, payload, skip_query="X-Amz-Signature")
            for p in canonical_paths(raw_path)])
        if expected is None:
            raise S3Error("SignatureDoesNotMatch", "The request signature we calculated does not match the "
                          "signature you provided. Check your key and signing method.")
        return Signed(payload, key, amz_date, scope, expected)

    def _verify_v2(self, method: str, raw_path: str, headers: Callable[[str], Sequence[str]],
                   query: Mapping[str, str], auth: str) -> Signed:
        """Signature Version 2, still what `aws s3 presign` and boto3's default presigned URLs use."""
        def header(name: str) -> str:
            return ",".join(headers(name))

        if auth:
            access_key, _, signature = auth[4:].strip().rpartition(":")
            date = "" if headers("x-amz-date") else header("date")
            when = email.utils.parsedate_to_datetime(header("x-amz-date") or date).timestamp() \
                if (header("x-amz-date") or date) else None
            if when is None:
                raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
            if abs(self.clock() - when) > MAX_SKEW:
                raise S3Error("RequestTimeTooSkewed",
                              "The difference between the request time and the server's time is too large.")
        else:
            access_key, signature, date = query["AWSAccessKeyId"], query["Signature"], query.get("Expires", "")
            try:
                expires = int(date)
            except ValueError:
                raise S3Error("AccessDenied", "Expires must be a number of seconds since the epoch.") from None
            if self.clock() > expires:
                raise S3Error("AccessDenied", "Request has expired.")
        secret = self._secret(access_key)
        amz = sorted((name, header(name)) for name in {n.lower() for n in _header_names(headers)}
                     if name.startswith("x-amz-"))
        sub = sorted((k, v) for k, v in query.items() if k in _V2_SUBRESOURCES)
        resource = raw_path + ("?" + "&".join(f"{k}={v}" if v else k for k, v in sub) if sub else "")
        text = "\n".join((method, header("content-md5"), header("content-type"), date, "")) + \
            "".join(f"{k}:{v}\n" for k, v in amz) + resource
        expected = base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            raise S3Error("SignatureDoesNotMatch", "The request signature we calculated does not match the "
                          "signature you provided. Check your key and signing method.")
        return Signed(UNSIGNED, b"", "", "", signature)

    def _match(self, key: bytes, amz_date: str, scope: str, signature: str, requests: list[str]) -> str | None:
        """The signature of the first canonical request that matches `signature` (constant-time compares)."""
        found = None
        for creq in requests:
            expected = self._sign(key, amz_date, scope, creq)
            if hmac.compare_digest(expected, signature) and found is None:
                found = expected
        return found

    @staticmethod
    def _sign(key: bytes, amz_date: str, scope: str, creq: str) -> str:
        text = "\n".join((ALGORITHM, amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()))
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

"""`ObjectRequests`: S3 GetObject / PutObject / DeleteObjects without boto3's per-request machinery (ADRs
0036, 0049).

A boto3 call costs ~1.5 ms of CPU under the interpreter lock whatever the body size (parameter validation,
endpoint rules, event hooks, retry bookkeeping, response parsing): a 4 KiB block written at random cost more
there than anywhere else in the mount, and every such call delayed the event loop. The two requests the data
path makes per block are sent here instead (and the DeleteObjects that frees blocks, so that a mount that
only reads, writes and deletes blocks never builds a boto3 client — ~30 MiB of RSS, ADR 0049): SigV4-signed (the signing key cached per day), over one urllib3
connection pool, retried like botocore's "standard" mode (`S3_REQUEST_ATTEMPTS` attempts in total on
5xx, throttling, timeouts and dropped connections, jittered exponential back-off).

Errors are raised as botocore would raise them (`ClientError` with the S3 error code and HTTP status;
`EndpointConnectionError` / `ConnectTimeoutError` for an unreachable endpoint; `ReadTimeoutError` /
`ConnectionClosedError` otherwise), so that `S3Store`'s one mapping to the port applies unchanged.

A PUT's body is not hashed: ``x-amz-content-sha256: UNSIGNED-PAYLOAD`` over http as over https, as JuiceFS
1.4 sends it (ADR 0049) — a SHA-256 of every uploaded byte cost ~0.6 ms of CPU per MiB, a fifth of the
mount's CPU per GiB written to S3. Over https TLS protects the body; over http only a client that asks for it
(``signed_payload``, ``JFS_S3_SIGNED_PAYLOAD=true`` in `S3Store`) signs the hash, as botocore does. Small
request bodies (DeleteObjects) are always signed. Objects are declared ``application/octet-stream`` (ADR
0068): a server left to guess the type may compress blocks it finds compressible, at its CPU's expense.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import random
import time
from typing import Any, cast
from urllib.parse import quote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import urllib3
from botocore.exceptions import (  # type: ignore[import-untyped]
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)

from jfs.domain.sigv4 import signing_key

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
RETRY_STATUS = frozenset({500, 502, 503, 504})
RETRY_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "SlowDown", "RequestLimitExceeded", "RequestThrottled",
    "RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable",
})  # fmt: skip
MAX_BACKOFF = 20.0
BLOCK_CONTENT_TYPE = "application/octet-stream"
"""The Content-Type of every object written (as JuiceFS 1.4 sends it, ADR 0068). Without one a server may
guess: SeaweedFS sniffs the body and, for an unknown type, gzips the whole object when its first 128 bytes
compress (each such block then costs a compression on PUT and a decompression on every GET, ranged or not)."""


class Credentials:
    """Static credentials (access key, secret key, optional session token)."""

    def __init__(self, access_key: str, secret_key: str, token: str = "") -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.token = token


class ObjectRequests:
    """Signed GET/PUT of single objects of one bucket; thread-safe (called from `S3Store`'s pool)."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        region: str,
        style: str,
        credentials: Credentials,
        *,
        max_connections: int,
        attempts: int,
        connect_timeout: float,
        read_timeout: float,
        verify: bool | str | None,
        signed_payload: bool = False,
    ) -> None:
        """`endpoint`: ``http(s)://host[:port]``; `style`: "path" or "virtual" addressing; `verify`: a CA
        bundle path, False (no check) or None (botocore's bundle); `signed_payload`: sign the SHA-256 of
        PUT bodies over http (else ``UNSIGNED-PAYLOAD``)."""
        self.scheme, _, hostport = endpoint.partition("://")
        self.host = f"{bucket}.{hostport}" if style == "virtual" else hostport
        self._prefix = "/" if style == "virtual" else f"/{quote(bucket, safe='')}/"
        self.region = region
        self.creds = credentials
        self.attempts = max(1, attempts)
        self._https = self.scheme == "https"
        self._sign_puts = signed_payload and not self._https
        timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        kwargs: dict[str, Any] = {"maxsize": max_connections, "block": False, "timeout": timeout, "retries": False}
        if self._https:
            if verify is False:
                kwargs["cert_reqs"] = "CERT_NONE"
            else:
                from botocore.httpsession import get_cert_path  # type: ignore[import-untyped]

                kwargs["cert_reqs"] = "CERT_REQUIRED"
                kwargs["ca_certs"] = verify if isinstance(verify, str) else get_cert_path(True)
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning) if verify is False else None
        self._pool = urllib3.connection_from_url(f"{self.scheme}://{self.host}", **kwargs)

    # -- signing ---------------------------------------------------------------------------------------

    def signed_headers(
        self, method: str, path: str, payload_hash: str, extra: dict[str, str], query: str = ""
    ) -> dict[str, str]:
        """The request's headers with SigV4 authorization (`extra` is sent but not signed; `query`: the
        canonical query string, ``name=value`` pairs sorted and encoded)."""
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        signed = {"host": self.host, "x-amz-content-sha256": payload_hash, "x-amz-date": stamp}
        if self.creds.token:
            signed["x-amz-security-token"] = self.creds.token
        names = ";".join(sorted(signed))
        canonical = "\n".join((
            method, path, query, *(f"{k}:{signed[k]}" for k in sorted(signed)), "", names, payload_hash,
        ))  # fmt: skip
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(signing_key(self.creds.secret_key, day, self.region, "s3"), to_sign.encode(), hashlib.sha256).hexdigest()
        headers = dict(signed)
        headers.update(extra)
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.creds.access_key}/{scope}, SignedHeaders={names}, "
            f"Signature={signature}"
        )
        return headers

    def object_path(self, key: str) -> str:
        """The request path of object `key` (of the bucket itself for "")."""
        return self._prefix + quote(key, safe="/~") if key else self._prefix.rstrip("/") or "/"

    @property
    def signs_puts(self) -> bool:
        """Whether PUT bodies are hashed into the signature (else ``UNSIGNED-PAYLOAD``)."""
        return self._sign_puts

    # -- requests --------------------------------------------------------------------------------------

    def put(self, key: str, body: bytes | bytearray) -> None:
        """PutObject `key` with `body`, declared ``application/octet-stream`` (`BLOCK_CONTENT_TYPE`)."""
        payload = hashlib.sha256(body).hexdigest() if self._sign_puts else "UNSIGNED-PAYLOAD"
        extra = {"content-length": str(len(body)), "content-type": BLOCK_CONTENT_TYPE}
        self._request("PutObject", "PUT", key, body, payload, extra)

    def get(self, key: str, byte_range: str | None = None) -> tuple[bytes, bool]:
        """GetObject `key` (with a ``bytes=a-b`` `byte_range`): (body, whether the server honoured the
        range — a 206 answer)."""
        extra = {"range": byte_range} if byte_range else {}
        status, data = self._request("GetObject", "GET", key, None, EMPTY_SHA256, extra)
        return data, status == 206

    def delete_many(self, keys: list[str]) -> list[dict[str, str]]:
        """DeleteObjects (quiet) of `keys` (at most 1,000): the per-key failures, as boto3 returns them
        (``{"Key", "Code", "Message"}``); a key that did not exist is deleted. The request as a whole
        failing raises like `get`/`put` (a server without DeleteObjects: a `ClientError`)."""
        objects = "".join(f"<Object><Key>{escape(k)}</Key></Object>" for k in keys)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Quiet>true</Quiet>{objects}</Delete>"
        ).encode()
        payload = "UNSIGNED-PAYLOAD" if self._https else hashlib.sha256(body).hexdigest()
        extra = {
            "content-length": str(len(body)),
            "content-md5": base64.b64encode(hashlib.md5(body).digest()).decode(),  # S3 requires it here
            "content-type": "application/xml",
        }
        _, data = self._request("DeleteObjects", "POST", "", body, payload, extra, query="delete=")
        errors: list[dict[str, str]] = []
        if data:
            root = ElementTree.fromstring(data)
            for el in root:
                if el.tag.rpartition("}")[2] == "Error":
                    fields = {c.tag.rpartition("}")[2]: c.text or "" for c in el}
                    errors.append({n: fields.get(n, "") for n in ("Key", "Code", "Message")})
        return errors

    def _request(
        self, op: str, method: str, key: str, body: bytes | bytearray | None, payload: str, extra: dict[str, str],
        query: str = "",
    ) -> tuple[int, bytes]:
        path = self.object_path(key)
        url = f"{path}?{query}" if query else path
        attempt = 0
        while True:
            attempt += 1
            headers = self.signed_headers(method, path, payload, extra, query)
            try:
                resp = self._pool.urlopen(
                    method, url, body=cast(Any, body), headers=headers, retries=False, redirect=False,
                    preload_content=False, assert_same_host=False,
                )  # fmt: skip
            except urllib3.exceptions.HTTPError as exc:
                error = self._connection_error(exc)
                if attempt >= self.attempts or isinstance(error, SSLError):  # a certificate does not heal
                    raise error from exc
            else:
                data = self._body(resp)
                if resp.status < 300:
                    return resp.status, data
                error = _client_error(op, resp.status, data, resp.headers)
                code = error.response["Error"]["Code"]
                if attempt >= self.attempts or not (resp.status in RETRY_STATUS or code in RETRY_CODES):
                    raise error
            time.sleep(min(MAX_BACKOFF, random.random() * 2 ** (attempt - 1)))

    def _body(self, resp: Any) -> bytes:
        """The whole body of `resp`. One that breaks off is not re-sent here (as with botocore, whose retries
        end with the headers): `ResponseStreamingError`, one failed attempt of the caller's budget."""
        try:
            data: bytes = resp.read()
        except urllib3.exceptions.HTTPError as exc:
            resp.drain_conn()
            raise ResponseStreamingError(error=exc) from exc
        finally:
            resp.release_conn()
        return data

    def _connection_error(self, exc: urllib3.exceptions.HTTPError) -> Exception:
        url = f"{self.scheme}://{self.host}"
        if isinstance(exc, urllib3.exceptions.MaxRetryError) and isinstance(exc.reason, urllib3.exceptions.HTTPError):
            return self._connection_error(exc.reason)
        error: Exception
        # NewConnectionError subclasses ConnectTimeoutError in urllib3: tested first.
        if isinstance(exc, urllib3.exceptions.SSLError):  # e.g. certificate verify failed: not retried by callers
            error = SSLError(endpoint_url=url, error=exc)
        elif isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.NameResolutionError):
            error = EndpointConnectionError(endpoint_url=url, error=exc)
        elif isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
            error = ConnectTimeoutError(endpoint_url=url, error=exc)
        elif isinstance(exc, urllib3.exceptions.ReadTimeoutError):
            error = ReadTimeoutError(endpoint_url=url, error=exc)
        else:
            error = ConnectionClosedError(endpoint_url=url, error=exc)
        return error

    def close(self) -> None:
        self._pool.close()


def _client_error(op: str, status: int, body: bytes, headers: Any) -> ClientError:
    """botocore's ClientError for an error answer (code and message from the XML body when there is one)."""
    code, message = "", ""
    if body:
        try:
            root = ElementTree.fromstring(body)
            code = root.findtext("Code") or ""
            message = root.findtext("Message") or ""
        except ElementTree.ParseError:
            message = body[:200].decode("utf-8", "replace")
    response = {
        "Error": {"Code": code or str(status), "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": dict(headers)},
    }
    return ClientError(response, op)

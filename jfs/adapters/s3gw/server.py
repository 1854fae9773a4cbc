"""The S3 HTTP front: aiohttp's server, each request authenticated (SigV4) then translated into one call
of `jfs.app.objectview` and its answer rendered (headers, XML, streamed bytes).

Errors: an `ObjectError` becomes S3's XML error with its HTTP status; an engine or object-store failure is
logged in one line and answered 503 ServiceUnavailable; anything else is one log line and 500
InternalError. Request bodies stream in block-sized pieces (`body.PIECE`, 4 MiB: each a buffer the data
path uploads as is), responses in pieces of 1 MiB (`ObjectReader.chunks`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import email.utils
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import structlog
from aiohttp import web

from jfs.adapters.malloc_tuning import keep_block_buffers
from jfs.adapters.s3gw import checksums, xmlio
from jfs.adapters.s3gw.body import PIECE, chunked_body, coalesce, digested, plain_body
from jfs.adapters.s3gw.direct import DirectBody
from jfs.adapters.s3gw.direct import take as take_body
from jfs.adapters.s3gw.errors import S3Error, error_xml, status_of
from jfs.adapters.s3gw.sigv4 import UNSIGNED, Signed, Verifier
from jfs.app.objectview import (
    Multipart,
    NewObject,
    ObjectError,
    ObjectInfo,
    ObjectView,
    list_objects,
)
from jfs.app.objectview.checksums import HEADER_PREFIX, ChecksumSlot, stored_checksum
from jfs.app.objectview.service import STANDARD_HEADERS, fs_error
from jfs.domain.errors import FSError
from jfs.ports.kv import KVError
from jfs.ports.objects import ObjectStoreError

log = structlog.get_logger("jfs.gateway")

GET_PIECE = 1 << 20
"""Bytes read from the volume and written to the client at a time while several GETs are being sent
(whole 4 MiB blocks measured no cheaper with 8 clients, and a client's socket then buffers up to 4 MiB
more)."""
GET_PIECE_ALONE = 4 << 20
"""The same when at most `ALONE` GETs are being sent: one read and one write per 4 MiB block, where the
per-piece work is what a lone stream waits for (1 client: 0.64-0.80 s of CPU per GiB served against
0.88-1.04 with 1 MiB pieces, 6 alternating pairs, ADR 0040)."""
ALONE = 2
MAX_PUT = 5 << 30
"""S3's limit for one PutObject / UploadPart."""
MAX_META = 2048
HEALTH = ("/minio/health/live", "/minio/health/ready", "/health")
RESPONSE_OVERRIDES = {"response-content-type": "Content-Type", "response-content-language": "Content-Language",
                      "response-expires": "Expires", "response-cache-control": "Cache-Control",
                      "response-content-disposition": "Content-Disposition",
                      "response-content-encoding": "Content-Encoding"}
XML = "application/xml"


RECV_SIZE = 1 << 20
"""Bytes asked of each ``recv`` on a plain-TCP connection (asyncio's selector transport asks 256 KiB): when
the loop is busy an upload's data waits in the socket, and one call takes more of it, so a body costs
fewer receive calls, parser callbacks and stream wake-ups in Python."""


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    read_timeout: float = 60.0
    """Seconds a client may stall while sending a body or receiving one."""


def _http_date(ns: int) -> str:
    return email.utils.format_datetime(datetime.fromtimestamp(ns // 1_000_000_000, UTC), usegmt=True)


def _parse_http_date(text: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _query(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in raw.split("&") if raw else ():
        k, _, v = item.partition("=")
        out.setdefault(unquote(k), unquote(v))
    return out


def _etag_matches(header: str, etag: str) -> bool:
    return any(t.strip() in ("*", f'"{etag}"', etag) for t in header.split(","))


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, end) of a single ``bytes=`` range; None to serve the whole object (absent or not a single
    valid range, as S3 does); S3Error InvalidRange when it cannot be satisfied."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    if not sep:
        return None
    try:
        if not first:
            n = int(last)
            if n <= 0:
                raise S3Error("InvalidRange", "The requested range is not satisfiable.")
            return max(0, size - n), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start < 0 or (last and end <= start):
        return None
    if start >= size:
        raise S3Error("InvalidRange", "The requested range is not satisfiable.")
    return start, min(end, size)


def _check_sha256(sha: Any, expected: str) -> None:
    if sha.hexdigest() != expected:
        raise S3Error("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match "
                      "what was computed.")


def _new_object(request: web.BaseRequest) -> NewObject:
    meta: dict[str, str] = {}
    total = 0
    for name, value in request.headers.items():
        low = name.lower()
        if low.startswith("x-amz-meta-"):
            key = low[len("x-amz-meta-"):]
            meta[key] = value
            total += len(key) + len(value)
    if total > MAX_META:
        raise S3Error("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.")
    headers = {h: request.headers[h] for h in STANDARD_HEADERS if h in request.headers}
    md5 = None
    if "Content-MD5" in request.headers:
        try:
            md5 = base64.b64decode(request.headers["Content-MD5"], validate=True)
        except (binascii.Error, ValueError):
            md5 = b""
        if len(md5) != 16:
            raise S3Error("InvalidDigest", "The Content-MD5 you specified is not valid.")
    return NewObject(headers, meta, md5)


def _object_headers(info: ObjectInfo, checksum_mode: bool = False) -> dict[str, str]:
    """The headers of a GET/HEAD answer; the stored additional checksum only with `checksum_mode` (the
    request's ``x-amz-checksum-mode: ENABLED``, for the whole object, as S3)."""
    headers = {"ETag": f'"{info.etag}"', "Last-Modified": _http_date(info.mtime_ns), "Accept-Ranges": "bytes",
               "Content-Type": "binary/octet-stream"}
    for name, value in info.headers.items():
        if name.startswith(HEADER_PREFIX):
            if checksum_mode:
                headers[name] = value
                headers["x-amz-checksum-type"] = "COMPOSITE" if "-" in value else "FULL_OBJECT"
            continue
        headers["-".join(w.capitalize() for w in name.split("-"))] = value
    for name, value in info.meta.items():
        headers[f"x-amz-meta-{name}"] = value
    return headers


class _Headers:
    """A request's headers as the verifier reads them: every value of a name; `names()`."""

    def __init__(self, headers: Any) -> None:
        self._h = headers

    def __call__(self, name: str) -> list[str]:
        return list(self._h.getall(name, []))

    def names(self) -> list[str]:
        return list(self._h.keys())


class Gateway:
    """Serves S3 requests for one `ObjectView`."""

    def __init__(self, view: ObjectView, config: GatewayConfig, clock: Callable[[], float] = time.time) -> None:
        self.view = view
        self.multipart = Multipart(view)
        self.config = config
        self.verifier = Verifier({config.access_key: config.secret_key}, clock)
        self._direct: dict[int, DirectBody] = {}
        self._sending = 0
        """GET bodies being sent now (`GET_PIECE_ALONE`)."""
        """The bodies being received directly (`direct.take`), by id of their request."""

    # ------------------------------------------------------------------ plumbing

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            resp = await self._handle(request)
        except BaseException:
            direct = self._direct.pop(id(request), None)
            if direct is not None:
                direct.close()
            raise
        direct = self._direct.pop(id(request), None)
        if direct is not None and not direct.close():
            resp.force_close()  # the body was not read to its end: the connection cannot go on
        return resp

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        if transport is not None and getattr(transport, "max_size", RECV_SIZE) < RECV_SIZE:
            transport.max_size = RECV_SIZE  # type: ignore[attr-defined]
        rid = uuid.uuid4().hex[:16].upper()
        path = request.raw_path.partition("?")[0]
        try:
            resp = await self._dispatch(request)
        except ObjectError as exc:
            return self._error(request, exc, unquote(path), rid)
        except FSError as exc:
            return self._error(request, fs_error(exc, writing=request.method in ("PUT", "POST", "DELETE")),
                               unquote(path), rid)
        except (KVError, ObjectStoreError) as exc:
            log.error("backend_unavailable", method=request.method, path=path, error=str(exc))
            return self._error(request, S3Error("ServiceUnavailable", "The volume's backend is unavailable; retry."),
                               unquote(path), rid)
        except (ConnectionError, web.HTTPException):
            raise
        except Exception as exc:  # one line, the gateway keeps serving
            log.error("request_failed", method=request.method, path=path, error=f"{type(exc).__name__}: {exc}")
            return self._error(request, S3Error("InternalError", "We encountered an internal error. Please try again."),
                               unquote(path), rid)
        resp.headers.setdefault("x-amz-request-id", rid)
        return resp

    def _error(self, request: web.BaseRequest, exc: ObjectError, resource: str, rid: str) -> web.Response:
        status = status_of(exc.code)
        headers = {"x-amz-request-id": rid}
        if request.method == "HEAD" or status == 304:
            resp = web.Response(status=status, headers=headers)
        else:
            resp = web.Response(status=status, body=error_xml(exc, resource, rid), content_type=XML, headers=headers)
        if request.body_exists and not request.content.is_eof():
            # The body was refused unread: the connection cannot carry another request after it.
            resp.force_close()
        return resp

    def _body(self, request: web.BaseRequest, signed: Signed, declared: bool = True
              ) -> tuple[AsyncIterator[bytes], ChecksumSlot | None, Any]:
        """The request's payload in pieces of `body.PIECE`, checked against its signed SHA-256 and its
        declared checksum before the iterator ends; the slot that holds that checksum once the body
        matched it; and the MD5 of the payload, complete once the iterator has ended (the
        object's ETag: the view need not hash again). All digests of a piece are computed in one
        worker-thread hop. `declared=False`: an ``x-amz-checksum-*`` header is not the payload's (a
        trailer still is)."""
        timeout = self.config.read_timeout
        checksum = checksums.from_request(request.headers if declared else
                                          {k: v for k, v in request.headers.items()
                                           if not k.lower().startswith(HEADER_PREFIX)
                                           or k.lower() == "x-amz-trailer"})
        hashers: list[Any] = []
        checks: list[Callable[[], None]] = []
        raw: AsyncIterator[bytes]
        if signed.payload.startswith("STREAMING-"):
            decoded = request.headers.get("x-amz-decoded-content-length")
            try:
                length = int(decoded) if decoded is not None else None
            except ValueError:
                raise S3Error("InvalidArgument", "x-amz-decoded-content-length is not a number.") from None
            if length is not None and length > MAX_PUT:
                raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.")
            raw = chunked_body(request.content, signed, length, timeout,
                               checksum.set_trailer if checksum is not None else None)
        else:
            if checksum is not None and checksum.from_trailer:
                raise S3Error("InvalidRequest", "x-amz-trailer needs an aws-chunked payload.")
            length = request.content_length
            if length is None and request.headers.get("Transfer-Encoding", "").lower() != "chunked":
                raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.")
            if length is not None and length > MAX_PUT:
                raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.")
            direct = take_body(request, length, PIECE, timeout) if length is not None else None
            if direct is not None:
                self._direct[id(request)] = direct
                raw = direct.pieces()
            else:
                raw = plain_body(request.content, length, None, timeout)
            if signed.payload != UNSIGNED:
                sha = hashlib.sha256()
                hashers.append(sha)
                checks.append(lambda: _check_sha256(sha, signed.payload))
        if checksum is not None:
            h, check = checksums.check(checksum)
            hashers.append(h)
            checks.append(check)
        md5 = hashlib.md5()
        hashers.append(md5)
        if signed.payload.startswith("STREAMING-"):
            raw = coalesce(raw)  # aws-chunked chunks (64 KiB from most SDKs) gathered into block-sized pieces
        return digested(raw, hashers, checks), (checksum.slot if checksum else None), md5

    async def _small_body(self, request: web.BaseRequest, signed: Signed, declared: bool = True) -> bytes:
        data = bytearray()
        body, _, _ = self._body(request, signed, declared)
        async for piece in body:
            data += piece
            if len(data) > xmlio.MAX_XML:
                raise S3Error("MalformedXML", "The XML document is too large.")
        return bytes(data)

    @staticmethod
    def _xml(body: bytes, status: int = 200) -> web.Response:
        return web.Response(status=status, body=body, content_type=XML)

    # ------------------------------------------------------------------ dispatch

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        raw_path, _, raw_query = request.raw_path.partition("?")
        if raw_path in HEALTH and request.method in ("GET", "HEAD"):
            if raw_path.endswith("ready"):
                await self.view.vfs.getattr(self.view.ctx, self.view.root)
            return web.Response(status=200)
        query = _query(raw_query)
        signed = self.verifier.verify(request.method, raw_path, raw_query,
                                      _Headers(request.headers), query)
        if request.headers.get("Expect", "").lower() == "100-continue" and request.version >= (1, 1):
            # Authenticated: let the client send its body (aiohttp's bare server does not answer Expect;
            # boto3 would wait a second for it on every upload).
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        path = unquote(raw_path)
        if not path.startswith("/"):
            raise S3Error("InvalidRequest", "The request path must start with '/'.")
        bucket, _, key = path[1:].partition("/")
        method = request.method
        if not bucket:
            if method == "GET":
                return self._xml(xmlio.list_buckets(await self.view.list_buckets()))
            raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")
        if not key:
            return await self._bucket_op(request, method, bucket, query, signed)
        return await self._object_op(request, method, bucket, key, query, signed)

    async def _bucket_op(self, request: web.BaseRequest, method: str, bucket: str, query: dict[str, str],
                         signed: Signed) -> web.StreamResponse:
        v = self.view
        if method == "HEAD":
            await v.bucket_inode(bucket)
            return web.Response(status=200)
        if method == "PUT":
            if query.keys() & {"versioning", "tagging", "acl", "policy", "lifecycle", "cors"}:
                raise S3Error("NotImplemented", "This bucket configuration is not supported.")
            await v.create_bucket(bucket)
            return web.Response(status=200, headers={"Location": f"/{bucket}"})
        if method == "DELETE":
            await v.delete_bucket(bucket)
            return web.Response(status=204)
        if method == "POST" and "delete" in query:
            keys, quiet = xmlio.parse_delete(await self._small_body(request, signed))
            await v.bucket_inode(bucket)
            deleted, errors = [], []
            for k in keys:
                try:
                    await v.delete_object(bucket, k)
                    deleted.append(k)
                except ObjectError as exc:
                    errors.append((k, exc.code, exc.message))
            return self._xml(xmlio.delete_result(deleted, errors, quiet))
        if method != "GET":
            raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")
        if "location" in query:
            await v.bucket_inode(bucket)
            return self._xml(xmlio.location())
        if "versioning" in query:
            await v.bucket_inode(bucket)
            return self._xml(xmlio.versioning())
        if "uploads" in query:
            prefix = query.get("prefix", "")
            uploads = await self.multipart.list_uploads(bucket, prefix)
            return self._xml(xmlio.list_uploads(bucket, uploads, prefix, self._int(query, "max-uploads", 1000)))
        if query.keys() & {"acl", "policy", "lifecycle", "cors", "tagging", "website", "replication", "encryption",
                           "object-lock", "notification", "logging"}:
            raise S3Error("NotImplemented", "This bucket configuration is not supported.")
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        max_keys = min(self._int(query, "max-keys", 1000), 1000)
        url = query.get("encoding-type") == "url"
        if "versions" in query:
            page = await list_objects(v, bucket, prefix, delimiter, query.get("key-marker", ""), max_keys)
            return self._xml(xmlio.list_versions(bucket, page, prefix, delimiter, max_keys))
        if query.get("list-type") == "2":
            token = query.get("continuation-token", "")
            start_after = query.get("start-after", "")
            marker = start_after
            if token:
                try:
                    marker = base64.urlsafe_b64decode(token.encode()).decode("utf-8", "surrogateescape")
                except (binascii.Error, ValueError):
                    raise S3Error("InvalidArgument", "The continuation token provided is incorrect.") from None
            page = await list_objects(v, bucket, prefix, delimiter, marker, max_keys)
            next_token = base64.urlsafe_b64encode(page.next_marker.encode("utf-8", "surrogateescape")).decode()
            return self._xml(xmlio.list_objects_v2(bucket, page, prefix, delimiter, max_keys, url, token,
                                                   start_after, next_token, query.get("fetch-owner") == "true"))
        marker = query.get("marker", "")
        page = await list_objects(v, bucket, prefix, delimiter, marker, max_keys)
        return self._xml(xmlio.list_objects_v1(bucket, page, prefix, delimiter, marker, max_keys, url))

    @staticmethod
    def _int(query: dict[str, str], name: str, default: int) -> int:
        text = query.get(name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise S3Error("InvalidArgument", f"{name} must be an integer.") from None
        if value < 0:
            raise S3Error("InvalidArgument", f"{name} must not be negative.")
        return value

    def _copy_source(self, request: web.BaseRequest) -> tuple[str, str]:
        # The query (``?versionId=``) is cut before decoding: a key may hold an encoded '?' (%3F).
        src = unquote(request.headers["x-amz-copy-source"].partition("?")[0]).lstrip("/")
        bucket, _, key = src.partition("/")
        if not bucket or not key:
            raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey.")
        return bucket, key

    async def _object_op(self, request: web.BaseRequest, method: str, bucket: str, key: str, query: dict[str, str],
                         signed: Signed) -> web.StreamResponse:
        v, mp = self.view, self.multipart
        upload_id = query.get("uploadId")
        if method == "PUT":
            if upload_id is not None:
                number = self._int(query, "partNumber", 0)
                if "x-amz-copy-source" in request.headers:
                    sb, sk = self._copy_source(request)
                    first = last = None
                    rng = request.headers.get("x-amz-copy-source-range")
                    if rng:
                        try:
                            a, _, b = rng.removeprefix("bytes=").partition("-")
                            first, last = int(a), int(b)
                        except ValueError:
                            raise S3Error("InvalidArgument", "The x-amz-copy-source-range is not valid.") from None
                    etag, mtime = await mp.upload_part_copy(bucket, key, upload_id, number, sb, sk, first, last)
                    return self._xml(xmlio.copy_result(etag, mtime, "CopyPartResult"))
                new = _new_object(request)
                body, slot, md5 = self._body(request, signed)
                etag = await mp.upload_part(bucket, key, upload_id, number, body, new.content_md5, slot, md5)
                return web.Response(status=200, headers={"ETag": f'"{etag}"', **(slot.header() if slot else {})})
            if "tagging" in query:
                tags = xmlio.parse_tagging(await self._small_body(request, signed))
                await v.set_tags(bucket, key, tags)
                return web.Response(status=200)
            if "x-amz-copy-source" in request.headers:
                sb, sk = self._copy_source(request)
                replace = request.headers.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE"
                info = await v.copy_object(sb, sk, bucket, key, _new_object(request) if replace else None)
                return self._xml(xmlio.copy_result(info.etag, info.mtime_ns))
            body, slot, md5 = self._body(request, signed)
            info = await v.put_object(bucket, key, body, dataclasses.replace(_new_object(request), checksum=slot,
                                                                             md5=md5))
            return web.Response(status=200, headers={"ETag": f'"{info.etag}"', **(slot.header() if slot else {})})
        if method == "POST":
            if "uploads" in query:
                declared = mp.checksum_declaration(request.headers.get(HEADER_PREFIX + "algorithm"),
                                                   request.headers.get(HEADER_PREFIX + "type"))
                upload = await mp.create(bucket, key, _new_object(request), declared)
                resp = self._xml(xmlio.initiate(bucket, key, upload))
                if declared is not None:
                    resp.headers[HEADER_PREFIX + "algorithm"] = declared[0].upper()
                    resp.headers[HEADER_PREFIX + "type"] = declared[1]
                return resp
            if upload_id is not None:
                # An x-amz-checksum-* header here is the whole object's, not the XML body's.
                expected = checksums.object_checksum(request.headers)
                wanted = xmlio.parse_complete(await self._small_body(request, signed, declared=False))
                info = await mp.complete(bucket, key, upload_id, wanted, expected)
                return self._xml(xmlio.complete(f"/{bucket}/{key}", bucket, key, info.etag,
                                                stored_checksum(info.headers)))
            raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")
        if method == "DELETE":
            if upload_id is not None:
                await mp.abort(bucket, key, upload_id)
            elif "tagging" in query:
                await v.set_tags(bucket, key, {})
            else:
                await v.delete_object(bucket, key)
            return web.Response(status=204)
        if method == "GET" and upload_id is not None:
            up, parts = await mp.list_parts(bucket, key, upload_id)
            return self._xml(xmlio.list_parts(bucket, up, parts, self._int(query, "part-number-marker", 0),
                                              min(self._int(query, "max-parts", 1000), 1000)))
        if method == "GET" and "tagging" in query:
            return self._xml(xmlio.tagging(await v.get_tags(bucket, key)))
        if method in ("GET", "HEAD"):
            return await self._get(request, bucket, key, query)
        raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")

    def _preconditions(self, request: web.BaseRequest, info: ObjectInfo) -> None:
        h = request.headers
        mtime = info.mtime_ns / 1e9
        if "If-Match" in h:
            if not _etag_matches(h["If-Match"], info.etag):
                raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
        elif "If-Unmodified-Since" in h:
            t = _parse_http_date(h["If-Unmodified-Since"])
            if t is not None and int(mtime) > t:
                raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
        if "If-None-Match" in h:
            if _etag_matches(h["If-None-Match"], info.etag):
                raise S3Error("NotModified", "Not Modified")
        elif "If-Modified-Since" in h:
            t = _parse_http_date(h["If-Modified-Since"])
            if t is not None and int(mtime) <= t:
                raise S3Error("NotModified", "Not Modified")

    async def _get(self, request: web.BaseRequest, bucket: str, key: str, query: dict[str, str]) -> web.StreamResponse:
        checksum_mode = (request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
                         and "Range" not in request.headers)
        if request.method == "HEAD":
            info = await self.view.head_object(bucket, key)
            self._preconditions(request, info)
            headers = _object_headers(info, checksum_mode)
            rng = parse_range(request.headers.get("Range", ""), info.size) if "Range" in request.headers else None
            status, length = 200, info.size
            if rng is not None:
                status, length = 206, rng[1] - rng[0]
                headers["Content-Range"] = f"bytes {rng[0]}-{rng[1] - 1}/{info.size}"
            headers["Content-Length"] = str(length)
            return web.Response(status=status, headers=headers)
        reader = await self.view.open_object(bucket, key)
        try:
            info = reader.info
            self._preconditions(request, info)
            headers = _object_headers(info, checksum_mode)
            for param, header in RESPONSE_OVERRIDES.items():
                if param in query:
                    headers[header] = query[param]
            start, end, status = 0, info.size, 200
            if "Range" in request.headers:
                try:
                    rng = parse_range(request.headers["Range"], info.size)
                except S3Error as exc:
                    exc.resource = key
                    raise
                if rng is not None:
                    start, end, status = rng[0], rng[1], 206
                    headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
            resp = web.StreamResponse(status=status, headers=headers)
            resp.content_length = end - start
            await resp.prepare(request)
            loop = asyncio.get_running_loop()
            size = GET_PIECE_ALONE if self._sending < ALONE else GET_PIECE
            self._sending += 1
            try:
                # One deadline for the whole body, armed only while a piece is being written (a timer
                # per piece cost more than the rest of the loop).
                async with asyncio.timeout(None) as deadline:
                    async for piece in reader.chunks(start, end, size):
                        deadline.reschedule(loop.time() + self.config.read_timeout)
                        await resp.write(piece)
                        deadline.reschedule(None)
            except TimeoutError:
                # A client that stopped reading: drop it rather than hold the handle and a buffer.
                log.warning("slow_client_dropped", path=request.path, sent=resp.body_length)
                if request.transport is not None:
                    request.transport.abort()
                raise ConnectionResetError("client stopped reading") from None
            finally:
                self._sending -= 1
            await resp.write_eof()
            return resp
        finally:
            await reader.close()


ACCESS_LOG_FORMAT = '%t %a "%r" %s %b %Tf "%{User-Agent}i"'


async def start_server(gateway: Gateway, host: str, port: int, ssl_context: object = None,
                       access_log: logging.Logger | None = None) -> web.AppRunner:
    """Listen on host:port; returns the runner (``await runner.cleanup()`` to stop). `access_log`: a
    logger that gets one line per request (time, client, request line, status, bytes, seconds, agent).

    Freed block-sized buffers are kept by malloc for the next bodies (`keep_block_buffers`): fresh pages
    for every 4 MiB piece cost more system time in page faults than the copies into them."""
    keep_block_buffers()
    server = web.Server(gateway.handle, max_line_size=8190, max_field_size=8190, read_bufsize=1 << 20,
                        access_log=access_log, access_log_format=ACCESS_LOG_FORMAT)
    runner = web.ServerRunner(server, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=1024,  # type: ignore[arg-type]
                       reuse_address=True)
    await site.start()
    return runner  # type: ignore[return-value]

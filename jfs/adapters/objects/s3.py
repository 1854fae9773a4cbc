"""``s3`` storage — any S3-compatible endpoint through boto3.

Bucket addresses:

* path style ``http(s)://host[:port]/bucket`` (MinIO, SeaweedFS, Ceph RGW, …);
* virtual-host style ``https://bucket.s3.<region>.amazonaws.com`` (or any ``https://bucket.host``).

The region comes from an AWS host name, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else us-east-1.
Credentials are the arguments when given, else boto3's usual chain (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, shared config files, …).

HTTPS: the server's certificate must verify against the system's CAs, or the bundle in
``$JFS_S3_CA_BUNDLE`` (else boto3's own ``$AWS_CA_BUNDLE``); ``JFS_S3_INSECURE_SKIP_VERIFY=true`` turns
verification off (tests, or a trusted network only). A certificate that does not verify is an
ObjectStoreUnavailable naming the endpoint and these two variables.

One boto3 client (thread-safe) serves every call but the data path's per-block requests: GetObject,
PutObject and DeleteObjects go through `ObjectRequests` (signed requests on a urllib3 pool, a fifth of
boto3's CPU per request; ADR 0036) when the credentials are static ones — ``JFS_S3_BOTO3=true`` sends them
through boto3 too. Their PUT bodies go as ``UNSIGNED-PAYLOAD`` (not hashed) unless
``JFS_S3_SIGNED_PAYLOAD=true`` (http only; ADR 0049). The boto3 client is built at its first use (ADR
0049): a mount that only reads, writes and deletes blocks never pays its ~30 MiB (boto3, botocore and the
S3 service model). Calls run in a bounded thread pool the size of the connection pool, so the event loop
never blocks and at most `max_pool_connections` requests are in flight.
Transient failures (5xx, throttling, timeouts, dropped connections) are re-sent by botocore's "standard"
mode only `S3_REQUEST_ATTEMPTS` times in total (`jfs.domain.retry`, ADR 0017): patience is the caller's
budget (the data path's ``BLOCK_IO``), so attempts do not multiply. A GET whose body breaks off mid-read is
an ObjectStoreError like any other transient failure (botocore cannot retry it, and neither does this
adapter). Errors that survive map to the port:

* ``NoSuchKey`` / 404 -> ObjectNotFound; 416 on a range GET -> ``b""``;
* missing bucket, refused credentials, access denied, unreachable endpoint -> ObjectStoreUnavailable with
  one line naming the endpoint and the cause (a 403/404 without a body, as HEAD returns, is diagnosed
  with one extra ListObjectsV2 call);
* anything else -> ObjectStoreError.

Deletes are batched: `delete` queues its key and at most `DELETE_BATCHES` DeleteObjects requests (up to
`DELETE_BATCH` keys each) carry whatever is queued, so a burst of block deletions (compaction, truncate,
rm) costs a few requests rather than one per block — per-request Python work on this side is what slowed
every other request and the event loop (a 4 KiB random read during the deletions after a random-write run:
see ADR 0032). A key the server reports missing counts as deleted. A server that rejects DeleteObjects as a
whole (some S3-compatible stores do not implement it) is logged once and gets one DeleteObject per key from
then on.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import re
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

import structlog
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)
from urllib3.exceptions import ProtocolError

from jfs.adapters.objects.registry import BadStorage
from jfs.adapters.objects.s3_loop import LOOP_PUT_MAX, LoopPutFailed, LoopPuts
from jfs.adapters.objects.s3_requests import BLOCK_CONTENT_TYPE, Credentials, ObjectRequests
from jfs.domain.retry import S3_REQUEST_ATTEMPTS
from jfs.ports.objects import ObjectInfo, ObjectNotFound, ObjectStoreError, ObjectStoreUnavailable

T = TypeVar("T")
log = structlog.get_logger("jfs.objects")

PAGE = 1000
UPLOAD_PART = 16 << 20
"""`put_file`: part size of a multipart upload (and the size from which one is used)."""
UPLOAD_THREADS = 4
DELETE_BATCH = 1000
"""Keys per DeleteObjects request (S3's maximum)."""
DELETE_BATCHES = 2
"""DeleteObjects requests in flight at most; keys queue meanwhile and leave together."""
_AWS_HOST = re.compile(r"^s3[.-](?:dualstack\.)?(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
_BODY_ERRORS = (
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
    ConnectionClosedError,
    ProtocolError,
)
_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidSecurity",
}


def parse_bucket_url(bucket: str) -> tuple[str, str, str, str]:
    """(endpoint URL, bucket name, region, addressing style) of a bucket address; raises BadStorage."""
    u = urlsplit(bucket)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise BadStorage(
            f"malformed S3 bucket '{bucket}': expected http(s)://host[:port]/bucket or https://bucket.host"
        )
    port = f":{u.port}" if u.port else ""
    path = u.path.strip("/")
    if path:
        if "/" in path:
            raise BadStorage(
                f"malformed S3 bucket '{bucket}': a key prefix after the bucket name is not supported"
            )
        name, host, style = path, u.hostname + port, "path"
    else:
        name, _, rest = u.hostname.partition(".")
        if not rest:
            raise BadStorage(f"malformed S3 bucket '{bucket}': no bucket name in the path or the host")
        host, style = rest + port, "virtual"
    m = _AWS_HOST.match(host.split(":")[0])
    if m:
        region = m.group("region")
    elif host.split(":")[0] in ("s3.amazonaws.com", "s3-external-1.amazonaws.com"):
        region = "us-east-1"
    else:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return f"{u.scheme}://{host}", name, region, style


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _os_reason(exc: BaseException) -> str:
    """The innermost OS-level reason of a connection failure ("Connection refused"), else the error's name."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        m = re.search(r"\[Errno -?\d+\] ([^'\"\]]+)", str(e))
        if m:
            return m.group(1).strip()
        for nxt in (e.__cause__, e.__context__, getattr(e, "kwargs", {}).get("error")):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return "connect timeout" if isinstance(exc, ConnectTimeoutError) else type(exc).__name__


class S3Store:
    """An S3 bucket behind the object-store port."""

    delete_fanin = 64
    """`BlockStore` lets this many times its usual number of deletions wait here at once, so that a burst
    (a compaction frees hundreds of 4 KiB blocks) leaves in a few DeleteObjects requests of up to
    `DELETE_BATCH` keys rather than in batches of 16 (ADR 0036)."""

    def __init__(
        self,
        bucket: str,
        *,
        access_key: str = "",
        secret_key: str = "",
        session_token: str = "",
        max_pool_connections: int = 32,
        max_attempts: int = S3_REQUEST_ATTEMPTS,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.endpoint, self.bucket, self.region, style = parse_bucket_url(bucket)
        self.url = f"{self.endpoint}/{self.bucket}" if style == "path" else bucket.rstrip("/")
        self._access_key = access_key
        self._client_args: dict[str, Any] = {
            "endpoint_url": self.endpoint, "verify": _tls_verify(), "region": self.region, "style": style,
            "max_pool_connections": max_pool_connections, "connect_timeout": connect_timeout,
            "read_timeout": read_timeout, "max_attempts": max_attempts,
        }  # fmt: skip
        self._session: Any = None
        self._boto3_client: Any = None
        self._client_lock = threading.Lock()
        static: Credentials | None = None
        if access_key or secret_key:
            static = Credentials(access_key, secret_key, session_token)
            self._creds = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
            if session_token:
                self._creds["aws_session_token"] = session_token
        else:
            self._creds = {}
            found = self._boto3_session().get_credentials()  # boto3's default chain, reused by the client
            self._access_key = (found.access_key if found is not None else "") or ""
            if found is not None and type(found).__name__ == "Credentials" and found.access_key:
                static = Credentials(found.access_key, found.secret_key or "", found.token or "")
        self._requests: ObjectRequests | None = None
        """GetObject / PutObject / DeleteObjects without boto3 (static credentials only: refreshed ones stay
        with boto3)."""
        if static is not None and not _boto3_only():
            self._requests = ObjectRequests(
                self.endpoint, self.bucket, self.region, style, static, max_connections=max_pool_connections,
                attempts=max_attempts, connect_timeout=connect_timeout, read_timeout=read_timeout,
                verify=_tls_verify(), signed_payload=_env_true("JFS_S3_SIGNED_PAYLOAD"),
            )  # fmt: skip
        else:
            self._client  # noqa: B018 -- every request goes through boto3: build its client now
        self._loop_puts: LoopPuts | None = None
        """Block PUTs sent from the event loop (ADR 0103), with `_requests` as their fallback."""
        if self._requests is not None and not self._requests.signs_puts and not _env_true("JFS_S3_THREAD_PUTS"):
            self._loop_puts = LoopPuts(
                self._requests, max_idle=max_pool_connections, connect_timeout=connect_timeout,
                read_timeout=read_timeout, verify=_tls_verify(),
            )  # fmt: skip
        self._pool = ThreadPoolExecutor(max_workers=max_pool_connections, thread_name_prefix="jfs-s3")
        self._bucket_seen = False
        self._delete_queue: collections.deque[tuple[str, asyncio.Future[None]]] = collections.deque()
        self._delete_senders = 0
        self._batch_deletes = True
        """False once the server rejected a DeleteObjects request: one DeleteObject per key."""
        self.delete_requests = 0
        """DeleteObject(s) requests sent (for tests and figures)."""

    def _boto3_session(self) -> Any:
        if self._session is None:
            import boto3  # type: ignore[import-untyped]

            self._session = boto3.session.Session()
        return self._session

    @property
    def _client(self) -> Any:
        """The boto3 client, built at its first use: with `ObjectRequests` carrying the block GETs and PUTs,
        a mount may never need it, and boto3 + the S3 service model cost ~30 MiB of RSS (ADR 0049)."""
        client = self._boto3_client
        if client is None:
            with self._client_lock:
                client = self._boto3_client
                if client is None:
                    client = self._boto3_client = self._new_client()
        return client

    @_client.setter
    def _client(self, client: Any) -> None:  # tests put a fake client in place
        self._boto3_client = client

    def _new_client(self) -> Any:
        from botocore.config import Config  # type: ignore[import-untyped]

        a = self._client_args
        config = Config(
            region_name=a["region"],
            signature_version="s3v4",
            s3={"addressing_style": a["style"]},
            max_pool_connections=a["max_pool_connections"],
            connect_timeout=a["connect_timeout"],
            read_timeout=a["read_timeout"],
            # total_max_attempts counts the first request ("max_attempts" here would count only re-sends).
            retries={"mode": "standard", "total_max_attempts": max(1, a["max_attempts"])},
            tcp_keepalive=True,
            # Many S3-compatible servers reject the flexible-checksum trailers newer botocore sends by default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent_extra="jfs",
        )
        return self._boto3_session().client(
            "s3", endpoint_url=a["endpoint_url"], config=config, verify=a["verify"], **self._creds
        )

    # -- error mapping ---------------------------------------------------------------------------------

    def _translate(self, op: str, key: str, exc: Exception) -> ObjectStoreError:
        where = f"bucket '{self.bucket}' at {self.endpoint}"
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return ObjectStoreUnavailable(f"bucket '{self.bucket}' does not exist at {self.endpoint}")
            if code == "InvalidAccessKeyId":
                return ObjectStoreUnavailable(
                    f"credentials refused by {self.endpoint}: unknown access key '{self._access_key}'"
                )
            if code == "SignatureDoesNotMatch":
                return ObjectStoreUnavailable(
                    f"credentials refused by {self.endpoint}: wrong secret key for access key '{self._access_key}'"
                )
            if code in _DENIED or status == 403:
                return ObjectStoreUnavailable(
                    f"access denied to {where} ({code or status}): check the credentials and permissions"
                )
            if code in ("NoSuchKey", "NotFound", "404") or status == 404:
                return ObjectNotFound(f"object '{key}' not found in {self.url}")
            message = _one_line(err.get("Message", ""))
            return ObjectStoreError(f"S3 {op} '{key}' on {where} failed: {code or status} {message}".rstrip())
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return ObjectStoreUnavailable(
                f"no credentials for {self.endpoint}: give an access key and secret key or set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        if isinstance(exc, SSLError):
            return ObjectStoreUnavailable(
                f"TLS with {self.endpoint} failed: {_tls_reason(exc)} (a private CA: set JFS_S3_CA_BUNDLE to "
                "its certificate; JFS_S3_INSECURE_SKIP_VERIFY=true skips the check)"
            )
        if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
            return ObjectStoreUnavailable(f"cannot connect to {self.endpoint}: {_os_reason(exc)}")
        if isinstance(exc, BotoCoreError):
            return ObjectStoreError(f"S3 {op} '{key}' on {where} failed: {_one_line(exc)}")
        return ObjectStoreError(f"S3 {op} '{key}' on {where} failed: {type(exc).__name__}: {_one_line(exc)}")

    def _diagnose(self, op: str, key: str, exc: ClientError) -> ObjectStoreError:
        """Translate an error that carries no code (HEAD has no body) by asking for a listing."""
        try:
            self._client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        except ClientError as probe:
            if probe.response.get("Error", {}).get("Code") not in (None, "", "403", "404"):
                return self._translate(op, key, probe)
        except Exception:  # the original error stays the better explanation
            pass
        else:
            self._bucket_seen = True
        return self._translate(op, key, exc)

    def _sync(self, op: str, key: str, fn: Callable[[], T]) -> T:
        try:
            result = fn()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "403" or (code == "404" and not self._bucket_seen):
                raise self._diagnose(op, key, exc) from None
            mapped = self._translate(op, key, exc)
            raise mapped from (None if isinstance(mapped, ObjectNotFound | ObjectStoreUnavailable) else exc)
        except Exception as exc:
            mapped = self._translate(op, key, exc)
            raise mapped from (None if isinstance(mapped, ObjectStoreUnavailable) else exc)
        self._bucket_seen = True
        return result

    async def _run(self, op: str, key: str, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(self._sync, op, key, fn))

    # -- operations ------------------------------------------------------------------------------------

    async def create_bucket(self) -> None:
        """Create the bucket; succeeds if it already exists and is ours."""

        def create() -> None:
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if self.region != "us-east-1" and "amazonaws.com" in self.endpoint:
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            try:
                self._client.create_bucket(**kwargs)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in (
                    "BucketAlreadyOwnedByYou",
                    "BucketAlreadyExists",
                ):
                    raise
                self._client.head_bucket(Bucket=self.bucket)  # exists: fine if we can use it

        await self._run("create bucket", "", create)
        log.info("bucket_created", url=self.url)

    async def put(self, key: str, data: bytes | memoryview) -> None:
        body: Any = data
        if isinstance(data, memoryview):
            # A view of a whole bytes (or bytearray: a sealed block) object is sent as that object (botocore
            # takes both); other views need one copy.
            whole = data.obj if isinstance(data.obj, bytes | bytearray) and data.nbytes == len(data.obj) else None
            body = whole if whole is not None else data.tobytes()
        fast = self._requests
        if fast is not None:
            loop_puts = self._loop_puts
            if loop_puts is not None and len(body) <= LOOP_PUT_MAX:
                try:
                    await loop_puts.put(key, body)
                except LoopPutFailed as exc:  # sent again from the threads: retried, mapped, diagnosed there
                    log.debug("s3_loop_put_failed", key=key, error=str(exc))
                else:
                    self._bucket_seen = True
                    return
            await self._run("put", key, lambda: fast.put(key, body))
            return
        await self._run("put", key, lambda: self._client.put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType=BLOCK_CONTENT_TYPE))

    async def put_file(self, key: str, path: str) -> None:
        """`FileUploads`: stream the local file `path` (a multipart upload of `UPLOAD_PART` parts, at most
        `UPLOAD_THREADS` in flight, above `UPLOAD_PART`): memory stays flat whatever the file's size. A file
        below `UPLOAD_PART` is one PUT (through `ObjectRequests` when in use: no boto3 client for a mount's
        periodic metadata backup of a small volume, ADR 0049)."""
        if self._requests is not None:
            size = await asyncio.to_thread(os.path.getsize, path)
            if size < UPLOAD_PART:
                data = await asyncio.to_thread(_read_file, path)
                await self.put(key, data)
                return
        from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]

        config = TransferConfig(multipart_threshold=UPLOAD_PART, multipart_chunksize=UPLOAD_PART,
                                max_concurrency=UPLOAD_THREADS)
        await self._run("put", key, lambda: self._client.upload_file(
            path, self.bucket, key, ExtraArgs={"ContentType": BLOCK_CONTENT_TYPE}, Config=config))

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        if limit == 0:
            await self.head(key)
            return b""
        ranged = off > 0 or limit > 0
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if ranged:
            kwargs["Range"] = f"bytes={off}-{off + limit - 1 if limit > 0 else ''}"

        fast = self._requests

        def fetch_fast() -> bytes:
            assert fast is not None
            try:
                data, honoured = fast.get(key, kwargs.get("Range"))
            except ClientError as exc:
                if ranged and exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    return b""
                raise
            if ranged and not honoured:  # the server ignored the Range header
                data = data[off : off + limit] if limit > 0 else data[off:]
            return data

        if fast is not None:
            return await self._run("get", key, fetch_fast)

        def fetch() -> bytes:
            try:
                resp = self._client.get_object(**kwargs)
            except ClientError as exc:
                if ranged and exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    return b""  # the range starts at or past the end
                raise
            try:
                data: bytes = resp["Body"].read()
            except _BODY_ERRORS as exc:
                log.warning("s3_body_broken", key=key, error=_one_line(exc))
                raise
            if ranged and "ContentRange" not in resp:  # the server ignored the Range header
                data = data[off : off + limit] if limit > 0 else data[off:]
            return data

        return await self._run("get", key, fetch)

    async def head(self, key: str) -> ObjectInfo:
        resp = await self._run("head", key, lambda: self._client.head_object(Bucket=self.bucket, Key=key))
        return ObjectInfo(key, int(resp["ContentLength"]), resp["LastModified"].timestamp())

    async def delete(self, key: str) -> None:
        """Delete `key` (missing: fine), in a DeleteObjects request shared with other queued keys."""
        if not self._batch_deletes:
            return await self._delete_one(key)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._delete_queue.append((key, future))
        if self._delete_senders < DELETE_BATCHES:
            self._delete_senders += 1
            asyncio.get_running_loop().create_task(self._send_deletes())
        await future

    async def _delete_one(self, key: str) -> None:
        self.delete_requests += 1
        try:
            await self._run("delete", key, lambda: self._client.delete_object(Bucket=self.bucket, Key=key))
        except ObjectNotFound:
            pass

    async def _send_deletes(self) -> None:
        """Send the queued deletions, `DELETE_BATCH` keys a request, until the queue is empty."""
        try:
            while self._delete_queue:
                batch: dict[str, list[asyncio.Future[None]]] = {}
                while self._delete_queue and len(batch) < DELETE_BATCH:
                    key, future = self._delete_queue.popleft()
                    if not future.done():  # its caller gave up: nobody waits for it
                        batch.setdefault(key, []).append(future)
                if batch:
                    await self._delete_batch(batch)
        finally:
            self._delete_senders -= 1

    async def _delete_batch(self, batch: dict[str, list[asyncio.Future[None]]]) -> None:
        keys = list(batch)

        outcome: dict[str, BaseException | None] = dict.fromkeys(keys)
        errors: list[dict[str, Any]] | None = None
        try:
            if self._batch_deletes:
                self.delete_requests += 1
                errors = await self._run("delete", keys[0], functools.partial(self._delete_objects, keys))
        except ObjectStoreUnavailable as exc:
            outcome = dict.fromkeys(keys, exc)
        except ObjectStoreError as exc:
            if self._batch_deletes:
                self._batch_deletes = False
                log.warning("s3_batch_delete_unsupported", url=self.url, error=_one_line(exc),
                            detail="deleting one object per request from now on")
        if errors is None and not any(outcome.values()):  # DeleteObjects refused: one request per key
            results = await asyncio.gather(*(self._delete_one(k) for k in keys), return_exceptions=True)
            outcome = {k: r if isinstance(r, BaseException) else None for k, r in zip(keys, results, strict=True)}
        for err in errors or ():
            key, code = str(err.get("Key", "")), str(err.get("Code", ""))
            if key not in outcome or code in ("NoSuchKey", "NotFound", "404"):
                continue
            message = f"S3 delete '{key}' on bucket '{self.bucket}' at {self.endpoint} failed: {code} " \
                      f"{_one_line(err.get('Message', ''))}".rstrip()
            outcome[key] = ObjectStoreUnavailable(message) if code in _DENIED else ObjectStoreError(message)
        for key, futures in batch.items():
            for future in futures:
                if future.done():
                    continue
                failure = outcome[key]
                if failure is None:
                    future.set_result(None)
                else:
                    future.set_exception(failure)

    def _delete_objects(self, keys: list[str]) -> list[dict[str, Any]]:
        """One DeleteObjects request (in the pool): the per-key errors (``Key``, ``Code``, ``Message``)."""
        if self._requests is not None:
            return list(self._requests.delete_many(keys))
        resp = self._client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
        return list(resp.get("Errors", []))

    async def list(
        self, prefix: str = "", start_after: str = "", limit: int | None = None
    ) -> AsyncIterator[ObjectInfo]:
        remaining = limit
        token = ""
        while remaining is None or remaining > 0:
            kwargs: dict[str, Any] = {
                "Bucket": self.bucket,
                "MaxKeys": PAGE if remaining is None else min(PAGE, remaining),
            }
            if prefix:
                kwargs["Prefix"] = prefix
            # Later pages follow the server's continuation token rather than StartAfter=<last key>: some
            # S3-compatible servers order "a/…" and "a-…" differently from their own StartAfter filter.
            if token:
                kwargs["ContinuationToken"] = token
            elif start_after:
                kwargs["StartAfter"] = start_after
            resp = await self._run("list", prefix, functools.partial(self._client.list_objects_v2, **kwargs))
            contents = resp.get("Contents", [])
            for obj in contents:
                yield ObjectInfo(obj["Key"], int(obj["Size"]), obj["LastModified"].timestamp())
            if remaining is not None:
                remaining -= len(contents)
            token = resp.get("NextContinuationToken", "")
            if not resp.get("IsTruncated") or not token:
                return

    async def close(self) -> None:
        if self._loop_puts is not None:
            self._loop_puts.close()
        await asyncio.to_thread(self._pool.shutdown, True)
        if self._requests is not None:
            self._requests.close()
        if self._boto3_client is not None:
            self._boto3_client.close()


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _tls_reason(exc: BaseException) -> str:
    m = re.search(r"certificate verify failed[^'\")\]]*", str(exc))
    return m.group(0).strip() if m else _one_line(exc)


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _boto3_only() -> bool:
    """``JFS_S3_BOTO3=true``: every request through boto3 (no `ObjectRequests`)."""
    return _env_true("JFS_S3_BOTO3")


def _tls_verify() -> bool | str | None:
    """boto3's `verify`: a CA bundle path, False to skip the check, or None for boto3's default."""
    skip = os.environ.get("JFS_S3_INSECURE_SKIP_VERIFY", "").strip().lower()
    if skip in ("1", "true", "yes", "on"):
        return False
    return os.environ.get("JFS_S3_CA_BUNDLE") or None


async def open_s3(
    bucket: str, *, access_key: str = "", secret_key: str = "", session_token: str = ""
) -> S3Store:
    """Open the S3 bucket at `bucket` (see the module docstring for the accepted forms)."""
    parse_bucket_url(bucket)  # fail fast, on the loop, with BadStorage
    return await asyncio.to_thread(
        functools.partial(
            S3Store, bucket, access_key=access_key, secret_key=secret_key, session_token=session_token
        )
    )

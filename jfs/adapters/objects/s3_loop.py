"""`LoopPuts`: PutObject of small bodies sent from the event loop itself (ADR 0103).

`ObjectRequests` runs on `S3Store`'s threads: every request is two hand-offs between the loop thread and a
pool thread, and each one moves the interpreter lock back and forth. A small file's block costs more in
those hand-offs than in sending its bytes, and a 4 MiB block measured cheaper and faster from the loop as
well. Here the same signed request
(`ObjectRequests.signed_headers`) is written to a kept-alive connection with asyncio streams, and the answer's
status line, headers and body are read back on the loop.

Contract: `put` makes exactly one attempt and raises `LoopPutFailed` on anything but a 2xx answer — a refused
request, a connection that could not be made, broke or timed out. The caller then sends the same PUT through
`ObjectRequests` on its threads, which retries, maps the error to the port and diagnoses it (a PUT is
idempotent: the second one replaces whatever the first left). A connection is kept for reuse only after a
complete answer that did not ask to close it. Connections belong to the loop that made them; used from
another loop, the idle ones are dropped first. Not thread-safe: one loop at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any
from urllib.parse import urlsplit

from jfs.adapters.objects.s3_requests import BLOCK_CONTENT_TYPE, ObjectRequests

LOOP_PUT_MAX = 16 << 20
"""Bodies up to this size (any block: JuiceFS's largest block size is 16 MiB) go through `LoopPuts`; bigger
ones (a whole file of `put_file`) through the threads."""
_HEADER_LIMIT = 64 << 10


class LoopPutFailed(Exception):
    """One attempt of `LoopPuts.put` did not store the object (the reason in the message); send it again
    the usual way."""


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class LoopPuts:
    """Signed single-attempt PUTs over asyncio streams to `requests`' endpoint and bucket, bodies sent as
    ``UNSIGNED-PAYLOAD`` (not for a `requests` that `signs_puts`)."""

    def __init__(
        self, requests: ObjectRequests, *, max_idle: int, connect_timeout: float, read_timeout: float,
        verify: bool | str | None,
    ) -> None:  # fmt: skip
        """`verify` as for `ObjectRequests`: a CA bundle path, False (no check) or None (botocore's bundle)."""
        self._requests = requests
        self._https = requests.scheme == "https"
        where = urlsplit(f"{requests.scheme}://{requests.host}")  # host, port, IPv6 brackets
        self._host = where.hostname or requests.host
        self._port = where.port or (443 if self._https else 80)
        self._max_idle = max_idle
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._idle: list[_Conn] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connections = 0
        """Connections opened so far (for tests and figures)."""
        self.stored = 0
        """Objects stored so far (for tests and figures)."""

    async def put(self, key: str, body: bytes | bytearray) -> None:
        """PutObject `key` with `body` in one attempt; raises `LoopPutFailed` unless it was stored."""
        head = self._request_head(key, len(body))
        conn = await self._connection()
        reader, writer = conn
        try:
            # Each phase within the read timeout, as the threads' sockets allow it for sending the whole
            # body and then for the answer.
            async with asyncio.timeout(self._read_timeout):
                writer.write(head)
                writer.write(body)
                await writer.drain()
            async with asyncio.timeout(self._read_timeout):
                status, keep = await _read_answer(reader)
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                TimeoutError) as exc:  # fmt: skip
            _close(writer)
            raise LoopPutFailed(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:  # cancelled mid-request: the connection's state is unknown
            _close(writer)
            raise
        if keep and len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            _close(writer)
        if not 200 <= status < 300:
            raise LoopPutFailed(f"HTTP {status}")
        self.stored += 1

    def _request_head(self, key: str, length: int) -> bytes:
        r = self._requests
        path = r.object_path(key)
        extra = {"content-length": str(length), "content-type": BLOCK_CONTENT_TYPE}
        headers = r.signed_headers("PUT", path, "UNSIGNED-PAYLOAD", extra)
        lines = [f"PUT {path} HTTP/1.1"]
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _connection(self) -> _Conn:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._drop_idle()  # another loop's streams cannot be used from this one
            self._loop = loop
        while self._idle:
            reader, writer = self._idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
            _close(writer)
        try:
            async with asyncio.timeout(self._connect_timeout):
                conn = await asyncio.open_connection(
                    self._host, self._port, ssl=self._ssl_context(), limit=_HEADER_LIMIT,
                    server_hostname=self._host if self._https else None,
                )  # fmt: skip
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise LoopPutFailed(f"cannot connect to {self._host}:{self._port}: {exc}") from exc
        self.connections += 1
        return conn

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self._https:
            return None
        if self._ssl is None:
            if self._verify is False:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            else:
                from botocore.httpsession import get_cert_path  # type: ignore[import-untyped]

                ctx = ssl.create_default_context(
                    cafile=self._verify if isinstance(self._verify, str) else get_cert_path(True)
                )
            self._ssl = ctx
        return self._ssl

    def _drop_idle(self) -> None:
        while self._idle:
            _close(self._idle.pop()[1])

    def close(self) -> None:
        """Close the idle connections (those in use close when their request ends)."""
        self._drop_idle()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 answer: (status, whether the connection may carry another request). The body (an
    error document, usually empty for a PUT) is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF; the last one (0) ends with the trailer's
            if size == 0:
                break
    elif "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif status >= 200 and status not in (204, 304):
        await reader.read()  # delimited by the end of the connection
        keep = False
    return status, keep


def _close(writer: Any) -> None:
    with contextlib.suppress(Exception):
        writer.close()

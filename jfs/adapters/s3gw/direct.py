"""Big request bodies received straight from the socket into block-sized buffers.

aiohttp hands a body over as the socket's reads, each copied once more by its HTTP parser (``cb_on_body``)
and queued in a `StreamReader`; the gateway then joined them into 4 MiB pieces: two copies of every byte
in user space and a dozen Python calls per received buffer. For a plain body of known length (what
boto3, the AWS CLI and most SDKs send over HTTP), `DirectBody` takes the connection from aiohttp for the
body's duration instead: it installs itself as the transport's protocol (an `asyncio.BufferedProtocol`,
so the transport ``recv_into``s the buffer it offers) and offers each piece's own fresh buffer, never more
than the body's remaining bytes, so the kernel's copy is the only one and the next request's bytes are
never read. Once the last byte is in, aiohttp's protocol is put back with a fresh HTTP parser (the old
one still waits for the body it never saw) and the request's `StreamReader` is marked at its end, so the
connection serves its next request as usual.

Contract:
- `take(request, length)` returns a `DirectBody` or None when the connection is not in a state where
  taking it is safe (TLS, a transport or aiohttp version without the pieces used, body bytes held by
  a paused parser, pipelined requests queued): the caller then reads the body through aiohttp.
- Iterating yields the body in pieces of `piece` bytes at offsets that are multiples of `piece` (the
  last may be shorter), each a `bytearray` nobody touches again (the consumer may keep it); at most
  `MAX_READY` full pieces wait for the consumer before reading from the socket pauses.
- A client that stops sending for `timeout` seconds gets RequestTimeout, a body cut short IncompleteBody
  (S3Error, raised by the iterator).
- `close()` (always called once the request is handled) tells whether the body was read to its end;
  if not, the receiver stays installed and discards the rest of the body (as aiohttp's lingering close
  would), and the answer must close the connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web, web_protocol

from jfs.adapters.s3gw.errors import S3Error
from jfs.app.data.pages import uninitialised

log = structlog.get_logger("jfs.gateway")

DIRECT_MIN = 256 << 10
"""Bodies at least this long are received directly (below it the parser swap costs more than it saves)."""
MAX_READY = 1
"""Full pieces held for the consumer before the socket is no longer read (back-pressure)."""
_DISCARD = 64 << 10

def _fresh_parser(protocol: Any) -> Any:
    """A new HTTP parser for aiohttp's `protocol`, made as aiohttp makes its own (None if that fails)."""
    old = protocol._parser
    kwargs: dict[str, Any] = {
        "max_line_size": protocol.max_line_size, "max_field_size": protocol.max_field_size,
        "max_headers": protocol.max_headers, "payload_exception": web_protocol.RequestPayloadError,
        "auto_decompress": True}
    queue = getattr(web_protocol, "MAX_MSG_QUEUE_SIZE", None)
    if queue is not None:
        kwargs["max_msg_queue_size"] = queue
    try:
        return type(old)(protocol, protocol._loop, protocol._read_bufsize, **kwargs)
    except TypeError:
        return None


class DirectBody(asyncio.BufferedProtocol):
    """The body of one request, received into its pieces' own buffers (see the module's contract)."""

    def __init__(self, request: web.BaseRequest, transport: Any, protocol: Any, parser: Any, length: int,
                 first: bytes, piece: int, timeout: float) -> None:
        self._request = request
        self._transport = transport
        self._protocol = protocol
        self._parser = parser
        self._length = length
        self._piece = piece
        self._timeout = timeout
        self._received = 0
        self._buf: bytearray | None = None
        self._filled = 0
        self._ready: deque[bytearray] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: S3Error | None = None
        self._paused = False
        self._done = False
        self._discarding = False
        self._scratch: bytearray | None = None
        self._store(first)
        transport.set_protocol(self)

    # ------------------------------------------------------------------ the transport's side

    def _new_buffer(self) -> None:
        self._buf = uninitialised(min(self._piece, self._length - self._received))
        self._filled = 0

    def _store(self, data: bytes) -> None:
        """Bytes aiohttp had already taken from the socket: copied into the first piece(s)."""
        view = memoryview(data)
        while view:
            if self._buf is None:
                self._new_buffer()
            assert self._buf is not None
            n = min(len(view), len(self._buf) - self._filled)
            self._buf[self._filled:self._filled + n] = view[:n]
            view = view[n:]
            self._arrived(n)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._discarding:
            if self._scratch is None:
                self._scratch = bytearray(_DISCARD)
            return memoryview(self._scratch)[:self._length - self._received]
        if self._buf is None:
            self._new_buffer()
        assert self._buf is not None
        return memoryview(self._buf)[self._filled:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._discarding:
            self._received += nbytes
            if self._received == self._length:
                self._finish()  # aiohttp's lingering close sees the body's end and closes at once
            return
        self._arrived(nbytes)

    def _arrived(self, n: int) -> None:
        self._filled += n
        self._received += n
        assert self._buf is not None
        if self._filled < len(self._buf):
            return
        self._ready.append(self._buf)
        self._buf = None
        self._filled = 0
        if self._received == self._length:
            self._finish()
        elif len(self._ready) >= MAX_READY and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def _finish(self) -> None:
        """The whole body is in: aiohttp's protocol back, with a parser for the next request."""
        self._done = True
        self._protocol._parser = self._parser
        if self._transport.get_protocol() is self:
            self._transport.set_protocol(self._protocol)
        if self._paused:
            self._paused = False
            self._transport.resume_reading()
        self._request.content.feed_eof()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool | None:
        self._fail(S3Error("IncompleteBody", "You did not provide the number of bytes specified by the "
                           "Content-Length HTTP header."))
        return self._protocol.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: BaseException | None) -> None:
        self._fail(S3Error("IncompleteBody", "The connection was closed before the whole body was received."))
        self._protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()

    def _fail(self, error: S3Error) -> None:
        if not self._done and self._error is None:
            self._error = error
        self._wake()

    # ------------------------------------------------------------------ the consumer's side

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body's pieces (bytearrays, typed as the bodies' bytes), in order."""
        loop = asyncio.get_running_loop()
        taken = 0
        while taken < self._length:
            while not self._ready:
                if self._error is not None:
                    raise self._error
                seen = self._received
                self._waiter = loop.create_future()
                try:
                    async with asyncio.timeout(self._timeout):
                        await self._waiter
                except TimeoutError:
                    if self._received == seen:  # nothing arrived for `timeout` seconds
                        raise S3Error("RequestTimeout", "Your socket connection to the server was not "
                                      "read from or written to within the timeout period.") from None
                finally:
                    self._waiter = None
            buf = self._ready.popleft()
            if self._paused and len(self._ready) < MAX_READY:
                self._paused = False
                self._transport.resume_reading()
            taken += len(buf)
            yield buf  # type: ignore[misc]

    def close(self) -> bool:
        """Called once the request is handled: True when the whole body was received (the connection
        goes on as usual). Otherwise the rest of the body is read and discarded (aiohttp's lingering
        close waits for its end, so the client gets the answer rather than a reset); the caller must
        close the connection after its answer."""
        self._ready.clear()
        self._buf = None
        if self._done:
            return True
        if not self._discarding:
            self._discarding = True
            if self._paused:
                self._paused = False
                try:
                    self._transport.resume_reading()
                except (AttributeError, RuntimeError):
                    pass
        return False


def take(request: web.BaseRequest, length: int, piece: int, timeout: float) -> DirectBody | None:
    """A `DirectBody` for the rest of `request`'s body (`length` bytes in all), or None (see the module)."""
    if length < DIRECT_MIN:
        return None
    transport = request.transport
    protocol = request.protocol
    if (transport is None or transport.get_extra_info("sslcontext") is not None
            or not hasattr(transport, "set_protocol") or transport.get_protocol() is not protocol
            or transport.is_closing()):
        return None
    content = request.content
    try:
        # A paused protocol may hold body bytes in its parser; queued messages would be pipelined requests.
        if (protocol._reading_paused or protocol._buffer_paused or protocol._messages  # type: ignore[attr-defined]
                or protocol._upgraded or protocol._payload_parser is not None  # type: ignore[attr-defined]
                or content.is_eof() or content.exception() is not None):
            return None
        parser = _fresh_parser(protocol)
    except AttributeError:
        return None
    if parser is None:
        return None
    first = content.read_nowait(-1)
    if len(first) > length:
        return None  # cannot happen with a Content-Length body; never mis-split one
    return DirectBody(request, transport, protocol, parser, length, first, piece, timeout)

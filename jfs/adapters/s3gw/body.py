"""Request payloads as bounded pieces: plain bodies (checked against their signed SHA-256) and aws-chunked
streams (every chunk's signature checked, and in the signed-trailer mode the trailer's
``x-amz-trailer-signature``; or unsigned chunks with trailing checksums).

A payload that fails a check raises S3Error *before the iterator ends*, so the object being written is
dropped, never published. Each read waits at most `timeout` seconds (a stalled client gets RequestTimeout
and holds nothing); no more than `PIECE` bytes are held at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from jfs.adapters.s3gw.errors import S3Error
from jfs.adapters.s3gw.sigv4 import STREAMING, STREAMING_TRAILER, STREAMING_UNSIGNED_TRAILER, UNSIGNED, Signed

PIECE = 4 << 20
"""A body's pieces: the default block size, so an object's blocks are each written (and uploaded) as one
received buffer, hashed in one worker-thread hop."""
MAX_CHUNK_LINE = 4096
MAX_TRAILERS = 16
TRAILER_SIGNATURE = "x-amz-trailer-signature"
MAX_CHUNK = 64 << 20


class Stream(Protocol):
    async def read(self, n: int = -1) -> bytes: ...

    async def readline(self) -> bytes: ...


async def _read(stream: Stream, n: int, timeout: float) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            return await stream.read(n)
    except TimeoutError:
        raise S3Error("RequestTimeout", "Your socket connection to the server was not read from or written to "
                      "within the timeout period.") from None


async def _readline(stream: Stream, timeout: float) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            line = await stream.readline()
    except TimeoutError:
        raise S3Error("RequestTimeout", "The client stopped sending.") from None
    except ValueError:
        raise S3Error("IncompleteBody", "An aws-chunked line is too long.") from None
    if len(line) > MAX_CHUNK_LINE or not line.endswith(b"\r\n"):
        raise S3Error("IncompleteBody", "The aws-chunked payload is malformed or was cut short.")
    return line[:-2]


THREAD_HASH = 64 << 10
"""Pieces at least this big are hashed in a worker thread (hashlib releases the GIL): the event loop
keeps serving other requests meanwhile."""


async def hash_update(digest: Any, piece: bytes) -> None:
    if len(piece) >= THREAD_HASH:
        await asyncio.to_thread(digest.update, piece)
    else:
        digest.update(piece)


HASH_STRIDE = 256 << 10
"""The digests of a body piece are computed stride by stride, all of them over one stride before the next:
each stride is read from memory once and then from the cache (MD5 + SHA-256 + CRC-32 of a 4 MiB piece:
≈2.0 s of CPU per GiB in 64-256 KiB strides against ≈2.35 s one digest after the other, on this VM)."""


async def digested(pieces: AsyncIterator[bytes], hashers: list[Any], checks: list[Callable[[], None]]
                   ) -> AsyncIterator[bytes]:
    """`pieces` unchanged, each fed to every one of `hashers` (one worker-thread hop per big piece for all
    of them: the payload SHA-256, the declared checksum, the ETag's MD5), in order; at the end every one
    of `checks` runs (raising S3Error) *before the iterator ends*.

    A big piece is yielded while it is being hashed: the consumer writes it (into a file nobody sees yet)
    in parallel with its digests, and the next piece is read meanwhile; the hashing of a piece ends
    before the next one starts and before the checks. So the digests are complete only once the
    iterator has ended, and the consumer must neither change a piece nor publish anything before then."""
    def update(piece: bytes) -> None:
        if len(hashers) == 1 or len(piece) <= HASH_STRIDE:
            for h in hashers:
                h.update(piece)
            return
        # Every hasher over one stride while it is in the CPU's cache, rather than each hasher over the
        # whole piece from memory (see HASH_STRIDE).
        view = memoryview(piece)
        for start in range(0, len(piece), HASH_STRIDE):
            stride = view[start:start + HASH_STRIDE]
            for h in hashers:
                h.update(stride)

    hashing: asyncio.Future[None] | None = None
    try:
        async for piece in pieces:
            if hashing is not None:
                await hashing
                hashing = None
            if len(piece) >= THREAD_HASH:
                hashing = asyncio.ensure_future(asyncio.to_thread(update, piece))
            else:
                update(piece)
            yield piece
        if hashing is not None:
            await hashing
            hashing = None
    finally:
        if hashing is not None:  # abandoned midway: the thread finishes on its own, its outcome unused
            hashing.add_done_callback(lambda f: f.cancelled() or f.exception())
    for check in checks:
        check()


async def coalesce(pieces: AsyncIterator[bytes], size: int = PIECE) -> AsyncIterator[bytes]:
    """The same bytes in pieces of `size` (the last may be shorter): fewer, bigger writes and hashes than
    the socket's 64-128 KiB reads; still one piece in memory at a time. A gathered piece is yielded as
    the bytearray it was gathered in and never touched again (the consumer may keep it: no copy)."""
    buf = bytearray()
    async for piece in pieces:
        if not buf and len(piece) >= size:
            yield piece
            continue
        buf += piece
        if len(buf) >= size:
            out, buf = buf, bytearray()
            yield out  # type: ignore[misc]
    if buf:
        yield buf  # type: ignore[misc]


async def _readany(stream: Stream, n: int, timeout: float) -> bytes:
    """The next received buffer as the stream holds it, not joined with the ones behind it (aiohttp's
    ``readchunk``; its ``readany`` joins everything buffered, one more copy of the body), or what
    ``readany`` gives, or up to `n` bytes from a stream with neither. b"" only at the end of the body."""
    readchunk = getattr(stream, "readchunk", None)
    readany = getattr(stream, "readany", None)
    if readchunk is None and readany is None:
        return await _read(stream, n, timeout)
    try:
        async with asyncio.timeout(timeout):
            if readchunk is None:
                return bytes(await readany())  # type: ignore[misc]
            while True:
                data, end_of_http_chunk = await readchunk()
                # (b"", True) marks the end of a Transfer-Encoding: chunked chunk, not of the body.
                if data or not end_of_http_chunk:
                    return bytes(data)
    except TimeoutError:
        raise S3Error("RequestTimeout", "Your socket connection to the server was not read from or written to "
                      "within the timeout period.") from None


async def plain_body(stream: Stream, length: int | None, signed: Signed | None, timeout: float,
                     piece: int = PIECE) -> AsyncIterator[bytes]:
    """`length` bytes (None: up to the end of a chunked transfer) in pieces of `piece` bytes (the last
    may be shorter); SHA-256 checked at the end when the request signed it.

    Each piece is the received data joined once (the socket's 64-256 KiB reads as aiohttp holds them:
    no intermediate joins, no regrowing, no zero-filling): immutable, so the consumer may keep it (a
    block-sized piece at a block-aligned offset is uploaded as that buffer)."""
    digest = hashlib.sha256() if signed is not None and signed.payload != UNSIGNED else None
    left = length if length is not None else 1 << 62
    spare: bytes | memoryview = b""  # received bytes past the previous piece
    ended = False
    while left > 0 and not ended:
        want = min(piece, left)
        parts: list[bytes | memoryview] = []
        got = 0
        while got < want:
            if spare:
                data, spare = spare, b""
            else:
                data = await _readany(stream, want - got, timeout)
            if not data:
                if length is not None:
                    raise S3Error("IncompleteBody", "You did not provide the number of bytes specified by the "
                                  "Content-Length HTTP header.")
                ended = True
                break
            if len(data) > want - got:
                view = memoryview(data)
                data, spare = view[:want - got], view[want - got:]
            parts.append(data)
            got += len(data)
        if not got:
            break
        # One copy of the received pieces, into memory nobody zeroed first (bytearray(n) would).
        buf = parts[0] if len(parts) == 1 and type(parts[0]) is bytes else b"".join(parts)
        del parts
        left -= got
        if digest is not None:
            await hash_update(digest, buf)
        yield buf
    if digest is not None and signed is not None and digest.hexdigest() != signed.payload:
        raise S3Error("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match "
                      "what was computed.")


async def chunked_body(stream: Stream, signed: Signed, decoded_length: int | None, timeout: float,
                       trailers: Callable[[str, str], None] | None = None) -> AsyncIterator[bytes]:
    """The data of an aws-chunked payload (``<hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n`` … a
    0-size chunk, then trailers for the -TRAILER modes, each given to `trailers(name, value)` before the
    iterator ends). In STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER mode the trailer must carry its
    ``x-amz-trailer-signature`` (chained to the final chunk's): SignatureDoesNotMatch otherwise, before
    the iterator ends."""
    signed_chunks = signed.payload in (STREAMING, STREAMING_TRAILER)
    previous = signed.signature
    total = 0
    while True:
        head = (await _readline(stream, timeout)).decode("latin-1")
        size_text, _, ext = head.partition(";")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise S3Error("IncompleteBody", "An aws-chunked chunk size is not hexadecimal.") from None
        if size < 0 or size > MAX_CHUNK:
            raise S3Error("InvalidArgument", "An aws-chunked chunk is too large.")
        digest = hashlib.sha256() if signed_chunks else None
        left = size
        while left:
            piece = await _read(stream, min(PIECE, left), timeout)
            if not piece:
                raise S3Error("IncompleteBody", "The aws-chunked payload was cut short.")
            left -= len(piece)
            if digest is not None:
                await hash_update(digest, piece)
            yield piece
        total += size
        if digest is not None:
            name, _, sig = ext.partition("=")
            if name.strip() != "chunk-signature":
                raise S3Error("SignatureDoesNotMatch", "An aws-chunked chunk has no signature.")
            expected = signed.chunk_signature(previous, digest.hexdigest())
            if sig.strip() != expected:
                raise S3Error("SignatureDoesNotMatch", "An aws-chunked chunk signature does not match.")
            previous = expected
        if size == 0:
            break
        if await _readline(stream, timeout) != b"":
            raise S3Error("IncompleteBody", "An aws-chunked chunk does not end with CRLF.")
    if signed.payload in (STREAMING_TRAILER, STREAMING_UNSIGNED_TRAILER):
        received: list[tuple[str, str]] = []
        signature = None
        while (line := await _readline(stream, timeout)) != b"":
            if len(received) >= MAX_TRAILERS:
                raise S3Error("InvalidRequest", "Too many aws-chunked trailer headers.")
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                continue
            if name.strip().lower() == TRAILER_SIGNATURE:
                signature = value.strip()
            else:
                received.append((name, value))
        if signed.payload == STREAMING_TRAILER:
            # Signed mode: the trailer (the checksum among it) counts only under its own signature.
            if signature is None or not hmac.compare_digest(signed.trailer_signature(previous, received), signature):
                raise S3Error("SignatureDoesNotMatch", "The aws-chunked trailer signature is missing or does not "
                              "match.")
        if trailers is not None:
            for name, value in received:
                trailers(name, value)
    elif signed.payload == STREAMING:
        line = await _read(stream, 2, timeout)
        if line not in (b"\r\n", b""):
            raise S3Error("IncompleteBody", "The aws-chunked payload does not end with CRLF.")
    if decoded_length is not None and total != decoded_length:
        raise S3Error("IncompleteBody", "The aws-chunked payload length differs from x-amz-decoded-content-length.")

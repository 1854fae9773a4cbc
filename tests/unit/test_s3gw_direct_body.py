"""Big PUT bodies received straight into block-sized buffers (`jfs.adapters.s3gw.direct`): the bytes and
their piece boundaries are those sent, the keep-alive connection serves the next request afterwards, a
body that is cut short or refused unread closes the connection and the gateway keeps serving. The gateway
in-process over a stub object view, raw-socket clients signing with botocore."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import jfs.adapters.s3gw.server as server_module
from jfs.adapters.s3gw import direct
from jfs.adapters.s3gw.body import PIECE
from jfs.adapters.s3gw.server import Gateway, GatewayConfig, start_server
from jfs.app.objectview import ObjectError, ObjectInfo
from jfs.testing.servers import free_port


class _View:
    """Keeps what each PUT received: the pieces' types and sizes and the bytes."""

    def __init__(self) -> None:
        self.puts: list[tuple[str, list[tuple[type, int]], bytes]] = []
        self.failures: list[BaseException] = []
        self.direct_bodies = 0

    async def bucket_inode(self, bucket: str) -> int:
        if bucket != "vol":
            raise ObjectError("NoSuchBucket", "The specified bucket does not exist.", resource=bucket)
        return 1

    async def put_object(self, bucket: str, key: str, body: AsyncIterator[bytes], new: Any) -> ObjectInfo:
        await self.bucket_inode(bucket)
        pieces: list[tuple[type, int]] = []
        data = bytearray()
        try:
            async for piece in body:
                pieces.append((type(piece), len(piece)))
                data += piece
        except BaseException as exc:
            self.failures.append(exc)
            raise
        self.puts.append((key, pieces, bytes(data)))
        return ObjectInfo(key, len(data), new.md5.hexdigest(), time.time_ns())


def _put_head(port: int, key: str, body: bytes, expect: bool = False, bucket: str = "vol") -> bytes:
    headers = {"Host": f"127.0.0.1:{port}"}
    if expect:
        headers["Expect"] = "100-continue"
    req = AWSRequest("PUT", f"http://127.0.0.1:{port}/{bucket}/{key}", headers=headers, data=body)
    S3SigV4Auth(Credentials("ak", "sk"), "s3", "us-east-1").add_auth(req)
    req.headers["Content-Length"] = str(len(body))
    return (f"PUT /{bucket}/{key} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
            + "\r\n").encode()


async def _answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
    return head, body


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[_View, int]]:
    view = _View()

    def counting(*args: Any, **kwargs: Any) -> Any:
        body = direct.take(*args, **kwargs)
        view.direct_bodies += body is not None
        return body

    monkeypatch.setattr(server_module, "take_body", counting)
    port = free_port()
    runner = await start_server(Gateway(view, GatewayConfig("ak", "sk", read_timeout=2.0)),  # type: ignore[arg-type]
                                "127.0.0.1", port)
    try:
        yield view, port
    finally:
        await runner.cleanup()


async def test_bodies_arrive_whole_in_block_pieces_and_the_connection_goes_on(served: tuple[_View, int]) -> None:
    view, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    bodies = [os.urandom(2 * PIECE + 12345), os.urandom(PIECE), os.urandom(300 << 10)]
    for i, body in enumerate(bodies):
        writer.write(_put_head(port, f"k{i}", body, expect=True))
        head, _ = await _answer(reader)
        assert head.startswith(b"HTTP/1.1 100")
        writer.write(body)
        head, _ = await _answer(reader)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert f'ETag: "{hashlib.md5(body).hexdigest()}"'.encode() in head
    # Without Expect: the head and the first bytes of the body in one write (aiohttp takes them first).
    body = os.urandom(PIECE + 7)
    writer.write(_put_head(port, "k3", body) + body[:100_000])
    await asyncio.sleep(0.05)
    writer.write(body[100_000:])
    head, _ = await _answer(reader)
    assert head.startswith(b"HTTP/1.1 200"), head
    writer.close()
    assert view.direct_bodies == 4
    assert [key for key, _, _ in view.puts] == ["k0", "k1", "k2", "k3"]
    for (_, pieces, data), sent in zip(view.puts, [*bodies, body], strict=True):
        assert data == sent
        assert all(t is bytearray for t, _ in pieces)
        assert [n for _, n in pieces] == [min(PIECE, len(sent) - at) for at in range(0, len(sent), PIECE)]


async def test_a_bad_sha256_is_refused_after_the_body_and_the_connection_goes_on(served: tuple[_View, int]) -> None:
    view, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = os.urandom(PIECE + 1)
    other = os.urandom(len(body))  # signed, but not what is sent
    writer.write(_put_head(port, "bad", other) + body)
    head, xml = await _answer(reader)
    assert head.startswith(b"HTTP/1.1 400") and b"XAmzContentSHA256Mismatch" in xml
    assert not view.puts
    small = os.urandom(1000)
    writer.write(_put_head(port, "after", small) + small)  # same connection
    head, _ = await _answer(reader)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert [key for key, _, _ in view.puts] == ["after"]
    writer.close()


async def test_a_body_refused_unread_or_cut_short_closes_its_connection_only(served: tuple[_View, int]) -> None:
    view, port = served
    body = os.urandom(3 * PIECE)
    # Refused before its body is read (no such bucket): the answer closes the connection.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_put_head(port, "k", body, bucket="nobucket") + body[:PIECE])
    head, xml = await _answer(reader)
    assert head.startswith(b"HTTP/1.1 404") and b"NoSuchBucket" in xml
    assert b"Connection: close" in head
    writer.close()
    # Cut short: the client goes away midway; nothing is stored.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_put_head(port, "cut", body) + body[:PIECE + 10])
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    start = time.monotonic()
    while not view.failures:
        assert time.monotonic() - start < 5, "the cut-short body was not noticed"
        await asyncio.sleep(0.05)
    assert not view.puts
    # A stalled client: RequestTimeout after the read timeout.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_put_head(port, "stall", body) + body[:1000])
    head, xml = await _answer(reader)
    assert head.startswith(b"HTTP/1.1 400") and b"RequestTimeout" in xml
    writer.close()
    # The gateway still serves.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_put_head(port, "ok", body) + body)
    head, _ = await _answer(reader)
    assert head.startswith(b"HTTP/1.1 200"), head
    writer.close()
    assert [key for key, _, _ in view.puts] == ["ok"]

"""A GET whose client stops reading is dropped after the gateway's read timeout (its handle closed), and
one that reads is served in full: the gateway in-process over a stub object view, a raw-socket client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from jfs.adapters.s3gw.server import Gateway, GatewayConfig, start_server
from jfs.app.objectview import ObjectInfo
from jfs.testing.servers import free_port

SIZE = 64 << 20
PIECE = b"x" * (1 << 20)


class _Reader:
    def __init__(self) -> None:
        self.info = ObjectInfo("big", SIZE, "0" * 32, time.time_ns())
        self.closed_at: float | None = None

    async def chunks(self, start: int, end: int, size: int = 1 << 20) -> AsyncIterator[bytes]:
        for _ in range((end - start) // len(PIECE)):
            yield PIECE

    async def close(self) -> None:
        self.closed_at = time.monotonic()


class _View:
    def __init__(self) -> None:
        self.readers: list[_Reader] = []

    async def open_object(self, bucket: str, key: str) -> _Reader:
        self.readers.append(_Reader())
        return self.readers[-1]


def _signed_get(port: int) -> bytes:
    req = AWSRequest("GET", f"http://127.0.0.1:{port}/vol/big", headers={"Host": f"127.0.0.1:{port}"})
    S3SigV4Auth(Credentials("ak", "sk"), "s3", "us-east-1").add_auth(req)
    return ("GET /vol/big HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
            + "\r\n").encode()


async def test_a_client_that_stops_reading_is_dropped_and_a_reader_is_served() -> None:
    view: Any = _View()
    port = free_port()
    runner = await start_server(Gateway(view, GatewayConfig("ak", "sk", read_timeout=1.0)), "127.0.0.1", port)
    try:
        _, stalled = await asyncio.open_connection("127.0.0.1", port)
        stalled.transport.set_write_buffer_limits(0)
        stalled.write(_signed_get(port))  # and never reads the 64 MiB answer
        start = time.monotonic()
        while not view.readers or view.readers[0].closed_at is None:
            assert time.monotonic() - start < 10, "the stalled GET was never dropped"
            await asyncio.sleep(0.1)
        assert view.readers[0].closed_at - start >= 0.9
        stalled.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_signed_get(port))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and f"Content-Length: {SIZE}".encode() in head
        got = 0
        while got < SIZE:
            piece = await reader.read(1 << 20)
            assert piece
            got += len(piece)
        assert got == SIZE
        writer.close()
    finally:
        await runner.cleanup()

"""`plain_body` over a stream that hands its received buffers as they came (aiohttp's ``readchunk``, or
``readany``): block-sized pieces whatever the receive sizes, the bytes unchanged, short bodies and cut-off
bodies, HTTP chunk ends that are not the body's end."""

from __future__ import annotations

import asyncio
import os

import pytest

from jfs.adapters.s3gw.body import plain_body
from jfs.adapters.s3gw.errors import S3Error


class ReceivedBuffers:
    """A request body arriving in the given receive sizes (then EOF: b"")."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.pieces: list[bytes] = []
        at = 0
        for n in sizes:
            self.pieces.append(data[at:at + n])
            at += n
        if at < len(data):
            self.pieces.append(data[at:])

    async def readany(self) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    async def read(self, n: int = -1) -> bytes:  # pragma: no cover - readany is preferred
        raise AssertionError("read() used although readany() exists")

    async def readline(self) -> bytes:  # pragma: no cover
        raise AssertionError


async def _pieces(stream: ReceivedBuffers, length: int | None, piece: int) -> list[bytes]:
    return [bytes(p) async for p in plain_body(stream, length, None, 5, piece)]


@pytest.mark.parametrize("sizes", [[7] * 40, [1000], [3, 200, 5, 64, 1], [16] * 20])
def test_pieces_are_piece_sized_and_bytes_unchanged(sizes: list[int]) -> None:
    data = os.urandom(300)
    pieces = asyncio.run(_pieces(ReceivedBuffers(data, sizes), len(data), 64))
    assert b"".join(pieces) == data
    assert [len(p) for p in pieces] == [64] * 4 + [44]


def test_unknown_length_ends_at_eof_with_a_short_piece() -> None:
    data = os.urandom(150)
    pieces = asyncio.run(_pieces(ReceivedBuffers(data, [50, 50, 50]), None, 64))
    assert b"".join(pieces) == data and [len(p) for p in pieces] == [64, 64, 22]


def test_whole_received_buffer_kept_when_it_is_one_piece() -> None:
    data = os.urandom(128)
    stream = ReceivedBuffers(data, [64, 64])
    first = stream.pieces[0]
    pieces = asyncio.run(_pieces(stream, len(data), 64))
    assert pieces[0] is first  # a piece received whole is yielded as that buffer: no join


def test_cut_off_body_is_incomplete() -> None:
    data = os.urandom(100)
    with pytest.raises(S3Error) as exc:
        asyncio.run(_pieces(ReceivedBuffers(data, [60]), 200, 64))
    assert exc.value.code == "IncompleteBody"


class ReceivedChunks(ReceivedBuffers):
    """The same, read through aiohttp's ``readchunk`` (preferred: ``readany`` joins what is buffered); an
    HTTP chunk end is ``(b"", True)``, the body's end ``(b"", False)``."""

    def __init__(self, data: bytes, sizes: list[int], chunk_ends: int = 0) -> None:
        super().__init__(data, sizes)
        self.chunk_ends = chunk_ends

    async def readchunk(self) -> tuple[bytes, bool]:
        if self.chunk_ends:
            self.chunk_ends -= 1
            return b"", True
        return (self.pieces.pop(0), False) if self.pieces else (b"", False)

    async def readany(self) -> bytes:  # pragma: no cover - readchunk is preferred
        raise AssertionError("readany() used although readchunk() exists")


@pytest.mark.parametrize("chunk_ends", [0, 3])
def test_readchunk_preferred_and_http_chunk_ends_are_not_the_end(chunk_ends: int) -> None:
    data = os.urandom(300)
    stream = ReceivedChunks(data, [64, 100, 36, 100], chunk_ends)
    first = stream.pieces[0]
    pieces = asyncio.run(_pieces(stream, None, 64))
    assert b"".join(pieces) == data and [len(p) for p in pieces] == [64] * 4 + [44]
    assert pieces[0] is first

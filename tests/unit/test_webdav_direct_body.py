"""`DirectBodies`: request bodies of known length received straight from the socket, with what cheroot
buffered past the headers first, and cheroot's own count of what is left kept current."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from cheroot.makefile import StreamReader
from cheroot.server import KnownLengthRFile

from jfs.adapters.webdav.middleware import DirectBodies, DirectBody

_open: list[socket.socket] = []
_senders: list[threading.Thread] = []


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    yield
    for a in _open[::2]:  # the reading ends: a sender blocked on a full socket gets EPIPE and ends
        a.shutdown(socket.SHUT_RDWR)
    while _senders:
        _senders.pop().join(10)
    while _open:
        _open.pop().close()


def _reader(payload: bytes, *, close: bool = True) -> tuple[StreamReader, socket.socket]:
    a, b = socket.socketpair()
    _open.extend((a, b))

    def send() -> None:
        try:
            b.sendall(payload)
            if close:
                b.shutdown(socket.SHUT_WR)
        except OSError:  # the test ended before reading everything
            pass

    sender = threading.Thread(target=send, daemon=True)
    _senders.append(sender)
    sender.start()
    return StreamReader(a, "rb"), b


def test_body_after_buffered_headers_is_read_whole() -> None:
    body = os.urandom(3 * (1 << 20) + 17)
    r, peer = _reader(b"PUT /x HTTP/1.1\r\n\r\n" + body)
    assert r.readline() == b"PUT /x HTTP/1.1\r\n"
    assert r.readline() == b"\r\n"
    outer = KnownLengthRFile(r, len(body))
    direct = DirectBody(outer)
    parts = []
    while chunk := direct.read(1 << 20):
        assert len(chunk) <= 1 << 20
        parts.append(bytes(chunk))
    assert b"".join(parts) == body
    assert outer.remaining == 0 and direct.read(10) == b""


def test_short_body_ends_early_and_leaves_remaining() -> None:
    r, peer = _reader(b"abc")
    outer = KnownLengthRFile(r, 10)
    direct = DirectBody(outer)
    assert direct.read(1 << 20) == b"abc"
    assert outer.remaining == 7
    assert direct.read(1 << 20) == b""


def test_middleware_wraps_only_known_length_bodies() -> None:
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["wsgi.input"])
        return []

    r, peer = _reader(b"hello")
    mw = DirectBodies(app)
    mw({"wsgi.input": KnownLengthRFile(r, 5)}, lambda *a: None)
    assert isinstance(seen[-1], DirectBody) and seen[-1].read() == b"hello"
    plain = object()
    mw({"wsgi.input": plain}, lambda *a: None)
    assert seen[-1] is plain

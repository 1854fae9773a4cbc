"""`DirectStreamWriter`: big response pieces go to the socket from the caller's buffer, whole and in order
with the small ones around them; held response headers go out with the first body piece or at the end;
`keep_block_buffers` takes on glibc."""

from __future__ import annotations

import os
import platform
import socket
import threading

from jfs.adapters.malloc_tuning import keep_block_buffers
from jfs.adapters.webdav.server import DIRECT_WRITE_MIN, DirectStreamWriter


def _drain(sock: socket.socket, out: bytearray) -> threading.Thread:
    def run() -> None:
        while chunk := sock.recv(1 << 16):
            out.extend(chunk)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_big_and_small_pieces_arrive_whole_and_in_order() -> None:
    a, b = socket.socketpair()
    a.settimeout(10)  # as cheroot's sockets: partial sends happen
    got = bytearray()
    reader = _drain(b, got)
    w = DirectStreamWriter(a, "wb")
    big = os.urandom(6 << 20)
    pieces = [b"HTTP/1.1 200 OK\r\n\r\n", big, memoryview(big)[:DIRECT_WRITE_MIN], b"x" * 10, bytearray(b"end")]
    for p in pieces:
        assert w.write(p) == len(p)
    w.flush()
    assert w.bytes_written == sum(len(p) for p in pieces)
    a.shutdown(socket.SHUT_WR)
    reader.join(10)
    assert bytes(got) == b"".join(bytes(p) for p in pieces)
    w.close()
    a.close()
    b.close()


def test_keep_block_buffers_on_glibc() -> None:
    if platform.libc_ver()[0] != "glibc":
        return
    assert keep_block_buffers() is True


def test_held_headers_go_with_the_first_body_piece_or_at_the_end() -> None:
    a, b = socket.socketpair()
    a.settimeout(10)
    got = bytearray()
    reader = _drain(b, got)
    w = DirectStreamWriter(a, "wb")
    w.hold_next_write()
    assert w.write(b"HTTP/1.1 200 OK\r\n\r\n") == 19
    w.write(b"body")  # small: one send with the headers
    w.hold_next_write()
    w.write(b"HTTP/1.1 200 OK\r\n\r\n")
    big = os.urandom(DIRECT_WRITE_MIN * 3)
    w.write(big)  # big: the headers first, then the piece from its buffer
    w.hold_next_write()
    w.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    w.send_held()  # no body: sent when the request is done
    assert w.bytes_written == 19 + 4 + 19 + len(big) + len(b"HTTP/1.1 204 No Content\r\n\r\n")
    a.shutdown(socket.SHUT_WR)
    reader.join(10)
    assert bytes(got) == (b"HTTP/1.1 200 OK\r\n\r\nbody" + b"HTTP/1.1 200 OK\r\n\r\n" + big
                          + b"HTTP/1.1 204 No Content\r\n\r\n")
    w.close()
    a.close()
    b.close()

"""`LineReader`: cheroot's socket reader with buffered lines cut out by one ``find`` — the same lines,
byte counts and leftovers as cheroot's own reader, whether a line is buffered whole, split across
``recv``s, or longer than the caller's limit."""

from __future__ import annotations

import socket
import threading
import time

from cheroot.makefile import StreamReader

from jfs.adapters.webdav.server import LineReader

REQUEST = b"GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Basic abc\r\n\r\nbody"


def _read_all(cls: type, pieces: list[bytes], limits: list[int]) -> tuple[list[bytes], int, bytes, bool]:
    a, b = socket.socketpair()
    try:
        def send() -> None:
            for p in pieces:
                a.sendall(p)
                time.sleep(0.02)  # separate recv()s

        sender = threading.Thread(target=send)
        sender.start()
        r = cls(b, "rb", 8192)
        lines = [r.readline(n) for n in limits]
        sender.join()
        buffered = r.has_data()
        rest = r.read(4)
        return lines, r.bytes_read, rest, buffered
    finally:
        a.close()
        b.close()


def test_lines_as_cheroot_reads_them() -> None:
    for pieces in ([REQUEST], [REQUEST[:5], REQUEST[5:30], REQUEST[30:]]):
        for limits in ([-1, -1, -1, -1], [256, 4, -1, -1, -1]):
            ours = _read_all(LineReader, pieces, limits)
            theirs = _read_all(StreamReader, pieces, limits)
            assert ours == theirs, (pieces, limits)
            assert ours[2] == b"body"


def test_a_buffered_line_takes_one_find() -> None:
    lines, count, rest, buffered = _read_all(LineReader, [REQUEST], [-1, -1, -1, -1])
    assert lines == [b"GET /a HTTP/1.1\r\n", b"Host: x\r\n", b"Authorization: Basic abc\r\n", b"\r\n"]
    assert count == len(REQUEST)
    assert buffered

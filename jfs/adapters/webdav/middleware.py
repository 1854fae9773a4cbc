"""WSGI middleware around WsgiDAV: the access log, gzip of compressible responses, and a faster reader of
request bodies."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import structlog

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

access_log = structlog.get_logger("jfs.webdav.access")

_COMPRESSIBLE = ("text/", "application/xml", "application/json", "application/javascript")


class AccessLog:
    """One log event per request when its response is done: method, path, status, bytes sent, seconds,
    user and client address."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        started = time.monotonic()
        status: list[str] = ["-"]

        def start(st: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = st.split(" ", 1)[0]
            return start_response(st, headers, exc_info) if exc_info else start_response(st, headers)

        sent = 0
        result = self.app(environ, start)
        try:
            for chunk in result:
                sent += len(chunk)
                yield chunk
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
            access_log.info(
                "request", method=environ.get("REQUEST_METHOD"), path=environ.get("PATH_INFO"),
                status=status[0], bytes=sent, seconds=round(time.monotonic() - started, 6),
                user=environ.get("wsgidav.user_name") or "-", client=environ.get("REMOTE_ADDR"),
            )


class RejectBadPaths:
    """400 for a request path with a ``.``/``..`` segment or a NUL, before WsgiDAV sees it (WsgiDAV
    would resolve ``..`` itself, and its own refusal of a path above the root sends an empty body with a
    non-zero Content-Length)."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if "\0" in path or any(seg in (".", "..") for seg in path.split("/")):
            body = b"400 Bad Request: invalid path\n"
            start_response("400 Bad Request", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)


class Gzip:
    """Compress 200/207 responses of textual types (PROPFIND's XML, listings) for clients that accept
    gzip. Ranged and HEAD responses are left alone; the body is compressed as it streams."""

    def __init__(self, app: WsgiApp, level: int = 6) -> None:
        self.app = app
        self.level = level

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if "gzip" not in environ.get("HTTP_ACCEPT_ENCODING", "") or environ.get("REQUEST_METHOD") == "HEAD":
            return self.app(environ, start_response)
        compress: list[bool] = [False]

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            names = {k.lower(): v for k, v in headers}
            ctype = names.get("content-type", "")
            if (status[:3] in ("200", "207") and "content-encoding" not in names
                    and "content-range" not in names and ctype.startswith(_COMPRESSIBLE)):
                compress[0] = True
                headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "etag")]
                headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self._stream(self.app(environ, start), compress)

    def _stream(self, result: Iterable[bytes], compress: list[bool]) -> Iterator[bytes]:
        try:
            it = iter(result)
            first = next(it, None)
            if not compress[0]:
                if first is not None:
                    yield first
                yield from it
                return
            z = zlib.compressobj(self.level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            for chunk in ([first] if first is not None else []):
                if out := z.compress(chunk):
                    yield out
            for chunk in it:
                if out := z.compress(chunk):
                    yield out
            yield z.flush()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


class DirectBody:
    """A request body of known length received straight into the buffer handed out.

    cheroot's socket reader is `_pyio.BufferedReader`: its ``read(n)`` asks the socket for n bytes per
    ``recv`` (a fresh n-byte buffer each time, for the 64 KiB or so a ``recv`` returns) and joins the
    pieces, which for WsgiDAV's 1 MiB reads of a PUT body costs more CPU than storing the data. Here what
    cheroot has buffered past the headers is taken first (``read1``), then the socket receives into our
    buffer directly (its ``readinto``; `_pyio`'s own ``readinto`` fails on memoryview slices)."""

    def __init__(self, outer: Any) -> None:
        self._outer = outer
        """cheroot's reader of the body: its ``remaining`` is kept current (cheroot drains the rest after
        the response)."""
        self._rfile = outer.rfile

    @property
    def remaining(self) -> int:
        n: int = self._outer.remaining
        return n

    def read(self, size: int | None = None) -> bytes | bytearray:
        n = self.remaining if size is None or size < 0 else min(size, self.remaining)
        if n <= 0:
            return b""
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        if self._rfile.has_data():  # what cheroot read past the headers
            head = self._rfile.read1(n)
            view[:len(head)] = head
            got = len(head)
        while got < n:
            k = self._rfile.raw.readinto(view[got:])
            if not k:
                break  # the client hung up: a short body, as cheroot's own reader reports it
            got += k
        view.release()
        self._outer.remaining -= got
        self._rfile.bytes_read += got
        if got < n:
            del buf[got:]
        return buf

    def readline(self, size: int | None = None) -> bytes:
        n = self.remaining if size is None or size < 0 else min(size, self.remaining)
        line: bytes = self._rfile.readline(n)
        self._outer.remaining -= len(line)
        return line

    def readlines(self, sizehint: int = 0) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def close(self) -> None:
        """The connection's reader stays open: cheroot owns it."""


class DirectBodies:
    """Give WsgiDAV request bodies of known length through `DirectBody` (cheroot's own body reader
    otherwise; chunked bodies and other servers' readers are left alone)."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = environ.get("wsgi.input")
        rfile = getattr(body, "rfile", None)
        remaining = getattr(body, "remaining", None)
        if (type(body).__name__ == "KnownLengthRFile" and isinstance(remaining, int) and remaining > 0
                and hasattr(rfile, "has_data") and hasattr(rfile, "read1") and hasattr(rfile, "bytes_read")
                and hasattr(getattr(rfile, "raw", None), "readinto")):
            environ["wsgi.input"] = DirectBody(body)
        return self.app(environ, start_response)

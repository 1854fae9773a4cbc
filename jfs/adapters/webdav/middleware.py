"""WSGI middleware around WsgiDAV: the access log and gzip of compressible responses."""

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

"""`PlainRequests`: the plain GET of a small file and the plain PUT of a small body answered in front of
WsgiDAV's whole stack.

`SmallFiles` (ADR 0041) already answers such requests in one trip to the SDK's loop, but only after the
request went through `RejectBadPaths`, the lock table's per-request wrapper, `WsgiDAVApp` (path
re-encoding and normalisation, provider resolution, its start_response wrapper), `ErrorPrinter` and
`HTTPAuthenticator` (and, for a PUT, `DirectBodies`). This wrapper, outermost but for Gzip and the
access log, takes a request only when WsgiDAV's stack would do nothing but pass it on to `SmallFiles`:

* a GET with no query string, no Range, no conditional header, Depth 0 or none, no body, no
  Transfer-Encoding; or a PUT with no query string and a body `SmallFiles` takes (`answer_put`), to a
  writable volume;
* the request is authenticated exactly as `HTTPAuthenticator` would accept it without a challenge:
  anonymous serving, or an ``Authorization`` header equal to the one Basic header of the configured
  user (compared in constant time); anything else (Digest, another user, a wrong password) goes the
  long way and gets WsgiDAV's answer;
* the path passes `RejectBadPaths` and WsgiDAV's own UTF-8 re-encoding and normalisation (the path
  looked up is the one WsgiDAV would look up).

Then it answers what `SmallFiles` answers (`answer_get`, `answer_put`). Otherwise — the GET's target is
not a small regular file, the PUT meets a lock or cannot open its file, or the trip fails — the request
goes to the stack with the environ untouched but for what was done already: the GET's lookup (the
provider's per-request cache, keyed by the same normalised path: no trip repeated) and the PUT's body
(replayed). A PUT that met a lock costs WsgiDAV one more read of the lock table than inside the stack
(its snapshot is per request of `VolumeLockStorage.per_request`, which has not begun yet).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable
from typing import Any

from wsgidav import util
from wsgidav.dav_error import DAVError

from jfs.adapters.webdav.middleware import StartResponse, WsgiApp
from jfs.adapters.webdav.provider import JfsProvider, content_length
from jfs.adapters.webdav.small_files import NOT_PLAIN_GET, NOT_PLAIN_PUT, answer_get, answer_put

_NOT_PLAIN = {"GET": (*NOT_PLAIN_GET, "HTTP_TRANSFER_ENCODING"), "PUT": (*NOT_PLAIN_PUT, "HTTP_TRANSFER_ENCODING")}


def basic_authorization(user: str, password: str) -> str:
    """The ``Authorization`` header value of HTTP Basic for `user` and `password` (UTF-8, as WsgiDAV
    decodes it)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class PlainRequests:
    """WSGI wrapper of the `jfs webdav` stack (see the module). `authorization` is the only
    ``Authorization`` value accepted here (None: anonymous serving, no header needed)."""

    def __init__(self, app: WsgiApp, provider: JfsProvider, authorization: str | None) -> None:
        self.app = app
        self.provider = provider
        self._auth = authorization.encode() if authorization is not None else None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method in _NOT_PLAIN:
            path = self._plain_path(environ, method)
            if path is not None:
                environ["wsgidav.provider"] = self.provider  # what WsgiDAV's resources are made with
                try:
                    answer = (answer_get if method == "GET" else answer_put)(self.provider, path, environ,
                                                                            start_response)
                except DAVError:  # WsgiDAV's stack tries again and answers with its error page
                    answer = None
                if answer is not None:
                    return answer
        return self.app(environ, start_response)

    def _plain_path(self, environ: dict[str, Any], method: str) -> str | None:
        """The normalised path WsgiDAV would look up, if the request is a plain, authenticated GET or PUT."""
        if environ.get("QUERY_STRING") or any(name in environ for name in _NOT_PLAIN[method]):
            return None  # a query: WsgiDAV's authenticator and browser read it ("logout", "davmount")
        if method == "GET" and (content_length(environ) or environ.get("HTTP_DEPTH", "0") != "0"):
            return None
        if method == "PUT" and self.provider.is_readonly():
            return None
        if self._auth is not None:
            given = environ.get("HTTP_AUTHORIZATION")
            if given is None or not hmac.compare_digest(given.encode("latin-1", "replace"), self._auth):
                return None
        raw: str = environ.get("PATH_INFO", "")
        if "\0" in raw or any(seg in (".", "..") for seg in raw.split("/")):
            return None  # RejectBadPaths answers
        try:
            path: str = util.normalize_path(util.re_encode_wsgi(raw))
        except Exception:  # noqa: BLE001 - not UTF-8, above the root: WsgiDAV answers
            return None
        return path

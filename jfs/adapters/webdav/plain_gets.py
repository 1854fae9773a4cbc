"""`PlainGets`: the plain GET of a small file answered in front of WsgiDAV's whole stack.

`SmallFiles` (ADR 0041) already answers such a GET in one trip to the SDK's loop, but only after the
request went through `RejectBadPaths`, the lock table's per-request wrapper, `WsgiDAVApp` (path
re-encoding and normalisation, provider resolution, its start_response wrapper), `ErrorPrinter` and
`HTTPAuthenticator`. For a 4 KiB GET that is a tenth or so of the server's CPU per request. This
wrapper, outermost but for Gzip and the access log, takes a GET only when WsgiDAV's stack would do
nothing but pass it on:

* the method is GET, with no query string, no Range, no conditional header, Depth 0 or none, no body, no
  Transfer-Encoding;
* the request is authenticated exactly as `HTTPAuthenticator` would accept it without a challenge:
  anonymous serving, or an ``Authorization`` header equal to the one Basic header of the configured
  user (compared in constant time); anything else (Digest, another user, a wrong password) goes the
  long way and gets WsgiDAV's answer;
* the path passes `RejectBadPaths` and WsgiDAV's own UTF-8 re-encoding and normalisation (the path
  looked up is the one WsgiDAV would look up).

Then it answers what `SmallFiles` answers (`answer_get`); when the target is not a small regular file, or
on an error of the lookup, the request goes to the stack with the environ untouched but for the lookup already made
(the provider's per-request cache, keyed by the same normalised path), so the answer is WsgiDAV's and no
trip is repeated.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable
from typing import Any

from wsgidav import util
from wsgidav.dav_error import DAVError

from jfs.adapters.webdav.middleware import StartResponse, WsgiApp
from jfs.adapters.webdav.provider import JfsProvider
from jfs.adapters.webdav.small_files import _NOT_PLAIN_GET, answer_get

_NOT_PLAIN = (*_NOT_PLAIN_GET, "HTTP_TRANSFER_ENCODING")


def basic_authorization(user: str, password: str) -> str:
    """The ``Authorization`` header value of HTTP Basic for `user` and `password` (UTF-8, as WsgiDAV
    decodes it)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class PlainGets:
    """WSGI wrapper of the `jfs webdav` stack (see the module). `authorization` is the only
    ``Authorization`` value accepted here (None: anonymous serving, no header needed)."""

    def __init__(self, app: WsgiApp, provider: JfsProvider, authorization: str | None) -> None:
        self.app = app
        self.provider = provider
        self._auth = authorization.encode() if authorization is not None else None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "GET":
            path = self._plain_path(environ)
            if path is not None:
                environ["wsgidav.provider"] = self.provider  # what WsgiDAV's resources are made with
                try:
                    answer = answer_get(self.provider, path, environ, start_response)
                except DAVError:  # WsgiDAV's stack makes the lookup again and answers with its error page
                    answer = None
                if answer is not None:
                    return answer
        return self.app(environ, start_response)

    def _plain_path(self, environ: dict[str, Any]) -> str | None:
        """The normalised path WsgiDAV would look up, if the request is a plain, authenticated GET."""
        if environ.get("CONTENT_LENGTH") or environ.get("HTTP_DEPTH", "0") != "0" or environ.get("QUERY_STRING"):
            return None  # a query: WsgiDAV's authenticator and browser read it ("logout", "davmount")
        if any(name in environ for name in _NOT_PLAIN):
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

"""`SmallFiles`: the plain GET of a small file and the plain PUT of a small body, each answered with one trip to
the SDK's loop and without WsgiDAV's per-request machinery (request resolver, request server, If-header
evaluation, lock-manager queries, directory browser). Anything else — and these, as soon as one condition
does not hold — goes on to WsgiDAV with what was already read handed over (the lookup, the lock snapshot,
the body), so the answer is WsgiDAV's own.

"Plain" means what WsgiDAV would do nothing special for:

* GET: no Range, no conditional header (If, If-Match, If-None-Match, If-(Un)Modified-Since), Depth 0 or
  none, no body; the target is a regular file of at most `JfsProvider.block_size` bytes, read with its
  attributes in the provider's one-trip lookup. The response carries WsgiDAV's headers for a 200
  (Content-Length, Last-Modified, Content-Type, Date, ETag, Accept-Ranges).
* PUT: a Content-Length of at most `JfsProvider.block_size`, no Content-Encoding / Content-Range /
  conditional header / X-OC-Mtime, a writable volume, and no live WebDAV lock rooted at the target or
  above it (read in the same trip as the write: a lock below cannot apply to a file). The body is read
  whole first; then one trip creates the file (O_EXCL: 201) or truncates the existing one (204), writes
  it and closes it — the slice is committed before the answer, as ADR 0012 promises — and reads the
  inode's attributes for the ETag. If the open fails (no parent, a directory in the way, a permission) nothing
  was written, and WsgiDAV handles the request from the start with the body replayed. A write or close
  that fails removes a file this request created and answers with the errno's status, as WsgiDAV's path
  does.

While the PUT's trip runs, this process grants no WebDAV lock on the target (WsgiDAV's write marker,
set before the lock table is read): the check and the write cannot be split by a LOCK of another
worker of this server, as in WsgiDAV's own `write_transaction`.
"""

from __future__ import annotations

import functools
import io
import math
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from wsgidav import util
from wsgidav.dav_error import HTTP_CREATED, HTTP_NO_CONTENT, DAVError
from wsgidav.lock_man.lock_manager import normalize_lock_root
from wsgidav.mw.base_mw import BaseMiddleware

from jfs.adapters.webdav.locks import VolumeLockStorage
from jfs.adapters.webdav.middleware import StartResponse
from jfs.adapters.webdav.provider import FileResource, JfsProvider, content_length, mime_type, translated
from jfs.sdk.stat import stat_result

_CONDITIONAL = ("HTTP_IF", "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
                "HTTP_IF_UNMODIFIED_SINCE")
NOT_PLAIN_GET = (*_CONDITIONAL, "HTTP_RANGE")
NOT_PLAIN_PUT = (*_CONDITIONAL, "HTTP_CONTENT_ENCODING", "HTTP_CONTENT_RANGE", "HTTP_X_OC_MTIME")
"""Request headers (WSGI names) that make a GET / PUT not plain: WsgiDAV answers it."""

_FALL_BACK = object()
"""What the PUT's trip returns when WsgiDAV must handle the request (nothing was written)."""


class SmallFiles(BaseMiddleware):  # type: ignore[misc]
    """WsgiDAV middleware (after authentication, before the directory browser): see the module."""

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        provider = environ.get("wsgidav.provider")
        if isinstance(provider, JfsProvider):
            method = environ["REQUEST_METHOD"]
            answer: Iterable[bytes] | None
            if method == "GET" and _plain(environ, NOT_PLAIN_GET) and not content_length(environ):
                answer = self._get(provider, environ, start_response)
                if answer is not None:
                    return answer
            elif method == "PUT" and _plain(environ, NOT_PLAIN_PUT) and not provider.is_readonly():
                answer = self._put(provider, environ, start_response)
                if answer is not None:
                    return answer
        result: Iterable[bytes] = self.next_app(environ, start_response)
        return result

    # ---- GET

    def _get(self, provider: JfsProvider, environ: dict[str, Any],
             start_response: StartResponse) -> list[bytes] | None:
        if environ.get("HTTP_DEPTH", "0") != "0":
            return None
        return answer_get(provider, environ["PATH_INFO"], environ, start_response)

    # ---- PUT

    def _put(self, provider: JfsProvider, environ: dict[str, Any],
             start_response: StartResponse) -> Iterable[bytes] | None:
        return answer_put(provider, environ["PATH_INFO"], environ, start_response)


def answer_get(provider: JfsProvider, path: str, environ: dict[str, Any],
               start_response: StartResponse) -> list[bytes] | None:
    """The 200 answer to a plain GET of `path` (a normalised URL path) if it is a file of at most a block,
    read with its attributes in one trip (`JfsProvider._prefetch`); None otherwise, with the lookup left
    in `environ` for WsgiDAV."""
    res = provider.get_resource_inst(path, environ)
    if not isinstance(res, FileResource) or res.prefetched is None:
        return None
    data, res.prefetched = res.prefetched, None
    start_response("200 OK", get_headers(res.st, res.name, len(data)))
    return [data]


def answer_put(provider: JfsProvider, path: str, environ: dict[str, Any],
               start_response: StartResponse) -> Iterable[bytes] | None:
    """The 201/204 answer to a plain PUT of a small body to `path` (a normalised URL path), stored in one
    trip (`store`); None when WsgiDAV must handle it (nothing written; the body is replayed from
    ``wsgi.input`` and, inside `VolumeLockStorage.per_request`, the lock snapshot read is kept)."""
    length = content_length(environ)
    if length is None or length > provider.block_size or path.endswith("/"):
        return None
    try:
        fs_path = provider.fs_path(path)
    except DAVError:
        return None
    if fs_path == "/" or not provider.may_serve(fs_path):
        return None
    data = _read_body(environ, length)
    environ["wsgidav.all_input_read"] = 1
    if len(data) != length:  # the client hung up: WsgiDAV's path fails it as always
        return None
    lock_man = provider.lock_manager
    locks = provider.lock_table if lock_man is not None else None
    if lock_man is not None and locks is None:
        return None  # locks this middleware cannot read on the loop: WsgiDAV checks them
    ref_url = quote(provider.share_path + fs_path)  # what WsgiDAV keys locks and write markers by
    with _write_marker(lock_man, ref_url), translated():
        outcome, snapshot = provider.client.run(store(provider, locks, fs_path, ref_url, data))
    if outcome is _FALL_BACK:
        if locks is not None and snapshot is not None:
            locks.prime(snapshot)
        return None
    created, st = outcome
    etag = util.checked_etag(etag_of(st))
    result: Iterable[bytes] = util.send_status_response(
        environ, start_response, HTTP_CREATED if created else HTTP_NO_CONTENT,
        add_headers=[("ETag", f'"{etag}"')])
    return result


def get_headers(st: os.stat_result, name: str, length: int) -> list[tuple[str, str]]:
    """WsgiDAV's headers of a 200 answer to a plain GET of a file (in WsgiDAV's order)."""
    return [
        ("Content-Length", str(length)),
        ("Last-Modified", http_date(st.st_mtime)),
        ("Content-Type", mime_type(os.path.splitext(name)[1].lower())),
        ("Date", http_date(time.time())),
        ("ETag", f'"{etag_of(st)}"'),
        ("Accept-Ranges", "bytes"),
    ]


def http_date(secs: float) -> str:
    """`util.get_rfc1123_time(secs)` (which drops the fraction), formatted once per second."""
    return _http_date_of(math.floor(secs))


@functools.lru_cache(maxsize=1024)
def _http_date_of(second: int) -> str:
    return str(util.get_rfc1123_time(second))


def etag_of(st: os.stat_result) -> str:
    """WsgiDAV's ETag of a file of `JfsProvider` (without quotes)."""
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


async def store(provider: JfsProvider, locks: VolumeLockStorage | None, fs_path: str, ref_url: str,
                data: bytes) -> tuple[Any, Any]:
    """On the client's loop: the lock table (any lock at or above `ref_url`: `_FALL_BACK` and the snapshot),
    then create-or-truncate, write, close, stat. ((created, stat), None) or (`_FALL_BACK`, snapshot or
    None); a failed write or close removes a file this call created and raises."""
    aio = provider.client.aio
    if locks is not None:
        snapshot = await locks.read_snapshot()
        if locks.any_at_or_above(snapshot, ref_url):
            return _FALL_BACK, snapshot
    try:
        f = await aio.open(fs_path, "xb")
        created = True
    except FileExistsError:
        try:
            f = await aio.open(fs_path, "wb")
        except OSError:
            return _FALL_BACK, None
        created = False
    except OSError:
        return _FALL_BACK, None
    try:
        try:
            await f.write(data)
        finally:
            await f.close()
        # The attributes by inode, not by path: one key read instead of a path walk and a lookup
        # (parent, entry, attributes) — 64 against 140 µs of loop CPU here — and the ETag is that of
        # the file written even if it was renamed meanwhile.
        st = stat_result(f.ino, await aio.client.vfs.getattr(aio.ctx, f.ino))
    except BaseException:
        if created:
            try:
                await aio.remove(fs_path)
            except OSError:
                pass
        raise
    return (created, st), None


def _plain(environ: dict[str, Any], unwanted: tuple[str, ...]) -> bool:
    return not any(name in environ for name in unwanted)


def _read_body(environ: dict[str, Any], length: int) -> bytes:
    """The whole body (shorter when the client hung up); WsgiDAV gets it replayed if it handles the
    request after all."""
    body = environ["wsgi.input"]
    chunks = []
    got = 0
    while got < length:
        chunk = body.read(length - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    data = b"".join(chunks)
    environ["wsgi.input"] = io.BytesIO(data)
    return data


@contextmanager
def _write_marker(lock_man: Any, ref_url: str) -> Iterator[None]:
    """WsgiDAV's "being written" marker on `ref_url` (what its `write_transaction` sets after the permission
    check, which this PUT makes itself on the loop): while it is set, this process grants no lock on
    `ref_url`. Lock managers without the marker (WsgiDAV before 4.4) have nothing to set."""
    marks: dict[str, int] | None = getattr(lock_man, "_active_writes", None)
    rw = getattr(lock_man, "_lock", None)
    if marks is None or rw is None:
        yield
        return
    url = normalize_lock_root(ref_url)
    rw.acquire_write()
    try:
        marks[url] = marks.get(url, 0) + 1
    finally:
        rw.release()
    try:
        yield
    finally:
        rw.acquire_write()
        try:
            count = marks.get(url, 0) - 1
            if count <= 0:
                marks.pop(url, None)
            else:
                marks[url] = count
        finally:
            rw.release()


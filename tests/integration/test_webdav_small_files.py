"""`SmallFiles`, the one-trip path of plain small GETs and PUTs: the same answers as WsgiDAV's own path
(status, headers, body) for every case it takes or hands over — new file, overwrite, empty body, a
directory or a missing parent in the way, Range, conditional headers, locks with and without their token —
and WsgiDAV's write marker held while it writes. The two WSGI applications (shortcut on and off) serve one
SQLite + file volume in-process."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from wsgidav import wsgidav_app
from wsgidav.dav_error import DAVError
from wsgidav.lock_man.lock_manager import LockManager
from wsgidav.lock_man.lock_storage import LockStorageDict

import jfs
from jfs.adapters.webdav.server import DavOptions, build_app
from jfs.adapters.webdav.small_files import _write_marker
from jfs.testing.mounts import format_volume

USER, PASSWORD = "u", "p"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
VARYING = {"date", "etag", "last-modified", "www-authenticate"}
"""Headers whose values differ between two equal requests on two files (a Digest challenge: its nonce)."""


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def shape(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """What must be equal between the two paths (lock tokens and paths in bodies masked)."""
        headers = [(k.lower(), "*" if k.lower() in VARYING else v) for k, v in self.headers]
        body = re.sub(rb"/[ab]/", b"/X/", self.body)
        body = re.sub(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+", b"TIME", body)  # error pages' time
        return self.status, headers, body


class Dav:
    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, method: str, path: str, body: bytes | None = None, **headers: str) -> Answer:
        path, _, query = path.partition("?")
        environ: dict[str, Any] = {
            # PEP 3333: PATH_INFO holds the URL's bytes as latin-1 (WsgiDAV re-decodes them as UTF-8)
            "REQUEST_METHOD": method, "PATH_INFO": path.encode().decode("latin-1"), "SCRIPT_NAME": "", "QUERY_STRING": query,
            "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "localhost",
            "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
            "wsgi.input": io.BytesIO(body or b""), "CONTENT_LENGTH": "" if body is None else str(len(body)),
            "HTTP_AUTHORIZATION": AUTH,
        }
        for k, v in headers.items():
            environ["HTTP_" + k.upper()] = v
        started: list[Any] = []

        def start_response(status: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> None:
            started[:] = [status, hdrs]

        result = self.app(environ, start_response)
        try:
            out = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return Answer(int(started[0].split()[0]), list(started[1]), out)


@dataclass
class Both:
    fs: jfs.Client
    fast: Dav
    plain: Dav


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    base: Path = tmp_path_factory.mktemp("dav-small")
    url = f"sqlite3://{base}/meta.db"
    format_volume(url, str(base / "bucket"))
    with jfs.Client(url, cache_dir=None, enable_xattr=True) as fs:
        opts = DavOptions(host="127.0.0.1", port=0, user=USER, password=PASSWORD, access_log=False)
        fast = Dav(build_app(fs, opts))
        plain = Dav(build_app(fs, dataclasses.replace(opts, small_file_shortcut=False)))
        yield Both(fs, fast, plain)


def _same(both: Both, method: str, path: str, body: bytes | None = None, **headers: str) -> Answer:
    """The request on /a through the shortcut and on /b through WsgiDAV alone: equal answers."""
    a = both.fast(method, "/a" + path, body, **headers)
    b = both.plain(method, "/b" + path, body, **headers)
    assert a.shape() == b.shape(), (method, path)
    return a


@pytest.fixture
def trees(both: Both) -> Iterator[Both]:
    for top in ("/a", "/b"):
        both.fs.makedirs(top + "/dir/sub")
    yield both
    for top in ("/a", "/b"):
        both.fs.rmtree(top)


def test_put_and_get_answer_as_wsgidav_does(trees: Both) -> None:
    fs = trees.fs
    assert _same(trees, "PUT", "/dir/f.txt", b"hello").status == 201
    assert fs.read_bytes("/a/dir/f.txt") == b"hello"  # committed before the answer
    put = _same(trees, "PUT", "/dir/f.txt", b"bye")
    assert put.status == 204
    st = fs.stat("/a/dir/f.txt")
    assert put.header("ETag") == f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'
    assert fs.read_bytes("/a/dir/f.txt") == b"bye"
    assert _same(trees, "PUT", "/dir/empty", b"").status == 201
    assert fs.stat("/a/dir/empty").st_size == 0

    got = _same(trees, "GET", "/dir/f.txt")
    assert (got.status, got.body, got.header("Content-Type")) == (200, b"bye", "text/plain")
    assert got.header("ETag") == put.header("ETag")
    assert _same(trees, "GET", "/dir/empty").body == b""
    assert _same(trees, "GET", "/dir/f.txt", range="bytes=1-").status == 206
    etag = got.header("ETag")
    assert etag is not None
    assert trees.fast("GET", "/a/dir/f.txt", if_none_match=etag).status == 304
    assert _same(trees, "GET", "/dir/missing").status == 404
    assert _same(trees, "HEAD", "/dir/f.txt").status == 200


def test_what_the_shortcut_hands_over_gets_wsgidavs_answer(trees: Both) -> None:
    fs = trees.fs
    assert _same(trees, "PUT", "/dir/sub", b"x").status == 405  # a collection
    assert _same(trees, "PUT", "/nowhere/f", b"x").status == 409  # no parent
    _same(trees, "PUT", "/dir/file", b"x")
    assert _same(trees, "PUT", "/dir/file/below", b"x").status == 409  # parent is a file
    assert not fs.exists("/a/nowhere")
    big = b"b" * ((1 << 20) + 1)  # more than a small body: WsgiDAV streams it
    assert _same(trees, "PUT", "/dir/big", big).status == 201
    assert fs.read_bytes("/a/dir/big") == big
    assert _same(trees, "GET", "/dir/big").body == big


def _lock(dav: Dav, path: str) -> str:
    body = (b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
            b"<D:locktype><D:write/></D:locktype><D:owner>t</D:owner></D:lockinfo>")
    got = dav("LOCK", path, body, timeout="Second-600", depth="infinity")
    assert got.status == 200, got
    token = got.header("Lock-Token")
    assert token
    return token


def test_a_lock_at_or_above_the_target_is_honoured(trees: Both) -> None:
    fs = trees.fs
    _same(trees, "PUT", "/dir/sub/f", b"old")
    token = _lock(trees.fast, "/a/dir")
    try:
        assert trees.fast("PUT", "/a/dir/sub/f", b"new").status == 423
        assert trees.fast("PUT", "/a/dir/sub/g", b"new").status == 423
        assert not fs.exists("/a/dir/sub/g")
        assert fs.read_bytes("/a/dir/sub/f") == b"old"
        assert trees.fast("PUT", "/a/dir/sub/f", b"new", **{"if": f"({token})"}).status == 204
        assert fs.read_bytes("/a/dir/sub/f") == b"new"
        assert trees.fast("GET", "/a/dir/sub/f").body == b"new"  # reading is not locked
    finally:
        assert trees.fast("UNLOCK", "/a/dir", lock_token=token).status == 204
    assert trees.fast("PUT", "/a/dir/sub/g", b"free").status == 201


def test_a_lock_on_a_name_that_needs_quoting(trees: Both) -> None:
    trees.fs.makedirs("/a/sp ce/ü")
    token = _lock(trees.fast, "/a/sp ce")
    try:
        assert trees.fast("PUT", "/a/sp ce/ü/f", b"x").status == 423
        assert not trees.fs.exists("/a/sp ce/ü/f")
    finally:
        trees.fast("UNLOCK", "/a/sp ce", lock_token=token)
    assert trees.fast("PUT", "/a/sp ce/ü/f", b"x").status == 201


@pytest.fixture
def stack_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests that reached WsgiDAV's application (not answered in front of it)."""
    calls: list[str] = []
    inner = wsgidav_app.WsgiDAVApp.__call__

    def counted(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        calls.append(environ["PATH_INFO"])
        return inner(self, environ, start_response)

    monkeypatch.setattr(wsgidav_app.WsgiDAVApp, "__call__", counted)
    return calls


def test_plain_requests_are_answered_in_front_of_wsgidav(trees: Both, stack_calls: list[str]) -> None:
    for name in ("/dir/f.txt", "/dir/sp ce ü.bin"):
        stack_calls.clear()
        assert _same(trees, "PUT", name, b"data").status == 201
        assert len(stack_calls) == 1, stack_calls
        assert trees.fs.read_bytes("/a" + name) == b"data"
        stack_calls.clear()
        got = _same(trees, "GET", name)
        assert (got.status, got.body) == (200, b"data")
        assert len(stack_calls) == 1, stack_calls  # only the request of the plain application
    stack_calls.clear()
    assert _same(trees, "GET", "/dir/f.txt/").body == b"data"  # WsgiDAV's normalisation: the same file
    assert len(stack_calls) == 1


def test_what_plain_requests_leave_to_wsgidav(trees: Both, stack_calls: list[str]) -> None:
    _same(trees, "PUT", "/dir/f", b"data")
    wrong = "Basic " + base64.b64encode(f"{USER}:wrong".encode()).decode()
    cases: list[tuple[str, dict[str, str]]] = [
        ("/dir/f", {"authorization": wrong}),  # 401 with WsgiDAV's challenge
        ("/dir/f", {"authorization": "Digest username=u"}),
        ("/dir/f?logout", {}),
        ("/dir/f", {"range": "bytes=0-1"}),
        ("/dir/f", {"if_none_match": '"x"'}),
        ("/dir/f", {"depth": "1"}),
        ("/dir/", {}),  # the directory browser
        ("/dir/missing", {}),
    ]
    for path, headers in cases:
        stack_calls.clear()
        a = trees.fast("GET", "/a" + path, **headers)
        b = trees.plain("GET", "/b" + path, **headers)
        assert a.shape() == b.shape(), (path, headers)
        assert len(stack_calls) == 2, (path, headers)
    assert trees.fast("GET", "/a/dir/f", authorization=wrong).status == 401
    assert trees.fast("GET", "/a/../a/dir/f").status == 400
    puts: list[tuple[str, dict[str, str]]] = [
        ("/dir/g", {"authorization": wrong}),
        ("/dir/g?x", {}),
        ("/nowhere/g", {}),  # no parent: WsgiDAV's 409 with the body replayed
        ("/dir/sub", {}),  # a collection
    ]
    for path, headers in puts:
        stack_calls.clear()
        a = trees.fast("PUT", "/a" + path, b"new", **headers)
        b = trees.plain("PUT", "/b" + path, b"new", **headers)
        assert a.shape() == b.shape(), (path, headers)
        assert len(stack_calls) == 2, (path, headers)
        if path == "/dir/g":  # refused
            assert not trees.fs.exists("/a/dir/g")
    assert not trees.fs.exists("/a/nowhere")


def test_write_marker_refuses_locks_while_set() -> None:
    lm = LockManager(LockStorageDict())
    args: dict[str, Any] = {"lock_type": "write", "lock_scope": "exclusive", "lock_depth": "0", "lock_owner": b"",
                            "timeout": 60, "principal": "x", "token_list": []}
    with _write_marker(lm, "/m/f"):
        with pytest.raises(DAVError):
            lm.acquire(url="/m/f", **args)
    lm.release(lm.acquire(url="/m/f", **args)["token"])

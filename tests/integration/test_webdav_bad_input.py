"""`jfs webdav` against bad input and bad settings: wrong credentials, malformed XML, path traversal,
huge headers, an engine that goes away — the right status, nothing written, and the server keeps
serving; start-up mistakes are one line and a non-zero exit. Also HTTPS, gzip, --anonymous,
--read-only and --subdir."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import jfs
from jfs.testing.mounts import format_volume
from jfs.testing.servers import free_port, stop_pid
from jfs.testing.webdav import PASSWORD, USER, DavServer, curl, webdav_server


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> str:
    base = tmp_path_factory.mktemp("dav-bad")
    url = f"sqlite3://{base}/meta.db"
    format_volume(url, str(base / "bucket"))
    with jfs.Client(url, cache_dir=None) as fs:
        fs.makedirs("/pub/inner")
        fs.write_bytes("/pub/inner/keep.txt", b"keep")
        fs.write_bytes("/secret.txt", b"outside the subdir")
    return url


@pytest.fixture(scope="module")
def dav(volume: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    with webdav_server(volume, tmp_path_factory.mktemp("dav-bad-srv")) as server:
        yield server


def _names(volume: str, path: str = "/") -> list[str]:
    with jfs.Client(volume, cache_dir=None) as fs:
        return sorted(fs.listdir(path))


def _serving(dav: DavServer) -> bool:
    return curl("GET", f"{dav.url}/pub/inner/keep.txt").body == b"keep"


def test_credentials(dav: DavServer, volume: str) -> None:
    before = _names(volume)
    assert curl("PUT", f"{dav.url}/anon.txt", data=b"x", auth=None).status == 401
    assert curl("PUT", f"{dav.url}/wrong.txt", data=b"x", auth=f"{USER}:nope").status == 401
    assert curl("PUT", f"{dav.url}/wrong.txt", data=b"x", auth=f"nobody:{PASSWORD}").status == 401
    assert curl("PROPFIND", f"{dav.url}/", auth=None, headers={"Depth": "1"}).status == 401
    challenge = curl("GET", f"{dav.url}/pub/inner/keep.txt", auth=None)
    assert challenge.headers.get("www-authenticate", "").startswith("Basic")
    assert _names(volume) == before


def test_digest(volume: str, tmp_path: Path) -> None:
    with webdav_server(volume, tmp_path, "--digest") as dav:
        challenge = curl("GET", f"{dav.url}/pub/inner/keep.txt", auth=None)
        assert challenge.status == 401 and challenge.headers["www-authenticate"].startswith("Digest")
        r = curl("GET", f"{dav.url}/pub/inner/keep.txt", "--digest")
        assert r.status == 200 and r.body == b"keep"
        assert curl("GET", f"{dav.url}/pub/inner/keep.txt", "--digest", auth=f"{USER}:wrong").status == 401


@pytest.mark.parametrize("body", [
    b"<propfind xmlns='DAV:'><prop>",  # truncated
    b"not xml at all",
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
    b'<propfind xmlns="DAV:"><prop>&b;</prop></propfind>',  # entity expansion
])
def test_malformed_xml(dav: DavServer, volume: str, body: bytes) -> None:
    before = _names(volume, "/pub")
    assert curl("PROPFIND", f"{dav.url}/pub", data=body, headers={"Depth": "1"}).status == 400
    assert curl("PROPPATCH", f"{dav.url}/pub", data=body).status == 400
    assert curl("LOCK", f"{dav.url}/pub/new.txt", data=body).status == 400
    assert _names(volume, "/pub") == before
    assert _serving(dav)


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/pub/../../secret.txt", "/%2e%2e/secret.txt", "/pub/%2e%2e/%2e%2e/etc/passwd",
    "/pub/..%2f..%2fsecret.txt", "/pub/inner/%00keep.txt",
])
def test_path_traversal_in_a_subdir_server(volume: str, tmp_path: Path, path: str) -> None:
    with webdav_server(volume, tmp_path, "--subdir", "/pub") as dav:
        r = curl("GET", f"{dav.url}{path}")
        assert r.status in (400, 404), (path, r.status)
        assert b"outside the subdir" not in r.body
        assert curl("PUT", f"{dav.url}{path}", data=b"evil").status in (400, 404, 409)
        moved = curl("MOVE", f"{dav.url}/inner/keep.txt", headers={"Destination": f"{dav.url}{path}"})
        assert moved.status in (400, 403, 404, 409, 502), moved.status
        assert curl("GET", f"{dav.url}/inner/keep.txt").body == b"keep"
        assert curl("GET", f"{dav.url}/secret.txt").status == 404
    with jfs.Client(volume, cache_dir=None) as fs:
        assert fs.read_bytes("/secret.txt") == b"outside the subdir"
        assert sorted(fs.listdir("/")) == ["pub", "secret.txt"]


def test_huge_headers_and_the_server_keeps_serving(dav: DavServer) -> None:
    host, port = "127.0.0.1", dav.port
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.putrequest("GET", "/pub/inner/keep.txt")
        conn.putheader("X-Huge", "a" * (200 << 10))
        conn.endheaders()
        status = conn.getresponse().status
    except (TimeoutError, ConnectionError, http.client.HTTPException):
        status = 0  # the server may just drop such a connection
    finally:
        conn.close()
    assert status in (0, 400, 413, 431)
    many = {f"X-H{i}": "b" * 1000 for i in range(100)}
    assert curl("GET", f"{dav.url}/pub/inner/keep.txt", headers=many).status in (400, 413, 431)
    assert _serving(dav)


def test_put_interrupted_mid_body_leaves_nothing(dav: DavServer, volume: str) -> None:
    sock = socket.create_connection(("127.0.0.1", dav.port))
    import base64

    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    sock.sendall(f"PUT /pub/partial.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
                 f"Content-Length: {10 << 20}\r\n\r\n".encode() + b"x" * (1 << 20))
    time.sleep(0.5)
    sock.close()
    deadline = time.monotonic() + 10
    while "partial.bin" in _names(volume, "/pub") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "partial.bin" not in _names(volume, "/pub")
    assert _serving(dav)


def test_read_only_anonymous_gzip(volume: str, tmp_path: Path) -> None:
    with webdav_server(volume, tmp_path, "--anonymous", "--read-only", "--gzip", user=None, password=None) as dav:
        assert curl("GET", f"{dav.url}/pub/inner/keep.txt", auth=None).body == b"keep"
        for method, path in (("PUT", "/pub/x.txt"), ("MKCOL", "/pub/newdir"), ("DELETE", "/pub/inner"),
                             ("MOVE", "/pub/inner"), ("PROPPATCH", "/pub")):
            r = curl(method, f"{dav.url}{path}", auth=None, data=b"x" if method == "PUT" else None,
                     headers={"Destination": f"{dav.url}/pub/moved"})
            assert r.status in (403, 405), (method, r.status)
        zipped = curl("PROPFIND", f"{dav.url}/pub", auth=None, headers={"Depth": "1", "Accept-Encoding": "gzip"})
        assert zipped.status == 207 and zipped.headers.get("content-encoding") == "gzip"
        plain = curl("PROPFIND", f"{dav.url}/pub", "--compressed", auth=None, headers={"Depth": "1"})
        assert b"/pub/inner/" in plain.body
    assert "x.txt" not in _names(volume, "/pub")


def test_https(volume: str, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    with webdav_server(volume, tmp_path, "--cert-file", str(cert), "--key-file", str(key), scheme="https") as dav:
        r = curl("GET", f"{dav.url}/pub/inner/keep.txt", "--cacert", str(cert))
        assert r.status == 200 and r.body == b"keep"
        big = os.urandom((5 << 20) + 3)  # whole blocks sent from their buffers through TLS
        assert curl("PUT", f"{dav.url}/pub/tls.bin", "--cacert", str(cert), data=big).status == 201
        assert curl("GET", f"{dav.url}/pub/tls.bin", "--cacert", str(cert)).body == big
        plain = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                f"http://127.0.0.1:{dav.port}/pub/inner/keep.txt"], capture_output=True, text=True)
        assert plain.stdout != "200"


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("WEBDAV_USER", "WEBDAV_PASSWORD")}
    return subprocess.run([sys.executable, "-m", "jfs.cli.main", "webdav", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=60, stdin=subprocess.DEVNULL)


def test_startup_mistakes_are_one_line(volume: str, tmp_path: Path) -> None:
    port = free_port()
    creds = {"WEBDAV_USER": USER, "WEBDAV_PASSWORD": PASSWORD}
    cases = [
        ((volume, f"127.0.0.1:{port}"), {}, "no credentials"),
        ((volume, f"127.0.0.1:{port}"), {"WEBDAV_USER": USER}, "WEBDAV_PASSWORD"),
        ((volume, "nonsense"), creds, "HOST:PORT"),
        ((volume, f"127.0.0.1:{port}", "--cert-file", str(tmp_path / "c.pem")), creds, "--key-file"),
        ((f"sqlite3://{tmp_path}/none.db", f"127.0.0.1:{port}"), creds, "jfs format"),
        (("redis://127.0.0.1:1/1", f"127.0.0.1:{port}"), creds, "127.0.0.1:1"),
        ((volume, f"127.0.0.1:{port}", "--subdir", "/no/such"), creds, "no/such"),
    ]
    for args, env, needle in cases:
        r = _run_cli(*args, "--cache-dir", str(tmp_path / "c"), env=env)
        assert r.returncode != 0, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert lines and lines[-1].startswith("jfs: error: ") and needle in lines[-1], (args, r.stderr)
        assert "Traceback" not in r.stderr
        assert PASSWORD not in r.stderr


def test_engine_outage_gives_errors_and_serving_resumes(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()

    def start_redis() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
                                 "--appendonly", "yes", "--save", ""], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return proc
            except OSError:
                time.sleep(0.05)
        proc.kill()
        raise RuntimeError("redis-server did not start")

    redis = start_redis()
    try:
        url = f"redis://127.0.0.1:{port}/1"
        format_volume(url, str(tmp_path / "bucket"))
        with webdav_server(url, tmp_path / "srv") as dav:
            assert curl("PUT", f"{dav.url}/before.txt", data=b"before").status == 201
            redis.terminate()
            redis.wait(10)
            down = curl("PUT", f"{dav.url}/during.txt", "-m", "60", data=b"during")
            assert down.status == 503, down.text
            assert curl("PROPFIND", f"{dav.url}/", "-m", "60", headers={"Depth": "1"}).status == 503
            assert curl("GET", f"{dav.url}/before.txt", "-m", "60").status == 503
            redis = start_redis()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if curl("GET", f"{dav.url}/before.txt", "-m", "30").body == b"before":
                    break
                time.sleep(0.5)
            assert curl("GET", f"{dav.url}/before.txt").body == b"before"
            assert curl("GET", f"{dav.url}/during.txt").status == 404
            assert curl("PUT", f"{dav.url}/after.txt", data=b"after").status == 201
            assert dav.process.poll() is None
    finally:
        if redis.poll() is None:
            redis.terminate()
            redis.wait(10)


def test_background_mode_returns_once_listening(volume: str, tmp_path: Path) -> None:
    port = free_port()
    r = _run_cli(volume, f"127.0.0.1:{port}", "-d", "--cache-dir", str(tmp_path / "c"),
                 env={"WEBDAV_USER": USER, "WEBDAV_PASSWORD": PASSWORD})
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split("server ")[1].split()[0])
    try:
        assert curl("GET", f"http://127.0.0.1:{port}/pub/inner/keep.txt").body == b"keep"
    finally:
        assert stop_pid(pid, grace=30)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

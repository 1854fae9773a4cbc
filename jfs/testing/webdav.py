"""Test helper: a real `jfs webdav` process on a free port, always stopped (and its exit checked)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jfs.testing.servers import free_port, stop_process

USER = "dav-user"
PASSWORD = "dav-pass-123"


@dataclass
class DavServer:
    url: str
    """``http://127.0.0.1:PORT`` (no trailing slash)."""
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def curl(method: str, url: str, *args: str, data: bytes | None = None, auth: str | None = f"{USER}:{PASSWORD}",
         headers: dict[str, str] | None = None) -> Reply:
    """One request with curl; status, response headers (lower-case names) and body."""
    with tempfile.TemporaryDirectory() as tmp:
        head, body = Path(tmp) / "h", Path(tmp) / "b"
        cmd = ["curl", "-s", "-g", "--path-as-is", "-X", method, url, "-D", str(head), "-o", str(body), "-k"]
        if auth:
            cmd += ["-u", auth]
        for k, v in (headers or {}).items():
            cmd += ["-H", f"{k}: {v}"]
        if data is not None:
            src = Path(tmp) / "in"
            src.write_bytes(data)
            cmd += ["--data-binary", f"@{src}"]
        cmd += list(args)
        subprocess.run(cmd, check=True, timeout=120)
        lines = head.read_text(errors="replace").splitlines()
        statuses = [ln for ln in lines if ln.startswith("HTTP/")]
        hdrs = {}
        last = max(i for i, ln in enumerate(lines) if ln.startswith("HTTP/"))
        for ln in lines[last + 1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        return Reply(int(statuses[-1].split()[1]), hdrs, body.read_bytes() if body.exists() else b"")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def webdav_server(meta_url: str, workdir: Path, *extra: str, user: str | None = USER,
                  password: str | None = PASSWORD, scheme: str = "http", timeout: float = 30.0) -> Iterator[DavServer]:
    """Run ``jfs webdav META-URL 127.0.0.1:PORT`` with WEBDAV_USER/WEBDAV_PASSWORD set (unless None);
    stop it with SIGTERM on exit and check that it exited cleanly."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("WEBDAV_USER", "WEBDAV_PASSWORD")}
    if user is not None:
        env["WEBDAV_USER"] = user
    if password is not None:
        env["WEBDAV_PASSWORD"] = password
    for _ in range(3):  # the free port may be taken before the server binds it
        port = free_port()
        log = workdir / f"webdav-{port}.log"
        out = open(log, "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "jfs.cli.main", "webdav", meta_url, f"127.0.0.1:{port}",
             "--cache-dir", str(workdir / f"cache-{port}"), *extra],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env,
        )
        out.close()
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline and not _listening(port):
            time.sleep(0.05)
        if proc.poll() is None and _listening(port):
            break
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if "cannot listen" not in log.read_text(errors="replace"):
            raise RuntimeError(f"jfs webdav did not come up (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
    else:
        raise RuntimeError("jfs webdav found no free port")
    server = DavServer(f"{scheme}://127.0.0.1:{port}", port, proc, log)
    try:
        yield server
    finally:
        stop_process(proc, grace=30)

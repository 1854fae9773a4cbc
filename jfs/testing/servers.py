"""Throwaway engine servers for tests: a private `redis-server` on a free port and a temporary directory.

    with redis_server() as srv:          # or: srv = start_redis_server(); ...; srv.stop()
        kv = await open_kv(srv.url + "/0")

The server runs without persistence (``--save '' --appendonly no``) unless other arguments are given, also
listens on a unix socket (`unix_url`), and `stop()` kills it and removes its directory — also when the
test failed. Raises RedisServerError when `redis-server` is missing or does not come up within `timeout`.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


class RedisServerError(RuntimeError):
    """The throwaway redis-server could not be started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 20.0) -> None:
    """Stop `proc`: SIGTERM, then SIGKILL if it has not exited after `grace` seconds; reaped either way.
    Nothing happens to a process that has already exited (it is reaped)."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_pid(pid: int, grace: float = 20.0) -> bool:
    """Stop the process `pid` that is not our child (a detached ``-d`` server): SIGTERM, then SIGKILL if it
    still runs after `grace` seconds. Returns whether it exited within the grace period."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return False


@dataclass
class RedisServer:
    port: int
    directory: str
    process: subprocess.Popen[bytes] = field(repr=False)
    password: str | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` (append ``/db``); includes the password when one was set."""
        cred = f":{self.password}@" if self.password else ""
        return f"redis://{cred}127.0.0.1:{self.port}"

    @property
    def unix_socket(self) -> str:
        return os.path.join(self.directory, "redis.sock")

    @property
    def unix_url(self) -> str:
        """``unix:///…/redis.sock`` (append ``?db=N``)."""
        return f"unix://{self.unix_socket}"

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and delete its directory; idempotent."""
        stop_process(self.process, grace=5)
        shutil.rmtree(self.directory, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH"))


def start_redis_server(
    *args: str,
    password: str | None = None,
    executable: str = "redis-server",
    timeout: float = 10.0,
    new_session: bool = False,
) -> RedisServer:
    """Start a private redis-server; `args` are extra command-line options (e.g. ``"--appendonly", "yes"``).

    `new_session` starts it in a session of its own, so a Ctrl-C in the terminal does not reach it (a
    benchmark stops it itself, after unmounting what uses it). Raises RedisServerError."""
    binary = shutil.which(executable)
    if binary is None:
        raise RedisServerError(f"{executable} is not installed (apt-get install redis-server)")
    last = ""
    for _ in range(3):  # the free port may be taken by someone else before redis binds it
        port = free_port()
        directory = tempfile.mkdtemp(prefix="jfs-redis-")
        cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory, "--daemonize", "no"]
        cmd += ["--unixsocket", os.path.join(directory, "redis.sock"), "--unixsocketperm", "700"]
        if not any(a in ("--save", "--appendonly") for a in args):
            cmd += ["--save", "", "--appendonly", "no"]
        if password:
            cmd += ["--requirepass", password]
        cmd += list(args)
        log_path = os.path.join(directory, "redis.log")
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=new_session)
        server = RedisServer(port, directory, proc, password)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if _answers(port):
                return server
            time.sleep(0.02)
        try:
            with open(log_path, errors="replace") as f:
                last = f.read()[-500:]
        except OSError:
            pass
        server.stop()
    raise RedisServerError(f"redis-server did not start: {last.strip()}")


@contextlib.contextmanager
def redis_server(*args: str, password: str | None = None) -> Iterator[RedisServer]:
    """Context manager around `start_redis_server` that always stops the server."""
    server = start_redis_server(*args, password=password)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def local_http_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server on a free loopback port answering with `handler`; yields its base URL
    (``http://127.0.0.1:PORT``) and shuts it down on exit."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

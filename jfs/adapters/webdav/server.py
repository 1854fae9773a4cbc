"""`jfs webdav`: WsgiDAV (class 1 and 2) with `JfsProvider` and the volume's lock table, served by
cheroot, WsgiDAV's own WSGI server, over HTTP or HTTPS."""

from __future__ import annotations

import io
import logging
import select
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import structlog
from cheroot import wsgi
from cheroot.makefile import MakeFile, StreamReader, StreamWriter
from cheroot.server import HTTPConnection, HTTPRequest
from wsgidav.dir_browser import WsgiDavDirBrowser
from wsgidav.error_printer import ErrorPrinter
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from jfs.adapters.malloc_tuning import keep_block_buffers
from jfs.adapters.webdav.auth import SingleUserController
from jfs.adapters.webdav.locks import VolumeLockStorage
from jfs.adapters.webdav.middleware import AccessLog, DirectBodies, Gzip, RejectBadPaths, WsgiApp
from jfs.adapters.webdav.plain_requests import PlainRequests, basic_authorization
from jfs.adapters.webdav.provider import JfsProvider
from jfs.adapters.webdav.small_files import SmallFiles
from jfs.app.errors import JfsError
from jfs.sdk import Client

log = structlog.get_logger("jfs.webdav")

MAX_HEADER_BYTES = 64 << 10
"""Request line plus headers larger than this get 413/431 and the connection is dropped."""


class ConfigError(JfsError):
    """A setting of `jfs webdav` that cannot work (one line for the user)."""


@dataclass(frozen=True, slots=True)
class DavOptions:
    host: str
    port: int
    user: str | None = None
    password: str | None = None
    anonymous: bool = False
    digest: bool = False
    """Challenge for Digest rather than Basic (both are accepted either way)."""
    read_only: bool = False
    subdir: str = ""
    cert_file: str | None = None
    key_file: str | None = None
    gzip: bool = False
    access_log: bool = True
    dead_props: bool = True
    threads: int = 32
    block_size: int = 1 << 20
    small_file_shortcut: bool = True
    """Plain small GETs and PUTs in one trip to the SDK's loop, without WsgiDAV's request machinery
    (`SmallFiles`; authenticated ones in front of the whole stack, `PlainRequests`); off: every request
    goes through WsgiDAV (tests compare the two)."""


def parse_address(address: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces) or ``[v6]:port``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"address {address!r} is not HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _users(opts: DavOptions) -> dict[str, Any]:
    if opts.user and opts.password:
        return {"*": {opts.user: {"password": opts.password, "description": "", "roles": []}}}
    if opts.user or opts.password:
        raise ConfigError("set both WEBDAV_USER and WEBDAV_PASSWORD (or neither, with --anonymous)")
    if not opts.anonymous:
        raise ConfigError("no credentials: set WEBDAV_USER and WEBDAV_PASSWORD, or pass --anonymous "
                          "to serve the volume to anyone who can reach the address")
    return {"*": True}


def build_app(client: Client, opts: DavOptions) -> WsgiApp:
    """The WSGI application serving `client`'s volume (ConfigError for bad options)."""
    users = _users(opts)
    locks = VolumeLockStorage(client, opts.subdir)
    provider = JfsProvider(client, read_only=opts.read_only, dead_props=opts.dead_props,
                           block_size=opts.block_size, serves_volume_root=not opts.subdir.strip("/"),
                           lock_table=locks)
    config: dict[str, Any] = {
        "provider_mapping": {"/": provider},
        "lock_storage": locks,
        "property_manager": None,  # dead properties are xattrs (JfsProvider)
        "http_authenticator": {
            "domain_controller": SingleUserController,
            "accept_basic": True,
            "accept_digest": True,
            # Basic by default, as JuiceFS: what rclone and most tools speak (over TLS, please).
            "default_to_digest": opts.digest,
            "trusted_auth_header": None,
        },
        "simple_dc": {"user_mapping": users},
        # WsgiDAV's read size of GET bodies and chunked PUT bodies: a whole block of the volume per trip
        # to the client's loop (bodies of known length are read by `JfsProvider` itself).
        "block_size": max(opts.block_size, provider.volume_block),
        "verbose": 1,
        "logging": {"enable": False},
        "suppress_version_info": True,
        "dir_browser": {"enable": True, "response_trailer": "jfs webdav", "show_user": True},
        # WsgiDAV's stack (CORS left out: not configured) with the small-file shortcut after authentication.
        "middleware_stack": [
            ErrorPrinter, HTTPAuthenticator, *([SmallFiles] if opts.small_file_shortcut else []),
            WsgiDavDirBrowser, RequestResolver,
        ],
    }
    app: WsgiApp = DirectBodies(RejectBadPaths(locks.per_request(WsgiDAVApp(config))))
    if opts.small_file_shortcut:
        authorization = basic_authorization(opts.user, opts.password) if opts.user and opts.password else None
        app = PlainRequests(app, provider, authorization)
    if opts.gzip:
        app = Gzip(app)
    if opts.access_log:
        app = AccessLog(app)
    return app


def _cheroot_error_log(msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
    """cheroot's error log (it writes to stderr by default) as events of the stdlib logger "cheroot",
    which the process's logging renders like every other event."""
    logging.getLogger("cheroot").log(level, msg, exc_info=traceback)


KEEP_ALIVE_LINGER = 0.01
"""Seconds a worker waits on its keep-alive connection for the next request before handing the
connection back to cheroot's selector thread."""


DIRECT_WRITE_MIN = 64 << 10
"""Response pieces at least this long go to the socket from the caller's buffer (`DirectStreamWriter`)."""


class DirectStreamWriter(StreamWriter):  # type: ignore[misc]
    """cheroot's socket writer, except that

    * a large piece (a GET's block) is sent from the caller's buffer. cheroot appends every piece to its
      buffer, copies the buffer into a new `bytes` per send and, after a partial send, moves the rest
      down and copies it again: several copies of a 4 MiB piece, the largest CPU cost of a big GET;
    * the response headers wait for the first piece of the body and go out with it when that piece is
      small (one send and one wake-up of the client instead of two per small response); whatever is
      held is sent at the latest when the request is done (`send_held`).

    Other small pieces (a 100 Continue, error pages) take cheroot's path at once."""

    _hold_next = False
    _held: bytes | None = None

    def hold_next_write(self) -> None:
        """Keep the next write (the response headers) until the following one or `send_held`."""
        self._hold_next = True

    def send_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            super().write(held)  # type: ignore[no-untyped-call]

    def write(self, val: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if self._hold_next:
            self._hold_next = False
            self._held = bytes(val)
            return len(val)
        if self._held is not None:
            if len(val) < DIRECT_WRITE_MIN:
                held, self._held = self._held, None
                super().write(held + bytes(val))  # type: ignore[no-untyped-call]
                return len(val)
            self.send_held()
        pending: bytearray = self._write_buf  # type: ignore[attr-defined]
        if len(val) < DIRECT_WRITE_MIN or pending or isinstance(val, str):
            return super().write(val, *args, **kwargs)  # type: ignore[no-untyped-call]
        self._checkClosed()
        with self._write_lock:  # type: ignore[attr-defined]
            view = memoryview(val).cast("B")
            while view:
                try:
                    sent = self.raw.write(view)
                except BlockingIOError as exc:
                    sent = exc.characters_written
                view = view[sent or 0:]
        self.bytes_written += len(val)
        return len(val)


class LineReader(StreamReader):  # type: ignore[misc]
    """cheroot's socket reader (`_pyio.BufferedReader`), except that a line already in its buffer is cut
    out with one ``find``: `_pyio`'s ``readline`` peeks and reads in Python per line, several µs for
    each of a request's five or so lines (request line, headers, blank line). A line not wholly buffered
    takes `_pyio`'s path, which fills the buffer from the socket."""

    def readline(self, size: int | None = -1) -> bytes:
        with self._read_lock:  # type: ignore[attr-defined]
            buf: bytes = self._read_buf  # type: ignore[attr-defined]
            pos: int = self._read_pos  # type: ignore[attr-defined,has-type]
            end = buf.find(b"\n", pos) + 1
            if end and (size is None or size < 0 or end - pos <= size):
                self._read_pos = end
                self.bytes_read += end - pos
                return buf[pos:end]
        line: bytes = super().readline(size if size is not None else -1)
        return line


class HeldHeadersRequest(HTTPRequest):  # type: ignore[misc]
    """cheroot's request, whose response headers go out with the first piece of the body."""

    def send_headers(self) -> None:
        wfile = self.conn.wfile
        if isinstance(wfile, DirectStreamWriter):
            wfile.hold_next_write()
        super().send_headers()


class DirectWritesConnection(HTTPConnection):  # type: ignore[misc]
    """cheroot's connection with a `DirectStreamWriter` for responses and a `LineReader` for requests
    (plain and TLS sockets alike: cheroot's TLS adapter makes the same reader and writer classes over its
    wrapped socket)."""

    RequestHandlerClass = HeldHeadersRequest

    def __init__(self, server: Any, sock: Any, makefile: Any = MakeFile) -> None:
        def files(s: Any, mode: str = "r", bufsize: int = io.DEFAULT_BUFFER_SIZE) -> Any:
            return DirectStreamWriter(s, mode, bufsize) if "w" in mode else LineReader(s, mode, bufsize)

        super().__init__(server, sock, files)

    def communicate(self) -> bool:
        """cheroot's, then what the response still holds back is sent (False: the client is gone)."""
        keep_open = bool(super().communicate())  # type: ignore[no-untyped-call]
        wfile = self.wfile
        if isinstance(wfile, DirectStreamWriter):
            try:
                wfile.send_held()
            except OSError:
                return False
        return keep_open


class LingeringServer(wsgi.Server):  # type: ignore[misc]
    """cheroot's WSGI server, except that a worker done with a request of a keep-alive connection first
    waits up to `KEEP_ALIVE_LINGER` for the next request on it and serves it itself, in a loop. cheroot
    would hand the connection to its selector thread, which hands it to another worker: two thread
    switches and four selector calls per request, the largest cost of a small GET after the volume's own
    work. Errors of such a request are handled as the worker handles them (logged, connection closed). A client
    that sends one request after another (rclone, davfs2, cadaver) keeps one worker; an idle connection
    goes back to the selector after the linger, as before."""

    ConnectionClass = DirectWritesConnection

    def put_conn(self, conn: Any) -> None:
        while self.ready and not conn.rfile.has_data():
            try:
                readable = select.select([conn.socket], [], [], KEEP_ALIVE_LINGER)[0]
            except (OSError, ValueError):  # closed under us: cheroot's own path sorts it out
                break
            if not readable:
                break
            conn.last_used = time.time()
            try:
                keep_open = conn.communicate()
            except (KeyboardInterrupt, SystemExit):
                conn.close()
                raise  # the worker turns these into its shutdown, as for its own requests
            except BaseException as exc:
                self.error_log(f"error while serving {conn.remote_addr}:{conn.remote_port}: {exc!r}",
                               level=logging.INFO)
                conn.close()
                return
            if not keep_open:
                conn.close()
                return
        super().put_conn(conn)


def make_server(app: WsgiApp, opts: DavOptions) -> wsgi.Server:
    if bool(opts.cert_file) != bool(opts.key_file):
        raise ConfigError("HTTPS needs both --cert-file and --key-file")
    server = LingeringServer((opts.host, opts.port), app, numthreads=opts.threads, server_name="jfs-webdav",
                             timeout=60, request_queue_size=64)
    server.max_request_header_size = MAX_HEADER_BYTES
    server.error_log = _cheroot_error_log  # type: ignore[method-assign]
    if opts.cert_file and opts.key_file:
        from cheroot.ssl.builtin import BuiltinSSLAdapter

        try:
            server.ssl_adapter = BuiltinSSLAdapter(opts.cert_file, opts.key_file)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the TLS certificate or key: {exc}") from None
    return server


def serve(client: Client, opts: DavOptions) -> None:
    """Serve until SIGINT/SIGTERM; the caller closes `client` afterwards."""
    keep_block_buffers()
    server = make_server(build_app(client, opts), opts)
    try:
        server.prepare()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {opts.host}:{opts.port}: {exc.strerror or exc}") from None

    stopper = threading.Thread(target=server.stop, name="webdav-stop", daemon=True)

    def stop(signum: int, _frame: Any) -> None:
        if not stopper.is_alive() and stopper.ident is None:
            log.info("stopping", signal=signal.Signals(signum).name)
            stopper.start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    scheme = "https" if opts.cert_file else "http"
    log.info("serving", volume=client.name, url=f"{scheme}://{opts.host}:{server.bind_addr[1]}/",
             subdir=opts.subdir or "/", read_only=opts.read_only, anonymous=opts.anonymous)
    try:
        server.serve()
    finally:
        if stopper.ident is None:
            stopper.start()
        stopper.join(30)
    log.info("stopped")

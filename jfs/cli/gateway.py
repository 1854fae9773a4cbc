"""`jfs gateway`: serve a volume over S3 (the composition of a client, `ObjectView` and the aiohttp front)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import ssl
import sys
from dataclasses import dataclass

import structlog

from jfs.adapters.fuse.collector import settle_for_serving
from jfs.adapters.objects import file_pages
from jfs.adapters.s3gw.server import Gateway, GatewayConfig, start_server
from jfs.app.errors import VolumeError
from jfs.app.meta import Ctx
from jfs.app.objectview import DEFAULT_AGE, ObjectView, purge_stale_uploads
from jfs.bootstrap import ClientOptions, default_cache_dir, open_client
from jfs.cli.logs import reload_on_sighup

log = structlog.get_logger("jfs.gateway")

USER_VARS = ("MINIO_ROOT_USER", "JFS_GATEWAY_ACCESS_KEY")
PASSWORD_VARS = ("MINIO_ROOT_PASSWORD", "JFS_GATEWAY_SECRET_KEY")


@dataclass(frozen=True, slots=True)
class GatewayArgs:
    meta_url: str
    address: str
    cache_dir: str | None = None
    cache_size_mib: int = 102400
    buffer_size_mib: int = 300
    max_uploads: int = 20
    read_only: bool = False
    subdir: str = ""
    multi_buckets: bool = False
    umask: int = 0o022
    attr_cache: float = 1.0
    entry_cache: float = 1.0
    cert_file: str | None = None
    key_file: str | None = None
    no_bgjob: bool = False
    heartbeat: float = 12.0
    access_log: str | None = None
    upload_age: float = DEFAULT_AGE
    """Seconds after which unfinished uploads are purged (0: never)."""
    metrics: str = "127.0.0.1:9567"
    """Prometheus endpoint HOST:PORT (the next free port when taken; "off" = none), as JuiceFS's gateway."""


def access_logger(path: str) -> logging.Logger:
    """A logger writing one plain line per request to `path` (appended)."""
    logger = logging.getLogger("jfs.gateway.access")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        handler = logging.FileHandler(path)
    except OSError as exc:
        raise VolumeError(f"cannot open the access log {path}: {exc.strerror or exc}") from None
    logger.addHandler(handler)
    return logger


def credentials() -> tuple[str, str]:
    """(access key, secret key) from the environment; VolumeError when unset or too short (as MinIO)."""
    user = next((os.environ[v] for v in USER_VARS if os.environ.get(v)), "")
    password = next((os.environ[v] for v in PASSWORD_VARS if os.environ.get(v)), "")
    if not user or not password:
        raise VolumeError("no credentials: set MINIO_ROOT_USER and MINIO_ROOT_PASSWORD (or JFS_GATEWAY_ACCESS_KEY "
                          "and JFS_GATEWAY_SECRET_KEY)")
    if len(user) < 3 or len(password) < 8:
        raise VolumeError("the access key needs at least 3 characters and the secret key at least 8")
    return user, password


def purge_interval(age: float) -> float:
    """How often a gateway looks for stale uploads: hourly, more often for short ages (tests)."""
    return min(3600.0, max(0.5, age / 4))


async def purge_periodically(view: ObjectView, age: float) -> None:
    """Purge stale uploads now and then every `purge_interval(age)` seconds, until cancelled. A failure
    (engine unreachable) is one log line; the next round tries again."""
    while True:
        try:
            await purge_stale_uploads(view.vfs, view.root, age, ctx=view.ctx)
        except Exception as exc:  # the gateway keeps serving
            log.warning("stale_upload_purge_failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(purge_interval(age))


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise VolumeError(f"ADDRESS must be HOST:PORT, not {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


async def serve(args: GatewayArgs) -> None:
    user, password = credentials()
    host, port = parse_address(args.address)
    ssl_context = None
    if args.cert_file or args.key_file:
        if not (args.cert_file and args.key_file):
            raise VolumeError("TLS needs both --cert-file and --key-file")
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(args.cert_file, args.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise VolumeError(f"cannot load the TLS certificate: {exc}") from None
    client = await open_client(args.meta_url, ClientOptions(
        cache_dir=args.cache_dir if args.cache_dir is not None else default_cache_dir(),
        cache_size=args.cache_size_mib << 20, buffer_size=args.buffer_size_mib << 20,
        max_uploads=args.max_uploads, read_only=args.read_only, subdir=args.subdir, heartbeat=args.heartbeat,
        background_jobs=not args.no_bgjob, entry_cache=args.entry_cache, attr_cache=args.attr_cache,
        mountpoint=f"s3gateway:{args.address}", extra={"Gateway": args.address}, metrics=args.metrics,
    ))
    try:
        ctx = Ctx(uid=os.getuid(), gid=os.getgid(), groups=frozenset(os.getgroups()), pid=os.getpid(),
                  umask=args.umask, check=True)
        view = ObjectView(client.vfs, client.root, client.meta.settings.name, ctx,
                          multi_buckets=args.multi_buckets, umask=args.umask)
        gateway = Gateway(view, GatewayConfig(user, password))
        try:
            runner = await start_server(gateway, host, port, ssl_context,
                                        access_logger(args.access_log) if args.access_log else None)
        except OSError as exc:
            raise VolumeError(f"cannot listen on {args.address}: {exc.strerror or exc}") from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        reload_on_sighup(loop)
        settle_for_serving()  # start-up objects out of the collector's sight; young collections spaced out
        log.info("gateway_serving", volume=client.meta.settings.name, address=f"{host}:{port}",
                 multi_buckets=args.multi_buckets, tls=ssl_context is not None)
        purger = asyncio.create_task(purge_periodically(view, args.upload_age)) \
            if args.upload_age > 0 and not args.read_only else None
        try:
            await stop.wait()
        finally:
            if purger is not None:
                purger.cancel()
            await runner.cleanup()
    finally:
        await client.close()
        log.info("gateway_stopped", address=args.address)


def fix_mmap_threshold(threshold: int = 256 << 10) -> None:
    """Make glibc serve every allocation of `threshold` bytes or more with its own mmap, given back on free.

    By default glibc raises that threshold after such buffers are freed, so the 1 MiB pieces of request
    bodies soon come from the heap and the process keeps its peak size (a 512 MiB multipart upload: peak
    RSS 164 MiB by default, 132 MiB with the threshold fixed at 256 KiB). Nothing on other C libraries.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def foreground_argv() -> list[str]:
    """This process's `jfs gateway` command line without the background options (-d, --log)."""
    out: list[str] = []
    skip = False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a in ("-d", "--background"):
            pass
        elif a == "--log":
            skip = True
        elif not a.startswith("--log="):
            out.append(a)
    return [sys.executable, "-P", "-m", "jfs.cli.main", *out]



def spawn_background(args: GatewayArgs, log_path: str | None) -> None:
    """Run this gateway detached (`jfs.cli.background.spawn_detached`, as `jfs mount -d`), logging to
    `log_path`; returns once it listens. Credentials and the address are checked first, so a gateway that
    cannot start says why here rather than only in its log."""
    from jfs.cli.background import listening, spawn_detached

    credentials()
    host, port = parse_address(args.address)
    if listening(host, port):
        raise VolumeError(f"cannot listen on {args.address}: the address is in use")
    child = spawn_detached(foreground_argv(), lambda: listening(host, port), f"the gateway on {args.address}",
                           log_path)
    print(f"jfs: gateway {child.pid} listening on {host}:{port}", file=sys.stderr)


def run_foreground(args: GatewayArgs) -> None:
    from jfs.cli.mount import GIL_SWITCH_INTERVAL

    fix_mmap_threshold()
    # A big upload reuses the page frames of its older blocks (ADR 0052); $JFS_FILE_KEEP_WRITTEN_MIB=0: off.
    os.environ.setdefault(file_pages.KEEP_ENV, str(file_pages.GATEWAY_KEEP_MIB))
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    asyncio.run(serve(args))

"""``jfs webdav META-URL ADDRESS``: serve a volume over WebDAV (jfs.adapters.webdav).

Credentials come from WEBDAV_USER / WEBDAV_PASSWORD (as in JuiceFS; never from the command line, where
`ps` would show them); without them the server refuses to start unless ``--anonymous`` is given.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from jfs.cli.app_calls import remember_secrets
from jfs.cli.background import last_log_line, listening, log_size, start_detached, wait_for
from jfs.cli.client_opts import (
    DEFAULT_BUFFER_SIZE,
    DEFAULT_CACHE_SIZE,
    BufferSize,
    CacheDir,
    CacheSize,
    MaxUploads,
)
from jfs.cli.errors import report

_EXAMPLES = (
    "[bold]Examples:[/bold]\n\n"
    "WEBDAV_USER=me WEBDAV_PASSWORD=secret jfs webdav sqlite3://myjfs.db localhost:9007\n\n"
    "jfs webdav redis://localhost/1 :9007 --anonymous --read-only -d\n\n"
    "jfs webdav redis://localhost/1 0.0.0.0:9443 --cert-file cert.pem --key-file key.pem"
)


def _log_path() -> str:
    return "/var/log/jfs-webdav.log" if os.geteuid() == 0 else os.path.expanduser("~/.jfs/jfs-webdav.log")



def _spawn_background(host: str, port: int) -> None:
    """Re-run this command in the foreground, detached, logging to the log file; wait until it listens."""
    from jfs.app.errors import VolumeError

    argv = [a for a in sys.argv[1:] if a not in ("-d", "--background")]
    log_path = _log_path()
    since = log_size(log_path)
    child = start_detached([sys.executable, "-P", "-m", "jfs.cli.main", *argv], log_path)
    if wait_for(child, lambda: listening(host, port), 30.0):
        typer.echo(f"jfs: WebDAV server {child.pid} listening on {host}:{port} (log: {log_path})")
        return
    if child.poll() is None:
        child.terminate()
    tail = last_log_line(log_path, since)
    raise VolumeError(f"the WebDAV server did not come up: {tail or 'no output'} (log: {log_path})")


def webdav(
    meta_url: Annotated[str, typer.Argument(metavar="META-URL", help="Where the metadata lives.", show_default=False)],
    address: Annotated[str, typer.Argument(metavar="ADDRESS", help="HOST:PORT to listen on (:PORT = every interface).")],
    background: Annotated[bool, typer.Option("--background", "-d", help="Run in the background; return once listening.")] = False,
    anonymous: Annotated[bool, typer.Option("--anonymous", help="Serve without authentication (only when WEBDAV_USER/WEBDAV_PASSWORD are unset).")] = False,
    digest: Annotated[bool, typer.Option("--digest", help="Challenge clients for Digest authentication instead of Basic (both are accepted).", rich_help_panel="HTTP")] = False,
    cert_file: Annotated[str | None, typer.Option(help="TLS certificate (PEM): serve HTTPS.", rich_help_panel="HTTP", show_default=False)] = None,
    key_file: Annotated[str | None, typer.Option(help="TLS private key (PEM).", rich_help_panel="HTTP", show_default=False)] = None,
    gzip: Annotated[bool, typer.Option("--gzip", help="Compress textual responses (PROPFIND XML, listings) for clients that accept gzip.", rich_help_panel="HTTP")] = False,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log one line per request.", rich_help_panel="HTTP")] = True,
    threads: Annotated[int, typer.Option(min=1, max=1024, help="Requests served at once.", rich_help_panel="HTTP")] = 32,
    dead_props: Annotated[bool, typer.Option("--dead-props/--no-dead-props", help="Store PROPPATCH properties as extended attributes.", rich_help_panel="HTTP")] = True,
    subdir: Annotated[str, typer.Option(help="Serve only this directory of the volume.")] = "",
    read_only: Annotated[bool, typer.Option("--read-only", help="Refuse every change.")] = False,
    cache_dir: CacheDir = None,
    cache_size: CacheSize = DEFAULT_CACHE_SIZE,
    buffer_size: BufferSize = DEFAULT_BUFFER_SIZE,
    max_uploads: MaxUploads = 20,
    heartbeat: Annotated[float, typer.Option(help="Session heartbeat interval, seconds.")] = 12.0,
    no_bgjob: Annotated[bool, typer.Option("--no-bgjob", help="Run no background jobs (cleanup of other sessions, deletions).")] = False,
    metrics: Annotated[str, typer.Option(help="Serve Prometheus metrics at HOST:PORT (the next free port when taken; \"off\" for none).")] = "127.0.0.1:9567",
) -> None:
    """Serve a volume over WebDAV (class 1 and 2: properties, locks) at ADDRESS."""
    remember_secrets(meta_url, os.environ.get("WEBDAV_PASSWORD"))
    try:
        from jfs.adapters.webdav.server import DavOptions, parse_address

        host, port = parse_address(address)
        opts = DavOptions(
            host=host, port=port, user=os.environ.get("WEBDAV_USER") or None,
            password=os.environ.get("WEBDAV_PASSWORD") or None, anonymous=anonymous, digest=digest, read_only=read_only,
            subdir=subdir, cert_file=cert_file, key_file=key_file, gzip=gzip, access_log=access_log,
            dead_props=dead_props, threads=threads,
        )
        if background:
            _check_options(opts)
            _spawn_background(host, port)
            return
        _serve(meta_url, opts, cache_dir=cache_dir, cache_size=cache_size, buffer_size=buffer_size,
               max_uploads=max_uploads, heartbeat=heartbeat, background_jobs=not no_bgjob, metrics=metrics)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except Exception as exc:
        raise typer.Exit(report(exc)) from None


def _check_options(opts: object) -> None:
    """Fail before detaching when the options cannot work (credentials, TLS pair)."""
    from jfs.adapters.webdav.server import ConfigError, DavOptions, _users

    assert isinstance(opts, DavOptions)
    _users(opts)
    if bool(opts.cert_file) != bool(opts.key_file):
        raise ConfigError("HTTPS needs both --cert-file and --key-file")


def _serve(meta_url: str, opts: object, **client_options: object) -> None:
    from jfs.adapters.webdav.server import DavOptions, serve
    from jfs.bootstrap import default_cache_dir
    from jfs.cli.mount import GIL_SWITCH_INTERVAL
    from jfs.sdk import Client

    assert isinstance(opts, DavOptions)
    _check_options(opts)
    cache_dir = client_options.pop("cache_dir")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    client = Client(meta_url, cache_dir=cache_dir if cache_dir is not None else default_cache_dir(),
                    read_only=opts.read_only, subdir=opts.subdir, enable_xattr=True,
                    mountpoint=f"webdav:{opts.host}:{opts.port}", **client_options)
    from jfs.cli.logs import reload_on_sighup

    reload_on_sighup(None)  # SIGHUP: log level (docs/operations.md)
    try:
        serve(client, opts)
    finally:
        client.close()


def register(app: typer.Typer) -> None:
    """Add ``webdav`` to the `jfs` command."""
    app.command("webdav", epilog=_EXAMPLES)(webdav)

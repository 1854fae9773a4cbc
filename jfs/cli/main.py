"""The ``jfs`` command line: the typer app, its global options and its own commands (version, mount,
gateway, umount); every other command lives in a ``*_cmd`` module that adds itself with ``register(app)``,
imported when one of its commands is used (`COMMANDS`, `jfs.cli.lazy`).

A command turns its arguments into one call of the app layer (`jfs.cli.app_calls.run`) and renders the
result. Failures a user can act on (bad META-URL, engine down, bucket not writable, volume already
formatted, …) are printed as one line ``jfs: error: <message>`` on stderr with exit status 1 (2 for bad
arguments); tracebacks only with ``--debug`` or ``JFS_DEBUG=1``. Logs go to stderr, results to stdout.
No module imports this one: it is the top of the CLI (``python -m jfs.cli.main`` runs it).
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import Annotated

import typer

from jfs.cli import coerce, errors, installed_version, quit_on_interrupt, stops_cleanly
from jfs.cli.client_opts import (
    DEFAULT_BUFFER_SIZE,
    DEFAULT_CACHE_SIZE,
    BufferSize,
    CacheDir,
    CacheSize,
    MaxUploads,
)
from jfs.cli.errors import print_error, report
from jfs.cli.lazy import LazyGroup
from jfs.cli.units import duration_option

COMMANDS: tuple[tuple[str, str | None], ...] = (
    ("version", None),
    ("format", "volume_cmd"), ("status", "volume_cmd"), ("config", "volume_cmd"),
    ("mount", None), ("gateway", None), ("umount", None),
    ("bench", "bench_cmd"), ("mdtest", "bench_cmd"),
    ("info", "control_cmd"), ("summary", "control_cmd"), ("rmr", "control_cmd"), ("warmup", "control_cmd"),
    ("dump", "dump_cmd"), ("load", "dump_cmd"),
    ("gc", "maint_cmd"), ("fsck", "maint_cmd"), ("restore", "maint_cmd"), ("destroy", "maint_cmd"),
    ("stats", "observe_cmd"), ("profile", "observe_cmd"), ("debug", "observe_cmd"),
    ("webdav", "webdav_cmd"),
    ("quota", "quota_cmd"),
)
"""Every command in the order of ``jfs --help``, with the ``jfs.cli`` module whose ``register(app)`` adds it
(``None``: defined below). A module is imported only when one of its commands is used (`LazyGroup`);
tests/unit/test_cli_lazy.py checks this table against what the modules register."""


coerce.install()  # plain option values without pydantic (ADR 0063)


class _Commands(LazyGroup):
    commands_table = COMMANDS


app = typer.Typer(
    name="jfs",
    cls=_Commands,
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="jfs: a distributed POSIX file system. Metadata in a transactional KV engine (SQLite, Redis, "
    "TiKV), data blocks in object storage.",
    epilog="META-URL forms: [bold]sqlite3://[/bold]path/to/meta.db, "
    "[bold]redis://[/bold]\\[user:pass@]host:6379/1, [bold]rediss://[/bold]…, "
    "[bold]unix://[/bold]/path/redis.sock?db=1, [bold]tikv://[/bold]pd1:2379,pd2:2379/prefix",
)


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


# ---------------------------------------------------------------------------------------------------
# Global options


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"jfs version {installed_version()}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    log_level: Annotated[
        LogLevel,
        typer.Option("--log-level", envvar="JFS_LOG_LEVEL", case_sensitive=False, help="Log level."),
    ] = LogLevel.info,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging (--log-level debug).")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only log errors (--log-level error).")
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="JFS_DEBUG", help="Debug logging, and tracebacks with errors."),
    ] = False,
    _version_flag: Annotated[
        bool,
        typer.Option(
            "--version", "-V", is_eager=True, callback=_print_version, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Global options come before the command: [bold]jfs -v status META-URL[/bold]."""
    errors.state.debug = debug
    errors.state.secrets = []
    _log_level[0] = "debug" if (debug or verbose) else "error" if quiet else str(log_level.value)
    if ctx.invoked_subcommand == "mount":  # it configures logging where it logs: `jfs mount -d`'s parent
        return                             # does not, and then needs no structlog (ADR 0069)
    _setup_logging()


_log_level = ["info"]
"""The level the global options chose (`_setup_logging`)."""


def _setup_logging() -> None:
    """Configure logging when structlog is imported (now, if it is): a command that logs imports it first,
    and one that does not (``version``, ``CMD --help``) pays for neither structlog nor asyncio (ADR 0081)."""
    from jfs.cli import structlog_import

    structlog_import.when_imported(_configure_logging)


def _configure_logging() -> None:
    from jfs.cli.logs import setup_logging

    setup_logging(_log_level[0])


# ---------------------------------------------------------------------------------------------------
# Commands


@app.command(epilog="[bold]Examples:[/bold]\n\njfs version")
def version() -> None:
    """Show the version of jfs."""
    typer.echo(f"jfs version {installed_version()}")



@app.command(
    epilog="[bold]Examples:[/bold]\n\n"
    "jfs mount sqlite3://myjfs.db /mnt/jfs -d\n\n"
    "jfs mount redis://localhost:6379/1 /mnt/jfs --cache-dir /var/jfsCache --cache-size 10G\n\n"
    "jfs mount redis://localhost:6379/1 /mnt/jfs -d -o allow_other,noatime --subdir /team --log /tmp/jfs.log\n\n"
    "jfs mount redis://localhost:6379/1 /mnt/jfs --upload-limit 100 --backup-meta 0   # 100 Mbps, no backups",
)
def mount(
    ctx: typer.Context,
    meta_url: Annotated[
        str, typer.Argument(metavar="META-URL", help="Where the metadata lives.", show_default=False)
    ],
    mountpoint: Annotated[str, typer.Argument(
        metavar="MOUNTPOINT", help="The directory to mount on, created with its parents if missing. It may "
        "hold files (as in JuiceFS): they are hidden while the volume is mounted.")],
    background: Annotated[
        bool, typer.Option("--background", "-d", help="Run in the background; return once mounted.")
    ] = False,
    foreground: Annotated[bool, typer.Option(hidden=True)] = False,
    cache_dir: CacheDir = None,
    cache_size: CacheSize = DEFAULT_CACHE_SIZE,
    buffer_size: BufferSize = DEFAULT_BUFFER_SIZE,
    max_uploads: MaxUploads = 20,
    attr_cache: Annotated[float, typer.Option(help="Kernel attribute cache, seconds.", rich_help_panel="FUSE")] = 1.0,
    entry_cache: Annotated[float, typer.Option(help="Kernel entry cache for files, seconds.", rich_help_panel="FUSE")] = 1.0,
    dir_entry_cache: Annotated[
        float, typer.Option(help="Kernel entry cache for directories, seconds.", rich_help_panel="FUSE")
    ] = 1.0,
    negative_entry_cache: Annotated[
        float, typer.Option(help="Kernel cache of failed lookups, seconds.", rich_help_panel="FUSE")
    ] = 0.0,
    writeback_cache: Annotated[
        bool, typer.Option(help="Let the kernel cache writes (faster small writes, weaker ordering).",
                           rich_help_panel="FUSE")
    ] = False,
    readdir_cache: Annotated[
        bool, typer.Option(help="Let the kernel list a directory again from its cache while this mount knows of no "
                           "change in it, for at most the shortest of the entry/attribute caches (ADR 0024).",
                           rich_help_panel="FUSE")
    ] = True,
    readdir_plus: Annotated[str, typer.Option(
        "--readdir-plus", metavar="always|auto|never", rich_help_panel="FUSE",
        help="Which listing replies carry attributes: always (every reply; `ls -l` needs no LOOKUPs), auto (the "
        "kernel chooses, as JuiceFS: the first reply and after lookups in the directory; cheaper bare "
        "listings), never (ADR 0080).")] = "always",
    enable_xattr: Annotated[bool, typer.Option(
        "--enable-xattr", help="Serve extended attributes (off by default, as in JuiceFS: without it the kernel "
        "answers EOPNOTSUPP itself and `ls -l` needs no xattr round trips).", rich_help_panel="FUSE")] = False,
    read_only: Annotated[bool, typer.Option("--read-only", help="Mount read-only.")] = False,
    fuse_options: Annotated[list[str] | None, typer.Option(
        "-o", "--options", metavar="OPTS", show_default=False, rich_help_panel="FUSE",
        help="FUSE mount options, comma-separated, repeatable: allow_other (off unless given), ro, noatime, "
        "noexec, writeback_cache, max_read=N, fsname=NAME, ... (others go to the kernel as they are).")] = None,
    subdir: Annotated[str, typer.Option(help="Mount this directory of the volume as the root.",
                                        rich_help_panel="Meta")] = "",
    heartbeat: Annotated[float, typer.Option(
        parser=duration_option, metavar="DURATION", show_default="12s", rich_help_panel="Meta",
        help="Session heartbeat interval (12s, 1m; a plain number is seconds).")] = 12.0,
    no_bgjob: Annotated[bool, typer.Option("--no-bgjob", help="Run no background jobs (cleanup of other sessions, deletions, metadata backups).", rich_help_panel="Meta")] = False,
    writeback: Annotated[bool, typer.Option(
        "--writeback", rich_help_panel="Data",
        help="Write-back: blocks are staged (fsynced) in the cache directory and uploaded in the background; "
        "a crashed mount's staged blocks are uploaded by the next mount of that cache directory. Trades "
        "durability: until uploaded, acknowledged data lives only on this host's disk. At most --cache-size "
        "is staged (less when the disk is below --free-space-ratio): beyond, blocks are uploaded directly.")] = False,
    backup_meta: Annotated[float, typer.Option(
        parser=duration_option, metavar="DURATION", show_default="1h", rich_help_panel="Meta",
        help="Back the metadata up into the bucket's meta/ every DURATION (one client per volume does; "
        "0 = never; old backups are thinned as JuiceFS does); restore with jfs load.")] = 3600.0,
    prefetch: Annotated[int, typer.Option(min=0, help="Background block loads (read-ahead) in flight; 0 = "
                                          "no read-ahead.", rich_help_panel="Data")] = 16,
    free_space_ratio: Annotated[float, typer.Option(
        min=0.0, max=1.0, rich_help_panel="Cache",
        help="Cache nothing while the cache disk has less than this share free.")] = 0.1,
    upload_limit: Annotated[float, typer.Option(
        min=0.0, metavar="MBPS", rich_help_panel="Data", help="Upload bandwidth limit in Mbps (0 = none).")] = 0.0,
    download_limit: Annotated[float, typer.Option(
        min=0.0, metavar="MBPS", rich_help_panel="Data", help="Download bandwidth limit in Mbps (0 = none).")] = 0.0,
    log_file: Annotated[str | None, typer.Option(
        "--log", metavar="FILE", show_default=False,
        help="Log file of a background mount (default /var/log/jfs.log as root, ~/.jfs/jfs.log otherwise).")] = None,
    metrics: Annotated[str, typer.Option(
        help="Serve Prometheus metrics at HOST:PORT (the next free port when taken; \"off\" for none).",
        rich_help_panel="Observability")] = "127.0.0.1:9567",
    update_fstab: Annotated[bool, typer.Option(
        "--update-fstab", help="Add (or replace) this mount in /etc/fstab and link /sbin/mount.jfs.")] = False,
) -> None:
    """Mount a volume at MOUNTPOINT (in the foreground unless [bold]-d[/bold])."""
    # The parent of a background mount imports neither the engines nor the FUSE server: only its child
    # serves (ADR 0069). `jfs.cli.mount` is imported for the foreground mount alone.
    from jfs.cli import mount_start as ms
    from jfs.cli.app_calls import remember_secrets

    remember_secrets(meta_url)
    try:
        if update_fstab:
            _setup_logging()
            from jfs.cli import fstab

            fstab.update_fstab(meta_url, mountpoint, ctx)
        path = ms.check_mountpoint(mountpoint)
        ms.check_metrics(metrics)
        if background and not foreground:
            ms.spawn_background(ms.foreground_argv(), path, log_file=log_file)
            typer.echo(f"jfs: {path} is mounted")
            return
        _setup_logging()
        from jfs.cli import mount as m

        args = m.MountArgs(
            meta_url=meta_url, mountpoint=mountpoint, cache_dir=cache_dir, cache_size=cache_size,
            buffer_size=buffer_size, attr_cache=attr_cache, entry_cache=entry_cache,
            dir_entry_cache=dir_entry_cache, negative_cache=negative_entry_cache, enable_xattr=enable_xattr,
            writeback_cache=writeback_cache, read_only=read_only, heartbeat=heartbeat, max_uploads=max_uploads,
            no_bgjob=no_bgjob, metrics=metrics, fuse_options=tuple(fuse_options or ()), subdir=subdir,
            prefetch=prefetch, free_space_ratio=free_space_ratio, upload_limit=upload_limit,
            download_limit=download_limit, backup_meta=backup_meta, log_file=log_file, writeback=writeback,
            readdir_cache=readdir_cache, readdir_plus=readdir_plus,
        )
        with stops_cleanly():  # Ctrl-C unmounts (the FUSE server's own handler once mounted)
            m.run_foreground(args)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except Exception as exc:
        raise typer.Exit(report(exc)) from None


@app.command(
    epilog="[bold]Examples:[/bold]\n\n"
    "MINIO_ROOT_USER=admin MINIO_ROOT_PASSWORD=12345678 jfs gateway redis://localhost/1 127.0.0.1:9000\n\n"
    "jfs gateway sqlite3://myjfs.db 0.0.0.0:9000 -d --log /var/log/jfs-gateway.log   # in the background",
)
def gateway(
    meta_url: Annotated[
        str, typer.Argument(metavar="META-URL", help="Where the metadata lives.", show_default=False)
    ],
    address: Annotated[str, typer.Argument(metavar="ADDRESS", help="HOST:PORT to listen on.")],
    background: Annotated[
        bool, typer.Option("--background", "-d", help="Run in the background; return once listening.")
    ] = False,
    log_file: Annotated[str | None, typer.Option(
        "--log", help="Log file of the background gateway (default /var/log/jfs.log as root, ~/.jfs/jfs.log "
        "otherwise).", show_default=False)] = None,
    multi_buckets: Annotated[bool, typer.Option("--multi-buckets", help="Serve every top-level directory as a "
                                                "bucket (default: one bucket named after the volume).")] = False,
    keep_etag: Annotated[bool, typer.Option("--keep-etag", help="Accepted for JuiceFS compatibility: ETags are "
                                            "always kept (xattr user.s3.object).")] = True,
    umask: Annotated[str, typer.Option(help="Umask of new files and directories (octal).")] = "022",
    cert_file: Annotated[str | None, typer.Option(help="TLS certificate (PEM): serve HTTPS.")] = None,
    key_file: Annotated[str | None, typer.Option(help="TLS private key (PEM).")] = None,
    access_log: Annotated[str | None, typer.Option(help="Append one line per request to this file.")] = None,
    subdir: Annotated[str, typer.Option(help="Serve this directory of the volume.")] = "",
    read_only: Annotated[bool, typer.Option("--read-only", help="Refuse every change.")] = False,
    cache_dir: CacheDir = None,
    cache_size: CacheSize = DEFAULT_CACHE_SIZE,
    buffer_size: BufferSize = DEFAULT_BUFFER_SIZE,
    max_uploads: MaxUploads = 20,
    attr_cache: Annotated[float, typer.Option(help="Attribute cache, seconds.", rich_help_panel="Cache")] = 1.0,
    entry_cache: Annotated[float, typer.Option(help="Name cache, seconds.", rich_help_panel="Cache")] = 1.0,
    heartbeat: Annotated[float, typer.Option(help="Session heartbeat interval, seconds.")] = 12.0,
    no_bgjob: Annotated[bool, typer.Option("--no-bgjob", help="Run no background jobs.")] = False,
    purge_uploads_after: Annotated[float, typer.Option(
        help="Remove unfinished uploads (multipart uploads never completed, PUTs cut off) older than this "
        "many seconds, checked hourly (0: never).")] = 7 * 24 * 3600.0,
    metrics: Annotated[str, typer.Option(help="Serve Prometheus metrics at HOST:PORT (the next free port when "
                                         "taken; \"off\" for none).")] = "127.0.0.1:9567",
) -> None:
    """Serve a volume over the S3 API at ADDRESS (credentials: MINIO_ROOT_USER / MINIO_ROOT_PASSWORD)."""
    from jfs.cli import gateway as g
    from jfs.cli.app_calls import remember_secrets, usage_error

    try:
        mask = int(umask, 8)
    except ValueError:
        usage_error(f"--umask must be octal, not {umask!r}")
    remember_secrets(meta_url, os.environ.get("MINIO_ROOT_PASSWORD"), os.environ.get("JFS_GATEWAY_SECRET_KEY"))
    args = g.GatewayArgs(
        meta_url=meta_url, address=address, cache_dir=cache_dir, cache_size_mib=cache_size >> 20,
        buffer_size_mib=buffer_size >> 20, max_uploads=max_uploads, read_only=read_only, subdir=subdir,
        multi_buckets=multi_buckets, umask=mask, attr_cache=attr_cache, entry_cache=entry_cache,
        cert_file=cert_file, key_file=key_file, no_bgjob=no_bgjob, heartbeat=heartbeat, access_log=access_log,
        upload_age=purge_uploads_after,
        metrics=metrics,
    )
    try:
        if background:
            g.spawn_background(args, log_file)
            return
        g.run_foreground(args)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except Exception as exc:
        raise typer.Exit(report(exc)) from None


@app.command(epilog="[bold]Examples:[/bold]\n\njfs umount /mnt/jfs\n\njfs umount /mnt/jfs --force   # a hung backend")
def umount(
    mountpoint: Annotated[str, typer.Argument(metavar="MOUNTPOINT")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Detach even if busy (lazy unmount).")] = False,
) -> None:
    """Unmount a jfs volume; returns once the mount process has flushed and exited."""
    from jfs.cli.unmount import umount as unmount  # light: no engines, no FUSE server (ADR 0069)

    try:
        unmount(mountpoint, force=force)
    except Exception as exc:
        raise typer.Exit(report(exc)) from None


def _typer_saw_interrupt(exc: SystemExit) -> bool:
    """Whether typer turned a KeyboardInterrupt outside `app_calls.run` into this exit 130 (it prints nothing, so
    the error line is ours): from a `stops_cleanly` block that does not catch it, or when another SIGINT
    handler kept the quick exit of `jfs.cli` out."""
    cause = exc.__context__
    return exc.code == 130 and cause is not None and isinstance(cause.__cause__, KeyboardInterrupt)


def main() -> None:
    """Run the ``jfs`` command line (the console script enters through ``jfs.cli:run``, which already
    handles Ctrl-C during the imports: see `jfs.cli`)."""
    errors.state.debug = os.environ.get("JFS_DEBUG", "").lower() in ("1", "true", "yes", "on")
    quit_on_interrupt()  # already done by `jfs.cli.run`, unless entered here
    try:
        app(prog_name="jfs")
    except KeyboardInterrupt:
        print_error("interrupted")
        sys.exit(130)
    except SystemExit as exc:
        if _typer_saw_interrupt(exc):
            print_error("interrupted")
        raise
    except Exception as exc:  # escaped a command's own boundary (e.g. a broken install)
        sys.exit(report(exc))


if __name__ == "__main__":
    main()

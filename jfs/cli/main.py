"""The ``jfs`` command line: a thin shell over the application layer (`jfs.app.volume`).

Each command turns its arguments into one call of the app layer, runs it with `asyncio.run`, and renders
the result. Failures a user can act on (bad META-URL, engine down, bucket not writable, volume already
formatted, …) are printed as one line ``jfs: error: <message>`` on stderr with exit status 1 (2 for bad
arguments); tracebacks only with ``--debug`` or ``JFS_DEBUG=1``. Logs go to stderr, results to stdout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Coroutine
from enum import StrEnum
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from types import ModuleType
from typing import Annotated, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

from jfs.adapters.kv.base import redact_url
from jfs.app.errors import JfsError
from jfs.cli import errors, quit_on_interrupt, stops_cleanly
from jfs.cli.client_opts import (
    DEFAULT_BUFFER_SIZE,
    DEFAULT_CACHE_SIZE,
    BufferSize,
    CacheDir,
    CacheSize,
    MaxUploads,
)
from jfs.cli.logs import setup_logging
from jfs.cli.units import duration_option
from jfs.domain.settings import SECRET_FIELDS, InvalidSettings, Settings

T = TypeVar("T")
GiB = 1 << 30
SECRET_ATTRS = ("secret_key", "session_token", "encrypt_key")

app = typer.Typer(
    name="jfs",
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


class Storage(StrEnum):
    file = "file"
    s3 = "s3"
    mem = "mem"


class Compression(StrEnum):
    none = "none"
    lz4 = "lz4"
    zstd = "zstd"


class EncryptAlgo(StrEnum):
    aes256gcm_rsa = "aes256gcm-rsa"
    chacha20_rsa = "chacha20-rsa"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


# ---------------------------------------------------------------------------------------------------
# Error boundary: jfs.cli.errors (the command modules reach it as `cli._report` / `cli._print_error`)

_report = errors.report
_print_error = errors.print_error


def _usage_error(message: str) -> NoReturn:
    _print_error(message)
    raise typer.Exit(2)


def _api() -> ModuleType:
    """The composition root with the volume commands' URL wrappers (`jfs.compose`), imported on first use:
    `jfs --help` stays fast and loads no engine client."""
    import jfs.compose as compose

    return compose


def _run(call: Callable[[ModuleType], Coroutine[Any, Any, T]]) -> T:
    """Run one app-layer coroutine under the error boundary (Ctrl-C stops it cleanly: see `jfs.cli`)."""
    try:
        api = _api()
        with stops_cleanly():
            return asyncio.run(call(api))
    except KeyboardInterrupt:
        _print_error("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:
        raise typer.Exit(_report(exc)) from None


def _run_sync(call: Callable[[], T]) -> T:
    """Run a synchronous app-layer call under the error boundary."""
    try:
        return call()
    except Exception as exc:
        raise typer.Exit(_report(exc)) from None


def _read_rsa_key(path: str) -> str:
    from jfs.app.data.crypto import read_key_file

    return read_key_file(path)


def _remember_secrets(meta_url: str, *values: str | None) -> None:
    try:
        password = urlsplit(meta_url).password
    except ValueError:
        password = None
    errors.state.secrets.extend(v for v in (password, *values) if v)


# ---------------------------------------------------------------------------------------------------
# Rendering helpers


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _limit(n: int, unit: Callable[[int], str]) -> str:
    return "unlimited" if not n else unit(n)


def _console() -> Console:
    """Rich console on stdout; colours only on a terminal, wide enough not to wrap when piped."""
    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200, color_system=None)
    return console


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _mask(doc: Any) -> Any:
    """Replace secret fields (SecretKey, SessionToken, EncryptKey) anywhere in `doc` by "removed"."""
    if isinstance(doc, dict):
        return {k: ("removed" if k in SECRET_FIELDS and v else _mask(v)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_mask(v) for v in doc]
    return doc


def _print_pairs(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"  {key:<{width}}  {value}")


# ---------------------------------------------------------------------------------------------------
# Global options


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"jfs version {_version()}")
        raise typer.Exit()


def _version() -> str:
    try:
        return _dist_version("jfs")
    except PackageNotFoundError:
        return "unknown (not installed; run pip install -e .)"


@app.callback()
def _global_options(
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
    level = "debug" if (debug or verbose) else "error" if quiet else str(log_level.value)
    setup_logging(level)


# ---------------------------------------------------------------------------------------------------
# Commands


@app.command(epilog="[bold]Examples:[/bold]\n\njfs version")
def version() -> None:
    """Show the version of jfs."""
    typer.echo(f"jfs version {_version()}")


@app.command(
    "format",
    epilog="[bold]Examples:[/bold]\n\n"
    "jfs format sqlite3://myjfs.db myjfs --bucket /srv/jfs-data\n\n"
    "jfs format redis://localhost:6379/1 myjfs --storage s3 --bucket https://mybucket.s3.us-east-2.amazonaws.com "
    "--compress lz4\n\n"
    "ACCESS_KEY=... SECRET_KEY=... jfs format redis://:password@host:6379/1 myjfs --storage s3 --bucket ...",
)
def format_(
    meta_url: Annotated[
        str, typer.Argument(metavar="META-URL", help="Where the metadata lives.", show_default=False)
    ],
    name: Annotated[
        str,
        typer.Argument(metavar="NAME", help="Volume name: 3-63 of a-z, 0-9 and '-'.", show_default=False),
    ],
    storage: Annotated[
        Storage, typer.Option(help="Object storage type.", rich_help_panel="Data storage")
    ] = Storage.file,
    bucket: Annotated[
        str | None,
        typer.Option(
            help="Bucket URL, or directory for [bold]file[/bold] storage (default ~/.jfs/local/).",
            rich_help_panel="Data storage",
            show_default=False,
        ),
    ] = None,
    access_key: Annotated[
        str,
        typer.Option(
            envvar="ACCESS_KEY", help="Access key of the object storage.", rich_help_panel="Data storage"
        ),
    ] = "",
    secret_key: Annotated[
        str,
        typer.Option(
            envvar="SECRET_KEY",
            help="Secret key of the object storage.",
            rich_help_panel="Data storage",
            show_default=False,
        ),
    ] = "",
    block_size: Annotated[
        int,
        typer.Option(
            help="Size of each data block in KiB (power of two, 64-16384).", rich_help_panel="Data format"
        ),
    ] = 4096,
    compress: Annotated[
        Compression, typer.Option(help="Compression of data blocks.", rich_help_panel="Data format")
    ] = Compression.none,
    hash_prefix: Annotated[
        bool,
        typer.Option(
            "--hash-prefix", help="Spread object keys with a hash prefix.", rich_help_panel="Data format"
        ),
    ] = False,
    checksum: Annotated[
        bool,
        typer.Option(
            "--checksum",
            help="Keep a CRC-32 of every block in the metadata and check blocks read from the object "
            "storage against it (jfs only; JuiceFS ignores it).",
            rich_help_panel="Data format",
        ),
    ] = False,
    encrypt_rsa_key: Annotated[
        str | None,
        typer.Option(
            help="Encrypt every object with this RSA private key (PEM; its passphrase, if any, from "
            "$JFS_RSA_PASSPHRASE). The key is stored in the volume's settings: keep a copy and the passphrase.",
            rich_help_panel="Encryption",
            show_default=False,
        ),
    ] = None,
    encrypt_algo: Annotated[
        EncryptAlgo,
        typer.Option(help="Cipher of the objects (with --encrypt-rsa-key).", rich_help_panel="Encryption"),
    ] = EncryptAlgo.aes256gcm_rsa,
    encrypt_secret: Annotated[
        bool,
        typer.Option(
            "--encrypt-secret",
            help="Store the object-storage secret key sealed (always done with --encrypt-rsa-key).",
            rich_help_panel="Encryption",
        ),
    ] = False,
    trash_days: Annotated[
        int,
        typer.Option(
            min=0,
            help="Days deleted files stay in .trash (0 disables the trash).",
            rich_help_panel="Management",
        ),
    ] = 1,
    capacity: Annotated[
        int, typer.Option(min=0, help="Capacity quota in GiB (0 = unlimited).", rich_help_panel="Management")
    ] = 0,
    inodes: Annotated[
        int,
        typer.Option(min=0, help="Maximum number of files (0 = unlimited).", rich_help_panel="Management"),
    ] = 0,
    force: Annotated[
        bool,
        typer.Option("--force", help="Update the settings of an existing volume (its name cannot change)."),
    ] = False,
) -> None:
    """Create a volume: write its settings to the metadata engine after checking the bucket is writable."""
    _remember_secrets(meta_url, secret_key)
    if not bucket and storage is Storage.s3:
        _usage_error("--bucket is required for s3 storage")
    # A relative `file` bucket is made absolute by the app layer, against this process's directory.
    settings = Settings(
        name=name,
        storage=storage.value,
        bucket=bucket or "",
        access_key=access_key,
        secret_key=secret_key,
        block_size=block_size,
        compression=compress.value,
        hash_prefix=hash_prefix,
        checksum="crc32" if checksum else "",
        capacity=capacity * GiB,
        inodes=inodes,
        trash_days=trash_days,
        encrypt_algo=encrypt_algo.value,
    )
    if encrypt_rsa_key is not None:
        settings.encrypt_key = _run_sync(lambda: _read_rsa_key(encrypt_rsa_key))
    try:
        settings.validate()
    except InvalidSettings as exc:
        _usage_error(str(exc))

    stored: Settings = _run(
        lambda v: v.format_volume(meta_url, settings, force=force, encrypt_secret=encrypt_secret)
    )

    typer.echo(f"Volume {stored.name!r} formatted.")
    rows = [
        ("META-URL", redact_url(meta_url)),
        ("Name", stored.name),
        ("UUID", stored.uuid),
        ("Storage", stored.storage),
        ("Bucket", stored.bucket),
    ]
    if stored.access_key:
        rows.append(("Access key", stored.access_key))
    if stored.secret_key:
        rows.append(("Secret key", "removed"))
    rows += [
        ("Block size", f"{stored.block_size} KiB ({_human_bytes(stored.block_bytes)})"),
        ("Compression", stored.compression),
        ("Block checksums", stored.checksum or "none"),
        ("Encryption", stored.encryption or "none"),
        ("Trash days", f"{stored.trash_days}" + (" (trash disabled)" if stored.trash_days == 0 else "")),
        ("Capacity", _limit(stored.capacity, _human_bytes)),
        ("Inodes", _limit(stored.inodes, str)),
    ]
    _print_pairs(rows)


@app.command(
    epilog="[bold]Examples:[/bold]\n\n"
    "jfs status sqlite3://myjfs.db\n\n"
    "jfs status redis://localhost:6379/1 --json | jq .Statistic\n\n"
    "jfs status redis://localhost:6379/1 --session 3",
)
def status(
    meta_url: Annotated[
        str, typer.Argument(metavar="META-URL", help="Where the metadata lives.", show_default=False)
    ],
    session: Annotated[
        int | None,
        typer.Option("--session", "-s", help="Show details of this session (SID).", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Show the volume's settings (secrets removed), its client sessions and its usage."""
    _remember_secrets(meta_url)
    doc: dict[str, Any] = _mask(_run(lambda v: v.volume_status(meta_url, session=session)))
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    console = _console()

    setting = doc.get("Setting", {})
    table = Table(title="Setting", title_justify="left", show_header=False)
    table.add_column("Key", style="bold")
    table.add_column("Value")
    for key, value in setting.items():
        if key == "Capacity" and isinstance(value, int):
            table.add_row(key, f"{value} ({_limit(value, _human_bytes)})")
        else:
            table.add_row(key, _cell(value))
    console.print(table)

    sessions: list[dict[str, Any]] = doc.get("Sessions") or []
    if sessions:
        preferred = ["Sid", "HostName", "MountPoint", "ProcessID", "Version", "Expire"]
        columns = [c for c in preferred if any(c in s for s in sessions)]
        columns += [c for s in sessions for c in s if c not in columns]
        columns = list(dict.fromkeys(columns))
        table = Table(title=f"Sessions ({len(sessions)})", title_justify="left")
        for column in columns:
            table.add_column(column)
        for s in sessions:
            table.add_row(*(_cell(s.get(c, "")) for c in columns))
        console.print(table)
    else:
        console.print("Sessions: none")

    stat: dict[str, Any] = doc.get("Statistic") or doc.get("Stat") or {}
    if stat:
        table = Table(title="Statistic", title_justify="left", show_header=False)
        table.add_column("Key", style="bold")
        table.add_column("Value", justify="right")
        for key, value in stat.items():
            shown = _human_bytes(value) if key.endswith("Space") and isinstance(value, int) else _cell(value)
            table.add_row(key, shown)
        console.print(table)

    for key, value in doc.items():  # anything else (e.g. the details of --session)
        if key not in ("Setting", "Sessions", "Statistic", "Stat"):
            console.print(f"[bold]{key}[/bold]")
            console.print_json(json.dumps(value, default=str))


def _setting_diff(old: Settings, new: Settings) -> list[tuple[str, str, str]]:
    """(option, old, new) for every field that differs, values rendered for people, secrets hidden."""
    rows = []
    for f in dataclasses.fields(Settings):
        before, after = getattr(old, f.name), getattr(new, f.name)
        if before == after:
            continue
        if f.name in SECRET_ATTRS:
            before, after = ("removed" if before else "(none)"), ("removed (changed)" if after else "(none)")
        elif f.name == "capacity":
            before, after = _limit(before, _human_bytes), _limit(after, _human_bytes)
        elif f.name == "inodes":
            before, after = _limit(before, str), _limit(after, str)
        elif f.name == "checksum":
            before, after = before or "none", after or "none"
        rows.append((f.name.replace("_", "-"), _cell(before), _cell(after)))
    return rows


@app.command(
    epilog="[bold]Examples:[/bold]\n\n"
    "jfs config sqlite3://myjfs.db\n\n"
    "jfs config redis://localhost:6379/1 --trash-days 7 --capacity 100\n\n"
    "jfs config redis://localhost:6379/1 --access-key AKIA... --secret-key ... --yes",
)
def config(
    meta_url: Annotated[
        str, typer.Argument(metavar="META-URL", help="Where the metadata lives.", show_default=False)
    ],
    trash_days: Annotated[
        int | None,
        typer.Option(min=0, help="Days deleted files stay in .trash (0 disables it).", show_default=False),
    ] = None,
    capacity: Annotated[
        int | None, typer.Option(min=0, help="Capacity quota in GiB (0 = unlimited).", show_default=False)
    ] = None,
    inodes: Annotated[
        int | None, typer.Option(min=0, help="Maximum number of files (0 = unlimited).", show_default=False)
    ] = None,
    access_key: Annotated[
        str | None, typer.Option(help="New access key of the object storage.", show_default=False)
    ] = None,
    secret_key: Annotated[
        str | None,
        typer.Option(help="New secret key of the object storage.", show_default=False),
    ] = None,
    checksum: Annotated[
        bool | None,
        typer.Option(
            "--checksum/--no-checksum",
            help="Start or stop keeping and checking block CRC-32s for data written from now on (new mounts).",
            show_default=False,
        ),
    ] = None,
    encrypt_secret: Annotated[
        bool,
        typer.Option("--encrypt-secret", help="Seal the secret key if it is stored in plain text (KeyEncrypted)."),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Show the volume's settings, or change those that may change (only the options given)."""
    _remember_secrets(meta_url, secret_key)
    changes: dict[str, object] = {
        key: value
        for key, value in {
            "trash_days": trash_days,
            "capacity": None if capacity is None else capacity * GiB,
            "inodes": inodes,
            "access_key": access_key,
            "secret_key": secret_key,
            "checksum": None if checksum is None else ("crc32" if checksum else ""),
            "encrypt_secret": True if encrypt_secret else None,
        }.items()
        if value is not None
    }
    if not changes:
        setting = _mask(_run(lambda v: v.volume_status(meta_url)))["Setting"]
        typer.echo(json.dumps(setting, indent=1))
        return
    if ("access_key" in changes or "secret_key" in changes) and not yes:
        question = "Change the object-storage credentials? Every client will use the new ones"
        if not sys.stdin.isatty():
            _print_error("changing the access or secret key needs --yes (no terminal to confirm on)")
            raise typer.Exit(1)
        typer.confirm(question, abort=True)

    old, new = _run(lambda v: v.update_settings(meta_url, changes))
    diff = _setting_diff(old, new)
    if not diff:
        typer.echo(f"Volume {new.name!r}: nothing changed.")
        return
    typer.echo(f"Volume {new.name!r} updated:")
    for option, before, after in diff:
        typer.echo(f"  {option}: {before} -> {after}")


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
    from jfs.cli import mount as m

    args = m.MountArgs(
        meta_url=meta_url, mountpoint=mountpoint, cache_dir=cache_dir, cache_size=cache_size,
        buffer_size=buffer_size, attr_cache=attr_cache, entry_cache=entry_cache,
        dir_entry_cache=dir_entry_cache, negative_cache=negative_entry_cache, enable_xattr=enable_xattr,
        writeback_cache=writeback_cache, read_only=read_only, heartbeat=heartbeat, max_uploads=max_uploads,
        no_bgjob=no_bgjob, metrics=metrics, fuse_options=tuple(fuse_options or ()), subdir=subdir,
        prefetch=prefetch, free_space_ratio=free_space_ratio, upload_limit=upload_limit,
        download_limit=download_limit, backup_meta=backup_meta, log_file=log_file, writeback=writeback,
        readdir_cache=readdir_cache,
    )
    _remember_secrets(meta_url)
    try:
        if update_fstab:
            from jfs.cli import fstab

            fstab.update_fstab(meta_url, mountpoint, ctx)
        path = m.check_mountpoint(mountpoint)
        m.check_metrics(metrics)
        if background and not foreground:
            m.spawn_background(m.foreground_argv(), path, log_file=log_file)
            typer.echo(f"jfs: {path} is mounted")
            return
        with stops_cleanly():  # Ctrl-C unmounts (the FUSE server's own handler once mounted)
            m.run_foreground(args)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except Exception as exc:
        raise typer.Exit(_report(exc)) from None


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

    try:
        mask = int(umask, 8)
    except ValueError:
        _usage_error(f"--umask must be octal, not {umask!r}")
    _remember_secrets(meta_url, os.environ.get("MINIO_ROOT_PASSWORD"), os.environ.get("JFS_GATEWAY_SECRET_KEY"))
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
        raise typer.Exit(_report(exc)) from None


@app.command(epilog="[bold]Examples:[/bold]\n\njfs umount /mnt/jfs\n\njfs umount /mnt/jfs --force   # a hung backend")
def umount(
    mountpoint: Annotated[str, typer.Argument(metavar="MOUNTPOINT")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Detach even if busy (lazy unmount).")] = False,
) -> None:
    """Unmount a jfs volume; returns once the mount process has flushed and exited."""
    from jfs.cli import mount as m

    try:
        m.umount(mountpoint, force=force)
    except Exception as exc:
        raise typer.Exit(_report(exc)) from None


def _mount_root(path: str) -> str:
    """The root of the mount that holds `path` (the topmost directory on the same device)."""
    cur = os.path.abspath(path)
    dev = os.lstat(cur).st_dev
    while cur != "/":
        parent = os.path.dirname(cur)
        if os.lstat(parent).st_dev != dev:
            break
        cur = parent
    return cur


def _ask_mount(path: str, request: dict[str, Any], *, shown: list[str] | None = None) -> dict[str, Any]:
    """Send one request to the jfs mount holding `path` through its ``.control`` file. Failures name
    `shown` (default: `path`), the path(s) the user gave."""
    import json

    names = shown or [path]
    what = ", ".join(names)
    root = _mount_root(path)
    control = os.path.join(root, ".control")
    try:
        with open(control, "r+b", buffering=0) as f:
            f.write(json.dumps(request).encode())
            f.seek(0)
            chunks = []
            while True:
                piece = f.read(1 << 20)
                if not piece:
                    break
                chunks.append(piece)
    except FileNotFoundError:  # the file system holding `path` has no .control: not jfs
        raise JfsError(f"{what} {'is' if len(names) == 1 else 'are'} not on a jfs mount") from None
    except OSError as exc:
        raise JfsError(f"{what}: cannot reach the jfs mount at {root}: {exc.strerror}") from None
    doc: dict[str, Any] = json.loads(b"".join(chunks))
    if "error" in doc:
        raise JfsError(f"{what}: {doc['error']}")
    return doc


@app.command(
    epilog="[bold]Examples:[/bold]\n\n"
    "jfs info /mnt/jfs/some/file\n\n"
    "jfs info /mnt/jfs/dir --json",
)
def info(
    paths: Annotated[list[str], typer.Argument(metavar="PATH...", help="Files or directories on a jfs mount.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    recursive: Annotated[bool, typer.Option(help="Summarize directories recursively.")] = True,
) -> None:
    """Show inode, size, and chunks → slices → object names of files (a summary for directories)."""
    import json

    status = 0
    for path in paths:
        try:
            ino = os.lstat(path).st_ino
            doc = _ask_mount(path, {"op": "info", "inode": ino, "recursive": recursive})
        except (OSError, JfsError) as exc:
            _print_error(str(exc) if isinstance(exc, JfsError) else f"{path}: {exc.strerror}")
            status = 1
            continue
        unreadable = doc.get("summary", {}).get("unreadable", 0)
        if unreadable:  # as du(1): the totals are shown, the gap reported, the status is 1
            n = "1 directory" if unreadable == 1 else f"{unreadable} directories"
            _print_error(f"{path}: {n} not readable (permission denied): contents not counted")
            status = 1
        if as_json:
            typer.echo(json.dumps({"path": path, **doc}, indent=2))
            continue
        typer.echo(f"{path}:")
        typer.echo(f"  inode: {doc['inode']}  type: {doc['type']}  length: {doc['length']}  nlink: {doc['nlink']}")
        if "summary" in doc:
            sm = doc["summary"]
            typer.echo(f"  files: {sm['files']}  dirs: {sm['dirs']}  length: {_human_bytes(sm['length'])}  "
                       f"space: {_human_bytes(sm['space'])}" + (f"  unreadable dirs: {unreadable}" if unreadable else ""))
        for chunk in doc.get("chunks", []):
            typer.echo(f"  chunk {chunk['index']}:")
            for sl in chunk["slices"]:
                what = f"slice {sl['id']}" if sl["id"] else "hole"
                typer.echo(f"    pos {sl['pos']} len {sl['len']}: {what} (size {sl['size']}, off {sl['off']})")
                for obj in sl["objects"]:
                    typer.echo(f"      {obj}")
    if status:
        raise typer.Exit(status)


# --- command modules: each adds its commands to `app` (one line per module, keep sorted) ---
from jfs.cli import bench_cmd; bench_cmd.register(app)  # noqa: E402, E702, I001
from jfs.cli import dump_cmd; dump_cmd.register(app)  # noqa: E402, E702, I001
from jfs.cli import maint_cmd; maint_cmd.register(app)  # noqa: E402, E702, I001
from jfs.cli import observe_cmd; observe_cmd.register(app)  # noqa: E402, E702, I001
from jfs.cli import tools_cmd; tools_cmd.register(app)  # noqa: E402, E702, I001
from jfs.cli import webdav_cmd; webdav_cmd.register(app)  # noqa: E402, E702, I001
# --- end of command modules ---


def _typer_saw_interrupt(exc: SystemExit) -> bool:
    """Whether typer turned a KeyboardInterrupt outside `_run` into this exit 130 (it prints nothing, so
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
        _print_error("interrupted")
        sys.exit(130)
    except SystemExit as exc:
        if _typer_saw_interrupt(exc):
            _print_error("interrupted")
        raise
    except Exception as exc:  # escaped a command's own boundary (e.g. a broken install)
        sys.exit(_report(exc))


if __name__ == "__main__":
    main()

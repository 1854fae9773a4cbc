"""Volume commands: ``jfs format`` (create a volume or update its settings), ``jfs status`` (settings,
sessions, usage) and ``jfs config`` (show or change the settings that may change).

Each turns its arguments into one call of the composition root (`jfs.cli.app_calls.run`) and renders the
result; secrets (the META-URL password, the secret key) never appear in output or errors: stored secrets are
shown as "removed", changed ones as "removed (changed)".
"""

from __future__ import annotations

import dataclasses
import json
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from jfs.cli.app_calls import remember_secrets, run, run_sync, usage_error
from jfs.cli.errors import print_error
from jfs.cli.render import cell, human_bytes, limit, mask, print_pairs, stdout_console
from jfs.domain.settings import InvalidSettings, Settings

GiB = 1 << 30
SECRET_ATTRS = ("secret_key", "session_token", "encrypt_key")
"""The `Settings` fields `jfs config` never shows."""

commands = typer.Typer()
"""format, status, config: added to the `jfs` command by `register`."""


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


def _redact_url(url: str) -> str:
    # Imported here: ``jfs --help`` lists this module's commands without the engines' base module.
    from jfs.adapters.kv.base import redact_url

    return redact_url(url)


def _read_rsa_key(path: str) -> str:
    from jfs.app.data.crypto import read_key_file

    return read_key_file(path)


@commands.command(
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
    remember_secrets(meta_url, secret_key)
    if not bucket and storage is Storage.s3:
        usage_error("--bucket is required for s3 storage")
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
        settings.encrypt_key = run_sync(lambda: _read_rsa_key(encrypt_rsa_key))
    try:
        settings.validate()
    except InvalidSettings as exc:
        usage_error(str(exc))

    stored: Settings = run(
        lambda v: v.format_volume(meta_url, settings, force=force, encrypt_secret=encrypt_secret)
    )

    typer.echo(f"Volume {stored.name!r} formatted.")
    rows = [
        ("META-URL", _redact_url(meta_url)),
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
        ("Block size", f"{stored.block_size} KiB ({human_bytes(stored.block_bytes)})"),
        ("Compression", stored.compression),
        ("Block checksums", stored.checksum or "none"),
        ("Encryption", stored.encryption or "none"),
        ("Trash days", f"{stored.trash_days}" + (" (trash disabled)" if stored.trash_days == 0 else "")),
        ("Capacity", limit(stored.capacity, human_bytes)),
        ("Inodes", limit(stored.inodes, str)),
    ]
    print_pairs(rows)


@commands.command(
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
    remember_secrets(meta_url)
    doc: dict[str, Any] = mask(run(lambda v: v.volume_status(meta_url, session=session)))
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    out = stdout_console()

    setting = doc.get("Setting", {})
    table = Table(title="Setting", title_justify="left", show_header=False)
    table.add_column("Key", style="bold")
    table.add_column("Value")
    for key, value in setting.items():
        if key == "Capacity" and isinstance(value, int):
            table.add_row(key, f"{value} ({limit(value, human_bytes)})")
        else:
            table.add_row(key, cell(value))
    out.print(table)

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
            table.add_row(*(cell(s.get(c, "")) for c in columns))
        out.print(table)
    else:
        out.print("Sessions: none")

    stat: dict[str, Any] = doc.get("Statistic") or doc.get("Stat") or {}
    if stat:
        table = Table(title="Statistic", title_justify="left", show_header=False)
        table.add_column("Key", style="bold")
        table.add_column("Value", justify="right")
        for key, value in stat.items():
            shown = human_bytes(value) if key.endswith("Space") and isinstance(value, int) else cell(value)
            table.add_row(key, shown)
        out.print(table)

    for key, value in doc.items():  # anything else (e.g. the details of --session)
        if key not in ("Setting", "Sessions", "Statistic", "Stat"):
            out.print(f"[bold]{key}[/bold]")
            out.print_json(json.dumps(value, default=str))


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
            before, after = limit(before, human_bytes), limit(after, human_bytes)
        elif f.name == "inodes":
            before, after = limit(before, str), limit(after, str)
        elif f.name == "checksum":
            before, after = before or "none", after or "none"
        rows.append((f.name.replace("_", "-"), cell(before), cell(after)))
    return rows


@commands.command(
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
    remember_secrets(meta_url, secret_key)
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
        setting = mask(run(lambda v: v.volume_status(meta_url)))["Setting"]
        typer.echo(json.dumps(setting, indent=1))
        return
    if ("access_key" in changes or "secret_key" in changes) and not yes:
        question = "Change the object-storage credentials? Every client will use the new ones"
        if not sys.stdin.isatty():
            print_error("changing the access or secret key needs --yes (no terminal to confirm on)")
            raise typer.Exit(1)
        typer.confirm(question, abort=True)

    old, new = run(lambda v: v.update_settings(meta_url, changes))
    diff = _setting_diff(old, new)
    if not diff:
        typer.echo(f"Volume {new.name!r}: nothing changed.")
        return
    typer.echo(f"Volume {new.name!r} updated:")
    for option, before, after in diff:
        typer.echo(f"  {option}: {before} -> {after}")


def register(app: typer.Typer) -> None:
    """Add format, status and config to the `jfs` command (in that order)."""
    app.registered_commands.extend(commands.registered_commands)

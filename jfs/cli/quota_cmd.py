"""``jfs quota``: directory quotas of a volume: set, get, list, delete.

Each subcommand opens the volume (`jfs.compose.open_volume`) and makes one call of `jfs.app.ops.quota_cmd.run`; the
result is shown as a table or, with ``--json``, as JSON (one object for one quota, else a list).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from jfs.cli.app_calls import remember_secrets, run
from jfs.cli.render import human_bytes, stdout_console

quota_app = typer.Typer(
    no_args_is_help=True, help="Directory quotas: set, get, list, delete.",
    epilog="[bold]Examples:[/bold]\n\njfs quota set sqlite3://myjfs.db --path /projects --capacity 100 --inodes 100000"
    "\n\njfs quota list sqlite3://myjfs.db",
)
MetaURL = Annotated[str, typer.Argument(metavar="META-URL", help="Where the metadata lives.", show_default=False)]
QPath = Annotated[str, typer.Option("--path", help="Directory, relative to the volume root.", show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _quota(meta_url: str, action: str, path: str = "", **limits: int | None) -> Any:
    from jfs.app.ops import quota_cmd
    from jfs.compose import open_volume

    async def call() -> Any:
        async with open_volume(meta_url) as vol:
            return await quota_cmd.run(vol.meta, action, path, **limits)

    remember_secrets(meta_url)
    return run(lambda _v: call())


def _show(docs: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(docs if len(docs) != 1 else docs[0], indent=2))
        return
    table = Table("Path", "Inode", "Size", "Used", "Inodes", "IUsed")
    for d in docs:
        table.add_row(
            d["path"], str(d["inode"]),
            human_bytes(d["max_space"]) if d["max_space"] > 0 else "unlimited", human_bytes(d["used_space"]),
            str(d["max_inodes"]) if d["max_inodes"] > 0 else "unlimited", str(d["used_inodes"]),
        )  # fmt: skip
    stdout_console().print(table)


@quota_app.command("set")
def quota_set(
    meta_url: MetaURL,
    path: QPath,
    capacity: Annotated[int | None, typer.Option("--capacity", min=0, help="Space limit in GiB (0: unlimited).")] = None,
    inodes: Annotated[int | None, typer.Option("--inodes", min=0, help="Inode limit (0: unlimited).")] = None,
    capacity_bytes: Annotated[int | None, typer.Option("--capacity-bytes", min=0, hidden=True)] = None,
    as_json: AsJson = False,
) -> None:
    """Set (or change) the quota of a directory and recompute its usage."""
    space = capacity_bytes if capacity_bytes is not None else (None if capacity is None else capacity << 30)
    _show([_quota(meta_url, "set", path, capacity=space, inodes=inodes)], as_json)


@quota_app.command("get")
def quota_get(meta_url: MetaURL, path: QPath, as_json: AsJson = False) -> None:
    """Show the quota of a directory."""
    _show([_quota(meta_url, "get", path)], as_json)


@quota_app.command("list")
def quota_list(meta_url: MetaURL, as_json: AsJson = False) -> None:
    """List all directory quotas."""
    docs = _quota(meta_url, "list")
    if as_json:
        typer.echo(json.dumps(docs, indent=2))
    else:
        _show(docs, False)


@quota_app.command("delete")
def quota_delete(meta_url: MetaURL, path: QPath) -> None:
    """Remove the quota of a directory."""
    _quota(meta_url, "delete", path)
    typer.echo(f"quota of {path} removed")


def register(app: typer.Typer) -> None:
    """Add the quota group to the `jfs` command."""
    app.add_typer(quota_app, name="quota")

"""``jfs quota``: directory, user and group quotas of a volume: set, get, list, delete, check.

``--path`` names a directory quota, ``--uid``/``--gid`` a user or group quota (JuiceFS 1.3+'s options). Each
subcommand opens the volume (`jfs.compose.open_volume`) and makes one call of `jfs.app.ops.quota_cmd.run`; the
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
    no_args_is_help=True,
    help="Directory, user and group quotas: set, get, list, delete, check.",
    epilog="[bold]Examples:[/bold]\n\njfs quota set sqlite3://myjfs.db --path /projects --capacity 100 --inodes 100000"
    "\n\njfs quota set sqlite3://myjfs.db --uid 1000 --capacity 2"
    "\n\njfs quota check sqlite3://myjfs.db --gid 100 --repair"
    "\n\njfs quota list sqlite3://myjfs.db",
)
MetaURL = Annotated[
    str, typer.Argument(metavar="META-URL", help="Where the metadata lives.", show_default=False)
]
QPath = Annotated[
    str, typer.Option("--path", help="Directory, relative to the volume root.", show_default=False)
]
Uid = Annotated[int | None, typer.Option("--uid", min=0, help="User ID (a user quota).", show_default=False)]
Gid = Annotated[
    int | None, typer.Option("--gid", min=0, help="Group ID (a group quota).", show_default=False)
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _target(path: str, uid: int | None, gid: int | None) -> None:
    """Exactly one of --path, --uid, --gid (one line to the user otherwise)."""
    if sum(x is not None and x != "" for x in (path, uid, gid)) != 1:
        raise typer.BadParameter("give exactly one of --path, --uid, --gid")


def _quota(meta_url: str, action: str, path: str = "", **opts: Any) -> Any:
    from jfs.app.ops import quota_cmd
    from jfs.compose import open_volume

    async def call() -> Any:
        async with open_volume(meta_url) as vol:
            return await quota_cmd.run(vol.meta, action, path, **opts)

    remember_secrets(meta_url)
    return run(lambda _v: call())


def _show(docs: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(docs if len(docs) != 1 else docs[0], indent=2))
        return
    table = Table("Path/ID", "Inode", "Size", "Used", "Inodes", "IUsed")
    for d in docs:
        name = d["path"] if "path" in d else (f"uid:{d['uid']}" if "uid" in d else f"gid:{d['gid']}")
        table.add_row(
            name, str(d.get("inode", "")),
            human_bytes(d["max_space"]) if d["max_space"] > 0 else "unlimited", human_bytes(d["used_space"]),
            str(d["max_inodes"]) if d["max_inodes"] > 0 else "unlimited", str(d["used_inodes"]),
        )  # fmt: skip
    stdout_console().print(table)


@quota_app.command("set")
def quota_set(
    meta_url: MetaURL,
    path: QPath = "",
    uid: Uid = None,
    gid: Gid = None,
    capacity: Annotated[
        int | None, typer.Option("--capacity", min=0, help="Space limit in GiB (0: unlimited).")
    ] = None,
    inodes: Annotated[int | None, typer.Option("--inodes", min=0, help="Inode limit (0: unlimited).")] = None,
    capacity_bytes: Annotated[int | None, typer.Option("--capacity-bytes", min=0, hidden=True)] = None,
    as_json: AsJson = False,
) -> None:
    """Set (or change) the quota of a directory, user or group and count its usage."""
    _target(path, uid, gid)
    space = capacity_bytes if capacity_bytes is not None else (None if capacity is None else capacity << 30)
    _show([_quota(meta_url, "set", path, capacity=space, inodes=inodes, uid=uid, gid=gid)], as_json)


@quota_app.command("get")
def quota_get(
    meta_url: MetaURL, path: QPath = "", uid: Uid = None, gid: Gid = None, as_json: AsJson = False
) -> None:
    """Show the quota of a directory, user or group."""
    _target(path, uid, gid)
    _show([_quota(meta_url, "get", path, uid=uid, gid=gid)], as_json)


@quota_app.command("list")
def quota_list(meta_url: MetaURL, as_json: AsJson = False) -> None:
    """List all directory, user and group quotas."""
    docs = _quota(meta_url, "list")
    if as_json:
        typer.echo(json.dumps(docs, indent=2))
    else:
        _show(docs, False)


@quota_app.command("delete")
def quota_delete(meta_url: MetaURL, path: QPath = "", uid: Uid = None, gid: Gid = None) -> None:
    """Remove the quota of a directory; of a user or group: its limits (its usage goes on being kept)."""
    _target(path, uid, gid)
    _quota(meta_url, "delete", path, uid=uid, gid=gid)
    what = path if path else (f"uid {uid}" if uid is not None else f"gid {gid}")
    typer.echo(f"quota of {what} removed")


@quota_app.command("check")
def quota_check(
    meta_url: MetaURL,
    path: QPath = "",
    uid: Uid = None,
    gid: Gid = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Fix the usage that differs from the scan.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Recount usage by scanning and compare it with the quota records; exits 1 when they differ.

    --uid/--gid check every user and group quota (as JuiceFS); --repair fixes what differs."""
    _target(path, uid, gid)
    report = _quota(meta_url, "check", path, uid=uid, gid=gid, repair=repair)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        for b in report["mismatches"]:
            name = b.get("path") or (f"uid:{b['uid']}" if "uid" in b else f"gid:{b['gid']}")
            have = (
                "no record" if b["used_space"] is None else f"usage ({b['used_inodes']}, {b['used_space']} B)"
            )
            typer.echo(f"{name}: {have} != actual usage ({b['actual_inodes']}, {b['actual_space']} B)")
        typer.echo(
            "repaired" if report["repaired"] else ("consistent" if report["consistent"] else "inconsistent")
        )
    if not report["consistent"] and not report["repaired"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the quota group to the `jfs` command."""
    app.add_typer(quota_app, name="quota")

"""Tree tools that run inside a mount: ``jfs summary``, ``jfs rmr``, ``jfs warmup``.

Each sends one JSON request to the mount's ``.control`` file (see `jfs.app.tools` for the work done there)
and renders the answer: a rich tree for summary, one summary line for rmr and warmup (a spinner on stderr
while the mount works, only on a terminal).
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

Paths = Annotated[list[str], typer.Argument(metavar="PATH...", help="Paths on a jfs mount.", show_default=False)]
Threads = Annotated[int, typer.Option("--threads", "-p", min=1, max=256, help="Concurrent operations in the mount.")]


@contextmanager
def _spinner(text: str) -> Iterator[None]:
    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with console.status(text):
        yield


def _fail(message: str) -> None:
    from jfs.cli import main as cli

    cli._print_error(message)


def _ask(path: str, request: dict[str, Any], shown: list[str] | None = None) -> dict[str, Any] | None:
    """The mount's answer to `request`, or None after printing the failure (naming `shown`, else `path`)."""
    from jfs.app.errors import JfsError
    from jfs.cli import main as cli

    try:
        return cli._ask_mount(path, request, shown=shown)
    except JfsError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{', '.join(shown or [path])}: {exc.strerror}")
    return None


def _line(node: dict[str, Any]) -> str:
    from rich.markup import escape

    from jfs.cli.main import _human_bytes

    kind = "/" if node["type"] == "directory" else ""
    if node.get("denied"):
        return f"{escape(node['name'])}{kind}  [yellow]permission denied: not counted[/yellow]"
    return (f"{escape(node['name'])}{kind}  [dim]{_human_bytes(node['space'])}  {node['dirs']} dirs  {node['files']} files  "
            f"({_human_bytes(node['length'])})[/dim]")


def _grow(tree: Tree, node: dict[str, Any]) -> None:
    for child in node.get("children", []):
        _grow(tree.add(_line(child)), child)


def summary(
    path: Annotated[str, typer.Argument(metavar="PATH", help="A file or directory on a jfs mount.")],
    depth: Annotated[int, typer.Option("--depth", "-d", min=0, help="Levels of subdirectories to show.")] = 2,
    entries: Annotated[int, typer.Option("--entries", "-e", min=0,
                                         help="Biggest entries shown per directory (0: all).")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tree as JSON.")] = False,
) -> None:
    """Recursive totals (size, directories, files) of PATH and of its biggest entries, as a tree."""
    from jfs.cli.main import _console

    try:
        ino = os.lstat(path).st_ino
    except OSError as exc:
        _fail(f"{path}: {exc.strerror}")
        raise typer.Exit(1) from None
    name = os.path.basename(os.path.abspath(path)) or "/"
    with _spinner("Summarizing…"):
        doc = _ask(path, {"op": "summary", "inode": ino, "name": name, "depth": depth, "entries": entries})
    if doc is None:
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps({"path": path, **doc}, indent=2))
    else:
        tree = Tree(_line(doc))
        _grow(tree, doc)
        _console().print(tree)
    if doc.get("unreadable"):  # as du(1): the totals are printed, the gap reported, the status is 1
        _fail(f"{path}: {_unreadable(doc['unreadable'])}")
        raise typer.Exit(1)


def _unreadable(n: int) -> str:
    return f"{n} {'directory' if n == 1 else 'directories'} not readable (permission denied): contents not counted"


def rmr(paths: Paths, threads: Threads = 16) -> None:
    """Remove directories recursively inside the mount (much faster than ``rm -r``); trash applies."""
    from jfs.cli.main import _mount_root

    status = 0
    for path in paths:
        full = os.path.abspath(path)
        try:
            if _mount_root(full) == full:
                _fail(f"{path}: refusing to remove the root of a mount")
                status = 1
                continue
            parent = os.lstat(os.path.dirname(full)).st_ino
        except OSError as exc:
            _fail(f"{path}: {exc.strerror}")
            status = 1
            continue
        with _spinner(f"Removing {path}…"):
            doc = _ask(full, {"op": "rmr", "parent": parent, "name": os.path.basename(full), "threads": threads})
        if doc is None:
            status = 1
            continue
        typer.echo(f"{path}: removed {doc['files']} files and {doc['dirs']} directories")
    if status:
        raise typer.Exit(status)


def warmup(paths: Paths, threads: Threads = 16,
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Load the data of files under PATH… into the mount's local block cache."""
    from jfs.cli.main import _human_bytes, _mount_root

    by_mount: dict[str, list[int]] = {}
    given: dict[str, list[str]] = {}  # the paths behind each mount's inodes, to name them in errors
    status = 0
    for path in paths:
        try:
            st = os.lstat(path)
            # The mount refuses a request naming anything the caller may not read: leave such paths out, so
            # the rest is warmed and each refusal is reported by its path.
            if not os.access(path, os.R_OK | (os.X_OK if stat.S_ISDIR(st.st_mode) else 0), follow_symlinks=False):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            by_mount.setdefault(_mount_root(path), []).append(st.st_ino)
            given.setdefault(_mount_root(path), []).append(path)
        except OSError as exc:
            _fail(f"{path}: {exc.strerror}")
            status = 1
    for root, inodes in by_mount.items():
        with _spinner("Warming up…"):
            doc = _ask(root, {"op": "warmup", "inodes": inodes, "threads": threads}, shown=given[root])
        if doc is None:
            status = 1
            continue
        if as_json:
            typer.echo(json.dumps(doc))
        else:
            typer.echo(f"warmed up {doc['files']} files, {_human_bytes(doc['bytes'])} in {doc['seconds']:.2f}s "
                       f"({_human_bytes(int(doc['rate']))}/s)" + (f", {doc['errors']} errors" if doc["errors"] else "")
                       + (f", {doc['denied']} skipped (permission denied)" if doc.get("denied") else ""))
        if doc.get("errors") or doc.get("denied"):
            status = 1
    if status:
        raise typer.Exit(status)


# ---------------------------------------------------------------------------------------------------
# jfs quota

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
    from jfs.cli import main as cli
    from jfs.compose import open_volume

    async def call() -> Any:
        async with open_volume(meta_url) as vol:
            return await quota_cmd.run(vol.meta, action, path, **limits)

    cli._remember_secrets(meta_url)
    return cli._run(lambda _v: call())


def _show(docs: list[dict[str, Any]], as_json: bool) -> None:
    from jfs.cli.main import _console, _human_bytes

    if as_json:
        typer.echo(json.dumps(docs if len(docs) != 1 else docs[0], indent=2))
        return
    table = Table("Path", "Inode", "Size", "Used", "Inodes", "IUsed")
    for d in docs:
        table.add_row(
            d["path"], str(d["inode"]),
            _human_bytes(d["max_space"]) if d["max_space"] > 0 else "unlimited", _human_bytes(d["used_space"]),
            str(d["max_inodes"]) if d["max_inodes"] > 0 else "unlimited", str(d["used_inodes"]),
        )  # fmt: skip
    _console().print(table)


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


_EXAMPLES = {
    "summary": "jfs summary /mnt/jfs/projects\n\njfs summary /mnt/jfs --depth 1 --entries 5",
    "rmr": "jfs rmr /mnt/jfs/tmp/build-cache\n\njfs rmr /mnt/jfs/a /mnt/jfs/b --threads 32",
    "warmup": "jfs warmup /mnt/jfs/datasets/train\n\njfs warmup /mnt/jfs/models/model.bin --threads 8",
}


def register(app: typer.Typer) -> None:
    """Add summary, rmr, warmup and quota to the `jfs` command."""
    for name, fn in (("summary", summary), ("rmr", rmr), ("warmup", warmup)):
        app.command(name, epilog="[bold]Examples:[/bold]\n\n" + _EXAMPLES[name])(fn)
    app.add_typer(quota_app, name="quota")

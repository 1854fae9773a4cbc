"""Commands served by a running mount: ``jfs info``, ``jfs summary``, ``jfs rmr``, ``jfs warmup``.

Each sends one JSON request to the mount's ``.control`` file (`jfs.cli.control_client`; the work is done in
the mount by `jfs.app.inode_info` and `jfs.app.tree_jobs`) and renders the answer: attributes and chunks for
info, a tree for summary (`jfs.cli.summary_plain`, which `jfs.cli.run` also enters without typer), one
summary line for rmr and warmup (a spinner on stderr while the mount works, only on a terminal). As du(1), a path that fails is reported on its own line and the others are still
served; the exit status is then 1.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from typing import Annotated

import typer

from jfs.app.errors import JfsError
from jfs.cli.control_client import ask_mount, mount_root
from jfs.cli.messages import print_error
from jfs.cli.render import human_bytes
from jfs.cli.summary_plain import ask as _ask
from jfs.cli.summary_plain import spinner as _spinner
from jfs.cli.summary_plain import summarize

Paths = Annotated[list[str], typer.Argument(metavar="PATH...", help="Paths on a jfs mount.", show_default=False)]
Threads = Annotated[int, typer.Option("--threads", "-p", min=1, max=256, help="Concurrent operations in the mount.")]


def summary(
    path: Annotated[str, typer.Argument(metavar="PATH", help="A file or directory on a jfs mount.")],
    depth: Annotated[int, typer.Option("--depth", "-d", min=0, help="Levels of subdirectories to show.")] = 2,
    entries: Annotated[int, typer.Option("--entries", "-e", min=0,
                                         help="Biggest entries shown per directory (0: all).")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tree as JSON.")] = False,
) -> None:
    """Recursive totals (size, directories, files) of PATH and of its biggest entries, as a tree."""
    status = summarize(path, depth, entries, as_json)  # jfs.cli.summary_plain: also the entry without typer
    if status:
        raise typer.Exit(status)


def rmr(paths: Paths, threads: Threads = 16) -> None:
    """Remove directories recursively inside the mount (much faster than ``rm -r``); trash applies."""
    status = 0
    for path in paths:
        full = os.path.abspath(path)
        try:
            if mount_root(full) == full:
                print_error(f"{path}: refusing to remove the root of a mount")
                status = 1
                continue
            parent = os.lstat(os.path.dirname(full)).st_ino
        except OSError as exc:
            print_error(f"{path}: {exc.strerror}")
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
            by_mount.setdefault(mount_root(path), []).append(st.st_ino)
            given.setdefault(mount_root(path), []).append(path)
        except OSError as exc:
            print_error(f"{path}: {exc.strerror}")
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
            typer.echo(f"warmed up {doc['files']} files, {human_bytes(doc['bytes'])} in {doc['seconds']:.2f}s "
                       f"({human_bytes(int(doc['rate']))}/s)" + (f", {doc['errors']} errors" if doc["errors"] else "")
                       + (f", {doc['denied']} skipped (permission denied)" if doc.get("denied") else ""))
        if doc.get("errors") or doc.get("denied"):
            status = 1
    if status:
        raise typer.Exit(status)


def info(
    paths: Annotated[list[str], typer.Argument(metavar="PATH...", help="Files or directories on a jfs mount.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    recursive: Annotated[bool, typer.Option(help="Summarize directories recursively.")] = True,
) -> None:
    """Show inode, size, and chunks → slices → object names of files (a summary for directories)."""
    status = 0
    for path in paths:
        try:
            ino = os.lstat(path).st_ino
            doc = ask_mount(path, {"op": "info", "inode": ino, "recursive": recursive})
        except (OSError, JfsError) as exc:
            print_error(str(exc) if isinstance(exc, JfsError) else f"{path}: {exc.strerror}")
            status = 1
            continue
        unreadable = doc.get("summary", {}).get("unreadable", 0)
        if unreadable:  # as du(1): the totals are shown, the gap reported, the status is 1
            n = "1 directory" if unreadable == 1 else f"{unreadable} directories"
            print_error(f"{path}: {n} not readable (permission denied): contents not counted")
            status = 1
        if as_json:
            typer.echo(json.dumps({"path": path, **doc}, indent=2))
            continue
        typer.echo(f"{path}:")
        typer.echo(f"  inode: {doc['inode']}  type: {doc['type']}  length: {doc['length']}  nlink: {doc['nlink']}")
        if "summary" in doc:
            sm = doc["summary"]
            typer.echo(f"  files: {sm['files']}  dirs: {sm['dirs']}  length: {human_bytes(sm['length'])}  "
                       f"space: {human_bytes(sm['space'])}" + (f"  unreadable dirs: {unreadable}" if unreadable else ""))
        for chunk in doc.get("chunks", []):
            typer.echo(f"  chunk {chunk['index']}:")
            for sl in chunk["slices"]:
                what = f"slice {sl['id']}" if sl["id"] else "hole"
                typer.echo(f"    pos {sl['pos']} len {sl['len']}: {what} (size {sl['size']}, off {sl['off']})")
                for obj in sl["objects"]:
                    typer.echo(f"      {obj}")
    if status:
        raise typer.Exit(status)


_EXAMPLES = {
    "info": "jfs info /mnt/jfs/some/file\n\njfs info /mnt/jfs/dir --json",
    "summary": "jfs summary /mnt/jfs/projects\n\njfs summary /mnt/jfs --depth 1 --entries 5",
    "rmr": "jfs rmr /mnt/jfs/tmp/build-cache\n\njfs rmr /mnt/jfs/a /mnt/jfs/b --threads 32",
    "warmup": "jfs warmup /mnt/jfs/datasets/train\n\njfs warmup /mnt/jfs/models/model.bin --threads 8",
}


def register(app: typer.Typer) -> None:
    """Add info, summary, rmr and warmup to the `jfs` command."""
    for name, fn in (("info", info), ("summary", summary), ("rmr", rmr), ("warmup", warmup)):
        app.command(name, epilog="[bold]Examples:[/bold]\n\n" + _EXAMPLES[name])(fn)

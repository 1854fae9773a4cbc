"""Maintenance commands: ``jfs gc``, ``jfs fsck``, ``jfs restore``, ``jfs destroy``.

Each is a thin shell over `jfs.app.ops` (gc, fsck, restore, destroy): progress bars on stderr (only on a
terminal), a table and a one-line summary on stdout (or one JSON document with ``--json``), failures as one
``jfs: error:`` line through the CLI's error boundary.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from jfs.cli.app_calls import remember_secrets, run, usage_error
from jfs.cli.errors import print_error
from jfs.cli.progress import RichBoard
from jfs.cli.render import human_bytes, stdout_console

if TYPE_CHECKING:
    from jfs.app.objectview.report import PurgeReport
    from jfs.app.ops.destroy import DestroyReport
    from jfs.app.ops.fsck import FsckReport
    from jfs.app.ops.gc import GCReport
    from jfs.app.ops.restore import RestoreItem

MetaURL = Annotated[str, typer.Argument(metavar="META-URL", help="Where the metadata lives.", show_default=False)]
Threads = Annotated[int, typer.Option("--threads", "-p", min=1, max=256, help="Concurrent object-store requests.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]




def _echo_json(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=2, default=str))


# ------------------------------------------------------------------------------------------------ gc


def gc(
    meta_url: MetaURL,
    delete: Annotated[
        bool,
        typer.Option("--delete", help="Delete leaked objects, finish pending deletions, purge expired trash."),
    ] = False,
    compact: Annotated[bool, typer.Option("--compact", help="Compact every fragmented chunk first.")] = False,
    threads: Threads = 10,
    as_json: AsJson = False,
) -> None:
    """Account for every data object: valid, pending deletion, trash, leaked, or too young to judge.

    Objects modified less than an hour ago are never called leaked (set [bold]JFS_GC_SKIPPEDTIME[/bold] in
    seconds to change that). Unfinished S3 gateway uploads older than 7 days are counted and, with
    [bold]--delete[/bold], removed ([bold]JFS_GC_UPLOAD_AGE[/bold] in seconds changes the age). Without
    [bold]--delete[/bold] nothing is changed.
    """
    from jfs.app.ops.gc import run_gc
    from jfs.compose import one_pass_engine_caches, open_meta_and_store
    remember_secrets(meta_url)
    one_pass_engine_caches()

    async def collect(board: RichBoard) -> tuple[GCReport, PurgeReport]:
        from jfs.app.objectview.report import DEFAULT_AGE
        from jfs.cli.gateway_uploads import purge_volume_uploads

        age = float(os.environ.get("JFS_GC_UPLOAD_AGE") or DEFAULT_AGE)
        async with open_meta_and_store(meta_url) as (meta, store):
            # First: what an S3 gateway left unfinished (its files' blocks are then judged below). The purge
            # runs as another client of the volume would, while this engine stays open (gc is correct beside
            # clients that change the volume); a volume without a root .sys is answered from `meta` alone.
            uploads = await purge_volume_uploads(meta_url, age, dry_run=not delete, meta=meta)
            report = await run_gc(meta, store, delete=delete, compact=compact, threads=threads, progress=board)
        return report, uploads

    with RichBoard() as board:
        report, uploads = run(lambda _v: collect(board))
    if as_json:
        _echo_json({**report.to_dict(), "stale_gateway_uploads": dataclasses.asdict(uploads)})
        return
    console = stdout_console()
    table = Table(title="Objects", title_justify="left")
    table.add_column("Class")
    table.add_column("Objects", justify="right")
    table.add_column("Size", justify="right")
    notes = {
        "valid": "referenced by files",
        "pending": "awaiting deletion",
        "trash": "held by the trash",
        "leaked": "referenced by nothing",
        "skipped": f"unreferenced, newer than {report.skip_age:g} s",
    }
    table.add_column("Meaning")
    for name, stat in report.objects.items():
        table.add_row(name, str(stat.count), human_bytes(stat.bytes), notes[name])
    console.print(table)
    if uploads:
        console.print(f"Stale S3 gateway uploads {'removed' if delete else 'found'}: {uploads.uploads} multipart "
                      f"({uploads.parts} parts), {uploads.tmp_files} temporary files, "
                      f"{human_bytes(uploads.bytes)}")
    if report.leaked_examples and not delete:
        console.print("Leaked objects (first ones): " + ", ".join(report.leaked_examples[:5]))
    typer.echo(report.summary())


# ---------------------------------------------------------------------------------------------- fsck


def fsck(
    meta_url: MetaURL,
    path: Annotated[
        str | None,
        typer.Option("--path", help="Check only this path of the volume (e.g. /dir/sub).", show_default=False),
    ] = None,
    repair: Annotated[bool, typer.Option("--repair", help="Fix what can be fixed.")] = False,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="With --path: the whole subtree, not just its entries.")
    ] = False,
    threads: Threads = 10,
    as_json: AsJson = False,
) -> None:
    """Find broken files (missing blocks) and metadata inconsistencies; repair them with --repair.

    Exit status: 0 when no problem remains, 1 otherwise.
    """
    from jfs.app.ops.fsck import run_fsck
    from jfs.compose import one_pass_engine_caches, open_meta_and_store
    remember_secrets(meta_url)
    one_pass_engine_caches()
    if path is not None and not path.startswith("/"):
        usage_error("--path must be absolute inside the volume (start with '/')")

    async def check(board: RichBoard) -> FsckReport:
        async with open_meta_and_store(meta_url) as (meta, store):
            return await run_fsck(
                meta, store, path=path, recursive=recursive, repair=repair, threads=threads, progress=board
            )

    with RichBoard() as board:
        report: FsckReport = run(lambda _v: check(board))
    if as_json:
        _echo_json(report.to_dict())
    else:
        _print_fsck(report)
    if report.remaining:
        raise typer.Exit(1)


def _print_fsck(report: FsckReport) -> None:
    console = stdout_console()
    if report.issues:
        table = Table(title="Problems", title_justify="left")
        for column in ("Kind", "Path", "Problem", "Repaired" if report.repair else "--repair would"):
            table.add_column(column, overflow="fold")
        for i in report.issues:
            if report.repair:
                last = "yes" if i.repaired else f"no: {i.error or 'cannot be repaired'}"
            else:
                last = i.repair or "(cannot be repaired)"
            table.add_row(i.kind, i.path, i.detail, last)
        console.print(table)
    if report.counters_note:
        console.print(f"Counters {report.counters_note}")
    typer.echo(report.summary())


# ------------------------------------------------------------------------------------------- restore


def restore(
    meta_url: MetaURL,
    hours: Annotated[
        list[str], typer.Argument(metavar="HOUR...", help="Trash hour directories, like 2026-11-21-04.")
    ],
    put_back: Annotated[
        bool, typer.Option("--put-back", help="Move the entries back to where they were deleted from.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Restore deleted files and directory trees from trash hour directories.

    The hours given are taken together (give both when a tree was removed across an hour boundary).
    Without [bold]--put-back[/bold] entries stay in the trash (entries whose original directory is in the
    trash too are moved into it, rebuilding the deleted tree) and the table shows where each would go.
    With it, directories go back first, parents before children, then the files into them, each to its
    original directory under its original name; an entry whose name is taken, whose directory is gone,
    or which a quota refuses, stays in the trash (with whatever was below it).

    Exit status: 0 when everything was restored (or, without --put-back, listed), 1 when something could
    not be restored.
    """
    from jfs.app.ops.restore import restore_hours
    from jfs.compose import open_volume

    async def call() -> dict[str, list[RestoreItem]]:
        async with open_volume(meta_url) as vol:
            return await restore_hours(vol.meta, hours, put_back=put_back)

    remember_secrets(meta_url)
    result = run(lambda _v: call())
    if as_json:
        _echo_json({hour: [i.to_dict() for i in items] for hour, items in result.items()})
    else:
        console = stdout_console()
        for hour, items in result.items():
            table = Table(title=f"{hour} ({len(items)} entries)", title_justify="left")
            for column in ("Entry", "Original path", "Result"):
                table.add_column(column, overflow="fold")
            for i in items:
                table.add_row(i.entry, i.target, i.status)
            console.print(table)
    every = [i for items in result.values() for i in items]
    line, failure = restore_summary(every, put_back=put_back)
    if not as_json:
        typer.echo(line)
    if failure:
        print_error(failure)
        raise typer.Exit(1)


def restore_summary(items: list[RestoreItem], *, put_back: bool) -> tuple[str, str]:
    """The summary line of a restore, and (with --put-back) a line naming what could not be restored
    (empty when everything was)."""
    from jfs.app.ops.restore import FAILURES, REBUILT, RESTORED

    done = RESTORED if put_back else REBUILT
    restored = sum(1 for i in items if i.status == done)
    failed = [i for i in items if i.status in FAILURES]
    if not put_back:
        line = f"rebuilt {restored} of {len(items)} entries inside the trash"
        if failed:
            line += f"; {len(failed)} could not be put back (see Result)"
        return line + "; use --put-back to move them back", ""
    line = f"restored {restored} of {len(items)} entries"
    if restored == len(items):
        return line, ""
    below = sum(1 for i in items if i.status == REBUILT)
    shown = ", ".join(f"{i.target or i.entry} ({FAILURES[i.status]})" for i in failed[:5])
    more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
    failure = f"{len(items) - restored} of {len(items)} entries were not restored and stay in the trash: {shown}{more}"
    if below:
        failure += f"; {below} entries below them were kept inside them"
    return line, failure


# ------------------------------------------------------------------------------------------- destroy


def destroy(
    meta_url: MetaURL,
    uuid: Annotated[str, typer.Argument(metavar="UUID", help="The volume's UUID (see jfs status).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    threads: Threads = 10,
) -> None:
    """Delete the volume: all its objects and all its metadata. Refused while it is mounted."""
    from jfs.app.ops.destroy import VolumeSummary, describe, destroy_volume
    from jfs.compose import open_bucket, opened_engine

    async def summarize() -> VolumeSummary:
        async with opened_engine(meta_url) as kv:
            return await describe(kv)

    async def call(board: RichBoard) -> DestroyReport:
        async with opened_engine(meta_url) as kv:
            return await destroy_volume(kv, uuid, open_bucket, threads=threads, progress=board)

    remember_secrets(meta_url)
    summary = run(lambda _v: summarize())
    s = summary.settings
    if summary.sessions:
        _print_sessions(summary.sessions)
    if uuid == s.uuid and not summary.sessions and not yes:
        typer.echo(f"Volume {s.name!r} (UUID {s.uuid}): {s.storage} {s.bucket}, "
                   f"{human_bytes(summary.used_space)} in {summary.used_inodes} inodes.")  # fmt: skip
        if not sys.stdin.isatty():
            print_error("destroying a volume needs --yes (no terminal to confirm on)")
            raise typer.Exit(1)
        typer.confirm(f"Destroy volume {s.name!r} and ALL of its data? This cannot be undone", abort=True)
    with RichBoard() as board:
        report = run(lambda _v: call(board))
    typer.echo(
        f"Volume {s.name!r} destroyed: {report.objects} objects ({human_bytes(report.bytes)}) and all "
        "metadata deleted."
    )


def _print_sessions(sessions: list[dict[str, Any]]) -> None:
    console = Console(stderr=True, highlight=False)
    table = Table(title=f"Active sessions ({len(sessions)})", title_justify="left")
    for column in ("Sid", "HostName", "MountPoint", "ProcessID", "Expire"):
        table.add_column(column)
    for s in sessions:
        table.add_row(*(str(s.get(c, "")) for c in ("Sid", "HostName", "MountPoint", "ProcessID", "Expire")))
    console.print(table)


# ------------------------------------------------------------------------------------------ register


_EXAMPLES = {
    "gc": "jfs gc sqlite3://myjfs.db\n\njfs gc redis://localhost:6379/1 --delete\n\n"
    "JFS_GC_SKIPPEDTIME=600 jfs gc redis://localhost:6379/1 --compact --delete --json",
    "fsck": "jfs fsck sqlite3://myjfs.db\n\njfs fsck redis://localhost:6379/1 --path /data -r\n\n"
    "jfs fsck redis://localhost:6379/1 --repair",
    "restore": "jfs restore redis://localhost:6379/1 2026-11-21-04\n\n"
    "jfs restore redis://localhost:6379/1 2026-11-21-04 2026-11-21-05 --put-back",
    "destroy": "jfs destroy sqlite3://myjfs.db 8c3e1f4a-...\n\njfs destroy redis://localhost:6379/1 UUID --yes",
}


def register(app: typer.Typer) -> None:
    """Add gc, fsck, restore and destroy to the `jfs` command."""
    for name, fn in (("gc", gc), ("fsck", fsck), ("restore", restore), ("destroy", destroy)):
        app.command(name, epilog="[bold]Examples:[/bold]\n\n" + _EXAMPLES[name])(fn)

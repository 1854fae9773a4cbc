"""Benchmark commands: ``jfs bench`` (a path, through POSIX I/O) and ``jfs mdtest`` (a volume's metadata engine).

Thin shells over `jfs.app.bench` and `jfs.app.mdtest`: progress bars on stderr (only on a terminal), rich
tables on stdout, or one JSON document with ``--json``; failures as one ``jfs: error:`` line.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from jfs.cli import stops_cleanly
from jfs.cli.app_calls import remember_secrets, run, usage_error
from jfs.cli.errors import print_error
from jfs.cli.progress import RichBoard
from jfs.cli.render import human_bytes, stdout_console

if TYPE_CHECKING:
    from jfs.app.bench import BenchReport
    from jfs.app.mdtest import MdtestReport

AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]


def _echo_json(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=2, default=str))


def _human(n: float) -> str:
    return human_bytes(int(n))


# --------------------------------------------------------------------------------------------- bench


def bench(
    path: Annotated[str, typer.Argument(metavar="PATH", help="A directory (on a jfs mount, or anywhere).")],
    block_size: Annotated[int, typer.Option(min=1, help="Size of each I/O block in MiB.")] = 1,
    big_file_size: Annotated[int, typer.Option(min=0, help="Size of each big file in MiB (0: skip).")] = 1024,
    small_file_size: Annotated[int, typer.Option(min=0, help="Size of each small file in KiB (0: skip).")] = 128,
    small_file_count: Annotated[int, typer.Option(min=0, help="Number of small files per thread.")] = 100,
    threads: Annotated[int, typer.Option("--threads", "-p", min=1, max=1024, help="Concurrent threads.")] = 1,
    as_json: AsJson = False,
) -> None:
    """Benchmark a path: write/read a big file, write/read/stat small files (as [bold]juicefs bench[/bold]).

    Each thread writes its own big file and its own small files, with plain POSIX calls, in a temporary directory under PATH that is removed afterwards. On a jfs mount, the time spent in each layer during the run (FUSE operations, metadata transactions, object requests, caches) is shown too.

    Cached pages of the files are dropped before reading them; as root the kernel caches are dropped too, like juicefs bench does ([bold]SKIP_DROP_CACHES=true[/bold] skips that).
    """
    from jfs.app.bench import BenchConfig, MiB, Stopped, run_bench
    cfg = BenchConfig(
        path=path, block_size=block_size * MiB, big_file_size=big_file_size * MiB,
        small_file_size=small_file_size * 1024, small_file_count=small_file_count, threads=threads,
    )  # fmt: skip
    if cfg.big_file_size == 0 and (cfg.small_file_size == 0 or cfg.small_file_count == 0):
        usage_error("nothing to do: --big-file-size and --small-file-size (or --small-file-count) are 0")
    try:
        with stops_cleanly(), RichBoard() as board:  # Ctrl-C: the temporary files are removed
            report = run_bench(cfg, board)
    except KeyboardInterrupt:
        print_error("interrupted")
        raise typer.Exit(130) from None
    except (OSError, ValueError, Stopped) as exc:
        if isinstance(exc, OSError) and exc.filename:
            print_error(f"{exc.filename}: {exc.strerror}")
        else:
            print_error(str(exc) or type(exc).__name__)
        raise typer.Exit(1) from None
    if as_json:
        _echo_json(report.to_dict())
        return
    _print_bench(report)


def _print_bench(report: BenchReport) -> None:
    console = stdout_console()
    c = report.config
    console.print("Benchmark finished!")
    console.print(
        f"BlockSize: {_human(c.block_size)}, BigFileSize: {_human(c.big_file_size)}, "
        f"SmallFileSize: {_human(c.small_file_size)}, SmallFileCount: {c.small_file_count}, "
        f"NumThreads: {c.threads}"
    )
    if report.process:
        p = report.process
        console.print(f"Time used: {p['seconds']:.1f} s, CPU: {p['cpu_percent']:.1f}% (of the mount process), "
                      f"Memory: {p['memory_bytes'] / (1 << 20):.1f} MiB")  # fmt: skip
    table = Table(title=f"Results ({os.path.abspath(c.path)})", title_justify="left")
    for column in ("ITEM", "VALUE", "FILES/S", "LATENCY", "P99", "COST"):
        table.add_column(column, justify="left" if column == "ITEM" else "right")
    for i in report.items:
        value = f"{i.mib_per_s:.2f} MiB/s" if i.bytes else f"{i.files_per_s:.1f} files/s"
        table.add_row(
            i.title, value, f"{i.files_per_s:.1f} files/s", f"{i.latency_ms:.2f} ms/{i.op_unit}",
            f"{i.p99_ms:.2f} ms", f"{i.cost:.2f} {i.cost_unit}",
        )
    console.print(table)
    if not report.mount:
        console.print(f"{c.path} is not on a jfs mount: no per-layer statistics.")
        return
    table = Table(title=f"Time per layer during the run (jfs mount at {report.mount})", title_justify="left")
    for column in ("LAYER", "OPERATION", "COUNT", "BYTES", "TIME", "COST"):
        table.add_column(column, justify="left" if column in ("LAYER", "OPERATION") else "right")
    previous = ""
    for r in report.layers:
        table.add_row(
            r.layer if r.layer != previous else "",
            r.name if r.layer != "FUSE" or r.name == "all operations" else f"  {r.name}",
            f"{int(r.count)}", _human(r.bytes) if r.bytes else "",
            f"{r.seconds:.3f} s" if r.seconds else "", f"{r.ms_per_op:.2f} ms/op" if r.seconds else "",
            end_section=False,
        )
        previous = r.layer
    console.print(table)
    if not report.dropped_kernel_caches:
        console.print("[dim]Kernel caches were not dropped (not root, or SKIP_DROP_CACHES=true): only the "
                      "benchmark files' pages were.[/dim]")  # fmt: skip


# -------------------------------------------------------------------------------------------- mdtest


def mdtest(
    meta_url: Annotated[str, typer.Argument(metavar="META-URL", help="Where the metadata lives.", show_default=False)],
    path_arg: Annotated[
        str | None,
        typer.Argument(metavar="PATH", help="New directory of the volume to work in (default /mdtest-<time>).",
                       show_default=False),
    ] = None,
    dirs: Annotated[int, typer.Option(min=1, help="Subdirectories per directory of the tree.")] = 3,
    depth: Annotated[int, typer.Option(min=0, help="Levels of the tree below its top directory.")] = 2,
    files: Annotated[int, typer.Option(min=0, help="Files per directory of the tree.")] = 100,
    threads: Annotated[int, typer.Option("--threads", "-p", min=1, max=4096, help="Concurrent workers.")] = 16,
    path_opt: Annotated[
        str | None, typer.Option("--path", help="Same as PATH.", show_default=False)
    ] = None,
    no_bgjob: Annotated[
        bool, typer.Option("--no-bgjob", help="No heartbeat nor background jobs for this client's session.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Benchmark the metadata engine of a volume directly: mkdir, create, stat, readdir, rename, unlink, rmdir.

    Like [bold]juicefs mdtest[/bold]: a tree of --dirs subdirectories per level, --depth levels deep, with --files files in each directory, worked on by --threads concurrent workers (no FUSE, no data). It registers a session like any client, and removes everything it created (trash entries included) before leaving.
    """
    from jfs.app.mdtest import MdtestConfig, check_config, run_mdtest
    from jfs.compose import open_volume

    remember_secrets(meta_url)
    if path_arg and path_opt and path_arg != path_opt:
        usage_error("PATH and --path differ: give only one")
    path = path_arg or path_opt or ""
    if path and not path.startswith("/"):
        usage_error("PATH must be absolute inside the volume (start with '/')")
    cfg = MdtestConfig(dirs=dirs, depth=depth, files=files, threads=threads, path=path, background=not no_bgjob)

    async def call(board: RichBoard) -> MdtestReport:
        check_config(cfg)  # before the volume is opened
        async with open_volume(meta_url) as vol:
            return await run_mdtest(vol.meta, cfg, board)

    with RichBoard() as board:
        report = run(lambda _v: call(board))
    if as_json:
        _echo_json(report.to_dict())
        return
    console = stdout_console()
    console.print(
        f"mdtest on volume {report.volume!r} ({report.engine}) in {report.path}, session {report.sid}: "
        f"{report.tree_dirs} dirs, {report.tree_files} files, {cfg.threads} workers"
    )
    table = Table(title="Results", title_justify="left")
    for column in ("PHASE", "OPERATIONS", "TIME", "OPS/S", "LATENCY"):
        table.add_column(column, justify="left" if column == "PHASE" else "right")
    for p in report.phases:
        ops = f"{p.ops}" + (f" ({p.entries} entries)" if p.name == "readdir" else "")
        table.add_row(p.name, ops, f"{p.seconds:.3f} s", f"{p.ops_per_s:,.1f}", f"{p.latency_ms:.2f} ms/op")
    console.print(table)
    cleanup = report.cleanup
    if cleanup.get("trash_entries") or cleanup.get("trash_hours"):
        console.print(f"Cleaned up: {cleanup.get('trash_entries', 0)} trash entries, "
                      f"{cleanup.get('trash_hours', 0)} trash hour directories.")  # fmt: skip
    else:
        console.print("Cleaned up: the volume is as it was.")


# ------------------------------------------------------------------------------------------ register


_EXAMPLES = {
    "bench": "jfs bench /mnt/jfs\n\njfs bench /mnt/jfs -p 4 --big-file-size 256\n\n"
    "jfs bench /mnt/jfs --big-file-size 0 --json",
    "mdtest": "jfs mdtest sqlite3://myjfs.db\n\njfs mdtest redis://localhost:6379/1 /mdtest --dirs 4 --depth 3 "
    "--files 50 -p 32\n\njfs mdtest redis://localhost:6379/1 --json",
}


def register(app: typer.Typer) -> None:
    """Add bench and mdtest to the `jfs` command."""
    for name, fn in (("bench", bench), ("mdtest", mdtest)):
        app.command(name, epilog="[bold]Examples:[/bold]\n\n" + _EXAMPLES[name])(fn)

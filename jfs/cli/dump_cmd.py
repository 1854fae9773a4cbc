"""``jfs dump`` and ``jfs load``: the metadata as a JuiceFS-compatible JSON document, and back.

Both show a progress bar on stderr (when it is a terminal) and end with a one-line summary: on stdout,
except for a dump written to stdout, whose summary goes to stderr.
"""

from __future__ import annotations

import gzip
import io
import os
import select
import sys
from typing import IO, Annotated, Any

import typer

from jfs.app.progress import ProgressBoard, QuietBoard
from jfs.cli import stops_cleanly
from jfs.cli.app_calls import remember_secrets, run
from jfs.cli.errors import print_error, report

GZIP_MAGIC = b"\x1f\x8b"
MAX_WORKERS = 4
"""Most dump worker processes started by default (`--workers`: half the CPUs; none on 2 CPUs, where they
cost more CPU than they saved, docs/adr/0062-dump-load-redis-marked-inodes-file-events-workers.md)."""


class _Stdin(io.RawIOBase):
    """Standard input for ``jfs load -``, read so that Ctrl-C stops a load that waits on a silent pipe.

    The dump is read synchronously on the event loop's thread. On Ctrl-C `asyncio.run` only asks for the
    main task to be cancelled, and a read blocked on a pipe never sees that: Python resumes the read after
    the signal handler, so the load went on until the writer sent more or closed the pipe. Here a read
    waits for data at most `POLL` seconds at a time and, between waits, raises CancelledError once the
    running task is being cancelled. Outside a loop (sniffing the gzip magic) Ctrl-C raises
    KeyboardInterrupt from the wait as usual.
    """

    POLL = 0.1

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def readinto(self, buffer: Any) -> int:
        while not select.select([self._fd], [], [], self.POLL)[0]:
            if _being_cancelled():
                import asyncio

                raise asyncio.CancelledError
        return os.readv(self._fd, [buffer])


def _being_cancelled() -> bool:
    import asyncio  # here: listing the commands (``jfs --help``) does not load asyncio

    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop
        return False
    return task is not None and task.cancelling() > 0


BULK_YOUNG_THRESHOLD = 50_000
"""Net allocations of tracked objects between two young collections during a dump or load (CPython: 700)."""


def _collect_rarely() -> None:
    """Set the garbage collector for a bulk pass (dump, load), as a mount's is (`jfs.adapters.fuse.collector`):
    what exists now (modules, the CLI) is moved out of its sight (`gc.freeze`) and young collections run
    every `BULK_YOUNG_THRESHOLD` allocations. A dump makes a few tracked objects per entry (page nodes,
    their texts, the engine's replies) that live for one page: with the default thresholds the collector
    walked them ~300 times per 200k entries, and every tenth of the middle generation the whole heap —
    a fifth of the dump's client CPU (docs/adr/0087-dump-native-point-reads-and-marking-walk.md). Cyclic
    garbage waits at most that many allocations (a few MiB); the older generations keep CPython's ratios."""
    import gc

    gc.freeze()
    gc.set_threshold(BULK_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


class _Quiet(QuietBoard):
    """`QuietBoard` used as `RichBoard` is, as a context manager."""

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _board() -> Any:
    """The progress board: `jfs.cli.progress.RichBoard` when stderr is a terminal (or the environment makes
    rich treat it as one); otherwise, where rich would draw nothing, a quiet board without importing rich
    (~0.06-0.09 s of each command's start-up)."""
    from jfs.cli.summary_plain import _forced

    if not sys.stderr.isatty() and not _forced():
        return _Quiet()
    from jfs.cli.progress import RichBoard

    return RichBoard()


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "-"


def dump(
    meta_url: Annotated[str, typer.Argument(metavar="META-URL", help="Where the metadata lives.", show_default=False)],
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="Output file ('-' = stdout); a name ending in .gz is compressed.")
    ] = "-",
    subdir: Annotated[
        str | None, typer.Option(help="Dump only this directory of the volume (no Trash section).", show_default=False)
    ] = None,
    keep_secret_key: Annotated[
        bool, typer.Option("--keep-secret-key", help="Keep the object storage's secret key and session token.")
    ] = False,
    threads: Annotated[int, typer.Option(min=1, max=256, help="Concurrent metadata reads.")] = 10,
    workers: Annotated[
        int | None, typer.Option(min=0, max=64, help="Worker processes that read and render the tree on Redis "
                                 "(default: half the CPUs, at most 4, with 4 CPUs or more; 0 = none).", show_default=False)
    ] = None,
) -> None:
    """Write the volume's metadata as JSON, in the format of [bold]juicefs dump[/bold]."""
    from jfs.app.ops.dump import DumpResult, dump_meta
    from jfs.app.ops.dump_workers import WorkerSpec
    from jfs.cli.logs import current_level
    from jfs.compose import one_pass_engine_caches, opened_engine, with_env_password

    remember_secrets(meta_url)
    one_pass_engine_caches()
    with stops_cleanly():  # Ctrl-C: the partial file is removed
        to_stdout = file == "-"
        raw: IO[bytes]
        out: Any
        if to_stdout:
            raw = out = sys.stdout.buffer
        else:
            try:
                raw = open(file, "wb")  # noqa: SIM115 - closed below, removed on failure
            except OSError as exc:
                raise typer.Exit(report(exc)) from None
            out = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1) if file.endswith(".gz") else raw
        ok = False
        cpus = os.cpu_count() or 1
        count = (min(cpus // 2, MAX_WORKERS) if cpus >= 4 else 0) if workers is None else workers
        spec = WorkerSpec((sys.executable, "-P", "-m", "jfs.cli.dump_worker"), count, with_env_password(meta_url),
                          current_level())
        try:
            async def call(board: ProgressBoard) -> DumpResult:
                async with opened_engine(meta_url) as kv:
                    return await dump_meta(kv, out.write, subdir=os.fsencode(subdir or ""),
                                           keep_secret=keep_secret_key, threads=threads, progress=board,
                                           workers=spec if count > 0 else None)

            _collect_rarely()
            with _board() as board:
                result = run(lambda _v: call(board))
            ok = True
        finally:
            if not to_stdout:
                try:
                    if out is not raw:
                        out.close()
                    raw.close()
                finally:
                    if not ok:
                        try:
                            os.unlink(file)
                        except OSError:
                            pass
            else:
                out.flush()
    summary = (f"Dumped {result.entries} entries in {result.seconds:.2f} s "
               f"({_rate(result.entries, result.seconds)} entries/s), {result.bytes} bytes of JSON")
    if to_stdout:
        sys.stderr.write(summary + "\n")
    else:
        typer.echo(summary + f" to {file}")


def load(
    meta_url: Annotated[
        str, typer.Argument(metavar="META-URL", help="An EMPTY metadata engine to load into.", show_default=False)
    ],
    file: Annotated[str, typer.Argument(metavar="FILE", help="The dump ('-' = stdin); gzip is detected.")] = "-",
) -> None:
    """Load a JSON dump (from [bold]jfs dump[/bold] or [bold]juicefs dump[/bold]) into an empty engine."""
    from jfs.app.ops.load import LoadResult, dump_events, load_meta
    from jfs.compose import one_pass_engine_caches, opened_engine

    remember_secrets(meta_url)
    one_pass_engine_caches()
    try:
        src: IO[bytes] = _Stdin(sys.stdin.fileno()) if file == "-" else open(file, "rb")  # type: ignore[assignment]  # noqa: SIM115
    except (OSError, AttributeError, ValueError) as exc:  # no stdin at all: sys.stdin is None or closed
        print_error(f"cannot read the dump from {'standard input' if file == '-' else file}: "
                         f"{getattr(exc, 'strerror', None) or exc}")
        raise typer.Exit(1) from None
    try:
        reader: Any = src if isinstance(src, io.BufferedReader) else io.BufferedReader(src, 1 << 20)  # type: ignore[type-var]
        try:
            magic = reader.peek(2)[:2]
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(130) from None
        except OSError as exc:
            raise typer.Exit(report(exc)) from None
        stream: Any = gzip.GzipFile(fileobj=reader, mode="rb") if magic == GZIP_MAGIC else reader

        async def call(board: ProgressBoard) -> LoadResult:
            events = dump_events(stream.read)  # a dump jfs cannot load is refused before the engine is opened
            async with opened_engine(meta_url) as kv:
                return await load_meta(kv, stream.read, progress=board, events=events)

        _collect_rarely()
        with _board() as board:
            result = run(lambda _v: call(board))
    finally:
        if file != "-":
            src.close()
    typer.echo(f"Loaded {result.entries} entries ({result.inodes} inodes) in {result.seconds:.2f} s "
               f"({_rate(result.entries, result.seconds)} entries/s)")


def register(app: typer.Typer) -> None:
    """Add the ``dump`` and ``load`` commands to `app`."""
    app.command(
        epilog="[bold]Examples:[/bold]\n\n"
        "jfs dump sqlite3://myjfs.db meta.json\n\n"
        "jfs dump redis://localhost:6379/1 meta.json.gz --subdir projects/a\n\n"
        "jfs dump redis://localhost:6379/1 - | gzip > meta.json.gz",
    )(dump)
    app.command(
        epilog="[bold]Examples:[/bold]\n\n"
        "jfs load redis://localhost:6379/2 meta.json\n\n"
        "juicefs dump sqlite3://juicefs.db | jfs load redis://localhost:6379/2 -",
    )(load)

"""The ``jfs`` command line (the app is assembled in `jfs.cli.main`; the commands live in its ``*_cmd``
modules, which share `app_calls`, `render`, `errors` and `control_client`).

`run` is the console-script entry point; `installed_version` is the version every command reports.

Ctrl-C. Python turns SIGINT into a KeyboardInterrupt wherever the main thread happens to be: in the
imports of the CLI (typer, rich, asyncio, the engines' clients: about 0.2 s, before any error boundary
exists) that ended in a traceback, and inside the import machinery's own callbacks it is even printed as
"Exception ignored" and lost, the command going on. So by default SIGINT goes to `_quit`: one line
``jfs: error: interrupted`` and exit status 130 at once. That is right while a command parses, imports,
prompts or waits on a mount. Work that must stop cleanly (anything run by `asyncio.run`, whose handler
then cancels the main task; a dump file to remove; bench's temporary files) runs inside `stops_cleanly`,
which puts Python's handler back for its duration. ``python -m jfs.cli.main`` (tests, the child of
``jfs mount -d``) gets the same from this package's import: while ``-m`` locates its module,
``sys.argv[0]`` is ``"-m"``. Only a Ctrl-C inside Python's own start-up (importing `site`, then finding
the `jfs` package: the first tens of milliseconds) can still print a traceback.
"""

from __future__ import annotations

import _signal  # the C module: `signal` itself takes milliseconds to import (its enums)
import os
import sys

from jfs.cli import structlog_import

structlog_import.install()  # before any jfs module imports structlog: without rich (ADR 0081)


def _quit(signum: int, frame: object) -> None:
    os.write(2, b"jfs: error: interrupted\n")
    os._exit(130)


def quit_on_interrupt() -> None:
    """From now on SIGINT exits at once with status 130 and one line (unless someone else already
    handles SIGINT, or this is not the main thread)."""
    try:
        if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
            _signal.signal(_signal.SIGINT, _quit)
    except ValueError:  # not the main thread: leave signals alone
        pass


class stops_cleanly:  # lower case: used as a statement, `with stops_cleanly(): ...`
    """Python's SIGINT handling inside the block (KeyboardInterrupt; inside `asyncio.run`, its cancellation
    of the main task), the quick exit of `quit_on_interrupt` again after it, if it was in place."""

    def __enter__(self) -> None:
        try:
            self._quick = _signal.getsignal(_signal.SIGINT) is _quit
            if self._quick:
                _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        except ValueError:
            self._quick = False

    def __exit__(self, *exc: object) -> None:
        if self._quick:
            quit_on_interrupt()


def installed_version() -> str:
    """The installed distribution's version of jfs (a hint to install it when it is not installed): what
    ``importlib.metadata.version("jfs")`` answers, read without importing importlib.metadata (its email and
    zipfile imports were half of ``jfs version``'s start, ADR 0081) when the first jfs metadata directory on
    `sys.path` is a plain directory; importlib.metadata itself otherwise."""
    found = _metadata_version()
    if found:
        return found
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jfs")
    except PackageNotFoundError:
        return "unknown (not installed; run pip install -e .)"


def _metadata_version() -> str | None:
    """The ``Version:`` of the jfs metadata directory importlib.metadata would pick (the first directory of
    `sys.path` holding one; there a ``jfs-*.dist-info`` before a ``jfs*.egg-info``), or None when there is
    none, or more than one of a kind, or it cannot be read (the caller then asks importlib.metadata)."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        infos, eggs = [], []
        for name in names:
            low = name.lower()
            if low.startswith(("jfs-", "jfs.")):
                if low.endswith(".dist-info"):
                    infos.append(name)
                elif low.endswith(".egg-info"):
                    eggs.append(name)
        if not infos and not eggs:
            continue
        if len(infos) > 1 or (not infos and len(eggs) > 1):
            return None
        name, meta = (infos[0], "METADATA") if infos else (eggs[0], "PKG-INFO")
        try:
            with open(os.path.join(entry or ".", name, meta), encoding="utf-8") as f:
                for line in f:
                    if not line.strip():
                        break
                    if line.startswith("Version:"):
                        return line.split(":", 1)[1].strip() or None
        except OSError:
            pass
        return None
    return None


def run() -> None:
    """Console-script entry point (``jfs``). Not named ``main``: that is the module `jfs.cli.main`."""
    quit_on_interrupt()
    if sys.argv[1:] in (["version"], ["--version"], ["-V"]):  # what typer would print, without typer (ADR 0081)
        sys.stdout.write(f"jfs version {installed_version()}\n")
        return
    if len(sys.argv) > 1 and sys.argv[1] == "summary":
        from jfs.cli import summary_plain  # the plain forms without typer (ADR 0083); the rest below

        args = summary_plain.plain_args(sys.argv[2:])
        if args is not None:
            summary_plain.main(args)
            return
        from jfs.cli.control_main import main
    elif len(sys.argv) > 1 and sys.argv[1] in _SERVED_BY_A_MOUNT:
        from jfs.cli.control_main import main
    elif len(sys.argv) > 1 and sys.argv[1] == "umount":
        from jfs.cli import unmount  # the plain forms without typer (ADR 0069); the rest below

        plain = unmount.plain_args(sys.argv[2:])
        if plain is not None:
            unmount.main(*plain)
            return
        from jfs.cli.main import main
    else:
        from jfs.cli.main import main
    main()


_SERVED_BY_A_MOUNT = frozenset({"info", "summary", "rmr", "warmup"})
"""Commands `run` enters through `jfs.cli.control_main` (= its ``COMMANDS``): they start without importing
the rest of the CLI."""


if sys.argv[:1] == ["-m"]:  # `python -m jfs.cli.<module>` is locating its module
    quit_on_interrupt()

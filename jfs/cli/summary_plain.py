"""``jfs summary`` without typer and, when stdout is no terminal, without rich (ADR 0083).

`summarize` is the command's body (ask the mount, print the tree or the JSON, report unreadable
directories); `jfs.cli.control_cmd.summary` (the typer command, for help and unusual argument forms) and
`main` (entered by `jfs.cli.run` for the plain forms `plain_args` accepts) both call it, so the two entries
print the same bytes and exit with the same status.

`plain_tree` draws the tree as rich draws it on a non-terminal stdout (`jfs.cli.render.stdout_console`: 200
columns, no colour, no markup, UTF-8 guides); it returns None — and rich draws it — whenever its output
could differ: a name that is not printable ASCII, holds ``:`` (rich's emoji codes) or ``\\``, a line near
the width rich would wrap at, a stdout that is not UTF-8. tests/unit/test_summary_plain.py compares the two.

Why: importing typer and rich was ~0.06 s of the ~0.10 s of CPU `jfs summary` costs on the client
(docs/benchmarks.md, 2026-12-07), the whole of what JuiceFS's Go binary spends more than once per call.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from jfs.app.errors import JfsError
from jfs.cli.control_client import ask_mount
from jfs.cli.messages import print_error

if TYPE_CHECKING:
    from rich.tree import Tree

WIDTH = 200
"""`stdout_console`'s width on a non-terminal."""
_FITS = WIDTH - 8
"""The longest line drawn without rich (a margin below the width rich wraps at)."""
_GUIDES = ("    ", "│   ", "├── ", "└── ")
"""rich's tree guides (space, continue, fork, end), UTF-8 form."""


class SummaryArgs(NamedTuple):
    path: str
    depth: int
    entries: int
    as_json: bool


def plain_args(args: list[str]) -> SummaryArgs | None:
    """The arguments of ``summary`` in the plain forms: one PATH, ``--depth``/``-d N``, ``--entries``/``-e
    N`` (also ``--depth=N``; N ≥ 0 in decimal), ``--json``, ``--``. None for anything else (help, unknown
    options, bad numbers, no or two paths): typer handles those (its messages and exit statuses)."""
    values = {"depth": 2, "entries": 10}
    names = {"--depth": "depth", "-d": "depth", "--entries": "entries", "-e": "entries"}
    as_json, paths, options_end = False, [], False
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if options_end or not arg.startswith("-") or arg == "-":
            paths.append(arg)
        elif arg == "--":
            options_end = True
        elif arg == "--json":
            as_json = True
        else:
            name, eq, value = arg.partition("=")
            if name not in names or (eq and not name.startswith("--")):
                return None
            if not eq:
                if i >= len(args):
                    return None
                value = args[i]
                i += 1
            if not (value.isascii() and value.isdigit()):
                return None
            values[names[name]] = int(value)
    if len(paths) != 1 or not paths[0]:
        return None
    return SummaryArgs(paths[0], values["depth"], values["entries"], as_json)


def main(args: SummaryArgs) -> None:
    """``jfs summary`` in a plain form, entered by `jfs.cli.run`: as the typer command would run it."""
    from jfs.cli.messages import state

    state.debug = os.environ.get("JFS_DEBUG", "").lower() in ("1", "true", "yes", "on")
    try:
        status = summarize(*args)
    except KeyboardInterrupt:  # as `jfs.cli.control_main.main`
        print_error("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug or a broken install: the full CLI's one-line report
        from jfs.cli.errors import report

        sys.exit(report(exc))
    if status:
        sys.exit(status)


def summarize(path: str, depth: int, entries: int, as_json: bool) -> int:
    """Ask the mount holding `path` for its summary and print it; the exit status (1: `path` failed, or
    some directory below it could not be read — the totals are printed, the gap reported as du(1) does)."""
    try:
        ino = os.lstat(path).st_ino
    except OSError as exc:
        print_error(f"{path}: {exc.strerror}")
        return 1
    name = os.path.basename(os.path.abspath(path)) or "/"
    with spinner("Summarizing…"):
        doc = ask(path, {"op": "summary", "inode": ino, "name": name, "depth": depth, "entries": entries})
    if doc is None:
        return 1
    if as_json:
        _echo(json.dumps({"path": path, **doc}, indent=2))
    else:
        drawn = plain_tree(doc) if _plain_stdout() else None
        if drawn is not None:
            sys.stdout.write(drawn)
            sys.stdout.flush()
        else:
            from jfs.cli.render import stdout_console

            stdout_console().print(rich_tree(doc))
    if doc.get("unreadable"):
        print_error(f"{path}: {unreadable(doc['unreadable'])}")
        return 1
    return 0


def ask(path: str, request: dict[str, Any], shown: list[str] | None = None) -> dict[str, Any] | None:
    """The mount's answer to `request`, or None after printing the failure (naming `shown`, else `path`)."""
    try:
        return ask_mount(path, request, shown=shown)
    except JfsError as exc:
        print_error(str(exc))
    except OSError as exc:
        print_error(f"{', '.join(shown or [path])}: {exc.strerror}")
    return None


@contextmanager
def spinner(text: str) -> Iterator[None]:
    """rich's spinner on stderr while the mount works, only on a terminal (rich's `Console.is_terminal`; when
    stderr is no TTY and no ``TTY_COMPATIBLE`` / ``FORCE_COLOR`` overrides that, rich is not even imported)."""
    if not sys.stderr.isatty() and not _forced():
        yield
        return
    from rich.console import Console

    err = Console(stderr=True)
    if not err.is_terminal:
        yield
        return
    with err.status(text):
        yield


def unreadable(n: int) -> str:
    return f"{n} {'directory' if n == 1 else 'directories'} not readable (permission denied): contents not counted"


def _forced() -> bool:
    """Whether the environment makes rich treat a non-TTY as a terminal (or draw for a notebook)."""
    return bool(os.environ.get("TTY_COMPATIBLE") or os.environ.get("TTY_INTERACTIVE")) or any(
        k in os.environ for k in ("FORCE_COLOR", "JUPYTER_COLUMNS", "JUPYTER_LINES", "DATABRICKS_RUNTIME_VERSION"))


def _plain_stdout() -> bool:
    """stdout is what `stdout_console` draws on without a terminal: not a TTY, nothing forcing one, UTF-8."""
    out = sys.stdout
    encoding = (getattr(out, "encoding", None) or "").lower().replace("-", "")
    return encoding == "utf8" and not out.isatty() and not _forced()


def _text(node: dict[str, Any]) -> str | None:
    """A node's line as rich prints it without colour (markup removed), or None when rich might print it
    otherwise (see the module docstring)."""
    name = node["name"]
    if not (name.isascii() and name.isprintable()) or ":" in name or "\\" in name:
        return None
    from jfs.cli.render import human_bytes

    kind = "/" if node["type"] == "directory" else ""
    if node.get("denied"):
        return f"{name}{kind}  permission denied: not counted"
    return (f"{name}{kind}  {human_bytes(node['space'])}  {node['dirs']} dirs  {node['files']} files  "
            f"({human_bytes(node['length'])})")


def plain_tree(doc: dict[str, Any]) -> str | None:
    """The summary tree `doc` drawn as rich draws `rich_tree(doc)` on a non-terminal (see the module
    docstring), or None when that is not certain."""
    head = _text(doc)
    if head is None or len(head) > _FITS:
        return None
    lines = [head]
    stack: list[tuple[Iterator[dict[str, Any]], int, str]] = []  # (children left, how many, guides before)
    children = doc.get("children", [])
    stack.append((iter(children), len(children), ""))
    seen = [0]
    while stack:
        it, total, before = stack[-1]
        child = next(it, None)
        if child is None:
            stack.pop()
            seen.pop()
            continue
        seen[-1] += 1
        last = seen[-1] == total
        text = _text(child)
        line = f"{before}{_GUIDES[3] if last else _GUIDES[2]}{text}"
        if text is None or len(line) > _FITS:
            return None
        lines.append(line)
        grand = child.get("children", [])
        if grand:
            stack.append((iter(grand), len(grand), before + (_GUIDES[0] if last else _GUIDES[1])))
            seen.append(0)
    return "\n".join(lines) + "\n"


def rich_tree(doc: dict[str, Any]) -> Tree:
    """The summary tree `doc` as a rich `Tree` (markup: dim totals, a yellow refusal)."""
    from rich.tree import Tree

    tree = Tree(_markup(doc))
    _grow(tree, doc)
    return tree


def _markup(node: dict[str, Any]) -> str:
    from rich.markup import escape

    from jfs.cli.render import human_bytes

    kind = "/" if node["type"] == "directory" else ""
    if node.get("denied"):
        return f"{escape(node['name'])}{kind}  [yellow]permission denied: not counted[/yellow]"
    return (f"{escape(node['name'])}{kind}  [dim]{human_bytes(node['space'])}  {node['dirs']} dirs  {node['files']} files  "
            f"({human_bytes(node['length'])})[/dim]")


def _grow(tree: Tree, node: dict[str, Any]) -> None:
    for child in node.get("children", []):
        _grow(tree.add(_markup(child)), child)


def _echo(text: str) -> None:
    """`typer.echo` of `text` (a line, flushed) without importing typer."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()

"""How the commands render results for people: sizes, limits, table cells, masked settings, a console.

Pure formatting (no I/O) except `stdout_console`, which only builds a rich `Console` on stdout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jfs.domain.settings import SECRET_FIELDS

if TYPE_CHECKING:
    from rich.console import Console


def human_bytes(n: int) -> str:
    """`n` bytes in binary units: ``"512 B"``, ``"1.5 MiB"`` (one decimal above bytes; PiB at most)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def limit(n: int, unit: Callable[[int], str]) -> str:
    """A limit for people: ``"unlimited"`` for 0, else `unit(n)`."""
    return "unlimited" if not n else unit(n)


def stdout_console() -> Console:
    """Rich console on stdout; colours only on a terminal, wide enough not to wrap when piped. (rich is imported
    here: `jfs info` and `jfs stats` print without it, ADR 0081.)"""
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=200, color_system=None)
    return out


def cell(value: Any) -> str:
    """A table cell: dicts and lists as compact JSON, anything else as `str`."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def mask(doc: Any) -> Any:
    """`doc` with every non-empty secret field (SecretKey, SessionToken, EncryptKey), at any depth, replaced
    by ``"removed"``; `doc` itself is not changed."""
    if isinstance(doc, dict):
        return {k: ("removed" if k in SECRET_FIELDS and v else mask(v)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [mask(v) for v in doc]
    return doc


def print_pairs(rows: list[tuple[str, str]]) -> None:
    """Print ``key  value`` rows on stdout, indented two spaces, the keys padded to one width."""
    import typer  # here: `jfs summary` imports this module without typer (ADR 0083)

    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"  {key:<{width}}  {value}")

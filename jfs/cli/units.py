"""Sizes with units on the command line, as JuiceFS takes them: ``10G``, ``300M``, ``1.5T``, ``512K``,
``4MiB``, ``64MB`` — binary units (K = 1024), case-insensitive, an optional ``i``/``B`` suffix; a plain
number is in the option's own default unit (MiB for ``--cache-size`` and ``--buffer-size``, as in
JuiceFS, so ``--cache-size 10240`` still means 10 GiB).
"""

from __future__ import annotations

import re
from typing import Any

import typer

SHIFTS = {"": 0, "B": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtpeb]?)(?:i?b)?\s*", re.IGNORECASE)


class Size(int):
    """A number of bytes that remembers how it was written (``text``: `jfs mount --update-fstab` writes
    the option back as given)."""

    text: str

    def __new__(cls, value: int, text: str | None = None) -> Size:
        self = super().__new__(cls, value)
        self.text = text if text is not None else str(value)
        return self


def parse_size(text: str, default_unit: str = "M") -> Size:
    """Bytes of `text` (``"10G"``, ``"300"`` = 300 `default_unit`); ValueError for anything else
    (negative, unknown unit, not a number)."""
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not a size (a number with an optional unit K, M, G, T, P or E)")
    number, unit = m.group(1), m.group(2).upper()
    if not unit and not text.strip()[-1:].isalpha():
        unit = default_unit.upper()
    value = int(float(number) * (1 << SHIFTS[unit]))
    return Size(value, text.strip())


def size_option(default_unit: str = "M") -> Any:
    """A typer ``parser`` for a size option whose plain numbers are in `default_unit`."""

    def parse(value: Any) -> Size:
        if isinstance(value, int):  # a default already in bytes
            return value if isinstance(value, Size) else Size(value, format_size(value))
        try:
            return parse_size(str(value), default_unit)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return parse



def format_size(value: int) -> str:
    """`value` bytes as the option would be written: the largest unit that divides it exactly
    (``107374182400`` → ``"100G"``, ``123`` → ``"123B"``)."""
    for unit in ("E", "P", "T", "G", "M", "K"):
        shift = SHIFTS[unit]
        if value and value % (1 << shift) == 0:
            return f"{value >> shift}{unit}"
    return f"{value}B"


DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)?", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Seconds of `text` as JuiceFS (Go) writes durations: ``12s``, ``1h``, ``1h30m``, ``500ms``, ``0``;
    a plain number is seconds. ValueError for anything else."""
    s = text.strip().lower()
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None or (m.group(2) is None and m.end() != len(s)):
            raise ValueError(f"{text!r} is not a duration (e.g. 12s, 30m, 1h, 1h30m; a plain number is seconds)")
        total += float(m.group(1)) * DURATION_UNITS[m.group(2) or "s"]
        pos = m.end()
    if not s:
        raise ValueError(f"{text!r} is not a duration (e.g. 12s, 30m, 1h, 1h30m; a plain number is seconds)")
    return total


def duration_option(value: Any) -> float:
    """A typer ``parser`` for a duration option (plain numbers are seconds)."""
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

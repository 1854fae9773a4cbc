"""Parsing of what SDK users pass as text: `open()` mode strings and sizes with units."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OpenMode:
    flags: int
    """open(2) flags."""
    readable: bool
    writable: bool
    append: bool
    binary: bool


@functools.lru_cache(maxsize=64)
def parse_mode(mode: str) -> OpenMode:
    """The open(2) flags of a built-in `open()` mode string ("r", "wb", "a+", "x", "r+b", …); remembered
    (an `OpenMode` is immutable, and programs use a handful of modes).

    ValueError for an invalid mode (as `open()` raises)."""
    chars = set(mode)
    if len(chars) != len(mode) or not chars <= set("rwaxbt+") or len(chars & set("rwax")) != 1 or {"b", "t"} <= chars:
        raise ValueError(f"invalid mode: {mode!r}")
    plus = "+" in chars
    if "r" in chars:
        flags = os.O_RDWR if plus else os.O_RDONLY
    elif "w" in chars:
        flags = (os.O_RDWR if plus else os.O_WRONLY) | os.O_CREAT | os.O_TRUNC
    elif "a" in chars:
        flags = (os.O_RDWR if plus else os.O_WRONLY) | os.O_CREAT | os.O_APPEND
    else:
        flags = (os.O_RDWR if plus else os.O_WRONLY) | os.O_CREAT | os.O_EXCL
    return OpenMode(flags, "r" in chars or plus, "r" not in chars or plus, "a" in chars, "b" in chars)


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def parse_size(text: str | int) -> int:
    """Bytes from "300M", "10G", "4096", "1.5GiB" (binary units, as JuiceFS); ValueError otherwise."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"invalid size {text!r} (e.g. 4096, 300M, 10G)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])

"""Parsing of SQLite META-URLs: ``sqlite3://PATH[?synchronous=normal|full&busy_timeout=MS]`` (PATH may be
percent-encoded, e.g. ``sqlite3:///var/lib/jfs/meta.db``)."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote

DEFAULT_BUSY_TIMEOUT_MS = 30_000
DEFAULT_SYNCHRONOUS = "normal"


def parse_sqlite_url(url: str) -> tuple[str, str, int]:
    """(path, synchronous, busy_timeout_ms) of a ``sqlite3://`` URL; raises ValueError when malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "sqlite3":
        raise ValueError(f"not a sqlite3:// URL: {url}")
    path, _, query = rest.partition("?")
    path = unquote(path)
    if not path:
        raise ValueError("sqlite3:// URL without a file path (e.g. sqlite3:///var/lib/jfs/meta.db)")
    synchronous, busy = DEFAULT_SYNCHRONOUS, DEFAULT_BUSY_TIMEOUT_MS
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "synchronous" and value.lower() in ("normal", "full"):
            synchronous = value.lower()
        elif name == "busy_timeout" and value.isdigit():
            busy = int(value)
        else:
            raise ValueError(
                f"bad sqlite3:// URL option {name}={value} (known: synchronous=normal|full, busy_timeout=<ms>)"
            )
    return path, synchronous, busy

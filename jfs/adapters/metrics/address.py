"""A metrics endpoint's address (``HOST:PORT``), parsed without importing prometheus-client: ``jfs mount -d``
checks it in the parent, which serves nothing (ADR 0069). `jfs.adapters.metrics.prometheus` re-exports both."""

from __future__ import annotations


class MetricsError(Exception):
    """The endpoint could not be started (bad address, no free port): one line for the user."""


def parse_address(addr: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (every interface) or ``PORT`` (localhost) → (host, port)."""
    text = addr.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise MetricsError(f"bad metrics address {addr!r}: expected HOST:PORT") from None
    if not 0 <= number <= 65535:
        raise MetricsError(f"bad metrics address {addr!r}: port out of range")
    return host or "0.0.0.0", number

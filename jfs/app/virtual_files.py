"""Virtual files in the root of a mount: ``.stats``, ``.config`` and ``.accesslog`` (``.trash`` is a real
inode). Their inode numbers are reserved (above `RESERVED_INODE_BASE`) and never stored in metadata."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from jfs.app.metrics import Meter
from jfs.domain.attrs import RESERVED_INODE_BASE, TRASH_INODE

ACCESSLOG_INODE = RESERVED_INODE_BASE + 1
CONTROL_INODE = RESERVED_INODE_BASE + 2
STATS_INODE = RESERVED_INODE_BASE + 3
CONFIG_INODE = RESERVED_INODE_BASE + 4


@dataclass(frozen=True, slots=True)
class VirtualFile:
    ino: int
    name: bytes
    mode: int


VIRTUAL_FILES = {
    b".accesslog": VirtualFile(ACCESSLOG_INODE, b".accesslog", 0o400),
    b".stats": VirtualFile(STATS_INODE, b".stats", 0o444),
    b".config": VirtualFile(CONFIG_INODE, b".config", 0o400),
}
BY_INODE = {f.ino: f for f in VIRTUAL_FILES.values()}
INTERNAL_INODES = frozenset(BY_INODE) | {CONTROL_INODE}
"""Inodes a client answers itself: the virtual files and `.control`."""
TRASH_NAME = b".trash"
TRASH = TRASH_INODE


class Stats:
    """Live counters of one mount: per operation name a `Meter` (count, total time, latency histogram,
    failures; for "read" and "write" also the bytes read and written), plus gauges supplied later."""

    def __init__(self) -> None:
        self.meters: dict[str, Meter] = {}
        self.started = time.time()

    def record(self, op: str, seconds: float, failed: bool) -> None:
        meter = self.meters.get(op)
        if meter is None:
            meter = self.meters[op] = Meter()
        meter.took(seconds)
        if failed:
            meter.errors += 1

    def by_op(self) -> list[tuple[str, Meter]]:
        """(operation, meter) pairs: a copy of the table taken at once (safe from another thread, e.g. an
        exporter's, while the loop adds operations)."""
        return list(self.meters.items())

    @property
    def ops(self) -> Counter[str]:
        """Operations counted, by name."""
        return Counter({op: m.count for op, m in self.by_op()})

    @property
    def errors(self) -> Counter[str]:
        """Failed operations, by name (only those that failed)."""
        return Counter({op: m.errors for op, m in self.by_op() if m.errors})

    def render(self, extra: dict[str, float] | None = None) -> bytes:
        """Prometheus-style ``name value`` lines."""
        lines = [f"jfs_uptime {time.time() - self.started:.3f}"]
        for op, m in sorted(self.by_op()):
            lines.append(f'jfs_fuse_ops_total{{method="{op}"}} {m.count}')
            lines.append(f'jfs_fuse_ops_durations_seconds_sum{{method="{op}"}} {m.seconds:.6f}')
            if m.errors:
                lines.append(f'jfs_fuse_ops_errors_total{{method="{op}"}} {m.errors}')
        for name, value in sorted((extra or {}).items()):
            lines.append(f"{name} {value}")
        return ("\n".join(lines) + "\n").encode()


class AccessLog:
    """Streams one line per operation to every open reader of ``.accesslog`` (nothing is kept otherwise)."""

    MAX_BACKLOG = 10000

    def __init__(self) -> None:
        self.readers: dict[int, asyncio.Queue[bytes]] = {}

    @property
    def active(self) -> bool:
        return bool(self.readers)

    def open(self, fh: int) -> None:
        self.readers[fh] = asyncio.Queue(self.MAX_BACKLOG)

    def close(self, fh: int) -> None:
        self.readers.pop(fh, None)

    def log(self, uid: int, gid: int, pid: int, op: str, args: str, status: str, seconds: float) -> None:
        now = time.time()
        stamp = time.strftime("%Y.%m.%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d}"
        line = f"{stamp} [uid:{uid},gid:{gid},pid:{pid}] {op} ({args}) - {status} <{seconds:.6f}>\n".encode()
        for q in self.readers.values():
            if not q.full():
                q.put_nowait(line)

    async def read(self, fh: int, size: int) -> bytes:
        """Wait for at least one line, then return what is queued (up to `size` bytes)."""
        q = self.readers.get(fh)
        if q is None:
            return b""
        out = [await q.get()]
        total = len(out[0])
        while not q.empty() and total < size:
            line = q.get_nowait()
            out.append(line)
            total += len(line)
        return b"".join(out)[:size]


def render_config(settings: dict[str, Any], options: dict[str, Any]) -> bytes:
    return (json.dumps({"Format": settings, "Mount": options}, indent=2, sort_keys=True, default=str) + "\n").encode()

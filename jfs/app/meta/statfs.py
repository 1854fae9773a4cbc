"""Volume usage as statfs reports it, with JuiceFS's rules for volumes without explicit limits."""

from __future__ import annotations

from dataclasses import dataclass

from jfs.domain import keys
from jfs.domain.records import decode_i64
from jfs.ports.kv import KV, Tx

PIB = 1 << 50


@dataclass(frozen=True, slots=True)
class StatFS:
    total_space: int
    avail_space: int
    used_inodes: int
    avail_inodes: int

    @property
    def used_space(self) -> int:
        return self.total_space - self.avail_space


async def read_usage(kv: KV) -> tuple[int, int]:
    """(used space, used inodes) from the volume counters."""

    async def body(tx: Tx) -> tuple[int, int]:
        used, inodes = await tx.get_many([keys.counter(keys.USED_SPACE), keys.counter(keys.TOTAL_INODES)])
        return decode_i64(used), decode_i64(inodes)

    return await kv.read(body)


def compute(used_space: int, used_inodes: int, capacity: int, max_inodes: int) -> StatFS:
    """Totals: the configured limits, else 1 PiB (10 Mi inodes) doubled until usage is under 80% (25%)."""
    used_space = max(0, used_space)
    used_inodes = max(0, used_inodes)
    if capacity > 0:
        total = capacity
    else:
        total = PIB
        while used_space * 10 > total * 8:
            total *= 2
    if max_inodes > 0:
        itotal = max_inodes
    else:
        itotal = 10 << 20
        while used_inodes * 4 > itotal:
            itotal *= 2
    return StatFS(total, max(0, total - used_space), used_inodes, max(0, itotal - used_inodes))

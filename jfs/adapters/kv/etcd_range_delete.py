"""`RangeDeletingTx` for the etcd adapter's transactions: a key range deleted by one ``DeleteRange`` in the
commit's Txn, without reading it first (docs/adr/0043-etcd-directory-attributes-known-from-own-commits.md,
ADR 0031 for the port's semantics)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jfs.ports.kv import EngineError

from .base import BufferedWrites


class RangeDeletes(BufferedWrites):
    """The `delete_range` half of `EtcdTx` (mixed in before `SnapshotScans`): ranges recorded in
    `_dropped`, sent by the commit as ``DeleteRange(key, range_end)`` operations; every later `put`,
    `delete` and `scan` (and `EtcdTx`'s reads and adds) of a key in one of them raises EngineError."""

    _dropped: list[tuple[bytes, bytes]]
    """Ranges the commit deletes whole: one DeleteRange each, no scan first."""
    _c: Any
    _pb: Any
    _p: bytes

    def delete_range(self, begin: bytes, end: bytes) -> None:
        """Delete every key of ``[begin, end)`` at commit, atomically with the rest, without reading the
        range (one DeleteRange in the commit's Txn; keys another client writes there meanwhile go too —
        the port's `RangeDeletingTx`). Earlier buffered writes in the range go with it; reading or writing
        the range afterwards raises EngineError. Cache entries of the range's keys are not dropped (they
        fail a later commit's compare at worst; the meta engine deletes only ranges of removed inodes,
        whose keys are never written again)."""
        self._writable("delete_range")
        if begin >= end:
            return
        for key in list(self._buf.writes.irange(begin, end, inclusive=(True, False))):
            del self._buf.writes[key]
        self._dropped.append((begin, end))

    def _check_outside(self, begin: bytes, end: bytes | None = None) -> None:
        """EngineError when the key `begin` (or the range [begin, end)) meets a range deleted by this body."""
        for b, e in self._dropped:
            if (begin < e and b < end) if end is not None else b <= begin < e:
                raise EngineError("etcd: a transaction touched a key range after deleting it (delete_range)")

    def put(self, key: bytes, value: bytes) -> None:
        if self._dropped:
            self._check_outside(key)
        super().put(key, value)

    def delete(self, key: bytes) -> None:
        if self._dropped:
            self._check_outside(key)
        super().delete(key)

    async def scan(
        self, begin: bytes, end: bytes, *, limit: int | None = None, keys_only: bool = False
    ) -> list[tuple[bytes, bytes]]:
        if self._dropped:
            self._check_outside(begin, end)
        return await super().scan(begin, end, limit=limit, keys_only=keys_only)

    async def _dropped_empty(self, dropped: Sequence[tuple[bytes, bytes]]) -> bool:
        """After an ambiguous commit: whether each range it deleted whole is empty now (one count each)."""
        pb, p = self._pb, self._p
        for b, e in dropped:
            reply = await self._c.call(
                "Range", pb.RangeRequest(key=p + b, range_end=p + e, count_only=True), write=False
            )
            if reply.count:
                return False
        return True

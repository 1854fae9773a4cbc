"""WebDAV locks kept in the volume's metadata engine (``jW<token>`` records, ADR 0012), so that every
`jfs webdav` serving the volume — several behind a load balancer — sees and honours the same locks.

`create` grants a lock and checks for conflicts in one transaction: two servers racing for the same
resource cannot both win. Expired records are treated as absent and removed when met.
"""

from __future__ import annotations

import time

from jfs.domain import dav_locks as rules
from jfs.domain import keys
from jfs.domain.dav_locks import Lock, LockConflict
from jfs.ports.kv import KV, Tx

_END = keys.prefix_end(keys.DAV_LOCKS_PREFIX)


async def _live(tx: Tx, now: float) -> list[Lock]:
    """Every unexpired lock (expired records stay until `purge_expired` or `get` meets them)."""
    found: list[Lock] = []
    for _key, value in await tx.scan(keys.DAV_LOCKS_PREFIX, _END):
        try:
            lock = rules.decode(value)
        except ValueError:
            continue
        if rules.is_expired(lock, now):
            continue
        found.append(lock)
    return found


async def _held(tx: Tx, token: str, now: float) -> Lock | None:
    """The live lock of `token`, or None; an expired record met here is deleted."""
    value = await tx.get(keys.dav_lock(token))
    if value is None:
        return None
    lock = rules.decode(value)
    if rules.is_expired(lock, now):
        tx.delete(keys.dav_lock(token))
        return None
    return lock


class DavLocks:
    """The lock table of one volume. Every method is one transaction of `kv`."""

    def __init__(self, kv: KV) -> None:
        self.kv = kv

    async def create(self, lock: Lock) -> Lock:
        """Store `lock` (with its token, root and expire set) unless a live lock conflicts with it:
        LockConflict then, naming the conflicting lock."""
        now = time.time()

        async def body(tx: Tx) -> Lock:
            for held in await _live(tx, now):
                if rules.conflicts(lock, held):
                    raise LockConflict(held)
            tx.put(keys.dav_lock(lock["token"]), rules.encode(lock))
            return lock

        return await self.kv.txn(body)

    async def get(self, token: str) -> Lock | None:
        """The live lock of `token`, or None (unknown or expired; an expired record is removed)."""
        now = time.time()

        return await self.kv.txn(lambda tx: _held(tx, token, now))

    async def refresh(self, token: str, timeout: float, expire: float) -> Lock | None:
        """Give the live lock of `token` a new timeout and expiry; None when it no longer exists."""
        now = time.time()

        async def body(tx: Tx) -> Lock | None:
            lock = await _held(tx, token, now)
            if lock is None:
                return None
            lock["timeout"] = timeout
            lock["expire"] = expire
            tx.put(keys.dav_lock(token), rules.encode(lock))
            return lock

        return await self.kv.txn(body)

    async def delete(self, token: str) -> bool:
        """Remove the lock of `token`; whether it existed."""

        async def body(tx: Tx) -> bool:
            key = keys.dav_lock(token)
            existed = await tx.get(key) is not None
            tx.delete(key)
            return existed

        return await self.kv.txn(body)

    async def live(self) -> list[Lock]:
        """Every unexpired lock of the volume (one range read)."""
        now = time.time()
        return await self.kv.read(lambda tx: _live(tx, now))

    async def purge_expired(self) -> int:
        """Delete the records of expired locks; how many went."""
        now = time.time()

        async def body(tx: Tx) -> int:
            gone = 0
            for key, value in await tx.scan(keys.DAV_LOCKS_PREFIX, _END):
                try:
                    expired = rules.is_expired(rules.decode(value), now)
                except ValueError:
                    expired = True
                if expired:
                    tx.delete(key)
                    gone += 1
            return gone

        return await self.kv.txn(body)

    async def clear(self) -> None:
        """Remove every lock (tests)."""

        async def body(tx: Tx) -> None:
            for key, _ in await tx.scan(keys.DAV_LOCKS_PREFIX, _END, keys_only=True):
                tx.delete(key)

        await self.kv.txn(body)

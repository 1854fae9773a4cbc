"""flock and POSIX record locks stored in the engine, so they hold across every host of the volume.

A blocked waiter polls with growing back-off (`LOCK_WAIT_WRITE` / `LOCK_WAIT_READ` of `jfs.domain.retry`:
from 1 ms for write locks, 10 ms for read locks, capped at 200 ms); cancelling the waiting task (an
interrupted system call) abandons the wait.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jfs.app.meta import store
from jfs.domain import keys
from jfs.domain.errors import FSError
from jfs.domain.locks import (
    F_UNLCK,
    F_WRLCK,
    FLOCK_WRITE,
    MAX_END,
    decode_flocks,
    decode_plocks,
    drop_owner,
    encode_flocks,
    encode_plocks,
    flock_acquire,
    flock_release,
    plock_apply,
    plock_conflict,
)
from jfs.domain.retry import LOCK_WAIT_READ, LOCK_WAIT_WRITE
from jfs.ports.kv import Tx

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

FLOCK_UNLOCK = "U"


async def _until_granted(m: Meta, body: Callable[[Tx], Awaitable[bool]], *, block: bool, write: bool) -> None:
    """Run the lock transaction `body` until it grants (returns True), polling as `LOCK_WAIT_WRITE` /
    `LOCK_WAIT_READ` say; EAGAIN at the first refusal when not `block`."""
    policy = LOCK_WAIT_WRITE if write else LOCK_WAIT_READ
    refused = 0
    while not await m.kv.txn(body):
        if not block:
            raise FSError(errno.EAGAIN)
        refused += 1
        await asyncio.sleep(policy.delay(refused))


async def flock(m: Meta, ino: int, owner: int, ltype: str, *, block: bool) -> None:
    """Take (``R``/``W``) or release (``U``) a BSD lock on `ino` for `owner` of this session.

    Errors: EAGAIN (conflict, non-blocking), ENOENT, EINVAL (bad type).
    """
    if ltype not in ("R", "W", FLOCK_UNLOCK):
        raise FSError(errno.EINVAL)
    key = keys.flock(ino)

    async def body(tx: Tx) -> bool:
        raw = await tx.get(key)
        table = decode_flocks(raw) if raw else {}
        if ltype == FLOCK_UNLOCK:
            if (m.sid, owner) not in table:
                return True
            new = flock_release(table, m.sid, owner)
        else:
            if raw is None:
                await store.get_attr(tx, ino)
            acquired = flock_acquire(table, m.sid, owner, ltype)
            if acquired is None:
                return False
            if acquired == table:
                return True
            new = acquired
        _put_table(tx, key, new, encode_flocks)
        return True

    await _until_granted(m, body, block=block, write=ltype == FLOCK_WRITE)


def _put_table(tx: Tx, key: bytes, table: dict[Any, Any], encode: Callable[[Any], bytes]) -> None:
    """Store a lock table under `key`: its encoding, or no record at all when it is empty."""
    if table:
        tx.put(key, encode(table))
    else:
        tx.delete(key)


@dataclass(frozen=True, slots=True)
class LockInfo:
    """A POSIX lock as F_GETLK reports it (`end` inclusive; MAX_END = to end of file)."""

    type: int
    start: int
    end: int
    pid: int


async def getlk(m: Meta, ino: int, owner: int, ltype: int, start: int, end: int) -> LockInfo:
    """The first lock that would block `ltype` on [start, end] for `owner`, or type F_UNLCK if none."""

    async def body(tx: Tx) -> LockInfo:
        raw = await tx.get(keys.plock(ino))
        if not raw:
            return LockInfo(F_UNLCK, 0, 0, 0)
        hit = plock_conflict(decode_plocks(raw), m.sid, owner, ltype, start, end)
        if hit is None:
            return LockInfo(F_UNLCK, 0, 0, 0)
        rec = hit[1]
        return LockInfo(rec.type, rec.start, rec.end, rec.pid)

    return await m.kv.read(body)


async def setlk(
    m: Meta, ino: int, owner: int, ltype: int, start: int, end: int, pid: int, *, block: bool
) -> None:
    """Lock or unlock [start, end] of `ino` for `owner` (F_SETLK / F_SETLKW semantics).

    Errors: EAGAIN (conflict, non-blocking), EINVAL, ENOENT.
    """
    end = min(end, MAX_END)
    key = keys.plock(ino)

    async def body(tx: Tx) -> bool:
        raw = await tx.get(key)
        if raw is None and ltype == F_UNLCK:
            return True
        if raw is None:
            await store.get_attr(tx, ino)
        table = decode_plocks(raw) if raw else {}
        new = plock_apply(table, m.sid, owner, ltype, start, end, pid)
        if new is None:
            return False
        if new == table:
            return True
        _put_table(tx, key, new, encode_plocks)
        return True

    await _until_granted(m, body, block=block, write=ltype == F_WRLCK)


async def release_owner(m: Meta, ino: int, owner: int) -> None:
    """Drop every POSIX lock `owner` holds on `ino` (close of a file by that owner)."""
    key = keys.plock(ino)

    async def body(tx: Tx) -> None:
        raw = await tx.get(key)
        if not raw:
            return
        table = decode_plocks(raw)
        if (m.sid, owner) not in table:
            return
        new = drop_owner(table, m.sid, owner)
        if new:
            tx.put(key, encode_plocks(new))
        else:
            tx.delete(key)

    await m.kv.txn(body)

"""Client sessions: registration, heartbeat, listing, and cleanup of sessions whose client died.

A session is ``SE<sid>`` = expiry (unix seconds, renewed every heartbeat) + ``SI<sid>`` = info JSON.
A session is stale once its expiry has passed; any client may then clean it: its flocks and POSIX locks
are released and the files it held open after they were unlinked (sustained inodes) are deleted.
Cluster-wide jobs are elected with `try_elect`: a counter holding the last run time, advanced only by
the client that finds it old enough.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from jfs.app.meta.remove import delete_inode
from jfs.domain import keys
from jfs.domain.attrs import Attr
from jfs.domain.locks import decode_flocks, decode_plocks, drop_session, encode_flocks, encode_plocks
from jfs.domain.records import decode_u64, encode_u64
from jfs.ports.kv import KV, Tx

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta


async def new_session(m: Meta, info: dict[str, Any], ttl: int) -> int:
    """Register this client; returns its session id."""
    expire = int(time.time()) + ttl
    blob = json.dumps(info, sort_keys=True).encode()

    async def body(tx: Tx) -> int:
        sid = await tx.incr_by(keys.counter(keys.NEXT_SESSION), 1)
        tx.put(keys.session_expiry(sid), encode_u64(expire))
        tx.put(keys.session_info(sid), blob)
        return sid

    return await m.kv.txn(body)


async def heartbeat(m: Meta, sid: int, ttl: int, info: dict[str, Any], *, rewrite: bool = False) -> None:
    """Push the expiry of `sid` forward; writes the info when `rewrite` (it changed) or when a cleaner
    removed it meanwhile."""
    expire = int(time.time()) + ttl

    async def body(tx: Tx) -> None:
        tx.put(keys.session_expiry(sid), encode_u64(expire))
        if rewrite or await tx.get(keys.session_info(sid)) is None:
            tx.put(keys.session_info(sid), json.dumps(info, sort_keys=True).encode())

    await m.kv.txn(body)


async def list_sessions(m: Meta) -> list[dict[str, Any]]:
    """Every registered session: {"Sid", "Expire", **info, "Sustained": [ino...]}."""

    async def body(tx: Tx) -> list[dict[str, Any]]:
        out = []
        prefix = keys.SESSION_EXPIRY_PREFIX
        for key, value in await tx.scan(prefix, keys.prefix_end(prefix)):
            sid = keys.parse_sid(key)
            raw = await tx.get(keys.session_info(sid))
            info = json.loads(raw) if raw else {}
            sp = keys.sustained_prefix(sid)
            sustained = [keys.ino_from_le(k, len(sp)) for k, _ in await tx.scan(sp, keys.prefix_end(sp), keys_only=True)]
            out.append({"Sid": sid, "Expire": decode_u64(value), **info, "Sustained": sustained})
        return out

    return await m.kv.read(body)


async def find_stale(m: Meta, now: int | None = None, limit: int = 1000) -> list[int]:
    """Ids of sessions whose expiry is before `now` (unix seconds)."""
    now = int(time.time()) if now is None else now

    async def body(tx: Tx) -> list[int]:
        prefix = keys.SESSION_EXPIRY_PREFIX
        rows = await tx.scan(prefix, keys.prefix_end(prefix))
        return [keys.parse_sid(k) for k, v in rows if decode_u64(v) < now][:limit]

    return await m.kv.read(body)


async def clean_session(m: Meta, sid: int) -> list[int]:
    """Release everything session `sid` held and remove it; returns inodes deleted on its behalf."""

    async def drop_locks(tx: Tx) -> None:
        for key, value in await tx.scan(keys.FLOCK_PREFIX, keys.prefix_end(keys.FLOCK_PREFIX)):
            flocks = decode_flocks(value)
            kept_f = drop_session(flocks, sid)
            if len(kept_f) != len(flocks):
                tx.put(key, encode_flocks(kept_f)) if kept_f else tx.delete(key)
        for key, value in await tx.scan(keys.PLOCK_PREFIX, keys.prefix_end(keys.PLOCK_PREFIX)):
            plocks = decode_plocks(value)
            kept_p = drop_session(plocks, sid)
            if len(kept_p) != len(plocks):
                tx.put(key, encode_plocks(kept_p)) if kept_p else tx.delete(key)

    await m.kv.txn(drop_locks)
    deleted: list[int] = []
    sp = keys.sustained_prefix(sid)
    now = time.time_ns()

    async def drop_sustained(tx: Tx) -> list[tuple[int, int]]:
        files = []
        for key, _ in await tx.scan(sp, keys.prefix_end(sp), keys_only=True):
            ino = keys.ino_from_le(key, len(sp))
            tx.delete(key)
            raw = await tx.get(keys.attr(ino))
            if raw is None:
                continue
            attr = Attr.decode(raw)
            if attr.nlink == 0:
                await delete_inode(tx, ino, attr, now, m)
                if attr.length > 0:
                    files.append((ino, attr.length))
        tx.delete(keys.session_expiry(sid))
        tx.delete(keys.session_info(sid))
        return files

    files = await m.kv.txn(drop_sustained)
    for ino, length in files:
        deleted.append(ino)
        await m.cleanup_file(ino, length)
    return deleted


async def try_elect(m: Meta, name: bytes, interval: float) -> bool:
    """Win the right to run the cluster-wide job `name` now, if nobody ran it in the last `interval` s."""
    now = int(time.time())

    async def body(tx: Tx) -> bool:
        key = keys.counter(name)
        last = decode_u64(await tx.get(key))
        if now - last < interval:
            return False
        tx.put(key, encode_u64(now))
        return True

    return await m.kv.txn(body)


async def pending_delfiles(m: Meta, older_than: int, limit: int = 1000) -> list[tuple[int, int]]:
    """(ino, length) of delfile markers written more than `older_than` seconds ago."""
    cutoff = int(time.time()) - older_than

    async def body(tx: Tx) -> list[tuple[int, int]]:
        rows = await tx.scan(keys.DELFILE_PREFIX, keys.prefix_end(keys.DELFILE_PREFIX), limit=limit)
        return [keys.parse_delfile(k) for k, v in rows if len(k) == 17 and decode_u64(v) <= cutoff]

    return await m.kv.read(body)


async def sustained_inodes(kv: KV) -> set[int]:
    """Inodes held open by some session after their last name went (``SS`` records), read now."""

    async def body(tx: Tx) -> set[int]:
        out = set()
        async for key, _ in tx.scan_iter(b"SS", keys.prefix_end(b"SS")):
            if len(key) == 18:
                out.add(keys.ino_from_le(key, 10))
        return out

    return await kv.read(body)

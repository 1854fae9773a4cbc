"""Directory quotas: ``QD<ino>`` records (max space, max inodes, used space, used inodes; a max ≤ 0 means
unlimited), enforced by the metadata engine and managed by ``jfs quota``.

Enforcement (`charge`) runs inside the engine's transactions: a change that adds `space` bytes / `inodes`
inodes below directory `start` reads the quota record of `start` and of every ancestor (walking
``attr.parent`` up to the root), fails with EDQUOT when a limit would be exceeded (only for growth), and
writes the updated usage in the same transaction. Hard-linked inodes have parent 0: their writes are not
charged. When no quota exists anywhere (`Meta.has_quotas`, refreshed with the usage on every heartbeat and
set by the quota commands of this client) the hook returns at once.

Known limits: a rename between directories does not move usage between quota trees; the usage computed by
`set_quota` is a snapshot taken outside the transaction that stores it.
"""

from __future__ import annotations

import errno
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, Attr, FileType, is_trash_inode
from jfs.domain.errors import FSError
from jfs.domain.records import Quota
from jfs.ports.kv import KV, Tx

if TYPE_CHECKING:
    from jfs.app.meta import Meta

QUOTA_PREFIX = b"QD"
MAX_DEPTH = 4096


async def any_quota(kv: KV) -> bool:
    """Whether some directory quota exists (one short scan)."""

    async def body(tx: Tx) -> bool:
        return bool(await tx.scan(QUOTA_PREFIX, keys.prefix_end(QUOTA_PREFIX), limit=1, keys_only=True))

    return await kv.read(body)


async def charge(m: Meta, tx: Tx, start: int, space: int, inodes: int) -> None:
    """QUOTA HOOK (called by the engine inside its transactions): account `space`/`inodes` added below
    directory `start` to every quota on the way to the root; EDQUOT when growth would exceed one."""
    if not m.has_quotas or (not space and not inodes):
        return
    d, steps = start, 0
    while d and not is_trash_inode(d) and steps < MAX_DEPTH:
        steps += 1
        raw = await tx.get(keys.dir_quota(d))
        if raw is not None:
            q = Quota.decode(raw)
            if space > 0 and q.max_space > 0 and q.used_space + space > q.max_space:
                raise FSError(errno.EDQUOT)
            if inodes > 0 and q.max_inodes > 0 and q.used_inodes + inodes > q.max_inodes:
                raise FSError(errno.EDQUOT)
            q.used_space += space
            q.used_inodes += inodes
            tx.put(keys.dir_quota(d), q.encode())
        if d == ROOT_INODE:
            break
        raw_attr = await tx.get(keys.attr(d))
        if raw_attr is None:
            break
        d = Attr.decode(raw_attr).parent


def forget(m: Meta, tx: Tx, ino: int) -> None:
    """QUOTA HOOK: directory `ino` is being deleted: drop its quota record too."""
    if m.has_quotas:
        tx.delete(keys.dir_quota(ino))


# ---------------------------------------------------------------------------------------------------
# Management (``jfs quota``)


async def resolve(m: Meta, path: str) -> int:
    """Inode of the directory `path` (relative to the volume root)."""
    ino = ROOT_INODE
    for part in path.strip("/").split("/"):
        if part:
            ino, _ = await m.lookup(ino, part.encode(errors="surrogateescape"))
    attr = await m.getattr(ino)
    if attr.typ is not FileType.DIRECTORY:
        raise FSError(errno.ENOTDIR, path)
    return ino


async def usage(m: Meta, ino: int) -> tuple[int, int]:
    """(space, inodes) used below directory `ino`, not counting the directory itself."""
    from jfs.app.info import summary

    totals = await summary(m, ino)
    return totals["space"] - 4096, totals["files"] + totals["dirs"] - 1


def _doc(path: str, ino: int, q: Quota) -> dict[str, Any]:
    return {"path": path, "inode": ino, **asdict(q)}


async def set_quota(m: Meta, path: str, *, capacity: int | None = None, inodes: int | None = None) -> dict[str, Any]:
    """Create or change the quota of `path` (bytes, inodes; None keeps the current limit, 0 = unlimited)
    and recompute its usage."""
    ino = await resolve(m, path)
    m.has_quotas = True
    space_used, inodes_used = await usage(m, ino)

    async def body(tx: Tx) -> Quota:
        raw = await tx.get(keys.dir_quota(ino))
        q = Quota.decode(raw) if raw is not None else Quota()
        if capacity is not None:
            q.max_space = capacity if capacity > 0 else -1
        if inodes is not None:
            q.max_inodes = inodes if inodes > 0 else -1
        q.used_space, q.used_inodes = space_used, inodes_used
        tx.put(keys.dir_quota(ino), q.encode())
        return q

    return _doc(path, ino, await m.kv.txn(body))


async def get_quota(m: Meta, path: str) -> dict[str, Any]:
    ino = await resolve(m, path)
    raw = await m.kv.read(lambda tx: tx.get(keys.dir_quota(ino)))
    if raw is None:
        raise FSError(errno.ENOENT, f"no quota on {path}")
    return _doc(path, ino, Quota.decode(raw))


async def list_quotas(m: Meta) -> list[dict[str, Any]]:
    async def body(tx: Tx) -> list[tuple[bytes, bytes]]:
        return await tx.scan(QUOTA_PREFIX, keys.prefix_end(QUOTA_PREFIX))

    out = []
    for key, value in await m.kv.read(body):
        ino = int.from_bytes(key[len(QUOTA_PREFIX):len(QUOTA_PREFIX) + 8], "little")
        out.append(_doc(await path_of(m, ino), ino, Quota.decode(value)))
    return out


async def path_of(m: Meta, ino: int) -> str:
    """Best-effort path of directory `ino` (via parents and a scan of each parent's entries)."""
    parts: list[str] = []
    cur = ino
    while cur != ROOT_INODE:
        try:
            parent = (await m.getattr(cur)).parent
        except FSError:
            return f"<inode {ino}>"
        if not parent:
            return f"<inode {ino}>"
        name = None
        async for e in m.readdir(parent):
            if e.ino == cur:
                name = e.name.decode(errors="surrogateescape")
                break
        if name is None:
            return f"<inode {ino}>"
        parts.append(name)
        cur = parent
    return "/" + "/".join(reversed(parts))


async def delete_quota(m: Meta, path: str) -> dict[str, Any]:
    doc = await get_quota(m, path)

    async def body(tx: Tx) -> None:
        tx.delete(keys.dir_quota(doc["inode"]))

    await m.kv.txn(body)
    m.has_quotas = await any_quota(m.kv)
    return doc


async def run(meta_url: str, action: str, path: str = "", *, capacity: int | None = None,
              inodes: int | None = None) -> Any:
    """One ``jfs quota`` action (set, get, list, delete) against the volume at `meta_url`."""
    from jfs.app.compose import open_engine
    from jfs.app.meta import Meta
    from jfs.app.volume import VolumeError

    kv = await open_engine(meta_url)
    try:
        try:
            m = await Meta.load(kv)
        except Exception as exc:
            if type(exc).__name__ == "VolumeNotFormatted":
                raise VolumeError(str(exc)) from None
            raise
        if action == "set":
            return await set_quota(m, path, capacity=capacity, inodes=inodes)
        if action == "get":
            return await get_quota(m, path)
        if action == "delete":
            return await delete_quota(m, path)
        return await list_quotas(m)
    finally:
        await kv.close()

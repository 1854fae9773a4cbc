"""The ``jfs quota`` command's use cases — set, get, list, delete, check — as a client of the metadata engine,
for directory quotas (``path``) and for user and group quotas (``uid``/``gid``, `jfs.app.meta.owner_quota`).

The accounting itself (the ``QD<ino>`` records, the in-transaction charges, the fenced recount) belongs to
the engine: `jfs.app.meta.quota`, whose docstring and ADR 0019 describe it. This module turns paths into
directory inodes and back (`jfs.app.meta.reader`), runs the steps of a ``set`` in order (store the limits,
wait for the running mounts to learn about a new quota, recount), and shapes the answers as documents
``{"path", "inode", "max_space", "max_inodes", "used_space", "used_inodes"}`` (a user or group quota:
``{"uid"|"gid", "max_space", …}``). ``check`` compares the records with a scan of the tree and returns
``{"consistent", "mismatches": [...], "repaired"}``.

Errors: FSError with the errno of what went wrong (ENOENT, ENOTDIR naming the path; ENOENT for a path,
user or group without a quota; EBUSY when another client is recounting the same quota; EINVAL for a
quota on uid/gid 0, which JuiceFS refuses too).
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from jfs.app.meta import owner_quota, quota
from jfs.app.meta.reader import path_of, resolve_dir
from jfs.domain.errors import FSError
from jfs.domain.records import Quota

if TYPE_CHECKING:
    from jfs.app.meta import Meta


async def usage(m: Meta, ino: int) -> tuple[int, int]:
    """(space, inodes) used below directory `ino`, not counting the directory itself, counted as the
    quota hooks charge it (a walk; exact while nobody changes the tree)."""
    return await quota.walk_usage(m.kv, ino)


def _doc(path: str, ino: int, q: Quota) -> dict[str, Any]:
    return {"path": path, "inode": ino, **asdict(q)}


async def set_quota(
    m: Meta, path: str, *, capacity: int | None = None, inodes: int | None = None, settle: float | None = None
) -> dict[str, Any]:
    """Create or change the quota of `path` (bytes, inodes; None keeps the current limit, 0 = unlimited)
    and recount its usage (ADR 0019). `settle` overrides the wait for running mounts to learn about a new
    quota (`quota.PROPAGATION`; tests of a single client use 0)."""
    ino = await resolve_dir(m, path)
    if await quota.store_limits(m, ino, capacity=capacity, inodes=inodes):
        await asyncio.sleep(quota.PROPAGATION if settle is None else settle)
    return _doc(path, ino, await quota.recount(m, ino))


async def get_quota(m: Meta, path: str) -> dict[str, Any]:
    """The quota of directory `path`; FSError ENOENT when it has none."""
    ino = await resolve_dir(m, path)
    q = await quota.read_quota(m.kv, ino)
    if q is None:
        raise FSError(errno.ENOENT, f"no quota on {path}")
    return _doc(path, ino, q)


async def list_quotas(m: Meta) -> list[dict[str, Any]]:
    """Every quota of the volume, with the best-effort path of its directory."""
    return [_doc(await path_of(m.kv, ino), ino, q) for ino, q in await quota.all_quotas(m.kv)]


async def delete_quota(m: Meta, path: str) -> dict[str, Any]:
    """Remove the quota of directory `path`; returns it as it was. FSError ENOENT when it has none."""
    doc = await get_quota(m, path)
    await quota.delete_quota(m, doc["inode"])
    return doc


# ---------------------------------------------------------------------------------------------------
# User and group quotas


def _owner_doc(kind: str, ident: int, q: Quota) -> dict[str, Any]:
    return {("uid" if kind == owner_quota.USER else "gid"): ident, **asdict(q)}


async def recount_owners(m: Meta) -> None:
    """Count every owner's usage by scanning the volume and bring the records to it (`owner_quota.reconcile`)."""
    before = await owner_quota.all_records(m.kv)
    await owner_quota.reconcile(m, before, await owner_quota.scan_volume(m))


async def set_owner_quota(
    m: Meta,
    kind: str,
    ident: int,
    *,
    capacity: int | None = None,
    inodes: int | None = None,
    settle: float | None = None,
) -> dict[str, Any]:
    """Create or change the quota of user or group `ident` (bytes, inodes; None keeps, 0 = unlimited). The
    first one of the volume turns ``UserGroupQuota`` on and, once every mount charges (`settle`, default
    `quota.PROPAGATION`), counts every owner by a scan (ADR 0026)."""
    if ident == 0:
        raise FSError(errno.EINVAL, f"no quota for {'uid' if kind == owner_quota.USER else 'gid'} 0")
    if await owner_quota.store_limits(m, kind, ident, capacity=capacity, inodes=inodes):
        await asyncio.sleep(quota.PROPAGATION if settle is None else settle)
        await recount_owners(m)
    return await get_owner_quota(m, kind, ident)


async def get_owner_quota(m: Meta, kind: str, ident: int) -> dict[str, Any]:
    """The quota of user or group `ident`; FSError ENOENT when it has no record."""
    q = await owner_quota.read_record(m.kv, kind, ident)
    if q is None:
        raise FSError(errno.ENOENT, f"no quota for {'uid' if kind == owner_quota.USER else 'gid'} {ident}")
    return _owner_doc(kind, ident, q)


async def delete_owner_quota(m: Meta, kind: str, ident: int) -> dict[str, Any]:
    """Drop the limits of user or group `ident` (its usage goes on being kept, as JuiceFS does); returns
    the record as it was. FSError ENOENT when there is none."""
    q = await owner_quota.clear_limits(m, kind, ident)
    if q is None:
        raise FSError(errno.ENOENT, f"no quota for {'uid' if kind == owner_quota.USER else 'gid'} {ident}")
    return _owner_doc(kind, ident, q)


async def list_owner_quotas(m: Meta) -> list[dict[str, Any]]:
    """The user and group quotas that have a limit (records kept only for usage are left out, as JuiceFS)."""
    out = []
    for kind, records in (await owner_quota.all_records(m.kv)).items():
        out += [
            _owner_doc(kind, i, q) for i, q in sorted(records.items()) if q.max_space > 0 or q.max_inodes > 0
        ]
    return out


async def check_owner_quotas(m: Meta, *, repair: bool = False) -> dict[str, Any]:
    """Compare every user and group record with a scan of the volume (as ``juicefs quota check --uid``,
    which checks them all); with `repair`, bring them to it."""
    before = await owner_quota.all_records(m.kv)
    scan = await owner_quota.scan_volume(m)
    bad = owner_quota.compare(before, scan)
    if repair and bad:
        await owner_quota.reconcile(m, before, scan)
    return {
        "consistent": not bad,
        "repaired": bool(repair and bad),
        "mismatches": [
            {("uid" if b.kind == owner_quota.USER else "gid"): b.ident,
             "used_space": b.record.used_space if b.record else None,
             "used_inodes": b.record.used_inodes if b.record else None,
             "actual_space": b.space, "actual_inodes": b.inodes}
            for b in bad
        ],
    }  # fmt: skip


async def check_dir_quota(m: Meta, path: str, *, repair: bool = False) -> dict[str, Any]:
    """Compare the usage of the quota of directory `path` with a walk of its subtree; with `repair`,
    recount it (the fenced recount of ``jfs quota set``)."""
    doc = await get_quota(m, path)
    space, inodes = await usage(m, doc["inode"])
    ok = (doc["used_space"], doc["used_inodes"]) == (space, inodes)
    mismatches = [] if ok else [{"path": path, "used_space": doc["used_space"], "used_inodes": doc["used_inodes"],
                                 "actual_space": space, "actual_inodes": inodes}]  # fmt: skip
    if repair and not ok:
        await quota.recount(m, doc["inode"])
    return {"consistent": ok, "repaired": bool(repair and not ok), "mismatches": mismatches}


async def run(
    m: Meta,
    action: str,
    path: str = "",
    *,
    capacity: int | None = None,
    inodes: int | None = None,
    uid: int | None = None,
    gid: int | None = None,
    repair: bool = False,
) -> Any:
    """One ``jfs quota`` action (set, get, list, delete, check) on the volume of `m` (loaded; no session
    needed), on directory `path` or, with `uid`/`gid`, on a user or group quota."""
    if uid is not None or gid is not None:
        kind = owner_quota.USER if uid is not None else owner_quota.GROUP
        ident = uid if uid is not None else gid
        assert ident is not None
        if action == "set":
            return await set_owner_quota(m, kind, ident, capacity=capacity, inodes=inodes)
        if action == "get":
            return await get_owner_quota(m, kind, ident)
        if action == "delete":
            return await delete_owner_quota(m, kind, ident)
        if action == "check":
            return await check_owner_quotas(m, repair=repair)
    if action == "set":
        return await set_quota(m, path, capacity=capacity, inodes=inodes)
    if action == "get":
        return await get_quota(m, path)
    if action == "delete":
        return await delete_quota(m, path)
    if action == "check":
        return await check_dir_quota(m, path, repair=repair)
    return await list_quotas(m) + await list_owner_quotas(m)

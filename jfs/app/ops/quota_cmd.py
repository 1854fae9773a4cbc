"""The ``jfs quota`` command's use cases — set, get, list, delete — as a client of the metadata engine.

The accounting itself (the ``QD<ino>`` records, the in-transaction charges, the fenced recount) belongs to
the engine: `jfs.app.meta.quota`, whose docstring and ADR 0019 describe it. This module turns paths into
directory inodes and back (`jfs.app.meta.reader`), runs the steps of a ``set`` in order (store the limits,
wait for the running mounts to learn about a new quota, recount), and shapes the answers as documents
``{"path", "inode", "max_space", "max_inodes", "used_space", "used_inodes"}``.

Errors: FSError with the errno of what went wrong (ENOENT, ENOTDIR naming the path; ENOENT for a path
without a quota; EBUSY when another client is recounting the same quota).
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from jfs.app.meta import quota
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


async def run(m: Meta, action: str, path: str = "", *, capacity: int | None = None,
              inodes: int | None = None) -> Any:
    """One ``jfs quota`` action (set, get, list, delete) on the volume of `m` (loaded; no session needed)."""
    if action == "set":
        return await set_quota(m, path, capacity=capacity, inodes=inodes)
    if action == "get":
        return await get_quota(m, path)
    if action == "delete":
        return await delete_quota(m, path)
    return await list_quotas(m)

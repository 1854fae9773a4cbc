"""Confirmation: the scan is not a snapshot, so what the judge found is re-read before it is reported.

Contract: each `confirm_*` returns the part of what was found that is still true in the engine now (the
inode unchanged since the scan, the entry still dangling, the records still without an inode, the bad
blocks still covered); `files_unchanged` tells whether the counters' comparison is meaningful. Read-only;
KV errors propagate. Repairs re-check again inside their own transaction (`repairs`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator

from jfs.app.meta import store
from jfs.app.meta.reader import names_in, read_attrs
from jfs.app.ops.fsck.blocks import file_blocks
from jfs.app.ops.fsck.judge import BlockRef, Fix
from jfs.app.ops.fsck.model import REG, AttrSeen, Model
from jfs.app.ops.fsck.report import Issue
from jfs.domain.attrs import ROOT_INODE, Attr, align4k, is_trash_inode
from jfs.ports.kv import KV, Tx


async def confirm_broken(kv: KV, found: list[Issue]) -> list[Issue]:
    """The dangling-entry problems that are still there (one entry per problem, with its name)."""
    out: list[Issue] = []
    by_parent: dict[int, list[Issue]] = defaultdict(list)
    for issue in found:
        by_parent[issue.parent].append(issue)
    for parent, group in by_parent.items():
        names = await names_in(kv, parent, {i.ino for i in group})
        missing = await _missing_attrs(kv, list(names))
        for issue in group:
            left = names.get(issue.ino, [])
            if issue.ino in missing and left:
                issue.name = left.pop(0)
                out.append(issue)
    return out


async def _attrs_now(kv: KV, inos: list[int]) -> AsyncIterator[tuple[int, Attr | None]]:
    """The current attributes of `inos` (None: gone), read 500 at a time."""
    for i in range(0, len(inos), 500):
        part = inos[i : i + 500]
        for ino, attr in zip(part, await read_attrs(kv, part), strict=True):
            yield ino, attr


async def confirm_fixes(kv: KV, fixes: dict[int, Fix]) -> dict[int, Fix]:
    """The fixes whose inode still has the attributes the scan saw."""
    return {ino: fixes[ino] async for ino, attr in _attrs_now(kv, list(fixes))
            if attr is not None and same(attr, fixes[ino].seen)}  # fmt: skip


async def files_unchanged(kv: KV, model: Model) -> bool:
    """Whether every inode the scan counted still exists with the type and length it saw."""
    inos = [ino for ino in model.attrs if ino != ROOT_INODE and not is_trash_inode(ino)]
    async for ino, attr in _attrs_now(kv, inos):
        typ, _, _, length, _ = model.attrs[ino]
        if attr is None or int(attr.typ) != typ or (typ == REG and align4k(attr.length) != align4k(length)):
            return False
    return True


def same(attr: Attr, seen: AttrSeen) -> bool:
    """Whether `attr` is still what the scan saw (type, nlink, parent, ctime)."""
    typ, nlink, parent, _, ctime = seen
    return (int(attr.typ), attr.nlink, attr.parent, attr.ctime_ns) == (typ, nlink, parent, ctime)


async def confirm_stray(kv: KV, inos: set[int]) -> set[int]:
    """The inodes of `inos` that still have records (entries aside) but neither attributes nor a delfile
    marker."""

    async def body(tx: Tx) -> set[int]:
        out = set()
        for ino in inos:
            if await store.find_attr(tx, ino) is not None or await store.has_delfile(tx, ino):
                continue
            if await store.record_kinds(tx, ino) - {"D"}:
                out.add(ino)
        return out

    return await kv.read(body) if inos else set()


async def confirm_lost(kv: KV, lost: dict[int, set[BlockRef]], block_size: int) -> dict[int, set[BlockRef]]:
    """`lost` restricted to the blocks the inodes' records still cover (a slice released and deleted
    since the check is not lost)."""
    if not lost:
        return {}
    now = await file_blocks(kv, list(lost), block_size)
    out = {ino: bad & now.get(ino, set()) for ino, bad in lost.items()}
    return {ino: bad for ino, bad in out.items() if bad}


async def _missing_attrs(kv: KV, inos: list[int]) -> set[int]:
    """The inodes of `inos` that have no attributes."""
    return {i for i, attr in zip(inos, await read_attrs(kv, inos), strict=True) if attr is None}

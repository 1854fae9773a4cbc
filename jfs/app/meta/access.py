"""Permission checks for requests that name an inode by number instead of by path.

A path is resolved by LOOKUPs, and the kernel (or `namespace.lookup`) checks search permission on every
directory it passes. A request that names an inode directly (``jfs info``, ``summary``, ``warmup`` and
``rmr`` through a mount's ``.control`` file, or any future face that takes inode numbers) skips all of
that, so the engine checks it here: the caller must be able to search every directory on some path from
the root to the inode — walked upwards through the `parent` field of the attributes, or through the
parent records of a hard-linked file — and must hold the requested rights on the inode itself.

An inode with no path at all (unlinked but still open) is reachable by root only.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from jfs.app.meta import store
from jfs.app.meta.context import Ctx
from jfs.app.meta.rules import check_perm
from jfs.domain.attrs import ROOT_INODE, Attr, FileType
from jfs.domain.errors import FSError
from jfs.domain.permissions import MAY_EXEC, access_ok
from jfs.ports.kv import Tx

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

MAX_DEPTH = 1 << 16
"""Ancestors walked at most before the chain is taken for a loop (damaged metadata): the inode is then
unreachable rather than the walk endless."""


async def named_inode(m: Meta, ctx: Ctx, ino: int, mask: int = 0, *, searchable: set[int] | None = None) -> Attr:
    """The attributes of `ino`, named by number by `ctx`, after checking that `ctx` may reach it by a path
    (search permission on each directory from the root down to a parent) and has the `mask` rights
    (MAY_READ | MAY_WRITE | MAY_EXEC) on it. Errors: ENOENT, EACCES.

    `searchable` caches, for one request naming many inodes, the directories already found searchable
    by `ctx` (it is filled in here); pass the same set to every call of that request.
    """
    known = searchable if searchable is not None else set()

    async def body(tx: Tx) -> Attr:
        attr = await store.get_attr(tx, ino)
        if ctx.check and not ctx.is_root and not await _reachable(tx, ctx, ino, attr, known):
            raise FSError(errno.EACCES, f"inode {ino}: no searchable path to it")
        check_perm(ctx, attr, mask)
        return attr

    return await m.kv.read(body)


async def _reachable(tx: Tx, ctx: Ctx, ino: int, attr: Attr, known: set[int]) -> bool:
    if ino == ROOT_INODE:
        return True
    if attr.parent:
        parents = [attr.parent]
    elif attr.nlink:
        parents = sorted(await store.parent_refs(tx, ino))  # a hard-linked file: any of its directories
    else:
        return False  # unlinked (kept while open): no path leads to it
    for parent in parents:
        if await _searchable_chain(tx, ctx, parent, known):
            return True
    return False


async def _searchable_chain(tx: Tx, ctx: Ctx, d: int, known: set[int]) -> bool:
    """Whether `ctx` may search `d` and every directory above it up to the root (`known` holds directories
    whose whole chain was already found searchable; those found here are added)."""
    walked: set[int] = set()
    while d not in known:
        if len(walked) >= MAX_DEPTH or d in walked:
            return False
        try:
            a = await store.get_attr(tx, d)
        except FileNotFoundError:
            return False
        if a.typ is not FileType.DIRECTORY or not access_ok(a, ctx.caller, MAY_EXEC):
            return False
        walked.add(d)
        if d == ROOT_INODE:
            break
        if not a.parent:
            return False
        d = a.parent
    known.update(walked)
    return True

"""`jfs summary`, `jfs rmr`, `jfs warmup`: tree-wide jobs (walks of a subtree) served inside a mount
through its ``.control`` file.

- `summary_tree`: recursive totals (files, dirs, length, space) of a directory, with the per-entry totals of
  its children down to `depth` levels (the `entries` biggest of each directory, the rest folded into one
  ``...`` row), like ``juicefs summary``.
- `remove_tree`: deletes a whole subtree with Meta.unlink / Meta.rmdir (with the trash on, files and the
  emptied directories go to the trash, as unlink and rmdir do that, so `jfs restore` can rebuild the tree),
  depth first, page by page so a huge directory is never held in memory.
- `warmup`: loads every block of the files under some inodes through the data path's fetcher, which fills
  the memory and disk block caches; nothing is returned but counts.

Each runs with the permissions of its caller (`ctx`): the requests name inodes by number, so the path checks
a lookup would make are made here (`Meta.getattr_named`), and a walk lists only directories the caller may
read and search, as ``ls -lR`` would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from jfs.app.data.files import DataPath
from jfs.app.meta import Meta, dir_totals
from jfs.app.meta.context import ROOT_CTX, Ctx
from jfs.app.meta.dir_totals import TotalsPage, totals_page
from jfs.app.meta.rules import check_perm
from jfs.domain.attrs import Attr, FileType, align4k
from jfs.domain.chunks import CHUNK_SIZE, blocks_for_range
from jfs.domain.errors import FSError
from jfs.domain.permissions import MAY_EXEC, MAY_READ, access_ok


def _space(typ: FileType, length: int) -> int:
    """Space charged for an inode, as the engine counts it (directories and symlinks: 4 KiB)."""
    return align4k(length if typ is FileType.REGULAR else 0)


READ_AND_SEARCH = MAY_READ | MAY_EXEC
"""What a walk needs on a directory to list it and count its entries (as ``ls -l``): read and search."""


PREFETCH = 32
"""Directories whose first page a summary reads ahead (at most this many in flight) while it sums another:
the engine stays busy while the walk folds what came back (32 rather than 8: on a loaded machine Redis
answers more pages per turn on the CPU; ADR 0093)."""

AHEAD_PAGES = 8
"""What the read-ahead may hold, in full pages (`dir_totals.PAGE` names): each of the `PREFETCH` first pages
read ahead is asked for `AHEAD_PAGES` × PAGE / `PREFETCH` names (1,024), so the read-ahead holds what 8
full pages held before (a tree of directories of directories keeps every subdirectory of a page read ahead
in memory); a bigger directory's next pages are read with full pages when the walk reaches it."""


async def summary_tree(meta: Meta, ino: int, name: str = "", *, depth: int = 2, entries: int = 10,
                       ctx: Ctx = ROOT_CTX) -> dict[str, Any]:
    """Totals of `ino` and, for `depth` levels, of its biggest `entries` children (as a nested tree), as
    `ctx` may see them.

    Each node: ``{"name", "inode", "type", "files", "dirs", "length", "space", "unreadable", "children":
    [...]}``. `ino` is named by number, so `ctx` must be able to reach it (search permission on a path to
    it), and a directory needs read and search permission (else EACCES). Below it, a directory `ctx` may
    not read and search is counted as one directory (its entries are not), and its node carries
    ``"denied": true``; ``unreadable`` counts such directories in each subtree. Directories are read a page
    at a time, folded (`jfs.app.meta.dir_totals`): files are summed, only the biggest become nodes; the
    first pages of up to `PREFETCH` subdirectories are read ahead.
    """
    attr = await meta.getattr_named(ino, ctx)
    if attr.typ is FileType.DIRECTORY:
        check_perm(ctx, attr, READ_AND_SEARCH)
    ahead = _Ahead(meta, ctx)
    try:
        return await _summary_node(ahead, ctx, ino, attr, name, depth, entries, top=True)
    finally:
        ahead.close()


def _shown(depth: int, entries: int) -> int:
    """The `top` of a directory's pages at `depth`: its biggest `entries` files are nodes (all with 0) while
    it shows children, none below."""
    return (entries if entries > 0 else -1) if depth > 0 else 0


class _Ahead:
    """First pages of the directories a summary will enter, read ahead; at most `PREFETCH` not yet taken,
    of at most `AHEAD_PAGES` × PAGE / `PREFETCH` names each."""

    def __init__(self, meta: Meta, ctx: Ctx) -> None:
        self.meta, self.ctx = meta, ctx
        self.pending: dict[int, asyncio.Future[TotalsPage]] = {}

    def start(self, ino: int, top: int) -> None:
        if ino not in self.pending and len(self.pending) < PREFETCH:
            names = max(1, AHEAD_PAGES * dir_totals.PAGE // PREFETCH)
            self.pending[ino] = asyncio.ensure_future(totals_page(self.meta, self.ctx, ino, limit=names, top=top))

    async def page(self, ino: int, after: bytes, top: int) -> TotalsPage:
        """The page of `ino` after `after`: the one read ahead if any (its error, if it failed)."""
        if not after:
            read = self.pending.pop(ino, None)
            if read is not None:
                return await read
        return await totals_page(self.meta, self.ctx, ino, after, top=top)

    def close(self) -> None:
        for read in self.pending.values():
            read.cancel()
            read.add_done_callback(_consume)
        self.pending.clear()


def _consume(read: asyncio.Future[Any]) -> None:
    if not read.cancelled():
        read.exception()


async def _summary_node(ahead: _Ahead, ctx: Ctx, ino: int, attr: Attr, name: str, depth: int, entries: int, *,
                        top: bool = False) -> dict[str, Any]:
    node: dict[str, Any] = {
        "name": name, "inode": ino, "type": attr.typ.name.lower(),
        "files": 0, "dirs": 0, "length": 0, "space": _space(attr.typ, attr.length), "unreadable": 0,
    }
    if attr.typ is not FileType.DIRECTORY:
        node["files"] = 1
        node["length"] = attr.length if attr.typ is FileType.REGULAR else 0
        return node
    node["dirs"] = 1
    if not top and not _may(ctx, attr, READ_AND_SEARCH):
        return _denied(node)
    shown = _Biggest(entries) if depth > 0 else None
    want, child_want = _shown(depth, entries), _shown(depth - 1, entries)
    after: bytes | None = b""
    while after is not None:
        page = await ahead.page(ino, after, want)
        node["files"] += page.files
        node["length"] += page.length
        node["space"] += page.space
        if shown is not None:
            files, length, space = page.files, page.length, page.space
            for e in page.top:
                a = e.attr
                assert a is not None
                size, used = (a.length if a.typ is FileType.REGULAR else 0), _space(a.typ, a.length)
                shown.add({"name": e.name.decode(errors="surrogateescape"), "inode": e.ino, "type": a.typ.name.lower(),
                           "files": 1, "dirs": 0, "length": size, "space": used, "unreadable": 0})
                files, length, space = files - 1, length - size, space - used
            shown.add_folded(files, length, space)  # not among the biggest of their page: not shown
        subdirs = page.dirs
        for i, e in enumerate(subdirs):
            for d in subdirs[i:i + PREFETCH]:
                if d.attr is not None and _may(ctx, d.attr, READ_AND_SEARCH):
                    ahead.start(d.ino, child_want)
            a = e.attr
            assert a is not None
            child_name = e.name.decode(errors="surrogateescape")
            try:
                child = await _summary_node(ahead, ctx, e.ino, a, child_name, depth - 1, entries)
            except PermissionError:  # made unreadable meanwhile
                child = _denied({"name": child_name, "inode": e.ino, "type": "directory", "files": 0, "dirs": 1,
                                 "length": 0, "space": _space(a.typ, a.length), "unreadable": 0})
            except FSError:  # removed meanwhile
                continue
            for k in _TOTALS:
                node[k] += child[k]
            if shown is not None:
                shown.add(child)
        after = page.cursor
    if shown is not None:
        node["children"] = shown.rows()
    return node


class _Biggest:
    """The `limit` biggest children of a directory (by space, then name, compared as the bytes the name
    stands for: the order of a listing) and the rest folded into one ``...`` row, kept as they stream by:
    memory is bounded by 2 × `limit` children however big the directory (`limit` 0: every child is kept)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept: list[dict[str, Any]] = []
        self.rest: dict[str, Any] | None = None

    def add(self, child: dict[str, Any]) -> None:
        self.kept.append(child)
        if self.limit > 0 and len(self.kept) >= 2 * self.limit:
            self._fold()

    def add_folded(self, files: int, length: int, space: int) -> None:
        """Count `files` children known not to be among the biggest (totals `length`, `space`) in the
        ``...`` row."""
        if files:
            rest = self._rest()
            rest["files"] += files
            rest["length"] += length
            rest["space"] += space

    def _rest(self) -> dict[str, Any]:
        if self.rest is None:
            self.rest = {"name": "...", "inode": 0, "type": "other", **dict.fromkeys(_TOTALS, 0)}
        return self.rest

    def _fold(self) -> None:
        self.kept.sort(key=_order)
        if self.limit <= 0 or len(self.kept) <= self.limit:
            return
        rest = self._rest()
        for c in self.kept[self.limit:]:
            for k in _TOTALS:
                rest[k] += c[k]
        del self.kept[self.limit:]

    def rows(self) -> list[dict[str, Any]]:
        """The children shown, biggest first, then the ``...`` row when some were folded."""
        self._fold()
        return self.kept + ([self.rest] if self.rest is not None else [])


_TOTALS = ("files", "dirs", "length", "space", "unreadable")


def _order(child: dict[str, Any]) -> tuple[int, bytes]:
    return -child["space"], child["name"].encode(errors="surrogateescape")


def _may(ctx: Ctx, attr: Attr, mask: int) -> bool:
    """Whether `ctx` holds the `mask` rights on the inode (always, for a context that skips checks)."""
    return not ctx.check or access_ok(attr, ctx.caller, mask)


def _denied(node: dict[str, Any]) -> dict[str, Any]:
    """`node`, a directory `ctx` may not read and search: counted as itself alone, marked as denied."""
    node["unreadable"] = 1
    node["denied"] = True
    return node


async def remove_tree(meta: Meta, parent: int, name: bytes, *, threads: int = 16,
                      progress: Callable[[int], None] | None = None, ctx: Ctx = ROOT_CTX) -> dict[str, int]:
    """Delete `name` in directory `parent` and everything below it, with the permissions of `ctx` (each
    removal is checked as rm(1) would be: EACCES/EPERM stop the walk). Returns the removed counts."""
    counts = {"files": 0, "dirs": 0}
    slots = asyncio.Semaphore(max(1, threads))

    def done(kind: str) -> None:
        counts[kind] += 1
        if progress is not None:
            progress(counts["files"] + counts["dirs"])

    async def empty(ino: int) -> None:
        after: bytes | None = b""
        while after is not None:
            page, cursor = await meta.readdir_page(ino, after or b"", ctx=ctx)
            if not page:
                break
            await asyncio.gather(*(one(ino, e.name, e.typ) for e in page))
            after = cursor

    async def one(dir_ino: int, entry: bytes, typ: FileType) -> None:
        if typ is FileType.DIRECTORY:
            ino, _ = await meta.lookup(dir_ino, entry, ctx)
            await empty(ino)
            await meta.rmdir(dir_ino, entry, ctx)
            done("dirs")
            return
        async with slots:
            await meta.unlink(dir_ino, entry, ctx)
        done("files")

    await meta.getattr_named(parent, ctx)  # `parent` is named by number: it must be reachable by `ctx`
    ino, attr = await meta.lookup(parent, name, ctx)
    await one(parent, name, attr.typ)
    counts["inode"] = ino
    return counts


async def warmup(meta: Meta, data: DataPath, inodes: list[int], *, threads: int = 16,
                 ctx: Ctx = ROOT_CTX) -> dict[str, Any]:
    """Load every block of the regular files under `inodes` into the block cache, as `ctx` may read them;
    returns counts and rate.

    The `inodes` are named by number, so each must be reachable by `ctx` (search permission on a path to
    it) and readable — a directory also searchable — or nothing is loaded (EACCES). Below them, files `ctx`
    may not read and directories it may not read and search are skipped and counted as ``denied``.
    """
    start = time.monotonic()
    totals = {"files": 0, "bytes": 0, "blocks": 0, "errors": 0, "denied": 0}
    slots = asyncio.Semaphore(max(1, threads))
    fetcher = data.fetcher
    block_size = fetcher.block_size

    async def load(slice_id: int, size: int, index: int, n: int) -> None:
        async with slots:
            try:
                await fetcher.warm(slice_id, size, index)
                totals["blocks"] += 1
                totals["bytes"] += n
            except Exception:
                totals["errors"] += 1

    async def file(ino: int, length: int) -> None:
        totals["files"] += 1
        tasks = []
        for indx in range((length + CHUNK_SIZE - 1) // CHUNK_SIZE):
            for r in await meta.read_chunk(ino, indx):
                if not r.id:
                    continue
                for index, _inner, n in blocks_for_range(r.off, r.len, block_size):
                    tasks.append(load(r.id, r.size, index, n))
        await asyncio.gather(*tasks)

    stack: list[tuple[int, Attr]] = []
    searchable: set[int] = set()
    for ino in inodes:  # every named inode is checked before anything is loaded
        try:
            attr = await meta.getattr_named(ino, ctx, searchable=searchable)
        except PermissionError:
            raise
        except FSError:
            totals["errors"] += 1
            continue
        check_perm(ctx, attr, READ_AND_SEARCH if attr.typ is FileType.DIRECTORY else MAY_READ)
        stack.append((ino, attr))
    stack.reverse()
    while stack:
        ino, attr = stack.pop()
        if attr.typ is FileType.REGULAR:
            await file(ino, attr.length)
        elif attr.typ is FileType.DIRECTORY:
            try:
                async for e in meta.readdir(ino, ctx, plus=True):
                    a = e.attr
                    if a is None or a.typ not in (FileType.REGULAR, FileType.DIRECTORY):
                        continue
                    if not _may(ctx, a, READ_AND_SEARCH if a.typ is FileType.DIRECTORY else MAY_READ):
                        totals["denied"] += 1
                        continue
                    stack.append((e.ino, a))
            except PermissionError:  # made unreadable meanwhile
                totals["denied"] += 1
            except FSError:  # removed meanwhile
                totals["errors"] += 1
    elapsed = time.monotonic() - start
    return {**totals, "seconds": round(elapsed, 3), "rate": totals["bytes"] / elapsed if elapsed > 0 else 0.0}

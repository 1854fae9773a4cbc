"""`jfs summary`, `jfs rmr`, `jfs warmup`: tree-wide jobs served inside a mount through its ``.control`` file.

- `summary_tree`: recursive totals (files, dirs, length, space) of a directory, with the per-entry totals of
  its children down to `depth` levels (the `entries` biggest of each directory, the rest folded into one
  ``...`` row), like ``juicefs summary``.
- `remove_tree`: deletes a whole subtree with Meta.unlink / Meta.rmdir (with the trash on, files and the
  emptied directories go to the trash, as unlink and rmdir do that, so `jfs restore` can rebuild the tree),
  depth first, page by page so a huge directory is never held in memory.
- `warmup`: loads every block of the files under some inodes through the data path's fetcher, which fills
  the memory and disk block caches; nothing is returned but counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from jfs.app.data.files import DataPath
from jfs.app.meta import Meta
from jfs.app.meta.context import ROOT_CTX, Ctx
from jfs.domain.attrs import FileType, align4k
from jfs.domain.chunks import CHUNK_SIZE, blocks_for_range
from jfs.domain.errors import FSError


def _space(typ: FileType, length: int) -> int:
    """Space charged for an inode, as the engine counts it (directories and symlinks: 4 KiB)."""
    return align4k(length if typ is FileType.REGULAR else 0)


async def summary_tree(meta: Meta, ino: int, name: str = "", *, depth: int = 2, entries: int = 10) -> dict[str, Any]:
    """Totals of `ino` and, for `depth` levels, of its biggest `entries` children (as a nested tree).

    Each node: ``{"name", "inode", "type", "files", "dirs", "length", "space", "children": [...]}``.
    """
    attr = await meta.getattr(ino)
    node: dict[str, Any] = {
        "name": name, "inode": ino, "type": attr.typ.name.lower(),
        "files": 0, "dirs": 0, "length": 0, "space": _space(attr.typ, attr.length),
    }
    if attr.typ is not FileType.DIRECTORY:
        node["files"] = 1
        node["length"] = attr.length if attr.typ is FileType.REGULAR else 0
        return node
    node["dirs"] = 1
    children: list[dict[str, Any]] = []
    async for e in meta.readdir(ino, plus=True):
        a = e.attr
        if a is None:
            continue
        child_name = e.name.decode(errors="surrogateescape")
        if a.typ is FileType.DIRECTORY:
            try:
                child = await summary_tree(meta, e.ino, child_name, depth=depth - 1, entries=entries)
            except FSError:  # removed meanwhile
                continue
        else:
            length = a.length if a.typ is FileType.REGULAR else 0
            child = {"name": child_name, "inode": e.ino, "type": a.typ.name.lower(), "files": 1, "dirs": 0,
                     "length": length, "space": _space(a.typ, a.length)}
        for k in ("files", "dirs", "length", "space"):
            node[k] += child[k]
        if depth > 0:
            children.append(child)
    if depth > 0:
        children.sort(key=lambda c: (-c["space"], c["name"]))
        if entries > 0 and len(children) > entries:
            rest = children[entries:]
            children = children[:entries]
            children.append({
                "name": "...", "inode": 0, "type": "other",
                **{k: sum(c[k] for c in rest) for k in ("files", "dirs", "length", "space")},
            })
        node["children"] = children
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

    ino, attr = await meta.lookup(parent, name, ctx)
    await one(parent, name, attr.typ)
    counts["inode"] = ino
    return counts


async def warmup(meta: Meta, data: DataPath, inodes: list[int], *, threads: int = 16) -> dict[str, Any]:
    """Load every block of the regular files under `inodes` into the block cache; returns counts and rate."""
    start = time.monotonic()
    totals = {"files": 0, "bytes": 0, "blocks": 0, "errors": 0}
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

    stack = list(inodes)
    while stack:
        ino = stack.pop()
        try:
            attr = await meta.getattr(ino)
        except FSError:
            totals["errors"] += 1
            continue
        if attr.typ is FileType.REGULAR:
            await file(ino, attr.length)
        elif attr.typ is FileType.DIRECTORY:
            async for e in meta.readdir(ino):
                if e.typ in (FileType.REGULAR, FileType.DIRECTORY):
                    stack.append(e.ino)
    elapsed = time.monotonic() - start
    return {**totals, "seconds": round(elapsed, 3), "rate": totals["bytes"] / elapsed if elapsed > 0 else 0.0}

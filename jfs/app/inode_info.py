"""`jfs info`: what an inode is made of — attributes, chunks → slices → object names — and, for a
directory, a recursive summary. Served by a mount through its ``.control`` file, as the caller may see it:
the request names the inode by number, so the checks a path lookup would make are made here."""

from __future__ import annotations

from typing import Any

from jfs.app.meta import Meta
from jfs.app.meta.context import ROOT_CTX, Ctx
from jfs.app.meta.dir_totals import totals_page
from jfs.domain.attrs import Attr, FileType
from jfs.domain.chunks import CHUNK_SIZE, slice_block_keys
from jfs.domain.errors import FSError
from jfs.domain.permissions import MAY_EXEC, MAY_READ, access_ok

MAX_SUMMARY_ENTRIES = 1_000_000


async def inode_info(meta: Meta, ino: int, *, recursive: bool = True, ctx: Ctx = ROOT_CTX) -> dict[str, Any]:
    """A JSON-able description of `ino` for `ctx`, who must be able to reach it (search permission on a
    path to it) and read it. Raises FSError: ENOENT for a missing inode, EACCES."""
    attr = await meta.getattr_named(ino, ctx, MAY_READ)
    info: dict[str, Any] = {
        "inode": ino,
        "type": attr.typ.name.lower(),
        "mode": oct(attr.mode),
        "uid": attr.uid,
        "gid": attr.gid,
        "nlink": attr.nlink,
        "length": attr.length,
        "parent": attr.parent,
    }
    if attr.typ is FileType.REGULAR:
        s = meta.settings
        chunks = []
        for indx in range((attr.length + CHUNK_SIZE - 1) // CHUNK_SIZE):
            records = await meta.read_chunk(ino, indx)
            if not records:
                continue
            chunks.append({
                "index": indx,
                "slices": [
                    {
                        "pos": r.pos, "id": r.id, "size": r.size, "off": r.off, "len": r.len,
                        "objects": [f"{s.name}/{k}" for k in slice_block_keys(r.id, r.size, s.block_bytes, s.hash_prefix)]
                        if r.id else [],
                    }
                    for r in records
                ],
            })
        info["chunks"] = chunks
    elif attr.typ is FileType.DIRECTORY and recursive:
        info["summary"] = await summary(meta, ino, ctx=ctx, attr=attr)
    return info


async def summary(meta: Meta, ino: int, *, ctx: Ctx = ROOT_CTX, attr: Attr | None = None) -> dict[str, int]:
    """Recursive totals under directory `ino` as `ctx` may see them: files, directories, bytes, space
    (4 KiB units), and ``unreadable``: the directories (`ino` included) `ctx` may not read and search,
    counted as directories but not listed. `ino` itself is taken as reachable (checked by the caller);
    `attr`: its attributes when the caller has them."""
    totals = {"files": 0, "dirs": 1, "length": 0, "space": 4096, "unreadable": 0}
    stack = [ino]
    seen = 0
    if ctx.check and not access_ok(attr or await meta.getattr(ino), ctx.caller, MAY_READ | MAY_EXEC):
        totals["unreadable"] = 1
        stack.clear()
    while stack and seen < MAX_SUMMARY_ENTRIES:
        d = stack.pop()
        after: bytes | None = b""
        try:
            while after is not None:
                page = await totals_page(meta, ctx, d, after)
                seen += page.files + len(page.dirs)
                totals["files"] += page.files
                totals["length"] += page.length
                totals["space"] += page.space
                for e in page.dirs:
                    totals["dirs"] += 1
                    totals["space"] += 4096
                    if ctx.check and e.attr is not None and not access_ok(e.attr, ctx.caller, MAY_READ | MAY_EXEC):
                        totals["unreadable"] += 1
                    else:
                        stack.append(e.ino)
                after = page.cursor
        except PermissionError:  # made unreadable meanwhile: what was counted of it stays counted
            totals["unreadable"] += 1
        except FSError:  # removed meanwhile
            continue
    return totals

"""`jfs info`: what an inode is made of — attributes, chunks → slices → object names — and, for a
directory, a recursive summary. Served by a mount through its ``.control`` file."""

from __future__ import annotations

from typing import Any

from jfs.app.meta import Meta
from jfs.domain.attrs import FileType
from jfs.domain.chunks import CHUNK_SIZE, slice_block_keys

MAX_SUMMARY_ENTRIES = 1_000_000


async def inode_info(meta: Meta, ino: int, *, recursive: bool = True) -> dict[str, Any]:
    """A JSON-able description of `ino`. Raises FSError(ENOENT) for a missing inode."""
    attr = await meta.getattr(ino)
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
        info["summary"] = await summary(meta, ino)
    return info


async def summary(meta: Meta, ino: int) -> dict[str, int]:
    """Recursive totals under directory `ino`: files, directories, bytes, space (4 KiB units)."""
    from jfs.domain.attrs import align4k

    totals = {"files": 0, "dirs": 1, "length": 0, "space": 4096}
    stack = [ino]
    seen = 0
    while stack and seen < MAX_SUMMARY_ENTRIES:
        d = stack.pop()
        async for e in meta.readdir(d, plus=True):
            seen += 1
            a = e.attr
            if a is None:
                continue
            if a.typ is FileType.DIRECTORY:
                totals["dirs"] += 1
                totals["space"] += 4096
                stack.append(e.ino)
            else:
                totals["files"] += 1
                totals["length"] += a.length if a.typ is FileType.REGULAR else 0
                totals["space"] += align4k(a.length if a.typ is FileType.REGULAR else 0)
    return totals

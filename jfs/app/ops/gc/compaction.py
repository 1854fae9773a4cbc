"""``jfs gc --compact``: rewrite every chunk made of more than one slice record into one slice.

Contract: `compact_all` runs the data path's `Compactor` over every fragmented chunk (files awaiting
deletion excluded) with a data path of its own, closed before it returns; the replaced slices' blocks are
deleted once the swap released them. A chunk that fails is logged and skipped. Returns how many chunks
were rewritten.
"""

from __future__ import annotations

from typing import Any

import structlog

from jfs.app.data.config import DataConfig
from jfs.app.meta.chunk_scan import chunks_in, read_delfiles, slice_records
from jfs.app.meta.engine import Meta
from jfs.app.ops.block_objects import bounded
from jfs.app.progress import ProgressBoard
from jfs.ports.kv import KV, Tx
from jfs.ports.objects import ObjectStore

log = structlog.get_logger("jfs.gc")


async def fragmented_chunks(kv: KV, skip: set[int] | dict[int, Any]) -> list[tuple[int, int]]:
    """(ino, indx) of every chunk with more than one slice record, inodes in `skip` excluded."""

    async def body(tx: Tx) -> list[tuple[int, int]]:
        out = []
        async for ino, indx, value in chunks_in(tx):
            if slice_records(value) > 1 and ino not in skip:
                out.append((ino, indx))
        return out

    return await kv.read(body)


async def compact_all(meta: Meta, store: ObjectStore, threads: int, progress: ProgressBoard) -> int:
    """Compact every fragmented chunk of the volume with a data path of its own; returns how many were
    rewritten. The replaced slices' blocks are deleted once the swap released them."""
    from jfs.app.data.files import DataPath

    todo = await fragmented_chunks(meta.kv, await read_delfiles(meta.kv))
    if not todo:
        return 0
    config = DataConfig.from_settings(meta.settings, max_compactions=max(1, threads), cache_dir=None)
    dp = await DataPath(meta, store, config).start()
    bar = progress.bar("Compacted chunks", total=len(todo), unit="chunks")
    done = 0

    async def one(ino: int, indx: int) -> None:
        nonlocal done
        try:
            done += bool(await dp.compactor.compact_chunk(ino, indx))
        finally:
            bar.advance()

    try:
        for r in await bounded((one(i, x) for i, x in todo), threads):
            if isinstance(r, BaseException):
                log.warning("compaction_failed", error=str(r))
    finally:
        bar.close()
        await dp.close()
    log.info("gc_compacted", chunks=done, fragmented=len(todo))
    return done

"""The block objects of a volume as gc and fsck see them: listing them, deleting released slices' blocks.

Contract: `list_blocks` streams every object under ``<volume>/chunks/`` (one progress bar);
`block_store` builds a cache-less `BlockStore` for a maintenance job (the job closes it); `free_hook`
adapts it to the engine's free hook (slices whose block deletion failed stay pending for the next gc);
`releasing_blocks` does both for the length of a job and puts the engine's previous hook back; `bounded` runs awaitables with a concurrency limit. Object-store errors propagate from `list_blocks`;
`bounded` returns exceptions as results.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import structlog

from jfs.app.data.blocks import BlockStore
from jfs.app.data.config import DataConfig
from jfs.app.meta.engine import Meta
from jfs.app.progress import ProgressBoard
from jfs.ports.objects import ObjectInfo, ObjectStore

log = structlog.get_logger("jfs.ops")

DEFAULT_THREADS = 10
"""Concurrent object-store requests of a maintenance job unless told otherwise."""
DELETE_BATCH = 1000
"""Objects (or records) deleted per batch."""


def block_store(meta: Meta, store: ObjectStore, threads: int) -> BlockStore:
    """A BlockStore for the volume of `meta` (no cache) deleting up to `threads` objects at once."""
    config = DataConfig.from_settings(meta.settings, max_deletes=max(1, threads), io_retries=3, cpu_workers=1)
    return BlockStore(store, config)


def free_hook(blocks: BlockStore) -> Callable[[list[tuple[int, int]]], Awaitable[list[tuple[int, int]]]]:
    """An engine free hook that deletes the blocks of released slices and reports which slices are gone
    (a slice whose deletion failed stays pending, ``K = -1``, for the next gc)."""

    async def hook(slices: list[tuple[int, int]]) -> list[tuple[int, int]]:
        results = await asyncio.gather(
            *(blocks.delete_slice(s, z) for s, z in slices), return_exceptions=True
        )
        done = []
        for pair, r in zip(slices, results, strict=True):
            if isinstance(r, BaseException):
                log.warning("slice_delete_failed", slice=pair[0], size=pair[1], error=str(r))
            else:
                done.append(pair)
        return done

    return hook


@asynccontextmanager
async def releasing_blocks(meta: Meta, store: ObjectStore, threads: int) -> AsyncIterator[BlockStore]:
    """A `block_store` installed as `meta`'s free hook while the block runs (slices a job releases get
    their blocks deleted); on exit the previous hook is put back and the BlockStore closed."""
    blocks = block_store(meta, store, threads)
    previous = meta.free_hook
    meta.free_hook = free_hook(blocks)
    try:
        yield blocks
    finally:
        meta.free_hook = previous
        await blocks.close()


async def bounded(jobs: Iterable[Awaitable[Any]], limit: int) -> list[Any]:
    """Await `jobs` with at most `limit` running at once; returns their results (exceptions included)."""
    slots = asyncio.Semaphore(max(1, limit))

    async def one(job: Awaitable[Any]) -> Any:
        async with slots:
            return await job

    return await asyncio.gather(*(one(j) for j in jobs), return_exceptions=True)


async def list_blocks(
    store: ObjectStore, volume: str, progress: ProgressBoard
) -> AsyncIterator[tuple[str, ObjectInfo]]:
    """Every object under ``<volume>/chunks/`` as (key relative to the volume, info), with a progress bar."""
    prefix = f"{volume}/"
    bar = progress.bar("Listed objects", unit="objects")
    try:
        async for obj in store.list(prefix + "chunks/"):
            bar.advance()
            yield obj.key[len(prefix) :], obj
    finally:
        bar.close()

"""gc and fsck on a volume named by its META-URL, for tests: open the engine and the bucket, run, close.

Contract: `opened_volume` yields the loaded engine (no session) and the object store of the volume at
`meta_url` and closes both on exit (VolumeError for an unformatted engine); `fsck_volume` and `gc_volume`
run `run_fsck` / `run_gc` on them, passing their keyword arguments through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from jfs.app.meta.engine import Meta
from jfs.app.ops.fsck import FsckReport, run_fsck
from jfs.app.ops.gc import GCReport, run_gc
from jfs.compose import open_volume
from jfs.ports.objects import ObjectStore


@asynccontextmanager
async def opened_volume(meta_url: str) -> AsyncIterator[tuple[Meta, ObjectStore]]:
    """The loaded engine (no session) and the object store of the volume at `meta_url`, closed on exit."""
    async with open_volume(meta_url) as vol:
        yield vol.meta, await vol.store()


async def fsck_volume(meta_url: str, **options: Any) -> FsckReport:
    """`run_fsck` on the volume at `meta_url` (options: path, recursive, repair, threads, progress)."""
    async with opened_volume(meta_url) as (meta, store):
        return await run_fsck(meta, store, **options)


async def gc_volume(meta_url: str, **options: Any) -> GCReport:
    """`run_gc` on the volume at `meta_url` (options: delete, compact, threads, skip_age, progress)."""
    async with opened_volume(meta_url) as (meta, store):
        return await run_gc(meta, store, **options)

"""gc and fsck on a volume named by its META-URL, for tests: open the engine and the bucket, run, close.

Contract: `fsck_volume` and `gc_volume` open the volume at `meta_url` as the CLI does
(`jfs.compose.open_meta_and_store`: VolumeError for an unformatted engine), run `run_fsck` / `run_gc`,
passing their keyword arguments through, and close it.
"""

from __future__ import annotations

from typing import Any

from jfs.app.ops.fsck import FsckReport, run_fsck
from jfs.app.ops.gc import GCReport, run_gc
from jfs.compose import open_meta_and_store


async def fsck_volume(meta_url: str, **options: Any) -> FsckReport:
    """`run_fsck` on the volume at `meta_url` (options: path, recursive, repair, threads, progress)."""
    async with open_meta_and_store(meta_url) as (meta, store):
        return await run_fsck(meta, store, **options)


async def gc_volume(meta_url: str, **options: Any) -> GCReport:
    """`run_gc` on the volume at `meta_url` (options: delete, compact, threads, skip_age, progress)."""
    async with open_meta_and_store(meta_url) as (meta, store):
        return await run_gc(meta, store, **options)

"""Test helpers for metadata engines: empty one between tests (`wipe_engine`), and a loaded engine with a
client session on an opened KV (`session_meta`), closed on exit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from jfs.adapters.kv.registry import open_kv
from jfs.app.meta import Meta
from jfs.ports.kv import KV


async def wipe_engine(url: str) -> None:
    """Delete every key of the engine at `url` (`KV.reset`), so the next test formats a fresh volume there."""
    kv = await open_kv(url)
    try:
        await kv.reset()
    finally:
        await kv.close()


@asynccontextmanager
async def session_meta_at(url: str) -> AsyncIterator[Meta]:
    """`session_meta` on the engine at `url`, which is closed on exit too."""
    kv = await open_kv(url)
    try:
        async with session_meta(kv) as meta:
            yield meta
    finally:
        await kv.close()


@asynccontextmanager
async def session_meta(kv: KV) -> AsyncIterator[Meta]:
    """The volume of `kv` loaded, with a session without background jobs; the session is ended on exit
    (`kv` stays open: the caller closes it)."""
    meta = await Meta.load(kv)
    await meta.start_session(background=False)
    try:
        yield meta
    finally:
        await meta.close()

"""Test helper for metadata engines reached by URL: empty one between tests."""

from __future__ import annotations

from jfs.adapters.kv.registry import open_kv


async def wipe_engine(url: str) -> None:
    """Delete every key of the engine at `url` (`KV.reset`), so the next test formats a fresh volume there."""
    kv = await open_kv(url)
    try:
        await kv.reset()
    finally:
        await kv.close()

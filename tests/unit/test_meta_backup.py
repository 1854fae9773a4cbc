"""Automatic metadata backup (`jfs.app.meta_backup`): one claimer per interval, JuiceFS's object name."""

from __future__ import annotations

import asyncio
import gzip
import json

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.meta_backup import backup_key, backup_now, claim
from jfs.testing.data_harness import DataVolume


def test_backup_names_are_juicefs_s() -> None:
    assert backup_key("vol", 1767225600.0) == "vol/meta/dump-2026-01-01-000000.json.gz"


async def test_one_claim_per_interval_among_concurrent_clients() -> None:
    kv = await open_kv("memory://")
    try:
        won = await asyncio.gather(*(claim(kv, 3600, 10_000.0) for _ in range(8)))
        assert won.count(True) == 1
        assert not await claim(kv, 3600, 10_000.0 + 3599)
        assert await claim(kv, 3600, 10_000.0 + 3600)
    finally:
        await kv.close()


async def test_a_backup_is_the_gzipped_dump() -> None:
    async def opener() -> MemoryStore:
        return MemoryStore()

    vol = await DataVolume.create(await open_kv("memory://"), opener)
    try:
        store = MemoryStore()
        key = await backup_now(vol.kv, store, "vol", now=0.0)
        assert key == "vol/meta/dump-1970-01-01-000000.json.gz"
        doc = json.loads(gzip.decompress(await store.get(key)))
        assert {"Setting", "Counters", "FSTree"} <= set(doc)
    finally:
        await vol.close()

"""Automatic metadata backup (`jfs.app.meta_backup`): one claimer per interval, JuiceFS's object name and
rotation, a dump streamed through a temporary file with flat memory."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.file import FileStore
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.meta_backup import backup_key, backup_now, backup_time, claim, expired, thin_backups
from jfs.testing.data_harness import DataVolume

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)


def test_backup_names_are_juicefs_s() -> None:
    assert backup_key("vol", 1767225600.0) == "vol/meta/dump-2026-01-01-000000.json.gz"
    assert backup_time("vol/meta/dump-2026-01-01-000000.json.gz") == datetime(2026, 1, 1, tzinfo=UTC)
    assert backup_time("vol/meta/dump-2026-13-01-000000.json.gz") is None
    assert backup_time("vol/meta/notes.txt") is None


def test_rotation_keeps_two_days_then_one_per_day_week_and_month() -> None:
    """Hourly backups for 150 days: all of the last 2 days stay; before that, the oldest backup of each
    window: daily windows back to 14 days, weekly back to 63, then 30-day windows."""
    times = [NOW - i * H for i in range(150 * 24)]
    doomed = set(expired(times, NOW))
    kept = sorted(set(times) - doomed, reverse=True)
    assert all(t in kept for t in times if t >= NOW - 2 * D)
    bounds = [*range(2, 15), *range(21, 64, 7), 93, 123, 153]
    for newer, older in zip(bounds, bounds[1:], strict=False):
        window = [t for t in times if NOW - older * D <= t < NOW - newer * D]
        if window:
            assert [t for t in kept if t in window] == [min(window)], (newer, older)
    assert len(kept) == 49 + 12 + 7 + 3


def test_rotation_with_gaps_and_without_old_backups() -> None:
    recent = [NOW - H, NOW - 2 * D]  # exactly 2 days old is still "recent"
    assert expired(recent, NOW) == []
    times = [*recent, NOW - 5 * D - H, NOW - 5 * D - 2 * H, NOW - 40 * D, NOW - 41 * D, NOW - 200 * D]
    assert sorted(expired(times, NOW)) == [NOW - 40 * D, NOW - 5 * D - H]
    assert expired([], NOW) == []


async def test_thinning_deletes_only_expired_backups_of_the_volume() -> None:
    store = MemoryStore()
    stamps = [NOW - i * 6 * H for i in range(40)]  # 10 days, 4 a day
    for t in stamps:
        await store.put(backup_key("vol", t.timestamp()), b"x")
    await store.put("vol/meta/other.json", b"keep")
    await store.put(backup_key("vol2", (NOW - 9 * D).timestamp()), b"another volume's")
    doomed = await thin_backups(store, "vol", NOW.timestamp())
    left = [i.key async for i in store.list("")]
    assert "vol/meta/other.json" in left and any(k.startswith("vol2/") for k in left)
    assert not set(doomed) & set(left)
    assert len([k for k in left if k.startswith("vol/meta/dump-")]) == 9 + 8  # 2 days of 4, 1 at -48h, 8 days


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


async def _backup_peak(files: int, tmp: Path, per_dir: int = 500) -> tuple[int, bytes]:
    """(peak bytes allocated while backing up a volume of `files` files, the uncompressed backup)."""
    store = FileStore(str(tmp / "bucket"))
    await store.create_bucket()

    async def opener() -> FileStore:
        return store

    vol = await DataVolume.create(await open_kv("memory://"), opener)
    try:
        for d in range(files // per_dir):
            dino, _ = await vol.meta.mkdir(1, f"dir{d}".encode(), 0o755)
            await asyncio.gather(*(vol.meta.create(dino, f"a-file-with-a-long-name-{i}".encode(), 0o644)
                                   for i in range(per_dir)))
        (tmp / "cache").mkdir()
        (tmp / "cache" / ".backup-meta-999999999.json.gz").write_bytes(b"left by a killed backup")
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            key = await backup_now(vol.kv, store, "vol", workdir=str(tmp / "cache"))
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert os.listdir(tmp / "cache") == []  # no temporary file left, the stale one removed too
        return peak, gzip.decompress(await store.get(key))
    finally:
        await vol.close()


async def test_a_backup_streams_through_a_temp_file_with_flat_memory(tmp_path: Path) -> None:
    """6000 then 24000 files: the dump grows fourfold, the memory held while backing up barely grows (the
    dump is never held whole: streamed into the cache dir, uploaded from the file)."""
    small_peak, small = await _backup_peak(6000, tmp_path / "small")
    big_peak, big = await _backup_peak(24000, tmp_path / "big")
    assert {"Setting", "Counters", "FSTree"} <= set(json.loads(big))
    assert big.count(b'"a-file-with-a-long-name-') == 24000
    assert len(big) > 3.5 * len(small)
    assert big_peak < 1.25 * small_peak, (small_peak, big_peak, len(small), len(big))

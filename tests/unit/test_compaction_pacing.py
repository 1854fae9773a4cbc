"""Background compactions give way to foreground I/O (`Pacer`); on-demand ones, and a background one such a
caller waits for, do not (ADR 0036)."""

from __future__ import annotations

import asyncio
import os

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.memory import MemoryStore
from jfs.ports.objects import ObjectStore
from jfs.testing.data_harness import DataVolume

BS = 64 << 10


async def _fragmented_volume() -> tuple[DataVolume, int]:
    store = MemoryStore("pacing")

    async def opener() -> ObjectStore:
        return store

    vol = await DataVolume.create(await open_kv("memory://"), opener, idle_flush=30.0, max_slice_age=60.0)
    ino = await vol.new_file(b"fragmented")
    h = await vol.dp.open(ino, os.O_RDWR)
    await vol.dp.write(h, 0, b"a" * (4 * BS))
    await vol.dp.flush(h)
    for i in range(6):  # small overwrites: one record each
        await vol.dp.write(h, i * BS + 100, b"b" * 10)
        await vol.dp.flush(h)
    await vol.dp.release(h)
    return vol, ino


async def test_a_background_compaction_waits_while_the_foreground_is_busy_and_not_once_urgent() -> None:
    vol, ino = await _fragmented_volume()
    try:
        dp = vol.dp
        dp.pacer.interval = 30.0  # one 64 KiB block per 30 s while busy
        with dp.pacer.active():
            dp.compactor.schedule(ino, 0)
            await asyncio.sleep(0.2)
            assert dp.compactor.compacted == 0  # the first block went, the second waits its turn
            # A caller that needs the chunk compacted now: the paced one stops waiting, then its own runs.
            await asyncio.wait_for(dp.compactor.compact_chunk(ino, 0), 5)
        assert dp.compactor.compacted >= 1
        assert len(await vol.meta.read_chunk(ino, 0)) == 1
        h = await dp.open(ino)
        data = await dp.read(h, 0, 4 * BS)
        await dp.release(h)
        expected = bytearray(b"a" * (4 * BS))
        for i in range(6):
            if i * BS + 110 <= 4 * BS:
                expected[i * BS + 100 : i * BS + 110] = b"b" * 10
        assert data[: 4 * BS] == bytes(expected)
    finally:
        await vol.close()


async def test_a_background_compaction_runs_freely_when_the_foreground_is_quiet() -> None:
    vol, ino = await _fragmented_volume()
    try:
        vol.dp.pacer.interval = 30.0
        await asyncio.sleep(vol.dp.pacer.quiet)  # the writes above are over
        vol.dp.compactor.schedule(ino, 0)
        await asyncio.wait_for(vol.dp.compactor.drain(), 5)
        assert vol.dp.compactor.compacted == 1 and vol.dp.pacer.waits == 0
    finally:
        await vol.close()


async def test_reads_answered_at_once_count_as_foreground() -> None:
    """`read_now` (the FUSE loop's cached READs, ADR 0038) touches the pacer like `read`: a read phase
    served entirely from the caches keeps a background compaction paced (ADR 0055)."""
    vol, ino = await _fragmented_volume()
    try:
        dp = vol.dp
        h = await dp.open(ino)
        await dp.read(h, 0, 4 * BS)
        await asyncio.sleep(dp.pacer.quiet)
        assert not dp.pacer.busy()
        dp.read_now(h, BS + 50, 100)  # answered or not (this chunk wants compacting: `read` takes it)
        assert dp.pacer.busy()
        await dp.release(h)
    finally:
        await vol.close()

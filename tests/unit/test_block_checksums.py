"""Opt-in block checksums (ADR 0008): the record codec, the setting, and the data path writing, checking,
deleting and compacting checksum records (memory KV, memory store)."""

from __future__ import annotations

import errno
import json
import os
import uuid
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.memory import MemoryStore
from jfs.domain import keys
from jfs.domain.checksums import CRC32, BadSumsRecord, SliceSums, block_crc, encode_sums
from jfs.domain.chunks import block_len
from jfs.domain.settings import InvalidSettings, Settings
from jfs.ports.objects import ObjectStore
from jfs.testing.data_harness import DataVolume

BS = 64 << 10

# ------------------------------------------------------------------------------------------ domain


def test_records_round_trip_and_fit_their_slice() -> None:
    crcs = [block_crc(b"a"), block_crc(b"b" * 100), 0, 0xFFFFFFFF]
    raw = encode_sums(3 * BS + 1, crcs)
    assert len(raw) == 5 + 4 * 4
    sums = SliceSums.decode(raw)
    assert sums == SliceSums(3 * BS + 1, tuple(crcs), CRC32)
    assert sums.fits(3 * BS + 1, BS)
    assert not sums.fits(3 * BS, BS)  # 3 blocks, not 4
    assert not sums.fits(3 * BS + 1, 2 * BS)
    assert block_crc(b"hello") == zlib.crc32(b"hello")


@pytest.mark.parametrize("raw", [b"", b"\x01\x00\x00", b"\x01\x00\x00\x00\x10\x00\x00"])
def test_malformed_records_are_refused(raw: bytes) -> None:
    with pytest.raises(BadSumsRecord):
        SliceSums.decode(raw)


def test_the_setting_is_a_field_juicefs_ignores_and_absent_when_off() -> None:
    off = Settings(name="vol-a")
    assert "JfsBlockChecksum" not in json.loads(off.to_json())
    assert Settings.from_json(off.to_json()).checksum == ""
    on = Settings(name="vol-a", checksum="crc32")
    doc = json.loads(on.to_json())
    assert doc["JfsBlockChecksum"] == "crc32"
    back = Settings.from_json(on.to_json())
    assert back.checksum == "crc32" and "JfsBlockChecksum" not in back.extra
    with pytest.raises(InvalidSettings):
        Settings(name="vol-a", checksum="md5").validate()


def test_checksum_keys_are_outside_every_juicefs_prefix() -> None:
    key = keys.block_sums(123456789)
    assert key.startswith(b"j") and keys.parse_block_sums(key) == 123456789
    # JuiceFS's TKV keys start with an uppercase letter or are "setting": no scan of theirs reaches "j".
    assert key[:1].islower() and not keys.SETTING.startswith(key[:1])


# ------------------------------------------------------------------------------------------ data path


async def _volume(
    store: ObjectStore, *, checksum: bool, compression: str = "none", **overrides: Any
) -> DataVolume:
    async def opener() -> ObjectStore:
        return store

    defaults: dict[str, Any] = {"retry_delay": 0.001, "io_retries": 3, "compact_on_read": False}
    defaults.update(overrides)
    return await DataVolume.create(
        await open_kv("memory://"), opener, compression=compression, checksum=checksum, **defaults
    )


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(f"sums-{uuid.uuid4().hex}")


@pytest.fixture(params=["none", "lz4"])
async def vol(request: pytest.FixtureRequest, store: MemoryStore) -> AsyncIterator[DataVolume]:
    v = await _volume(store, checksum=True, compression=request.param)
    yield v
    await v.close()


async def _file(vol: DataVolume, name: bytes, data: bytes, off: int = 0) -> int:
    return await vol.write_new_file(name, data, off)


async def _raw(vol: DataVolume, key: bytes) -> bytes | None:
    async def body(tx: Any) -> bytes | None:
        return await tx.get(key)  # type: ignore[no-any-return]

    return await vol.kv.read(body)


async def _read_all(vol: DataVolume, ino: int, size: int) -> bytes:
    h = await vol.dp.open(ino)
    try:
        return await vol.dp.read(h, 0, size)
    finally:
        await vol.dp.release(h)


async def _flip(vol: DataVolume, store: MemoryStore, slice_id: int, size: int, index: int, at: int) -> str:
    """Flip one byte of the stored (uncompressed: at `at`; compressed: the last byte) block; returns the key."""
    key = vol.dp.blocks.key(slice_id, index, block_len(size, BS, index))
    raw = bytearray(await store.get(key))
    pos = at if vol.config.compression == "none" else len(raw) - 1
    raw[pos] ^= 0x20
    await store.put(key, bytes(raw))
    return key


async def test_every_slice_gets_a_record_of_its_block_crcs(vol: DataVolume) -> None:
    data = os.urandom(2 * BS + 1000)
    ino = await _file(vol, b"f", data)
    [rec] = await vol.meta.read_chunk(ino, 0)
    sums = SliceSums.decode(await _raw(vol, keys.block_sums(rec.id)) or b"")
    assert sums.size == rec.size == len(data)
    assert sums.crcs == (zlib.crc32(data[:BS]), zlib.crc32(data[BS : 2 * BS]), zlib.crc32(data[2 * BS :]))


async def test_a_flipped_byte_is_eio_with_the_key_logged_never_data(vol: DataVolume, store: MemoryStore) -> None:
    # Compressible text: an LZ4 block keeps long literal runs, whose bytes decode "fine" when flipped.
    data = b"".join(b"line %06d %s\n" % (i, os.urandom(8).hex().encode()) for i in range(9000))[: 3 * BS]
    ino = await _file(vol, b"f", data)
    [rec] = await vol.meta.read_chunk(ino, 0)
    key = await _flip(vol, store, rec.id, rec.size, 1, 1234)
    await vol.restart()  # cold memory cache, fresh checksum index
    h = await vol.dp.open(ino)
    try:
        with structlog.testing.capture_logs() as logs:
            with pytest.raises(OSError) as e:
                await vol.dp.read(h, BS + 4000, 100)  # a small read inside the block: no ranged GET
        assert e.value.errno == errno.EIO
        assert any(ev.get("key") == key and ev["event"] == "block_io_failed" for ev in logs), logs
        assert any(ev["event"] == "block_checksum_mismatch" for ev in logs)
        assert await vol.dp.read(h, 0, BS) == data[:BS]  # the other blocks still read
        assert await vol.dp.read(h, 2 * BS, BS) == data[2 * BS :]
        with pytest.raises(OSError):
            await vol.dp.read(h, 0, len(data))
    finally:
        await vol.dp.release(h)


async def test_without_checksums_nothing_is_recorded_or_looked_up(store: MemoryStore) -> None:
    vol = await _volume(store, checksum=False)
    try:
        data = os.urandom(2 * BS)
        ino = await _file(vol, b"f", data)
        [rec] = await vol.meta.read_chunk(ino, 0)
        assert await _raw(vol, keys.block_sums(rec.id)) is None
        await _flip(vol, store, rec.id, rec.size, 0, 10)
        await vol.restart()
        got = await _read_all(vol, ino, len(data))
        assert got[:10] == data[:10] and got[11:] == data[11:]  # undetected, as in JuiceFS (ADR 0005)
        assert vol.dp.sums.lookups == 0
    finally:
        await vol.close()


async def test_slices_without_a_record_read_as_before(store: MemoryStore) -> None:
    """A slice written by JuiceFS (or before `jfs config --checksum`) has no record: read, and ranged."""
    vol = await _volume(store, checksum=True)
    try:
        data = os.urandom(2 * BS)
        ino = await _file(vol, b"f", data)
        [rec] = await vol.meta.read_chunk(ino, 0)

        async def drop(tx: Any) -> None:
            tx.delete(keys.block_sums(rec.id))

        await vol.kv.txn(drop)
        await vol.restart()
        h = await vol.dp.open(ino)
        try:
            assert await vol.dp.read(h, BS + 3000, 100) == data[BS + 3000 : BS + 3100]
            assert vol.dp.fetcher.ranged_loads == 1
            assert await vol.dp.read(h, 0, len(data)) == data
        finally:
            await vol.dp.release(h)
    finally:
        await vol.close()


async def test_records_go_with_their_slices(vol: DataVolume) -> None:
    ino = await _file(vol, b"f", os.urandom(BS + 10))
    [first] = await vol.meta.read_chunk(ino, 0)
    h = await vol.dp.open(ino, os.O_WRONLY)
    await vol.dp.write(h, 0, os.urandom(BS + 10))  # overwrites everything
    await vol.dp.release(h)
    second = (await vol.meta.read_chunk(ino, 0))[-1]
    await vol.dp.truncate(ino, 0)  # both slices released
    await vol.meta.drain()
    assert await _raw(vol, keys.block_sums(first.id)) is None
    assert await _raw(vol, keys.block_sums(second.id)) is None

    ino2 = await _file(vol, b"g", os.urandom(3000))
    [rec] = await vol.meta.read_chunk(ino2, 0)
    assert await _raw(vol, keys.block_sums(rec.id)) is not None
    await vol.restart()  # no open-file record left: the unlink deletes the inode
    await vol.meta.unlink(1, b"g")
    await vol.meta.drain()
    assert await _raw(vol, keys.block_sums(rec.id)) is None


async def test_compaction_writes_a_record_for_the_new_slice(vol: DataVolume) -> None:
    data = bytearray(os.urandom(2 * BS + 500))
    ino = await _file(vol, b"f", bytes(data))
    for i in range(6):  # six more slices over the first
        patch = os.urandom(300)
        off = i * 20000
        data[off : off + len(patch)] = patch
        h = await vol.dp.open(ino, os.O_WRONLY)
        await vol.dp.write(h, off, patch)
        await vol.dp.release(h)
    old = await vol.meta.read_chunk(ino, 0)
    assert len(old) == 7
    assert await vol.dp.compactor.compact_chunk(ino, 0)
    await vol.meta.drain()
    [new] = await vol.meta.read_chunk(ino, 0)
    sums = SliceSums.decode(await _raw(vol, keys.block_sums(new.id)) or b"")
    assert sums.crcs == (zlib.crc32(data[:BS]), zlib.crc32(data[BS : 2 * BS]), zlib.crc32(data[2 * BS :]))
    for rec in old:
        assert await _raw(vol, keys.block_sums(rec.id)) is None
    await vol.restart()
    assert await _read_all(vol, ino, len(data)) == data
    assert vol.dp.sums.lookups == 1


async def test_gc_deletes_only_orphaned_records(vol: DataVolume) -> None:
    """Orphans appear when a JuiceFS client sharing the engine frees slices itself (it ignores ``jS``)."""
    from jfs.app.ops.gc.deletion import delete_orphan_sums
    from jfs.app.ops.gc.references import collect_references
    from jfs.app.progress import QuietBoard

    ino = await _file(vol, b"f", os.urandom(BS + 1))
    [live] = await vol.meta.read_chunk(ino, 0)
    orphan = keys.block_sums(10**9)

    async def plant(tx: Any) -> None:
        tx.put(orphan, encode_sums(5, [1]))

    await vol.kv.txn(plant)
    refs = await collect_references(vol.kv, QuietBoard())
    assert await delete_orphan_sums(vol.kv, refs) == 1
    assert await _raw(vol, orphan) is None
    assert await _raw(vol, keys.block_sums(live.id)) is not None

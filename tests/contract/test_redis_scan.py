"""Redis: scans answered as two arrays (ADR 0060) — a transaction's first scan through the SCAN script, a
later one through READ's op 's' (validating what the body read before): the same pairs either way, across
more than one MGET chunk, with limits and keys only; an index naming a key without data is an EngineError
on both paths; a first scan is still validated by the commit."""

from __future__ import annotations

import pytest

from jfs.ports.kv import KV, EngineError, Tx

REDIS = pytest.mark.jfs_engines("redis")

N = 9_500  # more than two of the script's 4,000-key MGET chunks


async def _redis(kv: KV) -> None:
    if not hasattr(kv, "_sha") or "scan" not in kv._sha:  # type: ignore[attr-defined]
        pytest.skip("not the Redis adapter")


async def _fill(kv: KV, n: int = N) -> list[tuple[bytes, bytes]]:
    pairs = [(b"s/%06d" % i, b"v%d" % (i * 7)) for i in range(n)]

    async def body(tx: Tx) -> None:
        for k, v in pairs:
            tx.put(k, v)
        tx.put(b"r", b"outside")
        tx.put(b"t", b"outside")

    await kv.txn(body)
    return pairs


@REDIS
async def test_first_scan_matches_a_validated_scan_across_mget_chunks(kv: KV) -> None:
    await _redis(kv)
    pairs = await _fill(kv)

    async def first(tx: Tx) -> list[tuple[bytes, bytes]]:
        return await tx.scan(b"s/", b"s0")  # first round: SCAN

    async def later(tx: Tx) -> list[tuple[bytes, bytes]]:
        await tx.get(b"r")
        return await tx.scan(b"s/", b"s0")  # a later round: READ, validating the get

    assert await kv.read(first) == pairs
    assert await kv.read(later) == pairs


@REDIS
async def test_first_scan_limits_keys_only_and_empty_ranges(kv: KV) -> None:
    await _redis(kv)
    pairs = await _fill(kv)
    assert await kv.read(lambda tx: tx.scan(b"s/", b"s0", limit=4_001)) == pairs[:4_001]
    keys = await kv.read(lambda tx: tx.scan(b"s/", b"s0", keys_only=True))
    assert keys == [(k, b"") for k, _ in pairs]
    assert await kv.read(lambda tx: tx.scan(b"u", b"v")) == []
    assert await kv.read(lambda tx: tx.scan(b"u", b"v", keys_only=True)) == []


    async def later(tx: Tx, **kw: object) -> list[tuple[bytes, bytes]]:
        await tx.get(b"r")
        return await tx.scan(b"s/", b"s0", **kw)  # type: ignore[arg-type]

    assert await kv.read(lambda tx: later(tx, limit=4_001)) == pairs[:4_001]
    assert await kv.read(lambda tx: later(tx, keys_only=True)) == keys
    got = []

    async def pages(tx: Tx) -> None:
        async for pair in tx.scan_iter(b"s/", b"s0", batch=3_000):
            got.append(pair)

    await kv.read(pages)
    assert got == pairs


@REDIS
async def test_index_without_data_is_an_engine_error(kv: KV) -> None:
    await _redis(kv)
    await _fill(kv, 10)
    await kv._call(b"DEL", b"ks/000004")  # type: ignore[attr-defined]  # the index still names it
    with pytest.raises(EngineError, match="out of sync"):
        await kv.read(lambda tx: tx.scan(b"s/", b"s0"))

    async def later(tx: Tx) -> list[tuple[bytes, bytes]]:
        await tx.get(b"r")
        return await tx.scan(b"s/", b"s0")

    with pytest.raises(EngineError, match="out of sync"):
        await kv.read(later)
    # keys only need no data
    assert len(await kv.read(lambda tx: tx.scan(b"s/", b"s0", keys_only=True))) == 10


@REDIS
async def test_a_first_scan_is_validated_by_the_commit(kv: KV) -> None:
    await _redis(kv)
    await _fill(kv, 10)
    tries = 0

    async def body(tx: Tx) -> None:
        nonlocal tries
        tries += 1
        rows = await tx.scan(b"s/", b"s0")
        if tries == 1:  # another writer changes the scanned range before this commit
            await kv.txn(lambda t: _put(t, b"s/000003", b"changed"))
        tx.put(b"count", b"%d" % len(rows))

    await kv.txn(body)
    assert tries == 2
    assert await kv.read(lambda tx: tx.get(b"s/000003")) == b"changed"


async def _put(tx: Tx, key: bytes, value: bytes) -> None:
    tx.put(key, value)


@REDIS
async def test_scan_script_reloaded_after_script_flush(kv: KV) -> None:
    await _redis(kv)
    pairs = await _fill(kv, 50)
    await kv._call(b"SCRIPT", b"FLUSH")  # type: ignore[attr-defined]  # as after a server restart
    assert await kv.read(lambda tx: tx.scan(b"s/", b"s0")) == pairs


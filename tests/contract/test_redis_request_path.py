"""The Redis request path with fewer Python layers (ADR 0067): the RESP client's in-flight accounting
(`_pick` and `_release` written out in `execute_packed`), FOLLOW rounds and commits that send their first
try themselves (a flushed script cache is reloaded, a lost connection handled as before), and read-only
transactions that skip `finish` unless two rounds overlapped (then they are still validated)."""

from __future__ import annotations

import asyncio

import pytest

from jfs.adapters.kv.resp import RespClient
from jfs.ports.kv import KV, Pointer, Tx

REDIS = pytest.mark.jfs_engines("redis")


@REDIS
@pytest.mark.parametrize("connections", [1, 2])
async def test_a_burst_over_max_inflight_gets_every_reply(kv: KV, connections: int) -> None:
    inner = getattr(kv, "inner", kv)
    if not hasattr(inner, "_client"):
        pytest.skip("not the Redis adapter")
    client = RespClient(inner._client.target, connections=connections, max_inflight=3)
    try:
        peak = 0

        async def one(i: int) -> bytes:
            nonlocal peak
            aw = client.execute("ECHO", b"m%d" % i)
            peak = max(peak, client._inflight)
            reply: bytes = await aw
            return reply

        replies = await asyncio.gather(*(one(i) for i in range(200)))
        assert replies == [b"m%d" % i for i in range(200)]
        assert client._inflight == 0 and not client._waiters
        assert peak <= 3
        # A cancelled waiter hands nothing over twice: the count still returns to zero.
        tasks = [asyncio.ensure_future(client.execute("ECHO", b"x")) for _ in range(20)]
        await asyncio.sleep(0)
        for t in tasks[5:15]:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert client._inflight == 0 and not client._waiters
        assert await client.execute("ECHO", b"after") == b"after"
    finally:
        await client.close()


async def _redis(kv: KV) -> KV:
    inner = getattr(kv, "inner", kv)
    if not hasattr(inner, "_sha") or "follow" not in inner._sha:
        pytest.skip("not the Redis adapter")
    return inner  # type: ignore[no-any-return]


POINTER = Pointer(0, 0, 2, prefix=b"t/")


@REDIS
async def test_follow_and_commit_reload_flushed_scripts(kv: KV) -> None:
    inner = await _redis(kv)

    async def put(tx: Tx) -> None:
        tx.put(b"p", b"ab")
        tx.put(b"t/ab", b"target")

    await kv.txn(put)
    await inner._call(b"SCRIPT", b"FLUSH")  # as after a server restart
    assert await kv.read(lambda tx: tx.get_follow([b"p"], POINTER)) == [b"ab", b"target"]
    await inner._call(b"SCRIPT", b"FLUSH")

    async def change(tx: Tx) -> None:
        await tx.get_follow([b"p"], POINTER)
        tx.put(b"t/ab", b"changed")

    await kv.txn(change)  # FOLLOW reloads the scripts; the commit then finds them
    await inner._call(b"SCRIPT", b"FLUSH")

    async def blind(tx: Tx) -> None:
        tx.put(b"q", b"1")

    await kv.txn(blind)  # a commit with no read round before it reloads them itself
    assert await kv.read(lambda tx: tx.get_follow([b"p", b"q"], POINTER)) == [b"ab", b"1", b"changed"]


@REDIS
async def test_a_stale_script_sha_is_replaced_by_the_reload(kv: KV) -> None:
    inner = await _redis(kv)
    sha = inner._sha["follow"]
    inner._sha["follow"] = "0" * 40  # NOSCRIPT on the first try: one reload, then the real script
    assert await kv.read(lambda tx: tx.get_follow([b"nothing"], POINTER)) == [None, None]
    assert inner._sha["follow"] == sha


@REDIS
async def test_overlapping_read_rounds_are_still_validated(kv: KV) -> None:
    inner = await _redis(kv)

    async def put(tx: Tx) -> None:
        tx.put(b"a", b"1")
        tx.put(b"b", b"1")

    await kv.txn(put)
    gate = asyncio.Event()

    async def body(tx: Tx) -> tuple[bytes | None, bytes | None]:
        async def first() -> bytes | None:
            v = await tx.get(b"a")
            await gate.wait()
            return v

        async def second() -> bytes | None:
            return await tx.get(b"b")

        async def meddle() -> None:
            other = RespClient(inner._client.target)
            try:
                await other.execute("SET", b"k" + b"a", b"2")  # another client changes `a` meanwhile
            finally:
                await other.close()
            gate.set()

        a, b, _ = await asyncio.gather(first(), second(), meddle())
        return a, b

    # The two rounds ran at once (neither validated the other's result): the read-only transaction's end
    # validates them, sees `a` changed, and the retry reads the new value.
    tries = 0

    async def counted(tx: Tx) -> tuple[bytes | None, bytes | None]:
        nonlocal tries
        tries += 1
        if tries == 1:
            return await body(tx)
        return await tx.get(b"a"), await tx.get(b"b")

    assert await kv.read(counted) == (b"2", b"1")
    assert tries == 2

"""The RESP client's in-flight accounting (ADR 0067: `_pick` and `_release` written out in
`execute_packed`): with one or two connections and a small `max_inflight`, a burst of commands all get
their own replies, the excess waits its turn, and the count returns to zero."""

from __future__ import annotations

import asyncio

import pytest

from jfs.adapters.kv.resp import RespClient
from jfs.ports.kv import KV

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

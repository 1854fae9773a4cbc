"""Which asyncio path to etcd is cheapest per request? grpc.aio (aetcd's generated stubs) vs the JSON gRPC
gateway over aiohttp. Starts a throwaway single-member etcd; prints ops/s of sequential Range and Txn calls
and of 32 concurrent Range calls. Used for docs/adr/0013-etcd-adapter.md."""

from __future__ import annotations

import asyncio
import base64
import sys
import time

from jfs.testing.etcd_cluster import etcd_cluster

N = 2000


async def grpc_path(endpoint: str) -> dict[str, float]:
    import grpc
    from aetcd.rpc import rpc_pb2 as pb
    from aetcd.rpc import rpc_pb2_grpc as stubs

    ch = grpc.aio.insecure_channel(endpoint)
    kv = stubs.KVStub(ch)
    out = {}
    t = time.perf_counter()
    for i in range(N):
        await kv.Range(pb.RangeRequest(key=b"k%d" % (i % 50)))
    out["range"] = N / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(N // 2):
        k = b"k%d" % (i % 50)
        await kv.Txn(
            pb.TxnRequest(
                compare=[
                    pb.Compare(key=k, target=pb.Compare.MOD, result=pb.Compare.LESS, mod_revision=1 << 60)
                ],
                success=[pb.RequestOp(request_put=pb.PutRequest(key=k, value=b"v" * 100))],
            )
        )
    out["txn"] = (N // 2) / (time.perf_counter() - t)
    t = time.perf_counter()
    await asyncio.gather(*(kv.Range(pb.RangeRequest(key=b"k%d" % (i % 50))) for i in range(N)))
    out["range_concurrent"] = N / (time.perf_counter() - t)
    await ch.close()
    return out


async def gateway_path(endpoint: str) -> dict[str, float]:
    import aiohttp

    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    out = {}
    async with aiohttp.ClientSession(f"http://{endpoint}") as s:

        async def call(path: str, body: dict) -> dict:
            async with s.post(path, json=body) as r:
                return await r.json()

        t = time.perf_counter()
        for i in range(N):
            await call("/v3/kv/range", {"key": b64(b"k%d" % (i % 50))})
        out["range"] = N / (time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(N // 2):
            k = b64(b"k%d" % (i % 50))
            await call(
                "/v3/kv/txn",
                {
                    "compare": [{"key": k, "target": "MOD", "result": "LESS", "mod_revision": str(1 << 60)}],
                    "success": [{"request_put": {"key": k, "value": b64(b"v" * 100)}}],
                },
            )
        out["txn"] = (N // 2) / (time.perf_counter() - t)
        t = time.perf_counter()
        await asyncio.gather(*(call("/v3/kv/range", {"key": b64(b"k%d" % (i % 50))}) for i in range(N)))
        out["range_concurrent"] = N / (time.perf_counter() - t)
    return out


def main() -> None:
    with etcd_cluster(1) as cluster:
        ep = cluster.members[0].endpoint
        for name, fn in (("grpc.aio + aetcd stubs", grpc_path), ("JSON gateway + aiohttp", gateway_path)):
            res = asyncio.run(fn(ep))
            print(f"{name:26s} " + "  ".join(f"{k} {v:7.0f}/s" for k, v in res.items()), flush=True)


if __name__ == "__main__":
    sys.exit(main())

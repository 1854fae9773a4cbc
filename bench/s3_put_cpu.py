"""Process CPU per S3 PUT of one block through `S3Store` against a throwaway SeaweedFS: signed payload
(SHA-256 of the body, ``JFS_S3_SIGNED_PAYLOAD=true``) vs ``UNSIGNED-PAYLOAD`` (the default, ADR 0049),
alternating rounds.

Usage:  .venv/bin/python bench/s3_put_cpu.py [--rounds 6] [--puts 32] [--kib 4096]
        .venv/bin/python bench/s3_put_cpu.py --deletes   (CPU of one 1,000-key DeleteObjects, ours vs boto3)
        .venv/bin/python bench/s3_put_cpu.py --server    (SeaweedFS's CPU per 4 MiB PUT, untyped vs
                                                          application/octet-stream, random vs log-like text)
        .venv/bin/python bench/s3_put_cpu.py --profile   (SeaweedFS's Go CPU profile while 4 threads PUT)

`--server` and `--profile` measure the server, not us (ADR 0068): ``weed server``'s utime+stime around 32 PUTs
of 4 MiB per round (3 rounds alternating), the bytes its data directory grew by per byte written (SeaweedFS
gzips chunks it finds compressible), and its CPU for 32 ranged 4 KiB GETs of those objects; `--profile`
fetches 10 s of ``/debug/pprof/profile`` (``weed server -debug``) and prints the hottest functions and who
calls MD5.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from jfs.adapters.objects.s3 import S3Store  # noqa: E402
from jfs.testing.seaweed import seaweed_s3  # noqa: E402


async def round_cpu(store: S3Store, data: bytes, puts: int, tag: str) -> float:
    t0 = time.process_time()
    for i in range(puts):
        await store.put(f"cpu/{tag}/{i}", data)
    return (time.process_time() - t0) / puts * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--puts", type=int, default=32)
    ap.add_argument("--kib", type=int, default=4096)
    args = ap.parse_args()
    data = os.urandom(args.kib << 10)
    with seaweed_s3(bucket="put-cpu") as s3:
        stores = {}
        for mode, env in (("signed", "true"), ("unsigned", "")):
            os.environ["JFS_S3_SIGNED_PAYLOAD"] = env
            stores[mode] = S3Store(s3.url, access_key=s3.access_key, secret_key=s3.secret_key)
        results: dict[str, list[float]] = {m: [] for m in stores}
        for r in range(args.rounds):
            for mode, store in stores.items():
                results[mode].append(await round_cpu(store, data, args.puts, f"{mode}{r}"))
        for mode, xs in results.items():
            print(f"{mode:>8}: {statistics.median(xs):6.0f} µs CPU per {args.kib} KiB PUT (median of "
                  f"{args.rounds}; {[round(x) for x in xs]})")
        for store in stores.values():
            await store.close()


if __name__ == "__main__" and not {"--deletes", "--server", "--profile"} & set(sys.argv):
    asyncio.run(main())


async def delete_cpu(rounds: int = 3, keys_per_request: int = 1000) -> None:
    """Process CPU of one DeleteObjects request of `keys_per_request` keys: `ObjectRequests.delete_many`
    vs boto3's ``delete_objects`` (the objects are put again before each round)."""
    with seaweed_s3(bucket="del-cpu") as s3:
        store = S3Store(s3.url, access_key=s3.access_key, secret_key=s3.secret_key)
        fast = store._requests
        results: dict[str, list[float]] = {"fast": [], "boto3": []}
        for r in range(rounds):
            for mode in results:
                keys = [f"del/{mode}{r}/chunks/0/1/{i}_0_4096" for i in range(keys_per_request)]
                await asyncio.gather(*(store.put(k, b"x") for k in keys))
                store._requests = fast if mode == "fast" else None
                t0 = time.process_time()
                errors = store._delete_objects(keys)
                results[mode].append((time.process_time() - t0) * 1e3)
                store._requests = fast
                assert not errors
        for mode, xs in results.items():
            print(f"DeleteObjects of {keys_per_request} keys, {mode:>5}: {statistics.median(xs):6.1f} ms CPU "
                  f"(median of {rounds}; {[round(x, 1) for x in xs]})")
        await store.close()


if __name__ == "__main__" and "--deletes" in sys.argv:
    asyncio.run(delete_cpu())


def log_like(size: int) -> bytes:
    """`size` bytes of log lines (text a server's sniffer calls text/plain; gzip takes it to ~30 %)."""
    import random

    rnd = random.Random(1)
    out = bytearray()
    i = 0
    while len(out) < size:
        out += (f"2026-12-06T16:{i % 60:02d}:{i * 7 % 60:02d}.{i % 1000:03d}Z INFO worker-{i % 17} request "
                f"id={rnd.getrandbits(64):016x} path=/api/v1/items/{rnd.randrange(10**6)} "
                f"status={rnd.choice((200, 200, 404, 500))} ms={rnd.random() * 100:.3f}\n").encode()
        i += 1
    return bytes(out[:size])


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def server_cpu(rounds: int = 3, puts: int = 32) -> None:
    """SeaweedFS's CPU per 4 MiB PUT without a Content-Type and with ``application/octet-stream``."""
    from comparison.harness import proc_cpu
    from s3_randrw import weed_pid

    from jfs.adapters.objects.s3_requests import Credentials, ObjectRequests

    blocks = {"random": os.urandom(4 << 20), "text": log_like(4 << 20)}
    with seaweed_s3(bucket="server-cpu") as s3:
        pid = weed_pid(s3.data_dir)
        assert pid is not None
        req = ObjectRequests(s3.endpoint, "server-cpu", "us-east-1", "path",
                             Credentials(s3.access_key, s3.secret_key), max_connections=4, attempts=1,
                             connect_timeout=5, read_timeout=60, verify=None)

        def untyped(key: str, body: bytes) -> None:
            req._request("PutObject", "PUT", key, body, "UNSIGNED-PAYLOAD", {"content-length": str(len(body))})

        for kind, body in blocks.items():
            for r in range(rounds):
                for mode, put in (("untyped", untyped), ("octet-stream", req.put)):
                    d0, c0 = _du(s3.data_dir), sum(proc_cpu(pid) or (0, 0))
                    for i in range(puts):
                        put(f"{kind}/{mode}/{r}/{i}", body)
                    c1, d1 = sum(proc_cpu(pid) or (0, 0)), _du(s3.data_dir)
                    for i in range(puts):
                        req.get(f"{kind}/{mode}/{r}/{i}", "bytes=1048576-1052671")
                    c2 = sum(proc_cpu(pid) or (0, 0))
                    print(f"{kind:6} {mode:12} round {r}: SeaweedFS {(c1 - c0) / puts * 1e3:5.1f} ms CPU per 4 MiB "
                          f"PUT, stored/written {(d1 - d0) / (puts << 22):.2f}, {(c2 - c1) / puts * 1e3:5.2f} ms "
                          f"CPU per ranged 4 KiB GET", flush=True)
        req.close()


def _varint(b: bytes, i: int) -> tuple[int, int]:
    r = shift = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << shift
        shift += 7
        if x < 0x80:
            return r, i


def _fields(b: bytes) -> list[tuple[int, int, Any]]:
    """The (field, wire type, value) of one protobuf message (varint, length-delimited and fixed only)."""
    i, out = 0, []
    while i < len(b):
        key, i = _varint(b, i)
        wire = key & 7
        if wire == 0:
            v, i = _varint(b, i)
        elif wire == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            n = 8 if wire == 1 else 4
            v, i = b[i:i + n], i + n
        out.append((key >> 3, wire, v))
    return out


def _ints(v: Any, wire: int) -> list[int]:
    if wire == 0:
        return [v]
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(x)
    return out


def pprof_top(data: bytes, top: int = 12) -> None:
    """Print the flat top functions of a gzipped pprof CPU profile and the callers of ``crypto/md5.block``."""
    import collections
    import gzip

    msg = _fields(gzip.decompress(data))
    strings = [v.decode("utf-8", "replace") for f, _, v in msg if f == 6]
    funcs = {d.get(1): strings[d.get(2, 0)] for d in ({f: v for f, _, v in _fields(v)} for f, _, v in msg if f == 5)}
    locs: dict[int, list[str]] = {}
    for f, _, v in msg:
        if f == 4:
            fl = _fields(v)
            lines = [{a: c for a, _, c in _fields(vv)} for ff, _, vv in fl if ff == 4]
            locs[next(vv for ff, _, vv in fl if ff == 1)] = [funcs.get(ln.get(1), "?") for ln in lines]
    flat: collections.Counter[str] = collections.Counter()
    md5: collections.Counter[str] = collections.Counter()
    total = 0
    for f, _, v in msg:
        if f != 2:
            continue
        sf = _fields(v)
        names = [n for ff, w, vv in sf if ff == 1 for loc in _ints(vv, w) for n in locs[loc]]
        weight = [x for ff, w, vv in sf if ff == 2 for x in _ints(vv, w)][-1]
        total += weight
        if names:
            flat[names[0]] += weight
            if names[0] == "crypto/md5.block":
                md5[" <- ".join(n.rsplit("/", 1)[-1] for n in names[1:5])] += weight
    print(f"SeaweedFS CPU sampled: {total / 1e9:.2f} s")
    for name, w in flat.most_common(top):
        print(f"  {w / total * 100:5.1f} %  {name}")
    print("callers of crypto/md5.block:")
    for name, w in md5.most_common(6):
        print(f"  {w / total * 100:5.1f} %  {name}")


def server_profile(seconds: int = 10) -> None:
    """SeaweedFS's Go CPU profile while 4 threads PUT random 4 MiB blocks through `ObjectRequests`."""
    import socket
    import threading
    import urllib.request

    from jfs.adapters.objects.s3_requests import Credentials, ObjectRequests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    body = os.urandom(4 << 20)
    with seaweed_s3(bucket="server-profile", extra_args=("-debug", f"-debug.port={port}")) as s3:
        req = ObjectRequests(s3.endpoint, "server-profile", "us-east-1", "path",
                             Credentials(s3.access_key, s3.secret_key), max_connections=8, attempts=1,
                             connect_timeout=5, read_timeout=60, verify=None)
        stop = threading.Event()

        def load(n: int) -> None:
            i = 0
            while not stop.is_set():
                req.put(f"p/{n}/{i}", body)
                i += 1

        threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            url = f"http://127.0.0.1:{port}/debug/pprof/profile?seconds={seconds}"
            with urllib.request.urlopen(url, timeout=seconds + 60) as resp:
                data = resp.read()
        finally:
            stop.set()
            for t in threads:
                t.join()
            req.close()
    pprof_top(data)


if __name__ == "__main__" and "--server" in sys.argv:
    server_cpu()
if __name__ == "__main__" and "--profile" in sys.argv:
    server_profile()

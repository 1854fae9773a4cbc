"""The etcd adapter's own behaviour beyond the KV contract: its key layout, etcd's limits, errors, credentials.

Needs `etcd` (Debian's etcd-server); skipped without it.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import time
import uuid

import pytest

from jfs.adapters.kv.etcd import EtcdKV
from jfs.adapters.kv.registry import open_kv
from jfs.ports.kv import KV, EngineError, EngineUnavailable, Tx
from jfs.testing.etcd_cluster import EtcdCluster, EtcdError, start_etcd_cluster
from jfs.testing.plugin import started_or_skip
from jfs.testing.servers import free_port

MiB = 1 << 20


def url_of(cluster: EtcdCluster, *query: str) -> str:
    return cluster.url(f"t-{uuid.uuid4().hex[:8]}") + ("?" + "&".join(query) if query else "")


@pytest.fixture(scope="module")
def small() -> object:
    """A member with etcd's default request limit and a low --max-txn-ops, to reach the limits cheaply."""
    with started_or_skip(lambda: start_etcd_cluster(1, "--max-txn-ops", "16"), EtcdError) as cluster:
        yield cluster


async def put_all(kv: KV, pairs: list[tuple[bytes, bytes]]) -> None:
    async def body(tx: Tx) -> None:
        for k, v in pairs:
            tx.put(k, v)

    await kv.txn(body)


def etcdctl(cluster: EtcdCluster, *args: str) -> str:
    return subprocess.run(
        ["etcdctl", "--endpoints", cluster.endpoints, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


def etcdctl_raw(cluster: EtcdCluster, *args: str) -> bytes:
    return subprocess.run(
        ["etcdctl", "--endpoints", cluster.endpoints, *args], capture_output=True, check=True, timeout=30
    ).stdout


async def test_keys_are_juicefs_prefixed(etcd_single: EtcdCluster) -> None:
    kv = await open_kv(etcd_single.url("layout"))
    try:
        await kv.reset()
        await put_all(kv, [(b"setting", b"{}"), (b"A\x01\x00\x00\x00\x00\x00\x00\x00I", b"attr")])
        raw = (
            await asyncio.to_thread(etcdctl_raw, etcd_single, "get", "/layout", "--prefix", "--keys-only")
        ).split()
        assert raw == [b"/layout\xfdA\x01\x00\x00\x00\x00\x00\x00\x00I", b"/layout\xfdsetting"]
    finally:
        await kv.reset()
        await kv.close()


async def test_hundreds_of_writes_commit_atomically_within_max_txn_ops(small: EtcdCluster) -> None:
    kv = await open_kv(url_of(small, "max-txn-ops=16"))
    try:
        pairs = [(b"k%05d" % i, b"v") for i in range(300)]  # nested 3 levels deep: 16 → 8 → 4 per level
        await put_all(kv, pairs)

        async def count(tx: Tx) -> int:
            return len(await tx.scan(b"k", b"l", keys_only=True))

        assert await kv.read(count) == 300
        with pytest.raises(EngineError) as caught:  # past what 16 allows even nested (128 holds millions)
            await put_all(kv, [(b"m%05d" % i, b"v") for i in range(1000)])
        assert "--max-txn-ops 16" in str(caught.value)
        assert await kv.read(count) == 300

        async def many_reads(tx: Tx) -> list[bytes | None]:  # batched reads are split at one revision
            return await tx.get_many([k for k, _ in pairs[:100]])

        assert await kv.read(many_reads) == [b"v"] * 100
    finally:
        await kv.close()


async def test_limits_that_cannot_be_split_are_one_clear_error(small: EtcdCluster) -> None:
    kv = await open_kv(url_of(small, "max-txn-ops=16"))
    try:
        with pytest.raises(EngineError) as caught:
            await put_all(kv, [(b"big", b"x" * (2 * MiB))])
        assert "--max-request-bytes" in str(caught.value) and "\n" not in str(caught.value)

        await put_all(kv, [(b"r%03d" % i, b"v") for i in range(40)])

        async def read_many_then_write(tx: Tx) -> None:
            for i in range(40):
                await tx.get(b"r%03d" % i)
            tx.put(b"w", b"1")

        with pytest.raises(EngineError) as caught:
            await kv.txn(read_many_then_write)
        assert "--max-txn-ops" in str(caught.value) and "max-txn-ops=N" in str(caught.value)
    finally:
        await kv.close()


async def test_cached_reads_then_many_store_reads_fit_max_txn_ops(small: EtcdCluster) -> None:
    """The first store read after cached ones carries their compares (ADR 0025): the batch nested in it
    gets what --max-txn-ops leaves, the rest goes in batches of its own, all at one revision."""
    url = url_of(small, "max-txn-ops=16")
    kv = await open_kv(url)
    try:
        cached = [(b"c%03d" % i, b"c") for i in range(10)]
        await put_all(kv, cached)  # now in kv's read cache
        stored = [(b"s%03d" % i, b"s%d" % i) for i in range(30)]
        other = await open_kv(url + "&read-cache=0")
        try:
            await put_all(other, stored)  # not in kv's cache
        finally:
            await other.close()

        async def body(tx: Tx) -> list[bytes | None]:
            first = await tx.get_many([k for k, _ in cached])  # from the cache
            rest = await tx.get_many([k for k, _ in stored])  # 6 checked with the 10 compares, then 16, 8
            tx.put(b"w", b"1")
            return first + rest

        with pytest.raises(EngineError):  # 40 keys read do not fit one commit at 16: the clear error
            await kv.txn(body)

        async def reads(tx: Tx) -> list[bytes | None]:
            return [*await tx.get_many([k for k, _ in cached]), *await tx.get_many([k for k, _ in stored])]

        assert await kv.txn(reads) == [v for _, v in cached + stored]
    finally:
        await kv.close()


async def test_a_servers_lower_max_txn_ops_is_named(small: EtcdCluster) -> None:
    kv = await open_kv(url_of(small))  # the URL claims the default 128; the server allows 16
    try:
        with pytest.raises(EngineError) as caught:
            await put_all(kv, [(b"k%03d" % i, b"v") for i in range(100)])
        assert "?max-txn-ops=N" in str(caught.value)
    finally:
        await kv.close()


async def test_unreachable_members_are_one_line_quickly() -> None:
    ports = [free_port(), free_port()]
    t0 = time.monotonic()
    with pytest.raises(EngineUnavailable) as caught:
        await open_kv(f"etcd://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/x")
    assert time.monotonic() - t0 < 8
    message = str(caught.value)
    assert (
        message.startswith(f"cannot reach etcd at 127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}")
        and "\n" not in message
    )


async def test_one_dead_member_in_the_url_is_skipped(etcd_single: EtcdCluster) -> None:
    url = f"etcd://127.0.0.1:{free_port()},{etcd_single.endpoints},127.0.0.1:{free_port()}/skip"
    for _ in range(3):  # the first member tried is chosen at random
        kv = await open_kv(url)
        try:
            await put_all(kv, [(b"a", b"1")])
        finally:
            await kv.reset()
            await kv.close()


async def test_credentials(tmp_path: object) -> None:
    try:
        cluster = start_etcd_cluster(1)
    except EtcdError as exc:
        pytest.skip(str(exc))
    try:
        etcdctl(cluster, "user", "add", "root:rootpw")
        etcdctl(cluster, "user", "add", "jfs:s3cret")
        etcdctl(cluster, "role", "add", "vol")
        etcdctl(cluster, "role", "grant-permission", "vol", "readwrite", "/vol", "--prefix=true")
        etcdctl(cluster, "user", "grant-role", "jfs", "vol")
        etcdctl(cluster, "auth", "enable")
        host = cluster.endpoints
        with pytest.raises(EngineUnavailable) as caught:
            await open_kv(f"etcd://jfs:wrong@{host}/vol")
        assert "refused" in str(caught.value) and "wrong" not in str(caught.value)
        with pytest.raises(EngineUnavailable):
            await open_kv(f"etcd://{host}/vol")
        kv = await open_kv(f"etcd://jfs:s3cret@{host}/vol")
        try:
            assert "s3cret" not in kv.url
            await put_all(kv, [(b"k", b"v")])

            async def get(tx: Tx) -> bytes | None:
                return await tx.get(b"k")

            assert await kv.read(get) == b"v"
            await kv.reset()
        finally:
            await kv.close()
    finally:
        cluster.stop()


async def test_concurrent_creates_on_three_members(etcd_trio: EtcdCluster) -> None:
    """Clients stuck to different members race on one counter and one directory-like range."""
    url = url_of(etcd_trio)
    kvs = [await open_kv(url) for _ in range(3)]
    try:

        async def create(tx: Tx, i: int) -> None:
            n = len(await tx.scan(b"d/", b"d0", keys_only=True))
            tx.put(b"d/%03d" % i, b"%d" % n)
            tx.add(b"count", 1)

        await asyncio.gather(*(kvs[i % 3].txn(functools.partial(create, i=i)) for i in range(30)))

        async def check(tx: Tx) -> tuple[list[bytes], bytes | None]:
            return [v for _, v in await tx.scan(b"d/", b"d0")], await tx.get(b"count")

        values, count = await kvs[0].read(check)
        assert sorted(int(v) for v in values) == list(range(30))  # serializable: each saw a distinct count
        assert count == (30).to_bytes(8, "little")
    finally:
        await kvs[0].reset()
        for kv in kvs:
            await kv.close()


def test_jfs_mdtest_and_status_on_etcd(etcd_trio: EtcdCluster, tmp_path: object) -> None:
    from jfs.testing.mounts import format_volume, jfs

    url = url_of(etcd_trio)
    format_volume(url, f"{tmp_path}/bucket", "mdvol")
    res = jfs("mdtest", url, "--dirs", "2", "--depth", "1", "--files", "5", "--threads", "4", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "create" in res.stdout and "rename" in res.stdout
    res = jfs("status", url, check=False)
    assert res.returncode == 0 and "mdvol" in res.stdout, res.stdout + res.stderr
    res = jfs("fsck", url, check=False)
    assert res.returncode == 0 and "no problems found" in res.stdout, res.stdout + res.stderr


async def test_many_absent_keys_read_commit_as_range_compares(small: EtcdCluster) -> None:
    """A body that found hundreds of keys absent (a compaction's slice reference records) commits in one
    Txn although their point compares exceed --max-txn-ops: they are compared as ranges, which still
    catch a key created meanwhile by another client."""
    url = url_of(small, "max-txn-ops=16")
    kv, other = await open_kv(url), await open_kv(url + "&read-cache=0")
    try:
        await put_all(kv, [(b"Cchunk", b"v0"), (b"Aother", b"x")])
        refs = [b"K%08d" % i for i in range(0, 240, 2)]  # 120: 8 × --max-txn-ops

        async def release(tx: Tx) -> int:
            assert await tx.get(b"Cchunk") is not None
            found = await tx.get_many(refs)
            for k in refs:
                tx.put(k, b"-1")
            tx.put(b"Cchunk", b"v1")
            return sum(v is not None for v in found)

        assert await kv.txn(release) == 0

        async def count(tx: Tx) -> int:
            return len(await tx.scan(b"K", b"L", keys_only=True))

        assert await kv.read(count) == 120
        await kv.reset()

        attempts = 0
        late = b"K%08d" % 100

        async def racing(tx: Tx) -> int:
            nonlocal attempts
            attempts += 1
            found = await tx.get_many(refs)
            if attempts == 1:  # another client creates one of the keys found absent
                await put_all(other, [(late, b"7")])
            for k in refs:
                tx.put(k, b"-1")
            return sum(v is not None for v in found)

        assert await kv.txn(racing) == 1 and attempts == 2

        async def one(tx: Tx) -> bytes | None:
            return await tx.get(late)

        assert await kv.read(one) == b"-1"
    finally:
        await kv.reset()
        await kv.close()
        await other.close()


async def test_deferred_adds_reach_the_store_within_the_interval_on_read_and_on_close(
    etcd_single: EtcdCluster,
) -> None:
    """`defer_adds` (the volume's usage counters, ADR 0034): the deltas of committed bodies are added
    later in one transaction — after `defer_interval`, before this client reads the counter, at close —
    and never for a body that did not commit."""
    url = url_of(etcd_single)
    kv, other = await open_kv(url), await open_kv(url + "?read-cache=0")
    assert isinstance(kv, EtcdKV)
    counter = b"CusedSpace"
    try:
        kv.defer_adds([counter])

        async def add(tx: Tx) -> None:
            tx.add(counter, 4096)
            tx.put(b"k", b"v")

        async def value(tx: Tx) -> int:
            raw = await tx.get(counter)
            return 0 if raw is None else int.from_bytes(raw, "little", signed=True)

        async def fails(tx: Tx) -> None:
            tx.add(counter, 1)
            raise OSError("body failed")

        kv.defer_interval = 0.05
        await kv.txn(add)
        with pytest.raises(OSError):
            await kv.txn(fails)
        for _ in range(100):
            if await other.read(value) == 4096:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert await other.read(value) == 4096  # flushed in the background, the failed body's add not

        kv.defer_interval = 3600.0
        await kv.txn(add)
        await kv.txn(add)
        assert await other.read(value) == 4096  # not yet in the store
        assert await kv.read(value) == 3 * 4096  # this client's read adds its pending deltas first
        assert await other.read(value) == 3 * 4096

        kv.defer_interval = 3600.0
        await kv.txn(add)
        await kv.txn(add)
        await asyncio.sleep(0.1)
        assert await other.read(value) == 3 * 4096
        await kv.close()
        assert await other.read(value) == 5 * 4096  # close added what was pending
    finally:
        await other.reset()
        await other.close()


async def test_requests_go_to_the_leader(etcd_trio: EtcdCluster) -> None:
    """The first request asks the members which one leads and sticks to it (no forwarding by a follower)."""
    kv = await open_kv(url_of(etcd_trio))
    assert isinstance(kv, EtcdKV)
    try:
        await kv.read(lambda tx: tx.get(b"k"))
        assert kv.client._current == etcd_trio.leader()
    finally:
        await kv.close()

"""The etcd adapter's read cache (docs/adr/0025-etcd-read-cache.md) under the KV port's promises, with two
clients of one volume: client `a` has a key cached, client `b` changes it behind `a`'s back.

Read-write bodies of `a` may be served from the cache, but only an outcome that rests on the current
state counts: a stale entry makes the commit (or the validation of a body that wrote nothing or raised)
fail; that failed request re-read the keys, and the retry uses nothing older. Read-only bodies always
read the store. Runs on one member and on
three (skipped without Debian's etcd-server).
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from jfs.adapters.kv.etcd import EtcdKV
from jfs.adapters.kv.registry import open_kv
from jfs.domain.records import decode_i64, encode_i64
from jfs.ports.kv import KV, RESTARTS, Pointer, Tx
from jfs.testing.kv_contract_support import put_all, read_get, rmw_body

POINTER = Pointer(source=0, start=0, stop=2)  # the value of the source key names the target key


def counted(kv: KV) -> collections.Counter[str]:
    """Count the requests `kv` sends from now on, by method (``Txn-w``: a commit)."""
    assert isinstance(kv, EtcdKV)
    calls: collections.Counter[str] = collections.Counter()
    send = kv.client.call

    async def call(method: str, request: Any, *, write: bool) -> Any:
        calls[method + ("-w" if write else "")] += 1
        return await send(method, request, write=write)

    kv.client.call = call  # type: ignore[method-assign]
    return calls


@pytest_asyncio.fixture(params=["etcd_single", "etcd_trio"])
async def two(request: pytest.FixtureRequest) -> AsyncIterator[tuple[EtcdKV, EtcdKV]]:
    cluster = request.getfixturevalue(request.param)
    url = cluster.url(f"jfs-cache-{uuid.uuid4().hex[:12]}")
    a, b = await open_kv(url), await open_kv(url)
    assert isinstance(a, EtcdKV) and isinstance(b, EtcdKV)
    await a.reset()
    try:
        yield a, b
    finally:
        await a.reset()
        await a.close()
        await b.close()


async def test_stale_entry_fails_the_commit_and_the_retry_reads_the_new_value(two: tuple[EtcdKV, EtcdKV]) -> None:
    a, b = two
    await put_all(a, [(b"k", encode_i64(1))])  # cached by a at its commit
    await put_all(b, [(b"k", encode_i64(5))])
    RESTARTS.reset()
    calls = counted(a)
    await a.txn(rmw_body(b"k"))
    assert decode_i64(await read_get(b, b"k")) == 6  # not 2: the increment applied to b's value
    assert RESTARTS.total == 1
    # the cached attempt sent only its commit, whose failure branch re-read k: the retry only commits
    assert calls == {"Txn-w": 2}
    entry = a.cache.get(b"k")
    assert entry is not None and decode_i64(entry.value) == 6


async def test_a_retry_uses_no_entry_older_than_the_failed_commit(two: tuple[EtcdKV, EtcdKV]) -> None:
    a, b = two
    await put_all(a, [(b"k", b"1"), (b"j", b"1")])  # both cached by a
    await put_all(b, [(b"k", b"2"), (b"j", b"2")])
    tries = 0

    async def body(tx: Tx) -> bytes | None:
        nonlocal tries  # (a test may watch its attempts)
        tries += 1
        k = await tx.get(b"k")
        j = await tx.get(b"j") if tries > 1 else None  # the retry reads a key the first attempt did not
        tx.put(b"out", (k or b"") + (j or b""))
        return j

    RESTARTS.reset()
    assert await a.txn(body) == b"2"  # the stale cached j ("1") was not used: read from the store
    assert RESTARTS.total == 1 and tries == 2 and await read_get(b, b"out") == b"22"


async def test_cached_absence_of_a_key_created_elsewhere_is_not_trusted(two: tuple[EtcdKV, EtcdKV]) -> None:
    a, b = two
    assert await a.txn(lambda tx: tx.get(b"name")) is None  # a caches "absent"
    await put_all(b, [(b"name", b"b's")])

    async def create(tx: Tx) -> None:
        if await tx.get(b"name") is not None:
            raise FileExistsError
        tx.put(b"name", b"a's")

    with pytest.raises(FileExistsError):
        await a.txn(create)
    assert await read_get(b, b"name") == b"b's"


async def test_an_error_raised_on_a_stale_entry_is_not_reported(two: tuple[EtcdKV, EtcdKV]) -> None:
    a, b = two
    assert await a.txn(lambda tx: tx.get(b"k")) is None
    await put_all(b, [(b"k", b"there")])

    async def copy(tx: Tx) -> None:
        value = await tx.get(b"k")
        if value is None:
            raise FileNotFoundError  # true only in a's stale cache
        tx.put(b"copy", value)

    RESTARTS.reset()
    await a.txn(copy)
    assert await read_get(a, b"copy") == b"there" and RESTARTS.total == 1


async def test_a_body_that_writes_nothing_returns_only_validated_values(two: tuple[EtcdKV, EtcdKV]) -> None:
    a, b = two
    await put_all(a, [(b"k", b"1")])
    await put_all(b, [(b"k", b"2")])
    assert await a.txn(lambda tx: tx.get_many([b"k", b"other"])) == [b"2", None]
    calls = counted(a)
    assert await a.txn(lambda tx: tx.get(b"k")) == b"2"  # fresh in the cache now: one compare-only Txn
    assert calls == {"Txn": 1}


async def test_read_only_bodies_never_return_cached_values(two: tuple[EtcdKV, EtcdKV]) -> None:
    a, b = two
    await put_all(a, [(b"k", b"1"), (b"src", b"t1"), (b"t1", b"one"), (b"t2", b"two")])
    await put_all(b, [(b"k", b"2"), (b"src", b"t2")])
    assert await read_get(a, b"k") == b"2"
    # a's cache says src names t1: it fetches t1 beside src, sees src now names t2, and reads t2
    assert await a.read(lambda tx: tx.get_follow([b"src"], POINTER)) == [b"t2", b"two"]
    assert await a.txn(lambda tx: tx.get_follow([b"src"], POINTER)) == [b"t2", b"two"]
    await put_all(b, [(b"src", b"t1")])
    assert await a.txn(lambda tx: tx.get_follow([b"src"], POINTER)) == [b"t1", b"one"]


async def test_a_body_never_mixes_two_versions_of_one_key(two: tuple[EtcdKV, EtcdKV]) -> None:
    a, b = two
    await put_all(a, [(b"r/1", b"old"), (b"r/2", b"x")])
    await put_all(b, [(b"r/1", b"new")])

    async def body(tx: Tx) -> tuple[bytes | None, bytes]:
        single = await tx.get(b"r/1")  # from a's cache: "old"
        scanned = dict(await tx.scan(b"r/", b"r0"))  # from the store: "new"
        tx.put(b"seen", scanned[b"r/1"])
        return single, scanned[b"r/1"]

    single, scanned = await a.txn(body)
    assert single == scanned == b"new"


async def test_a_body_goes_on_only_with_one_consistent_view(two: tuple[EtcdKV, EtcdKV]) -> None:
    a, b = two
    await put_all(a, [(b"x", b"1")])  # x cached by a; y never read by a
    await put_all(b, [(b"y", b"1")])
    await put_all(b, [(b"x", b"2"), (b"y", b"2")])  # the states are (1, 1) and (2, 2), never mixed
    views: list[tuple[bytes | None, bytes | None]] = []

    async def body(tx: Tx) -> None:
        x = await tx.get(b"x")  # a's stale cache: "1"
        y = await tx.get(b"y")  # the store: "2" -- so this read must not return to the body
        views.append((x, y))  # (a test may watch what its attempts saw)
        tx.put(b"sum", (x or b"") + (y or b""))

    await a.txn(body)
    assert views == [(b"2", b"2")] and await read_get(b, b"sum") == b"22"


async def test_one_round_trip_for_a_create_and_a_lookup_of_known_keys(two: tuple[EtcdKV, EtcdKV]) -> None:
    a, _ = two
    await put_all(a, [(b"dir", b"attrs"), (b"ent", b"i1"), (b"i1", b"inode")])
    assert await a.read(lambda tx: tx.get(b"new")) is None  # a lookup that missed
    calls = counted(a)

    async def create(tx: Tx) -> None:
        parent, entry = await tx.get_many([b"dir", b"new"])
        assert parent == b"attrs" and entry is None
        tx.put(b"new", b"i2")
        tx.put(b"dir", b"attrs2")

    await a.txn(create)
    assert calls == {"Txn-w": 1}
    calls.clear()
    assert await a.read(lambda tx: tx.get_follow([b"dir", b"ent"], Pointer(1, 0, 2))) == [
        b"attrs2", b"i1", b"inode",
    ]  # fmt: skip
    assert calls == {"Txn": 1}


async def test_read_cache_off(etcd_single: Any) -> None:
    kv = await open_kv(etcd_single.url(f"jfs-nocache-{uuid.uuid4().hex[:12]}") + "?read-cache=0")
    assert isinstance(kv, EtcdKV)
    try:
        await put_all(kv, [(b"k", encode_i64(1))])
        calls = counted(kv)
        await kv.txn(rmw_body(b"k"))
        assert calls == {"Range": 1, "Txn-w": 1} and len(kv.cache) == 0
    finally:
        await kv.reset()
        await kv.close()


async def test_recent_values_are_what_this_clients_commits_left_and_age_out(two: tuple[EtcdKV, EtcdKV]) -> None:
    """`EtcdKV.recent_value` (ADR 0043): keys this client's commit wrote or compared, with their age; not
    keys it only read; another client's later change is not seen (bounded staleness: the age), but once
    this client reads the newer version, the old one is never handed out again."""
    a, b = two
    await put_all(b, [(b"read", b"r"), (b"cmp", b"c")])
    assert await a.read(lambda tx: tx.get_many([b"read", b"cmp"])) == [b"r", b"c"]
    assert a.recent_value(b"read", 60) is None and a.recent_value(b"cmp", 60) is None  # reads only
    calls = counted(a)

    async def body(tx: Tx) -> None:
        assert await tx.get(b"cmp") == b"c"  # compared by the commit, not written
        tx.put(b"w", b"1")
        tx.delete(b"read")

    await a.txn(body)
    assert calls == {"Txn-w": 1}
    hits = {k: a.recent_value(k, 60) for k in (b"w", b"cmp", b"read")}
    assert calls == {"Txn-w": 1}  # no round trip
    assert [h[0] if h else "miss" for h in hits.values()] == [b"1", b"c", None]
    assert all(h is not None and 0 <= h[1] < 60 for h in hits.values())
    assert a.recent_value(b"w", 0) is None  # older than asked for
    await put_all(b, [(b"w", b"2")])
    stale = a.recent_value(b"w", 60)  # another client's change: not known here yet
    assert stale is not None and stale[0] == b"1"
    assert await a.read(lambda tx: tx.get(b"w")) == b"2"  # now it is
    assert a.recent_value(b"w", 60) is None


async def test_a_failed_commit_leaves_nothing_recent(two: tuple[EtcdKV, EtcdKV]) -> None:
    a, b = two
    await put_all(a, [(b"k", encode_i64(1))])
    await put_all(b, [(b"k", encode_i64(5))])
    tries = 0

    async def body(tx: Tx) -> None:
        nonlocal tries
        tries += 1
        value = await tx.get(b"k")
        if tries == 1:  # the stale entry: this commit fails, its failure branch re-reads k
            assert decode_i64(value) == 1
            assert a.recent_value(b"k", 60) is not None  # a's own put, before b's change was known
        tx.put(b"other", value or b"")

    await a.txn(body)
    assert tries == 2
    hit = a.recent_value(b"k", 60)  # confirmed by the retry's commit: b's version, as of that commit
    assert hit is not None and decode_i64(hit[0]) == 5

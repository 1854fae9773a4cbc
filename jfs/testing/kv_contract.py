"""The KV-port contract (`jfs.ports.kv`): the behaviour every metadata engine must show, run unchanged on each.

Collected by ``tests/contract/test_kv_contract.py`` for the built-in engines (ids ``memory``, ``sqlite``,
``redis``, ``tikv``). To prove YOUR engine (registered under the ``jfs.kv`` entry points), with jfs and
pytest-asyncio installed, run::

    pytest --pyargs jfs.testing.kv_contract --jfs-kv-url 'myengine://host/test'

(from a source tree that is not pip-installed, add ``-p jfs.testing.plugin`` and put the tree on
PYTHONPATH; with the package installed do NOT add it: the ``pytest11`` entry point already loads the
plugin and pytest would refuse to register it twice). With ``--jfs-kv-url`` only the given URLs are
tested (repeat the option for several), and each store is WIPED before every test. Tests of the built-in
adapters themselves (bad addresses, SQLite files, Redis passwords: `jfs.testing.kv_builtin_adapters`,
imported here) are skipped in that mode.

Capability flag: an engine whose read-write transactions never run concurrently (SQLite: one writer)
sets ``serializes_writers = True`` on its KV object. Bodies may only await their `Tx`, so on such an
engine the tests cannot force an interleaving with events; they run the same transactions concurrently
and check the same serializability condition. On every other engine the interleaving is forced
(a body waits, outside the port's rules, for another transaction to commit), so a missing conflict check
fails deterministically.
"""

from __future__ import annotations

import asyncio
import random
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from jfs.domain.records import decode_i64, encode_i64
from jfs.ports.kv import (
    KV,
    Pointer,
    ReadOnlyTransaction,
    TooManyConflicts,
    Tx,
)
from jfs.testing.kv_builtin_adapters import *  # noqa: F403  (collected with this module)
from jfs.testing.kv_contract_support import Boom, Connect, MiB, forced, put_all, read_get, read_scan, rmw_body

pytestmark = pytest.mark.asyncio

# ---- basics -------------------------------------------------------------------------------------------------


async def test_put_get_delete_and_return_value(kv: KV) -> None:
    async def write(tx: Tx) -> str:
        tx.put(b"k1", b"v1")
        tx.put(b"k2", b"v2")
        return "done"

    assert await kv.txn(write) == "done"
    assert await read_get(kv, b"k1") == b"v1"

    async def remove(tx: Tx) -> None:
        tx.delete(b"k1")
        tx.delete(b"never-existed")

    await kv.txn(remove)
    assert await read_get(kv, b"k1") is None
    assert await read_get(kv, b"k2") == b"v2"


async def test_empty_value_is_distinct_from_absent(kv: KV) -> None:
    await put_all(kv, [(b"e", b"")])

    async def body(tx: Tx) -> tuple[Any, ...]:
        return (
            await tx.get(b"e"),
            await tx.get(b"f"),
            await tx.get_many([b"e", b"f"]),
            await tx.scan(b"e", b"g"),
            await tx.exists(b"e", b"e\x00"),
        )

    assert await kv.read(body) == (b"", None, [b"", None], [(b"e", b"")], True)
    assert await kv.txn(body) == (b"", None, [b"", None], [(b"e", b"")], True)


async def test_get_many_keeps_order_duplicates_and_absent(kv: KV) -> None:
    await put_all(kv, [(b"a", b"A"), (b"b", b"B")])

    async def body(tx: Tx) -> tuple[Any, ...]:
        return await tx.get_many([b"b", b"a", b"b", b"zz"]), await tx.get_many([])

    assert await kv.read(body) == ([b"B", b"A", b"B", None], [])


async def test_get_many_of_no_keys_as_the_first_read(kv: KV) -> None:
    """An empty `get_many` is the body's first read (fsck asks for the attributes of no inodes)."""

    async def body(tx: Tx) -> tuple[Any, ...]:
        return await tx.get_many([]), await tx.get(b"none")

    assert await kv.read(body) == ([], None)
    assert await kv.txn(body) == ([], None)


async def test_get_follow_reads_the_key_a_value_names(kv: KV) -> None:
    """A dentry-like value ``type + big-endian number`` names the key ``b"A" + little-endian number + b"I"``."""
    num = 0x0102030405060708
    await put_all(kv, [
        (b"dir", b"D"), (b"ent", b"\x01" + num.to_bytes(8, "big")), (b"short", b"\x01\x02"),
        (b"A" + num.to_bytes(8, "little") + b"I", b"target"),
        (b"dangling", b"\x01" + (7).to_bytes(8, "big")),
    ])  # fmt: skip
    ptr = Pointer(source=1, start=1, stop=9, prefix=b"A", suffix=b"I", reverse=True)

    async def body(tx: Tx) -> list[list[bytes | None]]:
        return [
            await tx.get_follow([b"dir", b"ent"], ptr),
            await tx.get_follow([b"dir", b"missing"], ptr),
            await tx.get_follow([b"dir", b"short"], ptr),
            await tx.get_follow([b"dir", b"dangling"], ptr),
            await tx.get_follow([b"ent"], Pointer(0, 1, 9, b"A", b"I", reverse=True)),
        ]

    assert await kv.read(body) == [
        [b"D", b"\x01" + num.to_bytes(8, "big"), b"target"],
        [b"D", None, None],
        [b"D", b"\x01\x02", None],
        [b"D", b"\x01" + (7).to_bytes(8, "big"), None],
        [b"\x01" + num.to_bytes(8, "big"), b"target"],
    ]

    async def rw(tx: Tx) -> list[bytes | None]:  # read-your-writes, also for the key pointed at
        tx.put(b"ent", b"\x01" + (7).to_bytes(8, "big"))
        tx.put(b"A" + (7).to_bytes(8, "little") + b"I", b"seven")
        first = await tx.get(b"dir")  # a later round: validated reads on engines that do that
        return [first, *await tx.get_follow([b"dir", b"ent"], ptr)]

    assert await kv.txn(rw) == [b"D", b"D", b"\x01" + (7).to_bytes(8, "big"), b"seven"]
    assert await read_get(kv, b"A" + (7).to_bytes(8, "little") + b"I") == b"seven"


async def test_get_follow_target_takes_part_in_conflicts(kv: KV, kv_connect: Connect) -> None:
    """A write to the key a pointer named, committed after the read, conflicts like any read key."""
    other = await kv_connect()
    await put_all(kv, [(b"ptr", b"\x00tgt"), (b"tgt", encode_i64(0))])
    read_done, written = asyncio.Event(), asyncio.Event()
    interleave = forced(kv)
    runs = 0

    async def bump(tx: Tx) -> None:  # tgt := tgt + 1, having reached tgt through the pointer
        nonlocal runs
        runs += 1
        _, value = await tx.get_follow([b"ptr"], Pointer(0, 1, 4))
        if interleave and runs == 1:
            read_done.set()
            await written.wait()
        tx.put(b"tgt", encode_i64(decode_i64(value) + 1))

    async def concurrent(tx: Tx) -> None:
        if interleave:
            await read_done.wait()
        tx.put(b"tgt", encode_i64(decode_i64(await tx.get(b"tgt")) + 10))

    async def writer() -> None:
        await other.txn(concurrent)
        written.set()

    await asyncio.wait_for(asyncio.gather(kv.txn(bump), writer()), 30)
    assert decode_i64(await read_get(kv, b"tgt")) == 11


async def test_ordered_scans_of_binary_keys(kv: KV) -> None:
    keys = [
        b"\x00",
        b"\x00\x00",
        b"a",
        b"a\x00",
        b"a\x00\x00",
        b"a\x01",
        b"a\xff",
        b"a\xff\xff",
        b"b",
        b"\xff",
        b"\xff\xff",
    ]
    shuffled = keys[:]
    random.Random(7).shuffle(shuffled)
    await put_all(kv, [(k, b"v" + k) for k in shuffled])

    async def keys_of(begin: bytes, end: bytes) -> list[bytes]:
        return [k for k, _ in await read_scan(kv, begin, end)]

    assert await keys_of(b"\x00", b"\xff\xff\xff") == keys
    assert await keys_of(b"", b"\x01") == [b"\x00", b"\x00\x00"]
    assert await keys_of(b"a", b"b") == [b"a", b"a\x00", b"a\x00\x00", b"a\x01", b"a\xff", b"a\xff\xff"]
    assert await keys_of(b"a", b"a\x00") == [b"a"]
    assert await keys_of(b"a\x00", b"a\x01") == [b"a\x00", b"a\x00\x00"]
    assert await keys_of(b"a\xff", b"b") == [b"a\xff", b"a\xff\xff"]
    assert await keys_of(b"a\xff", b"a\xff\xff") == [b"a\xff"]
    assert await keys_of(b"\xff", b"\xff\xff\xff") == [b"\xff", b"\xff\xff"]
    assert await keys_of(b"b", b"b") == []
    assert await keys_of(b"b", b"a") == []
    assert await read_scan(kv, b"a", b"a\x01") == [
        (b"a", b"va"),
        (b"a\x00", b"va\x00"),
        (b"a\x00\x00", b"va\x00\x00"),
    ]


async def test_scan_limit(kv: KV) -> None:
    pairs = [(b"l/%02d" % i, b"%d" % i) for i in range(10)]
    await put_all(kv, pairs)
    for limit in (1, 3, 9, 10, 20):
        assert await read_scan(kv, b"l/", b"l0", limit=limit) == pairs[:limit]
    assert await read_scan(kv, b"l/", b"l0", limit=0) == []
    assert await read_scan(kv, b"l/05", b"l0", limit=2) == pairs[5:7]


async def test_scan_keys_only(kv: KV) -> None:
    pairs = [(b"o/%d" % i, b"value-%d" % i) for i in range(5)]
    await put_all(kv, pairs)
    assert await read_scan(kv, b"o/", b"o0", keys_only=True) == [(k, b"") for k, _ in pairs]
    assert await read_scan(kv, b"o/", b"o0", keys_only=True, limit=2) == [(k, b"") for k, _ in pairs[:2]]


async def test_exists(kv: KV) -> None:
    await put_all(kv, [(b"x/1", b"1")])

    async def body(tx: Tx) -> tuple[bool, ...]:
        return await tx.exists(b"x/", b"x0"), await tx.exists(b"x/2", b"x0"), await tx.exists(b"y", b"z")

    assert await kv.read(body) == (True, False, False)


async def test_large_value_of_5_mib(kv: KV) -> None:
    big = random.Random(5).randbytes(5 * MiB)
    await put_all(kv, [(b"big", big)])

    async def read_it(tx: Tx) -> tuple[Any, ...]:
        return await tx.get(b"big"), await tx.get_many([b"big"]), await tx.scan(b"big", b"big\x00")

    assert await kv.read(read_it) == (big, [big], [(b"big", big)])

    async def rewrite(tx: Tx) -> None:  # a read-write body whose read set holds a large value
        value = await tx.get(b"big")
        assert value is not None
        tx.put(b"big2", value[::-1])

    await kv.txn(rewrite)
    assert await read_get(kv, b"big2") == big[::-1]


# ---- atomicity and read-your-writes -------------------------------------------------------------------------


async def test_body_exception_leaves_nothing_and_propagates_unchanged(kv: KV) -> None:
    await put_all(kv, [(b"keep", b"1")])
    boom = Boom("body failed")

    async def body(tx: Tx) -> None:
        tx.put(b"new", b"1")
        tx.delete(b"keep")
        tx.add(b"ctr", 1)
        await tx.incr_by(b"ctr2", 1)
        assert await tx.get(b"new") == b"1"
        raise boom

    with pytest.raises(Boom) as caught:
        await kv.txn(body)
    assert caught.value is boom

    async def state(tx: Tx) -> list[bytes | None]:
        return await tx.get_many([b"keep", b"new", b"ctr", b"ctr2"])

    assert await kv.read(state) == [b"1", None, None, None]

    async def failing_read(tx: Tx) -> None:
        await tx.get(b"keep")
        raise boom

    with pytest.raises(Boom) as caught:
        await kv.read(failing_read)
    assert caught.value is boom


async def test_failing_bodies_do_not_affect_concurrent_ones(kv: KV) -> None:
    async def one(i: int) -> None:
        async def body(tx: Tx) -> None:
            tx.put(b"f/%02d" % i, b"x")
            if i % 2:
                raise Boom(i)

        try:
            await kv.txn(body)
        except Boom as exc:
            assert exc.args == (i,)

    await asyncio.gather(*(one(i) for i in range(20)))
    assert [k for k, _ in await read_scan(kv, b"f/", b"f0")] == [b"f/%02d" % i for i in range(0, 20, 2)]


async def test_read_your_writes(kv: KV) -> None:
    await put_all(
        kv, [(b"r/a", b"1"), (b"r/b", b"2"), (b"r/c", b"3")] + [(b"e/%d" % i, b"e") for i in range(1, 6)]
    )

    async def body(tx: Tx) -> None:
        tx.put(b"r/b", b"B")
        tx.delete(b"r/c")
        tx.put(b"r/d", b"4")
        tx.delete(b"r/zz")
        assert await tx.get(b"r/b") == b"B"
        assert await tx.get(b"r/c") is None
        assert await tx.get(b"r/d") == b"4"
        assert await tx.get_many([b"r/a", b"r/b", b"r/c", b"r/d", b"r/x"]) == [b"1", b"B", None, b"4", None]
        assert await tx.scan(b"r/", b"r0") == [(b"r/a", b"1"), (b"r/b", b"B"), (b"r/d", b"4")]
        assert await tx.scan(b"r/", b"r0", limit=2) == [(b"r/a", b"1"), (b"r/b", b"B")]
        assert await tx.scan(b"r/b", b"r0", limit=2) == [(b"r/b", b"B"), (b"r/d", b"4")]
        assert await tx.scan(b"r/", b"r0", keys_only=True) == [(b"r/a", b""), (b"r/b", b""), (b"r/d", b"")]
        assert not await tx.exists(b"r/c", b"r/d")
        assert await tx.exists(b"r/d", b"r/e")
        # deletes ahead of the limit must not shorten the result
        tx.delete(b"e/1")
        tx.delete(b"e/2")
        assert await tx.scan(b"e/", b"e0", limit=2) == [(b"e/3", b"e"), (b"e/4", b"e")]
        assert await tx.exists(b"e/", b"e0")
        for k in (b"r/a", b"r/b", b"r/d"):
            tx.delete(k)
        assert not await tx.exists(b"r/", b"r0")
        assert await tx.scan(b"r/", b"r0") == []
        tx.put(b"r/a", b"again")
        assert await tx.scan(b"r/", b"r0") == [(b"r/a", b"again")]

    await kv.txn(body)
    assert await read_scan(kv, b"r/", b"r0") == [(b"r/a", b"again")]
    assert await read_scan(kv, b"e/", b"e0") == [(b"e/%d" % i, b"e") for i in range(3, 6)]


# ---- counters -----------------------------------------------------------------------------------------------


async def test_incr_by(kv: KV) -> None:
    async def body(tx: Tx) -> list[int]:
        out = [await tx.incr_by(b"c", -1), await tx.incr_by(b"c", 0), await tx.incr_by(b"c", 2)]
        assert await tx.get(b"c") == encode_i64(1)
        return out

    assert await kv.txn(body) == [-1, -1, 1]
    assert await read_get(kv, b"c") == encode_i64(1)

    async def read_zero(tx: Tx) -> int:
        return await tx.incr_by(b"c", 0)

    assert await kv.txn(read_zero) == 1


async def test_add_applies_at_commit(kv: KV) -> None:
    async def body(tx: Tx) -> None:
        tx.add(b"n", 5)
        tx.add(b"n", -2)
        assert await tx.get(b"n") is None  # the effect of `add` is not visible before commit
        tx.put(b"p", encode_i64(10))
        tx.add(b"p", 5)

    await kv.txn(body)
    assert decode_i64(await read_get(kv, b"n")) == 3
    assert decode_i64(await read_get(kv, b"p")) == 15

    async def down(tx: Tx) -> None:
        tx.add(b"n", -10)

    await kv.txn(down)
    assert await read_get(kv, b"n") == encode_i64(-7)


async def test_concurrent_adds_from_two_connections_sum_exactly(kv: KV, kv_connect: Connect) -> None:
    other = await kv_connect()

    async def body(tx: Tx) -> None:
        tx.add(b"used", 1)
        tx.add(b"free", -1)

    await asyncio.gather(*((kv if i % 2 else other).txn(body) for i in range(100)))
    assert [decode_i64(v) for v in await kv.read(lambda tx: tx.get_many([b"used", b"free"]))] == [100, -100]


# ---- isolation ----------------------------------------------------------------------------------------------


async def _increment(kv: KV, key: bytes) -> None:
    async def body(tx: Tx) -> None:
        tx.put(key, encode_i64(decode_i64(await tx.get(key)) + 1))

    await kv.txn(body)


async def test_concurrent_read_modify_write_loses_no_update(kv: KV) -> None:
    await asyncio.gather(*(_increment(kv, b"rmw") for _ in range(50)))
    assert decode_i64(await read_get(kv, b"rmw")) == 50


async def test_concurrent_read_modify_write_across_two_connections(kv: KV, kv_connect: Connect) -> None:
    other = await kv_connect()
    await asyncio.gather(*(_increment(kv if i % 2 else other, b"rmw2") for i in range(50)))
    assert decode_i64(await read_get(other, b"rmw2")) == 50


async def test_write_skew_is_prevented(kv: KV, kv_connect: Connect) -> None:
    """T1: y := x + 1, T2: x := y + 1, both from 0. Serial orders give (x, y) = (2, 1) or (1, 2); (1, 1) is skew."""
    other = await kv_connect()
    await put_all(kv, [(b"x", encode_i64(0)), (b"y", encode_i64(0))])
    t1_read, t2_read = asyncio.Event(), asyncio.Event()
    interleave = forced(kv)

    async def t1(tx: Tx) -> None:
        x = decode_i64(await tx.get(b"x"))
        if interleave:
            t1_read.set()
            await t2_read.wait()
        tx.put(b"y", encode_i64(x + 1))

    async def t2(tx: Tx) -> None:
        y = decode_i64(await tx.get(b"y"))
        if interleave:
            t2_read.set()
            await t1_read.wait()
        tx.put(b"x", encode_i64(y + 1))

    await asyncio.wait_for(asyncio.gather(kv.txn(t1), other.txn(t2)), 30)
    final = [decode_i64(v) for v in await kv.read(lambda tx: tx.get_many([b"x", b"y"]))]
    assert final in ([2, 1], [1, 2]), f"write skew: {final}"


@pytest.mark.parametrize("reader", ["scan", "scan_limit", "exists"])
async def test_phantom_insert_conflicts_with_scanned_range(kv: KV, kv_connect: Connect, reader: str) -> None:
    """T1 records what it saw of a range; T2 reads that record, then inserts d/2 into the range.

    Serializable outcomes: T1 first (T2 saw T1's record) or T2 first (T1 saw d/2). With `limit` the range
    that counts is the one up to the last key returned (d/2 lands inside it).
    """
    other = await kv_connect()
    await put_all(kv, [(b"d/1", b""), (b"d/3", b""), (b"d/5", b"")])
    scanned, inserted = asyncio.Event(), asyncio.Event()
    interleave = forced(kv)
    attempts = 0

    async def t1(tx: Tx) -> None:
        nonlocal attempts
        attempts += 1
        if reader == "scan":
            seen = b"%d" % len(await tx.scan(b"d/", b"d0"))
        elif reader == "scan_limit":
            seen = (await tx.scan(b"d/", b"d0", limit=2))[-1][0]
        else:
            seen = b"%d" % await tx.exists(b"d/2", b"d/3")
        if interleave:
            scanned.set()
            await inserted.wait()
        tx.put(b"seen", seen)

    async def t2(tx: Tx) -> None:
        tx.put(b"t2-saw", await tx.get(b"seen") or b"nothing")
        tx.put(b"d/2", b"")

    async def insert() -> None:
        if interleave:
            await scanned.wait()
        await other.txn(t2)
        inserted.set()

    await asyncio.wait_for(asyncio.gather(kv.txn(t1), insert()), 30)
    t2_saw, seen = await kv.read(lambda tx: tx.get_many([b"t2-saw", b"seen"]))
    after_insert = {"scan": b"4", "scan_limit": b"d/2", "exists": b"1"}[reader]
    assert t2_saw != b"nothing" or seen == after_insert, f"phantom: T1 saw {seen!r} although T2 came first"
    if interleave:
        assert attempts >= 2 and seen == after_insert


@pytest.mark.parametrize("reader", ["scan", "exists"])
async def test_range_write_skew_is_prevented(kv: KV, kv_connect: Connect, reader: str) -> None:
    """T1 looks at range a/ and inserts into b/; T2 looks at b/ and inserts into a/.

    In any serial order the second one sees the first one's insert; both seeing an empty range is a phantom
    anomaly that point-read checks alone cannot catch (no key either one read was ever written).
    """
    other = await kv_connect()
    looked = {b"a/": asyncio.Event(), b"b/": asyncio.Event()}
    interleave = forced(kv)

    def body(mine: bytes, theirs: bytes) -> Callable[[Tx], Awaitable[None]]:
        async def run(tx: Tx) -> None:
            if reader == "scan":
                seen = b"%d" % len(await tx.scan(mine, mine[:-1] + b"0"))
            else:
                seen = b"%d" % await tx.exists(mine, mine[:-1] + b"0")
            if interleave:
                looked[mine].set()
                await looked[theirs].wait()
            tx.put(theirs + b"from-" + mine[:-1], seen)

        return run

    await asyncio.wait_for(asyncio.gather(kv.txn(body(b"a/", b"b/")), other.txn(body(b"b/", b"a/"))), 30)
    seen = await kv.read(lambda tx: tx.get_many([b"b/from-a", b"a/from-b"]))
    assert sorted(v or b"" for v in seen) == [b"0", b"1"], f"range write skew: both saw an empty range {seen}"


async def test_read_only_transaction_sees_one_state(kv: KV, kv_connect: Connect) -> None:
    """Writers move 1 from x to y keeping x + y == 0; a reader must never see a broken sum."""
    other = await kv_connect()
    await put_all(kv, [(b"x", encode_i64(5)), (b"y", encode_i64(-5))])
    read_x, moved = asyncio.Event(), asyncio.Event()
    interleave = forced(kv)

    async def move(tx: Tx) -> None:
        x, y = (decode_i64(v) for v in await tx.get_many([b"x", b"y"]))
        tx.put(b"x", encode_i64(x - 1))
        tx.put(b"y", encode_i64(y + 1))

    async def reader(tx: Tx) -> int:
        x = decode_i64(await tx.get(b"x"))
        if interleave:
            read_x.set()
            await moved.wait()
        else:  # widen the window in which a concurrent writer could slip in
            for _ in range(50):
                await tx.get(b"x")
        return x + decode_i64(await tx.get(b"y"))

    async def writer() -> None:
        if interleave:
            await read_x.wait()
            await other.txn(move)
            moved.set()
        else:
            await asyncio.gather(*(other.txn(move) for _ in range(100)))

    async def readers() -> list[int]:
        return list(await asyncio.gather(*(kv.read(reader) for _ in range(1 if interleave else 100))))

    sums, _ = await asyncio.wait_for(asyncio.gather(readers(), writer()), 30)
    assert set(sums) == {0}


@pytest.mark.parametrize("op", ["put", "delete", "add", "incr_by"])
async def test_read_only_transaction_rejects_writes(kv: KV, op: str) -> None:
    async def body(tx: Tx) -> None:
        if op == "put":
            tx.put(b"w", b"1")
        elif op == "delete":
            tx.delete(b"w")
        elif op == "add":
            tx.add(b"w", 1)
        else:
            await tx.incr_by(b"w", 1)

    with pytest.raises(ReadOnlyTransaction):
        await kv.read(body)
    assert await read_get(kv, b"w") is None


async def test_too_many_conflicts_when_retries_run_out(kv: KV, kv_connect: Connect) -> None:
    """Optimistic engines: a forced conflict with max_retries=1 raises TooManyConflicts.

    Engines that serialize writers cannot conflict on data: there the expectation is the opposite — even
    max_retries=1 suffices for concurrent read-modify-writes (their lock-wait conflicts are tested per engine).
    """
    other = await kv_connect()
    if not forced(kv):
        await asyncio.gather(
            *((kv if i % 2 else other).txn(rmw_body(b"k"), max_retries=1) for i in range(20))
        )
        assert decode_i64(await read_get(kv, b"k")) == 20
        return
    await put_all(kv, [(b"k", encode_i64(1))])
    read, written = asyncio.Event(), asyncio.Event()

    async def slow(tx: Tx) -> None:
        value = decode_i64(await tx.get(b"k"))
        read.set()
        await written.wait()
        tx.put(b"k", encode_i64(value + 1))

    async def blind(tx: Tx) -> None:
        tx.put(b"k", encode_i64(100))

    async def interfere() -> None:
        await read.wait()
        await other.txn(blind)
        written.set()

    results = await asyncio.wait_for(
        asyncio.gather(kv.txn(slow, max_retries=1), interfere(), return_exceptions=True), 30
    )
    assert isinstance(results[0], TooManyConflicts), results
    assert await read_get(kv, b"k") == encode_i64(100)


# ---- streaming ----------------------------------------------------------------------------------------------


async def test_scan_iter_small_batches(kv: KV) -> None:
    pairs = [(b"i/%02d" % i, b"%d" % i) for i in range(10)]
    await put_all(kv, pairs + [(b"i.", b"before"), (b"i0", b"after")])

    async def body(tx: Tx) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
        return [p async for p in tx.scan_iter(b"i/", b"i0", batch=3)], [
            p async for p in tx.scan_iter(b"j", b"k")
        ]

    assert await kv.read(body) == (pairs, [])


async def test_scan_iter_streams_100k_keys_in_flat_memory(kv: KV) -> None:
    n, per_txn, value = 100_000, 5_000, b"v" * 200
    for start in range(0, n, per_txn):
        await put_all(kv, [(b"s/%08d" % i, value) for i in range(start, start + per_txn)])
    await put_all(kv, [(b"s.", b"outside"), (b"s0", b"outside")])

    async def body(tx: Tx) -> tuple[int, bool]:
        count, ordered, previous = 0, True, b""
        async for key, v in tx.scan_iter(b"s/", b"s0", batch=1000):
            ordered = ordered and key > previous and v == value
            previous = key
            count += 1
        return count, ordered

    tracemalloc.start()
    try:
        count, ordered = await kv.read(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (count, ordered) == (n, True)
    # materializing the range would take ~30 MiB of Python objects
    assert peak < 12 * MiB, f"scan_iter peak memory {peak / MiB:.1f} MiB"

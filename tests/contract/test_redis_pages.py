"""The Redis adapter's native page reads (`PageReadingKV.read_pages`, `RangeFollowingKV.follow_range`): the same
pairs as a consistent range read, pointers followed (values of other shapes too), keys deleted between the
commands left out, an index naming a key without data reported as by the RANGES script."""

from __future__ import annotations

import functools
import random

import pytest

from jfs.adapters.kv import redis_batch
from jfs.ports.kv import KV, EngineError, PageReadingKV, Pointer, RangeFollowingKV, RangeReadingKV, Tx

REDIS = pytest.mark.jfs_engines("redis")
POINTER = Pointer(source=0, start=1, stop=3, prefix=b"t/", suffix=b"!", reverse=True)


async def _fill(kv: KV, pairs: dict[bytes, bytes]) -> None:
    async def body(tx: Tx) -> None:
        for k, v in pairs.items():
            tx.put(k, v)

    await kv.txn(body)


async def _pages(kv: KV, begin: bytes, end: bytes, limit: int) -> list[list[tuple[bytes, bytes]]]:
    assert isinstance(kv, PageReadingKV)
    return [page async for page in kv.read_pages(begin, end, limit)]


@REDIS
async def test_read_pages_equal_the_consistent_range_read(kv: KV) -> None:
    assert isinstance(kv, PageReadingKV) and isinstance(kv, RangeReadingKV)
    await _fill(kv, {b"p/%04d" % i: b"v%d" % i for i in range(50)} | {b"q": b"outside"})
    pages = await _pages(kv, b"p/", b"p0", 7)
    assert [len(p) for p in pages] == [7] * 7 + [1]
    after = b"p/"
    for page in pages:
        assert page == (await kv.read_ranges([(after, b"p0")], 7))[0]
        after = page[-1][0] + b"\x00"
    assert [pair for p in pages for pair in p] == [(b"p/%04d" % i, b"v%d" % i) for i in range(50)]
    assert await _pages(kv, b"x", b"y", 7) == []
    assert [len(p) for p in await _pages(kv, b"p/", b"p0", 25)] == [25, 25]  # no empty page at the end


@REDIS
async def test_read_pages_report_an_index_without_data(kv: KV) -> None:
    await _fill(kv, {b"p/a": b"1", b"p/b": b"2"})
    await kv._client.execute(b"DEL", b"kp/b")  # type: ignore[attr-defined]  # the index keeps naming it
    with pytest.raises(EngineError, match="out of sync"):
        await _pages(kv, b"p/", b"p0", 10)


@REDIS
async def test_follow_range_follows_each_value(kv: KV) -> None:
    assert isinstance(kv, RangeFollowingKV)
    await _fill(kv, {b"d/a": b"\x01AB", b"d/b": b"\x01CD", b"d/c": b"\x01EF", b"t/BA!": b"ba", b"t/DC!": b"dc",
                     b"head": b"h"})
    got = await kv.follow_range(b"d/", b"d0", 10, POINTER, (b"head", b"nothing"))
    assert got.keys == [b"d/a", b"d/b", b"d/c"] and got.values == [b"\x01AB", b"\x01CD", b"\x01EF"]
    assert got.targets == [b"ba", b"dc", None] and got.extra == [b"h", None] and got.last is None
    page = await kv.follow_range(b"d/", b"d0", 2, POINTER)
    assert page.keys == [b"d/a", b"d/b"] and page.last == b"d/b" and page.extra == []
    # values of other lengths (one too short to hold a pointer): followed one by one
    await _fill(kv, {b"d/b": b"\x01CDxx", b"d/c": b"\x01"})
    got = await kv.follow_range(b"d/", b"d0", 10, POINTER, (b"head",))
    assert got.targets == [b"ba", b"dc", None] and got.extra == [b"h"]


@REDIS
async def test_follow_range_leaves_out_a_key_deleted_between_the_commands(kv: KV) -> None:
    await _fill(kv, {b"d/a": b"\x01AB", b"d/b": b"\x01CD", b"t/BA!": b"ba"})
    await kv._client.execute(b"DEL", b"kd/b")  # type: ignore[attr-defined]  # as if deleted after the listing
    got = await kv.follow_range(b"d/", b"d0", 10, POINTER)
    assert got.keys == [b"d/a"] and got.targets == [b"ba"]


@REDIS
async def test_read_pages_neither_skip_nor_repeat_while_other_clients_write(kv: KV, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages are walked by rank (SORT_RO … LIMIT); keys inserted and deleted before the scan's position
    between two pages move the ranks, and the anchor check keeps every page starting right after the
    last key yielded."""
    assert isinstance(kv, PageReadingKV)
    rng = random.Random(17)
    native = redis_batch.native_pages
    untrusted: list[bytes] = []

    def counted(kv_: object, begin: bytes, end: bytes, limit: int):  # type: ignore[no-untyped-def]
        untrusted.append(begin)
        return native(kv_, begin, end, limit)  # type: ignore[arg-type]

    monkeypatch.setattr(redis_batch, "native_pages", counted)
    for _ in range(12):
        await kv._client.execute(b"FLUSHDB")  # type: ignore[attr-defined]
        steady = {b"p/%04d" % i: b"v%d" % i for i in range(0, 400, 2)}
        await _fill(kv, steady | {b"a": b"before", b"q": b"after"})
        yielded: list[bytes] = []
        churn = {b"p/%04d" % i for i in range(1, 400, 2)}  # odd keys come and go
        async for page in kv.read_pages(b"p/", b"p0", rng.choice([3, 7, 16, 50])):
            assert page and all(b"p/" <= k < b"p0" for k, _ in page)
            yielded += [k for k, _ in page]
            here = page[-1][0]
            ins = rng.sample(sorted(churn), rng.randrange(0, 30))
            await _fill(kv, {k: b"x" for k in ins} | {b"a%d" % rng.randrange(99): b"y"})
            for k in [k for k in rng.sample(sorted(steady), min(10, len(steady))) if k < here]:
                await kv.txn(functools.partial(_delete, key=k))
                del steady[k]
        assert yielded == sorted(set(yielded))  # ascending, none repeated
        assert set(steady) <= set(yielded)  # every key present throughout was read
    assert untrusted  # the ranks did move under the scan (and those pages were read the native way)


async def _delete(tx: Tx, key: bytes) -> None:
    tx.delete(key)


@REDIS
async def test_read_pages_fall_back_to_native_reads_when_sort_is_refused(kv: KV, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(kv, PageReadingKV)
    await _fill(kv, {b"p/%04d" % i: b"v%d" % i for i in range(30)})
    real = kv._read  # type: ignore[attr-defined]
    refused: list[bytes] = []

    async def read(*args):  # type: ignore[no-untyped-def]
        if args[0] in (b"SORT_RO", b"SORT"):
            refused.append(args[0])
            raise EngineError(f"ERR unknown command '{args[0].decode()}'" if args[0] == b"SORT_RO"
                              else "NOPERM this user has no permissions to access one of the keys")
        return await real(*args)

    monkeypatch.setattr(kv, "_read", read)
    pages = await _pages(kv, b"p/", b"p0", 7)
    assert [pair for p in pages for pair in p] == [(b"p/%04d" % i, b"v%d" % i) for i in range(30)]
    assert refused == [b"SORT_RO", b"SORT"] and kv._sort is False  # type: ignore[attr-defined]
    assert await _pages(kv, b"p/", b"p0", 7) == pages and refused == [b"SORT_RO", b"SORT"]  # not asked again


@REDIS
async def test_read_pages_bounds_and_small_pages(kv: KV) -> None:
    """`begin` itself is read, `end` itself is not, a range at either end of the index or between keys
    (no pair) reads right, and pages of one pair are anchored like any other."""
    every = {b"%c" % c: b"v%c" % c for c in b"bcdefgh"}
    await _fill(kv, every)

    async def flat(begin: bytes, end: bytes, limit: int) -> list[bytes]:
        return [k for p in await _pages(kv, begin, end, limit) for k, _ in p]

    for limit in (1, 2, 3, 100):
        assert await flat(b"b", b"h", limit) == [b"b", b"c", b"d", b"e", b"f", b"g"]
        assert await flat(b"", b"\xff", limit) == sorted(every)
        assert await flat(b"a", b"c", limit) == [b"b"]
        assert await flat(b"g", b"z", limit) == [b"g", b"h"]
        assert await flat(b"c\x00", b"d", limit) == []
        assert await flat(b"z", b"zz", limit) == []
    assert [len(p) for p in await _pages(kv, b"b", b"h", 2)] == [2, 2, 2]
    assert all(v == b"v" + k for p in await _pages(kv, b"", b"\xff", 3) for k, v in p)


@REDIS
async def test_read_pages_check_the_shape_of_the_first_sort_reply(kv: KV, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Redis-compatible server that takes SORT but ignores its GET patterns (members only) is noticed on
    the first reply (its values are not what MGET reads) and read by the native commands."""
    await _fill(kv, {b"p/%04d" % i: b"v%d" % i for i in range(30)})
    real = kv._read  # type: ignore[attr-defined]

    async def read(*args):  # type: ignore[no-untyped-def]
        if args[0] == b"SORT_RO":
            args = args[:args.index(b"GET")]
        return await real(*args)

    monkeypatch.setattr(kv, "_read", read)
    pages = await _pages(kv, b"p/", b"p0", 7)
    assert [pair for p in pages for pair in p] == [(b"p/%04d" % i, b"v%d" % i) for i in range(30)]
    assert kv._sort is False  # type: ignore[attr-defined]
    monkeypatch.setattr(kv, "_read", real)
    kv._sort = None  # type: ignore[attr-defined]
    assert await _pages(kv, b"p/", b"p0", 7) == pages and kv._sort == b"SORT_RO"  # type: ignore[attr-defined]

"""The Redis adapter's native page reads (`PageReadingKV.read_pages`, `RangeFollowingKV.follow_range`): the same
pairs as a consistent range read, pointers followed (values of other shapes too), keys deleted between the
commands left out, an index naming a key without data reported as by the RANGES script."""

from __future__ import annotations

import pytest

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

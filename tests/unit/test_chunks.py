"""Chunk/block arithmetic and block object keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jfs.domain.chunks import (
    CHUNK_SIZE,
    DEFAULT_BLOCK_SIZE,
    block_count,
    block_key,
    block_len,
    blocks_for_range,
    chunk_index,
    parse_block_key,
    slice_block_keys,
    split_range,
    valid_block,
)

MIB = 1 << 20


def test_constants() -> None:
    assert CHUNK_SIZE == 64 * MIB
    assert DEFAULT_BLOCK_SIZE == 4 * MIB


def test_chunk_index() -> None:
    assert chunk_index(0) == 0
    assert chunk_index(CHUNK_SIZE - 1) == 0
    assert chunk_index(CHUNK_SIZE) == 1
    assert chunk_index(5 * CHUNK_SIZE + 7) == 5
    with pytest.raises(ValueError):
        chunk_index(-1)


def test_split_range_at_chunk_boundaries() -> None:
    assert split_range(CHUNK_SIZE - 10, 30) == [(0, CHUNK_SIZE - 10, 10), (1, 0, 20)]
    assert split_range(CHUNK_SIZE, CHUNK_SIZE) == [(1, 0, CHUNK_SIZE)]
    assert split_range(100, 0) == []
    assert split_range(1, 2 * CHUNK_SIZE) == [(0, 1, CHUNK_SIZE - 1), (1, 0, CHUNK_SIZE), (2, 0, 1)]


@given(st.integers(0, 10 * CHUNK_SIZE), st.integers(0, 3 * CHUNK_SIZE))
def test_split_range_pieces_tile_the_range(offset: int, length: int) -> None:
    at = offset
    for indx, pos, n in split_range(offset, length):
        assert indx * CHUNK_SIZE + pos == at
        assert 0 < n and pos + n <= CHUNK_SIZE
        at += n
    assert at == offset + length


def test_block_sizes() -> None:
    assert block_count(0, DEFAULT_BLOCK_SIZE) == 0
    assert block_count(1, DEFAULT_BLOCK_SIZE) == 1
    assert block_count(4 * MIB, DEFAULT_BLOCK_SIZE) == 1
    assert block_count(4 * MIB + 1, DEFAULT_BLOCK_SIZE) == 2
    assert block_len(10 * MIB, 4 * MIB, 0) == 4 * MIB
    assert block_len(10 * MIB, 4 * MIB, 2) == 2 * MIB
    with pytest.raises(ValueError):
        block_len(10 * MIB, 4 * MIB, 3)
    with pytest.raises(ValueError):
        block_count(10, 0)


@given(st.integers(0, 5000), st.integers(1, 700))
def test_blocks_add_up_to_the_slice(size: int, block_size: int) -> None:
    n = block_count(size, block_size)
    lens = [block_len(size, block_size, i) for i in range(n)]
    assert sum(lens) == size
    assert all(x == block_size for x in lens[:-1])
    assert all(0 < x <= block_size for x in lens)
    assert all(valid_block(size, block_size, i, x) for i, x in enumerate(lens))
    assert not valid_block(size, block_size, n, block_size)
    if n:
        assert not valid_block(size, block_size, n - 1, lens[-1] + 1)


def test_block_keys_match_juicefs() -> None:
    assert block_key(4105, 0, 8000) == "chunks/0/4/4105_0_8000"
    assert block_key(1, 0, 1048576, hash_prefix=True) == "chunks/01/0/1_0_1048576"
    assert block_key(123_456_789, 3, 10) == "chunks/123/123456/123456789_3_10"
    assert block_key(123_456_789, 3, 10, hash_prefix=True) == "chunks/15/123/123456789_3_10"
    assert slice_block_keys(4105, 10 * MIB, 4 * MIB) == [
        "chunks/0/4/4105_0_4194304",
        "chunks/0/4/4105_1_4194304",
        "chunks/0/4/4105_2_2097152",
    ]
    assert slice_block_keys(7, 0, 4 * MIB) == []


@given(st.integers(1, 1 << 64), st.integers(0, 100), st.integers(0, 1 << 26), st.booleans())
def test_block_key_round_trip(slice_id: int, index: int, blen: int, hashed: bool) -> None:
    assert parse_block_key(block_key(slice_id, index, blen, hashed)) == (slice_id, index, blen)


@pytest.mark.parametrize(
    "key",
    [
        "chunks/0/4/4105_0",
        "chunks/0/5/4105_0_8000",  # directory doesn't match the id
        "chunks/0/4/04105_0_8000",  # non-canonical number
        "chunks/0/4/4105_0_+8000",
        "chunks/4105_0_8000",
        "meta/dump.json.gz",
        "chunks/0/0/0_0_1",
        "chunks/01/0/1_0_1/x",
        "chunks/01/1/1_0_1",
    ],
)
def test_parse_block_key_rejects_foreign_keys(key: str) -> None:
    assert parse_block_key(key) is None


def test_blocks_for_range() -> None:
    bs = 4 * MIB
    assert blocks_for_range(0, 0, bs) == []
    assert blocks_for_range(bs - 1, 2, bs) == [(0, bs - 1, 1), (1, 0, 1)]
    assert blocks_for_range(bs, bs, bs) == [(1, 0, bs)]
    assert blocks_for_range(10, 3 * bs, bs) == [(0, 10, bs - 10), (1, 0, bs), (2, 0, bs), (3, 0, 10)]


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(1, 3000))
def test_blocks_for_range_tiles_the_range(off: int, length: int, bs: int) -> None:
    at = off
    for index, inner, n in blocks_for_range(off, length, bs):
        assert index * bs + inner == at and 0 < n and inner + n <= bs
        at += n
    assert at == off + length

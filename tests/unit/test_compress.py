"""Block codecs: round trips, JuiceFS-compatible framing, and corrupt input detection."""

from __future__ import annotations

import lz4.block  # type: ignore[import-untyped]
import lz4.frame  # type: ignore[import-untyped]
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from jfs.app.data.compress import CorruptBlock, UnknownCodec, get_codec

NAMES = ["none", "lz4", "zstd"]
LZ4_FRAME_MAGIC = (0x184D2204).to_bytes(4, "little")


@pytest.mark.parametrize("name", NAMES)
@given(data=st.binary(max_size=20_000))
@settings(max_examples=60, deadline=None)
def test_round_trip_random_bytes(name: str, data: bytes) -> None:
    codec = get_codec(name)
    assert codec.decompress(codec.compress(data), len(data)) == data


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_large_compressible_block(name: str) -> None:
    block = (b"jfs block " * 420_000)[: 4 << 20]
    codec = get_codec(name)
    stored = codec.compress(memoryview(block))
    if name != "none":
        assert len(stored) < len(block) // 10
    assert codec.decompress(memoryview(stored), len(block)) == block


@given(data=st.binary(min_size=1, max_size=5000))
@settings(max_examples=60, deadline=None)
def test_lz4_output_is_a_raw_block(data: bytes) -> None:
    stored = bytes(get_codec("lz4").compress(data))
    assert not stored.startswith(LZ4_FRAME_MAGIC)
    # A plain block decoder told the size reproduces the data: there is no size header to skip.
    assert lz4.block.decompress(stored, uncompressed_size=len(data)) == data
    assert stored == lz4.block.compress(data, store_size=False)


def test_lz4_has_no_size_header() -> None:
    data = b"a" * 1000
    stored = bytes(get_codec("lz4").compress(data))
    with_header = lz4.block.compress(data, store_size=True)
    assert with_header[4:] == stored and with_header[:4] == (1000).to_bytes(4, "little")


def test_zstd_is_one_standard_frame_at_level_1() -> None:
    data = bytes(range(256)) * 64
    stored = get_codec("zstd").compress(data)
    assert stored[:4] == bytes.fromhex("28b52ffd")
    assert zstandard.ZstdDecompressor().decompress(stored) == data
    assert stored == zstandard.ZstdCompressor(level=1).compress(data)


def test_reads_frames_written_by_other_encoders() -> None:
    data = b"hello world " * 100
    no_size = zstandard.ZstdCompressor(level=3, write_content_size=False).compress(data)
    assert get_codec("zstd").decompress(no_size, len(data)) == data


@pytest.mark.parametrize("name", NAMES)
def test_size_mismatch_is_corrupt(name: str) -> None:
    codec = get_codec(name)
    stored = codec.compress(b"x" * 100)
    with pytest.raises(CorruptBlock):
        codec.decompress(stored, 101)
    with pytest.raises(CorruptBlock):
        codec.decompress(stored, 99)


@pytest.mark.parametrize("name", ["lz4", "zstd"])
def test_garbage_is_corrupt(name: str) -> None:
    codec = get_codec(name)
    with pytest.raises(CorruptBlock, match=name):
        codec.decompress(b"\xff" * 64, 4096)
    stored = codec.compress(bytes(range(256)) * 16)
    with pytest.raises(CorruptBlock):
        codec.decompress(stored[: len(stored) // 2], 4096)


def test_lz4_frame_is_not_accepted_as_a_block() -> None:
    data = b"abc" * 100
    with pytest.raises(CorruptBlock):
        get_codec("lz4").decompress(lz4.frame.compress(data), len(data))


def test_codec_lookup() -> None:
    assert get_codec("LZ4").name == "lz4"
    assert get_codec("").name == "none"
    with pytest.raises(UnknownCodec, match="known: lz4, none, zstd"):
        get_codec("snappy")
    assert issubclass(UnknownCodec, ValueError) and issubclass(CorruptBlock, ValueError)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.binary(max_size=20_000))
@settings(max_examples=40, deadline=None)
def test_compress_scratch_gives_the_same_stored_form(name: str, data: bytes) -> None:
    codec = get_codec(name)
    assert bytes(codec.compress_scratch(data)) == bytes(codec.compress(data))


def test_lz4_scratch_is_reused_per_thread_and_never_shared() -> None:
    import threading

    codec = get_codec("lz4")
    a, b = b"a" * 9000, bytes(range(256)) * 20  # the scratch grows to the largest bound so far
    first = codec.compress_scratch(a)
    assert isinstance(first, memoryview)
    again = codec.compress_scratch(b)
    assert isinstance(again, memoryview) and first.obj is again.obj  # one buffer per thread
    other: list[object] = []
    t = threading.Thread(target=lambda: other.append(codec.compress_scratch(a)))
    t.start()
    t.join()
    assert isinstance(other[0], memoryview) and other[0].obj is not again.obj
    assert lz4.block.decompress(bytes(again), uncompressed_size=len(b)) == b


def test_lz4_compress_is_byte_identical_to_python_lz4_on_a_big_block() -> None:
    import os

    block = os.urandom(1 << 20) + (b"jfs block " * 300_000)[: 3 << 20]
    stored = get_codec("lz4").compress(block)
    assert bytes(stored) == lz4.block.compress(block, store_size=False)
    assert bytes(get_codec("lz4").compress_scratch(block)) == bytes(stored)

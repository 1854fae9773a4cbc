"""`jfs.domain.tally`: a directory page's totals computed column-wise equal those of `Attr.decode` per record
(every type, lengths up to 2^64 - 1, records with ACLs or a tier, records gone); the biggest are the same
as sorting every non-directory by (space desc, position); and the Redis adapter's hand-packed MGETs are
byte for byte hiredis's."""

from __future__ import annotations

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jfs.adapters.kv.redis_batch import _mget, _mget_pointed
from jfs.domain.attrs import Attr, FileType, align4k
from jfs.domain.tally import biggest, tally
from jfs.ports.kv import Pointer

LENGTHS = st.one_of(st.sampled_from([0, 1, 4095, 4096, 4097, 2**32, 2**32 + 1, 2**63, 2**64 - 1]),
                    st.integers(0, 2**64 - 1), st.integers(0, 1 << 24))


@st.composite
def records(draw: st.DrawFn) -> bytes | None:
    if draw(st.integers(0, 15)) == 0:
        return None  # the inode went away after the listing
    typ = draw(st.sampled_from(list(FileType)))
    attr = Attr(typ=typ, mode=0o644, length=draw(LENGTHS), nlink=draw(st.integers(1, 3)),
                parent=draw(st.integers(1, 2**40)), access_acl=draw(st.sampled_from([0, 0, 0, 7])),
                tier=draw(st.sampled_from([0, 0, 0, 2])))
    return attr.encode()


def _reference(recs: list[bytes | None], top: int) -> tuple[int, int, int, list[int], set[int]]:
    files = length = space = 0
    dirs: list[int] = []
    sizes: list[tuple[int, int]] = []
    for i, raw in enumerate(recs):
        if raw is None:
            continue
        a = Attr.decode(raw)
        if a.typ is FileType.DIRECTORY:
            dirs.append(i)
            continue
        files += 1
        size = a.length if a.typ is FileType.REGULAR else 0
        length += size
        space += align4k(size)
        sizes.append((-align4k(size), i))
    sizes.sort()
    chosen = sizes if top < 0 else sizes[:top]
    return files, length, space, dirs, {i for _, i in chosen}


@settings(max_examples=300, deadline=None)
@given(st.lists(records(), max_size=60), st.integers(-1, 12))
def test_tally_equals_decoding_every_record(recs: list[bytes | None], top: int) -> None:
    got = tally(recs, top)
    files, length, space, dirs, chosen = _reference(recs, top)
    assert (got.files, got.length, got.space, got.dirs) == (files, length, space, dirs)
    assert set(got.top) == chosen and len(got.top) == len(chosen)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([FileType.REGULAR, FileType.REGULAR, FileType.DIRECTORY,
                                           FileType.SYMLINK]), LENGTHS), max_size=80), st.integers(-1, 12))
def test_tally_of_plain_pages_takes_the_column_path_and_agrees(items: list[tuple[FileType, int]], top: int) -> None:
    recs: list[bytes | None] = [Attr(typ=t, mode=0o600, length=n, nlink=1, parent=5).encode() for t, n in items]
    assert all(r is not None and len(r) == 72 for r in recs)  # the usual record: the column-wise path
    got = tally(recs, top)
    files, length, space, dirs, chosen = _reference(recs, top)
    assert (got.files, got.length, got.space, got.dirs, set(got.top)) == (files, length, space, dirs, chosen)


def test_ties_at_the_cut_go_to_the_earlier_records() -> None:
    units = [1, 3, 2, 2, 0, 2, 2, 5]
    assert sorted(biggest(units, 7, 3)) == [1, 2, 7]
    assert sorted(biggest(units, 7, 4)) == [1, 2, 3, 7]
    assert sorted(biggest([2, 2, 2, 2], 4, 2)) == [0, 1]
    assert biggest(units, 7, 0) == [] and sorted(biggest(units, 7, -1)) == [0, 1, 2, 3, 5, 6, 7]


def test_malformed_record_raises_as_decoding_does() -> None:
    bad = bytearray(Attr(typ=FileType.REGULAR, mode=0o600).encode())
    bad[1] = 0xF0  # type 15
    with pytest.raises(ValueError):
        tally([bytes(bad)], 1)
    with pytest.raises(ValueError):
        tally([b"\x00" * 10], 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=9, max_size=9), min_size=1, max_size=40), st.booleans(),
       st.lists(st.binary(min_size=1, max_size=20), max_size=2))
def test_pointed_mget_is_what_hiredis_packs(values: list[bytes], reverse: bool, extra: list[bytes]) -> None:
    pointer = Pointer(source=0, start=1, stop=9, prefix=b"A", suffix=b"I", reverse=reverse)
    tail = b"".join(hiredis.pack_command((b"k" + k,))[len(b"*1\r\n"):] for k in extra)
    packed = _mget_pointed(values, pointer, tail, len(extra))
    targets = [pointer.target(v) for v in values]
    assert packed == hiredis.pack_command((b"MGET", *[b"k" + t for t in targets if t is not None],
                                           *[b"k" + k for k in extra]))


def test_pointed_mget_declines_uneven_or_short_values() -> None:
    pointer = Pointer(source=0, start=1, stop=9, prefix=b"A", suffix=b"I", reverse=True)
    assert _mget_pointed([b"\x01" * 9, b"\x01" * 10], pointer, b"", 0) is None
    assert _mget_pointed([b"\x01" * 5], pointer, b"", 0) is None
    assert _mget_pointed([], pointer, b"", 0) is None


@given(st.lists(st.binary(max_size=600), max_size=30))
def test_mget_is_what_hiredis_packs(keys: list[bytes]) -> None:
    assert _mget(keys) == hiredis.pack_command((b"MGET", *[b"k" + k for k in keys]))

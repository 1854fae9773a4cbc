"""The whole-page helpers of a listing (ADR 0071) answer exactly what their one-entry counterparts do."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jfs.app.meta.readdir import StoredEntry
from jfs.domain import keys
from jfs.domain.attrs import FileType
from jfs.domain.records import decode_dentries, decode_dentries_joined, decode_dentry, encode_dentry

_INO = st.integers(0, 2**64 - 1)


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=40), st.sampled_from(list(FileType)), _INO), max_size=50),
       st.binary(max_size=12))  # fmt: skip
def test_decode_dentries_is_decode_dentry_of_each_row(entries: list[tuple[bytes, FileType, int]], prefix: bytes) -> None:
    rows = [(prefix + name, encode_dentry(typ, ino)) for name, typ, ino in entries]
    want = [(key[len(prefix):], *reversed(decode_dentry(value))) for key, value in rows]
    assert decode_dentries(rows, len(prefix)) == want


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=40), st.sampled_from(list(FileType)), _INO,
                          st.one_of(st.none(), st.binary(max_size=80))), max_size=50),
       st.binary(max_size=12))  # fmt: skip
def test_decode_dentries_joined_is_the_decoded_rows_joined_and_filtered(
        entries: list[tuple[bytes, FileType, int, bytes | None]], prefix: bytes) -> None:
    keys_ = [prefix + name for name, _, _, _ in entries]
    values = [encode_dentry(typ, ino) for _, typ, ino, _ in entries]
    joined = [other for _, _, _, other in entries]
    rows = decode_dentries(list(zip(keys_, values, strict=True)), len(prefix))
    want = [StoredEntry(*row, other) for row, other in zip(rows, joined, strict=True) if other is not None]
    got = decode_dentries_joined(keys_, values, joined, len(prefix), StoredEntry)
    assert got == want and all(type(e) is StoredEntry for e in got)
    with pytest.raises(ValueError):
        decode_dentries_joined([b"k"], [bytes([9]) + bytes(8)], [b"r"], 0, StoredEntry)


def test_decode_dentries_refuses_an_unknown_type_or_a_short_value() -> None:
    with pytest.raises(ValueError):
        decode_dentries([(b"k", bytes([9]) + bytes(8))], 0)
    with pytest.raises(ValueError):
        decode_dentry(bytes([9]) + bytes(8))
    with pytest.raises(Exception):  # noqa: B017 - struct.error, as decode_dentry's
        decode_dentries([(b"k", b"\x01\x00")], 0)


@given(st.lists(_INO, max_size=50))
def test_attrs_is_attr_of_each(inodes: list[int]) -> None:
    assert keys.attrs(inodes) == [keys.attr(i) for i in inodes]

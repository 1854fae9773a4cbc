"""Byte compatibility of the attribute record, key layout and value codecs with JuiceFS."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jfs.domain import keys
from jfs.domain.attrs import NS, Attr, FileType
from jfs.domain.records import SliceRecord, decode_dentry, decode_slices, encode_dentry, encode_slices

U32 = st.integers(0, (1 << 32) - 1)
U64 = st.integers(0, (1 << 64) - 1)
TIME_NS = st.builds(lambda s, n: s * NS + n, st.integers(-(1 << 62), (1 << 62) - 1), st.integers(0, NS - 1))

attrs = st.builds(
    Attr,
    typ=st.sampled_from(list(FileType)),
    mode=st.integers(0, 0o7777),
    uid=U32,
    gid=U32,
    atime_ns=TIME_NS,
    mtime_ns=TIME_NS,
    ctime_ns=TIME_NS,
    nlink=U32,
    length=U64,
    rdev=U32,
    parent=U64,
    flags=st.integers(0, 255),
    access_acl=U32,
    default_acl=U32,
    tier=st.integers(0, 255),
)


@given(attrs)
def test_attr_round_trip_and_record_length(attr: Attr) -> None:
    data = attr.encode()
    assert Attr.decode(data) == attr
    expected = 72 + (8 if attr.access_acl or attr.default_acl else 0) + (1 if attr.tier else 0)
    assert len(data) == expected
    assert data[-1] == 0  # the pad byte JuiceFS always leaves


GOLDEN_ATTR = bytes.fromhex(
    "00 11a4 00000000 00000000 000000006b012405 2432369c 000000006b012405 29a2c76c"
    " 000000006b012405 29bb22c2 00000002 000000000000006e 00000000 0000000000000000 00"
)


def test_golden_attr_record_from_juicefs() -> None:
    assert len(GOLDEN_ATTR) == 72
    attr = Attr.decode(GOLDEN_ATTR)
    assert attr.typ is FileType.REGULAR
    assert attr.mode == 0o644
    assert attr.st_mode == 0o100644
    assert (attr.uid, attr.gid, attr.flags) == (0, 0, 0)
    assert attr.nlink == 2
    assert attr.length == 110
    assert attr.parent == 0  # hard-linked: parents tracked by A<ino>P keys
    assert attr.atime_ns == 0x6B012405 * NS + 0x2432369C
    assert attr.mtime_ns == 0x6B012405 * NS + 0x29A2C76C
    assert attr.ctime_ns == 0x6B012405 * NS + 0x29BB22C2
    assert (attr.access_acl, attr.default_acl, attr.tier) == (0, 0, 0)
    assert attr.encode() == GOLDEN_ATTR


def test_attr_acl_and_tier_are_placed_after_parent() -> None:
    attr = Attr(typ=FileType.DIRECTORY, mode=0o755, parent=1, access_acl=3, default_acl=4, tier=2)
    data = attr.encode()
    assert len(data) == 81
    assert data[63:71] == (1).to_bytes(8, "big")
    assert data[71:79] == bytes.fromhex("00000003 00000004")
    assert data[79:] == b"\x02\x00"
    # Legacy records without parent are still readable.
    assert Attr.decode(data[:63]).parent == 0


def test_attr_decode_rejects_short_records() -> None:
    with pytest.raises(ValueError):
        Attr.decode(GOLDEN_ATTR[:62])


@given(st.sampled_from(list(FileType)), U64)
def test_dentry_value_round_trip(typ: FileType, ino: int) -> None:
    value = encode_dentry(typ, ino)
    assert len(value) == 9
    assert value[0] == int(typ)
    assert value[1:] == ino.to_bytes(8, "big")  # inode is BE in values (LE in keys)
    assert decode_dentry(value) == (typ, ino)


GOLDEN_SLICES = bytes.fromhex(
    "00000000 0000000000000001 0000000c 00000000 0000000c"
    "00000004 0000000000000003 00000008 00000000 00000008"
    "00000064 0000000000000004 0000000a 00000000 0000000a"
)


def test_golden_slice_records_from_juicefs() -> None:
    records = decode_slices(GOLDEN_SLICES)
    assert records == [
        SliceRecord(0, 1, 12, 0, 12),
        SliceRecord(4, 3, 8, 0, 8),
        SliceRecord(100, 4, 10, 0, 10),
    ]
    assert encode_slices(records) == GOLDEN_SLICES
    # A torn trailing record is ignored rather than misread.
    assert decode_slices(GOLDEN_SLICES + b"\x00" * 5) == records


@given(st.lists(st.builds(SliceRecord, U32, U64, U32, U32, U32), max_size=10))
def test_slice_records_round_trip(records: list[SliceRecord]) -> None:
    value = encode_slices(records)
    assert len(value) == 24 * len(records)
    assert decode_slices(value) == records


def test_key_layout() -> None:
    ino = 0x0102030405060708
    assert keys.attr(ino) == b"A" + bytes.fromhex("0807060504030201") + b"I"
    assert keys.chunk(2, 3) == b"A" + (2).to_bytes(8, "little") + b"C" + bytes.fromhex("00000003")
    assert len(keys.chunk(2, 3)) == 14
    assert keys.dentry(1, b"name") == b"A\x01\x00\x00\x00\x00\x00\x00\x00Dname"
    assert keys.slice_ref(4105, 8000) == b"K" + (4105).to_bytes(8, "big") + (8000).to_bytes(4, "big")
    assert keys.parse_slice_ref(keys.slice_ref(4105, 8000)) == (4105, 8000)
    assert keys.sustained(5, 9) == b"SS" + (5).to_bytes(8, "big") + (9).to_bytes(8, "little")
    assert keys.parse_delfile(keys.delfile(9, 3000)) == (9, 3000)


def test_prefix_end() -> None:
    assert keys.prefix_end(b"A") == b"B"
    assert keys.prefix_end(b"A\x01\xff") == b"A\x02"
    assert keys.prefix_end(b"\x00\xff\xff") == b"\x01"
    for bad in (b"", b"\xff\xff"):
        with pytest.raises(ValueError):
            keys.prefix_end(bad)


@given(
    st.binary(min_size=1, max_size=4).filter(lambda p: p.strip(b"\xff") != b""),
    st.binary(max_size=6),
    st.binary(max_size=6),
)
def test_prefix_end_is_the_exact_scan_bound(prefix: bytes, suffix: bytes, other: bytes) -> None:
    end = keys.prefix_end(prefix)
    assert prefix <= prefix + suffix < end
    # Any key in [prefix, end) has the prefix: the scan picks up nothing foreign.
    key = prefix[: len(prefix) - 1] + other
    assert (prefix <= key < end) == key.startswith(prefix)


def test_entry_attr_pointer_names_the_attr_key_of_the_dentry_inode() -> None:
    from jfs.app.meta.store import entry_attr_pointer
    from jfs.domain import keys
    from jfs.domain.attrs import FileType
    from jfs.domain.records import encode_dentry

    for ino in (1, 2, 0x1234, (1 << 63) + 5):
        value = encode_dentry(FileType.REGULAR, ino)
        assert entry_attr_pointer(0).target(value) == keys.attr(ino)

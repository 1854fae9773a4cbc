"""READDIR / READDIRPLUS replies packed a run at a time (`VfsOperations._pack_plus`, `_pack_plain`) are byte for
byte what `DirentSink.add` packs entry by entry, and stop at the same entry when the reply is full."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jfs.adapters.fuse.operations import DirentSink
from jfs.adapters.fuse.vfs_operations import MountConfig, VfsOperations, _pack_plain
from jfs.app.meta.readdir import Entry, StoredEntry
from jfs.app.vfs.core import INTERNAL_INODES, VFS
from jfs.domain.attrs import TRASH_INODE, Attr, FileType


def _ops() -> VfsOperations:
    ops = VfsOperations.__new__(VfsOperations)
    ops.config = MountConfig(attr_timeout=1.5, entry_timeout=2.25, dir_entry_timeout=3.0)

    # VFS.visible itself, over a client where file 10 has uncommitted writes up to 1 MiB and file 13 is open
    # with none past its stored length.
    local = {10: 1 << 20, 13: 0}
    vfs = SimpleNamespace(local_length=local.get, open_inodes=local.keys())
    vfs.visible = functools.partial(VFS.visible, vfs)
    ops.vfs = vfs  # type: ignore[assignment]
    return ops


def _run() -> list[Entry]:
    virtual = min(INTERNAL_INODES)
    return [
        Entry(b".", 1, FileType.DIRECTORY),
        Entry(b"file", 10, FileType.REGULAR, Attr(FileType.REGULAR, 0o640, 7, 8, 1_500_000_001, 2_000_000_002,
                                                   3_000_000_003, 1, 12345, 0, 1, 0)),
        Entry(b"sub-directory", 11, FileType.DIRECTORY, Attr(FileType.DIRECTORY, 0o755, 0, 0, 1, 2, 3, 2, 0, 0, 1)),
        Entry(b"link", 12, FileType.SYMLINK, Attr(FileType.SYMLINK, 0o777, 0, 0, 1, 2, 3, 1, 4, 0, 1)),
        Entry(b"gone-to-trash", 13, FileType.REGULAR, Attr(FileType.REGULAR, 0o600, 0, 0, 1, 2, 3, 1, 0, 0,
                                                           TRASH_INODE + 5)),
        Entry(b".stats", virtual, FileType.REGULAR, Attr(FileType.REGULAR, 0o444, 0, 0, 1, 2, 3, 1, 0, 0, 1)),
        Entry(b"no-attributes", 14, FileType.FIFO),
    ]


def _by_add(ops: VfsOperations, sink: DirentSink, first: int, run: list[Entry]) -> bool:
    for off, (name, child, typ, attr) in enumerate(run, first):
        fields = None if attr is None else ops._entry_fields(child, ops.vfs.visible(child, attr))
        if not sink.add(name, child, typ.s_ifmt, off, fields):
            return False
    return True


@pytest.mark.parametrize("size", [4096, 600, 400, 152, 100])
def test_plus_run_packs_as_add_does(size: int) -> None:
    ops = _ops()
    got, want = DirentSink(size, True), DirentSink(size, True)
    assert ops._pack_plus(got, 5, _run()) == _by_add(ops, want, 5, _run())
    assert bytes(got.payload) == bytes(want.payload)
    assert got.count == want.count
    assert len(got.payload) <= size


@pytest.mark.parametrize("size", [4096, 100, 50, 10])
def test_plain_run_packs_as_add_does(size: int) -> None:
    ops = _ops()
    got, want = DirentSink(size, False), DirentSink(size, False)
    assert _pack_plain(got, 3, _run()) == _by_add(ops, want, 3, _run())
    assert bytes(got.payload) == bytes(want.payload)
    assert got.count == want.count


def test_runs_append_after_earlier_records() -> None:
    ops = _ops()
    got, want = DirentSink(4096, True), DirentSink(4096, True)
    got.add(b"..", 1, FileType.DIRECTORY.s_ifmt, 2)
    want.add(b"..", 1, FileType.DIRECTORY.s_ifmt, 2)
    assert ops._pack_plus(got, 3, _run()[1:3]) and ops._pack_plus(got, 5, _run()[3:])
    assert _by_add(ops, want, 3, _run()[1:])
    assert bytes(got.payload) == bytes(want.payload) and got.count == want.count == 7


@pytest.mark.parametrize("entry", _run()[1:-1], ids=lambda e: e.name.decode())
def test_entry_fields_are_the_entry_reply(entry: Entry) -> None:
    """LOOKUP answers with `_entry_fields` (no EntryOut): the same reply as `_entry(...).pack_fields()`."""
    ops = _ops()
    assert entry.attr is not None
    assert ops._entry_fields(entry.ino, entry.attr) == ops._entry(entry.ino, entry.attr).pack_fields()


# ----------------------------------------------------------------- attributes as stored records (ADR 0071)


def _as_records(run: list[Entry]) -> list[Entry | StoredEntry]:
    """`run` as `readdir_runs(records=True)` gives it: stored entries' attributes undecoded."""
    return [e if not isinstance(e.attr, Attr) or e.ino in INTERNAL_INODES else StoredEntry(*e[:3], e.attr.encode())
            for e in run]  # fmt: skip


@pytest.mark.parametrize("size", [4096, 600, 400, 152, 100])
def test_plus_run_from_records_packs_as_from_attrs(size: int) -> None:
    ops = _ops()
    got, want = DirentSink(size, True), DirentSink(size, True)
    records = _as_records(_run())
    assert any(isinstance(e.attr, bytes) for e in records)
    assert ops._pack_plus(got, 5, records) == ops._pack_plus(want, 5, _run())
    assert bytes(got.payload) == bytes(want.payload) and got.count == want.count


def test_records_not_plain_are_decoded_and_bad_ones_refused() -> None:
    ops = _ops()
    acl = Attr(FileType.REGULAR, 0o640, 1, 2, 3, 4, 5, 1, 10, 0, 1, access_acl=7)
    tier = Attr(FileType.DIRECTORY, 0o755, 1, 2, 3, 4, 5, 2, 0, 0, 1, tier=1)
    run = [Entry(b"acl", 10, FileType.REGULAR, acl), Entry(b"tier", 11, FileType.DIRECTORY, tier)]
    got, want = DirentSink(4096, True), DirentSink(4096, True)
    assert ops._pack_plus(got, 3, _as_records(run)) and ops._pack_plus(want, 3, run)
    assert bytes(got.payload) == bytes(want.payload)
    bad = bytearray(Attr(FileType.REGULAR, 0o644).encode())
    bad[1] = (bad[1] & 0x0F) | 0xF0  # type 15: not a file type
    with pytest.raises(ValueError):
        ops._pack_plus(DirentSink(4096, True), 3, [StoredEntry(b"bad", 12, FileType.REGULAR, bytes(bad))])


_U32 = st.integers(0, 2**32 - 1)
_NS = st.integers(-(2**62), 2**62)


@settings(max_examples=300, deadline=None)
@given(typ=st.sampled_from(list(FileType)), mode=st.integers(0, 0o7777), uid=_U32, gid=_U32, a=_NS, m=_NS, c=_NS,
       nlink=_U32, length=st.integers(0, 2**63 - 1), rdev=_U32,
       parent=st.one_of(st.integers(1, 2**40), st.integers(TRASH_INODE, TRASH_INODE + 10**6)),
       ino=st.sampled_from([10, 13, 99, TRASH_INODE + 3]), flags=st.integers(0, 255))  # fmt: skip
def test_any_plain_record_packs_as_its_attr(typ: FileType, mode: int, uid: int, gid: int, a: int, m: int, c: int,
                                            nlink: int, length: int, rdev: int, parent: int, ino: int,
                                            flags: int) -> None:
    ops = _ops()
    attr = Attr(typ, mode, uid, gid, a, m, c, nlink, length, rdev, parent, flags)
    got, want = DirentSink(4096, True), DirentSink(4096, True)
    assert ops._pack_plus(got, 3, [StoredEntry(b"x", ino, typ, attr.encode())])
    assert ops._pack_plus(want, 3, [Entry(b"x", ino, typ, attr)])
    assert bytes(got.payload) == bytes(want.payload)


@settings(max_examples=60, deadline=None)
@given(names=st.lists(st.binary(min_size=1, max_size=255).filter(lambda n: b"/" not in n and b"\0" not in n),
                      min_size=1, max_size=12),
       size=st.integers(152, 8192), known=st.booleans())
def test_plus_names_of_any_length_pack_padded_as_add_does(names: list[bytes], size: int, known: bool) -> None:
    # One struct per name length packs the record, the name and its zero padding (ADR 0088): every length
    # from 1 to 255 bytes, records with and without attributes, cut where the reply is full.
    ops = _ops()
    attr = Attr(FileType.REGULAR, 0o644, 1, 2, 3, 4, 5, 1, 77, 0, 1)
    run = [Entry(n, 100 + k, FileType.REGULAR, attr if known or k % 2 else None) for k, n in enumerate(names)]
    got, want = DirentSink(size, True), DirentSink(size, True)
    assert ops._pack_plus(got, 3, run) == _by_add(ops, want, 3, run)
    assert bytes(got.buffer) == bytes(want.buffer) and got.count == want.count
    assert len(got.buffer) % 8 == 0 and len(got.buffer) <= size

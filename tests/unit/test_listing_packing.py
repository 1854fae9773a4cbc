"""READDIR / READDIRPLUS replies packed a run at a time (`VfsOperations._pack_plus`, `_pack_plain`) are byte for
byte what `DirentSink.add` packs entry by entry, and stop at the same entry when the reply is full."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from jfs.adapters.fuse.operations import DirentSink
from jfs.adapters.fuse.vfs_operations import MountConfig, VfsOperations, _pack_plain
from jfs.app.meta.readdir import Entry
from jfs.app.vfs.core import INTERNAL_INODES
from jfs.domain.attrs import TRASH_INODE, Attr, FileType


def _ops() -> VfsOperations:
    ops = VfsOperations.__new__(VfsOperations)
    ops.config = MountConfig(attr_timeout=1.5, entry_timeout=2.25, dir_entry_timeout=3.0)

    def visible(ino: int, a: Attr) -> Attr:  # as VFS.visible: here, open files are 1 MiB longer
        out = a.copy()
        if a.typ is FileType.REGULAR:
            out.length += 1 << 20
        return out

    ops.vfs = SimpleNamespace(visible=visible)  # type: ignore[assignment]
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

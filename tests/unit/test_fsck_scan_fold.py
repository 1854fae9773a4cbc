"""fsck's scan fold (`jfs.app.ops.fsck.scan._Fill`) on hand-made key spaces, without an engine.

The fold takes a directory's entries column-wise when at least `_RUN_MIN` of them lie in one slice of a
page, and creates rows inline; these tests check (hypothesis) that the model it builds is the one the
record-by-record path builds (`_RUN_MIN` out of reach) and the one the records say: attributes, names per
inode, entries under missing or non-directory inodes, stray records — whatever the page and slice cuts,
with inodes in and far outside the dense index, entries of unusual length or type, several names.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jfs.app.ops.fsck import judge as judge_mod
from jfs.app.ops.fsck import model as model_mod
from jfs.app.ops.fsck import scan as scan_mod
from jfs.app.ops.fsck.model import Model, _expected_counters_by_row, expected_counters
from jfs.app.ops.fsck.scan import _Fill
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, Attr, FileType
from jfs.domain.records import encode_dentry

FAR = (1 << 63) - 5
"""An inode far outside any dense index (the trash's range)."""


class _Bar:
    def advance(self, n: int = 1) -> None:
        pass


def _attr(ino: int, typ: int, nlink: int, parent: int, length: int, ctime: int) -> bytes:
    return Attr(typ=FileType(typ), mode=0o644, ctime_ns=ctime, nlink=nlink, length=length, parent=parent).encode()


inos = st.one_of(st.integers(2, 600), st.integers(2, 40), st.sampled_from([FAR, FAR + 1, 5_000_000, (1 << 64) - 1]))
entry_value = st.tuples(st.integers(1, 7), inos).map(lambda t: encode_dentry(FileType(t[0]), t[1]))


@st.composite
def volumes(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    """Sorted (key, value) pairs of ``A…``: attributes, entries (often many per directory), xattrs,
    parent counters, symlink targets, for a random set of inodes."""
    pairs: dict[bytes, bytes] = {}
    for ino in draw(st.lists(inos, min_size=1, max_size=40, unique=True)):
        if draw(st.booleans()) or ino < 40:
            typ = draw(st.sampled_from([1, 1, 2, 2, 3, 4]))
            pairs[keys.attr(ino)] = _attr(ino, typ, draw(st.integers(0, 4)), draw(inos), draw(st.integers(0, 1 << 40)),
                                          draw(st.integers(0, 1 << 62)))
        count = draw(st.sampled_from([0, 0, 1, 3, 9, 30]))
        odd = draw(st.integers(-3 * count, count - 1)) if count else -1
        for n in range(count):
            # now and then one 10-byte record (an unusual length: the directory is then folded one by one)
            pairs[keys.dentry(ino, b"n%04d" % n)] = draw(entry_value) + (b"\x00" if n == odd else b"")
        if draw(st.integers(0, 5)) == 0:
            pairs[keys.xattr(ino, b"user.k")] = b"v"
        if draw(st.integers(0, 7)) == 0:
            pairs[keys.parent_ref(ino, draw(inos))] = struct.pack("<q", draw(st.integers(-1, 3)))
        if draw(st.integers(0, 9)) == 0:
            pairs[keys.symlink(ino)] = b"/target"
    return sorted(pairs.items())


def _fold(pairs: list[tuple[bytes, bytes]], cuts: list[int], slice_: int) -> Model:
    fill = _Fill(Model({}, None), _Bar())
    at = 0
    for size in [*cuts, len(pairs)]:
        page = pairs[at:at + size]
        at += len(page)
        for s in range(0, len(page), slice_):
            fill.feed(page[s:s + slice_])
    return fill.done()


def _state(m: Model) -> dict[str, object]:
    t = m.table
    n = len(t.row.inos)
    cols = {name: list(getattr(t, name)[:n]) for name in
            ("typ", "nlink", "parent", "length", "ctime", "first_parent", "first_typ")}
    return {"inos": list(t.row.inos), **cols, "multi": m.multi, "prefs": m.prefs, "dead": m.dead,
            "stray": m.stray, "entries": m.entries, "keys": m.keys, "attrs": len(m.attrs), "first": len(m.first)}


@settings(max_examples=150, deadline=None)
@given(volumes(), st.lists(st.integers(1, 120), max_size=6), st.sampled_from([3, 16, 256]))
def test_column_wise_entries_fold_like_one_by_one(
    pairs: list[tuple[bytes, bytes]], cuts: list[int], slice_: int,
) -> None:  # fmt: skip
    fast = _fold(pairs, cuts, slice_)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scan_mod, "_RUN_MIN", 1 << 30)
        slow = _fold(pairs, cuts, slice_)
    assert _state(fast) == _state(slow)


@settings(max_examples=100, deadline=None)
@given(volumes(), st.lists(st.integers(1, 120), max_size=6))
def test_fold_says_what_the_records_say(pairs: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    m = _fold(pairs, cuts, 256)
    attrs = {keys.ino_from_le(k, 1): Attr.decode(v) for k, v in pairs if len(k) == 10 and k[9] == 0x49}
    assert dict(m.attrs.items()) == {
        ino: (int(a.typ), a.nlink, a.parent, a.length, a.ctime_ns) for ino, a in attrs.items()
    }
    assert len(m.attrs) == len(attrs)
    names: dict[int, dict[int, int]] = {}
    dead: dict[int, int] = {}
    for k, v in pairs:
        if len(k) > 10 and k[9] == 0x44:
            parent, child = keys.ino_from_le(k, 1), int.from_bytes(v[1:9], "big")
            if parent in attrs and attrs[parent].typ == FileType.DIRECTORY:
                names.setdefault(child, {}).setdefault(parent, 0)
                names[child][parent] += 1
            else:
                dead[parent] = dead.get(parent, 0) + 1
    assert m.dead == dead
    assert len(m.first) == len(names)
    assert m.entries == sum(1 for k, _ in pairs if len(k) > 10 and k[9] == 0x44)
    for child in {c for c in names} | set(m.first):
        assert m.names(child) == names.get(child, {}), child
    stray = {keys.ino_from_le(k, 1) for k, _ in pairs if k[9] in b"SXP"} - set(attrs)
    assert set(m.stray) == stray


def test_a_long_directory_in_one_slice_takes_the_column_wise_path() -> None:
    """A directory of 100 entries is folded by `_entry_run` (not one by one), to the same model."""
    pairs = [(keys.attr(2), _attr(2, 2, 2, 1, 0, 5))]
    pairs += [(keys.dentry(2, b"f%03d" % i), encode_dentry(FileType.REGULAR, 10 + i)) for i in range(100)]
    pairs += [(keys.attr(10 + i), _attr(10 + i, 1, 1, 2, 0, 5)) for i in range(100)]
    pairs.sort()
    calls: list[int] = []
    real = scan_mod._entry_run

    def counting(page, begin, end):  # type: ignore[no-untyped-def]
        calls.append(end - begin)
        return real(page, begin, end)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scan_mod, "_entry_run", counting)
        m = _fold(pairs, [], 4096)
    assert calls == [100]
    assert all(m.names(10 + i) == {2: 1} for i in range(100))
    assert m.entries == 100 and not m.dead


lengths = st.one_of(st.just(0), st.integers(0, 3).map(lambda k: k * 4096), st.integers(0, 1 << 64 - 1),
                    st.integers(1, 9000))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.integers(2, 5000), st.sampled_from([ROOT_INODE, TRASH_INODE, FAR])),
                          st.integers(0, 7), lengths), max_size=60))
def test_expected_counters_column_wise_as_row_by_row(rows: list[tuple[int, int, int]]) -> None:
    """usedSpace / totalInodes summed column-wise equal the row-by-row sums (align4k: 0 counts 4 KiB), with
    rows without attributes, the root and the trash root (excluded), lengths at and off the 4 KiB grid."""
    m = Model({}, None)
    for ino, typ, length in rows:
        if typ:
            m.attrs[ino] = (typ, 1, 1, length, 0)
        else:
            m.first[ino] = 1 * 8 + 1  # a row with a name but no attributes
    assert expected_counters(m) == _expected_counters_by_row(m)
    with pytest.MonkeyPatch.context() as mp:  # several stretches of rows
        mp.setattr(model_mod, "_COUNT_ROWS", 7)
        assert expected_counters(m) == _expected_counters_by_row(m)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.integers(1, 300), st.sampled_from([TRASH_INODE, FAR])), st.integers(0, 3),
                          st.sampled_from([0, 1, 1, 1, 2, 256, 257, 1 << 24]), st.integers(0, 3),
                          st.sampled_from([0, 1, 1, 2, 3])), max_size=80),
       st.sets(st.integers(1, 300), max_size=5), st.sets(st.integers(1, 300), max_size=5),
       st.sampled_from([3, 8, 1 << 16]))
def test_rows_to_judge_and_entry_rows_column_wise_as_row_by_row(
    rows: list[tuple[int, int, int, int, int]], multi: set[int], prefs: set[int], stretch: int,
) -> None:  # fmt: skip
    """The rows the judge visits (all with attributes but the plain ones; all with a name but the
    non-directories named once with their own type) are found column-wise exactly as row by row: types 0 (no attributes) to 3, nlink 0/1/2 and values equal to 1 in a byte other than the
    lowest, parents equal or not to the first name's (also differing only in a high byte), with and
    without a name, several names, parent counters, the root and the trash root, in stretches of rows."""
    m = Model({}, None)
    for ino, typ, nlink, parent, first in rows:
        if typ:
            m.attrs[ino] = (typ, nlink, parent if parent != 3 else 1 << 40, 0, 0)
        if first:
            m.first[ino] = (parent if first != 3 else parent + (1 << 33)) * 8 + (first if first < 3 else 1)
    m.multi = {ino: {1: 2} for ino in multi}
    m.prefs = {ino: {1: 1} for ino in prefs}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(judge_mod, "_JUDGE_ROWS", stretch)
        assert list(judge_mod._rows_to_judge(m)) == list(judge_mod._rows_to_judge_by_row(m))
        assert list(judge_mod._entry_rows(m)) == list(judge_mod._entry_rows_by_row(m))

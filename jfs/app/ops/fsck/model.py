"""The metadata model fsck judges (built by `jfs.app.ops.fsck.scan`).

Contract: `Model` is plain data (see its attributes) that `judge` reads and tests build by hand;
`jfs.app.ops.fsck.scan` fills it from one streaming scan of ``A…`` (records grouped by inode: `_Group`
holds one inode's), also adding every referenced slice to `Model.slices` when that is a `SliceSet`;
`expected_counters` is pure.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterator, Mapping, MutableMapping
from itertools import compress

from jfs.app.ops.slice_set import SliceSet
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, FileType, align4k

_I, _D, _C, _P = 0x49, 0x44, 0x43, 0x50
DIR = int(FileType.DIRECTORY)
REG = int(FileType.REGULAR)

AttrSeen = tuple[int, int, int, int, int]
"""(type, nlink, parent, length, ctime_ns) of an inode as the scan saw it."""


class _RowIndex:
    """ino → row number, for inode numbers that are mostly dense (handed out in ascending batches): an
    array indexed by inode (4 bytes per number up to the largest dense one) and a dict for the others
    (the trash's inodes near 2^63, and any inode far beyond 8 × the rows so far, so that a sparse volume
    costs no more than before). `items` gives (ino, row) in row order, i.e. in the order the scan met them."""

    __slots__ = ("_index", "_sparse", "inos")

    DENSE_MIN = 1 << 20
    """The index may always cover inodes below this, whatever the row count (≤ 4 MiB)."""

    def __init__(self) -> None:
        self._index = array("i")
        """row of ino at [ino]; -1: none."""
        self._sparse: dict[int, int] = {}
        self.inos = array("Q")
        """ino of each row."""

    def get(self, ino: int, default: int | None = None) -> int | None:
        index = self._index
        if 0 <= ino < len(index):
            row = index[ino]
            return row if row >= 0 else default
        return self._sparse.get(ino, default)

    def __getitem__(self, ino: int) -> int:
        row = self.get(ino)
        if row is None:
            raise KeyError(ino)
        return row

    def new(self, ino: int) -> int:
        """Give `ino` (not indexed yet) the next row."""
        row = len(self.inos)
        self.inos.append(ino)
        index = self._index
        if ino >= len(index) and ino < max(self.DENSE_MIN, 8 * (row + 1)):
            size = min(max(ino + 1, len(index) + len(index) // 2), max(self.DENSE_MIN, 8 * (row + 1)))
            index.extend(array("i", [-1]) * (size - len(index)))
            for moved in [i for i in self._sparse if i < size]:
                index[moved] = self._sparse.pop(moved)
        if 0 <= ino < len(index):
            index[ino] = row
        else:
            self._sparse[ino] = row
        return row

    def items(self) -> Iterator[tuple[int, int]]:
        return zip(self.inos, range(len(self.inos)), strict=True)

    def values(self) -> Iterator[int]:
        return iter(range(len(self.inos)))


class _Inodes:
    """One row per inode the scan met (by its attributes or by an entry naming it), column-wise: one machine
    word (or less) per field and a row number per inode in `_RowIndex` — ≈ 50 bytes per inode, where a
    dict of row numbers took ≈ 150 and a dict of tuples for the attributes and a dict for the first
    entries ≈ 400. `attrs` and `first` are the two views fsck
    reads. Rows are never removed; the rows are those of `row.inos` (the columns are grown ahead, by an
    eighth at a time, and may be longer: zeros)."""

    __slots__ = ("row", "typ", "nlink", "parent", "length", "ctime", "first_parent", "first_typ", "attr_count",
                 "first_count")

    def __init__(self) -> None:
        self.row = _RowIndex()
        self.typ = array("B")
        """0: no attributes seen."""
        self.nlink = array("I")
        self.parent = array("Q")
        self.length = array("Q")
        self.ctime = array("q")
        self.first_parent = array("Q")
        self.first_typ = array("B")
        """Parent and entry type of the first entry naming the inode; type 0: none."""
        self.attr_count = 0
        self.first_count = 0

    def add(self, ino: int) -> int:
        row = self.row.get(ino)
        if row is None:
            row = self.add_new(ino)
        return row

    def add_new(self, ino: int) -> int:
        """The row of `ino`, which has none yet."""
        row = self.row.new(ino)
        if row >= len(self.typ):  # every column grows at once, by an eighth (zeros: nothing seen yet)
            grow = max(4096, len(self.typ) >> 3)
            for column in (self.typ, self.nlink, self.parent, self.length, self.ctime, self.first_parent,
                           self.first_typ):
                column.frombytes(bytes(grow * column.itemsize))
        return row


class AttrTable(Mapping[int, AttrSeen]):
    """ino → `AttrSeen` of the inodes whose attributes the scan saw (a view of `_Inodes`); only added or
    overwritten, never removed."""

    __slots__ = ("_t",)

    def __init__(self, table: _Inodes | None = None) -> None:
        self._t = table if table is not None else _Inodes()

    def __setitem__(self, ino: int, seen: AttrSeen) -> None:
        t = self._t
        row = t.add(ino)
        if not t.typ[row]:
            t.attr_count += 1
        t.typ[row], t.nlink[row], t.parent[row], t.length[row], t.ctime[row] = seen

    def _at(self, row: int) -> AttrSeen:
        t = self._t
        return t.typ[row], t.nlink[row], t.parent[row], t.length[row], t.ctime[row]

    def __getitem__(self, ino: int) -> AttrSeen:
        row = self._t.row[ino]
        if not self._t.typ[row]:
            raise KeyError(ino)
        return self._at(row)

    def get(self, ino: int, default: AttrSeen | None = None) -> AttrSeen | None:  # type: ignore[override]
        row = self._t.row.get(ino)
        return default if row is None or not self._t.typ[row] else self._at(row)

    def __contains__(self, ino: object) -> bool:
        row = self._t.row.get(ino)  # type: ignore[arg-type]
        return row is not None and bool(self._t.typ[row])

    def __iter__(self) -> Iterator[int]:
        typ = self._t.typ
        return (ino for ino, row in self._t.row.items() if typ[row])

    def __len__(self) -> int:
        return self._t.attr_count

    def items(self) -> Iterator[tuple[int, AttrSeen]]:  # type: ignore[override]
        typ, at = self._t.typ, self._at
        return ((ino, at(row)) for ino, row in self._t.row.items() if typ[row])

    def values(self) -> Iterator[AttrSeen]:  # type: ignore[override]
        typ, at = self._t.typ, self._at
        return (at(row) for row in self._t.row.values() if typ[row])


class FirstEntries(MutableMapping[int, int]):
    """child → parent * 8 + entry type of the first entry naming it (a view of `_Inodes`)."""

    __slots__ = ("_t",)

    def __init__(self, table: _Inodes) -> None:
        self._t = table

    def __setitem__(self, child: int, value: int) -> None:
        t = self._t
        row = t.add(child)
        if not t.first_typ[row]:
            t.first_count += 1
        t.first_parent[row], t.first_typ[row] = value >> 3, value & 7

    def __delitem__(self, child: int) -> None:
        t = self._t
        row = t.row.get(child)
        if row is None or not t.first_typ[row]:
            raise KeyError(child)
        t.first_typ[row] = 0
        t.first_count -= 1

    def _at(self, row: int) -> int:
        return self._t.first_parent[row] * 8 + self._t.first_typ[row]

    def __getitem__(self, child: int) -> int:
        row = self._t.row[child]
        if not self._t.first_typ[row]:
            raise KeyError(child)
        return self._at(row)

    def get(self, child: int, default: int | None = None) -> int | None:  # type: ignore[override]
        row = self._t.row.get(child)
        return default if row is None or not self._t.first_typ[row] else self._at(row)

    def __contains__(self, child: object) -> bool:
        row = self._t.row.get(child)  # type: ignore[arg-type]
        return row is not None and bool(self._t.first_typ[row])

    def __iter__(self) -> Iterator[int]:
        typ = self._t.first_typ
        return (ino for ino, row in self._t.row.items() if typ[row])

    def __len__(self) -> int:
        return self._t.first_count

    def items(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        typ, at = self._t.first_typ, self._at
        return ((ino, at(row)) for ino, row in self._t.row.items() if typ[row])

    def clear(self) -> None:
        t = self._t
        for i in range(len(t.first_typ)):
            t.first_typ[i] = 0
        t.first_count = 0


class Model:
    """What the scan of the inode key space found: per inode its type, nlink, parent, length and ctime;
    the directories holding its names; its hard-link parent counters; and the records of inodes that do
    not exist."""

    def __init__(self, delfiles: dict[int, tuple[int, int]], slices: SliceSet | None) -> None:
        self.delfiles = delfiles
        self.slices = slices
        inodes = self._inodes = _Inodes()
        self.attrs = AttrTable(inodes)
        """ino → (type, nlink, parent, length, ctime_ns)."""
        self.first = FirstEntries(inodes)
        """child → parent * 8 + entry type, of the first entry naming it."""
        self.multi: dict[int, dict[int, int]] = {}
        """child → {parent: entries} for inodes with more than one name."""
        self.prefs: dict[int, dict[int, int]] = {}
        """ino → {parent: count} of the hard-link parent counters."""
        self.dead: dict[int, int] = {}
        """inode without attributes (or not a directory) → entries stored under it."""
        self.stray: dict[int, tuple[set[str], int]] = {}
        """inode without attributes and no delfile → (record kinds, highest chunk index)."""
        self.entries = 0
        self.keys = 0

    @property
    def table(self) -> _Inodes:
        """The columns behind `attrs` and `first` (one row per inode met; a row's ``typ`` 0: no attributes,
        ``first_typ`` 0: no entry), for the passes that visit every inode (`judge`)."""
        return self._inodes

    # -- entries ---------------------------------------------------------------------------------------

    def add_entry(self, parent: int, child: int, typ: int) -> None:
        t = self._inodes  # straight on the table: once per entry of the volume
        row = t.add(child)
        if not t.first_typ[row]:
            t.first_parent[row], t.first_typ[row] = parent, typ
            t.first_count += 1
            return
        counts = self.multi.get(child)
        if counts is None:
            counts = self.multi[child] = {t.first_parent[row]: 1}
        counts[parent] = counts.get(parent, 0) + 1

    def drop_entry(self, parent: int, child: int) -> None:
        """Forget one entry of `parent` naming `child` (entries of a dead directory do not count)."""
        counts = self.multi.get(child)
        first = self.first.get(child)
        if counts is None:
            if first is not None and first >> 3 == parent:
                del self.first[child]
            return
        counts[parent] -= 1
        if not counts[parent]:
            del counts[parent]
        assert first is not None
        if first >> 3 == parent and parent not in counts:
            self.first[child] = next(iter(counts)) * 8 + (first & 7)
        if sum(counts.values()) == 1:
            del self.multi[child]

    def names(self, ino: int) -> dict[int, int]:
        """parent → number of entries naming `ino`."""
        counts = self.multi.get(ino)
        if counts is not None:
            return dict(counts)
        first = self.first.get(ino)
        return {} if first is None else {first >> 3: 1}

    def links(self, ino: int) -> int:
        counts = self.multi.get(ino)
        if counts is not None:
            return sum(counts.values())
        return 1 if ino in self.first else 0

    def some_parent(self, ino: int) -> int:
        first = self.first.get(ino)
        if first is not None:
            return first >> 3
        attr = self.attrs.get(ino)
        return attr[2] if attr is not None else 0


class _Group:
    """The records of one inode seen so far by the scan (one per inode: its containers are shared empty
    ones until the inode has such records, see `fresh`)."""

    __slots__ = ("ino", "typ", "children", "kinds", "prefs", "max_indx")

    _NO_CHILDREN: array[int] = array("Q")
    _NO_KINDS: set[str] = set()
    _NO_PREFS: dict[int, int] = {}

    def __init__(self, ino: int) -> None:
        self.ino = ino
        self.typ = 0
        self.children = self._NO_CHILDREN
        self.kinds = self._NO_KINDS
        self.prefs = self._NO_PREFS
        self.max_indx = -1

    def fresh(self) -> None:
        """Give the group containers of its own before the first record that needs one is added."""
        if self.children is self._NO_CHILDREN:
            self.children, self.kinds, self.prefs = array("Q"), set(), {}

    def close(self, m: Model) -> None:
        if not self.ino:
            return
        if self.children and self.typ != DIR:
            for child in self.children:
                m.drop_entry(self.ino, child)
            m.dead[self.ino] = len(self.children)
        if self.typ:
            if self.prefs:
                m.prefs[self.ino] = self.prefs
            return
        if self.prefs:
            self.kinds.add("parent counters")
        if self.kinds and self.ino not in m.delfiles:
            m.stray[self.ino] = (self.kinds, self.max_indx)


def expected_counters(model: Model) -> tuple[int, int]:
    """(usedSpace, totalInodes) as the model says they should be: Σ align4k / the number of inodes, root and
    trash root excluded, the trash's hour directories included (as JuiceFS counts them).

    Column-wise (a million rows in a few C passes): the regular files' lengths picked by a type mask, their
    sum, and the rounding up of each from the low 12 bits of its length; `_expected_counters_by_row` is the
    same sum row by row (the reference the tests compare with, and the path on big-endian machines)."""
    t = model.table
    rows = len(t.row.inos)
    if sys.byteorder != "little":
        return _expected_counters_by_row(model)
    space = inodes = 0
    for at in range(0, rows, _COUNT_ROWS):  # a bounded stretch at a time: no copy of whole columns
        end = min(rows, at + _COUNT_ROWS)
        typ = t.typ[at:end].tobytes()
        kept = end - at - typ.count(0)
        regular = typ.translate(_IS_REG)
        lengths = array("Q", compress(t.length[at:end], regular))
        raw = lengths.tobytes()
        low = bytearray(2 * len(lengths))  # the low 12 bits of each length, as native 16-bit words
        low[0::2] = raw[0::8]
        low[1::2] = raw[1::8].translate(_LOW_NIBBLE)
        low12 = array("H", bytes(low))
        rounded = len(low12) - low12.count(0) + lengths.count(0)  # lengths rounded up (0 counts as 4 KiB)
        space += sum(lengths) + 4096 * rounded - sum(low12) + 4096 * (kept - len(lengths))
        inodes += kept
    for ino in (ROOT_INODE, TRASH_INODE):
        row = t.row.get(ino)
        if row is not None and t.typ[row]:
            space -= align4k(t.length[row]) if t.typ[row] == REG else 4096
            inodes -= 1
    return space, inodes


_IS_REG = bytes(int(b == REG) for b in range(256))
_COUNT_ROWS = 1 << 16
_LOW_NIBBLE = bytes(b & 0x0F for b in range(256))


def _expected_counters_by_row(model: Model) -> tuple[int, int]:
    """`expected_counters`, one row at a time."""
    t = model.table
    space = inodes = 0
    for ino, typ, length in zip(t.row.inos, t.typ, t.length):  # noqa: B905 — the columns may be longer
        if not typ or ino == ROOT_INODE or ino == TRASH_INODE:
            continue
        space += align4k(length) if typ == REG else 4096
        inodes += 1
    return space, inodes

"""fsck's judge on models built by hand: one test per problem kind it can report, asserting the Issue (what
the user reads) and the Fix (what ``--repair`` would change), plus the cases that must not be judged.

Each model starts from a consistent volume (`Vol`): the root, a directory ``/d``, a file ``/f`` and a file
``/d/g``; a test breaks one thing and checks that exactly that is reported.
"""

from __future__ import annotations

import pytest

from jfs.app.ops.fsck.judge import Fix, counters_issue, judge, lost_blocks_issue
from jfs.app.ops.fsck.model import AttrTable, Model
from jfs.app.ops.fsck.repairs import COUNTER_KINDS, FIX_KINDS, REPAIRS, REPORT_ONLY
from jfs.app.ops.fsck.report import KINDS, Issue
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, FileType

FILE, DIR, LINK = int(FileType.REGULAR), int(FileType.DIRECTORY), int(FileType.SYMLINK)
D, F, G = 2, 3, 4
"""Inodes of /d, /f and /d/g."""
CTIME = 1_000
SINCE = 10**18
"""The scan start: every inode of the models changed long before."""


class Vol:
    """A hand-built `Model` of a consistent volume, with helpers to break it."""

    def __init__(self) -> None:
        self.m = Model(delfiles={}, slices=None)
        self.attr(ROOT_INODE, DIR, nlink=3, parent=ROOT_INODE)
        self.attr(D, DIR, nlink=2, parent=ROOT_INODE)
        self.attr(F, FILE, nlink=1, parent=ROOT_INODE, length=5000)
        self.attr(G, FILE, nlink=1, parent=D)
        self.entry(ROOT_INODE, D, DIR)
        self.entry(ROOT_INODE, F, FILE)
        self.entry(D, G, FILE)

    def attr(self, ino: int, typ: int, *, nlink: int, parent: int, length: int = 0, ctime: int = CTIME) -> None:
        self.m.attrs[ino] = (typ, nlink, parent, length, ctime)

    def entry(self, parent: int, child: int, typ: int) -> None:
        self.m.add_entry(parent, child, typ)

    def judge(self, sustained: frozenset[int] = frozenset()) -> tuple[list[Issue], dict[int, Fix]]:
        return judge(self.m, set(sustained), SINCE)


def only_fix(fixes: dict[int, Fix]) -> tuple[int, Fix]:
    assert len(fixes) == 1, fixes
    ((ino, f),) = fixes.items()
    return ino, f


def test_a_consistent_volume_has_no_problem() -> None:
    issues, fixes = Vol().judge()
    assert issues == [] and fixes == {}


def test_broken_dentry_one_issue_per_entry_naming_a_missing_inode() -> None:
    v = Vol()
    v.entry(ROOT_INODE, 99, FILE)
    v.entry(D, 99, FILE)
    issues, fixes = v.judge()
    assert sorted(issues, key=lambda i: i.parent) == [
        Issue("broken-dentry", "entry names inode 99, which does not exist", ino=99, parent=ROOT_INODE,
              repair="remove the entry"),
        Issue("broken-dentry", "entry names inode 99, which does not exist", ino=99, parent=D,
              repair="remove the entry"),
    ]  # fmt: skip
    assert fixes == {}


def test_wrong_type_of_an_entry() -> None:
    v = Vol()
    v.m.first.clear()
    v.entry(ROOT_INODE, D, DIR)
    v.entry(ROOT_INODE, F, LINK)  # the entry says symlink, the inode is a file
    v.entry(D, G, FILE)
    issues, fixes = v.judge()
    assert issues == [Issue("wrong-type", "entry says symlink, inode is file", ino=F, parent=ROOT_INODE,
                            repair="rewrite the entry's type")]  # fmt: skip
    assert fixes == {}


def test_dead_entries_under_a_missing_inode_or_a_non_directory() -> None:
    v = Vol()
    v.m.dead = {77: 2, F: 1}
    issues, fixes = v.judge()
    repair = "remove the entries (their inodes become orphans)"
    assert issues == [
        Issue("dead-entries", "2 entries stored under inode 77, which does not exist", ino=77, repair=repair),
        Issue("dead-entries", "1 entries stored under inode 3, which is not a directory", ino=F, repair=repair),
    ]
    assert fixes == {}


def test_stray_records_of_an_inode_without_attributes() -> None:
    v = Vol()
    v.m.stray = {55: ({"xattrs", "chunks"}, 2)}
    issues, fixes = v.judge()
    assert issues == [Issue("stray-records", "chunks, xattrs of inode 55, which does not exist", ino=55,
                            repair="release the data and remove the records")]  # fmt: skip
    assert fixes == {}


def test_wrong_nlink_of_a_file() -> None:
    v = Vol()
    v.attr(F, FILE, nlink=3, parent=ROOT_INODE, length=5000)
    issues, fixes = v.judge()
    assert issues == []
    ino, f = only_fix(fixes)
    assert ino == F and f.nlink == 1 and f.parent is None and f.prefs is None and f.orphan is None
    assert f.seen == (FILE, 3, ROOT_INODE, 5000, CTIME)
    assert f.issues == [Issue("wrong-nlink", "nlink 3, but 1 names", ino=F, repair="set nlink to 1")]


def test_wrong_nlink_of_a_directory_counts_its_subdirectories() -> None:
    v = Vol()
    v.attr(ROOT_INODE, DIR, nlink=2, parent=ROOT_INODE)  # /d makes it 3
    _, fixes = v.judge()
    ino, f = only_fix(fixes)
    assert ino == ROOT_INODE and f.nlink == 3
    assert f.issues == [Issue("wrong-nlink", "directory nlink 2, should be 3", ino=ROOT_INODE,
                              repair="set nlink to 3")]  # fmt: skip


def test_wrong_parent_of_the_root() -> None:
    v = Vol()
    v.attr(ROOT_INODE, DIR, nlink=3, parent=D)
    _, fixes = v.judge()
    ino, f = only_fix(fixes)
    assert ino == ROOT_INODE and f.parent == ROOT_INODE and f.prefs is None
    assert f.issues == [Issue("wrong-parent", f"parent {D}, should be 1", ino=ROOT_INODE,
                              repair="set parent to 1")]  # fmt: skip


def test_wrong_parent_of_a_directory_and_stray_counters_are_dropped() -> None:
    v = Vol()
    v.attr(D, DIR, nlink=2, parent=F)
    _, fixes = v.judge()
    ino, f = only_fix(fixes)
    assert ino == D and f.parent == ROOT_INODE and f.prefs == {}
    assert f.issues == [Issue("wrong-parent", f"parent {F}, but its entry is in 1", ino=D,
                              repair="set parent to 1")]  # fmt: skip


def test_wrong_parent_of_a_file_with_one_name() -> None:
    v = Vol()
    v.attr(G, FILE, nlink=1, parent=ROOT_INODE)
    _, fixes = v.judge()
    ino, f = only_fix(fixes)
    assert ino == G and (f.parent, f.prefs) == (D, {})
    assert f.issues == [Issue("wrong-parent", f"parent 1 / counters {{}}, but its name is in {D}", ino=G,
                              repair=f"set parent to {D}")]  # fmt: skip


def test_a_file_with_one_name_may_keep_parent_zero_and_one_counter() -> None:
    v = Vol()
    v.attr(G, FILE, nlink=1, parent=0)
    v.m.prefs[G] = {D: 1}
    assert v.judge() == ([], {})


def test_wrong_parent_of_a_hard_linked_file_sets_parent_zero_and_counters() -> None:
    v = Vol()
    v.entry(D, F, FILE)  # /f is also /d/f
    v.attr(F, FILE, nlink=2, parent=ROOT_INODE, length=5000)
    _, fixes = v.judge()
    ino, f = only_fix(fixes)
    assert ino == F and (f.parent, f.prefs, f.nlink) == (0, {ROOT_INODE: 1, D: 1}, None)
    assert f.issues == [Issue("wrong-parent", f"parent 1 / counters {{}}, but names in {{1: 1, {D}: 1}}",
                              ino=F, repair="set parent 0 and the per-parent counters")]  # fmt: skip
    v.attr(F, FILE, nlink=2, parent=0, length=5000)
    v.m.prefs[F] = {ROOT_INODE: 1, D: 1}
    assert v.judge() == ([], {})


def test_orphan_directory_goes_to_lost_found() -> None:
    v = Vol()
    v.attr(9, DIR, nlink=2, parent=ROOT_INODE)
    _, fixes = v.judge()
    ino, f = only_fix(fixes)
    assert ino == 9 and f.orphan == "lost+found"
    assert f.issues == [Issue("orphan", "directory without a name", ino=9, repair="move to /lost+found/#9")]


def test_orphan_file_with_links_left_goes_to_lost_found() -> None:
    v = Vol()
    v.attr(9, FILE, nlink=1, parent=D)
    _, fixes = v.judge()
    ino, f = only_fix(fixes)
    assert ino == 9 and f.orphan == "lost+found"
    assert f.issues == [Issue("orphan", "file without a name (nlink 1)", ino=9, repair="move to /lost+found/#9")]


def test_orphan_file_with_nlink_zero_or_in_the_trash_is_deleted() -> None:
    v = Vol()
    v.attr(9, FILE, nlink=0, parent=D)
    v.attr(10, LINK, nlink=1, parent=TRASH_INODE + 3)
    _, fixes = v.judge()
    assert {ino: f.orphan for ino, f in fixes.items()} == {9: "delete", 10: "delete"}
    assert fixes[9].issues == [Issue("orphan", "file without a name (nlink 0), not held open", ino=9,
                                     repair="delete it")]  # fmt: skip
    assert fixes[10].issues[0].detail == "symlink without a name (nlink 1), not held open"


def test_an_unlinked_file_held_open_is_no_orphan() -> None:
    v = Vol()
    v.attr(9, FILE, nlink=0, parent=D)
    assert v.judge(sustained=frozenset({9})) == ([], {})


def test_multi_linked_dir_is_reported_only() -> None:
    v = Vol()
    v.entry(D, 8, DIR)
    v.entry(ROOT_INODE, 8, DIR)
    v.attr(8, DIR, nlink=2, parent=D)
    v.attr(ROOT_INODE, DIR, nlink=4, parent=ROOT_INODE)
    v.attr(D, DIR, nlink=3, parent=ROOT_INODE)
    issues, fixes = v.judge()
    assert issues == [Issue("multi-linked-dir", "directory has 2 names", ino=8)]
    assert issues[0].repair == "" and fixes == {}


def test_several_problems_of_one_inode_share_one_fix() -> None:
    v = Vol()
    v.attr(9, DIR, nlink=5, parent=ROOT_INODE)
    _, fixes = v.judge()
    ino, f = only_fix(fixes)
    assert ino == 9 and (f.nlink, f.orphan) == (2, "lost+found")
    assert [i.kind for i in f.issues] == ["wrong-nlink", "orphan"]


def test_inodes_changed_since_the_scan_started_are_not_judged() -> None:
    v = Vol()
    v.attr(F, FILE, nlink=3, parent=ROOT_INODE, ctime=SINCE)
    v.attr(9, FILE, nlink=0, parent=D, ctime=SINCE + 1)
    assert v.judge() == ([], {})


def test_counters() -> None:
    assert counters_issue((8192, 3), (8192, 3)) is None
    assert counters_issue((100, 5), (8192, 3)) == Issue(
        "counters", "usedSpace 100 (expected 8192), totalInodes 5 (expected 3)", repair="add the difference"
    )


def test_lost_blocks() -> None:
    def name(sid: int, size: int, index: int) -> str:
        return f"chunks/{sid}_{index}"

    one = lost_blocks_issue(F, {(7, 100, 0)}, {(7, 100): {0: "size 3"}}, name)
    assert one == Issue("lost-blocks", "1 unreadable block: chunks/7_0 (size 3)", ino=F,
                        repair="turn the unreadable ranges into holes (zeros)")  # fmt: skip
    many = lost_blocks_issue(F, {(7, 100, i) for i in range(7)}, {}, name)
    assert many.detail == (
        "7 unreadable blocks: chunks/7_0 (missing), chunks/7_1 (missing), chunks/7_2 (missing), "
        "chunks/7_3 (missing), chunks/7_4 (missing) and 2 more"
    )


def test_every_kind_is_judged_above() -> None:
    """A new problem kind needs a test here (and a place in the repair table)."""
    judged_above = {
        "lost-blocks", "broken-dentry", "dead-entries", "stray-records", "wrong-type", "wrong-nlink",
        "wrong-parent", "orphan", "multi-linked-dir", "counters",
    }  # fmt: skip
    assert judged_above == set(KINDS)


def test_every_kind_has_exactly_one_place_in_the_repair_table() -> None:
    places = [set(REPAIRS), FIX_KINDS, COUNTER_KINDS, REPORT_ONLY]
    assert set().union(*places) == set(KINDS)
    assert sum(len(p) for p in places) == len(KINDS)


def test_attr_table_reads_back_what_was_stored_and_overwrites_in_place() -> None:
    t = AttrTable()
    rows = {ino: (ino % 3 + 1, ino % 7, ino // 2, ino * 4096, 1_733_000_000_000_000_000 + ino)
            for ino in range(2, 500)}
    for ino, seen in rows.items():
        t[ino] = seen
    t[7] = rows[7] = (2, 5, 1, 0, -1)  # overwritten, not added
    assert len(t) == len(rows) and dict(t.items()) == rows and list(t.values()) == list(rows.values())
    assert t[7] == (2, 5, 1, 0, -1) and t.get(7) == (2, 5, 1, 0, -1)
    assert 1 not in t and t.get(1) is None and 3 in t
    with pytest.raises(KeyError):
        t[1]


def test_first_entries_keep_any_parent_and_type_and_forget_on_delete() -> None:
    m = Model({}, None)
    m.add_entry(TRASH_INODE + 5, 42, int(FileType.REGULAR))  # a trash hour directory: parent near 2^63
    m.add_entry(7, 43, int(FileType.DIRECTORY))
    assert m.first[42] == (TRASH_INODE + 5) * 8 + int(FileType.REGULAR)
    assert m.first.get(43) == 7 * 8 + int(FileType.DIRECTORY) and len(m.first) == 2
    m.attrs[42] = (int(FileType.REGULAR), 1, TRASH_INODE + 5, 0, 1)
    assert 43 not in m.attrs and len(m.attrs) == 1  # a row made by an entry is no attribute
    del m.first[42]
    assert 42 not in m.first and m.first.get(42) is None and dict(m.first.items()) == {43: 7 * 8 + 2}
    assert m.attrs[42][2] == TRASH_INODE + 5
    with pytest.raises(KeyError):
        del m.first[42]

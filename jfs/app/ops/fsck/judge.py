"""The judge: which problems a metadata model shows, and what ``--repair`` would change. Pure, no I/O.

Contract: `judge` reads a `Model` (as the scan saw the volume) and returns the problems of entries and
records plus, per inode, one `Fix` of its attributes carrying the problems it repairs; inodes whose
ctime is at or after `since_ns` changed during the scan and are not judged. `counters_issue` and
`lost_blocks_issue` word the two problems found outside the model (stored counters, block objects).
Nothing here is confirmed: `confirm` re-checks against the engine before anything is reported or repaired.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain, compress

from jfs.app.ops.fsck.model import DIR, AttrSeen, Model
from jfs.app.ops.fsck.report import Issue
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, is_trash_inode

LOST_FOUND = b"lost+found"


@dataclass
class Fix:
    """What --repair changes in one inode's attributes (None = leave as is)."""

    seen: AttrSeen
    nlink: int | None = None
    parent: int | None = None
    prefs: dict[int, int] | None = None
    orphan: str | None = None
    """"lost+found" or "delete"."""
    issues: list[Issue] = field(default_factory=list)


def judge(model: Model, sustained: set[int], since_ns: int) -> tuple[list[Issue], dict[int, Fix]]:
    """The metadata problems of the model; inodes whose ctime is at or after `since_ns` are not judged;
    inodes in `sustained` (held open after their last name went) are not orphans.

    Returns (problems of entries and records, per-inode attribute fixes whose `issues` are the problems
    of that inode's attributes).
    """
    issues, subdirs = _judge_entries(model)
    fixes: dict[int, Fix] = {}
    t = model.table
    typs, nlinks, parents, lengths, ctimes, inos = t.typ, t.nlink, t.parent, t.length, t.ctime, t.row.inos
    for row in _rows_to_judge(model):  # the rows of `model.attrs`, in its order, but for the plain ones
        if ctimes[row] >= since_ns:
            continue
        a = (typs[row], nlinks[row], parents[row], lengths[row], ctimes[row])
        _judge_inode(model, inos[row], a, subdirs, sustained, fixes, issues)
    return issues, fixes


_SPECIAL = frozenset((ROOT_INODE, TRASH_INODE))
_JUDGE_ROWS = 1 << 16
_NOT_DIR = bytes(int(b not in (0, DIR)) for b in range(256))
_NONZERO = bytes(int(b != 0) for b in range(256))


def _rows_to_judge(model: Model) -> Iterator[int]:
    """The rows with attributes, ascending, except those `_judge_inode` finds nothing in for sure: a
    non-directory with nlink 1 and one name, in its attribute's parent, without parent counters (not the
    root or the trash root). Found column-wise, a stretch of rows at a time: per column a byte mask (1: the
    row passes), the masks ANDed as big integers; inodes with several names or counters are put back.
    `_rows_to_judge_by_row` is the same, row by row (the tests compare them)."""
    t = model.table
    if sys.byteorder != "little":
        yield from _rows_to_judge_by_row(model)
        return

    def mark(at: int, end: int) -> bytes:
        n = end - at
        typ = t.typ[at:end].tobytes()
        plain = int.from_bytes(typ.translate(_NOT_DIR), "little")
        plain &= int.from_bytes(t.first_typ[at:end].tobytes().translate(_NONZERO), "little")
        nl = t.nlink[at:end].tobytes()  # nlink == 1: the low byte 1, the three others 0
        plain &= int.from_bytes(nl[0::4].translate(_IS_ONE), "little")
        plain &= ~int.from_bytes(_or_bytes(nl, 4, 1, n), "little")
        diff = (int.from_bytes(t.first_parent[at:end].tobytes(), "little")
                ^ int.from_bytes(t.parent[at:end].tobytes(), "little")).to_bytes(8 * n, "little")
        plain &= ~int.from_bytes(_or_bytes(diff, 8, 0, n), "little")  # first parent == parent
        # rows with attributes that are not plain (the masks hold 0/1 bytes: the complement's other bits
        # are cleared by ``has``)
        has = int.from_bytes(typ.translate(_NONZERO), "little")
        return (has & ~plain).to_bytes(n, "little")

    back = {row for ino in chain(model.multi, model.prefs, _SPECIAL)
            if (row := t.row.get(ino)) is not None and t.typ[row]}  # fmt: skip
    yield from _marked_rows(len(t.row.inos), mark, sorted(back))


def _entry_rows(model: Model) -> Iterator[int]:
    """The rows with a first name, ascending, except a non-directory named once with its own type (nothing
    for `_judge_entries` to note). Column-wise like `_rows_to_judge`; `_entry_rows_by_row` is the same row
    by row."""
    t = model.table
    if sys.byteorder != "little":
        yield from _entry_rows_by_row(model)
        return

    def mark(at: int, end: int) -> bytes:
        n = end - at
        first = t.first_typ[at:end].tobytes()
        differ = (int.from_bytes(first, "little") ^ int.from_bytes(t.typ[at:end].tobytes(), "little"))
        odd = int.from_bytes(differ.to_bytes(n, "little").translate(_NONZERO), "little")
        odd |= int.from_bytes(first.translate(_IS_DIR), "little")
        return (int.from_bytes(first.translate(_NONZERO), "little") & odd).to_bytes(n, "little")

    back = {row for ino in model.multi if (row := t.row.get(ino)) is not None and t.first_typ[row]}
    yield from _marked_rows(len(t.row.inos), mark, sorted(back))


def _marked_rows(rows: int, mark: Callable[[int, int], bytes], back: list[int]) -> Iterator[int]:
    """Ascending, each once: the rows whose byte in ``mark(at, end)`` (one 0/1 byte per row of the stretch
    ``[at, end)``, `_JUDGE_ROWS` rows at a time) is 1, and the rows of `back` (sorted, unique)."""
    b = 0
    for at in range(0, rows, _JUDGE_ROWS):
        end = min(rows, at + _JUDGE_ROWS)
        marked = mark(at, end)
        while b < len(back) and back[b] < end:
            row = back[b]
            b += 1
            if not marked[row - at]:
                yield from compress(range(at, row), marked[:row - at])
                marked = b"\x00" * (row - at + 1) + marked[row - at + 1:]
                yield row
        yield from compress(range(at, end), marked)


def _or_bytes(raw: bytes, width: int, first: int, n: int) -> bytes:
    """Per `width`-byte word of `raw` (n of them), 1 when any of its bytes from `first` on is nonzero."""
    acc = 0
    for j in range(first, width):
        acc |= int.from_bytes(raw[j::width], "little")
    return acc.to_bytes(n, "little").translate(_NONZERO)


_IS_ONE = bytes(int(b == 1) for b in range(256))
_IS_DIR = bytes(int(b == DIR) for b in range(256))


def _entry_rows_by_row(model: Model) -> Iterator[int]:
    """`_entry_rows`, row by row."""
    t = model.table
    typs, first_typs, multi = t.typ, t.first_typ, model.multi
    for row, child in enumerate(t.row.inos):
        first_typ = first_typs[row]
        if not first_typ or (first_typ == typs[row] and first_typ != DIR and child not in multi):
            continue  # no entry; or a non-directory named once with its own type: nothing to note
        yield row


def _rows_to_judge_by_row(model: Model) -> Iterator[int]:
    """`_rows_to_judge`, row by row."""
    t = model.table
    typs, nlinks, parents = t.typ, t.nlink, t.parent
    first_typs, first_parents, multi, prefs = t.first_typ, t.first_parent, model.multi, model.prefs
    for row, ino in enumerate(t.row.inos):
        typ = typs[row]
        if not typ:
            continue
        if (typ != DIR and nlinks[row] == 1 and first_typs[row] and first_parents[row] == parents[row]
                and ino not in multi and ino not in prefs and ino not in _SPECIAL):
            continue  # one name, in its parent, nlink 1, no counters: `_judge_inode` finds nothing
        yield row


def _judge_entries(model: Model) -> tuple[list[Issue], dict[int, int]]:
    """Problems of entries and of records without an inode; also directory → subdirectory entries."""
    issues: list[Issue] = []
    attrs = model.attrs
    subdirs: dict[int, int] = defaultdict(int)
    inos = model.table.row.inos
    for row in _entry_rows(model):  # the rows of `model.first`, in its order, but for the plain ones
        child = inos[row]
        first = model.first[child]
        a = attrs.get(child)
        if a is None:
            for parent, n in model.names(child).items():
                for _ in range(n):
                    issues.append(Issue("broken-dentry", f"entry names inode {child}, which does not exist",
                                        ino=child, parent=parent, repair="remove the entry"))  # fmt: skip
            continue
        if a[0] == DIR:
            for parent, n in model.names(child).items():
                subdirs[parent] += n
        if first & 7 != a[0] and child not in model.multi:
            issues.append(Issue("wrong-type", f"entry says {what(first & 7)}, inode is {what(a[0])}",
                                ino=child, parent=first >> 3,
                                repair="rewrite the entry's type"))  # fmt: skip
    for ino, count in model.dead.items():
        state = "does not exist" if ino not in attrs else "is not a directory"
        issues.append(Issue("dead-entries", f"{count} entries stored under inode {ino}, which {state}", ino=ino,
                            repair="remove the entries (their inodes become orphans)"))  # fmt: skip
    for ino, (kinds, _) in model.stray.items():
        issues.append(Issue("stray-records", f"{', '.join(sorted(kinds))} of inode {ino}, which does not exist",
                            ino=ino, repair="release the data and remove the records"))  # fmt: skip
    return issues, subdirs


def _judge_inode(
    model: Model, ino: int, a: AttrSeen, subdirs: dict[int, int], sustained: set[int], fixes: dict[int, Fix],
    issues: list[Issue],
) -> None:  # fmt: skip
    """Add the fix of one inode's attributes to `fixes` when it needs one (a problem no fix can repair
    goes to `issues`)."""
    typ, nlink, parent, _length, _ctime = a
    names = model.names(ino)
    links = sum(names.values())
    # A counter at 0 counts nothing: JuiceFS leaves the key in place when a hard link's last name in a
    # directory goes (and keeps parent 0 once one name is left), which is as valid as jfs's deleting it.
    refs = {p: n for p, n in model.prefs.get(ino, {}).items() if n != 0}
    special = ino in (ROOT_INODE, TRASH_INODE)

    def fix(kind: str, detail: str, repair: str) -> Fix:
        f = fixes.get(ino)
        if f is None:
            f = fixes[ino] = Fix(a)
        f.issues.append(Issue(kind, detail, ino=ino, repair=repair))
        return f

    if typ == DIR:
        want = 2 + subdirs.get(ino, 0)
        if ino == TRASH_INODE and nlink in (2, want):
            want = nlink  # JuiceFS keeps 2 whatever the hour directories; earlier jfs counted them
        if nlink != want:
            f = fix("wrong-nlink", f"directory nlink {nlink}, should be {want}", f"set nlink to {want}")
            f.nlink = want
        if special:
            if parent != ROOT_INODE:
                fix("wrong-parent", f"parent {parent}, should be 1", "set parent to 1").parent = ROOT_INODE
        elif links == 0:
            f = fix("orphan", "directory without a name", f"move to /{LOST_FOUND.decode()}/#{ino}")
            f.orphan = "lost+found"
        elif links > 1:
            issues.append(Issue("multi-linked-dir", f"directory has {links} names", ino=ino))  # reported only
        else:
            (dp,) = names
            if parent != dp or refs:
                f = fix("wrong-parent", f"parent {parent}, but its entry is in {dp}", f"set parent to {dp}")
                f.parent, f.prefs = dp, {}
        return
    if special:
        return
    if links == 0:
        if nlink == 0 and ino in sustained:
            return  # open after unlink: deleted on the last close
        if nlink == 0 or is_trash_inode(parent):
            f = fix("orphan", f"{what(typ)} without a name (nlink {nlink}), not held open", "delete it")
            f.orphan = "delete"
        else:
            fix("orphan", f"{what(typ)} without a name (nlink {nlink})",
                f"move to /{LOST_FOUND.decode()}/#{ino}").orphan = "lost+found"  # fmt: skip
        return
    if nlink != links:
        fix("wrong-nlink", f"nlink {nlink}, but {links} names", f"set nlink to {links}").nlink = links
    if links == 1:
        (dp,) = names
        if not ((parent == dp and not refs) or (parent == 0 and refs == {dp: 1})):
            f = fix("wrong-parent", f"parent {parent} / counters {refs}, but its name is in {dp}",
                    f"set parent to {dp}")  # fmt: skip
            f.parent, f.prefs = dp, {}
    elif parent != 0 or refs != names:
        f = fix("wrong-parent", f"parent {parent} / counters {refs}, but names in {names}",
                "set parent 0 and the per-parent counters")  # fmt: skip
        f.parent, f.prefs = 0, names


def counters_issue(stored: tuple[int, int], expected: tuple[int, int]) -> Issue | None:
    """The problem of the (usedSpace, totalInodes) counters `stored`, given what the model `expected`."""
    if stored == expected:
        return None
    return Issue("counters", f"usedSpace {stored[0]} (expected {expected[0]}), totalInodes "
                 f"{stored[1]} (expected {expected[1]})", repair="add the difference")  # fmt: skip


BlockRef = tuple[int, int, int]
"""(slice id, slice size, block index)."""


def lost_blocks_issue(
    ino: int, blocks: set[BlockRef], why: dict[tuple[int, int], dict[int, str]],
    block_name: Callable[[int, int, int], str],
) -> Issue:  # fmt: skip
    """The problem of file `ino` whose records cover the unreadable `blocks`; `why` says per slice and
    block index what is wrong ("missing" when absent), `block_name` names a block's object (the first
    five are shown)."""
    shown = sorted(blocks)[:5]
    names = [f"{block_name(sid, size, index)} ({why.get((sid, size), {}).get(index, 'missing')})"
             for sid, size, index in shown]  # fmt: skip
    more = f" and {len(blocks) - len(shown)} more" if len(blocks) > len(shown) else ""
    noun = "block" if len(blocks) == 1 else "blocks"
    return Issue("lost-blocks", f"{len(blocks)} unreadable {noun}: {', '.join(names)}{more}", ino=ino,
                 repair="turn the unreadable ranges into holes (zeros)")  # fmt: skip


_TYPE_NAMES = {1: "file", 2: "directory", 3: "symlink", 4: "fifo", 5: "block device", 6: "char device",
               7: "socket"}  # fmt: skip


def what(typ: int) -> str:
    """The name of file type `typ` in problem details."""
    return _TYPE_NAMES.get(typ, f"type {typ}")

"""Runs of plain files read list-wise (`jfs.domain.dumpfmt_runs`, ADR 0089) change no event and no error.

The reference ("old") reader is `DumpReader` with `plain_run` switched off: the per-entry paths it had
before (one regex per plain file, else a JSON decode of the node). On generated dumps written by the dump's
own writer (`node_head` / `dir_tail`) with JuiceFS's quirks — escaped and binary names, non-ASCII names,
xattrs, symlinks, fifos, huge files with chunks, hard links, zero and extreme times — and on the same dumps
with one character changed, the new reader gives the same events (a "files" event spelled as its "file"
events) or the same error, whatever the read size; and parse(dump(x)) gives back x.
"""

from __future__ import annotations

import io
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jfs.domain import dumpfmt, dumpfmt_runs
from jfs.domain.attrs import NS, Attr, FileType
from jfs.domain.dumpfmt import DumpFormatError, DumpReader
from jfs.domain.records import SliceRecord

HEAD = ('{\n  "Setting": {\n    "Name": "t",\n    "UUID": "u",\n    "Storage": "file",\n    "Bucket": "/tmp/b/",\n'
        '    "BlockSize": 4096,\n    "TrashDays": 0\n  },\n  "Counters": {},\n  "Sustained": [],\n  "DelFiles": [],\n'
        '  "FSTree": {\n    "attr": {"inode":1,"type":"directory","mode":511,"uid":0,"gid":0,"atime":1,"mtime":1,'
        '"ctime":1,"atimensec":1,"mtimensec":1,"ctimensec":1,"nlink":3,"length":0},\n    "entries": {')
TAIL = '\n    }\n  }\n}\n'

U32 = st.integers(0, 2**32 - 1)
SECS = st.integers(-(2**40), 2**40) | st.sampled_from([0, -1, 1795236770])
NSECS = st.integers(0, NS - 1) | st.sampled_from([0, 1, NS - 1])
NAMES = (st.binary(min_size=1, max_size=12).map(dumpfmt.escape)
         | st.text(min_size=1, max_size=8).map(lambda n: dumpfmt.escape(n.encode("utf-8", "surrogatepass")))
         | st.sampled_from(["f", "%", "a%25b", "\u00e9t\u00e9", "x\ufffd", "sp ace", "q\"q", "b\\s"]).map(
             lambda n: dumpfmt.escape(n.encode("utf-8", "surrogatepass"))))


@st.composite
def leaves(draw: st.DrawFn, ino: int) -> tuple[str, int, Attr, dict[str, Any]]:
    """(escaped name, inode, attributes, extra `node_head` arguments) of a non-directory entry."""
    kind = draw(st.sampled_from(["plain"] * 6 + ["chunks", "xattrs", "symlink", "fifo", "hard"]))
    typ = {"symlink": FileType.SYMLINK, "fifo": FileType.FIFO}.get(kind, FileType.REGULAR)
    length = draw(st.sampled_from([0, 1, 4096, 2**40, 2**63 - 1]) | st.integers(0, 2**20))
    attr = Attr(typ, draw(st.integers(0, 0o7777)), draw(U32), draw(U32),
                draw(SECS) * NS + draw(NSECS), draw(SECS) * NS + draw(NSECS), draw(SECS) * NS + draw(NSECS),
                2 if kind == "hard" else draw(st.sampled_from([1, 1, 3])), length)
    extra: dict[str, Any] = {}
    if kind == "chunks":
        extra["chunks"] = [(i, [SliceRecord(0, 7 + i, 1 << 26, 0, 1 << 26)]) for i in range(draw(st.integers(1, 3)))]
    elif kind == "xattrs":
        extra["xattrs"] = [(b"user.k", draw(st.binary(max_size=6)))]
    elif kind == "symlink":
        extra["symlink"] = draw(st.binary(min_size=1, max_size=10))
    return draw(NAMES), (5 if kind == "hard" else ino), attr, extra


@st.composite
def trees(draw: st.DrawFn) -> tuple[str, list[tuple[str, int, Attr]]]:
    """A dump as the dump's writer prints it (a directory of leaves, then a directory holding a few more),
    and its leaves in order: (escaped name, inode, attributes)."""
    parts = [HEAD]
    printed: list[tuple[str, int, Attr]] = []
    names: set[str] = set()
    ino = 100
    for depth, count in ((2, draw(st.integers(0, 40))), (4, draw(st.integers(0, 3)))):
        if depth == 4:
            d = Attr(FileType.DIRECTORY, 0o755, 0, 0, NS + 1, NS + 1, NS + 1, 2)
            parts.append(("," if names else "") + dumpfmt.node_head("sub", 2, d, 3))
            names = set()
        first = True
        for _ in range(count):
            name, inode, attr, extra = draw(leaves(ino))
            ino += 1
            if name in names:
                continue
            names.add(name)
            printed.append((name, inode, attr))
            parts.append(("" if first else ",") + dumpfmt.node_head(name, inode, attr, depth + 1, **extra))
            first = False
        if depth == 4:
            parts.append(dumpfmt.dir_tail(3))
    return "".join(parts) + TAIL, printed


def dumps() -> st.SearchStrategy[str]:
    return trees().map(lambda tree: tree[0])


def _read(text: str, read_size: int = 1 << 16) -> list[tuple[Any, ...]]:
    events: list[tuple[Any, ...]] = []
    for e in DumpReader(io.BytesIO(text.encode("utf-8", "surrogateescape")).read, read_size).events():
        if e[0] == "files":
            assert len(e[1]) == len(e[2]) > 0
            events.extend(("file", name, tuple(row)) for name, row in zip(e[1], e[2], strict=True))
        else:
            events.append(e)
    return events


def _outcome(text: str, read_size: int = 1 << 16) -> tuple[str, Any]:
    try:
        return "events", _read(text, read_size)
    except DumpFormatError as exc:
        return "error", str(exc)


def _old_outcome(text: str) -> tuple[str, Any]:
    with mock.patch.object(dumpfmt, "plain_run", lambda *args: None):
        return _outcome(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dumps(), st.sampled_from([7, 64, 300, 4096, 1 << 16]))
def test_new_reader_gives_the_old_events_at_any_read_size(text: str, read_size: int) -> None:
    assert _outcome(text, read_size) == _old_outcome(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dumps(), st.data())
@example(HEAD + '\n      "a": {\n        "attr": {"inode":2,"type":"regular","mode":1,"uid":0,"gid":0,"atime":1,'
         '"mtime":1,"ctime":1,"atimensec":1,"mtimensec":1,"ctimensec":1,"nlink":1,"length":0}\n      }' + TAIL,
         None)
def test_a_changed_character_gives_the_old_events_or_error(text: str, data: st.DataObject | None) -> None:
    start = text.index('"entries": {')
    if data is None:
        variants = [text[:i] + c + text[i + 1:] for i in range(start, len(text) - 8)
                    for c in ("0", "-", ",", "}", " ")]
    else:
        i = data.draw(st.integers(start, len(text) - 1))
        c = data.draw(st.sampled_from(["0", "-", "9", ",", "}", "{", '"', " ", "\n", "x", "\\", ":", ".", "e"]))
        variants = [text[:i] + c + text[i + 1:], text[:i] + c + text[i:], text[:i] + text[i + 1:]]
    for variant in variants:
        assert _outcome(variant) == _old_outcome(variant)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees())
def test_parse_of_dump_gives_back_the_tree(tree: tuple[str, list[tuple[str, int, Attr]]]) -> None:
    """Each leaf the writer printed comes back in order with its name and attributes, plain files as rows."""
    text, printed = tree
    leaves = [e for e in _read(text) if e[0] == "file" or e[0] == "node" and e[1] not in (None, "sub")]
    assert [e[1] for e in leaves] == [name for name, _, _ in printed]
    for e, (_, ino, attr) in zip(leaves, printed, strict=True):
        if e[0] == "file":
            (a_s, a_n), (m_s, m_n), (c_s, c_n) = divmod(attr.atime_ns, NS), divmod(attr.mtime_ns, NS), \
                divmod(attr.ctime_ns, NS)
            assert attr.typ is FileType.REGULAR
            assert e[2] == (ino, attr.mode, attr.uid, attr.gid, a_s, m_s, c_s, a_n, m_n, c_n, attr.nlink, attr.length)
        else:
            back_ino, back = dumpfmt.attr_from_json(e[2]["attr"])
            assert (back_ino, back.typ, back.mode, back.atime_ns, back.mtime_ns, back.ctime_ns, back.nlink) == (
                ino, attr.typ, attr.mode, attr.atime_ns, attr.mtime_ns, attr.ctime_ns, attr.nlink)


def test_a_run_is_read_list_wise_and_stops_at_anything_else() -> None:
    row = '{"inode":%d,"type":"regular","mode":420,"uid":0,"gid":0,"atime":-1,"mtime":2,"ctime":3,' \
          '"atimensec":4,"mtimensec":5,"ctimensec":999999999,"nlink":1,"length":%d}'
    entries = ",".join(f'\n      "f{i}": {{\n        "attr": {row % (10 + i, i)}\n      }}' for i in range(50))
    fifo = '\n      "p": {\n        "attr": ' + (row % (99, 0)).replace("regular", "fifo") + "\n      }"
    text = HEAD + entries + "," + fifo + TAIL
    events = list(DumpReader(io.BytesIO(text.encode()).read).events())
    runs = [e for e in events if e[0] == "files"]
    assert sum(len(e[1]) for e in runs) == 50 and len(runs) < 10
    assert runs[0][2][0] == [10, 420, 0, 0, -1, 2, 3, 4, 5, 999999999, 1, 0]
    assert [e[1] for e in events if e[0] == "node"] == [None, "p"]
    assert _outcome(text) == _old_outcome(text)


@pytest.mark.parametrize("bad", ['"mode":-1', '"atimensec":1000000000', '"uid":01', '"gid":1.0', '"length":1e3'])
def test_values_the_plain_path_refuses_are_left_to_the_others(bad: str) -> None:
    good = '{"inode":7,"type":"regular","mode":1,"uid":1,"gid":1,"atime":1,"mtime":1,"ctime":1,' \
           '"atimensec":1,"mtimensec":1,"ctimensec":1,"nlink":1,"length":1}'
    key = bad.split(":")[0]
    attr = good.replace(next(p for p in good[1:-1].split(",") if p.startswith(key)), bad)
    text = HEAD + '\n      "a": {\n        "attr": ' + good + '\n      },\n      "b": {\n        "attr": ' + attr \
        + "\n      }" + TAIL
    run = dumpfmt_runs.plain_run(text, text.index('"entries": {') + 12, False)
    assert run is None or run[0] == ["a"]  # a number JSON refuses makes the whole run decline
    assert _outcome(text) == _old_outcome(text)

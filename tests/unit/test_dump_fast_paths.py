"""The fast paths of dump and load give what the general paths give (ADR 0062).

* dump: `dumpfmt.plain_node_text` (a node rendered from its raw attribute record) is `node_head` of the
  decoded record, whenever it answers;
* load: `attrs.plain_record` is `Attr.encode`; the reader's "file" events do not depend on the read size
  nor on whether the one-regex path (`_PLAIN_FILE`) or the JSON path read the entry; and a load through
  "file" events writes exactly the keys of a load through the general `_Loader.node`.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jfs.adapters.kv.registry import open_kv
from jfs.app.ops import load as load_mod
from jfs.domain import dumpfmt, keys
from jfs.domain.attrs import NS, TRASH_INODE, Attr, FileType, plain_record
from jfs.domain.dumpfmt import DumpReader

U32 = st.integers(0, 2**32 - 1)
TIMES = st.integers(-(2**40), 2**40) | st.sampled_from([0, NS - 1, NS, -1, 1795236770 * NS + 1])


@st.composite
def attrs(draw: st.DrawFn) -> Attr:
    return Attr(
        draw(st.sampled_from(list(FileType))), draw(st.integers(0, 0o7777)), draw(U32), draw(U32),
        draw(TIMES), draw(TIMES), draw(TIMES), draw(U32), draw(st.integers(0, 2**63 - 1)),
        draw(st.sampled_from([0, 0, 0, 7])), draw(st.integers(0, 2**63 - 1)), draw(st.sampled_from([0, 0, 0, 1])),
    )


@settings(max_examples=200, deadline=None)
@given(attrs(), st.integers(1, 2**63 - 1), st.integers(1, 9), st.text(max_size=8))
def test_plain_node_text_is_node_head_of_the_decoded_record(attr: Attr, ino: int, depth: int, name: str) -> None:
    raw = attr.encode()
    fast = dumpfmt.plain_node_text(name, ino, raw, depth)
    decoded = Attr.decode(raw)
    if fast is not None:
        assert fast == (dumpfmt.node_head(name, ino, decoded, depth), decoded.typ is FileType.DIRECTORY)
    if decoded.flags or decoded.rdev or len(raw) != 72:
        assert fast is None


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(FileType)), st.integers(0, 0o177777), U32, U32, TIMES, TIMES, TIMES, U32,
       st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
def test_plain_record_is_attr_encode(typ: FileType, mode: int, uid: int, gid: int, a: int, m: int, c: int,
                                     nlink: int, length: int, parent: int) -> None:
    attr = Attr(typ, mode & 0o7777, uid, gid, a, m, c, nlink, length, 0, parent)
    (a_s, a_n), (m_s, m_n), (c_s, c_n) = divmod(a, NS), divmod(m, NS), divmod(c, NS)
    assert plain_record(typ, mode, uid, gid, a_s, a_n, m_s, m_n, c_s, c_n, nlink, length, parent) == attr.encode()


def _attr_doc(ino: int, **kw: Any) -> dict[str, Any]:
    doc = {"inode": ino, "type": "regular", "mode": 420, "uid": 1, "gid": 2, "atime": 1795236770,
           "mtime": -5, "ctime": 0, "atimensec": 1, "mtimensec": 999_999_999, "ctimensec": 7, "nlink": 1,
           "length": 5000}
    doc.update(kw)
    return {k: v for k, v in doc.items() if v is not None}


def _document() -> str:
    """A dump whose files are plain (matched by the one-regex path), nearly plain (each a different reason
    to take the JSON path), hard-linked and oddly named."""
    files: dict[str, Any] = {
        "plain": {"attr": _attr_doc(10)},
        "pct%25name": {"attr": _attr_doc(11, length=0)},
        'q"uote': {"attr": _attr_doc(12)},
        "no-nsec": {"attr": _attr_doc(13, atimensec=None)},
        "xattr": {"attr": _attr_doc(14), "xattrs": [{"name": "user.a", "value": "b"}]},
        "fifo": {"attr": _attr_doc(15, type="fifo", length=0)},
        "flags": {"attr": {"inode": 16, "flags": 1, **{k: v for k, v in _attr_doc(16).items() if k != "inode"}}},
        "hard-a": {"attr": _attr_doc(17, nlink=2)},
        "big-nsec": {"attr": _attr_doc(18, ctimensec=NS)},
        "float": {"attr": _attr_doc(19, uid=1.0)},
    }
    sub = {"attr": {**_attr_doc(3, type="directory", length=0, nlink=2)},
           "entries": {"hard-b": {"attr": _attr_doc(17, nlink=2)}, "plain2": {"attr": _attr_doc(20)}}}
    root = {"attr": _attr_doc(1, type="directory", length=0, nlink=3), "entries": {**files, "sub": sub}}
    doc = {"Setting": {"Name": "t", "UUID": "u", "Storage": "file", "Bucket": "/tmp/b/", "BlockSize": 4096,
                       "TrashDays": 0, "MetaVersion": 1},
           "Counters": {}, "Sustained": [], "DelFiles": [], "FSTree": root}
    return json.dumps(doc, indent=2)


def _compact_attrs(text: str) -> str:
    """Print every ``attr`` object on one line without spaces, as `attr_json` and JuiceFS do."""
    doc = json.loads(text)
    out = json.dumps(doc, indent=2)
    for node in _nodes(doc["FSTree"]):
        one = json.dumps(node["attr"], indent=2)
        compact = json.dumps(node["attr"], separators=(",", ":"))
        out = _replace_indented(out, one, compact)
    return out


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    out = [node]
    for child in node.get("entries", {}).values():
        out += _nodes(child)
    return out


def _replace_indented(text: str, block: str, compact: str) -> str:
    lines = block.split("\n")
    for indent in range(0, 24, 2):
        shifted = ("\n" + " " * indent).join(lines)
        if shifted in text:
            return text.replace(shifted, compact)
    return text


def _events(text: str, read_size: int) -> list[tuple[Any, ...]]:
    """The reader's events with each "files" event spelled as its "file" events (where a run of plain files
    ends depends on the read buffer; what it says does not)."""
    return flat_events(DumpReader(io.BytesIO(text.encode()).read, read_size).events())


def flat_events(events: Any) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        if e[0] == "files":
            out.extend(("file", name, tuple(row)) for name, row in zip(e[1], e[2], strict=True))
        else:
            out.append(e)
    return out


def test_file_events_do_not_depend_on_the_path_or_the_read_size(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _compact_attrs(_document())
    assert '"attr": {"inode":10,"type":"regular",' in text  # the shape the one-regex path reads
    reference = _events(text, 1 << 16)
    files = [e[1] for e in reference if e[0] == "file"]
    assert files == ["plain", "pct%25name", 'q"uote', "hard-a", "hard-b", "plain2"]
    assert ("file", "plain", (10, 420, 1, 2, 1795236770, -5, 0, 1, 999_999_999, 7, 1, 5000)) in reference
    for size in (5, 64, 333):
        assert _events(text, size) == reference
    monkeypatch.setattr(dumpfmt, "plain_run", lambda *args: None)
    assert _events(text, 1 << 16) == reference
    monkeypatch.setattr(dumpfmt, "_PLAIN_FILE", dumpfmt.re.compile("(?!)"))
    assert _events(text, 1 << 16) == reference
    assert _events(json.dumps(json.loads(text), sort_keys=True), 1 << 16) == [
        e for e in _events(json.dumps(json.loads(text), sort_keys=True), 7)]


async def _load_all(text: str, url: str, batch_keys: int = load_mod.BATCH_KEYS) -> dict[bytes, bytes]:
    kv = await open_kv(url)
    try:
        await load_mod.load_meta(kv, io.BytesIO(text.encode()).read, batch_keys=batch_keys)

        async def body(tx: Any) -> list[tuple[bytes, bytes]]:
            return await tx.scan(b"\x00", b"\xff\xff")

        return {k: v for k, v in await kv.read(body) if not k.startswith(b"setting")}
    finally:
        await kv.close()


async def test_load_through_file_events_writes_what_the_node_path_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _compact_attrs(_document())
    fast = await _load_all(text, "memory://fast-paths-a")
    original = load_mod._Loader.file

    def as_node(self: load_mod._Loader, name: str, f: dumpfmt.PlainFile) -> None:
        ino, mode, uid, gid, a_s, m_s, c_s, a_n, m_n, c_n, nlink, length = f
        attr = {"inode": ino, "type": "regular", "mode": mode, "uid": uid, "gid": gid, "atime": a_s,
                "mtime": m_s, "ctime": c_s, "atimensec": a_n, "mtimensec": m_n, "ctimensec": c_n, "nlink": nlink,
                "length": length}
        self.node(name, {"attr": attr}, False)

    def files_as_nodes(self: load_mod._Loader, names: list[str], rows: list[dumpfmt.PlainFile], start: int) -> int:
        for name, row in zip(names[start:], rows[start:], strict=True):
            as_node(self, name, row)
        return len(names)

    monkeypatch.setattr(load_mod._Loader, "file", as_node)
    monkeypatch.setattr(load_mod._Loader, "files", files_as_nodes)
    general = await _load_all(text, "memory://fast-paths-b")
    monkeypatch.setattr(load_mod._Loader, "file", original)
    monkeypatch.undo()
    assert fast.keys() == general.keys()
    assert [k for k in fast if fast[k] != general[k]] == [keys.attr(TRASH_INODE)]  # a fresh trash root each
    assert len(fast) > 20
    # a "files" event split over batches of three keys writes the same
    small = await _load_all(text, "memory://fast-paths-c", batch_keys=3)
    assert small.keys() == fast.keys()
    assert [k for k in fast if fast[k] != small[k]] == [keys.attr(TRASH_INODE)]

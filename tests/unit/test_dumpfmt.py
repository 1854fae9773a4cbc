"""The JuiceFS JSON dump format: escaping, node text, setting, and the streaming reader."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jfs.domain import dumpfmt
from jfs.domain.attrs import NS, Attr, FileType
from jfs.domain.dumpfmt import DumpFormatError, DumpReader, escape, unescape

NOTES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "juicefs-design-notes.md"
"""Where the notes live beside a checkout (the example below is a verbatim copy of their §12.4)."""


def _example() -> str:
    return EXAMPLE


def test_example_is_the_one_of_the_design_notes() -> None:
    if not NOTES.exists():
        pytest.skip(f"{NOTES} is not beside this checkout (a clone on its own): the copied example cannot be compared with its source")
    text = NOTES.read_text()
    m = re.search(r"```json\n(.*?)```", text[text.index("### 12.4"):], re.S)
    assert m is not None and m.group(1) == EXAMPLE


EXAMPLE = """{
  "Setting": {
    "Name": "vol",
    "UUID": "fd54a40c-1296-4395-8ee2-d0e29984fcbd",
    "Storage": "file",
    "Tiers": {
      "0": {
        "ID": 0,
        "StorageClass": "",
        "Tag": ""
      }
    },
    "Bucket": "/var/jfs/bucket/",
    "BlockSize": 4096,
    "Compression": "none",
    "EncryptAlgo": "aes256gcm-rsa",
    "TrashDays": 1,
    "MetaVersion": 1,
    "MinClientVersion": "1.1.0-A",
    "DirStats": true,
    "EnableACL": false
  },
  "Counters": {
    "usedSpace": 12288,
    "usedInodes": 3,
    "nextInodes": 1026,
    "nextChunk": 4097,
    "nextSession": 2,
    "nextTrash": 0
  },
  "Sustained": [],
  "DelFiles": [],
  "FSTree": {
    "attr": {"inode":1,"type":"directory","mode":511,"uid":0,"gid":0,"atime":1795236770,"mtime":1795236785,"ctime":1795236785,"atimensec":473211174,"mtimensec":944103908,"ctimensec":944103908,"nlink":3,"length":0},
    "entries": {
      "dir1": {
        "attr": {"inode":2,"type":"directory","mode":493,"uid":0,"gid":0,"atime":1795236785,"mtime":1795236785,"ctime":1795236785,"atimensec":828260852,"mtimensec":828260852,"ctimensec":828260852,"nlink":2,"length":0},
        "entries": {
          "file1": {
            "attr": {"inode":3,"type":"regular","mode":420,"uid":0,"gid":0,"atime":1795236785,"mtime":1795236785,"ctime":1795236785,"atimensec":829532064,"mtimensec":928164357,"ctimensec":946717881,"nlink":2,"length":110},
            "xattrs": [{"name":"user.color","value":"blue"}],
            "chunks": [{"index":0,"slices":[{"id":1,"size":12,"len":12},{"id":3,"pos":4,"size":8,"len":8},{"id":4,"pos":100,"size":10,"len":10}]}]
          }
        }
      },
      "hard1": {
        "attr": {"inode":3,"type":"regular","mode":420,"uid":0,"gid":0,"atime":1795236785,"mtime":1795236785,"ctime":1795236785,"atimensec":829532064,"mtimensec":928164357,"ctimensec":946717881,"nlink":2,"length":110},
        "xattrs": [{"name":"user.color","value":"blue"}],
        "chunks": [{"index":0,"slices":[{"id":1,"size":12,"len":12},{"id":3,"pos":4,"size":8,"len":8},{"id":4,"pos":100,"size":10,"len":10}]}]
      },
      "link1": {
        "attr": {"inode":4,"type":"symlink","mode":511,"uid":0,"gid":0,"atime":1795236785,"mtime":1795236785,"ctime":1795236785,"atimensec":944103908,"mtimensec":944103908,"ctimensec":944103908,"nlink":1,"length":0},
        "symlink": "dir1/file1"
      }
    }
  },
  "Trash": {
    "attr": {"inode":9223372032828243968,"type":"directory","mode":365,"uid":0,"gid":0,"atime":1795236770,"mtime":1795236770,"ctime":1795236770,"atimensec":473211174,"mtimensec":473211174,"ctimensec":473211174,"nlink":2,"length":0},
    "entries": {
    }
  }
}
"""


def events_of(text: str, read_size: int = 1 << 16) -> list[tuple[Any, ...]]:
    return list(DumpReader(io.BytesIO(text.encode()).read, read_size).events())


def render(text: str) -> str:
    """Rebuild the whole document from the reader's events with the writer's pieces."""
    head: dict[str, Any] = {}
    out: list[str] = []
    depth: list[int] = []
    label = ""
    for ev in events_of(text):
        if ev[0] == "section":
            head[ev[1]] = ev[2]
        elif ev[0] == "tree":
            if not out:
                head["Setting"] = dumpfmt.dump_setting(head["Setting"], keep_secret=True)
                out.append(dumpfmt.go_json_indent(head)[: -len("\n}")] + ",")
            else:
                out.append(",")
            label = ev[1]
        elif ev[0] == "node":
            _, name, fields, has_entries = ev
            if name is not None and depth and depth[-1] < 0:
                out.append(",")
            if depth:
                depth[-1] = -abs(depth[-1])
            d = 1 if name is None else abs(depth[-1]) + 2
            ino, attr = dumpfmt.attr_from_json(fields["attr"])
            xattrs = dumpfmt.xattrs_from_json(fields["xattrs"]) if "xattrs" in fields else None
            chunks = dumpfmt.chunks_from_json(fields["chunks"]) if "chunks" in fields else None
            symlink = unescape(fields["symlink"]) if "symlink" in fields else None
            shown = label if name is None else name
            out.append(dumpfmt.node_head(shown, ino, attr, d, symlink=symlink, xattrs=xattrs, chunks=chunks))
            if has_entries:
                depth.append(d)
        elif ev[0] == "end":
            out.append(dumpfmt.dir_tail(abs(depth.pop())))
    return "".join(out) + "\n}\n"


# ------------------------------------------------------------------------------------------ escaping

@given(st.binary(max_size=300))
def test_escape_round_trips_any_bytes(raw: bytes) -> None:
    text = escape(raw)
    assert unescape(text) == raw
    text.encode("utf-8")  # always valid UTF-8 (no smuggled surrogates)
    assert json.loads(f'"{text}"') == text  # safe inside a JSON string as is
    assert not any(c <= " " or c in '"\\' for c in text)


@given(st.text(alphabet=st.characters(exclude_characters='%"\\\ufffd', min_codepoint=0x21, exclude_categories=["Cs"]),
               max_size=50))
def test_plain_names_are_unchanged(name: str) -> None:
    assert escape(name.encode()) == name


@pytest.mark.parametrize(
    ("raw", "text"),
    [  # as juicefs 1.4.2 printed them
        (b"a b", "a%20b"),
        (b"pct%25", "pct%2525"),
        (b'q"uote', "q%22uote"),
        (b"back\\slash", "back%5Cslash"),
        (b"ctl\x01\x1f", "ctl%01%1F"),
        (b"inv\xff\xfe", "inv%FF%FE"),
        (b"lt<gt>&amp", "lt<gt>&amp"),
        ("oké".encode(), "oké"),
        (b"tab\tnl\n", "tab%09nl%0A"),
        (b"\x7f", "\x7f"),
        ("\ufffd".encode(), "%EF%BF%BD"),  # juicefs writes "%EF" and loses two bytes
    ],
)
def test_escape_matches_juicefs(raw: bytes, text: str) -> None:
    assert escape(raw) == text
    assert unescape(text) == raw


def test_unescape_keeps_stray_percent() -> None:
    assert unescape("100%zz") == b"100%zz"
    assert unescape("%4a%") == b"%4a%"
    assert unescape("%41%4") == b"A%4"


def test_go_json_uses_html_safe_escapes() -> None:
    assert dumpfmt.go_json([{"name": "user.k<&>", "value": "v\u2028"}]) == (
        '[{"name":"user.k\\u003c\\u0026\\u003e","value":"v\\u2028"}]'
    )


# ------------------------------------------------------------------------------------------ node text

def test_verbatim_example_rerenders_identically() -> None:
    text = _example()
    assert render(text) == text


def test_attr_json_omits_empty_fields() -> None:
    attr = Attr(typ=FileType.CHARDEV, mode=0o600, atime_ns=5 * NS, mtime_ns=6 * NS + 7, ctime_ns=8 * NS,
                nlink=1, length=99, rdev=259, flags=0x20, tier=2)
    assert dumpfmt.attr_json(9, attr) == (
        '{"inode":9,"flags":32,"type":"chardev","mode":384,"uid":0,"gid":0,"atime":5,"mtime":6,"ctime":8,'
        '"mtimensec":7,"nlink":1,"length":0,"rdev":259,"tier":2}'
    )
    ino, back = dumpfmt.attr_from_json(json.loads(dumpfmt.attr_json(9, attr)))
    assert ino == 9 and back.rdev == 259 and back.mtime_ns == attr.mtime_ns and back.flags == 0x20


def test_negative_times_survive() -> None:
    attr = Attr(typ=FileType.REGULAR, atime_ns=-1, mtime_ns=-5 * NS - 3, ctime_ns=0)
    _, back = dumpfmt.attr_from_json(json.loads(dumpfmt.attr_json(2, attr)))
    assert (back.atime_ns, back.mtime_ns) == (-1, -5 * NS - 3)


def test_multi_chunk_layout() -> None:
    from jfs.domain.records import SliceRecord

    attr = Attr(typ=FileType.REGULAR, nlink=1, length=3 << 26)
    chunks = [(0, [SliceRecord(0, 7, 10, 0, 10)]), (2, [SliceRecord(5, 0, 0, 0, 3), SliceRecord(0, 8, 9, 1, 8)])]
    text = dumpfmt.node_head("f", 9, attr, 3, chunks=chunks)
    assert text.endswith(
        ',\n        "chunks": [\n'
        '          {"index":0,"slices":[{"id":7,"size":10,"len":10}]},\n'
        '          {"index":2,"slices":[{"id":0,"pos":5,"size":0,"len":3},{"id":8,"size":9,"off":1,"len":8}]}\n'
        "        ]\n      }"
    )


def test_chunkid_alias() -> None:
    [(index, records)] = dumpfmt.chunks_from_json([{"index": 1, "slices": [{"chunkid": 42, "size": 5, "len": 5}]}])
    assert index == 1 and records[0].id == 42 and records[0].pos == 0


def test_dump_setting_order_masks_and_omissions() -> None:
    doc = {"EnableACL": False, "Name": "v", "SecretKey": "s3cr3t", "AccessKey": "ak", "Shards": 0, "UUID": "u",
           "Storage": "s3", "Bucket": "b", "BlockSize": 4096, "TrashDays": 1, "DirStats": False, "Custom": 1}
    out = dumpfmt.dump_setting(doc)
    assert list(out) == ["Name", "UUID", "Storage", "Bucket", "AccessKey", "SecretKey", "BlockSize", "TrashDays",
                         "EnableACL", "Custom"]
    assert out["SecretKey"] == "removed"
    assert dumpfmt.dump_setting(doc, keep_secret=True)["SecretKey"] == "s3cr3t"


# ------------------------------------------------------------------------------------------ reader

@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=97))
def test_reader_is_independent_of_read_boundaries(read_size: int) -> None:
    text = _example()
    assert events_of(text, read_size) == events_of(text)


def test_reader_events_of_example() -> None:
    evs = events_of(_example())
    kinds = [e[0] if e[0] != "node" else ("node", e[1], e[3]) for e in evs]
    assert kinds == [
        "section", "section", "section", "section", "tree", ("node", None, True), ("node", "dir1", True),
        ("node", "file1", False), "end", ("node", "hard1", False), ("node", "link1", False), "end",
        "tree", ("node", None, True), "end",
    ]


def test_leaf_fast_path_reads_what_the_general_path_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaves with escaped names, ``attr`` not first, a directory's ``attr`` followed by entries, compact
    and indented JSON: the events are the same with `DumpReader._leaf_entry` on and off."""
    doc = json.loads(_example())
    entries = doc["FSTree"]["entries"]
    leaf = entries["hard1"]
    entries['q"uo\\te/\u00e9'] = leaf
    entries["late-attr"] = {"xattrs": leaf["xattrs"], "attr": leaf["attr"]}
    entries["empty"] = {"attr": dict(leaf["attr"], type="directory"), "entries": {}}
    texts = [json.dumps(doc, indent=2), json.dumps(doc, separators=(",", ":")), _example()]
    fast = [events_of(t, n) for t in texts for n in (7, 1 << 16)]
    monkeypatch.setattr(DumpReader, "_leaf_entry", lambda self, comma: None)
    assert fast == [events_of(t, n) for t in texts for n in (7, 1 << 16)]


def test_leaf_with_entries_is_an_error() -> None:
    doc = json.loads(_example())
    doc["FSTree"]["entries"]["x"] = {"attr": doc["FSTree"]["entries"]["hard1"]["attr"], "entries": {}}
    with pytest.raises(DumpFormatError, match="has entries but is not a directory"):
        events_of(json.dumps(doc))


def test_reader_accepts_sorted_keys_and_compact_json() -> None:
    doc = json.loads(_example())
    doc["FSTree"]["xattrs"] = [{"name": "user.a", "value": "b"}]
    evs = events_of(json.dumps(doc, sort_keys=True, separators=(",", ":")))
    assert ("late", {"xattrs": [{"name": "user.a", "value": "b"}]}) in evs
    assert [e[1] for e in evs if e[0] == "section"] == ["Counters", "DelFiles", "Setting", "Sustained"]
    assert sum(1 for e in evs if e[0] == "node") == 6


@pytest.mark.parametrize("cut", [10, 400, 1200, -30, -3])
def test_truncated_dump_is_an_error(cut: int) -> None:
    text = _example()
    with pytest.raises(DumpFormatError):
        events_of(text[:cut])


@pytest.mark.parametrize(
    "text",
    ['{"FSTree": {"attr": {}, "entries": {"a": {} "b": {}}}}', '{"Setting": {}} x', '[1]',
     '{"FSTree": {"entries": {"a": {"attr": 1}},}}'],
)
def test_malformed_dump_is_an_error(text: str) -> None:
    with pytest.raises(DumpFormatError):
        events_of(text)


# ------------------------------------------------------------------------------------------ quotas

JUICEFS_QUOTAS = (  # verbatim from `juicefs dump` 1.4.2 after `juicefs quota set --inodes 50` on four directories
    ',\n  "Quotas": {\n    "11": {\n      "maxSpace": -1,\n      "maxInodes": 50\n    },\n    "12": {\n'
    '      "maxSpace": -1,\n      "maxInodes": 50\n    },\n    "2": {\n      "maxSpace": -1,\n      "maxInodes": 50\n'
    '    },\n    "3": {\n      "maxSpace": -1,\n      "maxInodes": 50\n    }\n  }'
)


def test_quotas_are_printed_as_juicefs_prints_them() -> None:
    quotas = {2: (-1, 50), 3: (-1, 50), 11: (-1, 50), 12: (-1, 50)}
    assert ',\n  "Quotas": ' + dumpfmt.quotas_json(quotas) == JUICEFS_QUOTAS  # keys in string order, as Go's
    assert dumpfmt.quotas_from_json(json.loads("{" + JUICEFS_QUOTAS[1:] + "}")["Quotas"]) == quotas


def test_quotas_from_json_defaults_and_errors() -> None:
    assert dumpfmt.quotas_from_json(None) == {}
    assert dumpfmt.quotas_from_json({"7": {"maxSpace": 4096}}) == {7: (4096, 0)}
    for bad in ([1], {"x": {}}, {"0": {}}, {"5": 3}, {"5": {"maxSpace": "lots"}}):
        with pytest.raises(DumpFormatError):
            dumpfmt.quotas_from_json(bad)


def test_a_dump_with_quotas_rerenders_identically() -> None:
    text = _example()
    at = text.index(',\n  "FSTree"')
    with_quotas = text[:at] + JUICEFS_QUOTAS + text[at:]
    assert render(with_quotas) == with_quotas


# ------------------------------------------------------------------------------------------ block checksums

def test_slices_carry_their_checksums_in_a_field_juicefs_ignores() -> None:
    from jfs.domain.checksums import SliceSums
    from jfs.domain.records import SliceRecord

    records = [SliceRecord(0, 7, 10, 0, 10), SliceRecord(4, 8, 3 << 20, 1, 8), SliceRecord(9, 0, 0, 0, 3)]
    sums = {7: SliceSums(10, (0x2A,)), 8: SliceSums(3 << 20, (1, 0xFFFFFFFF, 0xDEADBEEF)), 0: SliceSums(0, ())}
    text = dumpfmt.chunk_json(0, records, sums)
    assert text == (
        '{"index":0,"slices":[{"id":7,"size":10,"len":10,"jfsCrc32":"0000002a"},'
        '{"id":8,"pos":4,"size":3145728,"off":1,"len":8,"jfsCrc32":"00000001ffffffffdeadbeef"},'
        '{"id":0,"pos":9,"size":0,"len":3}]}'
    )
    assert dumpfmt.chunk_json(0, records) == dumpfmt.chunk_json(0, records, {})  # no records: JuiceFS's text
    assert "jfsCrc32" not in dumpfmt.chunk_json(0, records[:1], {7: SliceSums(11, (1,))})  # not this slice's
    chunks, back = dumpfmt.read_chunks([json.loads(text)])
    assert chunks == [(0, records)]
    assert back == [(7, sums[7]), (8, sums[8])]


@pytest.mark.parametrize("value", ["xyz12345", "1234567", 42, "0000002a 0000002b"])
def test_malformed_checksums_are_a_format_error(value: Any) -> None:
    with pytest.raises(DumpFormatError):
        dumpfmt.read_chunks([{"index": 0, "slices": [{"id": 1, "size": 5, "len": 5, "jfsCrc32": value}]}])


# ------------------------------------------------------------------------------------------ encrypted volumes

def test_an_encrypted_setting_is_recognised_and_only_unreadable_ones_refused() -> None:
    from jfs.domain.settings import EncryptedVolume, Settings

    doc = json.loads(_example())["Setting"]
    plain = Settings.from_json(json.dumps(doc))
    assert plain.encryption is None
    plain.check_readable()
    encrypted = Settings.from_json(json.dumps(dict(doc, EncryptKey="zLCRpCMW8yKR", KeyEncrypted=True)))
    assert encrypted.encryption == "aes256gcm-rsa" and encrypted.key_encrypted
    encrypted.check_readable()  # jfs reads encrypted volumes: whether the key opens is decided at mount
    out = json.loads(encrypted.to_json())
    assert (out["EncryptKey"], out["KeyEncrypted"]) == ("zLCRpCMW8yKR", True)
    assert list(out).index("EncryptKey") + 1 == list(out).index("EncryptAlgo")  # JuiceFS's field order
    assert json.loads(encrypted.to_json(mask_secrets=True))["EncryptKey"] == "removed"  # status never shows it
    chacha = Settings.from_json(json.dumps(dict(doc, EncryptKey="removed", EncryptAlgo="chacha20-rsa")))
    assert chacha.encryption == "chacha20-rsa"
    assert json.loads(chacha.to_json())["EncryptAlgo"] == "chacha20-rsa"  # kept as stored, not reset
    with pytest.raises(EncryptedVolume, match="^volume 'vol' is encrypted but its setting holds no key"):
        chacha.check_readable()
    sm4 = Settings.from_json(json.dumps(dict(doc, EncryptKey="zLCRpCMW8yKR", EncryptAlgo="sm4gcm")))
    with pytest.raises(EncryptedVolume) as e:
        sm4.check_readable()
    assert str(e.value) == (
        "volume 'vol' is encrypted with sm4gcm, which jfs does not support (supported: aes256gcm-rsa, chacha20-rsa)"
    )

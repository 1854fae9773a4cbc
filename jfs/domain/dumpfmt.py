"""The JSON metadata dump of JuiceFS (``juicefs dump`` / ``juicefs load``), spelled exactly as 1.4.2 spells it.

Pure: name escaping, attribute and chunk conversion, the text of one tree node, and a streaming reader.

**Escaping** (names, symlink targets, xattr values). A byte string is shown as UTF-8 text in which every
byte ≤ 0x20, ``%``, ``"``, ``\\`` and every byte of an invalid UTF-8 sequence becomes ``%XX`` (uppercase hex);
a string that needs none of it is unchanged, so old dumps without escapes still load. `unescape` turns every
``%XX`` (uppercase hex) back into its byte and keeps any other ``%`` as is. One deliberate difference from
JuiceFS: a literal U+FFFD character is written as ``%EF%BF%BD`` (JuiceFS writes ``%EF`` and loses two bytes);
both load it back correctly.

**Layout of the document** (what `render_node` and the dump use case produce): a top-level object with
``Setting`` (the volume format in JuiceFS's field order, empty optional fields omitted), ``Counters``,
``Sustained``, ``DelFiles`` — printed like Go's ``json.MarshalIndent`` with two spaces — then ``FSTree`` and
``Trash``, whose nodes are printed one field per line: ``attr`` and ``xattrs`` on one line each, ``chunks`` on
one line when there is one chunk and one line per chunk otherwise, ``entries`` last, children sorted by the
bytes of their names. Strings that JuiceFS marshals with Go's encoder (xattr names and values, the setting)
get Go's HTML-safe escapes (``\\u003c``, ``\\u003e``, ``\\u0026``, ``\\u2028``, ``\\u2029``); names and symlink
targets are printed raw (escaping already made them safe).

**Quotas** (`quotas_json`, `quotas_from_json`): the ``Quotas`` section, between ``DelFiles`` and ``FSTree``
and left out when empty, maps a directory's inode (a string; keys in string order, as Go sorts them) to
``{"maxSpace", "maxInodes"}`` — JuiceFS's ``DumpedQuota``, whose usage fields are not dumped: a load
recounts them from the tree. ``UserQuotas``/``GroupQuotas`` (uid/gid → the same object) follow it in the
same shape (`quotas_json`/`quotas_from_json` serve them too; ADR 0026).

**jfs extension: block checksums** (ADR 0008). In a dump of a volume that has checksum records, a slice
object of ``chunks`` may end with ``"jfsCrc32": "<hex>"``: the CRC-32 of each block of the slice (8 lowercase
hex digits per block, in order) — the record of the slice, whose size is the slice's ``size``. JuiceFS
ignores unknown fields of a slice (1.4.2 loads such a dump and serves its data; its own re-dump drops them),
so the dump stays loadable by JuiceFS. Every record of the slice carries it (a slice shared by several files
shows it under each).

**Reading** (`DumpReader`): a pull parser over any byte stream that yields one event per tree node and never
holds more than one node (plus the read-ahead buffer) in memory. Everything outside ``FSTree``/``Trash`` and
every node field except ``entries`` is a small JSON value decoded by the C scanner of the standard `json`
module; only the nesting of ``entries`` is followed by hand. Any key order is accepted (``jq -S`` output
loads), except that a node's ``attr`` must precede its ``entries``. Runs of plain files printed one field per
line (the dump's own layout) are read many at a time by `jfs.domain.dumpfmt_runs` ("files" events, ADR 0089).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from jfs.domain.attrs import NS, PLAIN_RECORD, PLAIN_RECORD_SIZE, TRASH_INODE, Attr, FileType
from jfs.domain.checksums import CRC32, SliceSums
from jfs.domain.dumpfmt_runs import WINDOW, plain_run
from jfs.domain.records import SliceRecord

CHUNK_SIZE = 1 << 26
INDENT = "  "

TYPE_NAMES: dict[FileType, str] = {
    FileType.REGULAR: "regular",
    FileType.DIRECTORY: "directory",
    FileType.SYMLINK: "symlink",
    FileType.FIFO: "fifo",
    FileType.BLOCKDEV: "blockdev",
    FileType.CHARDEV: "chardev",
    FileType.SOCKET: "socket",
}
TYPE_FROM_NAME: dict[str, FileType] = {v: k for k, v in TYPE_NAMES.items()}

# The volume format ("Setting") as JuiceFS's Go struct orders it; `False` marks fields printed even when empty.
SETTING_FIELDS: tuple[tuple[str, bool], ...] = (
    ("Name", False), ("UUID", False), ("Storage", False), ("StorageClass", True), ("Tiers", True),
    ("Bucket", False), ("AccessKey", True), ("SecretKey", True), ("SessionToken", True), ("BlockSize", False),
    ("Compression", True), ("Shards", True), ("HashPrefix", True), ("Capacity", True), ("Inodes", True),
    ("EncryptKey", True), ("EncryptAlgo", True), ("KeyEncrypted", True), ("UploadLimit", True),
    ("DownloadLimit", True), ("TrashDays", False), ("MetaVersion", True), ("MinClientVersion", True),
    ("MaxClientVersion", True), ("DirStats", True), ("UserGroupQuota", True), ("EnableACL", False),
    ("RangerRestUrl", True), ("RangerService", True), ("ChangeLog", True), ("KerbConf", True),
)
MASKED_SETTINGS = ("SecretKey", "SessionToken")
"""Replaced by "removed" unless the secrets are asked for (EncryptKey stays: the data needs it)."""

TREE_KEYS = ("FSTree", "Trash")
SUMS_FIELD = "jfsCrc32"
"""The field of a dumped slice that carries its block checksums (jfs only; see the module docstring)."""


class DumpFormatError(ValueError):
    """The dump is not valid JSON, or not shaped like a metadata dump."""


# --------------------------------------------------------------------------------------------- escaping

_NEEDS_ESCAPE = re.compile("[\x00-\x20%\"\\\\\ufffd\udc80-\udcff]")
_UNESCAPE = re.compile(rb"%([0-9A-F]{2})")


def _escape_char(m: re.Match[str]) -> str:
    c = m.group()
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, smuggled through by surrogateescape
        return f"%{code - 0xDC00:02X}"
    if c == "\ufffd":
        return "%EF%BF%BD"
    return f"%{code:02X}"


def escape(raw: bytes) -> str:
    """`raw` as dump text (see the module docstring); the result is safe inside a JSON string as is."""
    text = raw.decode("utf-8", "surrogateescape")
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return _NEEDS_ESCAPE.sub(_escape_char, text)


def unescape(text: str) -> bytes:
    """The bytes that `escape` turned into `text`."""
    data = text.encode("utf-8", "surrogateescape")
    if b"%" not in data:
        return data
    return _UNESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), data)


_GO_HTML = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def go_json(value: Any) -> str:
    """`value` as Go's ``json.Marshal`` prints it: compact, UTF-8, HTML-safe escapes."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_GO_HTML)


def go_json_indent(value: Any, level: int = 0) -> str:
    """`value` as Go's ``json.MarshalIndent(v, "", "  ")`` prints it, nested `level` levels deep."""
    text = json.dumps(value, ensure_ascii=False, indent=2).translate(_GO_HTML)
    if level:
        text = text.replace("\n", "\n" + INDENT * level)
    return text


# --------------------------------------------------------------------------------------------- setting

def dump_setting(doc: dict[str, Any], *, keep_secret: bool = False) -> dict[str, Any]:
    """The setting as the dump shows it: JuiceFS's field order and omissions; secrets masked unless kept.

    Fields JuiceFS does not know are kept after the known ones, in their stored order.
    """
    out: dict[str, Any] = {}
    for name, omit_empty in SETTING_FIELDS:
        if name not in doc:
            if not omit_empty:
                out[name] = "" if name in ("Name", "UUID", "Storage", "Bucket") else (False if name == "EnableACL" else 0)
            continue
        value = doc[name]
        if omit_empty and not value:
            continue
        if name in MASKED_SETTINGS and not keep_secret:
            value = "removed"
        out[name] = value
    known = {name for name, _ in SETTING_FIELDS}
    for name, value in doc.items():
        if name not in known:
            out[name] = value
    return out


# --------------------------------------------------------------------------------------------- attributes

def attr_json(ino: int, attr: Attr) -> str:
    """The one-line ``attr`` object of a node (``length`` is 0 for everything but regular files)."""
    a_s, a_n = divmod(attr.atime_ns, NS)
    m_s, m_n = divmod(attr.mtime_ns, NS)
    c_s, c_n = divmod(attr.ctime_ns, NS)
    typ = attr.typ
    if a_n and m_n and c_n and not (attr.flags or attr.rdev or attr.tier):  # the usual record: one f-string
        return (f'{{"inode":{ino},"type":"{TYPE_NAMES[typ]}","mode":{attr.mode & 0o7777},"uid":{attr.uid},'
                f'"gid":{attr.gid},"atime":{a_s},"mtime":{m_s},"ctime":{c_s},"atimensec":{a_n},'
                f'"mtimensec":{m_n},"ctimensec":{c_n},"nlink":{attr.nlink},'
                f'"length":{attr.length if typ is FileType.REGULAR else 0}}}')
    parts = [f'{{"inode":{ino}']
    if attr.flags:
        parts.append(f',"flags":{attr.flags}')
    parts.append(
        f',"type":"{TYPE_NAMES[attr.typ]}","mode":{attr.mode & 0o7777},"uid":{attr.uid},"gid":{attr.gid},'
        f'"atime":{a_s},"mtime":{m_s},"ctime":{c_s}'
    )
    if a_n:
        parts.append(f',"atimensec":{a_n}')
    if m_n:
        parts.append(f',"mtimensec":{m_n}')
    if c_n:
        parts.append(f',"ctimensec":{c_n}')
    length = attr.length if attr.typ is FileType.REGULAR else 0
    parts.append(f',"nlink":{attr.nlink},"length":{length}')
    if attr.rdev:
        parts.append(f',"rdev":{attr.rdev}')
    if attr.tier:
        parts.append(f',"tier":{attr.tier}')
    parts.append("}")
    return "".join(parts)


def attr_from_json(doc: dict[str, Any]) -> tuple[int, Attr]:
    """(inode, attributes) of a node's ``attr`` object. Length and parent are left for the loader to set.

    Raises DumpFormatError for a missing inode or an unknown type.
    """
    try:
        ino = int(doc["inode"])
        typ = TYPE_FROM_NAME[doc["type"]]
    except KeyError as exc:
        raise DumpFormatError(f"node attributes without a valid {exc.args[0]!r}: {go_json(doc)[:200]}") from None
    get = doc.get
    # positional: typ, mode, uid, gid, atime, mtime, ctime, nlink, length, rdev, parent, flags, acls, tier
    attr = Attr(typ, int(get("mode", 0)) & 0o7777, int(get("uid", 0)), int(get("gid", 0)),
                int(get("atime", 0)) * NS + int(get("atimensec", 0)),
                int(get("mtime", 0)) * NS + int(get("mtimensec", 0)),
                int(get("ctime", 0)) * NS + int(get("ctimensec", 0)),
                int(get("nlink", 1)), int(get("length", 0)), int(get("rdev", 0)), 0, int(get("flags", 0)), 0, 0,
                int(get("tier", 0)))
    return ino, attr


def placeholder_attr(typ: FileType) -> Attr:
    """What JuiceFS dumps for an inode whose attribute record is missing (mode 0, times 0)."""
    return Attr(typ=typ, nlink=2 if typ is FileType.DIRECTORY else 1)


TRASH_PLACEHOLDER = (TRASH_INODE, placeholder_attr(FileType.DIRECTORY))
"""The ``Trash`` node of a volume that never had a trash root (JuiceFS with trash disabled)."""


# --------------------------------------------------------------------------------------------- chunks

def slice_json(r: SliceRecord, sums: SliceSums | None = None) -> str:
    """One slice record; with `sums` (the checksum record of a slice of this size) its ``jfsCrc32`` too."""
    out = f'{{"id":{r.id}'
    if r.pos:
        out += f',"pos":{r.pos}'
    out += f',"size":{r.size}'
    if r.off:
        out += f',"off":{r.off}'
    out += f',"len":{r.len}'
    if sums is not None and sums.algorithm == CRC32 and sums.size == r.size and r.id:
        out += f',"{SUMS_FIELD}":"' + "".join(f"{c:08x}" for c in sums.crcs) + '"'
    return out + "}"


def chunk_json(index: int, records: list[SliceRecord], sums: Mapping[int, SliceSums] | None = None) -> str:
    """One chunk; `sums` maps slice ids to their checksum records (see `slice_json`)."""
    if sums:
        parts = ",".join(slice_json(r, sums.get(r.id)) for r in records)
    else:
        parts = ",".join(slice_json(r) for r in records)
    return f'{{"index":{index},"slices":[' + parts + "]}"


def read_chunks(value: Any) -> tuple[list[tuple[int, list[SliceRecord]]], list[tuple[int, SliceSums]]]:
    """(index, raw slice records) of a node's ``chunks``, and (slice id, checksum record) of the slices that
    carry ``jfsCrc32``. ``chunkid`` is accepted as an alias of ``id``. Raises DumpFormatError."""
    if not isinstance(value, list):
        raise DumpFormatError("'chunks' is not a list")
    out = []
    sums: list[tuple[int, SliceSums]] = []
    for chunk in value:
        try:
            index = int(chunk["index"])
            records = []
            for s in chunk.get("slices") or ():
                sid = s.get("id") or s.get("chunkid") or 0
                r = SliceRecord(int(s.get("pos", 0)), int(sid), int(s.get("size", 0)), int(s.get("off", 0)),
                                int(s.get("len", 0)))
                records.append(r)
                crcs = s.get(SUMS_FIELD)
                if crcs is not None and r.id:
                    sums.append((r.id, _sums_from_hex(crcs, r.size)))
        except (KeyError, TypeError, AttributeError, ValueError):
            raise DumpFormatError(f"malformed chunk: {go_json(chunk)[:200]}") from None
        out.append((index, records))
    return out, sums


_HEX = re.compile("[0-9a-fA-F]*")


def _sums_from_hex(text: Any, size: int) -> SliceSums:
    if not isinstance(text, str) or len(text) % 8 or not _HEX.fullmatch(text):
        raise ValueError(f"{SUMS_FIELD} is not a string of 8-digit hex checksums")
    return SliceSums(size, tuple(int(text[i: i + 8], 16) for i in range(0, len(text), 8)))


def chunks_from_json(value: Any) -> list[tuple[int, list[SliceRecord]]]:
    """(index, raw slice records) of a node's ``chunks`` (`read_chunks` without the checksums)."""
    return read_chunks(value)[0]


# --------------------------------------------------------------------------------------------- quotas

def quotas_json(quotas: Mapping[int, tuple[int, int]]) -> str:
    """The value of the ``Quotas`` section (directory inode -> (max space, max inodes)) as JuiceFS prints
    it one level deep: keys in string order, ``maxSpace`` then ``maxInodes``."""
    doc = {
        str(ino): {"maxSpace": space, "maxInodes": inodes}
        for ino, (space, inodes) in sorted(quotas.items(), key=lambda kv: str(kv[0]))
    }
    return go_json_indent(doc, 1)


def quotas_from_json(value: Any) -> dict[int, tuple[int, int]]:
    """Directory inode -> (max space, max inodes) of a ``Quotas`` section (null: none). A missing limit is
    0 (unlimited, as in JuiceFS). Raises DumpFormatError."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DumpFormatError("'Quotas' is not an object")
    out = {}
    for key, q in value.items():
        try:
            ino = int(key)
            if ino <= 0 or not isinstance(q, dict):
                raise ValueError
            out[ino] = (int(q.get("maxSpace", 0)), int(q.get("maxInodes", 0)))
        except (TypeError, ValueError):
            raise DumpFormatError(f"malformed quota {key!r}: {go_json(q)[:200]}") from None
    return out


def xattrs_from_json(value: Any) -> list[tuple[bytes, bytes]]:
    """(name, value) pairs of a node's ``xattrs``: names are taken verbatim, values unescaped."""
    if not isinstance(value, list):
        raise DumpFormatError("'xattrs' is not a list")
    try:
        return [(str(x["name"]).encode("utf-8", "surrogateescape"), unescape(str(x.get("value", "")))) for x in value]
    except (KeyError, TypeError):
        raise DumpFormatError(f"malformed xattrs: {go_json(value)[:200]}") from None


def xattrs_json(xattrs: list[tuple[bytes, bytes]]) -> str:
    """The one-line ``xattrs`` list; names must be UTF-8 (JuiceFS cannot carry others either)."""
    return go_json([{"name": n.decode("utf-8", "replace"), "value": escape(v)} for n, v in xattrs])


# --------------------------------------------------------------------------------------------- node text

def node_head(
    name: str, ino: int, attr: Attr, depth: int, *, symlink: bytes | None = None,
    xattrs: list[tuple[bytes, bytes]] | None = None, chunks: list[tuple[int, list[SliceRecord]]] | None = None,
    sums: Mapping[int, SliceSums] | None = None,
) -> str:
    """The text of one node up to (for a directory) the opening of its ``entries``.

    `name` is already escaped; `sums` maps slice ids of `chunks` to their checksum records (`slice_json`).
    A directory continues with its children (each preceded by ``,`` but the first) and ends with `dir_tail`;
    any other node is complete.
    """
    prefix = INDENT * depth
    field = prefix + INDENT
    parts = [f'\n{prefix}"{name}": {{\n{field}"attr": {attr_json(ino, attr)}']
    is_dir = attr.typ is FileType.DIRECTORY
    if symlink and not is_dir:
        parts.append(f',\n{field}"symlink": "{escape(symlink)}"')
    if xattrs:
        parts.append(f",\n{field}\"xattrs\": {xattrs_json(xattrs)}")
    if is_dir:
        parts.append(f',\n{field}"entries": {{')
        return "".join(parts)
    if chunks:
        if len(chunks) == 1:
            parts.append(f",\n{field}\"chunks\": [{chunk_json(*chunks[0], sums)}]")
        else:
            inner = field + INDENT
            parts.append(f",\n{field}\"chunks\": [")
            parts.append(",".join(f"\n{inner}{chunk_json(i, rs, sums)}" for i, rs in chunks))
            parts.append(f"\n{field}]")
    parts.append(f"\n{prefix}}}")
    return "".join(parts)


_NAME_OF_VALUE = {t.value: n for t, n in TYPE_NAMES.items()}
_DIR_VALUE = FileType.DIRECTORY.value
_REGULAR_VALUE = FileType.REGULAR.value


def plain_node_text(name: str, ino: int, raw: bytes, depth: int) -> tuple[str, bool] | None:
    """`node_head` of a node that has nothing but its attribute record `raw` (no xattrs, chunks or symlink
    target), straight from the record's bytes, and whether it is a directory; None when `raw` is not the
    usual record (`PLAIN_RECORD_SIZE` bytes, non-zero nanoseconds, no flags or rdev, a known type): then
    `node_head` of the decoded `Attr` gives the text. Same text as `node_head` either way."""
    if len(raw) != PLAIN_RECORD_SIZE:
        return None
    (flags, tm, uid, gid, a_s, a_n, m_s, m_n, c_s, c_n, nlink, length, rdev, _) = PLAIN_RECORD.unpack_from(raw)
    typ = tm >> 12
    tname = _NAME_OF_VALUE.get(typ)
    if flags or rdev or tname is None or not (0 < a_n < NS and 0 < m_n < NS and 0 < c_n < NS):
        return None
    prefix = INDENT * depth
    text = (f'\n{prefix}"{name}": {{\n{prefix}  "attr": {{"inode":{ino},"type":"{tname}","mode":{tm & 0o7777},'
            f'"uid":{uid},"gid":{gid},"atime":{a_s},"mtime":{m_s},"ctime":{c_s},"atimensec":{a_n},'
            f'"mtimensec":{m_n},"ctimensec":{c_n},"nlink":{nlink},'
            f'"length":{length if typ == _REGULAR_VALUE else 0}}}')
    if typ == _DIR_VALUE:
        return text + f',\n{prefix}  "entries": {{', True
    return text + f"\n{prefix}}}", False


def dir_tail(depth: int) -> str:
    """Closes the ``entries`` and the node of a directory opened by `node_head` at `depth`."""
    return f"\n{INDENT * (depth + 1)}}}\n{INDENT * depth}}}"


# --------------------------------------------------------------------------------------------- reading

_WS = re.compile(r"[ \t\n\r]*")
_ENTRY = re.compile(
    r'[ \t\n\r]*(,?)[ \t\n\r]*"((?:[^"\\\x00-\x1f]|\\.)*)"[ \t\n\r]*:[ \t\n\r]*'
    r'(?=\{[ \t\n\r]*"attr"[ \t\n\r]*:[ \t\n\r]*\{([^{}]*)\})'
)
"""An entry's name and the start of its node whose first member is ``attr`` (captured: that object's body)."""
_DIR_TYPE = re.compile(r'"type"[ \t\n\r]*:[ \t\n\r]*"directory"')
_U = "(0|[1-9][0-9]*)"
_I = "(-?(?:0|[1-9][0-9]*))"
_NSEC = "(0|[1-9][0-9]{0,8})"
_PLAIN_FILE = re.compile(
    r'[ \t\n\r]*(,?)[ \t\n\r]*"([^"\\\x00-\x1f]*)"[ \t\n\r]*:[ \t\n\r]*\{[ \t\n\r]*"attr"[ \t\n\r]*:[ \t\n\r]*'
    f'\\{{"inode":{_U},"type":"regular","mode":{_U},"uid":{_U},"gid":{_U},"atime":{_I},"mtime":{_I},'
    f'"ctime":{_I},"atimensec":{_NSEC},"mtimensec":{_NSEC},"ctimensec":{_NSEC},"nlink":{_U},"length":{_U}'
    r'\}[ \t\n\r]*\}'
)
"""A regular file that has nothing but its ``attr``, spelled as `attr_json` (and JuiceFS) spell the usual one:
its name and the attribute fields, read without a JSON decode (the "file" event)."""
READ_SIZE = 1 << 18
MAX_VALUE = 1 << 30
"""Largest single value (one node's chunk list, say) the reader buffers before giving up."""

Event = tuple[Any, ...]
"""One of: ("section", key, value) for a top-level key other than FSTree/Trash; ("tree", key) before the
root node of FSTree or Trash; ("node", escaped name or None for a tree root, fields without ``entries``,
whether ``entries`` follows); ("file", escaped name, `PlainFile`) for an entry that is a regular file with
nothing but the usual ``attr`` (what a "node" event of it would say, without the dictionaries); ("files",
escaped names, `PlainFile` rows) for a run of such entries read at once (`jfs.domain.dumpfmt_runs`: the same
as one "file" event per name; where runs start and end depends on the read buffer); ("late",
fields) for fields a directory lists after its ``entries``; ("end",) when the ``entries`` of the innermost
open directory are complete."""

PlainFile = Sequence[int]
"""(inode, mode, uid, gid, atime, mtime, ctime, atimensec, mtimensec, ctimensec, nlink, length) of a "file"
event (a tuple) or of a row of a "files" event (a list), in the order its ``attr`` spells them (mode not yet
masked)."""


_FILE_KEYS = ("inode", "mode", "uid", "gid", "atime", "mtime", "ctime", "atimensec", "mtimensec", "ctimensec",
              "nlink", "length")
_FILE_ATTR_KEYS = frozenset((*_FILE_KEYS, "type"))
_SIGNED = frozenset(("atime", "mtime", "ctime"))
_NSECS = frozenset(("atimensec", "mtimensec", "ctimensec"))


def _plain_file(fields: dict[str, Any]) -> PlainFile | None:
    """The "file" event's fields when a decoded leaf node is what `_PLAIN_FILE` matches (a regular file
    with nothing but an ``attr`` of exactly the usual fields, integers in the pattern's ranges), so that the
    events do not depend on where the reader's buffer happened to end; else None."""
    attr = fields.get("attr")
    if len(fields) != 1 or not isinstance(attr, dict) or attr.keys() != _FILE_ATTR_KEYS or attr["type"] != "regular":
        return None
    for key in _FILE_KEYS:
        v = attr[key]
        if type(v) is not int or (v < 0 and key not in _SIGNED) or (key in _NSECS and v >= NS):
            return None
    return tuple(attr[k] for k in _FILE_KEYS)


class DumpReader:
    """Streams the events of a dump read through `read(n) -> bytes` (b"" at the end). See `Event`."""

    def __init__(self, read: Callable[[int], bytes], read_size: int = READ_SIZE) -> None:
        self._read = read
        self._read_size = read_size
        self._want = read_size
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._json = json.JSONDecoder()
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._mark: int | None = None
        """Start of a value that may be re-read from the beginning (kept across refills)."""
        self._window = WINDOW
        """Characters the next run of plain files is looked for in (`dumpfmt_runs.plain_run`)."""
        self._streak = 0
        """Characters of the run of plain files being read, in the pieces read so far."""

    # ---- low level

    def _fill(self) -> None:
        data = self._read(self._want)
        if data:
            tail = self._decoder.decode(data)
        else:
            self._eof = True
            tail = self._decoder.decode(b"", True)
        keep = self._pos if self._mark is None else self._mark
        self._buf = self._buf[keep:] + tail
        self._pos -= keep
        if self._mark is not None:
            self._mark = 0

    def _error(self, what: str) -> DumpFormatError:
        around = self._buf[max(0, self._pos - 40): self._pos + 40]
        return DumpFormatError(f"{what} near {around!r}")

    def _skip_ws(self) -> None:
        pos = self._pos
        if pos < len(self._buf) and self._buf[pos] not in " \t\n\r":
            return
        while True:
            self._pos = _WS.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf) or self._eof:
                return
            self._fill()

    def _peek(self) -> str:
        self._skip_ws()
        if self._pos >= len(self._buf):
            raise DumpFormatError("the dump ends too early (truncated file?)")
        return self._buf[self._pos]

    def _next(self) -> str:
        c = self._peek()
        self._pos += 1
        return c

    def _expect(self, ch: str) -> None:
        if self._peek() != ch:
            raise self._error(f"expected {ch!r}")
        self._pos += 1

    def _value(self) -> Any:
        self._skip_ws()
        while True:
            try:
                value, end = self._json.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._eof:
                    raise DumpFormatError(f"invalid JSON: {exc.msg} near {self._buf[exc.pos:exc.pos + 40]!r}") from None
                if len(self._buf) - self._pos > MAX_VALUE:
                    raise self._error("value too large") from None
                self._want = max(self._want, 2 * (len(self._buf) - self._pos))
                self._fill()
                continue
            if end >= len(self._buf) and not self._eof:  # a number may go on in the next read
                self._fill()
                continue
            self._pos = end
            self._want = self._read_size
            return value

    def _string(self) -> str:
        if self._peek() != '"':
            raise self._error("expected a string")
        value = self._value()
        assert isinstance(value, str)
        return value

    # ---- structure

    def events(self) -> Iterator[Event]:
        """Every event of the document, in order. Raises DumpFormatError on malformed input."""
        self._expect("{")
        if self._peek() == "}":
            self._pos += 1
        else:
            while True:
                key = self._string()
                self._expect(":")
                if key in TREE_KEYS:
                    yield ("tree", key)
                    yield from self._tree()
                else:
                    yield ("section", key, self._value())
                c = self._next()
                if c == "}":
                    break
                if c != ",":
                    raise self._error("expected ',' or '}'")
        self._skip_ws()
        if self._pos < len(self._buf):
            raise self._error("unexpected data after the dump")

    def _node(self) -> tuple[dict[str, Any], bool]:
        """A node's fields except ``entries``, and whether its entries follow (then they are next to read).

        Fast path: once ``attr`` shows a non-directory, the whole node is re-read as one JSON value.
        """
        self._skip_ws()
        self._mark = self._pos
        try:
            self._expect("{")
            if self._peek() != '"':
                return {}, self._members({})
            key = self._string()
            self._expect(":")
            if key == "entries":
                self._expect("{")
                return {}, True
            value = self._value()
            if key == "attr" and isinstance(value, dict) and value.get("type") != "directory":
                self._pos, self._mark = self._mark, None
                node = self._value()
                if not isinstance(node, dict) or "entries" in node:
                    raise DumpFormatError(f"inode {value.get('inode')} has entries but is not a directory")
                return node, False
            self._mark = None
            fields = {key: value}
            c = self._next()
            if c == "}":
                return fields, False
            if c != ",":
                raise self._error("expected ',' or '}'")
            return fields, self._members(fields, after_comma=True)
        finally:
            self._mark = None

    def _members(self, fields: dict[str, Any], *, after_comma: bool = False) -> bool:
        """Read node members into `fields` up to the node's end (False) or the opening of its entries (True)."""
        if not after_comma and self._peek() == "}":
            self._pos += 1
            return False
        while True:
            key = self._string()
            self._expect(":")
            if key == "entries":
                self._expect("{")
                return True
            fields[key] = self._value()
            c = self._next()
            if c == "}":
                return False
            if c != ",":
                raise self._error("expected ',' or '}'")

    def _leaf_entry(self, comma: bool) -> tuple[str, dict[str, Any]] | None:
        """Fast path of the common entry, a non-directory node whose ``attr`` comes first, when it lies
        whole in the buffer: ``[,] "name": {...}`` read by one regex match and one JSON decode of the node
        (instead of a dozen peeks and its ``attr`` decoded twice). None (nothing consumed) when the next
        thing is anything else; the general path then reads it, refilling the buffer as needed."""
        buf = self._buf
        m = _ENTRY.match(buf, self._pos)
        if m is None or bool(m.group(1)) != comma or _DIR_TYPE.search(m.group(3)):
            return None
        name = m.group(2)
        try:
            if "\\" in name:
                name = self._json.decode(f'"{name}"')
            node, end = self._json.raw_decode(buf, m.end())
        except json.JSONDecodeError:
            return None
        if "entries" in node:
            raise DumpFormatError(f"inode {node['attr'].get('inode')} has entries but is not a directory")
        self._pos = end
        return name, node

    def _tree(self) -> Iterator[Event]:
        # children seen so far in each open `entries` object, innermost last (no recursion: trees are deep)
        open_dirs: list[int] = []
        name: str | None = None
        while True:
            fields, has_entries = self._node()
            plain = None if has_entries or name is None else _plain_file(fields)
            yield ("node", name, fields, has_entries) if plain is None else ("file", name, plain)
            if has_entries:
                open_dirs.append(0)
            while True:
                if not open_dirs:
                    return
                if len(self._buf) - self._pos < self._window and not self._eof:
                    self._fill()  # a run is not cut short by the end of the buffer
                run = plain_run(self._buf, self._pos, open_dirs[-1] > 0, self._window)
                if run is not None:
                    names, rows, end, whole = run
                    # the window follows the runs of this dump: doubled while a run fills it, else twice the
                    # text of the whole run that just ended (small when plain files are rare)
                    self._streak += end - self._pos
                    if whole:
                        self._window = min(2 * self._window, 16 * WINDOW)
                    else:
                        self._window, self._streak = min(max(2 * self._streak, WINDOW), 16 * WINDOW), 0
                    self._pos = end
                    open_dirs[-1] += len(names)
                    yield ("files", names, rows)
                    continue
                m = _PLAIN_FILE.match(self._buf, self._pos)
                if m is not None and bool(m.group(1)) == (open_dirs[-1] > 0):
                    self._pos = m.end()
                    open_dirs[-1] += 1
                    yield ("file", m.group(2), tuple(map(int, m.groups()[2:])))
                    continue
                fast = self._leaf_entry(open_dirs[-1] > 0)
                if fast is not None:
                    open_dirs[-1] += 1
                    plain = _plain_file(fast[1])
                    yield ("node", fast[0], fast[1], False) if plain is None else ("file", fast[0], plain)
                    continue
                c = self._peek()
                if c == "}":
                    self._pos += 1
                    open_dirs.pop()
                    c = self._next()
                    if c == ",":
                        late: dict[str, Any] = {}
                        if self._members(late, after_comma=True):
                            raise self._error("a node with two 'entries'")
                        yield ("late", late)
                    elif c != "}":
                        raise self._error("expected ',' or '}'")
                    yield ("end",)
                    continue
                if open_dirs[-1]:
                    if c != ",":
                        raise self._error("expected ',' between entries")
                    self._pos += 1
                open_dirs[-1] += 1
                name = self._string()
                self._expect(":")
                break

"""Runs of plain files in a dump, read a run at a time with the C code of `str`, `bytes` and `json` (ADR 0089).

Pure. Used by `jfs.domain.dumpfmt.DumpReader` for its "files" events; `plain_run` only ever answers for text
whose events the reader's other paths would give the same way, and None for anything else (the reader then
reads the next entry the general way), so it changes no event and no error, only the cost of reading.

**What a run is.** JuiceFS and jfs print a node one field per line, so a regular file with nothing but its
``attr`` (the "file" event's `PlainFile`) is exactly three lines inside its directory's ``entries``::

    <ind>"NAME": {
    <ind>  "attr": {"inode":N,"type":"regular","mode":N,"uid":N,"gid":N,"atime":N,"mtime":N,"ctime":N,"atimensec":N,"mtimensec":N,"ctimensec":N,"nlink":N,"length":N}
    <ind>},

(the last entry of a directory closes with ``}``). A JSON string cannot hold a raw line feed, so splitting the
text at line feeds never cuts a token; a run is the longest sequence of such triples at one indentation,
checked and decoded list-wise rather than entry by entry:

* the closing lines are compared with ``<ind>},`` (one ``<ind>}`` may end the run: the directory's last entry);
* a name line is ``<ind>"`` + NAME + ``": {`` with no ``"``, ``\\`` or control character in NAME (the JSON
  string is then NAME itself); anything else ends the run before that entry;
* the ``attr`` lines, joined, must be the canonical line once digits and ``-`` are deleted (the exact
  indentation, key order and spelling of `dumpfmt.attr_json`, type ``regular``); their numbers are then
  decoded by one `json.loads` of the lines turned into arrays (the keys blanked, braces made brackets), so
  that a number JSON would refuse (``01``, ``-``, ``1-2``) is refused here too;
* the values must be what `dumpfmt._plain_file` accepts: every field but the three times non-negative, the
  nanoseconds below 10^9;
* a number stands only where a value does: each key's colon is followed by one (12 per line), each line
  decodes to exactly 12 values, and JSON refuses digits anywhere else once the keys are blanked.

When the lines fail together, they are checked one by one and the run ends before the first that fails.

The run is taken from a window of at most `WINDOW` characters of the buffer, so that an irregular entry
soon after costs little text split for nothing.
"""

from __future__ import annotations

import json
import re
from itertools import compress, count, repeat
from operator import itemgetter, ne

from jfs.domain.attrs import NS

WINDOW = 1 << 12
"""The least number of characters of the buffer a run is looked for in (about 16 entries of a synthetic
dump); the reader asks for twice the text of its last run, up to 16 times this."""

SKELETON = (b'{"inode":,"type":"regular","mode":,"uid":,"gid":,"atime":,"mtime":,"ctime":,"atimensec":,'
            b'"mtimensec":,"ctimensec":,"nlink":,"length":}')
"""The ``attr`` object of a plain file with its digits and minus signs deleted."""

ROW_FIELDS = ("inode", "mode", "uid", "gid", "atime", "mtime", "ctime", "atimensec", "mtimensec", "ctimensec",
              "nlink", "length")
"""The fields of a row (`dumpfmt.PlainFile`), in the order the ``attr`` object spells them."""

_DIGITS = b"-0123456789"
_MARK = bytes.maketrans(_DIGITS, b"0" * len(_DIGITS))
"""Every character a number is made of becomes ``0`` (to find where numbers start)."""
_TYPE = b',"type":"regular",'
"""Taken out whole, commas included, so that a digit next to it is left for the checks to refuse."""
_TO_ARRAY = bytes.maketrans(b'{}":abcdefghijklmnopqrstuvwxyz', b"[]" + b" " * 28)
"""Turns an ``attr`` line without its type into a JSON array of its numbers (all else becomes blanks)."""
_BAD_NAME = re.compile('["\\\\\x00-\x1f]')
_UNSIGNED = itemgetter(0, 1, 2, 3, 7, 8, 9, 10, 11)
_NSEC = itemgetter(7, 8, 9)

Row = list[int]


def _first_false(flags: object, limit: int) -> int:
    """Index of the first false item of the iterable `flags`, or `limit` when none is (C-level scan)."""
    return next(compress(count(), map(ne, flags, repeat(True))), limit)  # type: ignore[call-overload]


def plain_run(buf: str, pos: int, after_first: bool, window: int = WINDOW
              ) -> tuple[list[str], list[Row], int, bool] | None:
    """The run of plain files at `pos` of `buf` (see the module docstring): their names (escaped, as in the
    dump), their rows (`ROW_FIELDS`), the position just after the last one's closing brace, and whether the
    run went on to the end of the text looked at (it may go on after it); None when not even the first
    entry qualifies. `after_first`: the directory has had an entry already, so the run
    must start with the comma that separates it from the previous one (else it must not). At most `window`
    characters are looked at; a few line searches decline most other entries before any text is split."""
    # the first entry's closing line must be one, before anything is split
    n1 = buf.find("\n", pos, pos + 2)
    n2 = buf.find("\n", n1 + 1) if n1 >= 0 else -1
    n3 = buf.find("\n", n2 + 1) if n2 >= 0 else -1
    n4 = buf.find("\n", n3 + 1) if n3 >= 0 else -1
    if n4 < 0:
        return None
    closing = buf[n3 + 1:n4]
    brace = closing.lstrip(" ")
    if brace not in ("}", "},") or not buf.startswith(closing[: len(closing) - len(brace)] + '"', n1 + 1):
        return None
    end = buf.rfind("\n", pos, pos + max(window, n4 + 1 - pos))
    lines = buf[pos:end].split("\n")
    if lines[0] != ("," if after_first else ""):
        return None
    k = whole = (len(lines) - 1) // 3
    if k == 0:
        return None
    first = lines[1]
    ind = first[: len(first) - len(first.lstrip(" "))]
    names = lines[1:3 * k + 1:3]
    attrs = lines[2:3 * k + 2:3]
    closes = lines[3:3 * k + 3:3]
    close = ind + "},"
    k = _first_mismatch(closes, close, k)
    if k < len(closes) and closes[k] == ind + "}":
        k += 1
    if k == 0:
        return None
    head = ind + '"'
    k = min(k, _first_false(map(str.startswith, names[:k], repeat(head)), k))
    k = min(k, _first_false(map(str.endswith, names[:k], repeat('": {')), k))
    if k == 0:
        return None
    names = list(map(itemgetter(slice(len(head), -4)), names[:k]))
    if _BAD_NAME.search("".join(names)):
        k = next(i for i, n in enumerate(names) if _BAD_NAME.search(n))
        if k == 0:
            return None
        names = names[:k]
    # the attr lines whole, indentation and key included: a few passes over them all check and decode them
    line_skeleton = (ind + '  "attr": ').encode() + SKELETON
    rows = _rows("\n".join(attrs[:k]).encode("utf-8", "surrogateescape"), line_skeleton, k)
    if rows is None:  # the longest run of lines that pass one by one
        rows = []
        for line in attrs[:k]:
            row = _rows(line.encode("utf-8", "surrogateescape"), line_skeleton, 1)
            if row is None:
                break
            rows += row
        k = len(rows)
        if k == 0:
            return None
        names = names[:k]
    # the position after the closing brace of entry k-1: back from the end of the text split, over the lines
    # after its closing line and their line feeds
    rest = lines[3 * k + 1:]
    stop = end - sum(map(len, rest)) - len(rest)
    if lines[3 * k].endswith(","):
        stop -= 1
    return names, rows, stop, k == whole


def _first_mismatch(items: list[str], want: str, limit: int) -> int:
    """Index of the first of `items` that is not `want` (`limit` when all are)."""
    return next(compress(count(), map(ne, items, repeat(want))), limit)


def _rows(blob: bytes, line_skeleton: bytes, k: int) -> list[Row] | None:
    """The rows of `k` attr lines joined by line feeds, or None unless every one is `line_skeleton` with a
    number at each of its 12 values (a number only there: the colon of each key is followed by one, and
    JSON refuses digits anywhere else once the keys are blanked) and the values are those of a plain file."""
    if blob.translate(None, _DIGITS) != b"\n".join(repeat(line_skeleton, k)) \
            or blob.translate(_MARK).count(b":0") != 12 * k:
        return None
    try:  # blanked, the indentation and the keys are whitespace between the arrays' numbers
        rows: list[Row] = json.loads(b"[" + blob.replace(_TYPE, b",").translate(_TO_ARRAY).replace(b"]\n", b"],")
                                     + b"]")
    except ValueError:
        return None
    if len(rows) != k or any(map(ne, map(len, rows), repeat(12))) or max(map(max, map(_NSEC, rows))) >= NS:
        return None
    if b"-" in blob and min(map(min, map(_UNSIGNED, rows))) < 0:
        return None
    return rows

"""The one streaming scan of the inode key space (``A…``) that fills fsck's `Model`.

Contract: `scan(kv, model, progress)` fills `model` with every inode's records, grouped by inode, and adds
every referenced slice to `model.slices` when that is a `SliceSet`. Read-only; KV errors propagate; the
records are judged raw (ADR 0004), including records no engine operation would leave.

How it reads: an engine offering `PageReadingKV` (Redis: ZRANGEBYLEX and MGET, half the server CPU of
the RANGES script) is read a page of `PAGE` pairs at a time with the next page already requested while
this one is folded in, `SLICE` pairs between two turns of the event loop (Redis serves one page while
Python works on the other); each value is what its key held
at some moment, and the scan as a whole is not a snapshot — as with `Tx.scan_iter` in one read
transaction, which the other engines use. `run_fsck` copes with a live volume (ctime, confirmations).

Per record (docs/adr/0061): the usual attribute record (72 bytes: no ACL, no tier, a known type) gives
(type, nlink, parent, length, ctime) through one narrow `struct` unpack, written straight into the model's
columns; any other goes through `Attr.decode` (whose errors propagate, as before). Entries likewise through
one unpack (`decode_dentry` for an unknown type).

Per slice (docs/adr/0077): a key's inode and kind come from one unpack; at least `_RUN_MIN` entries of one
directory in a row (found by bisecting the slice's keys) are decoded column-wise (`_entry_run`: the
children's inodes by strided byte slices into one array, added to the directory's group in one extend)
and only the rows are visited one by one; a new row of the dense index is created inline; the model's
attribute and name counts are taken from the columns once, at the end. Any run that is not all usual
9-byte entries of known types is folded record by record, as before.
"""

from __future__ import annotations

import asyncio
import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import AsyncIterator, Sequence
from itertools import islice
from operator import itemgetter

from jfs.app.meta.chunk_scan import CHUNK_BEGIN, CHUNK_END, PROGRESS_STEP, chunk_slices
from jfs.app.ops.fsck.model import DIR, Model, _Group
from jfs.app.progress import ProgressBoard
from jfs.domain import keys
from jfs.domain.attrs import Attr, FileType
from jfs.domain.records import decode_dentry, decode_i64
from jfs.ports.kv import KV, PageReadingKV, Tx

_I, _D, _C, _P = 0x49, 0x44, 0x43, 0x50
PAGE = 4096
"""Pairs per page read through `PageReadingKV`."""
SLICE = 256
"""Pairs folded in between two turns of the event loop (the reader needs a few turns per page: a reply,
its next command)."""
AHEAD = 2
"""Pages the reader may hold ahead of the fold."""
_END: list[tuple[bytes, bytes]] = []
"""Put by the reader after the last page (compared by identity)."""

_SEEN = struct.Struct(">xH32xqIIQ4xQ")
"""mode, ctime (s, ns), nlink, length, parent of an attribute record (`Attr.encode`'s layout)."""
_PLAIN_SIZE = 72
_DENTRY = struct.Struct(">BQ")
_KEY_HEAD = struct.Struct("<xQB")
"""inode (little-endian) and record kind of a ``A<ino:8><kind>…`` key."""
_TYPES = frozenset(int(t) for t in FileType)
_NO_CHILDREN = _Group._NO_CHILDREN


async def scan(kv: KV, model: Model, progress: ProgressBoard) -> None:
    """Fill `model` from one streaming scan of ``A…`` (every inode's records, grouped by inode)."""
    bar = progress.bar("Scanned metadata keys", unit="keys")
    try:
        if isinstance(kv, PageReadingKV):
            fill = _Fill(Model(model.delfiles, model.slices), bar)
            async for page in _pages(kv):
                for at in range(0, len(page), SLICE):
                    fill.feed(page[at:at + SLICE])
                    await asyncio.sleep(0)  # the next page's commands go out and come back meanwhile
            result = fill.done()
        else:

            async def body(tx: Tx) -> Model:
                fill = _Fill(Model(model.delfiles, model.slices), bar)
                page: list[tuple[bytes, bytes]] = []
                async for pair in tx.scan_iter(CHUNK_BEGIN, CHUNK_END):
                    page.append(pair)
                    if len(page) >= PAGE:
                        fill.feed(page)
                        page = []
                fill.feed(page)
                return fill.done()

            result = await kv.read(body)
    finally:
        bar.close()
    model.__dict__.update(result.__dict__)


async def _pages(kv: PageReadingKV) -> AsyncIterator[list[tuple[bytes, bytes]]]:
    """The pairs of ``A…``, `PAGE` at a time, read by a task of their own up to `AHEAD` pages ahead of
    the consumer (which turns the event loop every `SLICE` pairs); its error is raised here."""
    queue: asyncio.Queue[list[tuple[bytes, bytes]] | BaseException] = asyncio.Queue(maxsize=AHEAD)

    async def read() -> None:
        try:
            async for page in kv.read_pages(CHUNK_BEGIN, CHUNK_END, PAGE):
                await queue.put(page)
            await queue.put(_END)
        except Exception as exc:  # handed to the consumer
            await queue.put(exc)

    reader = asyncio.get_running_loop().create_task(read())
    try:
        while True:
            page = await queue.get()
            if isinstance(page, BaseException):
                raise page
            if page is _END:
                return
            yield page
    finally:
        reader.cancel()


_RUN_MIN = 8
"""Entries of one directory in a row from which they are folded column-wise (`_entry_run`)."""
_FIRST = itemgetter(0)
_SECOND = itemgetter(1)
_VALID_TYPES = bytes(range(1, 8))


def _entry_run(page: Sequence[tuple[bytes, bytes]], begin: int, end: int) -> tuple[array[int], bytes] | None:
    """(child inodes, entry types) of the entries ``page[begin:end]`` (all of one directory), decoded
    column-wise; None unless every value is a usual 9-byte entry record of a known type (the caller then
    takes them one by one)."""
    values = list(map(_SECOND, page[begin:end]))
    n = len(values)
    joined = b"".join(values)
    if len(joined) != 9 * n or min(map(len, values)) != 9 or joined[0::9].translate(None, _VALID_TYPES):
        return None
    buf = bytearray(8 * n)
    for j in range(8):  # the big-endian inode of each record, byte by byte, into native words
        buf[j::8] = joined[1 + j::9]
    children = array("Q", bytes(buf))
    if sys.byteorder == "little":
        children.byteswap()
    return children, joined[0::9]


class _Fill:
    """Folds pages of ``A…`` pairs into a `Model` (see the module docstring)."""

    def __init__(self, m: Model, bar: object) -> None:
        self.m = m
        self.bar = bar
        self.ino = self.typ = 0
        """The inode whose records the scan is in, and its type (0: no attributes seen yet)."""
        self.group: _Group | None = None
        """Its records other than the attributes, once it has some (most files have none: no object)."""
        self.n = 0

    def feed(self, page: Sequence[tuple[bytes, bytes]]) -> None:
        m, group, cur, cur_typ = self.m, self.group, self.ino, self.typ
        t = m._inodes
        index, sparse, new, append_ino = t.row._index, t.row._sparse, t.add_new, t.row.inos.append
        typs, nlinks, parents, lengths, ctimes = t.typ, t.nlink, t.parent, t.length, t.ctime
        first_typs, first_parents = t.first_typ, t.first_parent
        slices, delfiles = m.slices, m.delfiles
        add_entry, from_bytes = m.add_entry, int.from_bytes
        seen, dentry, head = _SEEN.unpack_from, _DENTRY.unpack_from, _KEY_HEAD.unpack_from
        rows, room = len(t.row.inos), len(t.typ)
        """Rows so far, and rows the columns hold."""
        entries = 0
        page_keys = list(map(_FIRST, page))
        runs_from = 0
        """Index from which a run of entries may be folded column-wise (not again inside one that failed)."""
        pairs = iter(enumerate(page))
        for i, (key, value) in pairs:
            if len(key) < 10:
                continue
            ino, kind = head(key)
            if ino != cur:
                if group is not None:
                    group.close(m)
                    group = None
                    rows, room = len(t.row.inos), len(typs)  # (closing adds no row today; cheap to be sure)
                cur, cur_typ = ino, 0
            if kind == _I and len(key) == 10:
                if len(value) == _PLAIN_SIZE:
                    mode, c_s, c_n, nlink, length, parent = seen(value)
                    typ = mode >> 12
                    if not 0 < typ < 8:
                        a = Attr.decode(value)
                        typ, nlink, parent, length, c_s, c_n = int(a.typ), a.nlink, a.parent, a.length, 0, a.ctime_ns
                else:
                    a = Attr.decode(value)
                    typ, nlink, parent, length, c_s, c_n = int(a.typ), a.nlink, a.parent, a.length, 0, a.ctime_ns
                try:
                    row = index[ino]
                except IndexError:
                    row = sparse.get(ino, -1)
                    if row < 0:
                        row = new(ino)
                        rows, room = row + 1, len(typs)
                else:
                    if row < 0:  # new: `_RowIndex.new` inline (dense index)
                        if rows < room:
                            row = rows
                            rows += 1
                            append_ino(ino)
                            index[ino] = row
                        else:
                            row = new(ino)
                            rows, room = row + 1, len(typs)
                typs[row] = cur_typ = typ
                nlinks[row] = nlink
                parents[row] = parent
                lengths[row] = length
                ctimes[row] = c_s * 1_000_000_000 + c_n
                if group is not None:
                    group.typ = typ
                continue
            if group is None:
                group = _Group(ino)
                group.typ = cur_typ
            if kind == _D and len(key) > 10:
                if i >= runs_from:
                    end = bisect_left(page_keys, key[:9] + b"E", i)  # this inode's entries in the page
                    runs_from = end
                    if end - i >= _RUN_MIN:
                        run = _entry_run(page, i, end)
                        if run is not None:
                            children, etyps = run
                            if group.children is _NO_CHILDREN:
                                group.fresh()
                            group.children.extend(children)
                            entries += len(children)
                            for child, etyp in zip(children, etyps, strict=True):
                                try:
                                    row = index[child]
                                except IndexError:
                                    row = sparse.get(child, -1)
                                    if row < 0:
                                        row = new(child)
                                        rows, room = row + 1, len(typs)
                                else:
                                    if row < 0:  # new: `_RowIndex.new` inline (dense index)
                                        if rows < room:
                                            row = rows
                                            rows += 1
                                            append_ino(child)
                                            index[child] = row
                                        else:
                                            row = new(child)
                                            rows, room = row + 1, len(typs)
                                if not first_typs[row]:  # the first name of `child` (`Model.add_entry`)
                                    first_parents[row], first_typs[row] = ino, etyp
                                else:
                                    add_entry(ino, child, etyp)
                            next(islice(pairs, end - i - 2, None), None)  # the run's other pairs: done
                            continue
                if len(value) == 9:
                    etyp, child = dentry(value)
                    if not 0 < etyp < 8:
                        ft, child = decode_dentry(value)
                        etyp = int(ft)
                else:
                    ft, child = decode_dentry(value)
                    etyp = int(ft)
                try:
                    row = index[child]
                except IndexError:
                    row = sparse.get(child, -1)
                    if row < 0:
                        row = new(child)
                        rows, room = row + 1, len(typs)
                else:
                    if row < 0:  # new: `_RowIndex.new` inline (dense index)
                        if rows < room:
                            row = rows
                            rows += 1
                            append_ino(child)
                            index[child] = row
                        else:
                            row = new(child)
                            rows, room = row + 1, len(typs)
                if not first_typs[row]:  # the first name of `child` (`Model.add_entry`, inline)
                    first_parents[row], first_typs[row] = ino, etyp
                else:
                    add_entry(ino, child, etyp)
                if group.children is _NO_CHILDREN:
                    group.fresh()
                group.children.append(child)
                entries += 1
            elif kind == _C and len(key) == 14:
                group.fresh()
                group.kinds.add("chunks")
                group.max_indx = max(group.max_indx, from_bytes(key[10:14], "big"))
                if slices is not None and ino not in delfiles:
                    for sid, size, _, _ in chunk_slices(value):
                        slices.add(sid, size)
            elif kind == _P and len(key) == 18:
                group.fresh()
                group.prefs[keys.ino_from_le(key, 10)] = decode_i64(value)
            else:
                group.fresh()
                group.kinds.add({0x53: "symlink", 0x58: "xattrs"}.get(kind, f"key {chr(kind)!r}"))
        self.group, self.ino, self.typ = group, cur, cur_typ
        m.entries += entries
        before = self.n
        self.n += len(page)
        steps = self.n // PROGRESS_STEP - before // PROGRESS_STEP
        if steps:
            self.bar.advance(steps * PROGRESS_STEP)  # type: ignore[attr-defined]

    def done(self) -> Model:
        if self.group is not None:
            self.group.close(self.m)
        t = self.m._inodes  # the counts the fold did not keep up (rows never lose attributes or names)
        rows = len(t.row.inos)
        t.attr_count = rows - t.typ[:rows].count(0)
        t.first_count = rows - t.first_typ[:rows].count(0)
        self.m.keys = self.n
        self.bar.advance(self.n % PROGRESS_STEP)  # type: ignore[attr-defined]
        return self.m


__all__ = ["DIR", "PAGE", "scan"]

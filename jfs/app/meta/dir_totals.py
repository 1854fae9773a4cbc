"""A page of a directory's totals for tree-wide summaries (``jfs summary``, ``jfs info`` of a directory).

`totals_page` is `readdir_page(plus=True)` folded: the non-directory entries of the page summed (count,
length, space as `align4k`), its subdirectories with their attributes, and the `top` biggest
non-directories (by space, then name: a page is in name order) as entries — what a summary needs, without
an `Entry` and an `Attr` per file.

Engines offering `RangeFollowingKV` (Redis) read a page as the listing's names, their dentries and the
attribute records they point at (plus the directory's own) in three native commands, and the records are
summed column-wise (`jfs.domain.tally`); the others go through `readdir_page`. Same errors as a listing
(ENOENT, ENOTDIR, EACCES for a directory `ctx` may not read) and the same guarantee: each attribute is what
its inode held at some moment during the call, entries whose inode went away are skipped; nothing is cached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from jfs.app.meta import store
from jfs.app.meta.context import Ctx
from jfs.app.meta.readdir import Entry, readdir_page
from jfs.app.meta.rules import check_perm
from jfs.domain import keys
from jfs.domain.attrs import Attr
from jfs.domain.permissions import MAY_READ
from jfs.domain.records import decode_dentry
from jfs.domain.tally import tally, tally_attrs
from jfs.ports.kv import RangeFollowingKV

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

_ENTRY_ATTR = store.entry_attr_pointer(0)
PAGE = 4096
"""Names per page (as a listing's)."""


class TotalsPage(NamedTuple):
    """One page of a directory, folded (see `totals_page`)."""

    files: int
    """Non-directory entries (with `dirs`: the entries of the page, those whose inode went away left out)."""
    length: int
    """Σ length of the regular files."""
    space: int
    """Σ `align4k` space of the non-directories (4 KiB for anything but a regular file)."""
    dirs: list[Entry]
    """The subdirectories, with attributes, in name order."""
    top: list[Entry]
    """The `top` biggest non-directories (by space, then name), with attributes, in no particular order."""
    cursor: bytes | None
    """As `readdir_page`'s: the `after` of the next page, None after the last."""


async def totals_page(m: Meta, ctx: Ctx, ino: int, after: bytes = b"", limit: int = 0, *,
                      top: int = 0) -> TotalsPage:
    """The page of directory `ino` after name `after` (b"": from the start), at most `limit` names (0:
    `PAGE`), folded; `top`: how many of its biggest non-directories to return (< 0: all, 0: none). Errors:
    ENOENT, ENOTDIR, EACCES (read permission on the directory)."""
    limit = limit or PAGE
    kv = m.kv
    if not isinstance(kv, RangeFollowingKV):
        return await _listed(m, ctx, ino, after, limit, top)
    prefix = keys.dentry_prefix(ino)
    begin = prefix + after + b"\x00" if after else prefix
    got = await kv.follow_range(begin, keys.prefix_end(prefix), limit, _ENTRY_ATTR, (keys.attr(ino),))
    check_perm(ctx, store.stored_dir(ino, got.extra[0]), MAY_READ)
    sums = tally(got.targets, top)
    cut = len(prefix)
    names, values, records = got.keys, got.values, got.targets

    def entry(i: int) -> Entry:
        raw = records[i]
        assert raw is not None
        attr = Attr.decode(raw)
        return Entry(names[i][cut:], decode_dentry(values[i])[1], attr.typ, attr)

    return TotalsPage(sums.files, sums.length, sums.space, [entry(i) for i in sums.dirs],
                      [entry(i) for i in sums.top], None if got.last is None else got.last[cut:])


async def _listed(m: Meta, ctx: Ctx, ino: int, after: bytes, limit: int, top: int) -> TotalsPage:
    """`totals_page` through `readdir_page` (engines without `RangeFollowingKV`)."""
    entries, cursor = await readdir_page(m, ctx, ino, after, limit, plus=True)
    assert all(e.attr is not None for e in entries)  # plus=True: every entry carries its attributes
    t = tally_attrs([e.attr for e in entries], top)
    return TotalsPage(t.files, t.length, t.space, [entries[i] for i in t.dirs], [entries[i] for i in t.top],
                      cursor)

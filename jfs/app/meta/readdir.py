"""Directory listing, paged by name so that a directory of any size streams in flat memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Literal, NamedTuple, overload

from jfs.app.meta import store
from jfs.app.meta.context import Ctx
from jfs.app.meta.rules import check_perm
from jfs.domain import keys
from jfs.domain.attrs import Attr, FileType
from jfs.domain.permissions import MAY_READ
from jfs.domain.records import decode_dentries, decode_dentries_joined
from jfs.ports.kv import RangeFollowingKV, Tx

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

PAGE = 4096
_ENTRY_ATTR = store.entry_attr_pointer(0)


class Entry(NamedTuple):
    """One directory entry (a tuple: listings build thousands of them, a frozen dataclass was 4x slower)."""

    name: bytes
    ino: int
    typ: FileType
    attr: Attr | None = None


class StoredEntry(NamedTuple):
    """An entry of `readdir_page(records=True)`: its attributes the stored record, undecoded (`Attr.decode`
    reads it); an `Attr` only for entries made up above the engine (virtual files), None when unknown."""

    name: bytes
    ino: int
    typ: FileType
    attr: Attr | bytes | None = None


@overload
async def readdir_page(m: Meta, ctx: Ctx, ino: int, after: bytes = ..., limit: int = ..., *, plus: bool = ...,
                       records: Literal[False] = ...) -> tuple[list[Entry], bytes | None]: ...
@overload
async def readdir_page(m: Meta, ctx: Ctx, ino: int, after: bytes = ..., limit: int = ..., *, plus: bool = ...,
                       records: Literal[True]) -> tuple[list[StoredEntry], bytes | None]: ...
@overload
async def readdir_page(m: Meta, ctx: Ctx, ino: int, after: bytes = ..., limit: int = ..., *, plus: bool = ...,
                       records: bool) -> tuple[list[Entry] | list[StoredEntry], bytes | None]: ...
async def readdir_page(
    m: Meta, ctx: Ctx, ino: int, after: bytes = b"", limit: int = PAGE, *, plus: bool = False,
    records: bool = False,
) -> tuple[list[Entry] | list[StoredEntry], bytes | None]:
    """Up to `limit` entries of directory `ino` whose names sort after `after` (b"" = from the start),
    in byte order of names, without ``.`` and ``..``. Returns (entries, cursor): pass the cursor as
    `after` for the next page; it is None after the last page. Errors: ENOENT, ENOTDIR, EACCES.

    The names are one consistent read. With `plus`, the attributes of their inodes are a second read
    right after it, not validated against the first (as any client's stat after a listing): each is
    what its inode held at some moment during the call, and entries whose inode vanished in between
    are skipped. Validating thousands of attributes against the scanned range would cost the engine a
    second scan of it (Redis) for a guarantee no listing gives across its pages anyway. With `records`
    (and `plus`) the entries are `StoredEntry`s, each `attr` the attribute record as stored: for a caller that packs
    the fields itself (the mount's READDIRPLUS, ADR 0071); on an engine offering `RangeFollowingKV` the page
    is then read by `follow_range` — the names one read of the index, each dentry and record, and the
    directory's own record for the permission check, as held at some moment during the call (a name whose
    dentry went away in between is left out, like one whose inode did).
    """
    prefix = keys.dentry_prefix(ino)
    begin = prefix + after + b"\x00" if after else prefix
    new = tuple.__new__
    kv = m.kv
    if records and plus and isinstance(kv, RangeFollowingKV):
        # The names (one read of the index), their dentries and the attribute records they point at, with
        # the directory's own record for the permission check, in the engine's native commands (Redis: no
        # script; ADR 0071). Each dentry and record is what it held at some moment during the call; a name
        # whose dentry or inode went away in between is left out, as an inode gone before the attributes
        # were read always was.
        got = await kv.follow_range(begin, keys.prefix_end(prefix), limit, _ENTRY_ATTR, (keys.attr(ino),))
        check_perm(ctx, store.stored_dir(ino, got.extra[0]), MAY_READ)
        cut = len(prefix)
        kept = decode_dentries_joined(got.keys, got.values, got.targets, cut, StoredEntry)
        return kept, None if got.last is None else got.last[cut:]

    async def body(tx: Tx) -> tuple[list[tuple[bytes, int, FileType]], bytes | None]:
        dir_attr = await store.get_dir(tx, ino)
        check_perm(ctx, dir_attr, MAY_READ)
        rows = await tx.scan(begin, keys.prefix_end(prefix), limit=limit)
        cut = len(prefix)
        cursor = rows[-1][0][cut:] if rows and len(rows) >= limit else None
        return decode_dentries(rows, cut), cursor

    names, cursor = await m.kv.read(body)
    if not plus:
        return [Entry(name, child, typ) for name, child, typ in names], cursor
    if not names:
        return [], cursor

    async def attrs_of(tx: Tx) -> list[bytes | None]:
        return await tx.get_many(keys.attrs([child for _, child, _ in names]))

    raws = await m.kv.read(attrs_of)
    if records:
        stored = [new(StoredEntry, (name, child, typ, raw)) for (name, child, typ), raw in zip(names, raws, strict=True)
                  if raw is not None]  # fmt: skip
        return stored, cursor
    # One pass: an entry per name whose inode is still there (decoded as `store.get_attrs` does);
    # ``tuple.__new__`` is what `Entry._make` calls, without a Python-level ``__new__`` per entry.
    decode = Attr.decode
    full = [new(Entry, (name, child, typ, decode(raw))) for (name, child, typ), raw in zip(names, raws, strict=True)
            if raw is not None]  # fmt: skip
    return full, cursor


async def readdir(m: Meta, ctx: Ctx, ino: int, *, plus: bool = False, page: int = PAGE) -> AsyncIterator[Entry]:
    """Every entry of directory `ino`, streamed page by page (each page is one consistent read)."""
    after: bytes | None = b""
    while after is not None:
        entries, after = await readdir_page(m, ctx, ino, after, page, plus=plus)
        for entry in entries:
            yield entry

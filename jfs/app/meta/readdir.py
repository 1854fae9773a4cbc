"""Directory listing, paged by name so that a directory of any size streams in flat memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, NamedTuple

from jfs.app.meta import store
from jfs.app.meta.context import Ctx
from jfs.app.meta.rules import check_perm
from jfs.domain import keys
from jfs.domain.attrs import Attr, FileType
from jfs.domain.permissions import MAY_READ
from jfs.domain.records import decode_dentry
from jfs.ports.kv import Tx

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

PAGE = 4096


class Entry(NamedTuple):
    """One directory entry (a tuple: listings build thousands of them, a frozen dataclass was 4x slower)."""

    name: bytes
    ino: int
    typ: FileType
    attr: Attr | None = None


async def readdir_page(
    m: Meta, ctx: Ctx, ino: int, after: bytes = b"", limit: int = PAGE, *, plus: bool = False
) -> tuple[list[Entry], bytes | None]:
    """Up to `limit` entries of directory `ino` whose names sort after `after` (b"" = from the start),
    in byte order of names, without ``.`` and ``..``. With `plus`, attributes are read in the same
    transaction (entries whose inode vanished are skipped). Returns (entries, cursor): pass the cursor as
    `after` for the next page; it is None after the last page. Errors: ENOENT, ENOTDIR, EACCES.
    """
    prefix = keys.dentry_prefix(ino)
    begin = prefix + after + b"\x00" if after else prefix

    async def body(tx: Tx) -> tuple[list[Entry], bytes | None]:
        dir_attr = await store.get_dir(tx, ino)
        check_perm(ctx, dir_attr, MAY_READ)
        rows = await tx.scan(begin, keys.prefix_end(prefix), limit=limit)
        cut = len(prefix)
        cursor = rows[-1][0][cut:] if rows and len(rows) >= limit else None
        if not plus:
            entries = []
            for key, value in rows:
                typ, child = decode_dentry(value)
                entries.append(Entry(key[cut:], child, typ))
            return entries, cursor
        if not rows:
            return [], cursor
        dentries = [(key[cut:], decode_dentry(value)) for key, value in rows]
        attrs = await store.get_attrs(tx, [child for _, (_, child) in dentries])
        full = [Entry(name, child, typ, a) for (name, (typ, child)), a in zip(dentries, attrs, strict=True)
                if a is not None]  # fmt: skip
        return full, cursor

    return await m.kv.read(body)


async def readdir(m: Meta, ctx: Ctx, ino: int, *, plus: bool = False, page: int = PAGE) -> AsyncIterator[Entry]:
    """Every entry of directory `ino`, streamed page by page (each page is one consistent read)."""
    after: bytes | None = b""
    while after is not None:
        entries, after = await readdir_page(m, ctx, ino, after, page, plus=plus)
        for entry in entries:
            yield entry

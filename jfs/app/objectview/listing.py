"""ListObjects over directories: keys in S3's byte order, with prefix, delimiter, marker and max-keys.

Siblings are visited in the order of their keys — a directory ``d`` as ``d/`` — so that a depth-first walk
yields keys in byte order (``a-x`` before ``a/b``, as ``-`` < ``/``). The walk starts at the deepest
directory the prefix names and skips whole subtrees that sort before the marker. With the ``/`` delimiter
subdirectories become common prefixes without being entered. An empty directory is the object ``d/``.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from jfs.app.meta.readdir import Entry
from jfs.app.objectview.keys import RESERVED_TOP
from jfs.app.objectview.service import EMPTY_MD5, ObjectInfo, ObjectView
from jfs.domain.attrs import Attr, FileType
from jfs.domain.errors import FSError


@dataclass
class ListPage:
    objects: list[ObjectInfo] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    next_marker: str = ""
    """The last key or common prefix of the page (where the next page starts after)."""


def _dec(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


async def list_objects(view: ObjectView, bucket: str, prefix: str = "", delimiter: str = "", marker: str = "",
                       max_keys: int = 1000) -> ListPage:
    """One page of the keys of `bucket` after `marker` that start with `prefix`."""
    base = await view.bucket_inode(bucket)
    page = ListPage()
    if max_keys <= 0:
        return page
    p = prefix.encode("utf-8", "surrogateescape")
    m = marker.encode("utf-8", "surrogateescape")
    d = delimiter.encode("utf-8", "surrogateescape")
    cut = p.rfind(b"/") + 1
    dir_key, name_filter = p[:cut], p[cut:]
    ino = base
    attr: Attr | None
    for name in dir_key.split(b"/")[:-1]:
        if not name or name in (b".", b".."):
            return page
        try:
            ino, attr = await view._lookup(ino, name)
        except FSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return page
            raise
        if attr is None or attr.typ is not FileType.DIRECTORY:
            return page
    items: list[tuple[bytes, int, Attr | None]] = []  # (key, inode, attr); inode 0 = a common prefix
    last_prefix = b""
    walk = _walk(view, ino, dir_key, name_filter, m, d == b"/")
    async with contextlib.aclosing(walk):
        async for key, child, attr in walk:
            if d and d != b"/" or (d == b"/" and child):
                rest = key[len(p):]
                at = rest.find(d)
                if at >= 0:
                    cp = p + rest[:at + len(d)]
                    if cp == last_prefix or cp <= m:
                        continue
                    key, child, attr, last_prefix = cp, 0, None, cp
            if len(items) == max_keys:
                page.truncated = True
                break
            items.append((key, child, attr))
    if items:
        page.next_marker = _dec(items[-1][0])
    files = [(c, a) for _, c, a in items if c and a is not None and a.typ is FileType.REGULAR]
    etags = dict(zip((c for c, _ in files), await view.etags_of(files), strict=True))
    for key, child, found in items:
        attr = found
        if not child:
            page.prefixes.append(_dec(key))
        elif attr is not None and attr.typ is FileType.DIRECTORY:
            page.objects.append(ObjectInfo(_dec(key), 0, EMPTY_MD5, attr.mtime_ns, True))
        elif attr is not None:
            page.objects.append(ObjectInfo(_dec(key), attr.length, etags.get(child, ""), attr.mtime_ns))
    return page


def _after(name: bytes) -> bytes:
    """The `after` cursor of a listing that starts at `name` itself (names are at most 255 bytes)."""
    if not name:
        return b""
    if name[-1] == 0:
        return name[:-1]
    return (name[:-1] + bytes([name[-1] - 1])).ljust(255, b"\xff")


def _first_name(dir_key: bytes, name_filter: bytes, marker: bytes) -> bytes:
    """The smallest entry name of the directory at `dir_key` that can hold a key after `marker`.

    A directory ``d`` holds keys ``d/…``, which sort after names ``d<c>…`` with c < ``/``: the marker's
    component ``d-x`` must not skip the directory ``d``, so the start is cut before the first such byte.
    """
    first = name_filter
    if marker.startswith(dir_key):
        c = marker[len(dir_key):].split(b"/", 1)[0]
        cut = next((i for i, b in enumerate(c) if b < 0x2F), len(c))
        first = max(first, c[:cut])
    return first


async def _walk(view: ObjectView, ino: int, dir_key: bytes, name_filter: bytes, marker: bytes, slash: bool
                ) -> AsyncGenerator[tuple[bytes, int, Attr | None]]:
    """(key, inode, attr) in key order below directory `ino`; with `slash` (delimiter ``/``) a
    subdirectory is yielded once as (``key/``, 0, None) and not entered. Entries are read page by page
    from the first one that can matter, and the walk stops when its consumer does."""
    first = _first_name(dir_key, name_filter, marker)
    pending: list[tuple[bytes, int, Entry]] = []  # entries held back until no later name sorts before them
    seq = 0
    empty = True
    async for e in view.vfs.iterdir(view.ctx, ino, _after(first), plus=True):
        empty = False
        if name_filter and not e.name.startswith(name_filter):
            if e.name > name_filter:
                break
            continue
        if ino == view.root and e.name in RESERVED_TOP:
            continue
        heapq.heappush(pending, (e.name + b"/" if e.typ is FileType.DIRECTORY else e.name, seq, e))
        seq += 1
        while pending and pending[0][0] <= e.name:
            sort_key, _, held = heapq.heappop(pending)
            async for item in _visit(view, dir_key + sort_key, held, marker, slash):
                yield item
    while pending:
        sort_key, _, held = heapq.heappop(pending)
        async for item in _visit(view, dir_key + sort_key, held, marker, slash):
            yield item
    if empty and not first and dir_key and not name_filter and dir_key > marker:
        yield dir_key, ino, await view.vfs.getattr(view.ctx, ino)  # an empty directory is the object "d/"


async def _visit(view: ObjectView, key: bytes, e: Entry, marker: bytes, slash: bool
                 ) -> AsyncIterator[tuple[bytes, int, Attr | None]]:
    if e.typ is FileType.DIRECTORY:
        if slash:
            if marker < key:
                yield key, 0, None
            return
        if marker >= key and not marker.startswith(key):
            return
        async for item in _walk(view, e.ino, key, b"", marker, False):
            yield item
    elif e.typ is FileType.REGULAR and key > marker and e.attr is not None:
        yield key, e.ino, e.attr

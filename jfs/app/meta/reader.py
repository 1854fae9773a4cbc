"""The engine's shared reader: read-only metadata queries for the tools outside the file-system operations
(fsck, gc, dump, the quota command, restore, the trash jobs, mdtest), so that they do not scan keys.

Contract: every function runs in read transactions of the KV port (`KV.read`), never writes, and reports
what it finds in the engine's terms (inodes, `FileType`, `Attr`, entry names as bytes). A query that spans
many transactions (`walk`, `dir_pages`, `PathCache`) is not a snapshot: entries added or removed meanwhile
may or may not be seen, and each is documented with what stays true. KV errors propagate; path resolution
fails with FSError (ENOENT / ENOTDIR) naming the path walked so far.

* paths: `resolve_path` (absolute path → inode and type), `resolve_dir` (the same for a directory, as the
  commands that take a ``--path`` report it), `PathCache` / `path_of` (inode → a best-effort path);
* entries: `lookup_entry`, `dir_entries` (one directory in one transaction), `dir_page` (a page after a
  name), `names_in` (the names of some children);
* walks: `walk` (every entry below some directories, each directory scanned once), `is_below`;
* attributes: `read_attr`, `read_attrs`.

The chunk, slice and delfile scans are in `jfs.app.meta.chunk_scan`.
"""

from __future__ import annotations

import errno
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

from jfs.app.meta import store
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, Attr, FileType
from jfs.domain.errors import FSError
from jfs.domain.records import decode_dentries, decode_dentry
from jfs.ports.kv import KV, Tx

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

Entry = tuple[bytes, FileType, int]
"""(name, type, inode) of one directory entry."""
MAX_DEPTH = 4096
"""Ancestors followed before a walk up the parents gives up (a cycle or a corrupt tree)."""
TRASH_NAME = ".trash"


async def read_attr(kv: KV, ino: int) -> Attr | None:
    """The attributes of `ino`, or None when it has none."""
    raw = await kv.read(lambda tx: tx.get(keys.attr(ino)))
    return None if raw is None else Attr.decode(raw)


async def read_attrs(kv: KV, inos: list[int]) -> list[Attr | None]:
    """The attributes of each of `inos` (None: it has none), read in one transaction."""
    raws = await kv.read(lambda tx: tx.get_many([keys.attr(ino) for ino in inos]))
    return [None if raw is None else Attr.decode(raw) for raw in raws]


async def lookup_entry(kv: KV, parent: int, name: bytes) -> tuple[FileType, int] | None:
    """(type, inode) of entry `name` of directory `parent`, or None."""
    raw = await kv.read(lambda tx: tx.get(keys.dentry(parent, name)))
    return None if raw is None else decode_dentry(raw)


async def resolve_path(kv: KV, path: str | bytes, *, trash: bool = False) -> tuple[int, FileType]:
    """(inode, type) of `path`, taken from the volume root (``/a/b``, ``a/b``; ``.`` components are
    skipped). With `trash`, ``.trash`` right below the root is the trash root. FSError ENOENT when a
    component does not exist, ENOTDIR when one before the last is not a directory; the error's detail and
    its ``filename`` are the path walked so far (``/a/b``)."""
    raw_path = path.encode(errors="surrogateescape") if isinstance(path, str) else path
    ino, typ = ROOT_INODE, FileType.DIRECTORY
    walked: list[str] = []
    for part in raw_path.split(b"/"):
        if part in (b"", b"."):
            continue
        if typ is not FileType.DIRECTORY:
            raise _path_error(errno.ENOTDIR, walked)
        walked.append(part.decode(errors="replace"))
        if trash and ino == ROOT_INODE and part == TRASH_NAME.encode():
            ino = TRASH_INODE
            continue
        found = await lookup_entry(kv, ino, part)
        if found is None:
            raise _path_error(errno.ENOENT, walked)
        typ, ino = found
    return ino, typ


def _path_error(code: int, walked: list[str]) -> FSError:
    shown = "/" + "/".join(walked)
    exc = FSError(code, shown)
    exc.filename = shown
    return exc


async def resolve_dir(m: Meta, path: str) -> int:
    """Inode of the directory `path` (relative to the volume root), for commands that take a directory.
    FSError naming `path` (as given, from the volume root) when it or a parent does not exist or is not a
    directory."""
    shown = "/" + path.strip("/")
    where = f"{shown} in volume '{m.settings.name}'"
    try:
        ino, _ = await resolve_path(m.kv, path)
    except FSError as exc:
        raise FSError(exc.errno or errno.EIO, where) from None
    attr = await read_attr(m.kv, ino)
    if attr is None:
        raise FSError(errno.ENOENT, where)
    if attr.typ is not FileType.DIRECTORY:
        raise FSError(errno.ENOTDIR, where)
    return ino


async def dir_entries(kv: KV, ino: int) -> list[Entry]:
    """Every entry of directory `ino` in name order, read in one transaction (empty when it has none)."""
    prefix = keys.dentry_prefix(ino)

    async def body(tx: Tx) -> list[Entry]:
        return [(k[len(prefix) :], *decode_dentry(v)) async for k, v in tx.scan_iter(prefix, keys.prefix_end(prefix))]

    return await kv.read(body)


async def dir_page(kv: KV, ino: int, after: bytes = b"", limit: int = 1024) -> list[Entry]:
    """Up to `limit` entries of directory `ino` whose names sort after `after` (from the first with
    ``b""``), in name order; fewer than `limit` means the end was reached."""
    prefix = keys.dentry_prefix(ino)
    begin = prefix + after + b"\x00" if after else prefix

    async def body(tx: Tx) -> list[tuple[bytes, bytes]]:
        return await tx.scan(begin, keys.prefix_end(prefix), limit=limit)

    # decoded in one loop (`decode_dentries`: no call per row), then put in `Entry`'s order
    return [(name, typ, child) for name, child, typ in decode_dentries(await kv.read(body), len(prefix))]


async def names_in(kv: KV, parent: int, kids: set[int]) -> dict[int, list[bytes]]:
    """child → its names in directory `parent`, for the children in `kids` (one scan of the directory)."""
    out: dict[int, list[bytes]] = defaultdict(list)
    for name, _, child in await dir_entries(kv, parent):
        if child in kids:
            out[child].append(name)
    return dict(out)


async def walk(kv: KV, tops: Iterable[int], *, recursive: bool = True) -> AsyncIterator[tuple[int, FileType, int]]:
    """(parent, type, inode) of the entries below the directories `tops` (with `recursive`, of their
    subdirectories too), depth first, one read transaction per directory.

    Each inode is reported once (the first name found; `tops` themselves never) and each directory is
    scanned once, so hard links and a corrupt tree with cycles end. Not a snapshot: entries changed while
    the walk runs may or may not be seen."""
    seen = set(tops)
    todo = list(seen)
    while todo:
        parent = todo.pop()
        for _, typ, ino in await dir_entries(kv, parent):
            if ino in seen:
                continue
            seen.add(ino)
            yield parent, typ, ino
            if recursive and typ is FileType.DIRECTORY:
                todo.append(ino)


async def is_below(kv: KV, ino: int, root: int) -> bool:
    """Whether inode `ino` is `root` or lies below it (following attribute parents, one read each; a
    hard-linked inode, whose parent is 0, is not below anything but itself)."""
    steps = 0
    while ino != root:
        if ino in (0, ROOT_INODE) or steps >= MAX_DEPTH:
            return False
        steps += 1
        attr = await read_attr(kv, ino)
        if attr is None:
            return False
        ino = attr.parent
    return True


class PathCache:
    """Best-effort paths of inodes, found by walking attribute parents and looking each name up in its
    parent (one scan of the parent per step); paths found are remembered, so a batch of inodes of the same
    tree costs one scan per directory. ``/`` is the root and ``/.trash`` the trash root."""

    def __init__(self, kv: KV) -> None:
        self.kv = kv
        self.known: dict[int, str] = {ROOT_INODE: "/", TRASH_INODE: "/" + TRASH_NAME}

    async def dir_path(self, ino: int) -> str:
        """The path of `ino`, or ``<inode N>`` when it has none (gone, detached, or too deep)."""
        chain: list[tuple[int, int, bytes]] = []
        cur = ino
        while cur not in self.known:
            found = await self._name(cur)
            if found is None or len(chain) > MAX_DEPTH or any(c == cur for c, _, _ in chain):
                self.known[ino] = f"<inode {ino}>"
                return self.known[ino]
            chain.append((cur, *found))
            cur = found[0]
        for child, parent, name in reversed(chain):
            base = self.known[parent].rstrip("/")
            self.known[child] = f"{base}/{name.decode(errors='replace')}"
        return self.known[ino]

    async def _name(self, ino: int) -> tuple[int, bytes] | None:
        """(parent, name) of one entry of `ino`, or None."""

        async def body(tx: Tx) -> tuple[int, bytes] | None:
            raw = await tx.get(keys.attr(ino))
            if raw is None:
                return None
            parent = Attr.decode(raw).parent
            if parent == 0:
                refs = await store.parent_refs(tx, ino)
                parent = min(refs) if refs else 0
            if parent == 0:
                return None
            prefix = keys.dentry_prefix(parent)
            async for key, value in tx.scan_iter(prefix, keys.prefix_end(prefix)):
                if decode_dentry(value)[1] == ino:
                    return parent, key[len(prefix) :]
            return None

        return await self.kv.read(body)


async def path_of(kv: KV, ino: int) -> str:
    """Best-effort path of `ino` (see `PathCache`), or ``<inode N>``."""
    return await PathCache(kv).dir_path(ino)

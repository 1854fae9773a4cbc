"""Names and paths for fsck: the scope of a ``--path`` check and the paths shown in the report.

Contract: `lookup_path` resolves an absolute path inside the volume (VolumeError when a component does
not exist; ``/.trash`` is the trash root); `subtree` lists the inodes in scope; `Paths` names the inodes of
the problems found, resolving them in batches (one scan per parent directory involved) and falling back
to ``<inode N>/…`` from the first ancestor without a known name; `names_in` is one directory scan.
Read-only; KV errors propagate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from jfs.app.ops.fsck.model import Model
from jfs.app.volume import VolumeError
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, Attr, FileType
from jfs.domain.records import decode_dentry
from jfs.ports.kv import KV, Tx


async def lookup_path(kv: KV, path: str) -> int:
    """Inode of absolute `path` inside the volume; VolumeError when it does not exist."""
    ino = ROOT_INODE
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        if ino == ROOT_INODE and part == ".trash":
            ino = TRASH_INODE
            continue
        name = part.encode()

        async def body(tx: Tx, parent: int = ino, name: bytes = name) -> int | None:
            raw = await tx.get(keys.dentry(parent, name))
            return None if raw is None else decode_dentry(raw)[1]

        found = await kv.read(body)
        if found is None:
            raise VolumeError(f"no such file or directory in the volume: /{'/'.join(parts[: i + 1])}")
        ino = found
    return ino


async def subtree(kv: KV, top: int, recursive: bool) -> tuple[set[int], list[int]]:
    """(inodes in scope, regular files among them): `top`, and below it all or only direct entries."""
    scope = {top}
    files: list[int] = []

    async def attr_of(tx: Tx) -> Attr | None:
        raw = await tx.get(keys.attr(top))
        return None if raw is None else Attr.decode(raw)

    attr = await kv.read(attr_of)
    if attr is not None and attr.typ is FileType.REGULAR:
        files.append(top)
    todo = [top] if attr is not None and attr.typ is FileType.DIRECTORY else []
    while todo:
        parent = todo.pop()
        prefix = keys.dentry_prefix(parent)

        async def body(tx: Tx, prefix: bytes = prefix) -> list[tuple[FileType, int]]:
            return [decode_dentry(v) async for _, v in tx.scan_iter(prefix, keys.prefix_end(prefix))]

        for typ, ino in await kv.read(body):
            if ino in scope:
                continue
            scope.add(ino)
            if typ is FileType.REGULAR:
                files.append(ino)
            elif typ is FileType.DIRECTORY and recursive:
                todo.append(ino)
    return scope, files


class Paths:
    """Paths of inodes, resolved in batches: one scan of each parent directory involved."""

    def __init__(self, kv: KV, model: Model) -> None:
        self.kv = kv
        self.model = model
        self.known: dict[int, str] = {ROOT_INODE: "/", TRASH_INODE: "/.trash"}
        self.link: dict[int, tuple[int, bytes]] = {}

    async def resolve(self, inos: Iterable[int]) -> None:
        want = {i for i in inos if i not in self.known and i not in self.link}
        seen: set[int] = set()
        while want:
            seen |= want
            by_parent: dict[int, set[int]] = defaultdict(set)
            for ino in want:
                parent = self.model.some_parent(ino)
                if parent:
                    by_parent[parent].add(ino)
            nxt: set[int] = set()
            for parent, kids in by_parent.items():
                for kid, names in (await names_in(self.kv, parent, kids)).items():
                    self.link[kid] = (parent, names[0])
                    if parent not in self.known and parent not in self.link and parent not in seen:
                        nxt.add(parent)
            want = nxt

    def path(self, ino: int) -> str:
        """The path of `ino` (``<inode N>/…`` from the first ancestor without a known name)."""
        names: list[bytes] = []
        cur = ino
        while cur not in self.known:
            step = self.link.get(cur)
            if step is None or len(names) > 4096:
                prefix = f"<inode {cur}>"
                break
            names.append(step[1])
            cur = step[0]
        else:
            prefix = self.known[cur].rstrip("/")
        return prefix + "".join("/" + n.decode(errors="replace") for n in reversed(names)) or "/"

    def entry_path(self, parent: int, name: bytes) -> str:
        return self.path(parent).rstrip("/") + "/" + name.decode(errors="replace")


async def names_in(kv: KV, parent: int, kids: set[int]) -> dict[int, list[bytes]]:
    """child → its names in directory `parent`, for the children in `kids` (one scan of the directory)."""
    prefix = keys.dentry_prefix(parent)

    async def body(tx: Tx) -> dict[int, list[bytes]]:
        out: dict[int, list[bytes]] = defaultdict(list)
        async for key, value in tx.scan_iter(prefix, keys.prefix_end(prefix)):
            child = decode_dentry(value)[1]
            if child in kids:
                out[child].append(key[len(prefix) :])
        return dict(out)

    return await kv.read(body)

"""Names and paths for fsck: the scope of a ``--path`` check and the paths shown in the report.

Contract: `lookup_path` resolves an absolute path inside the volume (VolumeError when a component does
not exist; ``/.trash`` is the trash root); `subtree` lists the inodes in scope; `Paths` names the inodes of
the problems found, resolving them in batches (one scan per parent directory involved) and falling back
to ``<inode N>/…`` from the first ancestor without a known name. Every read goes through the engine's
reader (`jfs.app.meta.reader`: path resolution, subtree walk, `names_in`). Read-only; KV errors propagate.
"""

from __future__ import annotations

import errno
from collections import defaultdict
from collections.abc import Iterable

from jfs.app.meta import reader
from jfs.app.meta.reader import names_in  # Paths resolves names with it
from jfs.app.ops.fsck.model import Model
from jfs.app.volume import VolumeError
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, FileType
from jfs.domain.errors import FSError
from jfs.ports.kv import KV

__all__ = ["Paths", "lookup_path", "subtree"]


async def lookup_path(kv: KV, path: str) -> int:
    """Inode of absolute `path` inside the volume; VolumeError when it does not exist."""
    try:
        ino, _ = await reader.resolve_path(kv, path, trash=True)
    except FSError as exc:
        what = "not a directory" if exc.errno == errno.ENOTDIR else "no such file or directory"
        raise VolumeError(f"{what} in the volume: {exc.filename}") from None
    return ino


async def subtree(kv: KV, top: int, recursive: bool) -> tuple[set[int], list[int]]:
    """(inodes in scope, regular files among them): `top`, and below it all or only direct entries."""
    scope = {top}
    files: list[int] = []
    attr = await reader.read_attr(kv, top)
    if attr is None:
        return scope, files
    if attr.typ is FileType.REGULAR:
        files.append(top)
    if attr.typ is FileType.DIRECTORY:
        async for _, typ, ino in reader.walk(kv, [top], recursive=recursive):
            scope.add(ino)
            if typ is FileType.REGULAR:
                files.append(ino)
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

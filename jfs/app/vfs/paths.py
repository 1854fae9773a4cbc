"""Path resolution for the path-based faces (SDK, gateways): names → inodes through `VFS.lookup`.

Names and attributes are remembered in the VFS's `NameCache` when it has one (as a kernel would).
Paths are POSIX-like, relative to the client's root inode (its ``subdir``): ``/a/b``, ``a/b`` and
``a//b/./`` are the same. ``..`` goes to the parent directory (never above the client's root). Symbolic
links are followed in every component but the last (and in the last too with `follow`); an absolute link
target starts again at the client's root. Errors: ENOENT, ENOTDIR (a component is not a directory),
EACCES (no search permission), ELOOP (more than 40 links), ENAMETOOLONG, EINVAL (empty path).
"""

from __future__ import annotations

import errno
import os

from jfs.app.meta import Ctx
from jfs.app.vfs.core import VFS
from jfs.domain.attrs import ROOT_INODE, Attr, FileType
from jfs.domain.errors import FSError

MAX_SYMLINKS = 40
MAX_NAME = 255


def split_path(path: str | bytes) -> list[bytes]:
    """The components of `path` without empty and ``.`` ones (``..`` kept). EINVAL for an empty path."""
    raw = os.fsencode(path)
    if not raw:
        raise FSError(errno.ENOENT, "empty path")
    if b"\0" in raw:
        raise FSError(errno.EINVAL, "path contains a NUL byte")
    parts = [p for p in raw.split(b"/") if p and p != b"."]
    for p in parts:
        if len(p) > MAX_NAME:
            raise FSError(errno.ENAMETOOLONG)
    return parts


class PathResolver:
    """Resolves paths of one client below `root` (the inode its paths start from)."""

    def __init__(self, vfs: VFS, root: int = ROOT_INODE) -> None:
        self.vfs = vfs
        self.root = root

    async def resolve(self, ctx: Ctx, path: str | bytes, *, follow: bool = True) -> tuple[int, Attr]:
        """The inode and attributes `path` names (the link itself for a final symlink unless `follow`)."""
        ino, attr, _ = await self._walk(ctx, split_path(path), follow=follow)
        return ino, attr

    def cached(self, path: str | bytes, *, follow: bool = True) -> tuple[int, Attr] | None:
        """What `resolve` would answer when every component is fresh in the name cache, else None (also for
        ``..`` and symbolic links, and when there is no cache). Reads the cache only, so it may be called from
        another thread than the one the VFS runs on: a caller sees every change its own earlier calls made
        (they drop the stale entries before returning)."""
        names = self.vfs.names
        if names is None:
            return None
        try:
            parts = split_path(path)
        except FSError:
            return None
        ino = self.root
        attr = names.peek_attr(ino)
        for name in parts:
            if attr is None or attr.typ is not FileType.DIRECTORY or name == b"..":
                return None
            child = names.peek_entry(ino, name)
            if child is None:
                return None
            ino, attr = child, names.peek_attr(child)
        if attr is None or (attr.typ is FileType.SYMLINK and follow):
            return None
        return ino, attr

    async def resolve_parent(self, ctx: Ctx, path: str | bytes) -> tuple[int, bytes]:
        """The directory that holds the last component of `path`, and that component's name.

        EINVAL for the client's root itself (it has no name here); ENOTDIR when the parent is not a directory.
        """
        parts = split_path(path)
        if not parts:
            raise FSError(errno.EINVAL, "the root has no parent")
        name = parts[-1]
        if name == b"..":
            raise FSError(errno.EINVAL, "path ends in '..'")
        ino, attr, _ = await self._walk(ctx, parts[:-1], follow=True)
        if attr.typ is not FileType.DIRECTORY:
            raise FSError(errno.ENOTDIR)
        return ino, name

    async def _getattr(self, ctx: Ctx, ino: int) -> Attr:
        names = self.vfs.names
        if names is not None:
            hit = names.attr(ino)
            if hit is not None:
                return hit
        attr = await self.vfs.getattr(ctx, ino)
        if names is not None:
            names.remember_attr(ino, attr)
        return attr

    async def _lookup(self, ctx: Ctx, parent: int, name: bytes) -> tuple[int, Attr]:
        names = self.vfs.names
        if names is not None:
            ino = names.entry(parent, name)
            if ino is not None:
                attr = names.attr(ino)
                if attr is None:
                    try:
                        attr = await self.vfs.getattr(ctx, ino)
                    except FSError as exc:
                        if exc.errno != errno.ENOENT:
                            raise
                        names.forget_entry(parent, name)  # gone meanwhile: look the name up again
                        return await self._lookup(ctx, parent, name)
                    names.remember_attr(ino, attr)
                return ino, attr
        ino, attr = await self.vfs.lookup(ctx, parent, name)
        if names is not None:
            names.remember(parent, name, ino, attr)
        return ino, attr

    async def _walk(self, ctx: Ctx, parts: list[bytes], *, follow: bool) -> tuple[int, Attr, int]:
        ino = self.root
        attr = await self._getattr(ctx, ino)
        links = 0
        todo = list(reversed(parts))
        while todo:
            name = todo.pop()
            if attr.typ is not FileType.DIRECTORY:
                raise FSError(errno.ENOTDIR)
            if name == b"..":
                if ino != self.root:
                    ino = attr.parent or ROOT_INODE
                    attr = await self._getattr(ctx, ino)
                continue
            child, cattr = await self._lookup(ctx, ino, name)
            if cattr.typ is FileType.SYMLINK and (todo or follow):
                links += 1
                if links > MAX_SYMLINKS:
                    raise FSError(errno.ELOOP)
                target = await self.vfs.readlink(ctx, child)
                if target.startswith(b"/"):
                    ino = self.root
                    attr = await self._getattr(ctx, ino)
                todo.extend(reversed([p for p in target.split(b"/") if p and p != b"."]))
                continue
            ino, attr = child, cattr
        return ino, attr, links

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
        ino, got, _ = await self._walk(ctx, split_path(path), follow=follow)
        return ino, got if isinstance(got, Attr) else await self._getattr(ctx, ino)

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
        for name in parts:
            # A directory on the way needs only its (immutable) type, not fresh attributes.
            if names.kind(ino) is not FileType.DIRECTORY or name == b"..":
                return None
            child = names.peek_entry(ino, name)
            if child is None:
                return None
            ino = child
        attr = names.peek_attr(ino)
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
        known = self._cached_dir(parts, len(parts) - 1)
        if known is not None:
            return known, name
        ino, got, _ = await self._walk(ctx, parts[:-1], follow=True, kind_only=True)
        if (got if isinstance(got, FileType) else got.typ) is not FileType.DIRECTORY:
            raise FSError(errno.ENOTDIR)
        return ino, name

    def _cached_dir(self, parts: list[bytes], n: int) -> int | None:
        """The directory the first `n` of `parts` lead to when the name cache answers every step as `_walk`
        would (fresh entries, types known, no ``..`` and no symbolic link on the way), without a coroutine
        per step; None otherwise (the caller walks)."""
        names = self.vfs.names
        if names is None:
            return None
        ino = self.root
        if names.kind(ino) is not FileType.DIRECTORY:
            return None
        for i in range(n):
            name = parts[i]
            if name == b"..":
                return None
            child = names.entry(ino, name)
            if child is None or names.kind(child) is not FileType.DIRECTORY:
                return None
            ino = child
        return ino

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

    async def _lookup(self, ctx: Ctx, parent: int, name: bytes, *, passing: bool = False
                      ) -> tuple[int, Attr | FileType]:
        """The inode of `name` in `parent` and its attributes — or only its type, when `passing` (the walk
        goes on below it) and the name cache knows the entry and the type but no fresh attributes."""
        names = self.vfs.names
        if names is not None:
            ino = names.entry(parent, name)
            if ino is not None:
                attr = names.attr(ino)
                if attr is None and passing:
                    kind = names.kind(ino)
                    if kind is not None:
                        return ino, kind
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

    async def _kind(self, ctx: Ctx, ino: int) -> Attr | FileType:
        names = self.vfs.names
        kind = names.kind(ino) if names is not None else None
        return kind if kind is not None else await self._getattr(ctx, ino)

    async def _walk(self, ctx: Ctx, parts: list[bytes], *, follow: bool, kind_only: bool = False
                    ) -> tuple[int, Attr | FileType, int]:
        """The inode `parts` lead to, its attributes or only its type (cached: see `NameCache.kind`; the type
        is enough for every component with `kind_only`), and the number of symbolic links followed."""
        # `got` is the current inode's attributes, or only its type while nothing more is needed: the
        # directories on the way are passed on their cached type.
        ino = self.root
        got: Attr | FileType = await self._kind(ctx, ino)
        links = 0
        todo = list(reversed(parts))
        while todo:
            name = todo.pop()
            if (got if isinstance(got, FileType) else got.typ) is not FileType.DIRECTORY:
                raise FSError(errno.ENOTDIR)
            if name == b"..":
                if ino != self.root:
                    attr = got if isinstance(got, Attr) else await self._getattr(ctx, ino)
                    ino = attr.parent or ROOT_INODE
                    got = await self._getattr(ctx, ino)
                continue
            child, cgot = await self._lookup(ctx, ino, name, passing=kind_only or bool(todo))
            if (cgot if isinstance(cgot, FileType) else cgot.typ) is FileType.SYMLINK and (todo or follow):
                links += 1
                if links > MAX_SYMLINKS:
                    raise FSError(errno.ELOOP)
                target = await self.vfs.readlink(ctx, child)
                if target.startswith(b"/"):
                    ino = self.root
                    got = await self._kind(ctx, ino)
                todo.extend(reversed([p for p in target.split(b"/") if p and p != b"."]))
                continue
            ino, got = child, cgot
        return ino, got, links

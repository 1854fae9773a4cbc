"""Extended attributes of the VFS (`VFS` inherits `XattrOps`).

Contract: every call raises FSError(ENOSYS) when the volume is mounted without xattrs (as JuiceFS without
`--enable-xattr`: a kernel remembers ENOSYS and stops asking), EROFS for a change on a read-only client, and
ENODATA for the namespaces jfs does not store (POSIX ACLs, security labels) and for the client's internal
inodes, answered without a metadata round trip.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, TypeVar

from jfs.app.meta import Ctx, Meta
from jfs.app.virtual_files import INTERNAL_INODES
from jfs.domain.errors import FSError

if TYPE_CHECKING:
    from jfs.app.vfs.core import VfsConfig

T = TypeVar("T")

UNSERVED_XATTRS = (b"security.", b"system.posix_acl_")
"""xattr namespaces jfs does not store (POSIX ACLs, security labels): asked for by `ls -l` on every entry."""


class XattrOps:
    """The xattr calls of a VFS; the VFS provides `meta`, `config`, `_timed`, `_writable` and `_changed`."""

    meta: Meta
    config: VfsConfig

    async def _timed(self, op: str, ctx: Ctx | None, args: str, call: Awaitable[T]) -> T:
        raise NotImplementedError

    def _writable(self) -> None:
        raise NotImplementedError

    def _changed(self, *inodes: int) -> None:
        raise NotImplementedError

    def _xattr_gate(self) -> None:
        if not self.config.enable_xattr:
            # ENOSYS (as JuiceFS without --enable-xattr): a kernel remembers it, answers EOPNOTSUPP itself
            # and stops sending xattr requests — `ls -l` then costs no round trip per entry.
            raise FSError(errno.ENOSYS)

    async def setxattr(self, ctx: Ctx, ino: int, name: bytes, value: bytes, flags: int = 0) -> None:
        self._xattr_gate()
        self._writable()
        if name.startswith(UNSERVED_XATTRS):
            raise FSError(errno.EOPNOTSUPP, "POSIX ACLs and security labels are not supported")
        await self._timed("setxattr", ctx, f"{ino},{name!r}", self.meta.setxattr(ino, name, value, flags, ctx))
        self._changed(ino)

    async def getxattr(self, ctx: Ctx, ino: int, name: bytes) -> bytes:
        self._xattr_gate()
        if ino in INTERNAL_INODES or name.startswith(UNSERVED_XATTRS):
            raise FSError(errno.ENODATA)  # answered without a metadata round trip
        return await self._timed("getxattr", ctx, f"{ino},{name!r}", self.meta.getxattr(ino, name, ctx))

    async def getxattr_many(self, ctx: Ctx, inodes: list[int], name: bytes) -> list[bytes | None]:
        """Attribute `name` of many inodes in one metadata round trip (None where absent or unreadable)."""
        self._xattr_gate()
        return await self._timed("getxattr", ctx, f"{len(inodes)} inodes,{name!r}",
                                 self.meta.getxattr_many(inodes, name, ctx))

    async def listxattr(self, ctx: Ctx, ino: int) -> Sequence[bytes]:
        self._xattr_gate()
        if ino in INTERNAL_INODES:
            return []
        return await self._timed("listxattr", ctx, str(ino), self.meta.listxattr(ino, ctx))

    async def removexattr(self, ctx: Ctx, ino: int, name: bytes) -> None:
        self._xattr_gate()
        self._writable()
        await self._timed("removexattr", ctx, f"{ino},{name!r}", self.meta.removexattr(ino, name, ctx))

"""The opcode table: each FUSE request decoded into a call of its `Operations` method, and the
method's result encoded as the reply.

Decoders run synchronously in the reader callback, while the request buffer is valid: they copy out
what they need (names, xattr values) except the WRITE payload, which stays a view of the buffer (the
server keeps that buffer until the handler returns). A decoder returns the awaitable to run and the
encoder of its result (``None``: no reply), or raises OSError to answer with that errno at once. The
connection's own requests (INIT, DESTROY, INTERRUPT) are the server's.
"""

from __future__ import annotations

import errno
import stat
import struct
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from jfs.adapters.fuse import protocol as p
from jfs.adapters.fuse.operations import (
    AttrOut,
    Buffer,
    DirentSink,
    EntryOut,
    FileLock,
    OpenOut,
    Operations,
    ReadResult,
    RequestContext,
    SetattrRequest,
    StatFs,
)

_NS: Final = 1_000_000_000
_IOV_MAX: Final = 1024
_UNIQUE: Final = struct.Struct("=Q")
_HDR_ENTRY_OUT_PACK: Final = p.HDR_ENTRY_OUT.pack
_HDR_ENTRY_OUT_SIZE: Final = p.HDR_ENTRY_OUT.size
_UNIQUE_AT: Final = 8
"""Where the request header holds ``unique`` (after len and opcode)."""

Encoder = Callable[[int, Any], None]
"""Writes the reply to request ``unique`` (the first argument) carrying a handler's result."""
Work = tuple[Awaitable[Any], Encoder | None]
"""What a decoded request runs, and how its result is answered (``None``: it gets no reply)."""
Decoder = Callable[[int, RequestContext, bytearray, int], Work | None]
"""``(nodeid, ctx, buf, n)`` -> the request's `Work` (``None``: nothing to run)."""


class OpcodeTable:
    """Decoders and encoders of the file-system requests, calling `ops`.

    Replies go out through `write` (one buffer) and `writev` (several), which must not raise.
    """

    def __init__(self, ops: Operations, write: Callable[[Buffer], None],
                 writev: Callable[[Sequence[Buffer]], None]) -> None:
        self.ops = ops
        self._write = write
        self._writev = writev
        self._read_now = ops.read_now
        self._getattr_now = ops.getattr_now
        self._flush_now = ops.flush_now
        self._release_now = ops.release_now
        self._forgets_ignored = getattr(type(ops), "forget", None) is Operations.forget
        """Whether `ops` keeps the base no-op `forget`: then FORGET / BATCH_FORGET start no handler at all
        (a dropped dentry cache sends one per cached inode, often one at a time; ADR 0078)."""
        self.setxattr_ext = False
        """Whether SETXATTR carries the extended header (FUSE_SETXATTR_EXT agreed at INIT)."""

    def decoders(self) -> dict[int, Decoder]:
        """The decoder of each opcode handled here."""
        op = p.Opcode
        return {
            op.FORGET: self._d_forget,
            op.BATCH_FORGET: self._d_batch_forget,
            op.LOOKUP: self._d_lookup,
            op.GETATTR: self._d_getattr,
            op.SETATTR: self._d_setattr,
            op.READLINK: self._d_readlink,
            op.SYMLINK: self._d_symlink,
            op.MKNOD: self._d_mknod,
            op.MKDIR: self._d_mkdir,
            op.UNLINK: self._d_unlink,
            op.RMDIR: self._d_rmdir,
            op.RENAME: self._d_rename,
            op.RENAME2: self._d_rename2,
            op.LINK: self._d_link,
            op.OPEN: self._d_open,
            op.CREATE: self._d_create,
            op.READ: self._d_read,
            op.WRITE: self._d_write,
            op.STATFS: self._d_statfs,
            op.RELEASE: self._d_release,
            op.FSYNC: self._d_fsync,
            op.FLUSH: self._d_flush,
            op.SETXATTR: self._d_setxattr,
            op.GETXATTR: self._d_getxattr,
            op.LISTXATTR: self._d_listxattr,
            op.REMOVEXATTR: self._d_removexattr,
            op.OPENDIR: self._d_opendir,
            op.READDIR: self._d_readdir,
            op.READDIRPLUS: self._d_readdirplus,
            op.RELEASEDIR: self._d_releasedir,
            op.FSYNCDIR: self._d_fsyncdir,
            op.GETLK: self._d_getlk,
            op.SETLK: self._d_setlk,
            op.SETLKW: self._d_setlkw,
            op.ACCESS: self._d_access,
            op.FALLOCATE: self._d_fallocate,
            op.COPY_FILE_RANGE: self._d_copy_file_range,
            op.LSEEK: self._d_lseek,
        }

    # ------------------------------------------------------------------ decoders

    # --- forgetting

    def _d_forget(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        if self._forgets_ignored:
            return None
        (nlookup,) = p.FORGET_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.forget([(nodeid, nlookup)]), None

    def _d_batch_forget(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        if self._forgets_ignored:
            return None
        count, _ = p.BATCH_FORGET_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        start = p.IN_HEADER_SIZE + p.BATCH_FORGET_IN.size
        items = list(p.FORGET_ONE.iter_unpack(memoryview(buf)[start:start + count * p.FORGET_ONE.size]))
        return self.ops.forget(items), None

    # --- names and attributes

    def _d_lookup(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE, n)
        return self.ops.lookup(ctx, nodeid, name), self._e_entry

    def _d_getattr(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        out = self._getattr_now(ctx, nodeid)
        if out is not None:  # answered from what the file system holds: no task, no await
            self._e_attr(_UNIQUE.unpack_from(buf, _UNIQUE_AT)[0], out)
            return None
        flags, _, fh = p.GETATTR_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.getattr(ctx, nodeid, fh if flags & p.FUSE_GETATTR_FH else None), self._e_attr

    def _d_setattr(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        (valid, _, fh, size, lock_owner, atime, mtime, ctime, atimensec, mtimensec, ctimensec, mode, _, uid,
         gid, _) = p.SETATTR_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        atime_now = bool(valid & p.FATTR_ATIME_NOW)
        mtime_now = bool(valid & p.FATTR_MTIME_NOW)
        req = SetattrRequest(
            valid,
            mode=mode & 0o7777 if valid & p.FATTR_MODE else None,
            uid=uid if valid & p.FATTR_UID else None,
            gid=gid if valid & p.FATTR_GID else None,
            size=size if valid & p.FATTR_SIZE else None,
            atime_ns=atime * _NS + atimensec if valid & p.FATTR_ATIME and not atime_now else None,
            mtime_ns=mtime * _NS + mtimensec if valid & p.FATTR_MTIME and not mtime_now else None,
            ctime_ns=ctime * _NS + ctimensec if valid & p.FATTR_CTIME else None,
            atime_now=atime_now,
            mtime_now=mtime_now,
            fh=fh if valid & p.FATTR_FH else None,
            lock_owner=lock_owner if valid & p.FATTR_LOCKOWNER else None,
            kill_suidgid=bool(valid & p.FATTR_KILL_SUIDGID),
        )
        return self.ops.setattr(ctx, nodeid, req), self._e_attr

    def _d_readlink(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        return self.ops.readlink(ctx, nodeid), self._e_bytes

    def _d_symlink(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        name, off = p.cstring(buf, p.IN_HEADER_SIZE, n)
        target, _ = p.cstring(buf, off, n)
        return self.ops.symlink(ctx, nodeid, name, target), self._e_entry

    def _d_mknod(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        mode, rdev, umask, _ = p.MKNOD_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE + p.MKNOD_IN.size, n)
        ctx.umask = umask
        return self.ops.mknod(ctx, nodeid, name, mode, rdev), self._e_entry

    def _d_mkdir(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        mode, umask = p.MKDIR_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE + p.MKDIR_IN.size, n)
        ctx.umask = umask
        return self.ops.mkdir(ctx, nodeid, name, stat.S_IFDIR | (mode & 0o7777)), self._e_entry

    def _d_unlink(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE, n)
        return self.ops.unlink(ctx, nodeid, name), self._e_empty

    def _d_rmdir(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE, n)
        return self.ops.rmdir(ctx, nodeid, name), self._e_empty

    def _d_rename(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        (newdir,) = p.RENAME_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        old, off = p.cstring(buf, p.IN_HEADER_SIZE + p.RENAME_IN.size, n)
        new, _ = p.cstring(buf, off, n)
        return self.ops.rename(ctx, nodeid, old, newdir, new, 0), self._e_empty

    def _d_rename2(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        newdir, flags, _ = p.RENAME2_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        old, off = p.cstring(buf, p.IN_HEADER_SIZE + p.RENAME2_IN.size, n)
        new, _ = p.cstring(buf, off, n)
        return self.ops.rename(ctx, nodeid, old, newdir, new, flags), self._e_empty

    def _d_link(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        (old,) = p.LINK_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE + p.LINK_IN.size, n)
        return self.ops.link(ctx, old, nodeid, name), self._e_entry

    # --- files

    def _d_open(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        flags, _ = p.OPEN_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.open(ctx, nodeid, flags), self._e_open

    def _d_create(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        flags, mode, umask, _ = p.CREATE_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE + p.CREATE_IN.size, n)
        ctx.umask = umask
        return self.ops.create(ctx, nodeid, name, mode, flags), self._e_create

    def _d_read(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, offset, size, _, _, _, _ = p.READ_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        data = self._read_now(nodeid, fh, offset, size)
        if data is not None:  # answered from the caches: no task, no await (ADR 0038)
            self._e_read(_UNIQUE.unpack_from(buf, _UNIQUE_AT)[0], data)
            return None
        return self.ops.read(ctx, nodeid, fh, offset, size), self._e_read

    def _d_write(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, offset, size, write_flags, _, _, _ = p.WRITE_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        data = memoryview(buf)[p.WRITE_DATA_OFFSET:p.WRITE_DATA_OFFSET + size]
        return self.ops.write(ctx, nodeid, fh, offset, data, write_flags), self._e_write

    def _d_statfs(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        return self.ops.statfs(ctx, nodeid), self._e_statfs

    def _d_release(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, flags, release_flags, lock_owner = p.RELEASE_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        owner = lock_owner if release_flags & p.FUSE_RELEASE_FLOCK_UNLOCK else None
        if self._release_now(ctx, nodeid, fh, flags, owner):  # nothing to wait for (ADR 0090): no task
            self._e_empty(_UNIQUE.unpack_from(buf, _UNIQUE_AT)[0], None)
            return None
        return self.ops.release(ctx, nodeid, fh, flags, owner), self._e_empty

    def _d_fsync(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, flags, _ = p.FSYNC_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.fsync(ctx, nodeid, fh, bool(flags & p.FUSE_FSYNC_FDATASYNC)), self._e_empty

    def _d_flush(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, _, _, lock_owner = p.FLUSH_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        if self._flush_now(ctx, nodeid, fh, lock_owner):  # nothing to commit or unlock (ADR 0090): no task
            self._e_empty(_UNIQUE.unpack_from(buf, _UNIQUE_AT)[0], None)
            return None
        return self.ops.flush(ctx, nodeid, fh, lock_owner), self._e_empty

    def _d_fallocate(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, offset, length, mode, _ = p.FALLOCATE_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.fallocate(ctx, nodeid, fh, offset, length, mode), self._e_empty

    def _d_copy_file_range(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh_in, off_in, nodeid_out, fh_out, off_out, length, flags = p.COPY_FILE_RANGE_IN.unpack_from(
            buf, p.IN_HEADER_SIZE)
        return (self.ops.copy_file_range(ctx, nodeid, fh_in, off_in, nodeid_out, fh_out, off_out, length, flags),
                self._e_write)

    def _d_lseek(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, offset, whence, _ = p.LSEEK_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.lseek(ctx, nodeid, fh, offset, whence), self._e_lseek

    # --- xattrs

    def _d_setxattr(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        if self.setxattr_ext:
            size, flags, _, _ = p.SETXATTR_IN.unpack_from(buf, p.IN_HEADER_SIZE)
            off = p.IN_HEADER_SIZE + p.SETXATTR_IN.size
        else:
            size, flags = p.SETXATTR_IN_COMPAT.unpack_from(buf, p.IN_HEADER_SIZE)
            off = p.IN_HEADER_SIZE + p.SETXATTR_IN_COMPAT.size
        name, off = p.cstring(buf, off, n)
        if off + size > n:
            raise OSError(errno.EINVAL, "xattr value beyond the request")
        value = bytes(buf[off:off + size])
        return self.ops.setxattr(ctx, nodeid, name, value, flags), self._e_empty

    def _d_getxattr(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        size, _ = p.GETXATTR_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE + p.GETXATTR_IN.size, n)
        return self._getxattr(ctx, nodeid, name, size), self._e_bytes

    async def _getxattr(self, ctx: RequestContext, ino: int, name: bytes, size: int) -> bytes:
        return _sized(await self.ops.getxattr(ctx, ino, name), size)

    def _d_listxattr(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        size, _ = p.GETXATTR_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self._listxattr(ctx, nodeid, size), self._e_bytes

    async def _listxattr(self, ctx: RequestContext, ino: int, size: int) -> bytes:
        names = await self.ops.listxattr(ctx, ino)
        return _sized(b"".join(name + b"\0" for name in names), size)

    def _d_removexattr(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        name, _ = p.cstring(buf, p.IN_HEADER_SIZE, n)
        return self.ops.removexattr(ctx, nodeid, name), self._e_empty

    # --- directories

    def _d_opendir(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        flags, _ = p.OPEN_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.opendir(ctx, nodeid, flags), self._e_open

    def _d_readdir(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, offset, size, _, _, _, _ = p.READ_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self._readdir(ctx, nodeid, fh, offset, DirentSink(size, False)), self._e_bytes

    def _d_readdirplus(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, offset, size, _, _, _, _ = p.READ_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self._readdir(ctx, nodeid, fh, offset, DirentSink(size, True)), self._e_bytes

    async def _readdir(self, ctx: RequestContext, ino: int, fh: int, offset: int, sink: DirentSink) -> bytearray:
        await self.ops.readdir(ctx, ino, fh, offset, sink)
        return sink.payload

    def _d_releasedir(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, _, _, _ = p.RELEASE_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.releasedir(ctx, nodeid, fh), self._e_empty

    def _d_fsyncdir(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, flags, _ = p.FSYNC_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.fsyncdir(ctx, nodeid, fh, bool(flags & p.FUSE_FSYNC_FDATASYNC)), self._e_empty

    # --- file system, permissions, locks

    def _d_access(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        mask, _ = p.ACCESS_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.access(ctx, nodeid, mask), self._e_empty

    def _d_getlk(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        fh, owner, start, end, typ, pid, _, _ = p.LK_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        return self.ops.getlk(ctx, nodeid, fh, owner, FileLock(start, end, typ, pid)), self._e_lk

    def _d_setlk(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        return self._setlk(nodeid, ctx, buf, False)

    def _d_setlkw(self, nodeid: int, ctx: RequestContext, buf: bytearray, n: int) -> Work | None:
        return self._setlk(nodeid, ctx, buf, True)

    def _setlk(self, nodeid: int, ctx: RequestContext, buf: bytearray, sleep: bool) -> Work:
        fh, owner, start, end, typ, pid, lk_flags, _ = p.LK_IN.unpack_from(buf, p.IN_HEADER_SIZE)
        if lk_flags & p.FUSE_LK_FLOCK:
            return self.ops.flock(ctx, nodeid, fh, owner, typ, sleep), self._e_empty
        return self.ops.setlk(ctx, nodeid, fh, owner, FileLock(start, end, typ, pid), sleep), self._e_empty


    # ------------------------------------------------------------------ encoders

    def _e_empty(self, unique: int, _result: object) -> None:
        self._write(p.OUT_HEADER.pack(p.OUT_HEADER_SIZE, 0, unique))

    def _e_bytes(self, unique: int, data: Buffer) -> None:
        self._writev([p.OUT_HEADER.pack(p.OUT_HEADER_SIZE + len(data), 0, unique), data])

    def _e_read(self, unique: int, data: ReadResult) -> None:
        if type(data) is list:
            if len(data) >= _IOV_MAX:
                data = [b"".join(data)]
            size = 0
            for part in data:
                size += len(part)
            self._writev([p.OUT_HEADER.pack(p.OUT_HEADER_SIZE + size, 0, unique), *data])
        else:
            assert not isinstance(data, list)
            self._writev([p.OUT_HEADER.pack(p.OUT_HEADER_SIZE + len(data), 0, unique), data])

    def _e_attr(self, unique: int, out: AttrOut) -> None:
        a = out.attr
        t = out.timeout
        ts = int(t) if t > 0 else 0
        asec, ansec = divmod(a.atime_ns, _NS)
        msec, mnsec = divmod(a.mtime_ns, _NS)
        csec, cnsec = divmod(a.ctime_ns, _NS)
        self._write(p.HDR_ATTR_OUT.pack(
            p.HDR_ATTR_OUT.size, 0, unique, ts, int((t - ts) * 1e9) if t > 0 else 0, 0,
            a.ino, a.size, a.blocks, asec, msec, csec, ansec, mnsec, cnsec, a.mode, a.nlink, a.uid, a.gid,
            a.rdev, a.blksize, 0))

    def _e_entry(self, unique: int, e: EntryOut | tuple[int, ...]) -> None:
        if type(e) is tuple:  # the values of `EntryOut.pack_fields()` (Operations.lookup may answer so)
            self._write(_HDR_ENTRY_OUT_PACK(_HDR_ENTRY_OUT_SIZE, 0, unique, *e))
            return
        assert not isinstance(e, tuple)
        a = e.attr
        et = e.entry_timeout
        at = e.attr_timeout
        es = int(et) if et > 0 else 0
        as_ = int(at) if at > 0 else 0
        asec, ansec = divmod(a.atime_ns, _NS)
        msec, mnsec = divmod(a.mtime_ns, _NS)
        csec, cnsec = divmod(a.ctime_ns, _NS)
        self._write(p.HDR_ENTRY_OUT.pack(
            p.HDR_ENTRY_OUT.size, 0, unique, e.ino, e.generation, es, as_,
            int((et - es) * 1e9) if et > 0 else 0, int((at - as_) * 1e9) if at > 0 else 0,
            a.ino, a.size, a.blocks, asec, msec, csec, ansec, mnsec, cnsec, a.mode, a.nlink, a.uid, a.gid,
            a.rdev, a.blksize, 0))

    def _e_create(self, unique: int, result: tuple[EntryOut, OpenOut]) -> None:
        entry, opened = result
        self._write(p.HDR_ENTRY_OPEN_OUT.pack(p.HDR_ENTRY_OPEN_OUT.size, 0, unique, *entry.pack_fields(),
                                              opened.fh, opened.flags, 0))

    def _e_open(self, unique: int, out: OpenOut) -> None:
        self._write(p.HDR_OPEN_OUT.pack(p.HDR_OPEN_OUT.size, 0, unique, out.fh, out.flags, 0))

    def _e_write(self, unique: int, count: int) -> None:
        self._write(p.HDR_WRITE_OUT.pack(p.HDR_WRITE_OUT.size, 0, unique, count, 0))

    encode_write = _e_write
    """The WRITE reply (for the server's placed writes, which it decodes itself)."""

    def _e_statfs(self, unique: int, s: StatFs) -> None:
        self._write(p.HDR_STATFS_OUT.pack(p.HDR_STATFS_OUT.size, 0, unique, s.blocks, s.bfree, s.bavail,
                                          s.files, s.ffree, s.bsize, s.namelen, s.frsize, 0))

    def _e_lk(self, unique: int, lk: FileLock) -> None:
        self._write(p.HDR_LK_OUT.pack(p.HDR_LK_OUT.size, 0, unique, lk.start, lk.end, lk.type, lk.pid))

    def _e_lseek(self, unique: int, offset: int) -> None:
        self._write(p.HDR_LSEEK_OUT.pack(p.HDR_LSEEK_OUT.size, 0, unique, offset))


def _sized(value: bytes, size: int) -> bytes:
    """The GETXATTR/LISTXATTR answer for a caller buffer of `size` bytes (0: it only asks the size)."""
    if size == 0:
        return p.GETXATTR_OUT.pack(len(value), 0)
    if len(value) > size:
        raise OSError(errno.ERANGE, "buffer too small")
    return value

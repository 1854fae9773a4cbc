"""The FUSE wire structs against linux/fuse.h, and the server's request handling against a fake kernel.

The fake kernel is one end of an AF_UNIX SEQPACKET socketpair (one message per read/write, like
/dev/fuse); the server is attached to the other end with `FuseServer.attach`. No mount is involved.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import socket
import stat
import struct
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog

from jfs.adapters.fuse import protocol as p
from jfs.adapters.fuse.mounting import MountOptions
from jfs.adapters.fuse.operations import (
    F_UNLCK,
    F_WRLCK,
    Attr,
    AttrOut,
    ConnectionInfo,
    DirentSink,
    EntryOut,
    FileLock,
    Operations,
    RequestContext,
    SetattrRequest,
)
from jfs.adapters.fuse.server import FuseServer

# ---------------------------------------------------------------------------------------------- structs


@pytest.mark.parametrize(
    ("struct_", "size"),
    [
        (p.IN_HEADER, 40), (p.OUT_HEADER, 16), (p.ATTR, 88), (p.ENTRY_OUT, 128), (p.ATTR_OUT, 104),
        (p.KSTATFS, 80), (p.FILE_LOCK, 24), (p.FORGET_IN, 8), (p.FORGET_ONE, 16), (p.BATCH_FORGET_IN, 8),
        (p.GETATTR_IN, 16), (p.MKNOD_IN, 16), (p.MKDIR_IN, 8), (p.RENAME_IN, 8), (p.RENAME2_IN, 16),
        (p.LINK_IN, 8), (p.SETATTR_IN, 88), (p.OPEN_IN, 8), (p.CREATE_IN, 16), (p.OPEN_OUT, 16),
        (p.RELEASE_IN, 24), (p.FLUSH_IN, 24), (p.READ_IN, 40), (p.WRITE_IN, 40), (p.WRITE_OUT, 8),
        (p.FSYNC_IN, 16), (p.SETXATTR_IN, 16), (p.SETXATTR_IN_COMPAT, 8), (p.GETXATTR_IN, 8),
        (p.GETXATTR_OUT, 8), (p.LK_IN, 48), (p.LK_OUT, 24), (p.ACCESS_IN, 8), (p.INIT_IN, 64),
        (p.INIT_OUT, 64), (p.INTERRUPT_IN, 8), (p.BMAP_IN, 16), (p.BMAP_OUT, 8), (p.IOCTL_IN, 32),
        (p.IOCTL_OUT, 16), (p.POLL_IN, 24), (p.POLL_OUT, 8), (p.FALLOCATE_IN, 32), (p.LSEEK_IN, 24),
        (p.LSEEK_OUT, 8), (p.COPY_FILE_RANGE_IN, 56), (p.DIRENT, 24), (p.DIRENTPLUS, 152),
        (p.NOTIFY_INVAL_INODE_OUT, 24), (p.NOTIFY_INVAL_ENTRY_OUT, 16), (p.NOTIFY_DELETE_OUT, 24),
    ],
)
def test_struct_sizes_match_the_kernel_header(struct_: struct.Struct, size: int) -> None:
    assert struct_.size == size


def test_combined_reply_structs_are_header_plus_body() -> None:
    assert p.HDR_ATTR_OUT.size == 16 + 104
    assert p.HDR_ENTRY_OUT.size == 16 + 128
    assert p.HDR_ENTRY_OPEN_OUT.size == 16 + 128 + 16
    assert p.HDR_INIT_OUT.size == 16 + 64
    assert p.WRITE_DATA_OFFSET == 80


def test_cstring_and_dirent_size() -> None:
    buf = bytearray(b"abc\0def\0")
    assert p.cstring(buf, 0, len(buf)) == (b"abc", 4)
    assert p.cstring(buf, 4, len(buf)) == (b"def", 8)
    with pytest.raises(ValueError):
        p.cstring(bytearray(b"no nul"), 0, 6)
    assert p.dirent_size(1) == 32 and p.dirent_size(8) == 32 and p.dirent_size(9) == 40
    assert p.dirent_size(1, plus=True) == 160


def test_time_splitting() -> None:
    assert p.split_ns(1_500_000_000) == (1, 500_000_000)
    assert p.split_ns(-1) == (-1, 999_999_999)
    assert p.split_timeout(1.25) == (1, 250_000_000)
    assert p.split_timeout(0) == (0, 0) and p.split_timeout(-3) == (0, 0)


def test_dirent_sink_packs_aligned_records_until_full() -> None:
    sink = DirentSink(64, plus=False)
    assert sink.add(b"a", 5, stat.S_IFREG | 0o644, 1)
    assert sink.add(b"sub", 6, stat.S_IFDIR | 0o755, 2)
    assert not sink.add(b"x", 7, stat.S_IFREG, 3)  # 32 + 32 + 32 > 64
    buf = bytes(sink.payload)
    assert len(buf) == 64 and sink.count == 2
    assert p.DIRENT.unpack_from(buf, 0) == (5, 1, 1, stat.S_IFREG >> 12)
    assert buf[24:25] == b"a" and buf[25:32] == bytes(7)
    assert p.DIRENT.unpack_from(buf, 32) == (6, 2, 3, stat.S_IFDIR >> 12)


def test_dirent_sink_plus_carries_entry_or_zero_nodeid() -> None:
    sink = DirentSink(4096, plus=True)
    attr = Attr(9, stat.S_IFREG | 0o600, size=3, mtime_ns=2_000_000_001)
    assert sink.add(b"f", 9, attr.mode, 10, EntryOut(9, attr, entry_timeout=2.5, attr_timeout=1))
    assert sink.add(b"g", 11, stat.S_IFREG, 11)
    buf = bytes(sink.payload)
    first = p.DIRENTPLUS.unpack_from(buf, 0)
    assert first[:6] == (9, 0, 2, 1, 500_000_000, 0)  # nodeid generation entry/attr valid (+nsec)
    assert first[6] == 9 and first[7] == 3 and first[10] == 2 and first[13] == 1  # ino size mtime mtimensec
    assert first[-4:] == (9, 10, 1, stat.S_IFREG >> 12)
    second = p.DIRENTPLUS.unpack_from(buf, 160)
    assert second[0] == 0 and second[-4:] == (11, 11, 1, stat.S_IFREG >> 12)


# ---------------------------------------------------------------------------------------------- fake kernel


class Ops(Operations):
    """A scripted file system: one regular file (ino 2) in the root, plus knobs for the tests."""

    def __init__(self) -> None:
        self.forgotten: list[tuple[int, int]] = []
        self.written: list[tuple[int, bytes]] = []
        self.kept: list[memoryview] = []
        self.keep_views = False
        self.setattrs: list[SetattrRequest] = []
        self.lock_released = asyncio.Event()
        self.lock_cancelled = asyncio.Event()
        self.slow_started = asyncio.Event()
        self.destroyed = False
        self.conn: ConnectionInfo | None = None
        self.ctx: RequestContext | None = None

    def attr(self, ino: int) -> Attr:
        mode = stat.S_IFDIR | 0o755 if ino == 1 else stat.S_IFREG | 0o644
        return Attr(ino, mode, size=100, atime_ns=1, mtime_ns=3_000_000_002, ctime_ns=-1)

    async def init(self, conn: ConnectionInfo) -> None:
        self.conn = conn

    async def destroy(self) -> None:
        self.destroyed = True

    async def lookup(self, ctx: RequestContext, parent: int, name: bytes) -> EntryOut:
        self.ctx = ctx
        if name == b"f":
            return EntryOut(2, self.attr(2), generation=7, entry_timeout=1.5, attr_timeout=0.25)
        if name == b"neg":
            return EntryOut.negative(30)
        if name == b"fields":  # an entry may be answered as its reply's field values
            return EntryOut(2, self.attr(2), generation=7, entry_timeout=1.5, attr_timeout=0.25).pack_fields()
        if name == b"bug":
            raise ZeroDivisionError("bug")
        raise FileNotFoundError(errno.ENOENT, "no")

    async def forget(self, items: Sequence[tuple[int, int]]) -> None:
        self.forgotten.extend(items)

    async def getattr(self, ctx: RequestContext, ino: int, fh: int | None) -> AttrOut:
        return AttrOut(self.attr(ino), 2.75)

    def getattr_now(self, ctx: RequestContext, ino: int) -> AttrOut | None:
        return AttrOut(self.attr(ino), 0.5) if ino == 9 else None

    async def setattr(self, ctx: RequestContext, ino: int, req: SetattrRequest) -> AttrOut:
        self.setattrs.append(req)
        return AttrOut(self.attr(ino), 1)

    async def mkdir(self, ctx: RequestContext, parent: int, name: bytes, mode: int) -> EntryOut:
        self.ctx = ctx
        return EntryOut(5, Attr(5, mode))

    async def read(self, ctx: RequestContext, ino: int, fh: int, offset: int, size: int) -> Any:
        if ino == 3:
            self.slow_started.set()
            await asyncio.sleep(30)
        if ino == 4:
            return [b"ab", memoryview(b"cd"), bytearray(b"ef")]
        return b"x" * min(size, 5)

    def read_now(self, ino: int, fh: int, offset: int, size: int) -> Any:
        if ino == 6:
            return memoryview(b"now!")[offset : offset + size]
        if ino == 7:
            return [b"in", memoryview(b" parts")]
        if ino == 8:
            raise OSError(errno.EBADF, "no such handle")
        return None

    async def write(self, ctx: RequestContext, ino: int, fh: int, offset: int, data: memoryview,
                    write_flags: int) -> int:
        if self.keep_views:
            self.kept.append(data)
        self.written.append((offset, bytes(data)))
        return len(data)

    async def getxattr(self, ctx: RequestContext, ino: int, name: bytes) -> bytes:
        return b"v" * 10

    async def listxattr(self, ctx: RequestContext, ino: int) -> Sequence[bytes]:
        return [b"user.a", b"user.bb"]

    async def readdir(self, ctx: RequestContext, ino: int, fh: int, offset: int, out: DirentSink) -> None:
        for i in range(offset, 100):
            if not out.add(b"n%d" % i, 100 + i, stat.S_IFREG, i + 1):
                return

    async def setlk(self, ctx: RequestContext, ino: int, fh: int, owner: int, lock: FileLock, sleep: bool) -> None:
        try:
            await self.lock_released.wait()
        except asyncio.CancelledError:
            self.lock_cancelled.set()
            raise

    async def getlk(self, ctx: RequestContext, ino: int, fh: int, owner: int, lock: FileLock) -> FileLock:
        return FileLock(0, p.OFFSET_MAX, F_WRLCK, 4242)

    async def flock(self, ctx: RequestContext, ino: int, fh: int, owner: int, type: int, sleep: bool) -> None:
        if type == F_WRLCK and not sleep:
            raise BlockingIOError(errno.EAGAIN, "busy")


class FakeKernel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.uniques = itertools.count(2, 2)

    async def send(self, opcode: int, nodeid: int = 1, body: bytes = b"", *, unique: int | None = None,
                   uid: int = 1000, gid: int = 100, pid: int = 77) -> int:
        u = next(self.uniques) if unique is None else unique
        msg = p.IN_HEADER.pack(p.IN_HEADER_SIZE + len(body), opcode, u, nodeid, uid, gid, pid, 0, 0) + body
        await asyncio.get_running_loop().sock_sendall(self.sock, msg)
        return u

    async def recv(self, timeout: float = 5) -> tuple[int, int, bytes]:
        """(unique, error, payload) of the next reply."""
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.sock, 1 << 21), timeout)
        length, error, unique = p.OUT_HEADER.unpack_from(data)
        assert length == len(data)
        return unique, error, data[p.OUT_HEADER_SIZE:]

    async def call(self, opcode: int, nodeid: int = 1, body: bytes = b"", **kw: Any) -> tuple[int, bytes]:
        u = await self.send(opcode, nodeid, body, **kw)
        unique, error, payload = await self.recv()
        assert unique == u
        return error, payload

    async def nothing(self, timeout: float = 0.2) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await self.recv(timeout)

    async def init(self, minor: int = 38, flags: int = 0xFFFF_FFFF, flags2: int = 0xFFFF_FFFF) -> tuple[int, ...]:
        body = p.INIT_IN.pack(7, minor, 1 << 17, flags, flags2)
        error, payload = await self.call(p.Opcode.INIT, 0, body)
        assert error == 0
        return p.INIT_OUT.unpack(payload.ljust(p.INIT_OUT.size, b"\0"))


Harness = tuple[FakeKernel, Ops, FuseServer]


@pytest.fixture(params=["eager-task", "task", "inline"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    ops = Ops()
    server = FuseServer(ops, "/nonexistent", MountOptions(dispatch=request.param, drain_timeout=1))
    server.attach(theirs.detach())
    serving = asyncio.create_task(server.serve())
    kernel = FakeKernel(ours)
    try:
        yield kernel, ops, server
    finally:
        ours.close()  # the device's EOF ends serve()
        await asyncio.wait_for(serving, 5)


async def _initialized(h: Harness) -> Harness:
    await h[0].init()
    return h


async def test_init_negotiates_what_both_sides_support(harness: Harness) -> None:
    kernel, ops, server = harness
    major, minor, readahead, flags, max_bg, congestion, max_write, time_gran, max_pages, _, flags2 = (
        await kernel.init())
    assert (major, minor) == (7, 38)
    assert readahead == 1 << 17  # never above what the kernel offered
    assert (max_bg, congestion, max_write, time_gran, max_pages) == (200, 150, 1 << 20, 1, 256)
    for flag in (p.FUSE_ASYNC_READ, p.FUSE_POSIX_LOCKS, p.FUSE_FLOCK_LOCKS, p.FUSE_ATOMIC_O_TRUNC,
                 p.FUSE_BIG_WRITES, p.FUSE_DO_READDIRPLUS, p.FUSE_READDIRPLUS_AUTO, p.FUSE_PARALLEL_DIROPS,
                 p.FUSE_MAX_PAGES, p.FUSE_SETXATTR_EXT, p.FUSE_AUTO_INVAL_DATA):
        assert flags & flag, hex(flag)
    for flag in (p.FUSE_WRITEBACK_CACHE, p.FUSE_EXPORT_SUPPORT, p.FUSE_DONT_MASK, p.FUSE_POSIX_ACL,
                 p.FUSE_HANDLE_KILLPRIV, p.FUSE_SPLICE_READ):
        assert not flags & flag, hex(flag)
    assert flags & p.FUSE_INIT_EXT and flags2 == 0  # nothing of bits 32+ is wanted
    assert server.ready.is_set()
    assert ops.conn is not None and ops.conn.proto_minor == 38 and not ops.conn.writeback_cache


async def test_init_with_an_older_kernel_uses_its_minor_and_flags(harness: Harness) -> None:
    kernel, ops, _ = harness
    offered = p.FUSE_ASYNC_READ | p.FUSE_POSIX_LOCKS | p.FUSE_BIG_WRITES
    body = p.INIT_IN_BASE.pack(7, 31, 1 << 16, offered)  # a 7.31 kernel sends the short struct
    error, payload = await kernel.call(p.Opcode.INIT, 0, body)
    assert error == 0 and len(payload) == p.INIT_OUT.size
    out = p.INIT_OUT.unpack(payload)
    assert out[:4] == (7, 31, 1 << 16, offered)
    assert out[10] == 0  # no flags2 without FUSE_INIT_EXT
    # 7.31 has no FUSE_SETXATTR_EXT: SETXATTR carries the 8-byte compat struct
    body = p.SETXATTR_IN_COMPAT.pack(3, 0) + b"user.k\0val"
    assert (await kernel.call(p.Opcode.SETXATTR, 2, body))[0] == -errno.ENOSYS


async def test_init_with_a_newer_major_asks_for_ours(harness: Harness) -> None:
    kernel, _, server = harness
    error, payload = await kernel.call(p.Opcode.INIT, 0, p.INIT_IN.pack(8, 0, 0, 0, 0))
    assert error == 0 and payload[:8] == struct.pack("=II", 7, 38)
    assert not server.ready.is_set()


async def test_lookup_getattr_and_context(harness: Harness) -> None:
    kernel, ops, _ = await _initialized(harness)
    error, payload = await kernel.call(p.Opcode.LOOKUP, 1, b"f\0", uid=5, gid=6, pid=7)
    assert error == 0
    out = p.ENTRY_OUT.unpack(payload)
    assert out[:6] == (2, 7, 1, 0, 500_000_000, 250_000_000)
    assert out[6:12] == (2, 100, 1, 0, 3, -1)  # ino size blocks atime mtime ctime
    assert out[12:15] == (1, 2, 999_999_999)  # nsecs
    assert out[15] == stat.S_IFREG | 0o644
    assert ops.ctx is not None and (ops.ctx.uid, ops.ctx.gid, ops.ctx.pid) == (5, 6, 7)
    error, payload = await kernel.call(p.Opcode.LOOKUP, 1, b"neg\0")
    assert error == 0 and p.ENTRY_OUT.unpack(payload)[:3] == (0, 0, 30)
    assert (await kernel.call(p.Opcode.LOOKUP, 1, b"nope\0"))[0] == -errno.ENOENT
    error, payload = await kernel.call(p.Opcode.GETATTR, 2, p.GETATTR_IN.pack(0, 0, 0))
    assert error == 0
    out = p.ATTR_OUT.unpack(payload)
    assert out[:2] == (2, 750_000_000) and out[3] == 2


async def test_entry_as_field_values_and_getattr_answered_at_once(harness: Harness) -> None:
    kernel, _, server = await _initialized(harness)
    _, want = await kernel.call(p.Opcode.LOOKUP, 1, b"f\0")
    assert await kernel.call(p.Opcode.LOOKUP, 1, b"fields\0") == (0, want)
    error, payload = await kernel.call(p.Opcode.GETATTR, 9, p.GETATTR_IN.pack(0, 0, 0))
    out = p.ATTR_OUT.unpack(payload)
    assert error == 0 and out[:2] == (0, 500_000_000) and out[3] == 9
    assert not server._inflight
    error, payload = await kernel.call(p.Opcode.GETATTR, 2, p.GETATTR_IN.pack(0, 0, 0))  # getattr()
    assert error == 0 and p.ATTR_OUT.unpack(payload)[:2] == (2, 750_000_000)


async def test_handler_bug_answers_eio_and_logs(harness: Harness) -> None:
    kernel, _, _ = await _initialized(harness)
    with structlog.testing.capture_logs() as logs:
        assert (await kernel.call(p.Opcode.LOOKUP, 1, b"bug\0"))[0] == -errno.EIO
    assert any(e["event"] == "fuse_handler_failed" and e["log_level"] == "error" for e in logs)
    assert (await kernel.call(p.Opcode.LOOKUP, 1, b"f\0"))[0] == 0  # still serving


async def test_unknown_and_unimplemented_opcodes_answer_enosys(harness: Harness) -> None:
    kernel, _, _ = await _initialized(harness)
    for opcode in (p.Opcode.BMAP, p.Opcode.IOCTL, p.Opcode.POLL, p.Opcode.SYNCFS, p.Opcode.TMPFILE, 60, 4095):
        assert (await kernel.call(opcode, 2, bytes(64)))[0] == -errno.ENOSYS
    # implemented by the server but not by this file system
    assert (await kernel.call(p.Opcode.READLINK, 2))[0] == -errno.ENOSYS
    assert (await kernel.call(p.Opcode.FLUSH, 2, p.FLUSH_IN.pack(1, 0, 0, 9)))[0] == -errno.ENOSYS
    # defaults that succeed
    error, payload = await kernel.call(p.Opcode.OPENDIR, 1, p.OPEN_IN.pack(0, 0))
    assert error == 0 and p.OPEN_OUT.unpack(payload) == (0, 0, 0)
    assert (await kernel.call(p.Opcode.RELEASEDIR, 1, p.RELEASE_IN.pack(0, 0, 0, 0)))[0] == 0
    error, payload = await kernel.call(p.Opcode.STATFS, 1)
    assert error == 0 and p.KSTATFS.unpack(payload)[5:8] == (4096, 255, 4096)


async def test_malformed_request_does_not_stop_the_server(harness: Harness) -> None:
    kernel, _, _ = await _initialized(harness)
    with structlog.testing.capture_logs():
        assert (await kernel.call(p.Opcode.LOOKUP, 1, b"no-nul"))[0] == -errno.EIO
    assert (await kernel.call(p.Opcode.LOOKUP, 1, b"f\0"))[0] == 0


async def test_mkdir_gets_type_bits_and_umask(harness: Harness) -> None:
    kernel, ops, _ = await _initialized(harness)
    error, payload = await kernel.call(p.Opcode.MKDIR, 1, p.MKDIR_IN.pack(0o755, 0o022) + b"d\0")
    assert error == 0 and p.ENTRY_OUT.unpack(payload)[15] == stat.S_IFDIR | 0o755
    assert ops.ctx is not None and ops.ctx.umask == 0o022


async def test_setattr_is_decoded(harness: Harness) -> None:
    kernel, ops, _ = await _initialized(harness)
    valid = (p.FATTR_MODE | p.FATTR_SIZE | p.FATTR_ATIME | p.FATTR_ATIME_NOW | p.FATTR_MTIME | p.FATTR_FH
             | p.FATTR_UID)
    body = p.SETATTR_IN.pack(valid, 0, 9, 4096, 0, 111, 5, 0, 222, 7, 0, stat.S_IFREG | 0o4755, 0, 1000, 2000, 0)
    assert (await kernel.call(p.Opcode.SETATTR, 2, body))[0] == 0
    (req,) = ops.setattrs
    assert (req.mode, req.size, req.fh, req.uid, req.gid) == (0o4755, 4096, 9, 1000, None)
    assert req.atime_now and req.atime_ns is None
    assert not req.mtime_now and req.mtime_ns == 5_000_000_007
    assert req.ctime_ns is None and req.lock_owner is None and not req.kill_suidgid


async def test_read_returns_buffers_back_to_back(harness: Harness) -> None:
    kernel, _, _ = await _initialized(harness)
    assert await kernel.call(p.Opcode.READ, 4, p.READ_IN.pack(1, 0, 4096, 0, 0, 0, 0)) == (0, b"abcdef")
    assert await kernel.call(p.Opcode.READ, 2, p.READ_IN.pack(1, 0, 3, 0, 0, 0, 0)) == (0, b"xxx")


async def test_a_read_answered_at_once_needs_no_handler(harness: Harness) -> None:
    kernel, _, server = await _initialized(harness)
    assert await kernel.call(p.Opcode.READ, 6, p.READ_IN.pack(1, 1, 2, 0, 0, 0, 0)) == (0, b"ow")
    assert await kernel.call(p.Opcode.READ, 7, p.READ_IN.pack(1, 0, 100, 0, 0, 0, 0)) == (0, b"in parts")
    assert await kernel.call(p.Opcode.READ, 8, p.READ_IN.pack(1, 0, 100, 0, 0, 0, 0)) == (-errno.EBADF, b"")
    assert not server._inflight
    assert await kernel.call(p.Opcode.READ, 2, p.READ_IN.pack(1, 0, 3, 0, 0, 0, 0)) == (0, b"xxx")  # read()


async def test_write_payload_is_a_view_and_kept_views_are_not_overwritten(harness: Harness) -> None:
    kernel, ops, _ = await _initialized(harness)
    error, payload = await kernel.call(p.Opcode.WRITE, 2, p.WRITE_IN.pack(1, 10, 5, 0, 0, 0, 0) + b"hello")
    assert error == 0 and p.WRITE_OUT.unpack(payload) == (5, 0)
    assert ops.written == [(10, b"hello")]
    ops.keep_views = True
    with structlog.testing.capture_logs() as logs:
        for i in range(6):
            body = bytes([65 + i]) * 1000
            error, _ = await kernel.call(p.Opcode.WRITE, 2, p.WRITE_IN.pack(1, 0, 1000, 0, 0, 0, 0) + body)
            assert error == 0
            await kernel.call(p.Opcode.LOOKUP, 1, b"f\0")  # reuses the read buffer
    assert [bytes(v) for v in ops.kept] == [bytes([65 + i]) * 1000 for i in range(6)]
    assert [e["event"] for e in logs].count("fuse_write_buffer_kept") == 1


async def test_xattr_size_probing(harness: Harness) -> None:
    kernel, _, _ = await _initialized(harness)
    body = p.GETXATTR_IN.pack(0, 0) + b"user.x\0"
    error, payload = await kernel.call(p.Opcode.GETXATTR, 2, body)
    assert error == 0 and p.GETXATTR_OUT.unpack(payload) == (10, 0)
    assert (await kernel.call(p.Opcode.GETXATTR, 2, p.GETXATTR_IN.pack(4, 0) + b"user.x\0"))[0] == -errno.ERANGE
    assert await kernel.call(p.Opcode.GETXATTR, 2, p.GETXATTR_IN.pack(64, 0) + b"user.x\0") == (0, b"v" * 10)
    names = b"user.a\0user.bb\0"
    error, payload = await kernel.call(p.Opcode.LISTXATTR, 2, p.GETXATTR_IN.pack(0, 0))
    assert error == 0 and p.GETXATTR_OUT.unpack(payload)[0] == len(names)
    assert (await kernel.call(p.Opcode.LISTXATTR, 2, p.GETXATTR_IN.pack(3, 0)))[0] == -errno.ERANGE
    assert await kernel.call(p.Opcode.LISTXATTR, 2, p.GETXATTR_IN.pack(100, 0)) == (0, names)


async def test_readdir_pages_by_offset_within_the_requested_size(harness: Harness) -> None:
    kernel, _, _ = await _initialized(harness)
    offset = 0
    names: list[bytes] = []
    while True:
        error, payload = await kernel.call(p.Opcode.READDIR, 1, p.READ_IN.pack(0, offset, 200, 0, 0, 0, 0))
        assert error == 0 and len(payload) <= 200
        if not payload:
            break
        pos = 0
        while pos < len(payload):
            ino, off, namelen, _ = p.DIRENT.unpack_from(payload, pos)
            names.append(payload[pos + 24:pos + 24 + namelen])
            offset = off
            pos += p.dirent_size(namelen)
    assert names == [b"n%d" % i for i in range(100)]
    error, payload = await kernel.call(p.Opcode.READDIRPLUS, 1, p.READ_IN.pack(0, 98, 4096, 0, 0, 0, 0))
    assert error == 0 and len(payload) == 2 * p.dirent_size(3, plus=True)


async def test_interrupt_cancels_a_blocked_lock_wait_with_eintr(harness: Harness) -> None:
    kernel, ops, _ = await _initialized(harness)
    body = p.LK_IN.pack(1, 99, 0, p.OFFSET_MAX, F_WRLCK, 77, 0, 0)
    waiting = await kernel.send(p.Opcode.SETLKW, 2, body)
    await kernel.nothing()
    await kernel.send(p.Opcode.INTERRUPT, 0, p.INTERRUPT_IN.pack(waiting), unique=waiting | 1)
    unique, error, _ = await kernel.recv()
    assert (unique, error) == (waiting, -errno.EINTR)
    assert ops.lock_cancelled.is_set()
    # an interrupt for a request that is not interruptible, or already answered, is ignored
    slow_write = await kernel.send(p.Opcode.SETLKW, 2, body)
    await kernel.send(p.Opcode.INTERRUPT, 0, p.INTERRUPT_IN.pack(12345), unique=12345 | 1)
    ops.lock_released.set()
    unique, error, _ = await kernel.recv()
    assert (unique, error) == (slow_write, 0)
    await kernel.nothing()


async def test_interrupt_cancels_a_slow_read_but_not_other_requests(harness: Harness) -> None:
    kernel, ops, _ = await _initialized(harness)
    slow = await kernel.send(p.Opcode.READ, 3, p.READ_IN.pack(1, 0, 10, 0, 0, 0, 0))
    await asyncio.wait_for(ops.slow_started.wait(), 5)
    assert (await kernel.call(p.Opcode.GETATTR, 2, p.GETATTR_IN.pack(0, 0, 0)))[0] == 0  # not blocked
    await kernel.send(p.Opcode.INTERRUPT, 0, p.INTERRUPT_IN.pack(slow), unique=slow | 1)
    unique, error, _ = await kernel.recv()
    assert (unique, error) == (slow, -errno.EINTR)


async def test_locks_and_flock(harness: Harness) -> None:
    kernel, _, _ = await _initialized(harness)
    error, payload = await kernel.call(p.Opcode.GETLK, 2, p.LK_IN.pack(1, 5, 0, 10, F_WRLCK, 1, 0, 0))
    assert error == 0 and p.LK_OUT.unpack(payload) == (0, p.OFFSET_MAX, F_WRLCK, 4242)
    body = p.LK_IN.pack(1, 5, 0, p.OFFSET_MAX, F_WRLCK, 1, p.FUSE_LK_FLOCK, 0)
    assert (await kernel.call(p.Opcode.SETLK, 2, body))[0] == -errno.EAGAIN
    body = p.LK_IN.pack(1, 5, 0, p.OFFSET_MAX, F_UNLCK, 1, p.FUSE_LK_FLOCK, 0)
    assert (await kernel.call(p.Opcode.SETLK, 2, body))[0] == 0


async def test_forgets_get_no_reply(harness: Harness) -> None:
    kernel, ops, _ = await _initialized(harness)
    await kernel.send(p.Opcode.FORGET, 7, p.FORGET_IN.pack(3))
    batch = p.BATCH_FORGET_IN.pack(2, 0) + p.FORGET_ONE.pack(8, 1) + p.FORGET_ONE.pack(9, 2)
    await kernel.send(p.Opcode.BATCH_FORGET, 0, batch)
    await kernel.nothing()
    assert ops.forgotten == [(7, 3), (8, 1), (9, 2)]


def test_forgets_start_no_handler_when_forget_is_the_base_no_op() -> None:
    """A dropped dentry cache sends a FORGET per cached inode: with `Operations.forget` not overridden
    (the jfs mount) its decoders return nothing to run; an overriding `forget` still gets every item."""
    from jfs.adapters.fuse.dispatch import OpcodeTable

    class Forgetful(Ops):
        forget = Operations.forget

    ctx = RequestContext(0, 0, 1)
    single = bytearray(p.IN_HEADER_SIZE) + p.FORGET_IN.pack(3)
    batch = bytearray(p.IN_HEADER_SIZE) + p.BATCH_FORGET_IN.pack(1, 0) + p.FORGET_ONE.pack(8, 1)
    quiet = OpcodeTable(Forgetful(), lambda data: None, lambda parts: None).decoders()
    assert quiet[p.Opcode.FORGET](7, ctx, single, len(single)) is None
    assert quiet[p.Opcode.BATCH_FORGET](0, ctx, batch, len(batch)) is None
    ops = Ops()
    kept = OpcodeTable(ops, lambda data: None, lambda parts: None).decoders()
    work = kept[p.Opcode.BATCH_FORGET](0, ctx, batch, len(batch))
    assert work is not None and work[1] is None
    asyncio.run(work[0])  # type: ignore[arg-type]
    assert ops.forgotten == [(8, 1)]


async def test_notifications_are_unsolicited_messages(harness: Harness) -> None:
    kernel, _, server = await _initialized(harness)
    server.notifier.notify_inval_inode(2)
    unique, code, body = await kernel.recv()
    assert (unique, code) == (0, p.NotifyCode.INVAL_INODE)
    assert p.NOTIFY_INVAL_INODE_OUT.unpack(body) == (2, -1, 0)
    server.notifier.notify_inval_entry(1, b"name")
    unique, code, body = await kernel.recv()
    assert (unique, code) == (0, p.NotifyCode.INVAL_ENTRY)
    assert p.NOTIFY_INVAL_ENTRY_OUT.unpack_from(body) == (1, 4, 0) and body[16:] == b"name\0"
    server.notifier.notify_delete(1, 2, b"gone")
    unique, code, body = await kernel.recv()
    assert (unique, code) == (0, p.NotifyCode.DELETE)
    assert p.NOTIFY_DELETE_OUT.unpack_from(body) == (1, 2, 4, 0) and body[24:] == b"gone\0"
    server.notifier.notify_inval_inode(2, 4096, 100)  # with a data range: through the writer thread
    unique, code, body = await kernel.recv()
    assert p.NOTIFY_INVAL_INODE_OUT.unpack(body) == (2, 4096, 100)
    assert await server.notifier.notifications_done(5)


async def test_destroy_ends_serving_and_calls_destroy() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    ops = Ops()
    server = FuseServer(ops, "/nonexistent")
    server.attach(theirs.detach())
    serving = asyncio.create_task(server.serve())
    kernel = FakeKernel(ours)
    try:
        await kernel.init()
        assert (await kernel.call(p.Opcode.DESTROY, 0))[0] == 0
        await asyncio.wait_for(serving, 5)
        assert ops.destroyed and server.fd == -1
    finally:
        ours.close()
        if not serving.done():
            serving.cancel()


def test_readdirplus_fast_entry_fields_equal_the_entry_objects() -> None:
    """`_entry_fields` (used for every entry of a listing) packs exactly what `_entry(...).pack_fields()`
    does, for each file type, with distinct timeouts."""
    from types import SimpleNamespace

    from jfs.adapters.fuse.vfs_operations import VfsOperations
    from jfs.app.virtual_files import CONTROL_INODE
    from jfs.domain.attrs import Attr as JAttr
    from jfs.domain.attrs import FileType

    ops = VfsOperations.__new__(VfsOperations)
    ops.config = SimpleNamespace(dir_entry_timeout=2.5, entry_timeout=1.0, attr_timeout=0.25)  # type: ignore[assignment]
    cases = [
        (7, JAttr(FileType.REGULAR, 0o644, 1, 2, 1_500_000_001, 2, 3, 1, 100, 0, 1)),
        (8, JAttr(FileType.DIRECTORY, 0o2755, 0, 0, 5, 6, -7, 2, 0, 0, 1)),
        (9, JAttr(FileType.SYMLINK, 0o777, 3, 4, 5, 6, 7, 1, 12, 0, 1)),
        (10, JAttr(FileType.CHARDEV, 0o600, 0, 0, 0, 0, 0, 1, 0, 0x0501, 1)),
        (CONTROL_INODE, JAttr(FileType.REGULAR, 0o666, 0, 0, 5, 6, 7, 1, 0, 0, 1)),
    ]
    for ino, a in cases:
        assert ops._entry_fields(ino, a) == ops._entry(ino, a).pack_fields()


def test_write_buffers_kept_by_the_handler_are_taken_back_once_let_go(tmp_path: Path) -> None:
    """A WRITE buffer whose data the handler keeps is lent, not lost: once its views are gone the next
    request reuses it instead of allocating (and zeroing) a new one."""
    from jfs.adapters.fuse.operations import Operations
    from jfs.adapters.fuse.server import FuseServer

    class Keeping(Operations):
        keeps_write_data = True

    Keeping.__abstractmethods__ = frozenset()  # never called here
    server = FuseServer(Keeping(), tmp_path)
    buf = server._new_buffer()
    kept = memoryview(buf)[100:200]
    server._recycle(buf)
    assert server._take_buffer() is not buf  # still viewed: a fresh one
    kept.release()
    assert server._take_buffer() is buf
    assert server._take_buffer() is not buf


class Placing(Ops):
    """Offers a region of its own buffer for the next WRITE of ino 2 at the offset it expects."""

    def __init__(self) -> None:
        super().__init__()
        self.arena = bytearray(9 * (64 << 10) - 4096)
        self.expect: int | None = None
        self.placed: list[tuple[int, int]] = []
        self.asked: list[tuple[int, int, int]] = []

    def write_target(self, ino: int, fh: int, offset: int) -> memoryview | None:
        self.asked.append((ino, fh, offset))
        if ino != 2 or offset >= len(self.arena):
            return None
        self.expect = offset
        return memoryview(self.arena)[offset:]

    async def write(self, ctx: RequestContext, ino: int, fh: int, offset: int, data: memoryview,
                    write_flags: int) -> int:
        if data.obj is self.arena:
            self.placed.append((offset, len(data)))
            assert offset == self.expect
        return await super().write(ctx, ino, fh, offset, data, write_flags)


@pytest.mark.parametrize("mode", ["eager-task", "task", "inline"])
async def test_a_sequential_writers_next_payload_is_read_into_the_offered_buffer(
        mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import jfs.adapters.fuse.server as server_module

    monkeypatch.setattr(server_module, "PLACE_MIN", 32 << 10)  # a socket message is smaller than a WRITE
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    ops = Placing()
    server = FuseServer(ops, "/nonexistent", MountOptions(dispatch=mode, drain_timeout=1))
    server.attach(theirs.detach())
    serving = asyncio.create_task(server.serve())
    kernel = FakeKernel(ours)
    big = 64 << 10

    def body(off: int, n: int, fill: int, fh: int = 1) -> bytes:
        return p.WRITE_IN.pack(fh, off, n, 0, 0, 0, 0) + bytes([fill]) * n

    try:
        await kernel.init()
        assert await kernel.call(p.Opcode.WRITE, 2, body(0, big, 1)) == (0, p.WRITE_OUT.pack(big, 0))
        assert await kernel.call(p.Opcode.WRITE, 2, body(big, big, 2)) == (0, p.WRITE_OUT.pack(big, 0))
        assert ops.placed == []  # a run of two large WRITEs in request buffers first
        assert await kernel.call(p.Opcode.WRITE, 2, body(2 * big, big, 3)) == (0, p.WRITE_OUT.pack(big, 0))
        assert ops.placed == [(2 * big, big)] and ops.arena[2 * big : 3 * big] == b"\3" * big
        # Something else while an offer stands: copied back out of the offered buffer, answered as usual.
        assert (await kernel.call(p.Opcode.LOOKUP, 1, b"f\0"))[0] == 0
        assert await kernel.call(p.Opcode.WRITE, 2, body(3 * big, big, 4)) == (0, p.WRITE_OUT.pack(big, 0))
        assert ops.placed == [(2 * big, big), (3 * big, big)]  # the LOOKUP in between does not matter
        # Another file while an offer stands: copied out; the run is broken until two WRITEs make one again.
        assert (await kernel.call(p.Opcode.WRITE, 3, body(0, big, 5)))[0] == 0
        assert (await kernel.call(p.Opcode.WRITE, 2, body(4 * big, big, 6)))[0] == 0
        assert (await kernel.call(p.Opcode.WRITE, 2, body(5 * big, big, 7)))[0] == 0
        assert ops.placed[-1] == (3 * big, big)
        assert (await kernel.call(p.Opcode.WRITE, 2, body(6 * big, big, 8)))[0] == 0
        assert ops.placed[-1] == (6 * big, big)
        # A payload longer than the offer (big - 4 KiB at 8 * big): copied out, answered as usual.
        assert (await kernel.call(p.Opcode.WRITE, 2, body(7 * big, big, 9)))[0] == 0
        assert (await kernel.call(p.Opcode.WRITE, 2, body(8 * big, big - 1, 10)))[0] == 0
        assert [o for o, _ in ops.placed] == [2 * big, 3 * big, 6 * big, 7 * big]
        # A short message (FORGET: header + 8 bytes) while an offer stands.
        for i in range(3):
            assert (await kernel.call(p.Opcode.WRITE, 2, body(i * big, big, 11 + i)))[0] == 0
        await kernel.send(p.Opcode.FORGET, 5, struct.pack("=Q", 3))
        await kernel.nothing()
        assert ops.forgotten[-1] == (5, 3)
        assert (await kernel.call(p.Opcode.WRITE, 2, body(3 * big, big, 14)))[0] == 0
        assert ops.placed[-1] == (3 * big, big)
        fills = [(0, 1), (1, 2), (2, 3), (3, 4), (-1, 5), (4, 6), (5, 7), (6, 8), (7, 9), (8, 10),
                 (0, 11), (1, 12), (2, 13), (3, 14)]
        assert ops.written == [(max(0, i) * big, bytes([f]) * (big - 1 if f == 10 else big)) for i, f in fills]
    finally:
        ours.close()
        await asyncio.wait_for(serving, 5)


@pytest.mark.parametrize("ino", [2, 3])  # answered in its first step / waiting in it
async def test_an_interrupt_read_in_the_same_batch_as_its_request_still_gets_it_answered(
        harness: Harness, ino: int) -> None:
    # A signal that reaches the caller before the daemon reads its request makes the kernel queue the
    # INTERRUPT as soon as the request is read, ahead of everything else: the server reads both in one
    # wake-up, before the request's handler task has taken its first step. Cancelling that task then
    # would throw into a coroutine that never started (no reply, ever: the caller hung in read(2)).
    kernel, _, server = await _initialized(harness)
    read = next(kernel.uniques)
    kernel.sock.send(p.IN_HEADER.pack(p.IN_HEADER_SIZE + p.READ_IN.size, p.Opcode.READ, read, ino, 0, 0, 7, 0, 0)
                     + p.READ_IN.pack(1, 0, 10, 0, 0, 0, 0))
    kernel.sock.send(p.IN_HEADER.pack(p.IN_HEADER_SIZE + 8, p.Opcode.INTERRUPT, read | 1, 0, 0, 0, 0, 0, 0)
                     + p.INTERRUPT_IN.pack(read))
    unique, error, payload = await kernel.recv()
    assert unique == read
    assert (error, payload) in ((0, b"xxxxx"), (-errno.EINTR, b""))
    assert ino == 2 or error == -errno.EINTR
    assert not server._inflight
    await kernel.nothing()


class ClosesNow(Ops):
    """FLUSH / RELEASE answered synchronously for handle 1 only; the asynchronous calls are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def flush_now(self, ctx: RequestContext, ino: int, fh: int, lock_owner: int) -> bool:
        return fh == 1

    def release_now(self, ctx: RequestContext, ino: int, fh: int, flags: int, flock_owner: int | None) -> bool:
        return fh == 1

    async def flush(self, ctx: RequestContext, ino: int, fh: int, lock_owner: int) -> None:
        self.calls.append(f"flush {fh}")

    async def release(self, ctx: RequestContext, ino: int, fh: int, flags: int, flock_owner: int | None) -> None:
        self.calls.append(f"release {fh}")


@pytest.mark.parametrize("dispatch", ["eager-task", "inline"])
async def test_flush_and_release_answered_at_once_when_the_fs_says_so(dispatch: str) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    ops = ClosesNow()
    server = FuseServer(ops, "/nonexistent", MountOptions(dispatch=dispatch, drain_timeout=1))
    server.attach(theirs.detach())
    serving = asyncio.create_task(server.serve())
    kernel = FakeKernel(ours)
    try:
        await kernel.init()
        for fh in (1, 2):
            assert (await kernel.call(p.Opcode.FLUSH, 2, p.FLUSH_IN.pack(fh, 0, 0, 9)))[0] == 0
            assert (await kernel.call(p.Opcode.RELEASE, 2, p.RELEASE_IN.pack(fh, 0, 0, 0)))[0] == 0
        assert ops.calls == ["flush 2", "release 2"]  # handle 1 needed no handler
    finally:
        ours.close()
        await asyncio.wait_for(serving, 5)

"""An in-memory file system on the FUSE `Operations` interface, used only to test and benchmark the server.

It implements every operation of the interface: files (sparse, in 64 KiB blocks), directories with
stable readdir offsets, symlinks, hard links, device nodes, xattrs, rename flags (NOREPLACE,
EXCHANGE), fallocate (allocate, keep size, punch hole, zero range), copy_file_range, SEEK_DATA /
SEEK_HOLE, POSIX record locks and flock locks with blocking waits, and lookup counts (a node lives
until it has no name, no open handle and no kernel reference).

What it does not do: permission checks (mounted with default_permissions, the kernel does them),
atime updates on read, quotas, persistence.

Test hooks (xattr names in the ``user.memfs.`` namespace are never stored):

* ``user.memfs.read_delay`` set on a file to an ASCII float: every READ of it sleeps that many seconds.
* ``getxattr(…, "user.memfs.crash")`` raises a RuntimeError inside the handler (a simulated bug).
* ``user.memfs.remote_unlink`` set on a directory to a name: removes that entry as another client
  would, then tells the kernel with notify_delete + notify_inval_inode.
* ``user.memfs.remote_create`` set on a directory to a name: creates an empty file there behind the
  kernel's back, then notify_inval_entry.
* ``user.memfs.remote_chmod`` set on a node to an octal mode: chmod behind the kernel's back, then
  notify_inval_inode.

Run ``python -m jfs.testing.memfs MOUNTPOINT`` to mount it in the foreground; it prints
``READY`` on stdout once the kernel's INIT is answered and unmounts on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import errno
import os
import signal
import stat
import sys
import time
from collections.abc import Sequence

import structlog
from sortedcontainers import SortedDict

from jfs.adapters.fuse.mounting import MountOptions
from jfs.adapters.fuse.operations import (
    F_RDLCK,
    F_UNLCK,
    F_WRLCK,
    ROOT_ID,
    Attr,
    AttrOut,
    ConnectionInfo,
    DirentSink,
    EntryOut,
    FileLock,
    Notifier,
    OpenOut,
    Operations,
    ReadResult,
    RequestContext,
    SetattrRequest,
    StatFs,
)
from jfs.adapters.fuse.protocol import OFFSET_MAX
from jfs.adapters.fuse.server import FuseServer

BLOCK = 64 * 1024
_ZERO = memoryview(bytes(BLOCK))
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
FALLOC_FL_ZERO_RANGE = 16
SEEK_DATA = 3
SEEK_HOLE = 4
XATTR_CREATE = 1
XATTR_REPLACE = 2
HOOK_PREFIX = b"user.memfs."


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _now() -> int:
    return time.time_ns()


class Node:
    """One inode. Directories use `children`; regular files `blocks`/`size`; symlinks `target`."""

    def __init__(self, ino: int, mode: int, uid: int, gid: int, rdev: int = 0) -> None:
        now = _now()
        self.ino = ino
        self.mode = mode
        self.nlink = 2 if stat.S_ISDIR(mode) else 1
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.atime_ns = self.mtime_ns = self.ctime_ns = now
        self.size = 0
        self.blocks: dict[int, bytearray] = {}
        self.target = b""
        self.xattrs: dict[bytes, bytes] = {}
        self.lookups = 0
        self.opens = 0
        self.parent = 0
        # directories: name -> ino, and stable readdir cookies (3, 4, ...; 1 and 2 are . and ..)
        self.children: dict[bytes, int] = {}
        self.cookies: SortedDict[int, bytes] = SortedDict()
        self.cookie_of: dict[bytes, int] = {}
        self.next_cookie = 3
        # locks: POSIX ranges (owner, type, start, end, pid) and flock owners
        self.plocks: list[tuple[int, int, int, int, int]] = []
        self.flocks: dict[int, int] = {}
        self.lock_waiters: list[asyncio.Future[None]] = []
        self.read_delay = 0.0

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    def add_child(self, name: bytes, ino: int) -> None:
        self.children[name] = ino
        cookie = self.next_cookie
        self.next_cookie += 1
        self.cookies[cookie] = name
        self.cookie_of[name] = cookie

    def remove_child(self, name: bytes) -> int:
        ino = self.children.pop(name)
        del self.cookies[self.cookie_of.pop(name)]
        return ino

    def touch(self, *, m: bool = True) -> None:
        now = _now()
        self.ctime_ns = now
        if m:
            self.mtime_ns = now

    def wake_lock_waiters(self) -> None:
        waiters, self.lock_waiters = self.lock_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_lock_change(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lock_waiters.append(fut)
        try:
            await fut
        finally:
            if fut in self.lock_waiters:
                self.lock_waiters.remove(fut)

    # --- data

    def read(self, offset: int, size: int) -> list[memoryview]:
        end = min(offset + size, self.size)
        parts: list[memoryview] = []
        pos = offset
        while pos < end:
            idx, off = divmod(pos, BLOCK)
            n = min(BLOCK - off, end - pos)
            block = self.blocks.get(idx)
            parts.append(memoryview(block)[off:off + n] if block is not None else _ZERO[:n])
            pos += n
        return parts

    def write(self, offset: int, data: memoryview | bytes) -> None:
        end = offset + len(data)
        pos = offset
        src = 0
        while pos < end:
            idx, off = divmod(pos, BLOCK)
            n = min(BLOCK - off, end - pos)
            if n == BLOCK:
                self.blocks[idx] = bytearray(data[src:src + n])  # one copy, no zero-fill first
            else:
                block = self.blocks.get(idx)
                if block is None:
                    block = self.blocks[idx] = bytearray(BLOCK)
                block[off:off + n] = data[src:src + n]
            pos += n
            src += n
        if end > self.size:
            self.size = end

    def zero(self, start: int, end: int) -> None:
        """Make [start, end) a hole: drop whole blocks, zero the partial ones."""
        pos = start
        while pos < end:
            idx, off = divmod(pos, BLOCK)
            n = min(BLOCK - off, end - pos)
            block = self.blocks.get(idx)
            if block is not None:
                if n == BLOCK:
                    del self.blocks[idx]
                else:
                    block[off:off + n] = bytes(n)
            pos += n

    def truncate(self, size: int) -> None:
        if size < self.size:
            self.zero(size, (self.size + BLOCK - 1) // BLOCK * BLOCK)
        self.size = size

    def allocate(self, start: int, end: int) -> None:
        for idx in range(start // BLOCK, (end + BLOCK - 1) // BLOCK):
            self.blocks.setdefault(idx, bytearray(BLOCK))

    def seek(self, offset: int, whence: int) -> int:
        if offset >= self.size:
            raise _err(errno.ENXIO)
        idx = offset // BLOCK
        last = (self.size - 1) // BLOCK
        if whence == SEEK_DATA:
            while idx <= last and idx not in self.blocks:
                idx += 1
            if idx > last:
                raise _err(errno.ENXIO)
            return max(offset, idx * BLOCK)
        while idx <= last and idx in self.blocks:
            idx += 1
        return min(max(offset, idx * BLOCK), self.size)


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start <= b_end and b_start <= a_end


class MemFS(Operations):
    """The in-memory file system. Timeouts are what the replies tell the kernel to cache."""

    def __init__(self, *, attr_timeout: float = 1.0, entry_timeout: float = 1.0,
                 negative_timeout: float = 0.0) -> None:
        self.attr_timeout = attr_timeout
        self.entry_timeout = entry_timeout
        self.negative_timeout = negative_timeout
        root = Node(ROOT_ID, stat.S_IFDIR | 0o755, os.getuid(), os.getgid())
        root.parent = ROOT_ID
        root.lookups = 1  # the kernel's reference to the root is never forgotten
        self.nodes: dict[int, Node] = {ROOT_ID: root}
        self._next_ino = ROOT_ID + 1
        self._next_fh = 1
        self.handles: dict[int, int] = {}  # fh -> ino
        self.notifier: Notifier | None = None
        self.log = structlog.get_logger("jfs.fuse.memfs")

    # ------------------------------------------------------------------ helpers

    def node(self, ino: int) -> Node:
        try:
            return self.nodes[ino]
        except KeyError:
            raise _err(errno.ENOENT) from None

    def dir(self, ino: int) -> Node:
        node = self.node(ino)
        if not node.is_dir:
            raise _err(errno.ENOTDIR)
        return node

    def attr(self, node: Node) -> Attr:
        return Attr(node.ino, node.mode, nlink=node.nlink, uid=node.uid, gid=node.gid, rdev=node.rdev,
                    size=node.size, blocks=len(node.blocks) * (BLOCK // 512), blksize=BLOCK,
                    atime_ns=node.atime_ns, mtime_ns=node.mtime_ns, ctime_ns=node.ctime_ns)

    def entry(self, node: Node, *, count: bool = True) -> EntryOut:
        """The EntryOut for `node`; `count` records the kernel reference the reply creates."""
        if count:
            node.lookups += 1
        return EntryOut(node.ino, self.attr(node), entry_timeout=self.entry_timeout,
                        attr_timeout=self.attr_timeout)

    def attr_out(self, node: Node) -> AttrOut:
        return AttrOut(self.attr(node), self.attr_timeout)

    def maybe_free(self, node: Node) -> None:
        if node.nlink == 0 and node.lookups <= 0 and node.opens <= 0 and node.ino != ROOT_ID:
            self.nodes.pop(node.ino, None)

    def new_node(self, ctx: RequestContext, parent: Node, name: bytes, mode: int, rdev: int = 0) -> Node:
        if name in parent.children:
            raise _err(errno.EEXIST)
        if len(name) > 255:
            raise _err(errno.ENAMETOOLONG)
        ino = self._next_ino
        self._next_ino += 1
        gid = parent.gid if parent.mode & stat.S_ISGID else ctx.gid
        node = Node(ino, mode, ctx.uid, gid, rdev)
        if node.is_dir and parent.mode & stat.S_ISGID:
            node.mode |= stat.S_ISGID
        node.parent = parent.ino
        self.nodes[ino] = node
        parent.add_child(name, ino)
        if node.is_dir:
            parent.nlink += 1
        parent.touch()
        return node

    def new_handle(self, ino: int) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self.handles[fh] = ino
        return fh

    # ------------------------------------------------------------------ life cycle

    async def init(self, conn: ConnectionInfo) -> None:
        self.notifier = conn.notifier

    async def forget(self, items: Sequence[tuple[int, int]]) -> None:
        for ino, nlookup in items:
            node = self.nodes.get(ino)
            if node is not None:
                node.lookups -= nlookup
                self.maybe_free(node)

    # ------------------------------------------------------------------ names and attributes

    async def lookup(self, ctx: RequestContext, parent: int, name: bytes) -> EntryOut:
        d = self.dir(parent)
        if name == b".":
            return self.entry(d)
        if name == b"..":
            return self.entry(self.node(d.parent))
        ino = d.children.get(name)
        if ino is None:
            if self.negative_timeout > 0:
                return EntryOut.negative(self.negative_timeout)
            raise _err(errno.ENOENT)
        return self.entry(self.nodes[ino])

    async def getattr(self, ctx: RequestContext, ino: int, fh: int | None) -> AttrOut:
        return self.attr_out(self.node(ino))

    async def setattr(self, ctx: RequestContext, ino: int, req: SetattrRequest) -> AttrOut:
        node = self.node(ino)
        now = _now()
        if req.size is not None:
            if node.is_dir:
                raise _err(errno.EISDIR)
            node.truncate(req.size)
            node.mtime_ns = now
        if req.mode is not None:
            node.mode = stat.S_IFMT(node.mode) | req.mode
        if req.uid is not None:
            node.uid = req.uid
        if req.gid is not None:
            node.gid = req.gid
        if req.atime_now:
            node.atime_ns = now
        elif req.atime_ns is not None:
            node.atime_ns = req.atime_ns
        if req.mtime_now:
            node.mtime_ns = now
        elif req.mtime_ns is not None:
            node.mtime_ns = req.mtime_ns
        node.ctime_ns = req.ctime_ns if req.ctime_ns is not None else now
        return self.attr_out(node)

    async def readlink(self, ctx: RequestContext, ino: int) -> bytes:
        node = self.node(ino)
        if not stat.S_ISLNK(node.mode):
            raise _err(errno.EINVAL)
        return node.target

    async def mknod(self, ctx: RequestContext, parent: int, name: bytes, mode: int, rdev: int) -> EntryOut:
        return self.entry(self.new_node(ctx, self.dir(parent), name, mode, rdev))

    async def mkdir(self, ctx: RequestContext, parent: int, name: bytes, mode: int) -> EntryOut:
        return self.entry(self.new_node(ctx, self.dir(parent), name, mode))

    async def symlink(self, ctx: RequestContext, parent: int, name: bytes, target: bytes) -> EntryOut:
        node = self.new_node(ctx, self.dir(parent), name, stat.S_IFLNK | 0o777)
        node.target = target
        node.size = len(target)
        return self.entry(node)

    async def unlink(self, ctx: RequestContext, parent: int, name: bytes) -> None:
        d = self.dir(parent)
        ino = d.children.get(name)
        if ino is None:
            raise _err(errno.ENOENT)
        node = self.nodes[ino]
        if node.is_dir:
            raise _err(errno.EISDIR)
        d.remove_child(name)
        d.touch()
        node.nlink -= 1
        node.touch(m=False)
        self.maybe_free(node)

    async def rmdir(self, ctx: RequestContext, parent: int, name: bytes) -> None:
        d = self.dir(parent)
        ino = d.children.get(name)
        if ino is None:
            raise _err(errno.ENOENT)
        node = self.nodes[ino]
        if not node.is_dir:
            raise _err(errno.ENOTDIR)
        if node.children:
            raise _err(errno.ENOTEMPTY)
        d.remove_child(name)
        d.nlink -= 1
        d.touch()
        node.nlink = 0
        self.maybe_free(node)

    async def rename(self, ctx: RequestContext, parent: int, name: bytes, new_parent: int, new_name: bytes,
                     flags: int) -> None:
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or flags == RENAME_NOREPLACE | RENAME_EXCHANGE:
            raise _err(errno.EINVAL)
        src_dir = self.dir(parent)
        dst_dir = self.dir(new_parent)
        src_ino = src_dir.children.get(name)
        if src_ino is None:
            raise _err(errno.ENOENT)
        src = self.nodes[src_ino]
        dst_ino = dst_dir.children.get(new_name)
        if flags & RENAME_EXCHANGE:
            if dst_ino is None:
                raise _err(errno.ENOENT)
            dst = self.nodes[dst_ino]
            src_dir.children[name] = dst_ino
            dst_dir.children[new_name] = src_ino
            if src_dir is not dst_dir:
                src.parent, dst.parent = dst_dir.ino, src_dir.ino
                if src.is_dir != dst.is_dir:
                    delta = 1 if src.is_dir else -1
                    dst_dir.nlink += delta
                    src_dir.nlink -= delta
            for n in (src, dst, src_dir, dst_dir):
                n.touch(m=n in (src_dir, dst_dir))
            return
        if dst_ino == src_ino:
            return  # two names of one file: POSIX says do nothing
        if dst_ino is not None:
            if flags & RENAME_NOREPLACE:
                raise _err(errno.EEXIST)
            dst = self.nodes[dst_ino]
            if src.is_dir and not dst.is_dir:
                raise _err(errno.ENOTDIR)
            if not src.is_dir and dst.is_dir:
                raise _err(errno.EISDIR)
            if dst.is_dir and dst.children:
                raise _err(errno.ENOTEMPTY)
            dst_dir.remove_child(new_name)
            if dst.is_dir:
                dst.nlink = 0
                dst_dir.nlink -= 1
            else:
                dst.nlink -= 1
            dst.touch(m=False)
            self.maybe_free(dst)
        src_dir.remove_child(name)
        dst_dir.add_child(new_name, src_ino)
        if src.is_dir and src_dir is not dst_dir:
            src_dir.nlink -= 1
            dst_dir.nlink += 1
        src.parent = dst_dir.ino
        src.touch(m=False)
        src_dir.touch()
        dst_dir.touch()

    async def link(self, ctx: RequestContext, ino: int, new_parent: int, new_name: bytes) -> EntryOut:
        node = self.node(ino)
        if node.is_dir:
            raise _err(errno.EPERM)
        d = self.dir(new_parent)
        if new_name in d.children:
            raise _err(errno.EEXIST)
        d.add_child(new_name, ino)
        d.touch()
        node.nlink += 1
        node.touch(m=False)
        return self.entry(node)

    # ------------------------------------------------------------------ files

    async def open(self, ctx: RequestContext, ino: int, flags: int) -> OpenOut:
        node = self.node(ino)
        if node.is_dir:
            raise _err(errno.EISDIR)
        if flags & os.O_TRUNC and flags & os.O_ACCMODE != os.O_RDONLY:
            node.truncate(0)
            node.touch()
        node.opens += 1
        return OpenOut(self.new_handle(ino))

    async def create(self, ctx: RequestContext, parent: int, name: bytes, mode: int,
                     flags: int) -> tuple[EntryOut, OpenOut]:
        d = self.dir(parent)
        ino = d.children.get(name)
        if ino is not None:
            if flags & os.O_EXCL:
                raise _err(errno.EEXIST)
            opened = await self.open(ctx, ino, flags)
            return self.entry(self.nodes[ino]), opened
        node = self.new_node(ctx, d, name, stat.S_IFREG | (mode & 0o7777))
        node.opens += 1
        return self.entry(node), OpenOut(self.new_handle(node.ino))

    async def read(self, ctx: RequestContext, ino: int, fh: int, offset: int, size: int) -> ReadResult:
        node = self.node(ino)
        if node.read_delay:
            await asyncio.sleep(node.read_delay)
        return node.read(offset, size)  # type: ignore[return-value]

    async def write(self, ctx: RequestContext, ino: int, fh: int, offset: int, data: memoryview,
                    write_flags: int) -> int:
        node = self.node(ino)
        node.write(offset, data)
        node.touch()
        return len(data)

    async def flush(self, ctx: RequestContext, ino: int, fh: int, lock_owner: int) -> None:
        node = self.node(ino)
        if any(lk[0] == lock_owner for lk in node.plocks):
            node.plocks = [lk for lk in node.plocks if lk[0] != lock_owner]
            node.wake_lock_waiters()

    async def release(self, ctx: RequestContext, ino: int, fh: int, flags: int, flock_owner: int | None) -> None:
        self.handles.pop(fh, None)
        node = self.nodes.get(ino)
        if node is None:
            return
        if flock_owner is not None and node.flocks.pop(flock_owner, None) is not None:
            node.wake_lock_waiters()
        node.opens -= 1
        self.maybe_free(node)

    async def fsync(self, ctx: RequestContext, ino: int, fh: int, datasync: bool) -> None:
        self.node(ino)

    async def fallocate(self, ctx: RequestContext, ino: int, fh: int, offset: int, length: int, mode: int) -> None:
        node = self.node(ino)
        end = offset + length
        if mode & FALLOC_FL_PUNCH_HOLE:
            if not mode & FALLOC_FL_KEEP_SIZE:
                raise _err(errno.EOPNOTSUPP)
            node.zero(offset, min(end, node.size))
        elif mode & FALLOC_FL_ZERO_RANGE:
            node.zero(offset, end)
            node.allocate(offset, end)
            if not mode & FALLOC_FL_KEEP_SIZE and end > node.size:
                node.size = end
        elif mode & ~FALLOC_FL_KEEP_SIZE:
            raise _err(errno.EOPNOTSUPP)
        else:
            node.allocate(offset, end)
            if not mode & FALLOC_FL_KEEP_SIZE and end > node.size:
                node.size = end
        node.touch()

    async def copy_file_range(self, ctx: RequestContext, ino_in: int, fh_in: int, off_in: int, ino_out: int,
                              fh_out: int, off_out: int, length: int, flags: int) -> int:
        src = self.node(ino_in)
        dst = self.node(ino_out)
        data = b"".join(src.read(off_in, length))
        if data:
            dst.write(off_out, data)
            dst.touch()
        return len(data)

    async def lseek(self, ctx: RequestContext, ino: int, fh: int, offset: int, whence: int) -> int:
        if whence not in (SEEK_DATA, SEEK_HOLE):
            raise _err(errno.EINVAL)
        return self.node(ino).seek(offset, whence)

    # ------------------------------------------------------------------ directories

    async def opendir(self, ctx: RequestContext, ino: int, flags: int) -> OpenOut:
        self.dir(ino)
        return OpenOut(self.new_handle(ino))

    async def readdir(self, ctx: RequestContext, ino: int, fh: int, offset: int, out: DirentSink) -> None:
        d = self.dir(ino)
        plus = out.plus
        if offset < 1 and not out.add(b".", d.ino, d.mode, 1, self.entry(d, count=False) if plus else None):
            return
        if offset < 2:
            up = self.nodes.get(d.parent, d)
            if not out.add(b"..", up.ino, up.mode, 2, self.entry(up, count=False) if plus else None):
                return
        for cookie in d.cookies.irange(minimum=max(offset, 2) + 1):
            name = d.cookies[cookie]
            child = self.nodes[d.children[name]]
            entry = self.entry(child, count=False) if plus else None
            if not out.add(name, child.ino, child.mode, cookie, entry):
                return
            if entry is not None:
                child.lookups += 1

    async def releasedir(self, ctx: RequestContext, ino: int, fh: int) -> None:
        self.handles.pop(fh, None)

    async def fsyncdir(self, ctx: RequestContext, ino: int, fh: int, datasync: bool) -> None:
        self.dir(ino)

    async def statfs(self, ctx: RequestContext, ino: int) -> StatFs:
        used = sum(len(n.blocks) for n in self.nodes.values())
        total = 1 << 20  # 64 GiB in 64 KiB blocks
        return StatFs(blocks=total, bfree=total - used, bavail=total - used, files=1 << 24,
                      ffree=(1 << 24) - len(self.nodes), bsize=BLOCK, namelen=255, frsize=BLOCK)

    # ------------------------------------------------------------------ xattrs

    async def setxattr(self, ctx: RequestContext, ino: int, name: bytes, value: bytes, flags: int) -> None:
        node = self.node(ino)
        if name.startswith(HOOK_PREFIX):
            self._hook(node, name[len(HOOK_PREFIX):], value)
            return
        if flags & XATTR_CREATE and name in node.xattrs:
            raise _err(errno.EEXIST)
        if flags & XATTR_REPLACE and name not in node.xattrs:
            raise _err(errno.ENODATA)
        node.xattrs[name] = value
        node.touch(m=False)

    async def getxattr(self, ctx: RequestContext, ino: int, name: bytes) -> bytes:
        node = self.node(ino)
        if name == HOOK_PREFIX + b"crash":
            raise RuntimeError("simulated bug in a handler")
        try:
            return node.xattrs[name]
        except KeyError:
            raise _err(errno.ENODATA) from None

    async def listxattr(self, ctx: RequestContext, ino: int) -> Sequence[bytes]:
        return list(self.node(ino).xattrs)

    async def removexattr(self, ctx: RequestContext, ino: int, name: bytes) -> None:
        node = self.node(ino)
        if node.xattrs.pop(name, None) is None:
            raise _err(errno.ENODATA)
        node.touch(m=False)

    def _hook(self, node: Node, hook: bytes, value: bytes) -> None:
        if hook == b"read_delay":
            node.read_delay = float(value)
        elif hook == b"remote_unlink":
            if not node.is_dir or value not in node.children:
                raise _err(errno.ENOENT)
            child = self.nodes[node.remove_child(value)]
            child.nlink -= 1
            child.touch(m=False)
            node.touch()
            if self.notifier is not None:
                self.notifier.notify_delete(node.ino, child.ino, value)
                self.notifier.notify_inval_inode(child.ino)
                self.notifier.notify_inval_inode(node.ino)
            self.maybe_free(child)
        elif hook == b"remote_create":
            self.new_node(RequestContext(node.uid, node.gid, 0), node, value, stat.S_IFREG | 0o644)
            if self.notifier is not None:
                self.notifier.notify_inval_entry(node.ino, value)
                self.notifier.notify_inval_inode(node.ino)
        elif hook == b"remote_chmod":
            node.mode = stat.S_IFMT(node.mode) | int(value, 8)
            node.touch(m=False)
            if self.notifier is not None:
                self.notifier.notify_inval_inode(node.ino)
        else:
            raise _err(errno.EOPNOTSUPP)

    # ------------------------------------------------------------------ locks

    @staticmethod
    def _conflict(node: Node, owner: int, lock: FileLock) -> tuple[int, int, int, int, int] | None:
        for held in node.plocks:
            h_owner, h_type, h_start, h_end, _ = held
            if h_owner != owner and _overlaps(h_start, h_end, lock.start, lock.end) and (
                    h_type == F_WRLCK or lock.type == F_WRLCK):
                return held
        return None

    async def getlk(self, ctx: RequestContext, ino: int, fh: int, owner: int, lock: FileLock) -> FileLock:
        held = self._conflict(self.node(ino), owner, lock)
        if held is None:
            return FileLock(lock.start, lock.end, F_UNLCK, 0)
        return FileLock(held[2], held[3], held[1], held[4])

    async def setlk(self, ctx: RequestContext, ino: int, fh: int, owner: int, lock: FileLock, sleep: bool) -> None:
        node = self.node(ino)
        if lock.type not in (F_RDLCK, F_WRLCK, F_UNLCK):
            raise _err(errno.EINVAL)
        if lock.type != F_UNLCK:
            while self._conflict(node, owner, lock) is not None:
                if not sleep:
                    raise _err(errno.EAGAIN)
                await node.wait_lock_change()
        kept: list[tuple[int, int, int, int, int]] = []
        for held in node.plocks:
            h_owner, h_type, h_start, h_end, h_pid = held
            if h_owner != owner or not _overlaps(h_start, h_end, lock.start, lock.end):
                kept.append(held)
                continue
            if h_start < lock.start:  # keep the part before the new range
                kept.append((h_owner, h_type, h_start, lock.start - 1, h_pid))
            if h_end > lock.end:  # and the part after it
                kept.append((h_owner, h_type, lock.end + 1, h_end, h_pid))
        if lock.type != F_UNLCK:
            kept.append((owner, lock.type, lock.start, min(lock.end, OFFSET_MAX), lock.pid))
        node.plocks = kept
        node.wake_lock_waiters()

    async def flock(self, ctx: RequestContext, ino: int, fh: int, owner: int, type: int, sleep: bool) -> None:
        node = self.node(ino)
        if type == F_UNLCK:
            if node.flocks.pop(owner, None) is not None:
                node.wake_lock_waiters()
            return
        if type not in (F_RDLCK, F_WRLCK):
            raise _err(errno.EINVAL)
        while any(o != owner and (t == F_WRLCK or type == F_WRLCK) for o, t in node.flocks.items()):
            if not sleep:
                raise _err(errno.EWOULDBLOCK)
            await node.wait_lock_change()
        node.flocks[owner] = type
        node.wake_lock_waiters()


# ---------------------------------------------------------------------- command line


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m jfs.testing.memfs", description=__doc__.split("\n")[0])
    ap.add_argument("mountpoint")
    ap.add_argument("--fsname", default="memfs")
    ap.add_argument("--subtype", default="memfs")
    ap.add_argument("--attr-timeout", type=float, default=1.0)
    ap.add_argument("--entry-timeout", type=float, default=1.0)
    ap.add_argument("--negative-timeout", type=float, default=0.0)
    ap.add_argument("--fusermount", action="store_true", help="mount via fusermount3 even as root")
    ap.add_argument("--dispatch", default="eager-task", choices=("task", "eager-task", "inline"),
                    help="MountOptions.dispatch")
    ap.add_argument("--writeback-cache", action="store_true")
    ap.add_argument("--read-ahead-kb", default="1024", help="KiB, or 'kernel' to keep the kernel's default")
    ap.add_argument("--stop-timeout", type=float, default=10.0)
    ap.add_argument("--debug", action="store_true")
    return ap.parse_args(argv)


def _die_with_parent() -> None:
    """Ask for SIGTERM when the parent dies, so a crashed test runner does not leave a mount behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


async def _serve(args: argparse.Namespace) -> None:
    fs = MemFS(attr_timeout=args.attr_timeout, entry_timeout=args.entry_timeout,
               negative_timeout=args.negative_timeout)
    options = MountOptions(fsname=args.fsname, subtype=args.subtype, use_fusermount=args.fusermount or None,
                           dispatch=args.dispatch, writeback_cache=args.writeback_cache,
                           read_ahead_kb=None if args.read_ahead_kb == "kernel" else int(args.read_ahead_kb), debug=args.debug, stop_timeout=args.stop_timeout)
    server = FuseServer(fs, args.mountpoint, options)
    serving = asyncio.create_task(server.run())
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        print("READY", flush=True)
    else:
        ready.cancel()
    await serving


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse(argv)
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso"),
                    structlog.processors.format_exc_info, structlog.dev.ConsoleRenderer(colors=False)],
        wrapper_class=structlog.make_filtering_bound_logger(10 if args.debug else 20),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    _die_with_parent()
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()

"""The interface a file system implements to be served by `jfs.adapters.fuse.server.FuseServer`.

Subclass `Operations` and override the async methods you support. `lookup` and `getattr` are
required; every other request defaults to ``ENOSYS`` (or to a harmless success where the kernel
needs one, as noted per method). The kernel remembers ``ENOSYS`` for most requests (FLUSH, ACCESS,
FSYNC, SETXATTR/GETXATTR/LISTXATTR/REMOVEXATTR, GETLK/SETLK, FALLOCATE, COPY_FILE_RANGE, LSEEK, CREATE,
...) and stops sending them, falling back to its generic behaviour.

General contract of every handler:

* ``ctx`` is the caller (`RequestContext`); ``ino``/``parent`` are kernel node ids. The server
  does not translate them: a file system that answers LOOKUP with ``EntryOut(ino=n)`` receives ``n``
  back. Node id 1 (`ROOT_ID`) is the root; id 0 is never valid.
* Names (``name``, ``new_name``, xattr names) and symlink targets are ``bytes`` exactly as the caller
  passed them (no decoding, no NUL).
* Raise ``OSError`` (any subclass, e.g. ``FileNotFoundError`` or ``OSError(errno.EXDEV, ...)``) to
  fail the request with that errno. Any other exception is a bug: the server logs a structlog
  ``error`` event with the traceback and answers ``EIO``; the mount keeps running.
* Handlers run as asyncio tasks on the mount's event loop, concurrently: a slow handler never delays
  another request. By default a handler's first step runs at once, before the next request is read
  (``MountOptions.dispatch``). Never block the loop (use threads for blocking I/O).
* Interrupts: when the calling process gets a signal, the kernel sends FUSE_INTERRUPT. If the
  request's opcode is in `Operations.interruptible`, the server cancels the handler's task (an
  ``asyncio.CancelledError`` is raised at its current ``await``) and answers ``EINTR``. The default
  set holds only side-effect-free or waiting requests (lock waits, GETLK, READ), so that a process
  blocked in ``fcntl(F_SETLKW)``/``flock`` can be interrupted or killed. Widen it only for handlers
  that are safe to abandon at any ``await``; use ``asyncio.shield`` for parts that must finish.
* Lookup counts: every successful reply that carries an `EntryOut` with ``ino != 0`` (LOOKUP,
  MKNOD, MKDIR, SYMLINK, LINK, CREATE, and READDIRPLUS entries that `DirentSink.add` accepted,
  except ``.`` and ``..``) makes the kernel hold one more reference to that node; FORGET returns them.
  A file system that keeps per-node state (e.g. to free unlinked-but-referenced inodes) counts them.
  If a handler raises after deciding on an entry, the kernel never sees it: count only what you return.
"""

from __future__ import annotations

import abc
import errno
from collections.abc import Sequence
from typing import ClassVar, Final, Protocol

from jfs.adapters.fuse import protocol as p

ROOT_ID: Final = p.ROOT_ID
F_RDLCK: Final = 0
F_WRLCK: Final = 1
F_UNLCK: Final = 2
"""Lock types (Linux ``fcntl.h`` values), used by `FileLock.type` and `Operations.flock`."""

Buffer = bytes | bytearray | memoryview
ReadResult = Buffer | list[Buffer]
"""What `Operations.read` returns: one buffer or a list of buffers sent back to back (zero copy)."""


def _enosys() -> OSError:
    return OSError(errno.ENOSYS, "not implemented")


class RequestContext:
    """The caller of a request: its (fs)uid, (fs)gid and thread-group id, as the kernel reports them.

    ``umask`` is the caller's umask for MKNOD, MKDIR and CREATE (the kernel has already applied it to
    ``mode``; it is informational) and 0 for every other request. ``pid`` is 0 for requests the
    kernel sends on its own behalf (e.g. RELEASE, FORGET, readahead).
    """

    __slots__ = ("uid", "gid", "pid", "umask")

    def __init__(self, uid: int, gid: int, pid: int, umask: int = 0) -> None:
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.umask = umask

    def __repr__(self) -> str:
        return f"RequestContext(uid={self.uid}, gid={self.gid}, pid={self.pid}, umask={self.umask:o})"


class Attr:
    """Attributes of one node as sent to the kernel (``struct fuse_attr``).

    ``mode`` includes the file-type bits (``stat.S_IFREG | 0o644``). Times are integer nanoseconds
    since the epoch (``st_mtime_ns``; negative before 1970). ``blocks`` counts 512-byte units and
    defaults to ``ceil(size / 512)``; ``blksize`` is the preferred I/O size reported by ``stat``.
    """

    __slots__ = ("ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blocks", "blksize",
                 "atime_ns", "mtime_ns", "ctime_ns")

    def __init__(
        self,
        ino: int,
        mode: int,
        *,
        nlink: int = 1,
        uid: int = 0,
        gid: int = 0,
        rdev: int = 0,
        size: int = 0,
        blocks: int | None = None,
        blksize: int = 4096,
        atime_ns: int = 0,
        mtime_ns: int = 0,
        ctime_ns: int = 0,
    ) -> None:
        self.ino = ino
        self.mode = mode
        self.nlink = nlink
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.size = size
        self.blocks = (size + 511) >> 9 if blocks is None else blocks
        self.blksize = blksize
        self.atime_ns = atime_ns
        self.mtime_ns = mtime_ns
        self.ctime_ns = ctime_ns

    def __repr__(self) -> str:
        return (f"Attr(ino={self.ino}, mode={self.mode:o}, nlink={self.nlink}, uid={self.uid}, gid={self.gid}, "
                f"size={self.size}, mtime_ns={self.mtime_ns})")

    def pack_fields(self) -> tuple[int, ...]:
        """The ``struct fuse_attr`` field values in wire order (``protocol.ATTR``)."""
        asec, ansec = divmod(self.atime_ns, 1_000_000_000)
        msec, mnsec = divmod(self.mtime_ns, 1_000_000_000)
        csec, cnsec = divmod(self.ctime_ns, 1_000_000_000)
        return (self.ino, self.size, self.blocks, asec, msec, csec, ansec, mnsec, cnsec, self.mode,
                self.nlink, self.uid, self.gid, self.rdev, self.blksize, 0)


class AttrOut:
    """Reply of GETATTR and SETATTR: the attributes and how long the kernel may cache them (seconds)."""

    __slots__ = ("attr", "timeout")

    def __init__(self, attr: Attr, timeout: float = 1.0) -> None:
        self.attr = attr
        self.timeout = timeout


class EntryOut:
    """A directory entry the kernel may cache: node id, generation, attributes and two cache timeouts.

    ``entry_timeout`` bounds how long the kernel trusts the name -> node mapping, ``attr_timeout`` how
    long it trusts the attributes (seconds; 0 disables caching). ``(ino, generation)`` must be unique
    over the file system's lifetime (reuse an inode number only with a new generation).
    For LOOKUP only, ``EntryOut.negative(t)`` (``ino == 0``) means "no such entry" and lets the kernel
    cache that answer for ``t`` seconds; raising ``FileNotFoundError`` means the same, uncached.
    """

    __slots__ = ("ino", "generation", "attr", "entry_timeout", "attr_timeout")

    def __init__(self, ino: int, attr: Attr, *, generation: int = 0, entry_timeout: float = 1.0,
                 attr_timeout: float = 1.0) -> None:
        self.ino = ino
        self.generation = generation
        self.attr = attr
        self.entry_timeout = entry_timeout
        self.attr_timeout = attr_timeout

    @classmethod
    def negative(cls, entry_timeout: float) -> EntryOut:
        """A negative LOOKUP answer the kernel caches for `entry_timeout` seconds."""
        return cls(0, Attr(0, 0, nlink=0, blocks=0, blksize=0), entry_timeout=entry_timeout, attr_timeout=0)

    def pack_fields(self) -> tuple[int, ...]:
        """The ``struct fuse_entry_out`` field values in wire order (``protocol.ENTRY_OUT``)."""
        es, ens = p.split_timeout(self.entry_timeout)
        as_, ans = p.split_timeout(self.attr_timeout)
        return (self.ino, self.generation, es, as_, ens, ans, *self.attr.pack_fields())


class OpenOut:
    """Reply of OPEN, OPENDIR and (with an `EntryOut`) CREATE: a handle and FOPEN_* flags.

    ``fh`` is any 64-bit value; the kernel passes it back on every request about this open file.
    ``direct_io`` bypasses the page cache for this open file (reads and writes go straight to the
    file system, in the caller's sizes); ``keep_cache`` keeps cached pages from previous opens (only
    if the file did not change); ``nonseekable``/``stream`` for pipe-like files; ``cache_dir`` lets
    the kernel cache a directory's readdir results; ``noflush`` skips FLUSH on close;
    ``parallel_direct_writes`` allows concurrent direct writes to one inode.
    """

    __slots__ = ("fh", "flags")

    def __init__(self, fh: int = 0, *, direct_io: bool = False, keep_cache: bool = False,
                 nonseekable: bool = False, cache_dir: bool = False, stream: bool = False,
                 noflush: bool = False, parallel_direct_writes: bool = False) -> None:
        self.fh = fh
        self.flags = ((p.FOPEN_DIRECT_IO if direct_io else 0) | (p.FOPEN_KEEP_CACHE if keep_cache else 0)
                      | (p.FOPEN_NONSEEKABLE if nonseekable else 0) | (p.FOPEN_CACHE_DIR if cache_dir else 0)
                      | (p.FOPEN_STREAM if stream else 0) | (p.FOPEN_NOFLUSH if noflush else 0)
                      | (p.FOPEN_PARALLEL_DIRECT_WRITES if parallel_direct_writes else 0))


class SetattrRequest:
    """A decoded SETATTR: each field is ``None`` unless the caller asked to change it.

    * ``mode``: permission bits (with S_ISUID/S_ISGID/S_ISVTX; the type bits are not to be changed).
    * ``uid``/``gid``: new owner/group. ``size``: truncate/extend to this length.
    * ``atime_ns``/``mtime_ns``/``ctime_ns``: explicit times in ns since the epoch.
      ``atime_now``/``mtime_now``: set that time to the file system's current time (``utimensat``
      with ``UTIME_NOW``, ``touch``); the matching ``*_ns`` field is then ``None``.
    * ``fh``: the open file's handle when the change comes through one (``ftruncate``, ``fchmod``...).
    * ``lock_owner``: set for truncates done on behalf of a lock owner (mandatory-locking relics).
    * ``kill_suidgid``: the kernel asks to clear S_ISUID/S_ISGID as a side effect (with FUSE_HANDLE_KILLPRIV_V2).
    * ``valid``: the raw FATTR_* mask, for anything this class does not decode.
    """

    __slots__ = ("valid", "mode", "uid", "gid", "size", "atime_ns", "mtime_ns", "ctime_ns", "atime_now",
                 "mtime_now", "fh", "lock_owner", "kill_suidgid")

    def __init__(self, valid: int = 0, *, mode: int | None = None, uid: int | None = None,
                 gid: int | None = None, size: int | None = None, atime_ns: int | None = None,
                 mtime_ns: int | None = None, ctime_ns: int | None = None, atime_now: bool = False,
                 mtime_now: bool = False, fh: int | None = None, lock_owner: int | None = None,
                 kill_suidgid: bool = False) -> None:
        self.valid = valid
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.atime_ns = atime_ns
        self.mtime_ns = mtime_ns
        self.ctime_ns = ctime_ns
        self.atime_now = atime_now
        self.mtime_now = mtime_now
        self.fh = fh
        self.lock_owner = lock_owner
        self.kill_suidgid = kill_suidgid

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__
                           if getattr(self, k) not in (None, False) and k != "valid")
        return f"SetattrRequest({fields})"


class StatFs:
    """Reply of STATFS (``struct fuse_kstatfs``): sizes in units of ``frsize`` (``f_frsize``)."""

    __slots__ = ("blocks", "bfree", "bavail", "files", "ffree", "bsize", "namelen", "frsize")

    def __init__(self, *, blocks: int = 0, bfree: int = 0, bavail: int = 0, files: int = 0, ffree: int = 0,
                 bsize: int = 4096, namelen: int = 255, frsize: int | None = None) -> None:
        self.blocks = blocks
        self.bfree = bfree
        self.bavail = bavail
        self.files = files
        self.ffree = ffree
        self.bsize = bsize
        self.namelen = namelen
        self.frsize = bsize if frsize is None else frsize


class FileLock:
    """A byte-range lock: ``[start, end]`` inclusive (``end == OFFSET_MAX`` means to EOF), type and pid.

    ``type`` is `F_RDLCK`, `F_WRLCK` or `F_UNLCK`; ``pid`` is the holder's thread-group id (GETLK
    replies report the conflicting holder's pid, which the kernel translates for the caller).
    """

    __slots__ = ("start", "end", "type", "pid")

    def __init__(self, start: int, end: int, type: int, pid: int = 0) -> None:
        self.start = start
        self.end = end
        self.type = type
        self.pid = pid

    def __repr__(self) -> str:
        return f"FileLock(start={self.start}, end={self.end}, type={self.type}, pid={self.pid})"


_PAD = tuple(b"\0" * n for n in range(8))
_DIRENT_PACK = p.DIRENT.pack
_DIRENTPLUS_PACK = p.DIRENTPLUS.pack
_NEG_ENTRY_FIELDS = (0,) * 22  # a zero fuse_entry_out: "no attributes supplied" in READDIRPLUS


class DirentSink:
    """Collects the entries of one READDIR / READDIRPLUS reply, packed into at most ``size`` bytes.

    The file system calls `add` for entries in offset order until it returns ``False`` (the reply is
    full; that entry was *not* sent and must be offered again at the next call) or it runs out of
    entries. ``plus`` says whether the kernel asked for READDIRPLUS (entries with attributes).

    A file system packing long listings may instead append whole records to `buffer` itself (each
    ``struct fuse_direntplus`` / ``fuse_dirent`` with its name, zero-padded to 8 bytes, the buffer never
    longer than `size`) and add the number of records to `count`.
    """

    __slots__ = ("plus", "size", "count", "buffer")

    def __init__(self, size: int, plus: bool) -> None:
        self.plus = plus
        self.size = size
        self.count = 0
        self.buffer = bytearray()
        """The packed records so far (see the class docstring for appending to it directly)."""

    def add(self, name: bytes, ino: int, mode: int, next_offset: int,
            entry: EntryOut | tuple[int, ...] | None = None) -> bool:  # fmt: skip
        """Append one entry; ``False`` when it does not fit (then nothing was added).

        ``ino`` and ``mode`` (only its S_IFMT bits are used) fill ``d_ino``/``d_type``.
        ``next_offset`` is the offset of the *following* entry: the kernel passes it back to resume
        the listing after this entry; it must be non-zero and stay valid while the directory changes
        (``0`` means "from the start"). For READDIRPLUS, ``entry`` supplies the attributes (and then
        counts as a lookup, except for ``.`` and ``..``); without it the kernel gets no attributes and
        will LOOKUP the name when it needs them. ``entry`` may also be given as the values of
        ``EntryOut.pack_fields()`` (saves building the objects for every entry of a long listing).
        ``entry`` is ignored for plain READDIR.
        """
        namelen = len(name)
        buf = self.buffer
        if self.plus:
            reclen = (p.DIRENTPLUS_SIZE + namelen + 7) & ~7
            if len(buf) + reclen > self.size:
                return False
            fields = _NEG_ENTRY_FIELDS if entry is None else entry if type(entry) is tuple else entry.pack_fields()  # type: ignore[union-attr]
            buf += _DIRENTPLUS_PACK(*fields, ino, next_offset, namelen, (mode & 0o170000) >> 12)
            buf += name
            buf += _PAD[reclen - p.DIRENTPLUS_SIZE - namelen]
        else:
            reclen = (p.DIRENT_SIZE + namelen + 7) & ~7
            if len(buf) + reclen > self.size:
                return False
            buf += _DIRENT_PACK(ino, next_offset, namelen, (mode & 0o170000) >> 12)
            buf += name
            buf += _PAD[reclen - p.DIRENT_SIZE - namelen]
        self.count += 1
        return True

    @property
    def payload(self) -> bytearray:
        """The packed entries (what the server sends)."""
        return self.buffer


class Notifier(Protocol):
    """Kernel cache invalidation, offered by the server (see `jfs.adapters.fuse.notify.KernelNotifier` for
    the exact semantics)."""

    def notify_inval_inode(self, ino: int, offset: int = -1, length: int = 0) -> None: ...

    def notify_inval_entry(self, parent: int, name: bytes, *, expire_only: bool = False) -> None: ...

    def notify_delete(self, parent: int, child: int, name: bytes) -> None: ...

    async def notifications_done(self, timeout: float | None = None) -> bool: ...


class ConnectionInfo:
    """What INIT negotiated, handed to `Operations.init`.

    ``proto_minor`` is the protocol minor in use; ``kernel_flags`` what the kernel offered and
    ``flags`` what is in force (FUSE_* bits of `protocol`, bits 32+ included). ``notifier`` sends
    cache invalidations to the kernel (keep it: there is no other way to reach the server from a
    file system).
    """

    __slots__ = ("proto_major", "proto_minor", "kernel_flags", "flags", "max_write", "max_read",
                 "max_readahead", "max_pages", "max_background", "congestion_threshold", "time_gran",
                 "notifier")

    def __init__(self, *, proto_major: int, proto_minor: int, kernel_flags: int, flags: int, max_write: int,
                 max_read: int, max_readahead: int, max_pages: int, max_background: int,
                 congestion_threshold: int, time_gran: int, notifier: Notifier) -> None:
        self.proto_major = proto_major
        self.proto_minor = proto_minor
        self.kernel_flags = kernel_flags
        self.flags = flags
        self.max_write = max_write
        self.max_read = max_read
        self.max_readahead = max_readahead
        self.max_pages = max_pages
        self.max_background = max_background
        self.congestion_threshold = congestion_threshold
        self.time_gran = time_gran
        self.notifier = notifier

    @property
    def writeback_cache(self) -> bool:
        """Whether the kernel caches writes (then WRITEs arrive late, with guessed handles)."""
        return bool(self.flags & p.FUSE_WRITEBACK_CACHE)


class Operations(abc.ABC):
    """A file system served over FUSE. Override what you support; see the module docstring."""

    interruptible: ClassVar[frozenset[int]] = frozenset(
        {p.Opcode.SETLKW, p.Opcode.SETLK, p.Opcode.GETLK, p.Opcode.READ}
    )
    """Opcodes whose handler task is cancelled (and answered EINTR) on FUSE_INTERRUPT."""

    keeps_write_data: ClassVar[bool] = False
    """True: `write` may keep its `data` view instead of copying it. The server then hands the request
    buffer over for good (it never reuses a buffer a view still pins, and allocates a new one) — one
    copy of every written byte fewer on the event loop."""

    # ------------------------------------------------------------------ life cycle

    async def init(self, conn: ConnectionInfo) -> None:
        """Called once, after INIT is negotiated and before the kernel sends any other request."""
        return None

    async def destroy(self) -> None:
        """Called once when the connection ends (unmount, DESTROY, or server stop); no request follows.

        In-flight handlers have finished (or been cancelled after the drain timeout) by then.
        """
        return None

    # ------------------------------------------------------------------ names and attributes

    @abc.abstractmethod
    async def lookup(self, ctx: RequestContext, parent: int, name: bytes) -> EntryOut | tuple[int, ...]:
        """The entry `name` in directory `parent` (``FileNotFoundError`` or a negative `EntryOut`); the
        entry may also be given as the values of its ``EntryOut.pack_fields()`` (cheaper on a hot path).

        ``.`` and ``..`` are only asked for when the kernel needs them (NFS export; not negotiated).
        """

    async def forget(self, items: Sequence[tuple[int, int]]) -> None:
        """The kernel dropped ``nlookup`` references to each ``(ino, nlookup)``; no reply is sent.

        FORGET and BATCH_FORGET both arrive here. Exceptions are logged and otherwise ignored.
        """
        return None

    @abc.abstractmethod
    async def getattr(self, ctx: RequestContext, ino: int, fh: int | None) -> AttrOut:
        """Attributes of `ino`; `fh` is the handle when the caller asked through an open file (fstat)."""

    def getattr_now(self, ctx: RequestContext, ino: int) -> AttrOut | None:
        """`getattr`, answered synchronously when that needs no waiting (attributes this file system
        already holds and may answer with), else None (the default): the server then runs `getattr`.
        Called on the event loop inside the server's read loop, so it must never block or await; an
        OSError it raises is the reply."""
        return None

    async def setattr(self, ctx: RequestContext, ino: int, req: SetattrRequest) -> AttrOut:
        """Change the attributes `req` names (chmod, chown, truncate, utimens) and return the new ones.

        With FUSE_ATOMIC_O_TRUNC negotiated (always), ``open(O_TRUNC)`` arrives as OPEN with O_TRUNC,
        not as a SETATTR. Permission checks are the kernel's when mounted with default_permissions.
        """
        raise _enosys()

    async def readlink(self, ctx: RequestContext, ino: int) -> bytes:
        """The target of symlink `ino`."""
        raise _enosys()

    async def mknod(self, ctx: RequestContext, parent: int, name: bytes, mode: int, rdev: int) -> EntryOut:
        """Create a regular file, FIFO, socket or device node (`mode` has the type bits; umask applied).

        Also used for regular files when `create` is not implemented.
        """
        raise _enosys()

    async def mkdir(self, ctx: RequestContext, parent: int, name: bytes, mode: int) -> EntryOut:
        """Create a directory; `mode` is ``S_IFDIR | permission bits`` (umask applied)."""
        raise _enosys()

    async def unlink(self, ctx: RequestContext, parent: int, name: bytes) -> None:
        """Remove a non-directory entry (the node lives on while open or looked up, as the FS decides)."""
        raise _enosys()

    async def rmdir(self, ctx: RequestContext, parent: int, name: bytes) -> None:
        """Remove an empty directory (``ENOTEMPTY`` otherwise)."""
        raise _enosys()

    async def symlink(self, ctx: RequestContext, parent: int, name: bytes, target: bytes) -> EntryOut:
        """Create symlink `name` -> `target`."""
        raise _enosys()

    async def rename(self, ctx: RequestContext, parent: int, name: bytes, new_parent: int, new_name: bytes,
                     flags: int) -> None:
        """Rename; `flags` is 0 or a ``renameat2`` mask: RENAME_NOREPLACE (1), RENAME_EXCHANGE (2),
        RENAME_WHITEOUT (4). Unsupported flags: ``EINVAL``. Same-node renames are the FS's to detect."""
        raise _enosys()

    async def link(self, ctx: RequestContext, ino: int, new_parent: int, new_name: bytes) -> EntryOut:
        """Create hard link `new_parent`/`new_name` to `ino`; return the entry with the new nlink."""
        raise _enosys()

    # ------------------------------------------------------------------ files

    async def open(self, ctx: RequestContext, ino: int, flags: int) -> OpenOut:
        """Open `ino` with ``open(2)`` `flags` (O_CREAT/O_EXCL/O_NOCTTY removed by the kernel).

        O_TRUNC is the file system's to apply (FUSE_ATOMIC_O_TRUNC). Access checks against the mode
        are the kernel's (default_permissions).
        """
        raise _enosys()

    async def create(self, ctx: RequestContext, parent: int, name: bytes, mode: int,
                     flags: int) -> tuple[EntryOut, OpenOut]:
        """Atomically create and open a regular file (``open(O_CREAT)`` of a missing name).

        Without it the kernel falls back to MKNOD + OPEN (not atomic for O_EXCL across clients).
        """
        raise _enosys()

    async def read(self, ctx: RequestContext, ino: int, fh: int, offset: int, size: int) -> ReadResult:
        """Up to `size` bytes at `offset`. Fewer bytes mean end of file (except with direct_io, where
        the count is passed to the caller as is). Returning a list sends the buffers back to back
        without joining them. Returning more than `size` bytes is a bug (answered EIO)."""
        raise _enosys()

    def read_now(self, ino: int, fh: int, offset: int, size: int) -> ReadResult | None:
        """`read`, answered synchronously when that needs no waiting (data in memory, page-cached
        files), else None (the default): the server then runs `read`. Called on the event loop inside
        the server's read loop before the reply is written, so it must never block, await or fail for
        a request `read` would answer; an OSError it raises is the reply."""
        return None

    async def write(self, ctx: RequestContext, ino: int, fh: int, offset: int, data: memoryview,
                    write_flags: int) -> int:
        """Write `data` at `offset`; return the number of bytes written (normally ``len(data)``).

        `data` is a view into the server's request buffer, valid only until this handler returns:
        anything kept beyond that (a page list, a queue) must be a copy (``bytes(data)``) unless the
        class sets `keeps_write_data`. (If a view escapes anyway, the server notices and does not reuse
        that buffer, logging a warning, so the data stays intact; but the buffer stays pinned as long as
        the view lives.)
        `write_flags` holds FUSE_WRITE_CACHE (delayed write from the page cache; `fh` may be any of
        the inode's handles), FUSE_WRITE_LOCKOWNER and FUSE_WRITE_KILL_SUIDGID. Open files in
        O_APPEND mode get the offset of the end of file as the kernel knows it.
        """
        raise _enosys()

    def write_target(self, ino: int, fh: int, offset: int) -> memoryview | None:
        """A writable buffer the payload of a WRITE of (`ino`, `fh`) at `offset` may be read into, or None
        (the default: the payload stays in the request buffer).

        The server asks right before reading the device, when the last WRITE it read was large and
        ended at `offset` (a sequential writer). If the next request is that WRITE and fits, `write` is
        called with a prefix of this view as `data` (synchronously, nothing else runs in between);
        otherwise the server copies whatever landed in the view out of it and never passes it on. The
        view need not survive anything but that next `write`: it is asked for afresh each time (ADR 0030).
        """
        return None

    async def flush(self, ctx: RequestContext, ino: int, fh: int, lock_owner: int) -> None:
        """``close()`` of one file descriptor of this open file (possibly one of many dups).

        With POSIX locks on, this is where the file system must release the POSIX locks held by
        `lock_owner` on `ino` (the kernel sends no unlock of its own). ``ENOSYS`` makes the kernel
        stop sending FLUSH, so implement it if you implement `setlk`.
        """
        raise _enosys()

    async def release(self, ctx: RequestContext, ino: int, fh: int, flags: int, flock_owner: int | None) -> None:
        """The last reference to open file `fh` is gone (its ``open`` `flags` are given); the reply's
        errno is ignored by the kernel. When `flock_owner` is not ``None`` the file system must
        release the flock lock held by that owner. Default: nothing."""
        return None

    def flush_now(self, ctx: RequestContext, ino: int, fh: int, lock_owner: int) -> bool:
        """`flush` done synchronously when that needs no waiting: True (the empty reply follows), else
        False (the default): the server then runs `flush`. Called on the event loop, so it must never
        block or await, and must leave everything unchanged when it returns False."""
        return False

    def release_now(self, ctx: RequestContext, ino: int, fh: int, flags: int, flock_owner: int | None) -> bool:
        """`release` done synchronously when that needs no waiting (True), else False (the default; the
        server runs `release`), under `flush_now`'s rules."""
        return False

    async def fsync(self, ctx: RequestContext, ino: int, fh: int, datasync: bool) -> None:
        """Persist `ino` (only its data when `datasync`)."""
        raise _enosys()

    async def fallocate(self, ctx: RequestContext, ino: int, fh: int, offset: int, length: int, mode: int) -> None:
        """``fallocate(2)``: `mode` 0 allocates (and extends), FALLOC_FL_KEEP_SIZE (1) does not extend,
        FALLOC_FL_PUNCH_HOLE (2, always with KEEP_SIZE) zeroes the range, FALLOC_FL_ZERO_RANGE (16).
        Unsupported modes: ``EOPNOTSUPP``."""
        raise _enosys()

    async def copy_file_range(self, ctx: RequestContext, ino_in: int, fh_in: int, off_in: int, ino_out: int,
                              fh_out: int, off_out: int, length: int, flags: int) -> int:
        """Copy up to `length` bytes inside the file system; return the count copied (0 at EOF).
        ``ENOSYS``/``EOPNOTSUPP`` make the kernel fall back to read + write."""
        raise _enosys()

    async def lseek(self, ctx: RequestContext, ino: int, fh: int, offset: int, whence: int) -> int:
        """SEEK_DATA (3) / SEEK_HOLE (4) from `offset`: the resulting offset (``ENXIO`` past the data /
        beyond EOF). The kernel handles SEEK_SET/CUR/END itself; ``ENOSYS`` makes it treat the whole
        file as data."""
        raise _enosys()

    # ------------------------------------------------------------------ directories

    async def opendir(self, ctx: RequestContext, ino: int, flags: int) -> OpenOut:
        """Open directory `ino` for listing. Default: handle 0."""
        return OpenOut(0)

    async def readdir(self, ctx: RequestContext, ino: int, fh: int, offset: int, out: DirentSink) -> None:
        """List directory `ino` from `offset` (0 = the start) into `out` until `out.add` returns False
        or the end is reached (add nothing at the end). ``out.plus`` is True for READDIRPLUS; then give
        each entry its `EntryOut` when cheap (saves the kernel a LOOKUP per name). Include ``.`` and
        ``..`` if you want ``ls -a`` to show them."""
        raise _enosys()

    async def releasedir(self, ctx: RequestContext, ino: int, fh: int) -> None:
        """Directory handle `fh` is closed. Default: nothing."""
        return None

    async def fsyncdir(self, ctx: RequestContext, ino: int, fh: int, datasync: bool) -> None:
        """Persist directory `ino`."""
        raise _enosys()

    # ------------------------------------------------------------------ file system

    async def statfs(self, ctx: RequestContext, ino: int) -> StatFs:
        """File-system usage (``statvfs``). Default: all zeros, 4 KiB blocks, names up to 255 bytes."""
        return StatFs()

    async def access(self, ctx: RequestContext, ino: int, mask: int) -> None:
        """``access(2)`` check of R_OK/W_OK/X_OK `mask` (only without default_permissions)."""
        raise _enosys()

    # ------------------------------------------------------------------ xattrs

    async def setxattr(self, ctx: RequestContext, ino: int, name: bytes, value: bytes, flags: int) -> None:
        """Set xattr `name`; `flags` is 0, XATTR_CREATE (1: ``EEXIST`` if present) or XATTR_REPLACE
        (2: ``ENODATA`` if absent)."""
        raise _enosys()

    async def getxattr(self, ctx: RequestContext, ino: int, name: bytes) -> bytes:
        """The value of xattr `name` (``ENODATA`` if absent). The server answers size probes
        (``getxattr(..., size=0)``) and ``ERANGE`` for small buffers from the returned value."""
        raise _enosys()

    async def listxattr(self, ctx: RequestContext, ino: int) -> Sequence[bytes]:
        """The names of all xattrs of `ino` (without NULs; the server joins and sizes them)."""
        raise _enosys()

    async def removexattr(self, ctx: RequestContext, ino: int, name: bytes) -> None:
        """Remove xattr `name` (``ENODATA`` if absent)."""
        raise _enosys()

    # ------------------------------------------------------------------ locks

    async def getlk(self, ctx: RequestContext, ino: int, fh: int, owner: int, lock: FileLock) -> FileLock:
        """``F_GETLK``: the first lock held by another owner that conflicts with `lock`, or `lock`
        with ``type = F_UNLCK`` when none does."""
        raise _enosys()

    async def setlk(self, ctx: RequestContext, ino: int, fh: int, owner: int, lock: FileLock, sleep: bool) -> None:
        """``F_SETLK``/``F_SETLKW`` (POSIX record lock, `owner` = the process's files table): set,
        convert or (``F_UNLCK``) release a range. On conflict raise ``BlockingIOError`` (EAGAIN) unless
        `sleep`; then wait until it can be granted (the wait is cancelled on interrupt)."""
        raise _enosys()

    async def flock(self, ctx: RequestContext, ino: int, fh: int, owner: int, type: int, sleep: bool) -> None:
        """``flock(2)`` on the whole file (`owner` = the open file): `type` `F_RDLCK` (LOCK_SH),
        `F_WRLCK` (LOCK_EX) or `F_UNLCK`. Conflicts as in `setlk`. Released on `release`."""
        raise _enosys()

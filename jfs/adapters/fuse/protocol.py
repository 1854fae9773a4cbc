"""The FUSE kernel protocol (``linux/fuse.h``, version 7.38): wire structs, opcodes and flags.

Every kernel struct is one precompiled ``struct.Struct`` in native byte order with standard sizes and
no implicit padding (the kernel structs are explicitly padded to 64-bit boundaries, so the layouts
match the C definitions byte for byte; ``tests/unit/test_fuse_protocol.py`` checks every size against
the header). Names follow the C structs: ``ENTRY_OUT`` is ``struct fuse_entry_out``.

Decoding is zero-copy: callers ``unpack_from`` the request buffer at an offset and take
``memoryview`` slices of it for payloads (the WRITE data is never copied). Only names (NUL-terminated
strings) are copied out, as ``bytes``, by `cstring`.

A request is ``fuse_in_header`` + per-opcode argument struct(s) + optional NUL-terminated names /
payload. A reply is ``fuse_out_header`` (``error`` is 0 or a negated errno) + the reply struct or
payload. Notifications are replies with ``unique == 0`` and ``error == notify code``.
"""

from __future__ import annotations

import enum
import functools
import struct
from typing import Final

KERNEL_VERSION: Final = 7
KERNEL_MINOR_VERSION: Final = 38
"""The protocol version this module implements; INIT replies min(kernel minor, this)."""
MIN_KERNEL_MINOR: Final = 12
"""Oldest kernel protocol minor we serve: structs in this module have their 7.12+ sizes."""

ROOT_ID: Final = 1
"""Node id of the root directory (``FUSE_ROOT_ID``)."""

MIN_READ_BUFFER: Final = 8192
"""``FUSE_MIN_READ_BUFFER``: the kernel rejects reads of the device into smaller buffers."""

NAME_MAX_KERNEL: Final = 1024
"""``FUSE_NAME_MAX``: the kernel rejects dirent names longer than this."""

OFFSET_MAX: Final = 0x7FFF_FFFF_FFFF_FFFF
"""Lock range end meaning "to the end of the file" (``OFFSET_MAX`` in the kernel)."""


class Opcode(enum.IntEnum):
    """``enum fuse_opcode``."""

    LOOKUP = 1
    FORGET = 2  # no reply
    GETATTR = 3
    SETATTR = 4
    READLINK = 5
    SYMLINK = 6
    MKNOD = 8
    MKDIR = 9
    UNLINK = 10
    RMDIR = 11
    RENAME = 12
    LINK = 13
    OPEN = 14
    READ = 15
    WRITE = 16
    STATFS = 17
    RELEASE = 18
    FSYNC = 20
    SETXATTR = 21
    GETXATTR = 22
    LISTXATTR = 23
    REMOVEXATTR = 24
    FLUSH = 25
    INIT = 26
    OPENDIR = 27
    READDIR = 28
    RELEASEDIR = 29
    FSYNCDIR = 30
    GETLK = 31
    SETLK = 32
    SETLKW = 33
    ACCESS = 34
    CREATE = 35
    INTERRUPT = 36  # no reply
    BMAP = 37
    DESTROY = 38
    IOCTL = 39
    POLL = 40
    NOTIFY_REPLY = 41  # no reply
    BATCH_FORGET = 42  # no reply
    FALLOCATE = 43
    READDIRPLUS = 44
    RENAME2 = 45
    LSEEK = 46
    COPY_FILE_RANGE = 47
    SETUPMAPPING = 48
    REMOVEMAPPING = 49
    SYNCFS = 50
    TMPFILE = 51


MAX_OPCODE: Final = 64
"""Size of opcode-indexed dispatch tables (every opcode of 7.38 is below it)."""


class NotifyCode(enum.IntEnum):
    """``enum fuse_notify_code``: the ``error`` field of an unsolicited message to the kernel."""

    POLL = 1
    INVAL_INODE = 2
    INVAL_ENTRY = 3
    STORE = 4
    RETRIEVE = 5
    DELETE = 6


# --- INIT flags (fuse_init_in/out.flags; bits 32..63 travel in flags2) ---------------------------------
FUSE_ASYNC_READ: Final = 1 << 0
FUSE_POSIX_LOCKS: Final = 1 << 1
FUSE_FILE_OPS: Final = 1 << 2
FUSE_ATOMIC_O_TRUNC: Final = 1 << 3
FUSE_EXPORT_SUPPORT: Final = 1 << 4
FUSE_BIG_WRITES: Final = 1 << 5
FUSE_DONT_MASK: Final = 1 << 6
FUSE_SPLICE_WRITE: Final = 1 << 7
FUSE_SPLICE_MOVE: Final = 1 << 8
FUSE_SPLICE_READ: Final = 1 << 9
FUSE_FLOCK_LOCKS: Final = 1 << 10
FUSE_HAS_IOCTL_DIR: Final = 1 << 11
FUSE_AUTO_INVAL_DATA: Final = 1 << 12
FUSE_DO_READDIRPLUS: Final = 1 << 13
FUSE_READDIRPLUS_AUTO: Final = 1 << 14
FUSE_ASYNC_DIO: Final = 1 << 15
FUSE_WRITEBACK_CACHE: Final = 1 << 16
FUSE_NO_OPEN_SUPPORT: Final = 1 << 17
FUSE_PARALLEL_DIROPS: Final = 1 << 18
FUSE_HANDLE_KILLPRIV: Final = 1 << 19
FUSE_POSIX_ACL: Final = 1 << 20
FUSE_ABORT_ERROR: Final = 1 << 21
FUSE_MAX_PAGES: Final = 1 << 22
FUSE_CACHE_SYMLINKS: Final = 1 << 23
FUSE_NO_OPENDIR_SUPPORT: Final = 1 << 24
FUSE_EXPLICIT_INVAL_DATA: Final = 1 << 25
FUSE_MAP_ALIGNMENT: Final = 1 << 26
FUSE_SUBMOUNTS: Final = 1 << 27
FUSE_HANDLE_KILLPRIV_V2: Final = 1 << 28
FUSE_SETXATTR_EXT: Final = 1 << 29
FUSE_INIT_EXT: Final = 1 << 30
FUSE_INIT_RESERVED: Final = 1 << 31
FUSE_SECURITY_CTX: Final = 1 << 32
FUSE_HAS_INODE_DAX: Final = 1 << 33
FUSE_HAS_EXPIRE_ONLY: Final = 1 << 35

# --- fuse_setattr_in.valid -------------------------------------------------------------------------------
FATTR_MODE: Final = 1 << 0
FATTR_UID: Final = 1 << 1
FATTR_GID: Final = 1 << 2
FATTR_SIZE: Final = 1 << 3
FATTR_ATIME: Final = 1 << 4
FATTR_MTIME: Final = 1 << 5
FATTR_FH: Final = 1 << 6
FATTR_ATIME_NOW: Final = 1 << 7
FATTR_MTIME_NOW: Final = 1 << 8
FATTR_LOCKOWNER: Final = 1 << 9
FATTR_CTIME: Final = 1 << 10
FATTR_KILL_SUIDGID: Final = 1 << 11

# --- fuse_open_out.open_flags ------------------------------------------------------------------------------
FOPEN_DIRECT_IO: Final = 1 << 0
FOPEN_KEEP_CACHE: Final = 1 << 1
FOPEN_NONSEEKABLE: Final = 1 << 2
FOPEN_CACHE_DIR: Final = 1 << 3
FOPEN_STREAM: Final = 1 << 4
FOPEN_NOFLUSH: Final = 1 << 5
FOPEN_PARALLEL_DIRECT_WRITES: Final = 1 << 6

# --- misc request flags ------------------------------------------------------------------------------------
FUSE_RELEASE_FLUSH: Final = 1 << 0
FUSE_RELEASE_FLOCK_UNLOCK: Final = 1 << 1
FUSE_GETATTR_FH: Final = 1 << 0
FUSE_LK_FLOCK: Final = 1 << 0
FUSE_WRITE_CACHE: Final = 1 << 0
FUSE_WRITE_LOCKOWNER: Final = 1 << 1
FUSE_WRITE_KILL_SUIDGID: Final = 1 << 2
FUSE_READ_LOCKOWNER: Final = 1 << 1
FUSE_FSYNC_FDATASYNC: Final = 1 << 0
FUSE_OPEN_KILL_SUIDGID: Final = 1 << 0
FUSE_SETXATTR_ACL_KILL_SGID: Final = 1 << 0
FUSE_EXPIRE_ONLY: Final = 1 << 0

# --- structs (native byte order, standard sizes: "=" — fuse.h is host-endian) ---------------------------
_ATTR_FMT = "QQQqqqIIIIIIIIII"  # fuse_attr; times are signed on the kernel side (pre-1970 files)

IN_HEADER: Final = struct.Struct("=IIQQIIIHH")  # len opcode unique nodeid uid gid pid total_extlen pad
OUT_HEADER: Final = struct.Struct("=IiQ")  # len error unique
ATTR: Final = struct.Struct("=" + _ATTR_FMT)
ENTRY_OUT: Final = struct.Struct("=QQQQII" + _ATTR_FMT)  # nodeid generation entry_valid attr_valid (+nsecs)
ATTR_OUT: Final = struct.Struct("=QII" + _ATTR_FMT)  # attr_valid attr_valid_nsec dummy attr
KSTATFS: Final = struct.Struct("=QQQQQIIII24x")  # blocks bfree bavail files ffree bsize namelen frsize pad spare
FILE_LOCK: Final = struct.Struct("=QQII")  # start end type pid
FORGET_IN: Final = struct.Struct("=Q")
FORGET_ONE: Final = struct.Struct("=QQ")  # nodeid nlookup
BATCH_FORGET_IN: Final = struct.Struct("=II")  # count dummy
GETATTR_IN: Final = struct.Struct("=IIQ")  # getattr_flags dummy fh
MKNOD_IN: Final = struct.Struct("=IIII")  # mode rdev umask padding
MKDIR_IN: Final = struct.Struct("=II")  # mode umask
RENAME_IN: Final = struct.Struct("=Q")  # newdir
RENAME2_IN: Final = struct.Struct("=QII")  # newdir flags padding
LINK_IN: Final = struct.Struct("=Q")  # oldnodeid
SETATTR_IN: Final = struct.Struct("=IIQQQqqqIIIIIIII")
OPEN_IN: Final = struct.Struct("=II")  # flags open_flags
CREATE_IN: Final = struct.Struct("=IIII")  # flags mode umask open_flags
OPEN_OUT: Final = struct.Struct("=QII")  # fh open_flags padding
RELEASE_IN: Final = struct.Struct("=QIIQ")  # fh flags release_flags lock_owner
FLUSH_IN: Final = struct.Struct("=QIIQ")  # fh unused padding lock_owner
READ_IN: Final = struct.Struct("=QQIIQII")  # fh offset size read_flags lock_owner flags padding
WRITE_IN: Final = struct.Struct("=QQIIQII")  # fh offset size write_flags lock_owner flags padding
WRITE_OUT: Final = struct.Struct("=II")  # size padding
STATFS_OUT: Final = KSTATFS
FSYNC_IN: Final = struct.Struct("=QII")  # fh fsync_flags padding
SETXATTR_IN: Final = struct.Struct("=IIII")  # size flags setxattr_flags padding (FUSE_SETXATTR_EXT)
SETXATTR_IN_COMPAT: Final = struct.Struct("=II")  # size flags (without FUSE_SETXATTR_EXT)
GETXATTR_IN: Final = struct.Struct("=II")  # size padding
GETXATTR_OUT: Final = struct.Struct("=II")  # size padding
LK_IN: Final = struct.Struct("=QQQQIIII")  # fh owner lk.start lk.end lk.type lk.pid lk_flags padding
LK_OUT: Final = FILE_LOCK
ACCESS_IN: Final = struct.Struct("=II")  # mask padding
INIT_IN: Final = struct.Struct("=IIIII44x")  # major minor max_readahead flags flags2 unused[11]
INIT_IN_BASE: Final = struct.Struct("=IIII")  # what a pre-7.36 kernel sends
INIT_OUT: Final = struct.Struct("=IIIIHHIIHHI28x")
"""major minor max_readahead flags max_background congestion_threshold max_write time_gran max_pages
map_alignment flags2 unused[7]."""
INTERRUPT_IN: Final = struct.Struct("=Q")
BMAP_IN: Final = struct.Struct("=QII")
BMAP_OUT: Final = struct.Struct("=Q")
IOCTL_IN: Final = struct.Struct("=QIIQII")  # fh flags cmd arg in_size out_size
IOCTL_OUT: Final = struct.Struct("=iIII")
POLL_IN: Final = struct.Struct("=QQII")
POLL_OUT: Final = struct.Struct("=II")
FALLOCATE_IN: Final = struct.Struct("=QQQII")  # fh offset length mode padding
LSEEK_IN: Final = struct.Struct("=QQII")  # fh offset whence padding
LSEEK_OUT: Final = struct.Struct("=Q")
COPY_FILE_RANGE_IN: Final = struct.Struct("=QQQQQQQ")  # fh_in off_in nodeid_out fh_out off_out len flags
SYNCFS_IN: Final = struct.Struct("=Q")
DIRENT: Final = struct.Struct("=QQII")  # ino off namelen type, then the name, padded to 8 bytes
DIRENTPLUS: Final = struct.Struct("=QQQQII" + _ATTR_FMT + "QQII")  # fuse_entry_out + fuse_dirent
NOTIFY_INVAL_INODE_OUT: Final = struct.Struct("=Qqq")  # ino off len
NOTIFY_INVAL_ENTRY_OUT: Final = struct.Struct("=QII")  # parent namelen flags
NOTIFY_DELETE_OUT: Final = struct.Struct("=QQII")  # parent child namelen padding
EXT_HEADER: Final = struct.Struct("=II")  # size type

# Replies that are one header plus one fixed struct, packed in one call (one buffer, one write).
HDR_ATTR_OUT: Final = struct.Struct("=IiQ" + ATTR_OUT.format[1:])
HDR_ENTRY_OUT: Final = struct.Struct("=IiQ" + ENTRY_OUT.format[1:])
HDR_ENTRY_OPEN_OUT: Final = struct.Struct("=IiQ" + ENTRY_OUT.format[1:] + OPEN_OUT.format[1:])
HDR_OPEN_OUT: Final = struct.Struct("=IiQ" + OPEN_OUT.format[1:])
HDR_WRITE_OUT: Final = struct.Struct("=IiQ" + WRITE_OUT.format[1:])
HDR_STATFS_OUT: Final = struct.Struct("=IiQ" + STATFS_OUT.format[1:])
HDR_GETXATTR_OUT: Final = struct.Struct("=IiQ" + GETXATTR_OUT.format[1:])
HDR_LK_OUT: Final = struct.Struct("=IiQ" + LK_OUT.format[1:])
HDR_LSEEK_OUT: Final = struct.Struct("=IiQ" + LSEEK_OUT.format[1:])
HDR_INIT_OUT: Final = struct.Struct("=IiQ" + INIT_OUT.format[1:])

IN_HEADER_SIZE: Final = IN_HEADER.size  # 40
OUT_HEADER_SIZE: Final = OUT_HEADER.size  # 16
DIRENT_SIZE: Final = DIRENT.size  # 24 == FUSE_NAME_OFFSET
DIRENTPLUS_SIZE: Final = DIRENTPLUS.size  # 152 == FUSE_NAME_OFFSET_DIRENTPLUS
COMPAT_INIT_OUT_SIZE: Final = 8
COMPAT_22_INIT_OUT_SIZE: Final = 24

WRITE_DATA_OFFSET: Final = IN_HEADER_SIZE + WRITE_IN.size
"""Where the WRITE payload starts in a request buffer (80)."""
MAX_HEADER_ROOM: Final = 4096
"""Bytes we reserve in a request buffer beside ``max_write`` for headers and argument structs."""


def dirent_size(namelen: int, plus: bool = False) -> int:
    """``FUSE_DIRENT_SIZE`` / ``FUSE_DIRENTPLUS_SIZE``: record length, padded to 8 bytes."""
    return ((DIRENTPLUS_SIZE if plus else DIRENT_SIZE) + namelen + 7) & ~7


def cstring(buf: bytes | bytearray, start: int, end: int) -> tuple[bytes, int]:
    """The NUL-terminated string at ``buf[start:end]`` (copied) and the offset just past its NUL.

    Raises ``ValueError`` when there is no NUL before `end` (a malformed request).
    """
    nul = buf.index(0, start, end)
    return bytes(buf[start:nul]), nul + 1


def split_ns(ns: int) -> tuple[int, int]:
    """Nanoseconds since the epoch as (seconds, nanoseconds) with 0 <= nanoseconds < 1e9."""
    return divmod(ns, 1_000_000_000)


@functools.lru_cache(maxsize=64)
@functools.lru_cache(maxsize=256)
def split_timeout(seconds: float) -> tuple[int, int]:
    """A non-negative cache timeout in seconds as (seconds, nanoseconds) for ``*_valid`` fields (memoized:
    a mount uses a handful of timeouts, and every entry of a listing asks)."""
    if seconds <= 0:
        return 0, 0
    whole = int(seconds)
    return whole, int((seconds - whole) * 1e9)

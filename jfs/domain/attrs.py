"""Inode attributes and their 72-byte binary record (JuiceFS-compatible, big-endian).

Record layout (offsets in bytes): flags u8 @0; (type<<12 | mode&0xFFF) u16 @1; uid u32 @3; gid u32 @7;
atime i64 @11, atimensec u32 @19; mtime i64 @23, mtimensec u32 @31; ctime i64 @35, ctimensec u32 @43;
nlink u32 @47; length u64 @51; rdev u32 @59; parent u64 @63; [access_acl u32, default_acl u32 when either
is non-zero]; [tier u8 when non-zero]; one trailing zero pad byte. Readers accept shorter legacy records.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace

ROOT_INODE = 1
TRASH_INODE = 0x7FFFFFFF10000000
"""Inode of the trash root; trash hour directories are TRASH_INODE + n."""
RESERVED_INODE_BASE = 0x7FFFFFFF00000000
"""Inodes at or above this value are never allocated for normal files (virtual files, trash)."""

MAX_NAME = 255
MAX_SYMLINK = 4096
DIR_LENGTH = 4096

FLAG_IMMUTABLE = 0x01
FLAG_APPEND = 0x02
FLAG_SKIP_TRASH = 0x20

S_ISUID = 0o4000
S_ISGID = 0o2000
S_ISVTX = 0o1000


class FileType(enum.IntEnum):
    REGULAR = 1
    DIRECTORY = 2
    SYMLINK = 3
    FIFO = 4
    BLOCKDEV = 5
    CHARDEV = 6
    SOCKET = 7

    @property
    def s_ifmt(self) -> int:
        """The S_IF* bits of st_mode for this type."""
        return _S_IFMT[self]

    @classmethod
    def of(cls, value: int) -> FileType:
        """`FileType(value)` without the enum machinery (hot in decoding); ValueError when unknown."""
        try:
            return _BY_VALUE[value]
        except KeyError:
            raise ValueError(f"{value} is not a valid FileType") from None

    @classmethod
    def from_mode(cls, st_mode: int) -> FileType:
        """The type encoded in the S_IFMT bits of `st_mode` (regular when the bits are zero)."""
        fmt = st_mode & 0o170000
        for typ, bits in _S_IFMT.items():
            if bits == fmt:
                return typ
        return cls.REGULAR


_S_IFMT = {
    FileType.REGULAR: 0o100000,
    FileType.DIRECTORY: 0o040000,
    FileType.SYMLINK: 0o120000,
    FileType.FIFO: 0o010000,
    FileType.BLOCKDEV: 0o060000,
    FileType.CHARDEV: 0o020000,
    FileType.SOCKET: 0o140000,
}

_BY_VALUE = {t.value: t for t in FileType}
FILE_TYPES: Mapping[int, FileType] = _BY_VALUE
"""Each type by its value (`FileType.of` without the call, for loops over whole listings; read-only)."""

_FIXED = struct.Struct(">BHIIqIqIqIIQI")  # 63 bytes: flags .. rdev
_U64 = struct.Struct(">Q")
_PLAIN = struct.Struct(">BHIIqIqIqIIQIQ")  # flags .. rdev, parent: a record without ACLs or tier
_PLAIN_SIZE = _PLAIN.size + 1  # and the trailing zero byte
_PLAIN_PADDED = struct.Struct(">BHIIqIqIqIIQIQx")  # _PLAIN and the trailing zero byte, in one pack
PLAIN_RECORD, PLAIN_RECORD_SIZE = _PLAIN, _PLAIN_SIZE
"""The usual attribute record (no ACLs, no tier): its fields flags .. parent, and its whole size in bytes."""
_ACL = struct.Struct(">II")

NS = 1_000_000_000


def plain_record(typ: FileType, mode: int, uid: int, gid: int, a_s: int, a_n: int, m_s: int, m_n: int, c_s: int,
                 c_n: int, nlink: int, length: int, parent: int) -> bytes:
    """`Attr.encode` of attributes without flags, rdev, ACLs or tier, from their fields (times as seconds and
    nanoseconds, each nanosecond count in [0, NS)): the bulk loader's record of a plain file, without
    building an `Attr`."""
    return _PLAIN_PADDED.pack(0, (int(typ) << 12) | (mode & 0o7777), uid & 0xFFFFFFFF, gid & 0xFFFFFFFF, a_s, a_n,
                              m_s, m_n, c_s, c_n, nlink & 0xFFFFFFFF, length, 0, parent)


@dataclass(slots=True)
class Attr:
    """Attributes of one inode. Times are nanoseconds since the epoch (signed)."""

    typ: FileType
    mode: int = 0
    uid: int = 0
    gid: int = 0
    atime_ns: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    nlink: int = 1
    length: int = 0
    rdev: int = 0
    parent: int = 0
    flags: int = 0
    access_acl: int = 0
    default_acl: int = 0
    tier: int = 0

    @property
    def st_mode(self) -> int:
        return self.typ.s_ifmt | (self.mode & 0o7777)

    @property
    def is_dir(self) -> bool:
        return self.typ is FileType.DIRECTORY

    @property
    def is_file(self) -> bool:
        return self.typ is FileType.REGULAR

    def copy(self) -> Attr:
        return replace(self)

    def touch(self, now_ns: int, *, mtime: bool = True, ctime: bool = True, atime: bool = False) -> None:
        if mtime:
            self.mtime_ns = now_ns
        if ctime:
            self.ctime_ns = now_ns
        if atime:
            self.atime_ns = now_ns

    def encode(self) -> bytes:
        """The binary record (72 bytes for a plain inode; see the module docstring)."""
        a_s, a_n = divmod(self.atime_ns, NS)
        m_s, m_n = divmod(self.mtime_ns, NS)
        c_s, c_n = divmod(self.ctime_ns, NS)
        out = _FIXED.pack(
            self.flags & 0xFF,
            (int(self.typ) << 12) | (self.mode & 0o7777),
            self.uid & 0xFFFFFFFF,
            self.gid & 0xFFFFFFFF,
            a_s, a_n, m_s, m_n, c_s, c_n,
            self.nlink & 0xFFFFFFFF,
            self.length,
            self.rdev & 0xFFFFFFFF,
        ) + _U64.pack(self.parent)
        if self.access_acl or self.default_acl:
            out += _ACL.pack(self.access_acl, self.default_acl)
        if self.tier:
            out += bytes((self.tier & 0xFF,))
        return out + b"\x00"

    @classmethod
    def decode(cls, data: bytes) -> Attr:
        """Parse a record written by `encode` (or by JuiceFS). Raises ValueError when too short."""
        n = len(data)
        if n == _PLAIN_SIZE:  # the usual record: one unpack, positional construction (hot in listings)
            (flags, tm, uid, gid, a_s, a_n, m_s, m_n, c_s, c_n, nlink, length, rdev, parent) = _PLAIN.unpack_from(data)
            typ = _BY_VALUE.get(tm >> 12)
            if typ is None:
                raise ValueError(f"{tm >> 12} is not a valid FileType")
            return cls(typ, tm & 0o7777, uid, gid, a_s * NS + a_n, m_s * NS + m_n, c_s * NS + c_n, nlink,
                       length, rdev, parent, flags)  # fmt: skip
        if n < _FIXED.size:
            raise ValueError(f"attribute record too short: {n} bytes")
        (flags, tm, uid, gid, a_s, a_n, m_s, m_n, c_s, c_n, nlink, length, rdev) = _FIXED.unpack_from(data)
        attr = cls(
            typ=FileType.of(tm >> 12),
            mode=tm & 0o7777,
            uid=uid,
            gid=gid,
            atime_ns=a_s * NS + a_n,
            mtime_ns=m_s * NS + m_n,
            ctime_ns=c_s * NS + c_n,
            nlink=nlink,
            length=length,
            rdev=rdev,
            flags=flags,
        )
        rest = n - _FIXED.size
        off = _FIXED.size
        if rest >= 8:
            (attr.parent,) = _U64.unpack_from(data, off)
            off += 8
            rest -= 8
        if rest >= 8:
            attr.access_acl, attr.default_acl = _ACL.unpack_from(data, off)
            off += 8
            rest -= 8
        if rest >= 1:
            attr.tier = data[off]
        return attr


def align4k(length: int) -> int:
    """Space charged for an inode of `length` bytes: rounded up to 4 KiB, and 0 counts as 4 KiB."""
    if length == 0:
        return 4096
    return ((length - 1) // 4096 + 1) * 4096


def is_trash_inode(ino: int) -> bool:
    return ino >= TRASH_INODE


def posix_nlink(ino: int, attr: Attr) -> int:
    """The link count a caller sees: 0 for a file whose last name went to the trash — deleted for POSIX
    (fstat of a still-open unlinked file says st_nlink 0) although the trash keeps it under a name.
    Directories keep theirs (tools such as find(1) read subdirectory counts from it)."""
    if attr.parent >= TRASH_INODE and ino < TRASH_INODE and attr.typ is not FileType.DIRECTORY:
        return 0
    return attr.nlink


def is_reserved_inode(ino: int) -> bool:
    return ino >= RESERVED_INODE_BASE

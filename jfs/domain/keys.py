"""The key space of the metadata engine (the JuiceFS transactional-KV layout).

Inode numbers in keys are 8 bytes little-endian; every other integer in a key is big-endian.
Names are raw bytes appended last (never length-prefixed).

=============================  ===================================  ==========================================
key                             value                                meaning
=============================  ===================================  ==========================================
``setting``                     format JSON                          volume settings (domain/settings.py)
``C`` name                      i64 LE (counters) / u64 BE (times)   counters: nextInode, nextChunk, usedSpace…
``A`` ino ``I``                 attr record (domain/attrs.py)        inode attributes
``A`` ino ``D`` name            type u8 + ino u64 BE                 directory entry
``A`` ino ``P`` parent(LE)      i64 LE                               dentries of a hard-linked ino in parent
``A`` ino ``C`` indx u32 BE     n × 24-byte slice records            chunk → slice list (append order)
``A`` ino ``S``                 target bytes                         symlink target
``A`` ino ``X`` name            value bytes                          extended attribute
``D`` ino length u64 BE         deletion time u64 BE                 file whose data awaits deletion
``F`` ino                       n × 17-byte flock entries            BSD locks
``P`` ino                       (sid, owner, n, records)*            POSIX record locks
``K`` slice u64 BE size u32 BE  i64 LE                               slice references − 1 (absent = 1 ref)
``L`` time u64 BE slice u64 BE  n × 12-byte (id, size)               compacted slices held back by trash
``SE`` sid u64 BE               expiry u64 BE (unix s)               live session
``SI`` sid u64 BE               JSON                                 session info
``SS`` sid u64 BE ino(LE)       ``\\x01``                            open-but-unlinked (sustained) inode
``U`` ino                       24 bytes BE (length, space, inodes)  directory statistics
``QD`` ino                      32 bytes BE                          directory quota
``QU`` / ``QG`` id u64 BE       32 bytes BE                          user / group quota (ADR 0026)
``jS`` slice u64 BE             block checksums (domain/checksums)   jfs only, opt-in (ADR 0008)
``jW`` token                    lock JSON (domain/dav_locks)         jfs only: WebDAV locks (ADR 0012)
=============================  ===================================  ==========================================
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

_INO = struct.Struct("<Q")
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")

SETTING = b"setting"

# Counter names (keys are b"C" + name).
NEXT_INODE = b"nextInode"
NEXT_CHUNK = b"nextChunk"
NEXT_SESSION = b"nextSession"
NEXT_TRASH = b"nextTrash"
USED_SPACE = b"usedSpace"
TOTAL_INODES = b"totalInodes"
LAST_CLEANUP_SESSIONS = b"lastCleanupSessions"
LAST_CLEANUP_FILES = b"lastCleanupFiles"
LAST_CLEANUP_TRASH = b"lastCleanupTrash"


def ino_le(ino: int) -> bytes:
    return _INO.pack(ino)


def ino_from_le(data: bytes, offset: int = 0) -> int:
    return int(_INO.unpack_from(data, offset)[0])


def counter(name: bytes) -> bytes:
    return b"C" + name


def attr(ino: int) -> bytes:
    return b"A" + _INO.pack(ino) + b"I"


def attrs(inodes: Iterable[int]) -> list[bytes]:
    """`attr` of each inode, in order (one loop for a listing page's thousands)."""
    pack = _INO.pack
    return [b"A" + pack(ino) + b"I" for ino in inodes]


def inode_prefix(ino: int) -> bytes:
    """Prefix of every key that belongs to one inode."""
    return b"A" + _INO.pack(ino)


def dentry(parent: int, name: bytes) -> bytes:
    return b"A" + _INO.pack(parent) + b"D" + name


def dentry_prefix(parent: int) -> bytes:
    return b"A" + _INO.pack(parent) + b"D"


def parent_ref(ino: int, parent: int) -> bytes:
    return b"A" + _INO.pack(ino) + b"P" + _INO.pack(parent)


def parent_ref_prefix(ino: int) -> bytes:
    return b"A" + _INO.pack(ino) + b"P"


def chunk(ino: int, indx: int) -> bytes:
    return b"A" + _INO.pack(ino) + b"C" + _U32.pack(indx)


def chunk_prefix(ino: int) -> bytes:
    return b"A" + _INO.pack(ino) + b"C"


def symlink(ino: int) -> bytes:
    return b"A" + _INO.pack(ino) + b"S"


def xattr(ino: int, name: bytes) -> bytes:
    return b"A" + _INO.pack(ino) + b"X" + name


def xattr_prefix(ino: int) -> bytes:
    return b"A" + _INO.pack(ino) + b"X"


def delfile(ino: int, length: int) -> bytes:
    return b"D" + _INO.pack(ino) + _U64.pack(length)


DELFILE_PREFIX = b"D"


def parse_delfile(key: bytes) -> tuple[int, int]:
    """(ino, length) of a delfile key."""
    return ino_from_le(key, 1), int(_U64.unpack_from(key, 9)[0])


def flock(ino: int) -> bytes:
    return b"F" + _INO.pack(ino)


def plock(ino: int) -> bytes:
    return b"P" + _INO.pack(ino)


FLOCK_PREFIX = b"F"
PLOCK_PREFIX = b"P"


def slice_ref(slice_id: int, size: int) -> bytes:
    return b"K" + _U64.pack(slice_id) + _U32.pack(size)


SLICE_REF_PREFIX = b"K"


def parse_slice_ref(key: bytes) -> tuple[int, int]:
    return int(_U64.unpack_from(key, 1)[0]), int(_U32.unpack_from(key, 9)[0])


def delayed_slices(ts: int, slice_id: int) -> bytes:
    return b"L" + _U64.pack(ts) + _U64.pack(slice_id)


DELAYED_PREFIX = b"L"


def session_expiry(sid: int) -> bytes:
    return b"SE" + _U64.pack(sid)


SESSION_EXPIRY_PREFIX = b"SE"


def session_info(sid: int) -> bytes:
    return b"SI" + _U64.pack(sid)


def sustained(sid: int, ino: int) -> bytes:
    return b"SS" + _U64.pack(sid) + _INO.pack(ino)


def sustained_prefix(sid: int) -> bytes:
    return b"SS" + _U64.pack(sid)


def parse_sid(key: bytes) -> int:
    """Session id of an ``SE``/``SI``/``SS`` key."""
    return int(_U64.unpack_from(key, 2)[0])


def dir_stat(ino: int) -> bytes:
    return b"U" + _INO.pack(ino)


def dir_quota(ino: int) -> bytes:
    return b"QD" + _INO.pack(ino)


BLOCK_SUMS_PREFIX = b"jS"
"""Keys that JuiceFS never writes nor reads start with a lowercase ``j``."""


def block_sums(slice_id: int) -> bytes:
    """Key of the block-checksum record of a slice (jfs only; see domain/checksums.py)."""
    return BLOCK_SUMS_PREFIX + _U64.pack(slice_id)


def parse_block_sums(key: bytes) -> int:
    return int(_U64.unpack_from(key, 2)[0])


DAV_LOCKS_PREFIX = b"jW"
"""WebDAV lock records of `jfs webdav` (shared by every server of the volume)."""


def dav_lock(token: str) -> bytes:
    """Key of the WebDAV lock whose token is `token` (``opaquelocktoken:…``)."""
    return DAV_LOCKS_PREFIX + token.encode()


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with `prefix` (exclusive scan end).

    Raises ValueError for an empty or all-0xFF prefix, which has no such key.
    """
    data = bytearray(prefix)
    while data:
        if data[-1] != 0xFF:
            data[-1] += 1
            return bytes(data)
        data.pop()
    raise ValueError("prefix has no upper bound")


USER_QUOTA_PREFIX = b"QU"
GROUP_QUOTA_PREFIX = b"QG"


def user_quota(uid: int) -> bytes:
    """Key of the user quota of `uid` (JuiceFS 1.3+: ``QU`` + uid as u64 BE)."""
    return USER_QUOTA_PREFIX + _U64.pack(uid)


def group_quota(gid: int) -> bytes:
    """Key of the group quota of `gid` (``QG`` + gid as u64 BE)."""
    return GROUP_QUOTA_PREFIX + _U64.pack(gid)


def parse_owner_quota(key: bytes) -> int:
    """The uid/gid of a ``QU``/``QG`` key."""
    return int(_U64.unpack_from(key, 2)[0])

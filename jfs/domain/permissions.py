"""POSIX permission rules: access checks, the sticky bit, and who may change mode, owner and times.

Follows Linux semantics (the kernel does these checks for local file systems; a FUSE file system
mounted without `default_permissions` must do them itself). ACLs are not evaluated here: callers
with ACL support check the access ACL before falling back to these mode bits.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from jfs.domain.attrs import FLAG_APPEND, FLAG_IMMUTABLE, S_ISGID, S_ISUID, S_ISVTX, Attr, FileType
from jfs.domain.errors import FSError

MAY_READ = 4
MAY_WRITE = 2
MAY_EXEC = 1

_S_IXGRP = 0o010
_ANY_EXEC = 0o111


@dataclass(frozen=True, slots=True)
class Caller:
    """Identity of the process making a request: uid, primary gid and supplementary groups."""

    uid: int
    gid: int
    groups: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def root(cls) -> Caller:
        return cls(0, 0, frozenset())

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def in_group(self, gid: int) -> bool:
        """Whether `gid` is the caller's primary or one of its supplementary groups."""
        return gid == self.gid or gid in self.groups


def permission_bits(attr: Attr, caller: Caller) -> int:
    """The rwx bits (MAY_* mask) of the class `caller` falls in: owner, else group, else other.

    The owner class applies whenever the uid matches, even if it grants less than group or other.
    """
    if caller.uid == attr.uid:
        return (attr.mode >> 6) & 7
    if caller.in_group(attr.gid):
        return (attr.mode >> 3) & 7
    return attr.mode & 7


def access_ok(attr: Attr, caller: Caller, mask: int) -> bool:
    """Whether `caller` may access the inode with every right in `mask` (MAY_READ|MAY_WRITE|MAY_EXEC).

    Root may always read and write, and may execute (search) when the inode is a directory or has any
    execute bit set. A mask of 0 (existence check) always succeeds.
    """
    mask &= 7
    if caller.is_root:
        return not mask & MAY_EXEC or attr.typ is FileType.DIRECTORY or bool(attr.mode & _ANY_EXEC)
    return permission_bits(attr, caller) & mask == mask


def check_access(attr: Attr, caller: Caller, mask: int) -> None:
    """Raise FSError(EACCES) unless `access_ok(attr, caller, mask)`."""
    if not access_ok(attr, caller, mask):
        raise FSError(errno.EACCES)


def check_sticky(dir_attr: Attr, victim_attr: Attr, caller: Caller) -> None:
    """Restricted deletion: in a sticky directory only root, the directory's owner or the entry's owner
    may remove or rename an entry. Raises FSError(EPERM) otherwise.
    """
    if not dir_attr.mode & S_ISVTX:
        return
    if caller.is_root or caller.uid == dir_attr.uid or caller.uid == victim_attr.uid:
        return
    raise FSError(errno.EPERM)


def _check_mutable(attr: Attr) -> None:
    if attr.flags & (FLAG_IMMUTABLE | FLAG_APPEND):
        raise FSError(errno.EPERM)


def _check_owner(attr: Attr, caller: Caller) -> None:
    if not caller.is_root and caller.uid != attr.uid:
        raise FSError(errno.EPERM)


def check_chmod(attr: Attr, caller: Caller, new_mode: int) -> int:
    """The permission bits (0o7777) to store when `caller` chmods the inode to `new_mode`.

    Only the owner or root may chmod, and not on an immutable or append-only inode (EPERM). When the
    caller is neither root nor a member of the file's group, S_ISGID is silently dropped.
    """
    _check_mutable(attr)
    _check_owner(attr, caller)
    mode = new_mode & 0o7777
    if not caller.is_root and not caller.in_group(attr.gid):
        mode &= ~S_ISGID
    return mode


def check_chown(attr: Attr, caller: Caller, uid: int | None, gid: int | None) -> None:
    """Raise FSError(EPERM) unless `caller` may set the owner to `uid` and the group to `gid`.

    `None` means unchanged. Only root may change the uid (the owner may "set" it to its current value);
    the owner may change the gid to a group it belongs to. Immutable/append-only inodes refuse both.
    """
    if uid is None and gid is None:
        return
    _check_mutable(attr)
    if caller.is_root:
        return
    if caller.uid != attr.uid:
        raise FSError(errno.EPERM)
    if uid is not None and uid != attr.uid:
        raise FSError(errno.EPERM)
    if gid is not None and gid != attr.gid and not caller.in_group(gid):
        raise FSError(errno.EPERM)


def clear_suid_on_write_or_chown(attr: Attr, caller: Caller, *, chown: bool = False) -> int:
    """The permission bits (0o7777) the inode keeps after a data write, or after chown when `chown`.

    Directories keep theirs. Otherwise S_ISUID is dropped, and S_ISGID is dropped when group-execute is
    set (without it, S_ISGID marks mandatory locking and stays). A write by root clears nothing
    (CAP_FSETID); a chown by someone other than root drops S_ISGID unconditionally.
    """
    mode = attr.mode & 0o7777
    if attr.typ is FileType.DIRECTORY:
        return mode
    if not chown and caller.is_root:
        return mode
    mode &= ~S_ISUID
    if mode & _S_IXGRP or (chown and not caller.is_root):
        mode &= ~S_ISGID
    return mode


def check_utimens(attr: Attr, caller: Caller, explicit: bool) -> None:
    """Check that `caller` may set the inode's atime/mtime.

    Explicit times need the owner or root (else EPERM); setting them to "now" also suffices with write
    access (else EACCES). Immutable inodes refuse both, append-only inodes refuse explicit times (EPERM).
    """
    if attr.flags & FLAG_IMMUTABLE or explicit and attr.flags & FLAG_APPEND:
        raise FSError(errno.EPERM)
    if caller.is_root or caller.uid == attr.uid:
        return
    if explicit:
        raise FSError(errno.EPERM)
    if not access_ok(attr, caller, MAY_WRITE):
        raise FSError(errno.EACCES)

"""POSIX permission rules."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jfs.domain.attrs import FLAG_APPEND, FLAG_IMMUTABLE, S_ISGID, S_ISUID, S_ISVTX, Attr, FileType
from jfs.domain.errors import FSError
from jfs.domain.permissions import (
    MAY_EXEC,
    MAY_READ,
    MAY_WRITE,
    Caller,
    access_ok,
    check_access,
    check_chmod,
    check_chown,
    check_sticky,
    check_utimens,
    clear_suid_on_write_or_chown,
)

ALICE = Caller(1000, 1000, frozenset({1000, 50}))
BOB = Caller(1001, 1001, frozenset({1001, 50}))
EVE = Caller(1002, 1002, frozenset())
ROOT = Caller.root()


def file(
    mode: int, uid: int = 1000, gid: int = 1000, typ: FileType = FileType.REGULAR, flags: int = 0
) -> Attr:
    return Attr(typ=typ, mode=mode, uid=uid, gid=gid, flags=flags)


def errno_of(call: Callable[..., object], *args: object) -> int | None:
    try:
        call(*args)
    except FSError as e:
        return e.errno
    return None


def test_classes_owner_group_other() -> None:
    attr = file(0o640, uid=1000, gid=50)
    assert access_ok(attr, ALICE, MAY_READ | MAY_WRITE)
    assert access_ok(attr, BOB, MAY_READ)  # via supplementary group 50
    assert not access_ok(attr, BOB, MAY_WRITE)
    assert not access_ok(attr, EVE, MAY_READ)
    assert access_ok(attr, EVE, 0)
    # Primary gid counts as group membership too.
    assert access_ok(file(0o040, uid=1, gid=1002), EVE, MAY_READ)


def test_owner_class_applies_even_when_it_denies() -> None:
    attr = file(0o077, uid=1000, gid=1000)
    assert not access_ok(attr, ALICE, MAY_READ)
    assert access_ok(attr, EVE, MAY_READ | MAY_WRITE | MAY_EXEC)
    # Likewise the group class applies before "other".
    assert not access_ok(file(0o707, uid=1, gid=50), BOB, MAY_READ)


def test_root_bypass_rules() -> None:
    assert access_ok(file(0o000), ROOT, MAY_READ | MAY_WRITE)
    assert not access_ok(file(0o000), ROOT, MAY_EXEC)
    assert access_ok(file(0o001), ROOT, MAY_EXEC)
    assert access_ok(file(0o000, typ=FileType.DIRECTORY), ROOT, MAY_EXEC)
    with pytest.raises(FSError) as exc:
        check_access(file(0o644), ROOT, MAY_EXEC)
    assert exc.value.errno == errno.EACCES
    check_access(file(0o644), ROOT, MAY_READ | MAY_WRITE)


callers = st.builds(
    Caller, st.integers(1, 4), st.integers(1, 4), st.frozensets(st.integers(1, 4), max_size=3)
)
attrs = st.builds(
    Attr,
    typ=st.sampled_from([FileType.REGULAR, FileType.DIRECTORY]),
    mode=st.integers(0, 0o7777),
    uid=st.integers(1, 4),
    gid=st.integers(1, 4),
)


@given(attrs, callers, st.integers(0, 7), st.integers(0, 0o777))
def test_more_mode_bits_never_reduce_access(attr: Attr, caller: Caller, mask: int, extra: int) -> None:
    wider = Attr(typ=attr.typ, mode=attr.mode | extra, uid=attr.uid, gid=attr.gid)
    if access_ok(attr, caller, mask):
        assert access_ok(wider, caller, mask)
    # A non-root caller's access is exactly decided by one rwx triplet.
    granted = [m for m in (MAY_READ, MAY_WRITE, MAY_EXEC) if access_ok(attr, caller, m)]
    assert access_ok(attr, caller, sum(granted))
    assert access_ok(attr, caller, mask) == all(access_ok(attr, caller, m) for m in (4, 2, 1) if mask & m)


@given(attrs, st.integers(0, 7))
def test_root_reads_and_writes_anything(attr: Attr, mask: int) -> None:
    assert access_ok(attr, ROOT, mask & (MAY_READ | MAY_WRITE))


def test_sticky_directory() -> None:
    tmp = file(0o1777, uid=0, gid=0, typ=FileType.DIRECTORY)
    victim = file(0o644, uid=1000)
    check_sticky(tmp, victim, ALICE)  # owns the entry
    check_sticky(tmp, victim, ROOT)
    check_sticky(file(0o1777, uid=1001, typ=FileType.DIRECTORY), victim, BOB)  # owns the directory
    assert errno_of(check_sticky, tmp, victim, BOB) == errno.EPERM
    check_sticky(file(0o777, uid=0, typ=FileType.DIRECTORY), victim, BOB)  # not sticky


def test_chmod() -> None:
    attr = file(0o644, uid=1000, gid=50)
    assert check_chmod(attr, ALICE, 0o100755) == 0o755  # type bits are dropped
    assert check_chmod(attr, ALICE, S_ISGID | 0o755) == S_ISGID | 0o755  # in group 50
    assert errno_of(check_chmod, attr, BOB, 0o777) == errno.EPERM
    assert check_chmod(attr, ROOT, S_ISUID | S_ISGID | S_ISVTX | 0o7) == 0o7007
    # Not a member of the file's group: setgid is silently dropped, the rest applies.
    other_group = file(0o644, uid=1000, gid=77)
    assert check_chmod(other_group, ALICE, S_ISGID | S_ISUID | 0o755) == S_ISUID | 0o755
    assert check_chmod(other_group, ROOT, S_ISGID | 0o755) == S_ISGID | 0o755
    assert errno_of(check_chmod, file(0o644, flags=FLAG_IMMUTABLE), ROOT, 0o600) == errno.EPERM


def test_chown() -> None:
    attr = file(0o644, uid=1000, gid=1000)
    check_chown(attr, ROOT, 5, 6)
    check_chown(attr, ALICE, None, 50)  # owner → a group she is in
    check_chown(attr, ALICE, 1000, 1000)  # no-op by the owner
    check_chown(attr, EVE, None, None)  # nothing to change
    assert errno_of(check_chown, attr, ALICE, 1001, None) == errno.EPERM
    assert errno_of(check_chown, attr, ALICE, None, 77) == errno.EPERM
    assert errno_of(check_chown, attr, BOB, None, 50) == errno.EPERM  # not the owner
    assert errno_of(check_chown, attr, BOB, 1000, None) == errno.EPERM
    assert errno_of(check_chown, file(0o644, flags=FLAG_APPEND), ROOT, 1, None) == errno.EPERM


def test_suid_and_sgid_clearing() -> None:
    suid_gx = file(S_ISUID | S_ISGID | 0o755)
    suid_nogx = file(S_ISUID | S_ISGID | 0o745)
    # A write by a non-root caller kills setuid, and setgid only when group-exec is set.
    assert clear_suid_on_write_or_chown(suid_gx, ALICE) == 0o755
    assert clear_suid_on_write_or_chown(suid_nogx, ALICE) == S_ISGID | 0o745
    assert clear_suid_on_write_or_chown(suid_gx, ROOT) == S_ISUID | S_ISGID | 0o755
    # chown kills setuid even for root; a non-root chown kills setgid too.
    assert clear_suid_on_write_or_chown(suid_nogx, ROOT, chown=True) == S_ISGID | 0o745
    assert clear_suid_on_write_or_chown(suid_nogx, ALICE, chown=True) == 0o745
    assert clear_suid_on_write_or_chown(suid_gx, ROOT, chown=True) == 0o755
    d = file(S_ISGID | 0o775, typ=FileType.DIRECTORY)
    assert clear_suid_on_write_or_chown(d, ALICE, chown=True) == S_ISGID | 0o775


def test_utimens() -> None:
    attr = file(0o664, uid=1000, gid=50)
    check_utimens(attr, ALICE, explicit=True)
    check_utimens(attr, ROOT, explicit=True)
    check_utimens(attr, BOB, explicit=False)  # group write access suffices for "now"
    assert errno_of(check_utimens, attr, BOB, True) == errno.EPERM
    assert errno_of(check_utimens, attr, EVE, False) == errno.EACCES
    assert errno_of(check_utimens, file(0o644, flags=FLAG_IMMUTABLE), ROOT, False) == errno.EPERM
    assert errno_of(check_utimens, file(0o644, flags=FLAG_APPEND), ALICE, True) == errno.EPERM
    check_utimens(file(0o644, flags=FLAG_APPEND), ALICE, explicit=False)

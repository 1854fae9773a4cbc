"""BSD `flock` and POSIX record locks: the tables stored per inode, their rules and their encodings.

A lock holder is an `Owner` = (session id, lock owner). Both tables are plain dicts keyed by owner;
every operation returns a new dict (or None on conflict) and never mutates its input.

Encodings (JuiceFS TKV values, big-endian):

* flock (`F<ino>`): repeated 17-byte entries ``sid u64, owner u64, type byte`` (``R`` or ``W``).
* plock (`P<ino>`): repeated ``sid u64, owner u64, byteLen u32`` followed by byteLen bytes of 24-byte
  records ``type u32, pid u32, start u64, end u64`` (F_RDLCK=0, F_WRLCK=1; `end` inclusive).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from jfs.domain.errors import FSError

Owner = tuple[int, int]
"""(session id, lock owner) of a lock holder."""

FLOCK_READ = "R"
FLOCK_WRITE = "W"

F_RDLCK = 0
F_WRLCK = 1
F_UNLCK = 2

MAX_END = (1 << 64) - 1
"""`end` of a record that extends to end of file (and beyond)."""

_FLOCK = struct.Struct(">QQc")
_PLOCK_HEAD = struct.Struct(">QQI")
_PLOCK = struct.Struct(">IIQQ")

FlockTable = dict[Owner, str]
V = TypeVar("V")


# ---------------------------------------------------------------------------------------------------- flock


def decode_flocks(value: bytes) -> FlockTable:
    """Parse an flock value. Raises ValueError on a truncated entry or an unknown type byte."""
    if len(value) % _FLOCK.size:
        raise ValueError(f"flock value of {len(value)} bytes is not a multiple of {_FLOCK.size}")
    table: FlockTable = {}
    for sid, owner, typ in _FLOCK.iter_unpack(value):
        ltype = typ.decode("latin-1")
        if ltype not in (FLOCK_READ, FLOCK_WRITE):
            raise ValueError(f"unknown flock type {typ!r}")
        table[(sid, owner)] = ltype
    return table


def encode_flocks(table: Mapping[Owner, str]) -> bytes:
    """Encode an flock table, entries sorted by (sid, owner)."""
    out = bytearray()
    for (sid, owner), ltype in sorted(table.items()):
        if ltype not in (FLOCK_READ, FLOCK_WRITE):
            raise ValueError(f"unknown flock type {ltype!r}")
        out += _FLOCK.pack(sid, owner, ltype.encode("latin-1"))
    return bytes(out)


def flock_acquire(table: Mapping[Owner, str], sid: int, owner: int, ltype: str) -> FlockTable | None:
    """The table after `(sid, owner)` takes an flock of type `ltype` ('R' or 'W'), or None on conflict.

    A write lock conflicts with any other holder; a read lock conflicts with another holder's write
    lock. A holder re-locking converts its lock to the new type.
    """
    if ltype not in (FLOCK_READ, FLOCK_WRITE):
        raise FSError(errno.EINVAL, f"flock type {ltype!r}")
    me = (sid, owner)
    for who, held in table.items():
        if who != me and (ltype == FLOCK_WRITE or held == FLOCK_WRITE):
            return None
    out = dict(table)
    out[me] = ltype
    return out


def flock_release(table: Mapping[Owner, str], sid: int, owner: int) -> FlockTable:
    """The table without `(sid, owner)`'s lock (unchanged if it holds none)."""
    return {who: held for who, held in table.items() if who != (sid, owner)}


# ---------------------------------------------------------------------------------------------------- plock


@dataclass(frozen=True, slots=True)
class PlockRecord:
    """One POSIX lock range [start, end] (inclusive) of type F_RDLCK/F_WRLCK held on behalf of `pid`."""

    type: int
    pid: int
    start: int
    end: int

    def overlaps(self, start: int, end: int) -> bool:
        return self.start <= end and start <= self.end


PlockTable = dict[Owner, list[PlockRecord]]


def decode_plocks(value: bytes) -> PlockTable:
    """Parse a plock value. Raises ValueError on truncation or a length that isn't whole records."""
    table: PlockTable = {}
    at = 0
    while at < len(value):
        if len(value) - at < _PLOCK_HEAD.size:
            raise ValueError("truncated plock header")
        sid, owner, nbytes = _PLOCK_HEAD.unpack_from(value, at)
        at += _PLOCK_HEAD.size
        if nbytes % _PLOCK.size or at + nbytes > len(value):
            raise ValueError(f"bad plock record length {nbytes}")
        table[(sid, owner)] = [PlockRecord(*f) for f in _PLOCK.iter_unpack(value[at : at + nbytes])]
        at += nbytes
    return table


def encode_plocks(table: Mapping[Owner, Sequence[PlockRecord]]) -> bytes:
    """Encode a plock table, owners sorted by (sid, owner); owners with no records are left out."""
    out = bytearray()
    for (sid, owner), records in sorted(table.items()):
        if not records:
            continue
        out += _PLOCK_HEAD.pack(sid, owner, len(records) * _PLOCK.size)
        for r in records:
            out += _PLOCK.pack(r.type, r.pid, r.start, r.end)
    return bytes(out)


def _check_range(ltype: int, start: int, end: int) -> None:
    if ltype not in (F_RDLCK, F_WRLCK, F_UNLCK):
        raise FSError(errno.EINVAL, f"lock type {ltype}")
    if not 0 <= start <= end <= MAX_END:
        raise FSError(errno.EINVAL, f"lock range [{start}, {end}]")


def plock_conflict(
    table: Mapping[Owner, Sequence[PlockRecord]], sid: int, owner: int, ltype: int, start: int, end: int
) -> tuple[Owner, PlockRecord] | None:
    """The first lock (owners in (sid, owner) order) of another owner that blocks `ltype` on [start, end].

    Two locks conflict when their ranges overlap and at least one is a write lock; an unlock never
    conflicts. This answers F_GETLK and decides whether F_SETLK must fail.
    """
    _check_range(ltype, start, end)
    if ltype == F_UNLCK:
        return None
    me = (sid, owner)
    for who in sorted(table):
        if who == me:
            continue
        for r in table[who]:
            if r.overlaps(start, end) and (ltype == F_WRLCK or r.type == F_WRLCK):
                return who, r
    return None


def plock_update(
    records: Sequence[PlockRecord], ltype: int, start: int, end: int, pid: int
) -> list[PlockRecord]:
    """One owner's record list after it locks (F_RDLCK/F_WRLCK) or unlocks (F_UNLCK) [start, end].

    `records` is sorted by start and non-overlapping; so is the result. Ranges the request overlaps are
    cut (split in two when it falls in their middle) and the requested range takes the new type and
    `pid`. Ranges of the same type that touch or overlap are merged; a merge that includes the
    requested range carries `pid`. `end == MAX_END` locks to end of file.
    """
    _check_range(ltype, start, end)
    kept: list[PlockRecord] = []
    for r in records:
        if not r.overlaps(start, end):
            kept.append(r)
            continue
        if r.start < start:
            kept.append(PlockRecord(r.type, r.pid, r.start, start - 1))
        if r.end > end:
            kept.append(PlockRecord(r.type, r.pid, end + 1, r.end))
    new = PlockRecord(ltype, pid, start, end) if ltype != F_UNLCK else None
    if new is not None:
        kept.append(new)
    kept.sort(key=lambda r: r.start)
    out: list[PlockRecord] = []
    last_has_new = False  # whether out[-1] includes the requested range
    for r in kept:
        if out and out[-1].type == r.type and out[-1].end + 1 >= r.start:
            last = out[-1]
            last_has_new = last_has_new or r is new
            merged_pid = pid if last_has_new else last.pid
            out[-1] = PlockRecord(last.type, merged_pid, last.start, max(last.end, r.end))
        else:
            out.append(r)
            last_has_new = r is new
    return out


def plock_apply(
    table: Mapping[Owner, Sequence[PlockRecord]],
    sid: int,
    owner: int,
    ltype: int,
    start: int,
    end: int,
    pid: int,
) -> PlockTable | None:
    """The table after `(sid, owner)` sets `ltype` on [start, end], or None when another owner conflicts.

    Owners left without records are removed from the table.
    """
    if plock_conflict(table, sid, owner, ltype, start, end) is not None:
        return None
    out = {who: list(recs) for who, recs in table.items()}
    updated = plock_update(out.get((sid, owner), []), ltype, start, end, pid)
    if updated:
        out[(sid, owner)] = updated
    else:
        out.pop((sid, owner), None)
    return out


# ---------------------------------------------------------------------------------------------------- sessions


def drop_session(table: Mapping[Owner, V], sid: int) -> dict[Owner, V]:
    """The table (flock or plock) without any lock held by session `sid` (stale-session cleanup)."""
    return {who: v for who, v in table.items() if who[0] != sid}


def drop_owner(table: Mapping[Owner, V], sid: int, owner: int) -> dict[Owner, V]:
    """The table without the locks of one holder (e.g. all POSIX locks of a closing file owner)."""
    return {who: v for who, v in table.items() if who != (sid, owner)}

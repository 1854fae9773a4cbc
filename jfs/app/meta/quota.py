"""Directory quota accounting, owned by the metadata engine: the ``QD<ino>`` records (max space, max inodes,
used space, used inodes; a max ≤ 0 means unlimited) with their state suffix, the in-transaction hooks that
charge and check them (`charge`, `move`, `forget`), the exact recount behind a fence (`recount`), and the
record reads and writes the ``jfs quota`` command is built on (`read_quota`, `store_limits`, `all_quotas`,
`delete_quota`; the command itself is `jfs.app.ops.quota_cmd`). ADR 0019 records the scheme.

What is counted: every name below the quota directory (not the directory itself) counts one inode and
`store.space_of` of its inode (a regular file by its length rounded up to 4 KiB, anything else 4 KiB); a
hard-linked file counts once per name (as `link` and `unlink` charge).

Enforcement (`charge`) runs inside the engine's transactions: a change that adds `space` bytes / `inodes`
inodes below directory `start` reads the quota record of `start` and of every ancestor (walking
``attr.parent`` up to the root), fails with EDQUOT when a limit would be exceeded (only for growth), and
writes the updated usage in the same transaction. Hard-linked inodes have parent 0: their writes are not
charged. When no quota exists anywhere (`Meta.has_quotas`) the hooks return at once, without a read.

Rename (`move`, called by the engine's rename inside its transaction) moves the usage of what changed
directory — a file: its space and one inode; a directory: its whole subtree plus itself — from the quotas
on the source parent's chain to those on the destination's. Quotas on both chains (common ancestors) are
left alone, so a rename below one quota, or with no quota on either side, costs no more than reading the
two chains. Growth of a destination quota past its limit fails with EDQUOT, like JuiceFS. The subtree
usage of a moved directory is its own quota record's usage when it has one, else a walk of the subtree
inside the rename transaction, bounded by `MOVE_WALK_LIMIT` entries: a bigger subtree gets EXDEV, so
``mv`` falls back to copy + delete, which is accounted exactly. A rename that replaces a destination
releases the replaced name's usage (and drops its quota record if it was a directory), like unlink/rmdir.

How a mount learns that quotas exist: `Meta.has_quotas` is refreshed by the background loop every
`REFRESH_INTERVAL` seconds (one ``limit=1`` keys-only scan; with a shorter heartbeat, every heartbeat),
and set at once by the quota commands of the client that runs them (`store_limits`, `delete_quota`). So a mount whose loop is running
enforces (and charges) a new quota within about `REFRESH_INTERVAL` seconds plus one transaction
(`PROPAGATION` adds a margin for a busy event loop).

How ``jfs quota set`` (`jfs.app.ops.quota_cmd.set_quota`: `store_limits`, a wait, `recount`) counts the
usage of a new quota exactly while other clients keep writing:

1. one transaction stores the record (limits; for a new record usage 0 and the state UNCOUNTED) — from
   then on every client that knows quotas exist charges its changes to it;
2. for a new record, it waits `PROPAGATION` seconds, so every running mount has refreshed `has_quotas`
   and charges too (a change not charged now would be lost: nobody counts it later);
3. `recount`: one transaction *fences* the record (state FENCED + token + expiry). A transaction that
   would charge a fenced quota — or rename anything between two directories below it — raises
   ConflictError, so the engine retries it with its usual back-off: usage below the directory is frozen
   while the fence stands. Serializability makes the fence exact: a change committed before the fence is
   seen by the walk, a change after it waits for the fence to go. The subtree is then walked one
   directory per (read) transaction, so renames inside one directory (never blocked) cannot make the
   walk miss or repeat an entry, and a last transaction checks the token, *replaces* the usage with the
   walk's result and drops the fence; from then on charges add up on top of it.

Why not the obvious ways: a walk outside any transaction whose result replaces the counts loses (or
counts twice) the changes made during the walk; computing the walk inside the transaction that stores it
is exact, but on optimistic engines (Redis) writers that keep changing the tree make that long
transaction conflict until it gives up; charges from mounts that do not know a quota exists are lost
whatever the walk does, hence step 2.

The fenced walk is bounded by `SET_WALK_LIMIT` entries (writers stall while it runs, up to their retry
budget, and a fence older than `FENCE_TTL` seconds is ignored, so a crashed ``jfs quota set`` blocks
nobody for long). A bigger subtree — or a fence that expired before the walk ended — is recounted
approximately: usage += paged walk − usage read before the walk, which keeps every change charged during
the walk but may count twice a change made during the walk in a directory visited after it. Re-running
``jfs quota set`` (same limits) when the tree is quieter recounts it. Until a new record is counted, the
rename of its directory walks the subtree instead of trusting the record.

Known limits: between steps 1 and 3 a new quota enforces its limits against a partial count; mounts whose
background loop is not running (``--no-bgjob``) only learn about quotas they set themselves; the fence
expiry compares the clocks of different clients; writes to hard-linked files are not charged (their
names were charged when linked); renames of directories too big to count get EXDEV.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, Attr, FileType, align4k, is_trash_inode
from jfs.domain.errors import FSError
from jfs.domain.records import Quota, decode_dentry
from jfs.domain.settings import Settings
from jfs.ports.kv import KV, ConflictError, Tx

if TYPE_CHECKING:
    from jfs.app.meta import Meta

QUOTA_PREFIX = b"QD"
MAX_DEPTH = 4096
REFRESH_INTERVAL = 2.0
"""Seconds between two refreshes of `Meta.has_quotas` in a mount's background loop."""
PROPAGATION = REFRESH_INTERVAL + 1.0
"""Seconds after which every running mount knows about a quota created now."""
MOVE_WALK_LIMIT = 10_000
"""Entries a rename may walk to learn the usage of a moved directory; beyond: EXDEV."""
SET_WALK_LIMIT = 50_000
"""Entries `recount` walks under a fence (writers below wait); beyond: the approximate paged recount."""
FENCE_TTL = 20
"""Seconds after which a recount's fence is ignored (its client died): writers retry meanwhile."""
DIR_SPACE = 4096
UNCOUNTED = b"U"
"""State suffix of a record whose usage is not counted yet (charged, but not trusted for moves)."""
FENCED = b"F"
"""State suffix of a record being recounted: + 8-byte token + 8-byte expiry (unix seconds)."""
_QSIZE = len(Quota().encode())

log = structlog.get_logger("jfs.quota")

QuotaRecords = list[tuple[int, Quota]]
"""(directory inode, record) pairs, in inode key order."""


class _TooBig(Exception):
    """A bounded subtree walk reached its limit."""


async def any_quota(kv: KV) -> bool:
    """Whether some directory quota exists (one short scan)."""

    async def body(tx: Tx) -> bool:
        return bool(await tx.scan(QUOTA_PREFIX, keys.prefix_end(QUOTA_PREFIX), limit=1, keys_only=True))

    return await kv.read(body)


async def refresh_flags(m: Meta) -> None:
    """Refresh `Meta.has_quotas` (some ``QD`` record exists) and `Meta.has_owner_quotas` (some ``QU``/``QG``
    record exists, `owner_quota`) in one read transaction of two short scans."""
    from jfs.app.meta import owner_quota

    async def body(tx: Tx) -> tuple[bool, bool]:
        dirs = await tx.scan(QUOTA_PREFIX, keys.prefix_end(QUOTA_PREFIX), limit=1, keys_only=True)
        return bool(dirs), await owner_quota.any_owner_quota(tx)

    m.has_quotas, m.has_owner_quotas = await m.kv.read(body)


def _state(raw: bytes) -> bytes:
    """The state suffix of a raw record: b"" (counted), `UNCOUNTED`, or `FENCED` + token + expiry."""
    return raw[_QSIZE:]


def _fenced(tail: bytes, now: float | None = None) -> bool:
    """Whether a record's state is a fence that has not expired."""
    if not tail.startswith(FENCED) or len(tail) < 17:
        return False
    expiry = int.from_bytes(tail[9:17], "little")
    return (time.time() if now is None else now) < expiry


async def _chain(tx: Tx, start: int) -> list[tuple[int, Quota, bytes]]:
    """The quotas of directory `start` and of its ancestors, nearest first, with their state suffixes
    (one read round per level). ConflictError — the engine retries the transaction after a back-off —
    while one of them is fenced by a recount."""
    out: list[tuple[int, Quota, bytes]] = []
    d, steps = start, 0
    while d and not is_trash_inode(d) and steps < MAX_DEPTH:
        steps += 1
        if d == ROOT_INODE:
            raw = await tx.get(keys.dir_quota(d))
            raw_attr = None
        else:
            raw, raw_attr = await tx.get_many([keys.dir_quota(d), keys.attr(d)])
        if raw is not None:
            tail = _state(raw)
            if _fenced(tail):
                raise ConflictError(f"the quota of inode {d} is being recounted")
            out.append((d, Quota.decode(raw), UNCOUNTED if tail.startswith(FENCED) else tail))
        if raw_attr is None:
            break
        d = Attr.decode(raw_attr).parent
    return out


def apply_usage(q: Quota, space: int, inodes: int) -> None:
    """Add usage to `q`; EDQUOT when growth would exceed one of its limits."""
    if space > 0 and q.max_space > 0 and q.used_space + space > q.max_space:
        raise FSError(errno.EDQUOT)
    if inodes > 0 and q.max_inodes > 0 and q.used_inodes + inodes > q.max_inodes:
        raise FSError(errno.EDQUOT)
    q.used_space += space
    q.used_inodes += inodes


async def charge(m: Meta, tx: Tx, start: int, space: int, inodes: int) -> None:
    """QUOTA HOOK (called by the engine inside its transactions): account `space`/`inodes` added below
    directory `start` to every quota on the way to the root; EDQUOT when growth would exceed one."""
    if not m.has_quotas or (not space and not inodes):
        return
    for d, q, tail in await _chain(tx, start):
        apply_usage(q, space, inodes)
        tx.put(keys.dir_quota(d), q.encode() + tail)


async def move(m: Meta, tx: Tx, moves: Sequence[tuple[int, Attr, int, int]]) -> None:
    """QUOTA HOOK (rename, inside its transaction): each `(ino, attr, from_dir, to_dir)` names an inode
    whose name moved from directory `from_dir` to `to_dir`: move its usage (a directory: with its whole
    subtree) from the quotas only above `from_dir` to those only above `to_dir`. EDQUOT when a destination
    quota would exceed a limit; EXDEV when a moved directory is too big to be counted here."""
    if not m.has_quotas:
        return
    moves = [mv for mv in moves if mv[2] != mv[3]]
    if not moves:
        return
    chains: dict[int, list[tuple[int, Quota, bytes]]] = {}
    records: dict[int, tuple[Quota, bytes]] = {}
    for _, _, src, dst in moves:
        for d in (src, dst):
            if d not in chains:
                chains[d] = await _chain(tx, d)  # even for quotas on both sides: waits out a recount
                records.update((q_ino, (q, tail)) for q_ino, q, tail in chains[d])
    deltas: dict[int, list[int]] = {}
    for ino, attr, src, dst in moves:
        src_q = {d for d, _, _ in chains[src]}
        dst_q = {d for d, _, _ in chains[dst]}
        if src_q == dst_q:
            continue
        space, inodes = await _entry_usage(tx, ino, attr)
        for d, sign in [(d, -1) for d in src_q - dst_q] + [(d, 1) for d in dst_q - src_q]:
            acc = deltas.setdefault(d, [0, 0])
            acc[0] += sign * space
            acc[1] += sign * inodes
    for d, (space, inodes) in deltas.items():
        q, tail = records[d]
        apply_usage(q, space, inodes)
        tx.put(keys.dir_quota(d), q.encode() + tail)


async def _entry_usage(tx: Tx, ino: int, attr: Attr) -> tuple[int, int]:
    """Usage a name of `ino` stands for: the inode itself plus, for a directory, its whole subtree."""
    if attr.typ is not FileType.DIRECTORY:
        return align4k(attr.length if attr.typ is FileType.REGULAR else 0), 1
    raw = await tx.get(keys.dir_quota(ino))
    if raw is not None and not _state(raw):  # a record still being counted is not trusted: walk
        q = Quota.decode(raw)
        return q.used_space + DIR_SPACE, q.used_inodes + 1
    try:
        space, inodes = await tree_usage(tx, ino, MOVE_WALK_LIMIT)
    except _TooBig:
        raise FSError(errno.EXDEV, "directory too big to move between quotas in one step") from None
    return space + DIR_SPACE, inodes + 1


async def tree_usage(tx: Tx, ino: int, limit: int) -> tuple[int, int]:
    """(space, inodes) used below directory `ino` (not counting itself), read inside transaction `tx`;
    `_TooBig` after `limit` entries."""
    space = inodes = seen = 0
    stack = [ino]
    while stack:
        sp, n, entries, subdirs = await _dir_usage(tx, stack.pop(), limit - seen)
        space, inodes, seen = space + sp, inodes + n, seen + entries
        stack.extend(subdirs)
    return space, inodes


async def walk_usage(kv: KV, ino: int) -> tuple[int, int]:
    """(space, inodes) used below directory `ino` (not counting itself), one directory per read
    transaction, unbounded: exact only while nobody changes the tree (`load` uses it on the engine it is
    filling; the approximate recount corrects for the changes charged meanwhile)."""
    space = inodes = 0
    stack = [ino]
    while stack:

        async def one_dir(tx: Tx, d: int = stack.pop()) -> tuple[int, int, int, list[int]]:
            return await _dir_usage(tx, d, 1 << 40)

        sp, n, _, subdirs = await kv.read(one_dir)
        space, inodes = space + sp, inodes + n
        stack.extend(subdirs)
    return space, inodes


async def _dir_usage(tx: Tx, d: int, limit: int) -> tuple[int, int, int, list[int]]:
    """(space, inodes, entries, subdirectories) of the entries of directory `d`; `_TooBig` beyond `limit`
    entries."""
    prefix = keys.dentry_prefix(d)
    rows = await tx.scan(prefix, keys.prefix_end(prefix), limit=max(0, limit) + 1)
    if len(rows) > limit:
        raise _TooBig
    space = inodes = 0
    files: list[int] = []
    subdirs: list[int] = []
    for _key, value in rows:
        typ, child = decode_dentry(value)
        inodes += 1
        if typ is FileType.REGULAR:
            files.append(child)
            continue
        space += DIR_SPACE  # directories, symlinks, devices: 4 KiB
        if typ is FileType.DIRECTORY:
            subdirs.append(child)
    if files:
        for raw in await tx.get_many([keys.attr(f) for f in files]):
            if raw is None:  # a dangling entry: not counted (as `jfs summary` skips it)
                inodes -= 1
            else:
                space += align4k(Attr.decode(raw).length)
    return space, inodes, len(rows), subdirs


def forget(m: Meta, tx: Tx, ino: int) -> None:
    """QUOTA HOOK: directory `ino` is being deleted: drop its quota record too."""
    if m.has_quotas:
        tx.delete(keys.dir_quota(ino))


# ---------------------------------------------------------------------------------------------------
# Records for the ``jfs quota`` command (one transaction each)


async def read_quota(kv: KV, ino: int) -> Quota | None:
    """The quota record of directory `ino` (its usage as last charged or counted), or None."""
    raw = await kv.read(lambda tx: tx.get(keys.dir_quota(ino)))
    return Quota.decode(raw) if raw is not None else None


async def _enable_dir_stats(tx: Tx) -> None:
    """Turn the setting's ``DirStats`` on, as JuiceFS's ``quota set`` does: JuiceFS clients neither charge
    nor enforce directory quotas on a volume without it (issue 16). jfs keeps no ``U<ino>`` statistics
    itself and drops them where it changes a directory (`store._stale_dir_stat`), so JuiceFS recomputes
    them; the flag changes nothing for jfs."""
    raw = await tx.get(keys.SETTING)
    if raw is None:
        return
    settings = Settings.from_json(raw)
    if not settings.dir_stats:
        settings.dir_stats = True
        tx.put(keys.SETTING, settings.to_json())


async def store_limits(m: Meta, ino: int, *, capacity: int | None, inodes: int | None) -> bool:
    """Create or change the limits of the quota of directory `ino` (None keeps a limit, ≤ 0 = unlimited);
    a new record starts with usage 0, UNCOUNTED. Sets `m.has_quotas` (this client charges at once).
    Returns whether the record is new (the caller then waits `PROPAGATION` before `recount`)."""
    m.has_quotas = True

    async def body(tx: Tx) -> bool:
        await _enable_dir_stats(tx)
        raw = await tx.get(keys.dir_quota(ino))
        q = Quota.decode(raw) if raw is not None else Quota()
        if capacity is not None:
            q.max_space = capacity if capacity > 0 else -1
        if inodes is not None:
            q.max_inodes = inodes if inodes > 0 else -1
        tx.put(keys.dir_quota(ino), q.encode() + (_state(raw) if raw is not None else UNCOUNTED))
        return raw is None

    return await m.kv.txn(body)


async def all_quotas(kv: KV) -> QuotaRecords:
    """Every quota record of the volume: (directory inode, record). A malformed record (a key or value
    of the wrong size) is skipped with a warning."""

    async def body(tx: Tx) -> list[tuple[bytes, bytes]]:
        return await tx.scan(QUOTA_PREFIX, keys.prefix_end(QUOTA_PREFIX))

    out: QuotaRecords = []
    for key, value in await kv.read(body):
        if len(key) != len(QUOTA_PREFIX) + 8 or len(value) < _QSIZE:
            log.warning("quota_record_skipped", key=key.hex(), size=len(value))
            continue
        out.append((keys.ino_from_le(key, len(QUOTA_PREFIX)), Quota.decode(value)))
    return out


async def delete_quota(m: Meta, ino: int) -> None:
    """Remove the quota of directory `ino` (no error when there is none); refreshes `m.has_quotas`."""

    async def body(tx: Tx) -> None:
        tx.delete(keys.dir_quota(ino))

    await m.kv.txn(body)
    m.has_quotas = await any_quota(m.kv)


# ---------------------------------------------------------------------------------------------------
# Recount (the fence; see the module docstring and ADR 0019)


async def recount(m: Meta, ino: int) -> Quota:
    """Recount the usage of the quota of directory `ino` (which every client already charges): exactly
    under a fence when the subtree has at most `SET_WALK_LIMIT` entries, else approximately. FSError
    ENOENT when the record goes away meanwhile, EBUSY while another client's fence stands."""
    try:
        return await _recount_fenced(m, ino)
    except _TooBig:
        log.warning("quota_recount_approximate", inode=ino)
    return await _recount_paged(m, ino)


async def _recount_fenced(m: Meta, ino: int) -> Quota:
    token = os.urandom(8)
    key = keys.dir_quota(ino)

    async def fence(tx: Tx) -> None:
        raw = await tx.get(key)
        if raw is None:
            raise FSError(errno.ENOENT, "the quota was removed meanwhile")
        if _fenced(_state(raw)):
            raise FSError(errno.EBUSY, "another client is recounting this quota")
        expiry = int(time.time()) + FENCE_TTL
        tx.put(key, raw[:_QSIZE] + FENCED + token + expiry.to_bytes(8, "little"))

    async def unfence(tx: Tx) -> None:
        raw = await tx.get(key)
        if raw is not None and _state(raw)[1:9] == token:
            tx.put(key, raw[:_QSIZE] + UNCOUNTED)

    await m.kv.txn(fence)
    try:
        space = count = seen = 0
        stack = [ino]
        while stack:
            d, left = stack.pop(), SET_WALK_LIMIT - seen

            async def one_dir(tx: Tx, d: int = d, left: int = left) -> tuple[int, int, int, list[int]]:
                return await _dir_usage(tx, d, left)

            sp, n, entries, subdirs = await m.kv.read(one_dir)
            space, count, seen = space + sp, count + n, seen + entries
            stack.extend(subdirs)

        async def store(tx: Tx) -> Quota:
            raw = await tx.get(key)
            if raw is None:
                raise FSError(errno.ENOENT, "the quota was removed meanwhile")
            if _state(raw)[1:9] != token:  # the fence expired and writers went on: count again, paged
                raise _TooBig
            q = Quota.decode(raw)
            q.used_space, q.used_inodes = space, count
            tx.put(key, q.encode())
            return q

        return await m.kv.txn(store)
    except BaseException:
        await m.kv.txn(unfence)
        raise


async def _recount_paged(m: Meta, ino: int) -> Quota:
    """The approximate recount: usage += paged walk − usage read before the walk."""
    key = keys.dir_quota(ino)

    async def read_record(tx: Tx) -> bytes | None:
        return await tx.get(key)

    raw0 = await m.kv.read(read_record)
    if raw0 is None:
        raise FSError(errno.ENOENT, "the quota was removed meanwhile")
    before = Quota.decode(raw0)
    space, count = await walk_usage(m.kv, ino)

    async def reconcile(tx: Tx) -> Quota:
        raw = await tx.get(key)
        if raw is None:
            raise FSError(errno.ENOENT, "the quota was removed meanwhile")
        q = Quota.decode(raw)
        q.used_space += space - before.used_space
        q.used_inodes += count - before.used_inodes
        tx.put(key, q.encode())
        return q

    return await m.kv.txn(reconcile)

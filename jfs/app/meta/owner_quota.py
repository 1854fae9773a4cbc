"""User and group quotas (JuiceFS 1.3+, format flag ``UserGroupQuota``), owned by the metadata engine: the
``QU<uid>`` / ``QG<gid>`` records (uid/gid as u64 BE; value: the 32-byte `Quota` — max space, max inodes,
used space, used inodes; a max ≤ 0 is unlimited), the in-transaction hooks that charge them, the scan that
recounts them, and the record reads and writes the ``jfs quota --uid/--gid`` command is built on (the
command is `jfs.app.ops.quota_cmd`). ADR 0026 records the scheme; directory quotas are `quota`.

What is counted, per owner, exactly as JuiceFS 1.4.2's scan (``juicefs quota check --uid``) counts: every
inode reachable from the root — and from the trash while the trash is on — once (a hard-linked file once,
whatever its names), a regular file as its length rounded up to 4 KiB (0 counts 4 KiB), a directory as
4 KiB; the root and the trash root are not counted, and **symlinks, FIFOs, sockets and devices count
nothing** (JuiceFS's clients charge them 4 KiB and one inode at create, then its own check disagrees; jfs
charges what the check counts, so ``jfs quota check`` and ``juicefs quota check`` both find jfs's usage
right). A file moved to the trash keeps its charge until the trash lets it go; a trash hour directory is
charged to its owner (root) like any directory.

Charging (`charge`, `charge_inode`, `release_inode`, `chown`) runs inside the operation's own transaction,
as directory quotas do (ADR 0019): the records of the inode's uid and gid are read, growth past a limit
fails with EDQUOT, and the new usage is written in the same transaction — serializability keeps every
owner's usage exact across clients. A missing record is created (unlimited, usage = the growth) on growth
and left missing on release: the scan that turns the feature on gave every owner that had anything a record,
so a missing one had no usage. When no ``QU``/``QG`` record exists (`Meta.has_owner_quotas`, refreshed with
`Meta.has_quotas` by `quota.refresh_flags`) the hooks return at once without a read.

Counting (`scan_usage`, `reconcile`): the volume is walked one directory per read transaction; `reconcile`
then adds, per owner, *scan − usage read before the scan* to each record (ADR 0019's approximate recount),
which keeps every change charged while the walk ran and is exact on a quiet volume. It runs when the feature
is first turned on (``jfs quota set --uid/--gid``, after `quota.PROPAGATION`), by ``jfs quota check
--repair`` and after ``jfs load``.

Errors: FSError EDQUOT from the hooks; FSError ENOENT from `read_record` callers for a missing record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from jfs.app.meta.quota import apply_usage
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, Attr, FileType, align4k
from jfs.domain.records import Quota, decode_dentry
from jfs.domain.settings import Settings
from jfs.ports.kv import KV, Tx

if TYPE_CHECKING:
    from jfs.app.meta import Meta

USER = "user"
GROUP = "group"
KINDS = (USER, GROUP)
FLAG = "UserGroupQuota"
"""The format field that says the volume keeps user and group usage (JuiceFS's ``Format.UserGroupQuota``)."""
DIR_SPACE = 4096
WRITE_BATCH = 100
"""Records written per transaction by `reconcile` (under etcd's default 128 operations per transaction)."""
_PREFIX = {USER: keys.USER_QUOTA_PREFIX, GROUP: keys.GROUP_QUOTA_PREFIX}
_QSIZE = len(Quota().encode())

Usage = dict[int, list[int]]
"""uid or gid -> [space, inodes]."""


def record_key(kind: str, ident: int) -> bytes:
    """The key of the quota record of user or group `ident` (`kind` is `USER` or `GROUP`)."""
    return keys.user_quota(ident) if kind == USER else keys.group_quota(ident)


def counted(attr: Attr) -> tuple[int, int]:
    """(space, inodes) an inode counts for its owner: see the module docstring."""
    if attr.typ is FileType.REGULAR:
        return align4k(attr.length), 1
    if attr.typ is FileType.DIRECTORY:
        return DIR_SPACE, 1
    return 0, 0


def enabled(settings: Settings) -> bool:
    """Whether the volume's format has ``UserGroupQuota`` on."""
    return bool(settings.extra.get(FLAG, False))


async def any_owner_quota(tx: Tx) -> bool:
    """Whether some ``QU``/``QG`` record exists (one short keys-only scan)."""
    end = keys.prefix_end(keys.USER_QUOTA_PREFIX)
    return bool(await tx.scan(keys.GROUP_QUOTA_PREFIX, end, limit=1, keys_only=True))


# ---------------------------------------------------------------------------------------------------
# Hooks (inside the engine's transactions)


async def _add(tx: Tx, deltas: dict[bytes, tuple[int, int]], *, create: bool = True) -> None:
    """Add (space, inodes) to each record; EDQUOT when growth would pass a limit. A missing record is
    created on growth when `create`, else left alone."""
    wanted = [(k, d) for k, d in deltas.items() if d != (0, 0)]
    if not wanted:
        return
    raws = await tx.get_many([k for k, _ in wanted])
    for (key, (space, inodes)), raw in zip(wanted, raws, strict=True):
        if raw is None or len(raw) < _QSIZE:
            if not create or (space <= 0 and inodes <= 0):
                continue
            q, tail = Quota(), b""
        else:
            q, tail = Quota.decode(raw), raw[_QSIZE:]
        apply_usage(q, space, inodes)
        tx.put(key, q.encode() + tail)


def _owner_deltas(uid: int, gid: int, space: int, inodes: int) -> dict[bytes, tuple[int, int]]:
    return {keys.user_quota(uid): (space, inodes), keys.group_quota(gid): (space, inodes)}


async def charge(m: Meta, tx: Tx, attr: Attr, space: int, inodes: int) -> None:
    """QUOTA HOOK: `space`/`inodes` were added to (negative: removed from) inode `attr` — a length change
    of a regular file; EDQUOT when its owner's or group's limit would be passed."""
    if not m.has_owner_quotas or attr.typ is not FileType.REGULAR or (not space and not inodes):
        return
    await _add(tx, _owner_deltas(attr.uid, attr.gid, space, inodes))


async def charge_inode(m: Meta, tx: Tx, attr: Attr) -> None:
    """QUOTA HOOK: inode `attr` was created (mknod, mkdir, create, symlink); EDQUOT over a limit."""
    if m.has_owner_quotas:
        space, inodes = counted(attr)
        await _add(tx, _owner_deltas(attr.uid, attr.gid, space, inodes))


async def release_inode(m: Meta | None, tx: Tx, attr: Attr) -> None:
    """QUOTA HOOK: inode `attr` is deleted (its last name gone, not kept by the trash)."""
    if m is not None and m.has_owner_quotas:
        space, inodes = counted(attr)
        await _add(tx, _owner_deltas(attr.uid, attr.gid, -space, -inodes))


async def chown(m: Meta, tx: Tx, attr: Attr, uid: int, gid: int) -> None:
    """QUOTA HOOK (setattr, before `attr` takes its new owner): move the inode's usage from its uid/gid to
    `uid`/`gid`; EDQUOT when the new owner's or group's limit would be passed (as Linux's chown)."""
    if not m.has_owner_quotas or (uid, gid) == (attr.uid, attr.gid):
        return
    space, inodes = counted(attr)
    deltas: dict[bytes, tuple[int, int]] = {}
    if uid != attr.uid:
        deltas[keys.user_quota(attr.uid)] = (-space, -inodes)
        deltas[keys.user_quota(uid)] = (space, inodes)
    if gid != attr.gid:
        deltas[keys.group_quota(attr.gid)] = (-space, -inodes)
        deltas[keys.group_quota(gid)] = (space, inodes)
    await _add(tx, deltas)


async def charge_recorded(tx: Tx, attr: Attr, sign: int) -> None:
    """QUOTA HOOK for the trash's hour directories (created and purged without the engine at hand):
    charge (`sign` 1) or release (-1) one directory to its owner's existing records only (two reads,
    once per hour)."""
    space, inodes = counted(attr)
    await _add(tx, _owner_deltas(attr.uid, attr.gid, sign * space, sign * inodes), create=False)


# ---------------------------------------------------------------------------------------------------
# Records for the ``jfs quota --uid/--gid`` command


async def read_record(kv: KV, kind: str, ident: int) -> Quota | None:
    """The quota record of user or group `ident`, or None."""
    raw = await kv.read(lambda tx: tx.get(record_key(kind, ident)))
    return Quota.decode(raw) if raw is not None and len(raw) >= _QSIZE else None


async def all_records(kv: KV) -> dict[str, dict[int, Quota]]:
    """Every user and group record: {USER: {uid: Quota}, GROUP: {gid: Quota}} (malformed ones skipped)."""

    async def body(tx: Tx) -> dict[str, list[tuple[bytes, bytes]]]:
        return {kind: await tx.scan(p, keys.prefix_end(p)) for kind, p in _PREFIX.items()}

    out: dict[str, dict[int, Quota]] = {USER: {}, GROUP: {}}
    for kind, rows in (await kv.read(body)).items():
        for key, value in rows:
            if len(key) == 10 and len(value) >= _QSIZE:
                out[kind][keys.parse_owner_quota(key)] = Quota.decode(value)
    return out


async def store_limits(m: Meta, kind: str, ident: int, *, capacity: int | None, inodes: int | None) -> bool:
    """Set the limits of user or group `ident` (None keeps a limit, ≤ 0 = unlimited; a new record starts
    with usage 0) and turn ``UserGroupQuota`` on. Returns whether the feature was off until now (the caller
    then waits `quota.PROPAGATION` and counts every owner with `reconcile`)."""
    m.has_owner_quotas = True
    key = record_key(kind, ident)

    async def body(tx: Tx) -> bool:
        raw_setting, raw = await tx.get_many([keys.SETTING, key])
        first = False
        if raw_setting is not None:
            settings = Settings.from_json(raw_setting)
            if not enabled(settings):
                settings.extra[FLAG] = True
                tx.put(keys.SETTING, settings.to_json())
                first = True
        q = Quota.decode(raw) if raw is not None and len(raw) >= _QSIZE else Quota()
        if capacity is not None:
            q.max_space = capacity if capacity > 0 else -1
        if inodes is not None:
            q.max_inodes = inodes if inodes > 0 else -1
        tx.put(key, q.encode())
        return first

    return await m.kv.txn(body)


async def clear_limits(m: Meta, kind: str, ident: int) -> Quota | None:
    """Remove the limits of user or group `ident` and keep its usage (JuiceFS does the same: the record
    goes on being charged); returns the record as it was, None when there is none."""
    key = record_key(kind, ident)

    async def body(tx: Tx) -> Quota | None:
        raw = await tx.get(key)
        if raw is None or len(raw) < _QSIZE:
            return None
        q = Quota.decode(raw)
        tx.put(key, Quota(-1, -1, q.used_space, q.used_inodes).encode())
        return q

    return await m.kv.txn(body)


# ---------------------------------------------------------------------------------------------------
# Scan and reconcile


@dataclass
class Scan:
    """Usage per owner as the scan counts it (see the module docstring)."""

    users: Usage = field(default_factory=dict)
    groups: Usage = field(default_factory=dict)

    def of(self, kind: str) -> Usage:
        return self.users if kind == USER else self.groups


async def scan_usage(kv: KV, *, trash: bool) -> Scan:
    """Walk the volume from the root (and from the trash root when `trash`), one directory per read
    transaction, and count every owner's usage. Exact while nobody changes the tree."""
    out = Scan()
    seen_links: set[int] = set()
    visited: set[int] = set()
    queue = [ROOT_INODE]
    if trash:
        queue.append(TRASH_INODE)

    async def one_dir(tx: Tx, d: int) -> list[tuple[int, bytes | None]]:
        prefix = keys.dentry_prefix(d)
        rows = await tx.scan(prefix, keys.prefix_end(prefix))
        inos = [decode_dentry(v)[1] for _, v in rows]
        attrs = await tx.get_many([keys.attr(i) for i in inos]) if inos else []
        return list(zip(inos, attrs, strict=True))

    while queue:
        d = queue.pop()
        if d in visited:
            continue
        visited.add(d)
        for ino, raw in await kv.read(partial(one_dir, d=d)):
            if raw is None:  # a dangling entry (JuiceFS's readdir skips it too)
                continue
            attr = Attr.decode(raw)
            user = out.users.setdefault(attr.uid, [0, 0])
            group = out.groups.setdefault(attr.gid, [0, 0])
            if attr.typ is FileType.REGULAR and attr.nlink > 1:
                if ino in seen_links:
                    continue
                seen_links.add(ino)
            space, inodes = counted(attr)
            for acc in (user, group):
                acc[0] += space
                acc[1] += inodes
            if attr.typ is FileType.DIRECTORY:
                queue.append(ino)
    return out


async def scan_volume(m: Meta) -> Scan:
    """`scan_usage` of the volume of `m`, the trash included while the trash is on (as JuiceFS's check)."""
    trash = (
        m.settings.trash_days > 0 and await m.kv.read(lambda tx: tx.get(keys.attr(TRASH_INODE))) is not None
    )
    return await scan_usage(m.kv, trash=trash)


@dataclass
class Mismatch:
    """One owner whose record disagrees with the scan (`record` None: no record at all)."""

    kind: str
    ident: int
    record: Quota | None
    space: int
    inodes: int


def compare(records: dict[str, dict[int, Quota]], scan: Scan) -> list[Mismatch]:
    """The owners whose usage differs from the scan — as ``juicefs quota check`` judges it: an owner the
    scan saw (even with nothing counted) needs a record; a record the scan did not see needs usage 0."""
    out: list[Mismatch] = []
    for kind in KINDS:
        recs, usage = records[kind], scan.of(kind)
        for ident in sorted(set(recs) | set(usage)):
            q = recs.get(ident)
            space, inodes = usage.get(ident, (0, 0))
            if q is None or (q.used_space, q.used_inodes) != (space, inodes):
                if q is None and ident not in usage:
                    continue
                out.append(Mismatch(kind, ident, q, space, inodes))
    return out


async def reconcile(m: Meta, before: dict[str, dict[int, Quota]], scan: Scan) -> None:
    """Bring every record to the scan: add *scan − usage in `before`* (records read before the scan) to
    each, so changes charged while the walk ran are kept; owners the scan saw without a record get one
    (unlimited). `WRITE_BATCH` records per transaction."""
    items: list[tuple[bytes, int, int]] = []
    for kind in KINDS:
        usage, old = scan.of(kind), before[kind]
        for ident in sorted(set(usage) | set(old)):
            space, inodes = usage.get(ident, (0, 0))
            q0 = old.get(ident)
            items.append((record_key(kind, ident), space - (q0.used_space if q0 else 0),
                          inodes - (q0.used_inodes if q0 else 0)))  # fmt: skip

    for i in range(0, len(items), WRITE_BATCH):
        batch = items[i : i + WRITE_BATCH]

        async def body(tx: Tx, batch: Iterable[tuple[bytes, int, int]] = batch) -> None:
            rows = list(batch)
            raws = await tx.get_many([k for k, _, _ in rows])
            for (key, space, inodes), raw in zip(rows, raws, strict=True):
                q = Quota.decode(raw) if raw is not None and len(raw) >= _QSIZE else Quota()
                q.used_space += space
                q.used_inodes += inodes
                tx.put(key, q.encode())

        await m.kv.txn(body)
    m.has_owner_quotas = bool(items) or m.has_owner_quotas


async def store_counted(kv: KV, scan: Scan, limits: dict[str, dict[int, tuple[int, int]]]) -> int:
    """Write the records of a freshly loaded volume (nobody else uses it): one per owner the scan saw
    (unlimited unless `limits` says otherwise) and one per owner of `limits` (usage 0 when the scan did not
    see it), `WRITE_BATCH` per transaction. Returns how many were written."""
    rows: list[tuple[bytes, Quota]] = []
    for kind in KINDS:
        usage, lim = scan.of(kind), limits.get(kind, {})
        for ident in sorted(set(usage) | set(lim)):
            space, inodes = usage.get(ident, (0, 0))
            max_space, max_inodes = lim.get(ident, (-1, -1))
            rows.append((record_key(kind, ident), Quota(max_space, max_inodes, space, inodes)))
    for i in range(0, len(rows), WRITE_BATCH):

        async def body(tx: Tx, batch: list[tuple[bytes, Quota]] = rows[i : i + WRITE_BATCH]) -> None:
            for key, q in batch:
                tx.put(key, q.encode())

        await kv.txn(body)
    return len(rows)

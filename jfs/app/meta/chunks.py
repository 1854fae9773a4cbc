"""File contents in metadata: slices committed into chunks, truncate, fallocate, copy_file_range, and the
reference counting that decides when a slice's blocks may be deleted.

A slice is referenced once by every raw record that names it. The ``K`` record stores references − 1
(absent = exactly one); when a release drives it below zero the slice is *freed*: the record stays at −1
(pending delete) until the data path has deleted its blocks and calls `forget_slices`.

Block checksums (opt-in, ADR 0008): the record of a slice's block checksums is written in the transaction
that commits the slice (`write_slice`, `compact_swap`) and deleted in the one that leaves it unreferenced
(`release`).
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import TYPE_CHECKING

from jfs.app.meta import owner_quota, quota, store
from jfs.app.meta.context import Ctx
from jfs.app.meta.rules import check_perm, now_ns
from jfs.domain import keys
from jfs.domain.attrs import Attr, FileType, align4k, is_trash_inode
from jfs.domain.chunks import CHUNK_SIZE, split_range
from jfs.domain.compaction import CompactionPlan, StalePlanError
from jfs.domain.compaction import apply as apply_plan
from jfs.domain.errors import FSError
from jfs.domain.permissions import MAY_WRITE
from jfs.domain.records import NewSlice, SliceRecord, decode_i64, decode_slices, encode_i64, encode_slices
from jfs.domain.slices import read_pieces
from jfs.ports.kv import Tx

if TYPE_CHECKING:
    from jfs.app.meta.engine import Meta

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_NO_HIDE_STALE = 0x04
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20
FALLOC_FL_UNSHARE_RANGE = 0x40
MAX_FILE_SIZE = CHUNK_SIZE << 31

Freed = list[tuple[int, int]]


def _writable_file(m: Meta, ino: int, attr: Attr) -> None:
    """EISDIR, EPERM (not a regular file, immutable, in the trash and not held open from before its deletion)."""
    if attr.typ is FileType.DIRECTORY:
        raise FSError(errno.EISDIR)
    if attr.typ is not FileType.REGULAR:
        raise FSError(errno.EPERM, f"inode {ino} is not a regular file")
    if is_trash_inode(attr.parent) and not m.holds(ino):
        raise FSError(errno.EPERM, "files in the trash are read-only")
    if attr.flags & 0x01:
        raise FSError(errno.EPERM, "file is immutable")


async def _adjust_refs(tx: Tx, slices: list[tuple[int, int]], step: int) -> Freed:
    """Add `step` (±1) to the reference record of every (id, size) occurrence, reading all the records in
    one round (`get_many`: one round trip on Redis, however many slices a truncate or compaction drops);
    returns, for a release, each occurrence that drove its slice below zero references."""
    order: dict[bytes, tuple[int, int, int]] = {}  # key -> (id, size, occurrences)
    for sid, size in slices:
        if sid:
            key = keys.slice_ref(sid, size)
            n = order[key][2] if key in order else 0
            order[key] = (sid, size, n + 1)
    if not order:
        return []
    freed: Freed = []
    raws = await tx.get_many(list(order))
    for (key, (sid, size, n)), raw in zip(order.items(), raws, strict=True):
        value = decode_i64(raw)
        for _ in range(n):  # one occurrence at a time, exactly as n separate incr_by calls would
            value += step
            if value < 0:
                freed.append((sid, size))
        if value == 0:
            tx.delete(key)
        else:
            tx.put(key, encode_i64(value))
        if value < 0:
            tx.delete(keys.block_sums(sid))  # nothing may read the slice any more (ADR 0008)
    return freed


async def release(tx: Tx, slices: list[tuple[int, int]]) -> Freed:
    """Drop one reference per (id, size) occurrence; returns the slices that became unreferenced."""
    return await _adjust_refs(tx, slices, -1)


async def add_refs(tx: Tx, slices: list[tuple[int, int]]) -> None:
    await _adjust_refs(tx, slices, 1)


def _record_slices(records: list[SliceRecord]) -> list[tuple[int, int]]:
    return [(r.id, r.size) for r in records if r.id]


async def write_slice(
    m: Meta, ino: int, indx: int, pos: int, slice_id: int, size: int, off: int, length: int, mtime_ns: int = 0,
    sums: bytes | None = None,
) -> tuple[Attr, int]:
    """Append one slice record to chunk `indx` of `ino` and grow the file; returns (attr, records in chunk).

    `sums` is the slice's block-checksum record (domain/checksums.py), stored in the same transaction.
    The caller guarantees the slice's blocks are durable. Errors: ENOENT, EPERM (not a regular file, trash,
    immutable), EFBIG, ENOSPC (capacity). One `NewSlice` committed by `write_slices`.
    """
    return await write_slices(m, ino, indx, [NewSlice(pos, slice_id, size, off, length, mtime_ns, sums)])


async def write_slices(m: Meta, ino: int, indx: int, slices: Sequence[NewSlice]) -> tuple[Attr, int]:
    """Append the records of `slices`, in order, to chunk `indx` of `ino` in one transaction and grow the
    file to the furthest end; returns (attr, records in the chunk after them).

    The same as committing them one by one with nothing else in between (ADR 0102): the records land
    contiguous and in order, the file's mtime is the last slice's (or now), each slice's `sums` is stored
    with it. All or none: an error leaves the chunk as it was. Errors: EINVAL (none, or an empty one),
    ENOENT, EPERM (not a regular file, trash, immutable), EFBIG, ENOSPC (capacity).

    On an engine whose transactions offer `AppendingTx` (Redis) the records are appended, checked by the
    chunk's length, and a commit after this client's last one assumes the attributes and that length
    instead of reading them (ADR 0055): constant cost however many records the chunk holds. That is as
    safe as validating the whole chunk: every other change of a chunk record either changes its length
    (appends: slices, holes) together with the file's attributes (truncate, fallocate, copy_file_range,
    another writer's commit — all validated by value), or rewrites it into an equivalent one (compaction).
    """
    if not slices or any(s.length <= 0 for s in slices):
        raise FSError(errno.EINVAL, "empty slice")
    end = 0
    for s in slices:
        if s.pos + s.length > CHUNK_SIZE:
            raise FSError(errno.EFBIG)
        end = max(end, indx * CHUNK_SIZE + s.pos + s.length)
    if end > MAX_FILE_SIZE:
        raise FSError(errno.EFBIG)
    encoded = b"".join(SliceRecord(s.pos, s.slice_id, s.size, s.off, s.length).encode() for s in slices)
    mtime_ns = slices[-1].mtime_ns
    now = now_ns()
    akey, ckey = keys.attr(ino), keys.chunk(ino, indx)
    guess: tuple[bytes, int] | None = None
    attempts = 0
    wrote: dict[str, bytes] = {}
    wrote_len = 0

    async def body(tx: Tx) -> tuple[Attr, int, int]:
        nonlocal attempts, wrote_len
        attempts += 1
        wrote.clear()
        wrote_len = 0
        append = getattr(tx, "append", None)
        raw_chunk: bytes | None = None
        assume = getattr(tx, "assume", None) if guess is not None and attempts == 1 and append else None
        if assume is not None:
            # What this client's last commit here left: validated by the commit instead of read first.
            raw_attr, size = guess  # type: ignore[misc]  # (not None: `assume` is set only then)
            assume(akey, raw_attr)
        else:
            raw_attr, raw_chunk = await tx.get_many([akey, ckey])
            size = len(raw_chunk or b"")
        if raw_attr is None:
            raise FSError(errno.ENOENT)
        attr = Attr.decode(raw_attr)
        _writable_file(m, ino, attr)
        if assume is None and raw_chunk and raw_chunk.endswith(encoded):
            return attr, size // 24, 0  # a retried commit that already landed
        if append is not None:
            append(ckey, encoded, size)
        else:
            tx.put(ckey, (raw_chunk or b"") + encoded)
        wrote_len = size + len(encoded)
        for s in slices:
            if s.sums is not None:
                tx.put(keys.block_sums(s.slice_id), s.sums)
        delta = 0
        if end > attr.length:
            delta = align4k(end) - align4k(attr.length)
            attr.length = end
        attr.mtime_ns = mtime_ns or now
        attr.ctime_ns = now
        store.put_attr(tx, ino, attr)
        wrote["attr"] = attr.encode()
        store.charge(tx, delta, 0)
        await quota.charge(m, tx, attr.parent, delta, 0)  # QUOTA HOOK
        await owner_quota.charge(m, tx, attr, delta, 0)  # QUOTA HOOK
        return attr, wrote_len // 24, delta

    m.check_space(align4k(end))
    # Under the inode's lock (as `Meta.txn`), so that the guess taken and the records kept are this
    # client's latest: every other transaction of this client on the inode forgets the guess under it.
    async with m.locked(ino):
        guess = m.tails.take(ino, indx)
        attr, n, delta = await m.kv.txn(body)
        if guess is not None and attempts > 1:
            m.tails.missed(ino)
        if wrote_len:
            m.tails.keep(ino, indx, wrote["attr"], wrote_len)
    m.note_usage(delta, 0)
    return attr, n


async def read_chunk(m: Meta, ino: int, indx: int) -> list[SliceRecord]:
    """The raw slice records of chunk `indx` of `ino`, oldest first (empty for a hole chunk); ENOENT when
    the inode no longer exists (e.g. another client deleted it)."""

    async def body(tx: Tx) -> list[SliceRecord]:
        # The attribute comes in the same round trip: a deleted inode must read as ENOENT, not as a hole.
        raw_attr, raw_chunk = await tx.get_many([keys.attr(ino), keys.chunk(ino, indx)])
        if raw_attr is None:
            raise FSError(errno.ENOENT, f"inode {ino}")
        return decode_slices(raw_chunk) if raw_chunk else []

    return await m.kv.read(body)


async def read_block_sums(m: Meta, slice_id: int) -> bytes | None:
    """The block-checksum record of slice `slice_id`, None if it has none."""
    key = keys.block_sums(slice_id)

    async def body(tx: Tx) -> bytes | None:
        return await tx.get(key)

    return await m.kv.read(body)


async def truncate_in_tx(tx: Tx, ino: int, attr: Attr, length: int, now: int) -> tuple[int, Freed]:
    """Set the length of the regular file `ino` inside `tx`; returns (space delta, freed slices).

    Shrinking deletes whole chunks past the new end (releasing their slices) and hides the tail of the
    partial chunk behind a hole record, so growing later reads zeros.
    """
    if length > MAX_FILE_SIZE:
        raise FSError(errno.EFBIG)
    old = attr.length
    freed: Freed = []
    if length < old:
        first_whole = (length + CHUNK_SIZE - 1) // CHUNK_SIZE
        begin = keys.chunk(ino, first_whole)
        end = keys.prefix_end(keys.chunk_prefix(ino))
        dropped: list[tuple[int, int]] = []
        for key, value in await tx.scan(begin, end):
            tx.delete(key)
            dropped += _record_slices(decode_slices(value))
        freed = await release(tx, dropped)
        pos = length % CHUNK_SIZE
        if pos:
            indx = length // CHUNK_SIZE
            tail_end = min(CHUNK_SIZE, old - indx * CHUNK_SIZE)
            if tail_end > pos:
                raw = await store.get_chunk_raw(tx, ino, indx)
                if raw:
                    store.append_chunk(tx, ino, indx, raw, [SliceRecord(pos, 0, 0, 0, tail_end - pos)])
    attr.length = length
    attr.mtime_ns = now
    attr.ctime_ns = now
    delta = align4k(length) - align4k(old)
    store.put_attr(tx, ino, attr)
    store.charge(tx, delta, 0)
    return delta, freed


async def _hole_over(tx: Tx, ino: int, off: int, length: int) -> None:
    """Append hole records covering [off, off+length) to every chunk that has data there."""
    for indx, pos, n in split_range(off, length):
        raw = await store.get_chunk_raw(tx, ino, indx)
        if raw:
            store.append_chunk(tx, ino, indx, raw, [SliceRecord(pos, 0, 0, 0, n)])


async def fallocate(m: Meta, ctx: Ctx, ino: int, mode: int, off: int, length: int) -> Attr:
    """fallocate(2): preallocate (extend length), KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE.

    Errors: EINVAL (bad range/flags), EOPNOTSUPP (collapse/insert/unshare), EISDIR, ENODEV (not a file),
    EFBIG, ENOSPC, EPERM.
    """
    if off < 0 or length <= 0:
        raise FSError(errno.EINVAL)
    if mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE | FALLOC_FL_UNSHARE_RANGE):
        raise FSError(errno.EOPNOTSUPP)
    if mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_NO_HIDE_STALE):
        raise FSError(errno.EOPNOTSUPP)
    if mode & FALLOC_FL_PUNCH_HOLE and (not mode & FALLOC_FL_KEEP_SIZE or mode & FALLOC_FL_ZERO_RANGE):
        raise FSError(errno.EINVAL)
    end = off + length
    if end > MAX_FILE_SIZE:
        raise FSError(errno.EFBIG)
    now = now_ns()

    async def body(tx: Tx) -> tuple[Attr, int]:
        attr = await store.get_attr(tx, ino)
        if attr.typ is FileType.DIRECTORY:
            raise FSError(errno.EISDIR)
        if attr.typ is not FileType.REGULAR:
            raise FSError(errno.ENODEV)
        _writable_file(m, ino, attr)
        if attr.flags & 0x02 and mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
            raise FSError(errno.EPERM, "file is append-only")
        check_perm(ctx, attr, MAY_WRITE)
        old = attr.length
        if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
            hole_end = min(end, old)
            if hole_end > off:
                await _hole_over(tx, ino, off, hole_end - off)
            attr.mtime_ns = now
            attr.ctime_ns = now
        if not mode & FALLOC_FL_KEEP_SIZE and end > old:
            attr.length = end
            attr.ctime_ns = now
            if mode & FALLOC_FL_ZERO_RANGE:
                attr.mtime_ns = now
        delta = align4k(attr.length) - align4k(old)
        store.put_attr(tx, ino, attr)
        store.charge(tx, delta, 0)
        await quota.charge(m, tx, attr.parent, delta, 0)  # QUOTA HOOK
        await owner_quota.charge(m, tx, attr, delta, 0)  # QUOTA HOOK
        return attr, delta

    m.check_space(max(0, end))
    attr, delta = await m.txn(body, ino)
    m.note_usage(delta, 0)
    return attr


async def copy_file_range(
    m: Meta, ctx: Ctx, src: int, off_in: int, dst: int, off_out: int, size: int, flags: int = 0
) -> tuple[int, Attr]:
    """Copy bytes by referencing the source's slices from the destination (no data is copied).

    Returns (bytes copied, destination attr). Copies at most up to the source's end.
    Errors: EINVAL (flags, overlap within one file, negative offsets), EISDIR, EBADF-like EINVAL for
    non-regular files, EFBIG, ENOSPC.
    """
    if flags:
        raise FSError(errno.EINVAL)
    if off_in < 0 or off_out < 0 or size < 0:
        raise FSError(errno.EINVAL)
    now = now_ns()

    async def body(tx: Tx) -> tuple[int, Attr, int]:
        raw_src, raw_dst = await tx.get_many([keys.attr(src), keys.attr(dst)])
        if raw_src is None or raw_dst is None:
            raise FSError(errno.ENOENT)
        sattr, dattr = Attr.decode(raw_src), Attr.decode(raw_dst)
        for a in (sattr, dattr):
            if a.typ is FileType.DIRECTORY:
                raise FSError(errno.EISDIR)
            if a.typ is not FileType.REGULAR:
                raise FSError(errno.EINVAL)
        _writable_file(m, dst, dattr)
        check_perm(ctx, dattr, MAY_WRITE)
        n = min(size, max(0, sattr.length - off_in))
        if n == 0:
            return 0, dattr, 0
        if off_out + n > MAX_FILE_SIZE:
            raise FSError(errno.EFBIG)
        if src == dst and off_in < off_out + n and off_out < off_in + n:
            raise FSError(errno.EINVAL, "overlapping ranges in one file")
        pieces = []
        for indx, pos, length in split_range(off_in, n):
            records = await store.get_chunk(tx, src, indx)
            pieces += read_pieces(records, pos, length)
        appended: dict[int, list[SliceRecord]] = {}
        refs: list[tuple[int, int]] = []
        out = off_out
        for p in pieces:
            done = 0
            while done < p.len:
                indx, pos = divmod(out, CHUNK_SIZE)
                take = min(p.len - done, CHUNK_SIZE - pos)
                rec = SliceRecord(pos, p.id, p.size if p.id else 0, p.off + done if p.id else 0, take)
                appended.setdefault(indx, []).append(rec)
                if p.id:
                    refs.append((p.id, p.size))
                done += take
                out += take
        for indx, records in appended.items():
            raw = await store.get_chunk_raw(tx, dst, indx)
            tx.put(keys.chunk(dst, indx), raw + encode_slices(records))
        await add_refs(tx, refs)
        old = dattr.length
        dattr.length = max(old, off_out + n)
        dattr.mtime_ns = now
        dattr.ctime_ns = now
        delta = align4k(dattr.length) - align4k(old)
        store.put_attr(tx, dst, dattr)
        store.charge(tx, delta, 0)
        await quota.charge(m, tx, dattr.parent, delta, 0)  # QUOTA HOOK
        await owner_quota.charge(m, tx, dattr, delta, 0)  # QUOTA HOOK
        return n, dattr, delta

    m.check_space(off_out + size)
    # The source too: its chunks are read and its slices gain references, which this client's own slice
    # commits, truncates and compactions of the source would otherwise race (and retry).
    n, attr, delta = await m.txn(body, src, dst)
    m.note_usage(delta, 0)
    return n, attr


async def cleanup_file(m: Meta, ino: int, length: int, *, batch: int = 32) -> Freed:
    """Process one delfile marker: drop the file's chunks batch by batch, then the marker.

    Idempotent and safe to interrupt; returns the slices freed (their K records stay at −1 until
    `forget_slices`).
    """
    freed_all: Freed = []
    prefix = keys.chunk_prefix(ino)
    while True:
        async def body(tx: Tx) -> tuple[Freed, bool]:
            rows = await tx.scan(prefix, keys.prefix_end(prefix), limit=batch)
            dropped: list[tuple[int, int]] = []
            for key, value in rows:
                tx.delete(key)
                dropped += _record_slices(decode_slices(value))
            freed = await release(tx, dropped)
            if len(rows) < batch:
                tx.delete(keys.delfile(ino, length))
                return freed, True
            return freed, False

        freed, done = await m.kv.txn(body)
        freed_all += freed
        if freed:
            await m.free_slices(freed)
        if done:
            return freed_all


async def forget_slices(m: Meta, slices: Freed) -> None:
    """Remove the pending-delete records of slices whose blocks are gone."""

    async def body(tx: Tx) -> None:
        refs = list(dict.fromkeys(keys.slice_ref(sid, size) for sid, size in slices))
        # One round for all of them (a compaction frees hundreds: one read round each was as many round trips).
        for key, raw in zip(refs, await tx.get_many(refs), strict=True):
            if raw is not None and int.from_bytes(raw[:8], "little", signed=True) < 0:
                tx.delete(key)

    await m.kv.txn(body)


async def compact_swap(
    m: Meta, ino: int, indx: int, plan: CompactionPlan, new_id: int, sums: bytes | None = None
) -> Freed | None:
    """Replace the records a compaction plan consumed by the new slice `new_id`, in one transaction (with
    the new slice's block-checksum record `sums`, if given).

    Returns the slices freed by the swap (one reference dropped per consumed record), or None when the
    chunk changed since planning — the caller must then delete the new slice's blocks.
    """

    async def body(tx: Tx) -> Freed | None:
        raw = await store.get_chunk_raw(tx, ino, indx)
        records = decode_slices(raw)
        try:
            new_records = apply_plan(records, plan, new_id)
        except StalePlanError:
            return None
        tx.put(keys.chunk(ino, indx), encode_slices(new_records))
        if sums is not None and new_id:
            tx.put(keys.block_sums(new_id), sums)
        consumed = list(plan.basis[len(plan.skipped):])
        return await release(tx, _record_slices(consumed))

    # Under the inode's lock like every other change of its chunks: on optimistic engines (Redis) a swap
    # racing this client's own slice commits to the same chunk would only conflict and retry.
    freed = await m.txn(body, ino)
    if freed:
        await m.free_slices(freed)
    return freed

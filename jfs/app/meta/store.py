"""Typed access to metadata records inside one transaction (the only place that touches keys directly).

Every function takes the transaction as its first argument and raises FSError with the errno a caller
of the file system expects (ENOENT for a missing inode, …).
"""

from __future__ import annotations

import errno

from jfs.domain import keys
from jfs.domain.attrs import TRASH_INODE, Attr, FileType, align4k
from jfs.domain.errors import FSError
from jfs.domain.records import (
    SliceRecord,
    decode_dentry,
    decode_slices,
    encode_dentry,
    encode_slices,
    encode_u64,
)
from jfs.ports.kv import Pointer, Tx


def entry_attr_pointer(source: int) -> Pointer:
    """The `Pointer` from a dentry value (``type byte + inode, big-endian``) at `source` to the attribute
    key of the inode it names (``b"A" + inode, little-endian + b"I"``): lets `Tx.get_follow` read a
    dentry and its inode's attributes in one round trip."""
    return Pointer(source=source, start=1, stop=9, prefix=b"A", suffix=b"I", reverse=True)


async def get_attr(tx: Tx, ino: int) -> Attr:
    """The attributes of `ino`; ENOENT when absent. The trash root always exists: a volume formatted by
    JuiceFS has no record for it until something is trashed, and `.trash` is listed in every root."""
    raw = await tx.get(keys.attr(ino))
    if raw is None:
        if ino == TRASH_INODE:
            return Attr(typ=FileType.DIRECTORY, mode=0o555, nlink=2, length=4096, parent=1)
        raise FSError(errno.ENOENT, f"inode {ino}")
    return Attr.decode(raw)


def stored_attr(ino: int, raw: bytes | None) -> Attr:
    """`get_attr`'s answer from the stored attribute record `raw` of `ino` (None: absent)."""
    if raw is None:
        if ino == TRASH_INODE:
            return Attr(typ=FileType.DIRECTORY, mode=0o555, nlink=2, length=4096, parent=1)
        raise FSError(errno.ENOENT, f"inode {ino}")
    return Attr.decode(raw)


def stored_dir(ino: int, raw: bytes | None) -> Attr:
    """`get_dir`'s answer from the stored attribute record `raw` of `ino` (None: absent)."""
    attr = stored_attr(ino, raw)
    if attr.typ is not FileType.DIRECTORY:
        raise FSError(errno.ENOTDIR, f"inode {ino}")
    return attr


async def followed_attr(tx: Tx, ino: int, raw: bytes | None) -> Attr:
    """`get_attr` of `ino` whose stored value `raw` a `Tx.get_follow` already read (through
    `entry_attr_pointer`): decoded without another round trip; an absent value goes through `get_attr`
    (the trash root's default, ENOENT)."""
    if raw is None:
        return await get_attr(tx, ino)
    return Attr.decode(raw)


async def find_attr(tx: Tx, ino: int) -> Attr | None:
    """The stored attributes of `ino`, or None (no default for the trash root, unlike `get_attr`)."""
    raw = await tx.get(keys.attr(ino))
    return None if raw is None else Attr.decode(raw)


async def get_attrs(tx: Tx, inos: list[int]) -> list[Attr | None]:
    raws = await tx.get_many([keys.attr(i) for i in inos])
    return [None if r is None else Attr.decode(r) for r in raws]


def put_attr(tx: Tx, ino: int, attr: Attr) -> None:
    tx.put(keys.attr(ino), attr.encode())
    if attr.typ is FileType.REGULAR and attr.parent:
        _stale_dir_stat(tx, attr.parent)


def _stale_dir_stat(tx: Tx, parent: int) -> None:
    """Drop JuiceFS's statistics record (`U` + parent) of a directory whose children change.

    JuiceFS volumes (``DirStats: true``) keep per-directory totals that JuiceFS clients update with
    batched deltas; jfs does not keep them, and a JuiceFS client recomputes a missing record from the
    dentries when it next needs or flushes it, so deleting the record keeps it right next to JuiceFS
    (ADR 0013). A blind delete of an absent key: free of conflicts, and cheap where no record exists."""
    tx.delete(keys.dir_stat(parent))


def decode_dir(raw: bytes | None, ino: int) -> Attr:
    """The attributes of directory `ino` from its record `raw`; ENOENT when absent, ENOTDIR when not a
    directory."""
    if raw is None:
        raise FSError(errno.ENOENT, f"inode {ino}")
    attr = Attr.decode(raw)
    if attr.typ is not FileType.DIRECTORY:
        raise FSError(errno.ENOTDIR, f"inode {ino}")
    return attr


async def get_dir(tx: Tx, ino: int) -> Attr:
    """Attributes of a directory; ENOENT when absent, ENOTDIR when not a directory."""
    return stored_dir(ino, await tx.get(keys.attr(ino)))


async def get_entry(tx: Tx, parent: int, name: bytes) -> tuple[FileType, int] | None:
    raw = await tx.get(keys.dentry(parent, name))
    return None if raw is None else decode_dentry(raw)


def put_entry(tx: Tx, parent: int, name: bytes, typ: FileType, ino: int) -> None:
    tx.put(keys.dentry(parent, name), encode_dentry(typ, ino))
    _stale_dir_stat(tx, parent)


def del_entry(tx: Tx, parent: int, name: bytes) -> None:
    tx.delete(keys.dentry(parent, name))
    _stale_dir_stat(tx, parent)


def dentry_range(ino: int) -> tuple[bytes, bytes]:
    """[begin, end) of the entries of directory `ino`."""
    prefix = keys.dentry_prefix(ino)
    return prefix, keys.prefix_end(prefix)


async def dir_is_empty(tx: Tx, ino: int) -> bool:
    return not await tx.exists(*dentry_range(ino))


async def drop_entries(tx: Tx, ino: int, limit: int) -> int:
    """Delete up to `limit` entries of directory `ino` (no directory checks); returns how many went."""
    prefix = keys.dentry_prefix(ino)
    rows = await tx.scan(prefix, keys.prefix_end(prefix), limit=limit, keys_only=True)
    for key, _ in rows:
        tx.delete(key)
    return len(rows)


async def record_kinds(tx: Tx, ino: int) -> set[str]:
    """The kinds of the records stored under inode `ino` (``I`` attributes, ``D`` entries, ``C`` chunks,
    ``S`` symlink, ``X`` xattrs, ``P`` parent counters), as one-letter strings."""
    prefix = keys.inode_prefix(ino)
    return {chr(k[9]) for k, _ in await tx.scan(prefix, keys.prefix_end(prefix), keys_only=True) if len(k) > 9}


async def drop_records(tx: Tx, ino: int, *, keep: str) -> None:
    """Delete the records under inode `ino` whose kind (see `record_kinds`) is not in `keep`."""
    prefix = keys.inode_prefix(ino)
    for key, _ in await tx.scan(prefix, keys.prefix_end(prefix), keys_only=True):
        if len(key) > 9 and chr(key[9]) not in keep:
            tx.delete(key)


async def has_delfile(tx: Tx, ino: int) -> bool:
    """Whether inode `ino` has a delfile marker (a deleted file whose data is still to be released)."""
    marker = keys.DELFILE_PREFIX + keys.ino_le(ino)
    return await tx.exists(marker, keys.prefix_end(marker))


def put_delfile(tx: Tx, ino: int, length: int, when: int) -> None:
    """Mark inode `ino` (`length` bytes) as deleted at unix time `when`: its data is to be released."""
    tx.put(keys.delfile(ino, length), encode_u64(when))


async def get_chunk(tx: Tx, ino: int, indx: int) -> list[SliceRecord]:
    raw = await tx.get(keys.chunk(ino, indx))
    return [] if raw is None else decode_slices(raw)


async def get_chunk_raw(tx: Tx, ino: int, indx: int) -> bytes:
    return await tx.get(keys.chunk(ino, indx)) or b""


async def chunks_of(tx: Tx, ino: int) -> list[tuple[int, list[SliceRecord]]]:
    """(index, slice records) of every chunk of `ino`, in index order."""
    prefix = keys.chunk_prefix(ino)
    return [(int.from_bytes(k[10:14], "big"), decode_slices(v)) for k, v in await tx.scan(prefix, keys.prefix_end(prefix))]


def put_chunk(tx: Tx, ino: int, indx: int, records: list[SliceRecord]) -> None:
    """Replace chunk `indx` of `ino` by `records`."""
    tx.put(keys.chunk(ino, indx), encode_slices(records))


def drop_block_sums(tx: Tx, slice_id: int) -> None:
    """Delete the block-checksum record of slice `slice_id` (ADR 0008), if any."""
    tx.delete(keys.block_sums(slice_id))


def append_chunk(tx: Tx, ino: int, indx: int, old: bytes, records: list[SliceRecord]) -> bytes:
    value = old + encode_slices(records)
    tx.put(keys.chunk(ino, indx), value)
    return value


def charge(tx: Tx, space: int, inodes: int) -> None:
    """Adjust the volume's used space (bytes, 4 KiB units) and inode count by the given deltas."""
    if space:
        tx.add(keys.counter(keys.USED_SPACE), space)
    if inodes:
        tx.add(keys.counter(keys.TOTAL_INODES), inodes)


def space_of(attr: Attr) -> int:
    """Space an inode is charged for (files by length, everything else one 4 KiB unit)."""
    return align4k(attr.length if attr.typ is FileType.REGULAR else 0)


async def parent_refs(tx: Tx, ino: int) -> dict[int, int]:
    """Per-parent dentry counts of a hard-linked inode (empty while it has a single parent)."""
    prefix = keys.parent_ref_prefix(ino)
    out: dict[int, int] = {}
    for key, value in await tx.scan(prefix, keys.prefix_end(prefix)):
        out[keys.ino_from_le(key, len(prefix))] = int.from_bytes(value[:8], "little", signed=True)
    return out


async def add_parent_ref(tx: Tx, ino: int, parent: int, delta: int) -> int:
    """Add `delta` to the dentry count of `ino` in `parent`; the record is removed at zero."""
    key = keys.parent_ref(ino, parent)
    raw = await tx.get(key)
    count = (int.from_bytes(raw[:8], "little", signed=True) if raw else 0) + delta
    if count > 0:
        tx.put(key, count.to_bytes(8, "little", signed=True))
    else:
        tx.delete(key)
    return count


async def replace_parent_refs(tx: Tx, ino: int, refs: dict[int, int]) -> None:
    """Replace the per-parent dentry counts of `ino` by `refs` (parent → count; empty: drop them all)."""
    prefix = keys.parent_ref_prefix(ino)
    for key, _ in await tx.scan(prefix, keys.prefix_end(prefix), keys_only=True):
        tx.delete(key)
    for parent, count in refs.items():
        tx.put(keys.parent_ref(ino, parent), count.to_bytes(8, "little", signed=True))

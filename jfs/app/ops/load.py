"""`load`: restore a JSON metadata dump (from ``jfs dump`` or ``juicefs dump``) into an EMPTY engine.

Contract:

* The engine must hold no key at all; otherwise OpsError, and nothing is written.
* A dump of a volume jfs cannot read (encrypted with an algorithm jfs does not implement, or with its key
  removed: `Settings.check_readable`) is refused with OpsError as soon as its ``Setting`` is read. Every dump jfs
  or JuiceFS writes has it first, and `dump_events` reads it before the caller even opens the engine; should a
  reordered dump (``jq -S``) bring it after the tree, the keys already written are deleted again (the
  engine was empty), so the engine is left as it was either way.
* The dump is read as a stream (`jfs.domain.dumpfmt.DumpReader`) and written in transactions of at most
  `BATCH_KEYS` keys / `BATCH_BYTES` bytes, a few in flight while parsing goes on; on an engine with
  `BulkLoadingKV` (Redis) the batches are written by `load_puts`, outside transactions (the engine was
  checked empty and holds no volume until the setting is written last, so no client can be using it). The setting and the
  counters are written last, so an engine whose load failed half-way holds no mountable volume (the error
  says to empty it before retrying).
* Memory: one tree node at a time, the chain of open directories, a bitmap of inode numbers and one of
  slice ids seen (a few MiB for millions; ids beyond 2^27 go to a set), the parents of hard-linked
  inodes and the slices referenced more than once (both usually tiny), and the quotas.
* Everything derivable is rebuilt from the tree, the dumped ``Counters`` are only logged (a Redis-engine
  JuiceFS dump already shows them in TKV terms): ``nextInode`` = 1 + the largest normal inode (live or
  pending deletion), ``nextChunk`` = 1 + the largest slice id, ``nextTrash`` = the largest trash offset,
  ``nextSession`` = 0, ``usedSpace``/``totalInodes`` = align4k(length) and count over unique inodes other
  than the root and the trash root (the trash's hour directories count, as JuiceFS's load and clients
  count them); directory nlink = 2 + child directories (the trash root's 2, as JuiceFS keeps it), length 4096; a file's nlink =
  the number of its names, and an inode with several names gets parent 0 and one ``A<ino>P<parent>``
  counter per parent; ``K`` slice references (refs − 1) for slices referenced by more than one record
  (holes excluded). ``DelFiles`` are restored; ``Sustained`` (sessions are gone) and POSIX ACLs (jfs
  has none) are dropped with a warning.
* ``UserQuotas``/``GroupQuotas`` (and a setting with ``UserGroupQuota`` on): after the tree, every
  owner's usage is counted by a scan of the loaded volume (`owner_quota.scan_usage`, as JuiceFS's load
  and ``quota check`` count it) and a ``QU``/``QG`` record is written for every owner seen — unlimited
  unless the dump gives limits — and for every dumped quota (usage 0 when its owner has nothing).
* ``Quotas``: each directory quota is restored with its limits and its usage counted from the tree
  exactly as `jfs.app.meta.quota` counts it (and as JuiceFS's load does): every name below the directory, one
  inode and align4k(length) for a file, 4 KiB for anything else, a hard-linked file once per name. The
  usage is summed per directory while the tree streams by (one pair of counters per open directory);
  when the section comes after the tree (``jq -S``) the quota directories are walked in the engine
  instead. The quota of the ``FSTree`` root is the one keyed by the root's dumped inode (a ``--subdir``
  dump); a quota whose directory is not in the tree is dropped with a warning.
* Block checksums (``jfsCrc32`` of a slice, ADR 0008): the slice's record is written as dumped, so a
  loaded checksum volume checks its old data too; a record that does not fit the slice for the volume's
  block size is dropped with a warning (the reader could not use it).
* The setting is stored as dumped except ``DirStats``, on exactly when the dump has directory quotas
  (JuiceFS clients need it to charge and enforce them; jfs writes no directory statistics, and JuiceFS
  recomputes missing ones); a secret shown as "removed" stays so and is reported.
* The root of ``FSTree`` becomes inode 1 whatever it was (a ``--subdir`` dump); without a ``Trash``
  section a fresh trash root is created.

Where it writes: load is a bulk writer of the stored layout into an engine nobody else uses, so it
encodes records key by key (`jfs.domain.keys`, the codecs of `jfs.domain.records`) rather than through
the engine's operations (one transaction per name would be orders of magnitude slower, and the counters
are rebuilt at the end anyway). Its reads go through the engine (`jfs.app.meta.reader`,
`jfs.app.meta.quota.walk_usage`).

Parser choice: a reader of our own rather than ``ijson`` (3.x, well kept, with a C backend). The dump's
shape makes a small reader enough: only the nesting of ``entries`` is followed by hand and every other
value is decoded by the C scanner of the standard `json` module, so it needs no new runtime dependency
and parses a 100k-entry dump in about a second (bench/dump_bench.py); runs of plain files come as one
"files" event, loaded by `_Loader.files` in one loop (ADR 0089).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from jfs.app.errors import OpsError
from jfs.app.meta import owner_quota, quota, reader
from jfs.app.meta.trash import trash_root_attr
from jfs.app.progress import ProgressBar, ProgressBoard, QuietBoard
from jfs.domain import dumpfmt, keys
from jfs.domain.attrs import (
    DIR_LENGTH,
    PLAIN_RECORD_SIZE,
    ROOT_INODE,
    TRASH_INODE,
    Attr,
    FileType,
    align4k,
    plain_record,
)
from jfs.domain.records import DENTRY_RECORD, Quota, encode_dentry, encode_i64, encode_slices, encode_u64
from jfs.domain.settings import EncryptedVolume, InvalidSettings, Settings
from jfs.ports.kv import KV, BulkLoadingKV, Tx

log = structlog.get_logger(__name__)

BATCH_KEYS = 10_000
BATCH_BYTES = 5 << 20
IN_FLIGHT = 3
FIX_BATCH = 1000

# `_Loader.file`'s puts written out: the dentry value's packer and type, the sizes of its two records.
_pack_dentry = DENTRY_RECORD.pack
_REGULAR = int(FileType.REGULAR)
_REGULAR_TYPE = FileType.REGULAR
_DENTRY_SIZE = DENTRY_RECORD.size
_ATTR_PUT_SIZE = len(keys.attr(0)) + PLAIN_RECORD_SIZE

Reader = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class LoadResult:
    entries: int
    """Tree nodes read (every name of a hard-linked file counts; the roots of FSTree and Trash too)."""
    inodes: int
    """Distinct inodes restored, the root and the trash root not counted (the new ``totalInodes``)."""
    seconds: float


class _IntSet:
    """A set of non-negative ints: a growing bitmap below `LIMIT`, a Python set above."""

    LIMIT = 1 << 27

    def __init__(self) -> None:
        self._bits = bytearray()
        self._big: set[int] = set()

    def add(self, n: int) -> bool:
        """Add `n`; False when it was already there."""
        if n >= self.LIMIT:
            if n in self._big:
                return False
            self._big.add(n)
            return True
        byte, mask = n >> 3, 1 << (n & 7)
        bits = self._bits
        if byte >= len(bits):
            bits.extend(bytes(min(max(byte + 1, 2 * len(bits)), self.LIMIT >> 3) - len(bits)))
        if bits[byte] & mask:
            return False
        bits[byte] |= mask
        return True


class _Refused(OpsError):
    """The dump is of a volume jfs cannot serve: the engine must be left as it was."""


class _Batches:
    """Collects puts and writes them in transactions of bounded size, a few in flight at once."""

    def __init__(self, kv: KV, max_keys: int, max_bytes: int) -> None:
        self.kv = kv
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self.items: list[tuple[bytes, bytes]] = []
        self.size = 0
        self.written = 0
        self.started = False
        """Whether a transaction was ever started (then the engine may hold some of the keys)."""
        self._tasks: set[asyncio.Task[None]] = set()

    def put(self, key: bytes, value: bytes) -> None:
        self.items.append((key, value))
        self.size += len(key) + len(value)

    @property
    def full(self) -> bool:
        return len(self.items) >= self.max_keys or self.size >= self.max_bytes

    async def flush(self) -> None:
        if not self.items:
            return
        items, self.items, self.size = self.items, [], 0
        self.started = True
        while len(self._tasks) >= IN_FLIGHT:
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                self._tasks.discard(task)
                task.result()
        self._tasks.add(asyncio.ensure_future(self._write(items)))

    async def _write(self, items: list[tuple[bytes, bytes]]) -> None:
        if isinstance(self.kv, BulkLoadingKV):  # the engine is empty and nobody else uses it
            await self.kv.load_puts(items)
        else:
            async def body(tx: Tx) -> None:
                for key, value in items:
                    tx.put(key, value)

            await self.kv.txn(body)
        self.written += len(items)

    async def drain(self) -> None:
        await self.flush()
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            await task

    async def abort(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


@dataclass(slots=True)
class _Frame:
    """A directory whose entries are being read (its attributes are written when they end)."""

    ino: int
    attr: Attr
    parent: int
    quota_key: int
    """The inode its quota is keyed by in the dump (its dumped inode: differs from `ino` for the FSTree root)."""
    subdirs: int = 0
    space: int = 0
    inodes: int = 0
    """Quota usage of everything below the directory read so far (see the module docstring)."""
    dentries: bytes = b""
    """`keys.dentry_prefix` of `ino` (a child's dentry key is this and its name)."""


@dataclass(slots=True)
class _State:
    seen: _IntSet = field(default_factory=_IntSet)
    slices: _IntSet = field(default_factory=_IntSet)
    shared_slices: dict[tuple[int, int], int] = field(default_factory=dict)
    """(id, size) → references, for slices referenced more than once."""
    first_parent: dict[int, int] = field(default_factory=dict)
    """Parent of the first name of an inode dumped with nlink > 1 (until a second name shows up)."""
    links: dict[int, list[int]] = field(default_factory=dict)
    """Parents of every name of inodes met more than once (0 = not known yet: read back from the attr)."""
    max_inode: int = 1
    max_slice: int = 0
    next_trash: int = 0
    used_space: int = 0
    inodes: int = 0
    entries: int = 0
    setting: dict[str, Any] | None = None
    settings: Settings | None = None
    counters: dict[str, Any] | None = None
    had_trash: bool = False
    quotas: dict[int, tuple[int, int]] | None = None
    """Dumped directory inode → (max space, max inodes), once the ``Quotas`` section is read."""
    owner_limits: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)
    """``UserQuotas``/``GroupQuotas``: kind (`owner_quota.USER`/`GROUP`) -> uid/gid -> (max space, max inodes)."""
    quotas_late: bool = False
    """``Quotas`` came after the tree: usage is counted by walking the engine afterwards."""
    quota_usage: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    """Dumped directory inode → (inode, space, inodes) of the quota directories met in the tree."""
    root_key: int = ROOT_INODE
    """The dumped inode of the FSTree root (loaded as inode 1)."""
    warned: set[str] = field(default_factory=set)


class _Loader:
    def __init__(self, kv: KV, batches: _Batches, progress: ProgressBar) -> None:
        self.kv = kv
        self.out = batches
        self.progress = progress
        self.s = _State()
        self.stack: list[_Frame] = []
        self.section = ""

    def warn_once(self, what: str, **kw: Any) -> None:
        if what not in self.s.warned:
            self.s.warned.add(what)
            log.warning(what, **kw)

    # ---- top-level sections

    def section_value(self, key: str, value: Any) -> None:
        s = self.s
        if key == "Setting":
            if not isinstance(value, dict):
                raise dumpfmt.DumpFormatError("'Setting' is not an object")
            s.setting = value
            s.settings = self.settings()
        elif key == "Counters":
            s.counters = value if isinstance(value, dict) else {}
            total = s.counters.get("usedInodes")
            if isinstance(total, int):
                self.progress.set_total(total + 2)
        elif key == "DelFiles":
            for d in value or ():
                ino, length, expire = int(d["inode"]), int(d["length"]), int(d.get("expire", 0))
                self.out.put(keys.delfile(ino, length), encode_u64(expire))
                if ino < TRASH_INODE:
                    s.max_inode = max(s.max_inode, ino)
        elif key == "Sustained":
            if value:
                log.warning("load_sustained_dropped", sessions=len(value),
                            detail="open-but-deleted files of dead sessions are not restored")
        elif key == "Quotas":
            s.quotas = dumpfmt.quotas_from_json(value)
            s.quotas_late = s.entries > 0
        elif key in ("UserQuotas", "GroupQuotas"):
            kind = owner_quota.USER if key == "UserQuotas" else owner_quota.GROUP
            s.owner_limits[kind] = dumpfmt.quotas_from_json(value)
        else:
            log.debug("load_section_ignored", section=key)

    # ---- tree

    def node(self, name: str | None, fields: dict[str, Any], has_entries: bool) -> None:
        s = self.s
        s.entries += 1
        if s.entries % 1024 == 0:
            self.progress.advance(1024)
        if "attr" not in fields:
            raise dumpfmt.DumpFormatError(f"node {name!r} has no 'attr' before its entries")
        ino, attr = dumpfmt.attr_from_json(fields["attr"])
        quota_key = ino
        typ = attr.typ
        if name is None:
            if typ is not FileType.DIRECTORY:
                raise dumpfmt.DumpFormatError(f"the root of {self.section} is a {dumpfmt.TYPE_NAMES[typ]}")
            parent = ROOT_INODE
            if self.section == "FSTree":
                s.root_key = ino
                ino = ROOT_INODE
            else:
                s.had_trash = True
        else:
            if not self.stack:
                raise dumpfmt.DumpFormatError("an entry outside any directory")
            frame = self.stack[-1]
            parent = frame.ino
            raw = dumpfmt.unescape(name)
            if not raw or b"/" in raw or b"\x00" in raw or raw in (b".", b".."):
                raise dumpfmt.DumpFormatError(f"invalid entry name {name!r} in directory {parent}")
            self.out.put(keys.dentry(parent, raw), encode_dentry(typ, ino))
            if typ is FileType.DIRECTORY:
                frame.subdirs += 1
            frame.space += align4k(attr.length if typ is FileType.REGULAR else 0)  # every name counts
            frame.inodes += 1
        if has_entries and typ is not FileType.DIRECTORY:
            raise dumpfmt.DumpFormatError(f"inode {ino} has entries but is a {dumpfmt.TYPE_NAMES[typ]}")

        if not s.seen.add(ino):
            if typ is FileType.DIRECTORY:
                raise dumpfmt.DumpFormatError(f"directory inode {ino} appears twice")
            self._another_name(ino, parent)
            return
        if ino not in (ROOT_INODE, TRASH_INODE):  # hour directories are charged, as JuiceFS does
            s.used_space += align4k(attr.length if typ is FileType.REGULAR else 0)
            s.inodes += 1
        if ino < TRASH_INODE:
            s.max_inode = max(s.max_inode, ino)
        else:
            s.next_trash = max(s.next_trash, ino - TRASH_INODE)
        if "posix_acl_access" in fields or "posix_acl_default" in fields:
            self.warn_once("load_acls_dropped", detail="jfs has no POSIX ACLs; modes are kept")
        self._xattrs(ino, fields)

        if typ is FileType.DIRECTORY:
            attr.length = DIR_LENGTH
            attr.parent = parent
            if has_entries:
                self.stack.append(_Frame(ino, attr, parent, quota_key, dentries=keys.dentry_prefix(ino)))
            else:
                attr.nlink = 2
                self.out.put(keys.attr(ino), attr.encode())
                self._quota_dir(quota_key, ino, 0, 0)
            return
        if attr.nlink > 1:
            s.first_parent[ino] = parent
        attr.nlink = 1
        attr.parent = parent
        if typ is FileType.REGULAR:
            self._chunks(ino, fields.get("chunks"))
        else:
            attr.length = 0
            if typ is FileType.SYMLINK:
                target = dumpfmt.unescape(fields.get("symlink") or "")
                if not target:
                    log.warning("load_empty_symlink", inode=ino)
                attr.length = len(target)
                self.out.put(keys.symlink(ino), target)
        self.out.put(keys.attr(ino), attr.encode())

    def file(self, name: str, f: dumpfmt.PlainFile) -> None:
        """A "file" event: `node` of a regular file with nothing but its usual ``attr`` (same effect: the
        same keys, counters and checks), without the dictionaries."""
        ino, mode, uid, gid, a_s, m_s, c_s, a_n, m_n, c_n, nlink, length = f
        s = self.s
        s.entries += 1
        if s.entries % 1024 == 0:
            self.progress.advance(1024)
        if not self.stack:
            raise dumpfmt.DumpFormatError("an entry outside any directory")
        frame = self.stack[-1]
        parent = frame.ino
        raw = name.encode("utf-8", "surrogateescape")  # `dumpfmt.unescape` without the call for most names
        if b"%" in raw:
            raw = dumpfmt.unescape(name)
        if not raw or b"/" in raw or b"\x00" in raw or raw in (b".", b".."):
            raise dumpfmt.DumpFormatError(f"invalid entry name {name!r} in directory {parent}")
        out = self.out
        key = frame.dentries + raw  # `_Batches.put` written out (two puts per file)
        out.items.append((key, _pack_dentry(_REGULAR, ino)))
        out.size += len(key) + _DENTRY_SIZE
        space = align4k(length)
        frame.space += space  # every name counts
        frame.inodes += 1
        if not s.seen.add(ino):
            self._another_name(ino, parent)
            return
        if ino not in (ROOT_INODE, TRASH_INODE):
            s.used_space += space
            s.inodes += 1
        if ino < TRASH_INODE:
            if ino > s.max_inode:
                s.max_inode = ino
        elif ino - TRASH_INODE > s.next_trash:
            s.next_trash = ino - TRASH_INODE
        if nlink > 1:
            s.first_parent[ino] = parent
        out.items.append((keys.attr(ino), plain_record(FileType.REGULAR, mode, uid, gid, a_s, a_n, m_s, m_n, c_s,
                                                       c_n, 1, length, parent)))
        out.size += _ATTR_PUT_SIZE

    def files(self, names: list[str], rows: list[dumpfmt.PlainFile], start: int) -> int:
        """A "files" event from row `start` on: `file` of each name (same keys, counters and checks) in
        one loop, up to what the current batch has room for (a file puts two keys). Returns the index of
        the first row not taken (``len(names)`` when all were): flush the batch and call again from it."""
        if not self.stack:
            raise dumpfmt.DumpFormatError("an entry outside any directory")
        s = self.s
        out = self.out
        stop = min(len(names), start + max(1, (out.max_keys - len(out.items)) // 2))
        frame = self.stack[-1]
        parent = frame.ino
        prefix = frame.dentries
        append = out.items.append
        seen = s.seen.add
        attr_key = keys.attr
        unescape = dumpfmt.unescape
        space_below = used_space = inodes = size = 0
        max_inode, next_trash = s.max_inode, s.next_trash
        for name, (ino, mode, uid, gid, a_s, m_s, c_s, a_n, m_n, c_n, nlink, length) in zip(
                names[start:stop], rows[start:stop], strict=True):
            raw = name.encode("utf-8", "surrogateescape")
            if b"%" in raw:
                raw = unescape(name)
            if not raw or b"/" in raw or b"\x00" in raw or raw in (b".", b".."):
                raise dumpfmt.DumpFormatError(f"invalid entry name {name!r} in directory {parent}")
            key = prefix + raw
            append((key, _pack_dentry(_REGULAR, ino)))
            size += len(key)
            space = 4096 if length == 0 else ((length - 1) // 4096 + 1) * 4096  # align4k
            space_below += space  # every name counts
            if not seen(ino):
                self._another_name(ino, parent)
                continue
            if ino not in (ROOT_INODE, TRASH_INODE):
                used_space += space
                inodes += 1
            if ino < TRASH_INODE:
                if ino > max_inode:
                    max_inode = ino
            elif ino - TRASH_INODE > next_trash:
                next_trash = ino - TRASH_INODE
            if nlink > 1:
                s.first_parent[ino] = parent
            append((attr_key(ino), plain_record(_REGULAR_TYPE, mode, uid, gid, a_s, a_n, m_s, m_n, c_s, c_n, 1,
                                                length, parent)))
            size += _ATTR_PUT_SIZE
        taken = stop - start
        out.size += size + taken * _DENTRY_SIZE
        frame.space += space_below
        frame.inodes += taken
        s.used_space += used_space
        s.inodes += inodes
        s.max_inode, s.next_trash = max_inode, next_trash
        ticks = (s.entries + taken) // 1024 - s.entries // 1024
        s.entries += taken
        if ticks:
            self.progress.advance(1024 * ticks)
        return stop

    def _xattrs(self, ino: int, fields: dict[str, Any]) -> None:
        value = fields.get("xattrs")
        if value:
            for xname, xvalue in dumpfmt.xattrs_from_json(value):
                self.out.put(keys.xattr(ino, xname), xvalue)

    def _chunks(self, ino: int, value: Any) -> None:
        if not value:
            return
        s = self.s
        chunks, sums = dumpfmt.read_chunks(value)
        for sid, record in sums:
            if s.settings is not None and not record.fits(record.size, s.settings.block_bytes):
                self.warn_once("load_checksum_record_dropped", slice=sid, blocks=len(record.crcs),
                               detail="its checksums do not fit the slice for the volume's block size")
                continue
            self.out.put(keys.block_sums(sid), record.encode())
        for index, records in chunks:
            if not records:
                continue
            self.out.put(keys.chunk(ino, index), encode_slices(records))
            for r in records:
                if not r.id:
                    continue
                if r.id > s.max_slice:
                    s.max_slice = r.id
                if not s.slices.add(r.id):
                    k = (r.id, r.size)
                    s.shared_slices[k] = s.shared_slices.get(k, 1) + 1

    def _another_name(self, ino: int, parent: int) -> None:
        s = self.s
        names = s.links.get(ino)
        if names is None:
            names = s.links[ino] = [s.first_parent.pop(ino, 0)]
        names.append(parent)

    def late(self, fields: dict[str, Any]) -> None:
        if self.stack:
            self._xattrs(self.stack[-1].ino, fields)

    def end(self) -> None:
        frame = self.stack.pop()
        frame.attr.nlink = 2 if frame.ino == TRASH_INODE else 2 + frame.subdirs  # JuiceFS's trash root
        self.out.put(keys.attr(frame.ino), frame.attr.encode())
        self._quota_dir(frame.quota_key, frame.ino, frame.space, frame.inodes)
        if self.stack:
            self.stack[-1].space += frame.space
            self.stack[-1].inodes += frame.inodes

    # ---- quotas

    def _quota_dir(self, key: int, ino: int, space: int, inodes: int) -> None:
        """Directory `ino` (dumped as `key`) is complete, with `space`/`inodes` used below it."""
        quotas = self.s.quotas
        if quotas and key in quotas and ino < TRASH_INODE:
            self.s.quota_usage[key] = (ino, space, inodes)

    def quota_records(self) -> None:
        """Queue the quota records counted while the tree streamed by (`Quotas` before the tree)."""
        s = self.s
        for key, (max_space, max_inodes) in sorted((s.quotas or {}).items()):
            found = s.quota_usage.get(key)
            if found is None:
                log.warning("load_quota_dropped", inode=key, detail="no such directory in the dumped tree")
                continue
            ino, space, inodes = found
            self.out.put(keys.dir_quota(ino), Quota(max_space, max_inodes, space, inodes).encode())

    async def late_quota_records(self) -> None:
        """Write the quota records of a ``Quotas`` section that came after the tree, counting each
        directory's usage by walking the loaded tree (nobody else uses the engine during a load)."""
        s = self.s
        for key, (max_space, max_inodes) in sorted((s.quotas or {}).items()):
            ino = ROOT_INODE if key == s.root_key else key
            attr = None
            if ino < TRASH_INODE and (ino != ROOT_INODE or key == s.root_key):
                attr = await reader.read_attr(self.kv, ino)
            if attr is None or attr.typ is not FileType.DIRECTORY:
                log.warning("load_quota_dropped", inode=key, detail="no such directory in the dumped tree")
                continue
            space, inodes = await quota.walk_usage(self.kv, ino)
            record = Quota(max_space, max_inodes, space, inodes).encode()

            async def put(tx: Tx, ino: int = ino, record: bytes = record) -> None:
                tx.put(keys.dir_quota(ino), record)

            await self.kv.txn(put)

    # ---- after the tree

    async def fix_links(self) -> None:
        """nlink, parent 0 and per-parent counters for every inode with several names."""
        items = list(self.s.links.items())
        for i in range(0, len(items), FIX_BATCH):
            part = items[i: i + FIX_BATCH]

            async def body(tx: Tx, part: list[tuple[int, list[int]]] = part) -> None:
                raws = await tx.get_many([keys.attr(ino) for ino, _ in part])
                for (ino, parents), raw in zip(part, raws, strict=True):
                    if raw is None:
                        continue
                    attr = Attr.decode(raw)
                    if parents[0] == 0:
                        parents[0] = attr.parent
                    counts: dict[int, int] = {}
                    for p in parents:
                        counts[p] = counts.get(p, 0) + 1
                    attr.nlink = len(parents)
                    attr.parent = 0
                    tx.put(keys.attr(ino), attr.encode())
                    for p, n in counts.items():
                        tx.put(keys.parent_ref(ino, p), encode_i64(n))

            await self.kv.txn(body)

    def settings(self) -> Settings:
        doc = self.s.setting
        if doc is None:
            raise OpsError("the dump has no 'Setting' section")
        _check_readable(doc)
        try:
            settings = Settings.from_json(json.dumps(doc))
            settings.check_supported()
        except InvalidSettings as exc:
            raise OpsError(f"the dump's setting cannot be used: {exc}") from None
        for field_name, key in (("secret_key", "SecretKey"), ("session_token", "SessionToken")):
            if getattr(settings, field_name) == "removed":
                log.warning("load_secret_removed", field=key,
                            detail="the dump was made without secrets: set it with 'jfs config'")
        return settings


def _check_readable(doc: dict[str, Any]) -> None:
    """_Refused when the dumped setting is of a volume jfs cannot read (encrypted); other problems of the
    setting are left to `_Loader.settings`."""
    try:
        Settings.from_json(json.dumps(doc)).check_readable()
    except EncryptedVolume as exc:
        raise _Refused(f"{exc} (nothing was loaded)") from None
    except InvalidSettings:
        pass


async def _is_empty(kv: KV) -> bool:
    async def body(tx: Tx) -> bool:
        return not await tx.exists(b"\x00", b"\xff\xff")

    return await kv.read(body)


async def load_meta(
    kv: KV, read: Reader, *, progress: ProgressBoard | None = None, batch_keys: int = BATCH_KEYS,
    events: Iterator[dumpfmt.Event] | None = None,
) -> LoadResult:
    """Load the dump read through `read(n) -> bytes` (b"" at the end) into `kv`. See the module docstring.

    `events`, when given, are the dump's events (from `dump_events`, which has checked its first section
    already) and `read` is not used. Progress: one bar "Loaded entries" on `progress`. Raises OpsError
    when the engine is not empty or the dump is unusable (malformed JSON, bad setting, a volume jfs cannot
    read).
    """
    if not await _is_empty(kv):
        raise OpsError(f"{kv.url} is not empty: load needs an engine without any key")
    start = time.perf_counter()
    batches = _Batches(kv, batch_keys, BATCH_BYTES)
    bar = (progress or QuietBoard()).bar("Loaded entries", unit="entries")
    try:
        return await _load(kv, read, batches, bar, events, start)
    finally:
        bar.close()


async def _load(kv: KV, read: Reader, batches: _Batches, progress: ProgressBar,
                events: Iterator[dumpfmt.Event] | None, start: float) -> LoadResult:
    loader = _Loader(kv, batches, progress)
    s = loader.s
    try:
        for event in events if events is not None else dumpfmt.DumpReader(read).events():
            kind = event[0]
            if kind == "files":
                names, rows = event[1], event[2]
                taken = loader.files(names, rows, 0)
                while taken < len(names):
                    await batches.flush()
                    taken = loader.files(names, rows, taken)
            elif kind == "file":
                loader.file(event[1], event[2])
            elif kind == "node":
                loader.node(event[1], event[2], event[3])
            elif kind == "end":
                loader.end()
            elif kind == "section":
                loader.section_value(event[1], event[2])
            elif kind == "tree":
                loader.section = event[1]
                if loader.stack:
                    raise dumpfmt.DumpFormatError("a tree inside a tree")
            elif kind == "late":
                loader.late(event[1])
            if batches.full:
                await batches.flush()
        if s.settings is None:
            raise OpsError("the dump has no 'Setting' section")
        if s.entries == 0:
            raise OpsError("the dump has no 'FSTree' section")
        settings = s.settings
        if not s.quotas_late:
            loader.quota_records()
        for (sid, size), refs in s.shared_slices.items():
            batches.put(keys.slice_ref(sid, size), encode_i64(refs - 1))
        if not s.had_trash:
            batches.put(keys.attr(TRASH_INODE), trash_root_attr(time.time_ns()).encode())
        await batches.drain()
        await loader.fix_links()
        if s.quotas_late:
            await loader.late_quota_records()
    except BaseException as exc:
        await batches.abort()
        if isinstance(exc, _Refused):
            if batches.started:  # the Setting came after some of the tree: take it all back (the engine was empty)
                await kv.reset()
            raise OpsError(str(exc)) from None
        if isinstance(exc, dumpfmt.DumpFormatError):
            raise OpsError(f"cannot load the dump: {exc}{_partial(kv, batches)}") from None
        if isinstance(exc, OpsError) and batches.written:
            raise OpsError(f"{exc}{_partial(kv, batches)}") from None
        raise

    counters = {
        keys.NEXT_INODE: max(s.max_inode + 1, 2),
        keys.NEXT_CHUNK: max(s.max_slice + 1, 1),
        keys.NEXT_SESSION: 0,
        keys.NEXT_TRASH: s.next_trash,
        keys.USED_SPACE: s.used_space,
        keys.TOTAL_INODES: s.inodes,
    }
    log.info("load_dumped_counters", **{k: v for k, v in (s.counters or {}).items()})
    log.info("load_rebuilt_counters", **{k.decode(): v for k, v in counters.items()})

    # DirStats stays on only with directory quotas: JuiceFS clients neither charge nor enforce them
    # without it (jfs's `quota set` turns it on too); jfs writes no `U` records, which JuiceFS recomputes.
    if settings.dir_stats != bool(s.quotas):
        log.info("load_dir_stats", dir_stats=bool(s.quotas), detail="on exactly when the volume has quotas")
        settings.dir_stats = bool(s.quotas)

    if any(s.owner_limits.values()):
        settings.extra[owner_quota.FLAG] = True

    async def finish(tx: Tx) -> None:
        for name, value in counters.items():
            tx.put(keys.counter(name), encode_i64(value))
        tx.put(keys.SETTING, settings.to_json())

    await kv.txn(finish)
    if any(s.owner_limits.values()) or owner_quota.enabled(settings):
        # User and group usage is counted from the loaded tree, as JuiceFS's load does (ADR 0026).
        trash = settings.trash_days > 0
        written = await owner_quota.store_counted(kv, await owner_quota.scan_usage(kv, trash=trash), s.owner_limits)
        log.info("load_owner_quotas", records=written)
    progress.advance(s.entries % 1024)
    progress.set_total(s.entries)
    elapsed = time.perf_counter() - start
    log.info("load_done", entries=s.entries, inodes=s.inodes, seconds=round(elapsed, 3))
    return LoadResult(s.entries, s.inodes, elapsed)


def _partial(kv: KV, batches: _Batches) -> str:
    if not batches.written:
        return ""
    return f" ({kv.url} now holds a partial load: empty it before loading again)"


def dump_events(read: Reader) -> Iterator[dumpfmt.Event]:
    """The events of the dump read through `read`, its first section read and checked now: call it before
    opening the engine, so that a dump of an encrypted volume (its ``Setting`` comes first) is refused
    (OpsError) without connecting — not even an empty SQLite file is created. Pass the result to
    `load_meta` as `events`."""
    events = dumpfmt.DumpReader(read).events()
    try:
        first = next(events, None)
    except dumpfmt.DumpFormatError as exc:
        raise OpsError(f"cannot load the dump: {exc}") from None
    if first is not None and first[0] == "section" and first[1] == "Setting" and isinstance(first[2], dict):
        try:
            _check_readable(first[2])
        except _Refused as exc:
            raise OpsError(str(exc)) from None
    if first is not None:
        events = itertools.chain([first], events)
    return events

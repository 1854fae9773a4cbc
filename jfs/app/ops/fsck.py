"""`jfs fsck`: check that the metadata is self-consistent and that every file's blocks exist.

One streaming scan of the inode key space (``A…``) builds a compact model — per inode its type, nlink,
parent, length and ctime; per inode the directories holding its names; the per-parent counters of hard
links — from which these problems are found:

==================  ===========================================================  ==========================
kind                what                                                         ``--repair``
==================  ===========================================================  ==========================
lost-blocks         a file refers to block objects that are missing, or whose    the unreadable ranges become
                    stored size is wrong (uncompressed volumes)                  holes (read as zeros); the
                                                                                 file keeps its path and size
broken-dentry       a directory entry names an inode that does not exist         entry removed
dead-entries        entries stored under an inode that is missing or not a       entries removed (their
                    directory                                                    inodes become orphans)
stray-records       chunks, xattrs, symlink target or parent counters of an     released like a deleted
                    inode without attributes (and no delfile marker)             file's, then removed
wrong-type          an entry's type differs from its inode's                     entry rewritten
wrong-nlink         nlink differs from the names (files) or 2 + subdirectories   nlink set
                    (directories)
wrong-parent        attribute parent / hard-link parent counters (``A<ino>P``)   parent and counters set
                    disagree with the names
orphan              an inode with attributes but no name, not held open          moved to ``/lost+found`` as
                    (sustained) and not the root or trash root                   ``#<ino>``; a file with
                                                                                 nlink 0 or a trash parent
                                                                                 is deleted instead
multi-linked-dir    a directory with more than one name                          reported only
counters            usedSpace / totalInodes differ from Σ align4k / the number   the difference is added
                    of inodes (root and trash root excluded)
==================  ===========================================================  ==========================

Blocks: the whole-volume check lists ``<volume>/chunks/`` once and counts, per referenced slice, the blocks
present; only slices with a block missing (or of the wrong size) are looked at again (HEAD of each block,
then a scan for the chunks that use them). A block counts as lost for a file only when one of its slice
records covers bytes in it. With ``path`` only the files below that path are checked, by HEAD requests.

Scope: without ``path`` everything is checked. With ``path`` the metadata model is still built from the
whole volume (link counts need every name), but only problems of inodes below ``path`` (``recursive``) or
of ``path`` and its direct entries are reported and repaired; orphans, stray records and counters are
whole-volume notions and are checked only without ``path``.

Live volumes: the scan is not a snapshot. Inodes changed after the scan started (ctime) are not judged;
every repair is one transaction that first re-checks what was found (the inode unchanged, the entry still
dangling, …) and skips it otherwise; counters are compared only when they did not move during the scan
and every file the scan counted is still as it saw it (a delete and a create of the same size leave the
counters where they were), and repaired by adding the difference. Memory: about 350 bytes per inode (measured) plus 10 per distinct
slice.
"""

from __future__ import annotations

import time
from array import array
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from jfs.app.compose import open_bucket
from jfs.app.meta import chunks, store
from jfs.app.meta.engine import Meta
from jfs.app.meta.remove import delete_inode
from jfs.app.ops.gc import (
    CHUNK_BEGIN,
    CHUNK_END,
    DEFAULT_THREADS,
    PROGRESS_STEP,
    SliceSet,
    block_store,
    bounded,
    chunk_slices,
    free_hook,
    is_chunk_key,
    list_blocks,
    read_delfiles,
)
from jfs.app.progress import ProgressBar, ProgressBoard, QuietBoard
from jfs.app.volume import VolumeError, loaded_volume
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, Attr, FileType, align4k, is_trash_inode
from jfs.domain.chunks import CHUNK_SIZE, block_count, block_key, block_len, parse_block_key, valid_block
from jfs.domain.records import SliceRecord, decode_dentry, decode_i64, decode_slices, encode_slices
from jfs.ports.kv import KV, Tx
from jfs.ports.objects import ObjectNotFound, ObjectStore

log = structlog.get_logger("jfs.fsck")

LOST_FOUND = b"lost+found"
LOST_FOUND_MODE = 0o700
_I, _D, _C, _P = 0x49, 0x44, 0x43, 0x50
_DIR = int(FileType.DIRECTORY)
_REG = int(FileType.REGULAR)

KINDS = (
    "lost-blocks",
    "broken-dentry",
    "dead-entries",
    "stray-records",
    "wrong-type",
    "wrong-nlink",
    "wrong-parent",
    "orphan",
    "multi-linked-dir",
    "counters",
)


@dataclass
class Issue:
    """One problem found; `repair` says what ``--repair`` does about it ("" = nothing can be done)."""

    kind: str
    detail: str
    ino: int = 0
    """The inode concerned (for entry problems: the inode the entry names)."""
    parent: int = 0
    """For entry problems: the directory holding the entry."""
    name: bytes = b""
    path: str = ""
    repair: str = ""
    repaired: bool = False
    error: str = ""
    """Why a repair was not done (changed meanwhile, failed…)."""

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["name"] = self.name.decode(errors="replace")
        return doc


@dataclass
class FsckReport:
    """What `run_fsck` found (and repaired)."""

    scope: str = "/"
    recursive: bool = True
    issues: list[Issue] = field(default_factory=list)
    inodes: int = 0
    directories: int = 0
    files: int = 0
    entries: int = 0
    slices: int = 0
    objects: int = 0
    """Block objects listed (whole-volume check) or HEAD requests made (path check)."""
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    """name → {"stored", "expected"} (empty when not checked)."""
    counters_note: str = ""
    repair: bool = False
    seconds: float = 0.0

    @property
    def remaining(self) -> list[Issue]:
        """Issues still present (not repaired)."""
        return [i for i in self.issues if not i.repaired]

    def summary(self) -> str:
        found = len(self.issues)
        line = (
            f"checked {self.inodes} inodes ({self.directories} directories, {self.files} files), "
            f"{self.entries} entries, {self.slices} slices, {self.objects} objects: "
        )
        if not found:
            return line + "no problems found"
        by_kind: dict[str, int] = defaultdict(int)
        for i in self.issues:
            by_kind[i.kind] += 1
        line += f"{found} problems (" + ", ".join(f"{n} {k}" for k, n in by_kind.items()) + ")"
        if self.repair:
            line += f"; repaired {found - len(self.remaining)}, {len(self.remaining)} remain"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "Scope": self.scope,
            "Recursive": self.recursive,
            "Inodes": self.inodes,
            "Directories": self.directories,
            "Files": self.files,
            "Entries": self.entries,
            "Slices": self.slices,
            "Objects": self.objects,
            "Counters": self.counters,
            "CountersNote": self.counters_note,
            "Issues": [i.to_dict() for i in self.issues],
            "Repair": self.repair,
            "Remaining": len(self.remaining),
            "Seconds": round(self.seconds, 3),
        }


# ---------------------------------------------------------------------------------------------- model


class _Model:
    """What the scan of the inode key space found (see the module docstring)."""

    def __init__(self, delfiles: dict[int, tuple[int, int]], slices: SliceSet | None) -> None:
        self.delfiles = delfiles
        self.slices = slices
        self.attrs: dict[int, tuple[int, int, int, int, int]] = {}
        """ino → (type, nlink, parent, length, ctime_ns)."""
        self.first: dict[int, int] = {}
        """child → parent * 8 + entry type, of the first entry naming it."""
        self.multi: dict[int, dict[int, int]] = {}
        """child → {parent: entries} for inodes with more than one name."""
        self.prefs: dict[int, dict[int, int]] = {}
        """ino → {parent: count} of the hard-link parent counters."""
        self.dead: dict[int, int] = {}
        """inode without attributes (or not a directory) → entries stored under it."""
        self.stray: dict[int, tuple[set[str], int]] = {}
        """inode without attributes and no delfile → (record kinds, highest chunk index)."""
        self.entries = 0
        self.keys = 0

    # -- entries ---------------------------------------------------------------------------------------

    def add_entry(self, parent: int, child: int, typ: int) -> None:
        first = self.first.get(child)
        if first is None:
            self.first[child] = parent * 8 + typ
            return
        counts = self.multi.get(child)
        if counts is None:
            counts = self.multi[child] = {first >> 3: 1}
        counts[parent] = counts.get(parent, 0) + 1

    def drop_entry(self, parent: int, child: int) -> None:
        """Forget one entry of `parent` naming `child` (entries of a dead directory do not count)."""
        counts = self.multi.get(child)
        first = self.first.get(child)
        if counts is None:
            if first is not None and first >> 3 == parent:
                del self.first[child]
            return
        counts[parent] -= 1
        if not counts[parent]:
            del counts[parent]
        assert first is not None
        if first >> 3 == parent and parent not in counts:
            self.first[child] = next(iter(counts)) * 8 + (first & 7)
        if sum(counts.values()) == 1:
            del self.multi[child]

    def names(self, ino: int) -> dict[int, int]:
        """parent → number of entries naming `ino`."""
        counts = self.multi.get(ino)
        if counts is not None:
            return dict(counts)
        first = self.first.get(ino)
        return {} if first is None else {first >> 3: 1}

    def links(self, ino: int) -> int:
        counts = self.multi.get(ino)
        if counts is not None:
            return sum(counts.values())
        return 1 if ino in self.first else 0

    def some_parent(self, ino: int) -> int:
        first = self.first.get(ino)
        if first is not None:
            return first >> 3
        attr = self.attrs.get(ino)
        return attr[2] if attr is not None else 0


async def _scan(kv: KV, model: _Model, progress: ProgressBoard) -> None:
    """Fill `model` from one streaming scan of ``A…`` (every inode's records, grouped by inode)."""
    bar = progress.bar("Scanned metadata keys", unit="keys")

    async def body(tx: Tx) -> _Model:
        m = _Model(model.delfiles, model.slices)
        group = _Group(0)
        n = 0
        async for key, value in tx.scan_iter(CHUNK_BEGIN, CHUNK_END):
            n += 1
            if n % PROGRESS_STEP == 0:
                bar.advance(PROGRESS_STEP)
            if len(key) < 10:
                continue
            ino = int.from_bytes(key[1:9], "little")
            if ino != group.ino:
                group.close(m)
                group = _Group(ino)
            kind = key[9]
            if kind == _I and len(key) == 10:
                attr = Attr.decode(value)
                m.attrs[ino] = (int(attr.typ), attr.nlink, attr.parent, attr.length, attr.ctime_ns)
                group.typ = int(attr.typ)
            elif kind == _D and len(key) > 10:
                typ, child = decode_dentry(value)
                m.add_entry(ino, child, int(typ))
                group.children.append(child)
                m.entries += 1
            elif kind == _C and len(key) == 14:
                group.kinds.add("chunks")
                group.max_indx = max(group.max_indx, int.from_bytes(key[10:14], "big"))
                if m.slices is not None and ino not in m.delfiles:
                    for sid, size, _, _ in chunk_slices(value):
                        m.slices.add(sid, size)
            elif kind == _P and len(key) == 18:
                group.prefs[keys.ino_from_le(key, 10)] = decode_i64(value)
            else:
                group.kinds.add({0x53: "symlink", 0x58: "xattrs"}.get(kind, f"key {chr(kind)!r}"))
        group.close(m)
        m.keys = n
        bar.advance(n % PROGRESS_STEP)
        return m

    try:
        result = await kv.read(body)
    finally:
        bar.close()
    model.__dict__.update(result.__dict__)


class _Group:
    """The records of one inode seen so far by the scan."""

    def __init__(self, ino: int) -> None:
        self.ino = ino
        self.typ = 0
        self.children: array[int] = array("Q")
        self.kinds: set[str] = set()
        self.prefs: dict[int, int] = {}
        self.max_indx = -1

    def close(self, m: _Model) -> None:
        if not self.ino:
            return
        if self.children and self.typ != _DIR:
            for child in self.children:
                m.drop_entry(self.ino, child)
            m.dead[self.ino] = len(self.children)
        if self.typ:
            if self.prefs:
                m.prefs[self.ino] = self.prefs
            return
        if self.prefs:
            self.kinds.add("parent counters")
        if self.kinds and self.ino not in m.delfiles:
            m.stray[self.ino] = (self.kinds, self.max_indx)


async def _read_counters(kv: KV) -> tuple[int, int]:
    async def body(tx: Tx) -> tuple[int, int]:
        used, inodes = await tx.get_many([keys.counter(keys.USED_SPACE), keys.counter(keys.TOTAL_INODES)])
        return decode_i64(used), decode_i64(inodes)

    return await kv.read(body)


async def _sustained(kv: KV) -> set[int]:
    async def body(tx: Tx) -> set[int]:
        out = set()
        async for key, _ in tx.scan_iter(b"SS", keys.prefix_end(b"SS")):
            if len(key) == 18:
                out.add(keys.ino_from_le(key, 10))
        return out

    return await kv.read(body)


# --------------------------------------------------------------------------------------------- checks


@dataclass
class _Fix:
    """What --repair changes in one inode's attributes (None = leave as is)."""

    seen: tuple[int, int, int, int, int]
    nlink: int | None = None
    parent: int | None = None
    prefs: dict[int, int] | None = None
    orphan: str | None = None
    """"lost+found" or "delete"."""
    issues: list[Issue] = field(default_factory=list)


def _judge(model: _Model, sustained: set[int], since_ns: int) -> tuple[list[Issue], dict[int, _Fix]]:
    """The metadata problems of the model; inodes whose ctime is at or after `since_ns` are not judged.

    Returns (problems of entries and records, per-inode attribute fixes whose `issues` are the problems
    of that inode's attributes).
    """
    issues: list[Issue] = []
    fixes: dict[int, _Fix] = {}
    attrs = model.attrs
    subdirs: dict[int, int] = defaultdict(int)
    for child, first in model.first.items():
        a = attrs.get(child)
        if a is None:
            for parent, n in model.names(child).items():
                for _ in range(n):
                    issues.append(Issue("broken-dentry", f"entry names inode {child}, which does not exist",
                                        ino=child, parent=parent, repair="remove the entry"))  # fmt: skip
            continue
        if a[0] == _DIR:
            for parent, n in model.names(child).items():
                subdirs[parent] += n
        if first & 7 != a[0] and child not in model.multi:
            issues.append(Issue("wrong-type", f"entry says {_what(first & 7)}, inode is {_what(a[0])}",
                                ino=child, parent=first >> 3,
                                repair="rewrite the entry's type"))  # fmt: skip
    for ino, count in model.dead.items():
        what = "does not exist" if ino not in attrs else "is not a directory"
        issues.append(Issue("dead-entries", f"{count} entries stored under inode {ino}, which {what}", ino=ino,
                            repair="remove the entries (their inodes become orphans)"))  # fmt: skip
    for ino, (kinds, _) in model.stray.items():
        issues.append(Issue("stray-records", f"{', '.join(sorted(kinds))} of inode {ino}, which does not exist",
                            ino=ino, repair="release the data and remove the records"))  # fmt: skip

    def fix(ino: int) -> _Fix:
        f = fixes.get(ino)
        if f is None:
            f = fixes[ino] = _Fix(attrs[ino])
        return f

    for ino, a in attrs.items():
        typ, nlink, parent, _length, ctime = a
        if ctime >= since_ns:
            continue
        names = model.names(ino)
        links = sum(names.values())
        # A counter at 0 counts nothing: JuiceFS leaves the key in place when a hard link's last name in a
        # directory goes (and keeps parent 0 once one name is left), which is as valid as jfs's deleting it.
        refs = {p: n for p, n in model.prefs.get(ino, {}).items() if n != 0}
        special = ino in (ROOT_INODE, TRASH_INODE)
        if typ == _DIR:
            want = 2 + subdirs.get(ino, 0)
            if ino == TRASH_INODE and nlink in (2, want):
                want = nlink  # JuiceFS keeps 2 whatever the hour directories; earlier jfs counted them
            if nlink != want:
                f = fix(ino)
                f.nlink = want
                f.issues.append(Issue("wrong-nlink", f"directory nlink {nlink}, should be {want}", ino=ino,
                                      repair=f"set nlink to {want}"))  # fmt: skip
            if special:
                if parent != ROOT_INODE:
                    f = fix(ino)
                    f.parent = ROOT_INODE
                    f.issues.append(Issue("wrong-parent", f"parent {parent}, should be 1", ino=ino,
                                          repair="set parent to 1"))  # fmt: skip
                continue
            if links == 0:
                f = fix(ino)
                f.orphan = "lost+found"
                f.issues.append(Issue("orphan", "directory without a name", ino=ino,
                                      repair=f"move to /{LOST_FOUND.decode()}/#{ino}"))  # fmt: skip
            elif links > 1:
                issues.append(Issue("multi-linked-dir", f"directory has {links} names", ino=ino))
            else:
                (dp,) = names
                if parent != dp or refs:
                    f = fix(ino)
                    f.parent, f.prefs = dp, {}
                    f.issues.append(Issue("wrong-parent", f"parent {parent}, but its entry is in {dp}", ino=ino,
                                          repair=f"set parent to {dp}"))  # fmt: skip
            continue
        if special:
            continue
        if links == 0:
            if nlink == 0 and ino in sustained:
                continue  # open after unlink: deleted on the last close
            f = fix(ino)
            if nlink == 0 or is_trash_inode(parent):
                f.orphan = "delete"
                f.issues.append(Issue("orphan", f"{_what(typ)} without a name (nlink {nlink}), not held open",
                                      ino=ino, repair="delete it"))  # fmt: skip
            else:
                f.orphan = "lost+found"
                f.issues.append(Issue("orphan", f"{_what(typ)} without a name (nlink {nlink})",
                                      ino=ino, repair=f"move to /{LOST_FOUND.decode()}/#{ino}"))  # fmt: skip
            continue
        if nlink != links:
            f = fix(ino)
            f.nlink = links
            f.issues.append(Issue("wrong-nlink", f"nlink {nlink}, but {links} names", ino=ino,
                                  repair=f"set nlink to {links}"))  # fmt: skip
        if links == 1:
            (dp,) = names
            ok = (parent == dp and not refs) or (parent == 0 and refs == {dp: 1})
            if not ok:
                f = fix(ino)
                f.parent, f.prefs = dp, {}
                f.issues.append(Issue("wrong-parent", f"parent {parent} / counters {refs}, but its name is in {dp}",
                                      ino=ino, repair=f"set parent to {dp}"))  # fmt: skip
        elif parent != 0 or refs != names:
            f = fix(ino)
            f.parent, f.prefs = 0, names
            f.issues.append(Issue("wrong-parent", f"parent {parent} / counters {refs}, but names in {names}",
                                  ino=ino, repair="set parent 0 and the per-parent counters"))  # fmt: skip
    return issues, fixes


_TYPE_NAMES = {1: "file", 2: "directory", 3: "symlink", 4: "fifo", 5: "block device", 6: "char device",
               7: "socket"}  # fmt: skip


def _what(typ: int) -> str:
    return _TYPE_NAMES.get(typ, f"type {typ}")


def _expected_counters(model: _Model) -> tuple[int, int]:
    """Σ align4k / number of inodes, the trash's hour directories included (as JuiceFS counts them)."""
    space = inodes = 0
    for ino, (typ, _, _, length, _) in model.attrs.items():
        if ino in (ROOT_INODE, TRASH_INODE):
            continue
        space += align4k(length if typ == _REG else 0)
        inodes += 1
    return space, inodes


# --------------------------------------------------------------------------------------------- blocks


def _size_ok(stored: int, blen: int, compressed: bool) -> bool:
    return stored > 0 if compressed else stored == blen


def _record_blocks(off: int, length: int, block_size: int) -> range:
    """Indexes of the blocks of a slice that hold bytes [off, off+length) of it."""
    if length <= 0:
        return range(0)
    return range(off // block_size, (off + length - 1) // block_size + 1)


async def _incomplete_slices(
    store: ObjectStore, volume: str, slices: SliceSet, block_size: int, hashed: bool, compressed: bool,
    report: FsckReport, progress: ProgressBoard,
) -> list[tuple[int, int]]:  # fmt: skip
    """List the volume's blocks once; the referenced slices that lack a block (or have a bad one)."""
    found = array("H", bytes(2 * len(slices)))
    bad: set[tuple[int, int]] = set()
    async for rel, obj in list_blocks(store, volume, progress):
        report.objects += 1
        parsed = parse_block_key(rel)
        if parsed is None or rel != block_key(*parsed, hash_prefix=hashed):
            continue
        sid, index, blen = parsed
        for size in slices.sizes(sid):
            if valid_block(size, block_size, index, blen):
                if _size_ok(obj.size, blen, compressed):
                    i = slices.index(sid, size)
                    assert i is not None
                    found[i] = min(found[i] + 1, 0xFFFF)
                else:
                    bad.add((sid, size))
    out = [
        pair for i, pair in enumerate(slices) if found[i] < block_count(pair[1], block_size) or pair in bad
    ]
    return out


async def _head_blocks(
    store: ObjectStore, volume: str, wanted: Iterable[tuple[int, int, int]], block_size: int, hashed: bool,
    compressed: bool, threads: int, report: FsckReport, bar: ProgressBar | None = None,
) -> dict[tuple[int, int], dict[int, str]]:  # fmt: skip
    """HEAD blocks (slice id, size, index); returns (id, size) → {index: "missing" | "size N"} of bad ones."""
    bad: dict[tuple[int, int], dict[int, str]] = defaultdict(dict)

    async def one(sid: int, size: int, index: int) -> None:
        blen = block_len(size, block_size, index)
        key = f"{volume}/{block_key(sid, index, blen, hashed)}"
        report.objects += 1
        if bar is not None:
            bar.advance()
        try:
            info = await store.head(key)
        except ObjectNotFound:
            bad[(sid, size)][index] = "missing"
            return
        if not _size_ok(info.size, blen, compressed):
            bad[(sid, size)][index] = f"size {info.size}"

    for r in await bounded((one(*w) for w in wanted), threads):
        if isinstance(r, BaseException):
            raise r
    return dict(bad)


async def _files_using(
    kv: KV, broken: dict[tuple[int, int], dict[int, str]], block_size: int
) -> dict[int, set[tuple[int, int, int]]]:
    """ino → {(slice id, size, block index)} of broken blocks that the inode's records cover."""
    ids = {sid for sid, _ in broken}

    async def body(tx: Tx) -> dict[int, set[tuple[int, int, int]]]:
        out: dict[int, set[tuple[int, int, int]]] = defaultdict(set)
        async for key, value in tx.scan_iter(CHUNK_BEGIN, CHUNK_END):
            if not is_chunk_key(key):
                continue
            for sid, size, off, length in chunk_slices(value):
                if sid in ids:
                    bad = broken.get((sid, size), {})
                    for index in _record_blocks(off, length, block_size):
                        if index in bad:
                            out[keys.ino_from_le(key, 1)].add((sid, size, index))
        return dict(out)

    return await kv.read(body)


def _lost_issue(ino: int, blocks: set[tuple[int, int, int]], why: dict[tuple[int, int], dict[int, str]],
                volume_keys: Any) -> Issue:  # fmt: skip
    shown = sorted(blocks)[:5]
    names = [f"{volume_keys(sid, size, index)} ({why.get((sid, size), {}).get(index, 'missing')})"
             for sid, size, index in shown]  # fmt: skip
    more = f" and {len(blocks) - len(shown)} more" if len(blocks) > len(shown) else ""
    noun = "block" if len(blocks) == 1 else "blocks"
    return Issue("lost-blocks", f"{len(blocks)} unreadable {noun}: {', '.join(names)}{more}", ino=ino,
                 repair="turn the unreadable ranges into holes (zeros)")  # fmt: skip


# ---------------------------------------------------------------------------------------------- scope


async def _lookup_path(kv: KV, path: str) -> int:
    """Inode of absolute `path` inside the volume; VolumeError when it does not exist."""
    ino = ROOT_INODE
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        if ino == ROOT_INODE and part == ".trash":
            ino = TRASH_INODE
            continue
        name = part.encode()

        async def body(tx: Tx, parent: int = ino, name: bytes = name) -> int | None:
            raw = await tx.get(keys.dentry(parent, name))
            return None if raw is None else decode_dentry(raw)[1]

        found = await kv.read(body)
        if found is None:
            raise VolumeError(f"no such file or directory in the volume: /{'/'.join(parts[: i + 1])}")
        ino = found
    return ino


async def _subtree(kv: KV, top: int, recursive: bool) -> tuple[set[int], list[int]]:
    """(inodes in scope, regular files among them): `top`, and below it all or only direct entries."""
    scope = {top}
    files: list[int] = []

    async def attr_of(tx: Tx) -> Attr | None:
        raw = await tx.get(keys.attr(top))
        return None if raw is None else Attr.decode(raw)

    attr = await kv.read(attr_of)
    if attr is not None and attr.typ is FileType.REGULAR:
        files.append(top)
    todo = [top] if attr is not None and attr.typ is FileType.DIRECTORY else []
    while todo:
        parent = todo.pop()
        prefix = keys.dentry_prefix(parent)

        async def body(tx: Tx, prefix: bytes = prefix) -> list[tuple[FileType, int]]:
            return [decode_dentry(v) async for _, v in tx.scan_iter(prefix, keys.prefix_end(prefix))]

        for typ, ino in await kv.read(body):
            if ino in scope:
                continue
            scope.add(ino)
            if typ is FileType.REGULAR:
                files.append(ino)
            elif typ is FileType.DIRECTORY and recursive:
                todo.append(ino)
    return scope, files


async def _file_blocks(kv: KV, files: list[int], block_size: int) -> dict[int, set[tuple[int, int, int]]]:
    """ino → {(slice id, size, block index)} of every block its records cover."""
    out: dict[int, set[tuple[int, int, int]]] = {}
    for ino in files:
        prefix = keys.chunk_prefix(ino)

        async def body(tx: Tx, prefix: bytes = prefix) -> set[tuple[int, int, int]]:
            used: set[tuple[int, int, int]] = set()
            async for _, value in tx.scan_iter(prefix, keys.prefix_end(prefix)):
                for sid, size, off, length in chunk_slices(value):
                    for index in _record_blocks(off, length, block_size):
                        if index < block_count(size, block_size):
                            used.add((sid, size, index))
            return used

        out[ino] = await kv.read(body)
    return out


# ---------------------------------------------------------------------------------------------- paths


class _Paths:
    """Paths of inodes, resolved in batches: one scan of each parent directory involved."""

    def __init__(self, kv: KV, model: _Model) -> None:
        self.kv = kv
        self.model = model
        self.known: dict[int, str] = {ROOT_INODE: "/", TRASH_INODE: "/.trash"}
        self.link: dict[int, tuple[int, bytes]] = {}

    async def resolve(self, inos: Iterable[int]) -> None:
        want = {i for i in inos if i not in self.known and i not in self.link}
        seen: set[int] = set()
        while want:
            seen |= want
            by_parent: dict[int, set[int]] = defaultdict(set)
            for ino in want:
                parent = self.model.some_parent(ino)
                if parent:
                    by_parent[parent].add(ino)
            nxt: set[int] = set()
            for parent, kids in by_parent.items():
                for kid, names in (await names_in(self.kv, parent, kids)).items():
                    self.link[kid] = (parent, names[0])
                    if parent not in self.known and parent not in self.link and parent not in seen:
                        nxt.add(parent)
            want = nxt

    def path(self, ino: int) -> str:
        """The path of `ino` (``<inode N>/…`` from the first ancestor without a known name)."""
        names: list[bytes] = []
        cur = ino
        while cur not in self.known:
            step = self.link.get(cur)
            if step is None or len(names) > 4096:
                prefix = f"<inode {cur}>"
                break
            names.append(step[1])
            cur = step[0]
        else:
            prefix = self.known[cur].rstrip("/")
        return prefix + "".join("/" + n.decode(errors="replace") for n in reversed(names)) or "/"

    def entry_path(self, parent: int, name: bytes) -> str:
        return self.path(parent).rstrip("/") + "/" + name.decode(errors="replace")


async def names_in(kv: KV, parent: int, kids: set[int]) -> dict[int, list[bytes]]:
    """child → its names in directory `parent`, for the children in `kids` (one scan of the directory)."""
    prefix = keys.dentry_prefix(parent)

    async def body(tx: Tx) -> dict[int, list[bytes]]:
        out: dict[int, list[bytes]] = defaultdict(list)
        async for key, value in tx.scan_iter(prefix, keys.prefix_end(prefix)):
            child = decode_dentry(value)[1]
            if child in kids:
                out[child].append(key[len(prefix) :])
        return dict(out)

    return await kv.read(body)


# ---------------------------------------------------------------------------------------------- fsck


async def run_fsck(
    meta_url: str,
    *,
    path: str | None = None,
    recursive: bool = False,
    repair: bool = False,
    threads: int = DEFAULT_THREADS,
    progress: ProgressBoard | None = None,
) -> FsckReport:
    """Check the volume at `meta_url` (or the part at `path`) and, with `repair`, fix what can be fixed.

    See the module docstring for the problems and repairs. Raises VolumeError for an unformatted engine or
    a `path` that does not exist.
    """
    started = time.monotonic()
    progress = progress or QuietBoard()
    async with loaded_volume(meta_url) as meta:
        bucket = await open_bucket(meta.settings)
        blocks = block_store(meta, bucket, threads)
        meta.free_hook = free_hook(blocks)
        try:
            report = await _fsck(meta, bucket, path, recursive, repair, threads, progress)
        finally:
            await meta.close()
            await blocks.close()
            await bucket.close()
    report.seconds = time.monotonic() - started
    log.info("fsck_done", summary=report.summary())
    return report


async def _fsck(
    meta: Meta, bucket: ObjectStore, path: str | None, recursive: bool, repair: bool, threads: int,
    progress: ProgressBoard,
) -> FsckReport:  # fmt: skip
    kv, settings = meta.kv, meta.settings
    bs, hashed, volume = settings.block_bytes, settings.hash_prefix, settings.name
    # Sealed objects are larger than their block, too: only their existence can be checked.
    compressed = (settings.compression or "none") != "none" or bool(settings.encrypt_key)
    whole = path is None or path.strip("/") == "" and recursive
    report = FsckReport(scope=path or "/", recursive=recursive if path else True, repair=repair)
    scope: set[int] | None = None
    files: list[int] = []
    if not whole:
        assert path is not None
        top = await _lookup_path(kv, path)
        scope, files = await _subtree(kv, top, recursive)

    since = time.time_ns()
    before = await _read_counters(kv)
    delfiles = await read_delfiles(kv)
    sustained = await _sustained(kv)
    model = _Model(delfiles, SliceSet() if whole else None)
    await _scan(kv, model, progress)
    after = await _read_counters(kv)
    deleting = await read_delfiles(kv)  # files deleted during the scan are not stray
    model.stray = {ino: v for ino, v in model.stray.items() if ino not in deleting}

    issues, fixes = _judge(model, sustained, since)
    # The scan is not a snapshot: drop what changed since (the attributes moved on, the data went away).
    fixes = await _confirm_fixes(kv, fixes)
    for f in fixes.values():
        issues += f.issues
    stray = await _confirm_stray(kv, set(model.stray))
    issues = [i for i in issues if i.kind != "stray-records" or i.ino in stray]
    report.inodes = len(model.attrs)
    report.directories = sum(1 for a in model.attrs.values() if a[0] == _DIR)
    report.files = sum(1 for a in model.attrs.values() if a[0] == _REG)
    report.entries = model.entries

    # Blocks.
    def volume_key(sid: int, size: int, index: int) -> str:
        return block_key(sid, index, block_len(size, bs, index), hashed)

    lost: dict[int, set[tuple[int, int, int]]]
    why: dict[tuple[int, int], dict[int, str]]
    if whole:
        assert model.slices is not None
        slices = model.slices.freeze()
        report.slices = len(slices)
        incomplete = await _incomplete_slices(bucket, volume, slices, bs, hashed, compressed, report, progress)
        wanted = [(sid, size, i) for sid, size in incomplete for i in range(block_count(size, bs))]
        why = await _head_blocks(bucket, volume, wanted, bs, hashed, compressed, threads, report)
        lost = await _files_using(kv, why, bs) if why else {}
    else:
        used = await _file_blocks(kv, [f for f in files if f not in delfiles], bs)
        report.slices = len({(sid, size) for u in used.values() for sid, size, _ in u})
        wanted_set = {b for u in used.values() for b in u}
        bar = progress.bar("Checked blocks", total=len(wanted_set), unit="blocks")
        try:
            why = await _head_blocks(bucket, volume, wanted_set, bs, hashed, compressed, threads, report, bar)
        finally:
            bar.close()
        lost = {ino: {b for b in u if b[2] in why.get((b[0], b[1]), {})} for ino, u in used.items()}
        lost = {ino: b for ino, b in lost.items() if b}
    lost = await _confirm_lost(kv, {ino: b for ino, b in lost.items() if ino in model.attrs}, bs)
    for ino, bad in sorted(lost.items()):
        issues.append(_lost_issue(ino, bad, why, volume_key))

    # Counters (whole volume only, and only when they did not move during the scan).
    if whole:
        space, inodes = _expected_counters(model)
        if before != after:
            report.counters_note = "not checked: the counters changed during the scan (the volume is in use)"
        else:
            report.counters = {
                "usedSpace": {"stored": before[0], "expected": space},
                "totalInodes": {"stored": before[1], "expected": inodes},
            }
            if before != (space, inodes) and not await _files_unchanged(kv, model):
                # Same counters before and after, yet a file counted by the scan changed since: a delete
                # and a create of the same size in between (A-B-A). Not a fault of the counters.
                report.counters = {}
                report.counters_note = "not checked: files changed during the scan (the volume is in use)"
            elif before != (space, inodes):
                issues.append(Issue("counters", f"usedSpace {before[0]} (expected {space}), totalInodes "
                                    f"{before[1]} (expected {inodes})", repair="add the difference"))  # fmt: skip
    # Scope filter.
    if scope is not None:
        global_kinds = ("orphan", "stray-records", "dead-entries", "counters")
        issues = [
            i for i in issues
            if i.kind not in global_kinds and (i.parent in scope if i.parent else i.ino in scope)
        ]  # fmt: skip
    # Confirm dangling entries (an inode created during the scan may have been missed).
    issues = [i for i in issues if i.kind != "broken-dentry"] + await _confirm_broken(
        kv, [i for i in issues if i.kind == "broken-dentry"]
    )
    # Paths.
    paths = _Paths(kv, model)
    await paths.resolve({i.parent or i.ino for i in issues if i.parent or i.ino})
    for issue in issues:
        if issue.kind in ("broken-dentry", "wrong-type") and issue.parent:
            if not issue.name:
                found = await names_in(kv, issue.parent, {issue.ino})
                issue.name = (found.get(issue.ino) or [b"?"])[0]
            issue.path = paths.entry_path(issue.parent, issue.name)
        elif issue.kind in ("counters",):
            issue.path = "/"
        elif issue.ino:
            issue.path = paths.path(issue.ino)
    issues.sort(key=lambda i: (KINDS.index(i.kind), i.path))
    report.issues = issues
    for issue in issues:
        log.warning("fsck_problem", kind=issue.kind, path=issue.path, detail=issue.detail)
    if repair and issues:
        await _repair(meta, model, report, fixes, lost, why, delfiles, before, after)
    return report


async def _confirm_broken(kv: KV, found: list[Issue]) -> list[Issue]:
    """The dangling-entry problems that are still there (one entry per problem, with its name)."""
    out: list[Issue] = []
    by_parent: dict[int, list[Issue]] = defaultdict(list)
    for issue in found:
        by_parent[issue.parent].append(issue)
    for parent, group in by_parent.items():
        names = await names_in(kv, parent, {i.ino for i in group})
        missing = await _missing_attrs(kv, list(names))
        for issue in group:
            left = names.get(issue.ino, [])
            if issue.ino in missing and left:
                issue.name = left.pop(0)
                out.append(issue)
    return out


async def _attrs_now(kv: KV, inos: list[int]) -> AsyncIterator[tuple[int, Attr | None]]:
    """The current attributes of `inos` (None: gone), read 500 at a time."""
    for i in range(0, len(inos), 500):
        part = inos[i : i + 500]

        async def body(tx: Tx, part: list[int] = part) -> list[bytes | None]:
            return await tx.get_many([keys.attr(ino) for ino in part])

        for ino, raw in zip(part, await kv.read(body), strict=True):
            yield ino, None if raw is None else Attr.decode(raw)


async def _confirm_fixes(kv: KV, fixes: dict[int, _Fix]) -> dict[int, _Fix]:
    """The fixes whose inode still has the attributes the scan saw."""
    return {ino: fixes[ino] async for ino, attr in _attrs_now(kv, list(fixes))
            if attr is not None and _same(attr, fixes[ino].seen)}  # fmt: skip


async def _files_unchanged(kv: KV, model: _Model) -> bool:
    """Whether every inode the scan counted still exists with the type and length it saw."""
    inos = [ino for ino in model.attrs if ino != ROOT_INODE and not is_trash_inode(ino)]
    async for ino, attr in _attrs_now(kv, inos):
        typ, _, _, length, _ = model.attrs[ino]
        if attr is None or int(attr.typ) != typ or (typ == _REG and align4k(attr.length) != align4k(length)):
            return False
    return True


def _same(attr: Attr, seen: tuple[int, int, int, int, int]) -> bool:
    typ, nlink, parent, _, ctime = seen
    return (int(attr.typ), attr.nlink, attr.parent, attr.ctime_ns) == (typ, nlink, parent, ctime)


async def _confirm_stray(kv: KV, inos: set[int]) -> set[int]:
    """The inodes of `inos` that still have records but neither attributes nor a delfile marker."""

    async def body(tx: Tx) -> set[int]:
        out = set()
        for ino in inos:
            prefix = keys.inode_prefix(ino)
            marker = b"D" + keys.ino_le(ino)
            if await tx.get(keys.attr(ino)) is not None or await tx.exists(marker, keys.prefix_end(marker)):
                continue
            rows = await tx.scan(prefix, keys.prefix_end(prefix), keys_only=True)
            if any(len(k) > 9 and k[9] != _D for k, _ in rows):
                out.add(ino)
        return out

    return await kv.read(body) if inos else set()


async def _confirm_lost(
    kv: KV, lost: dict[int, set[tuple[int, int, int]]], block_size: int
) -> dict[int, set[tuple[int, int, int]]]:
    """`lost` restricted to the blocks the inodes' records still cover (a slice released and deleted
    since the check is not lost)."""
    if not lost:
        return {}
    now = await _file_blocks(kv, list(lost), block_size)
    out = {ino: bad & now.get(ino, set()) for ino, bad in lost.items()}
    return {ino: bad for ino, bad in out.items() if bad}


async def _missing_attrs(kv: KV, inos: list[int]) -> set[int]:
    """The inodes of `inos` that have no attributes."""

    async def body(tx: Tx) -> set[int]:
        raws = await tx.get_many([keys.attr(i) for i in inos])
        return {i for i, r in zip(inos, raws, strict=True) if r is None}

    return await kv.read(body)


# --------------------------------------------------------------------------------------------- repair


async def _repair(
    meta: Meta, model: _Model, report: FsckReport, fixes: dict[int, _Fix],
    lost: dict[int, set[tuple[int, int, int]]], why: dict[tuple[int, int], dict[int, str]],
    delfiles: dict[int, tuple[int, int]], before: tuple[int, int], after: tuple[int, int],
) -> None:  # fmt: skip
    kv = meta.kv
    in_report = {id(i) for i in report.issues}
    for issue in report.issues:
        try:
            if issue.kind == "broken-dentry":
                issue.repaired = await _remove_dangling(kv, issue.parent, issue.name, issue.ino)
            elif issue.kind == "dead-entries":
                issue.repaired = await _remove_dead_entries(kv, issue.ino)
            elif issue.kind == "stray-records":
                issue.repaired = await _release_stray(meta, issue.ino, model.stray[issue.ino][1])
            elif issue.kind == "wrong-type":
                issue.repaired = await _retype(kv, issue.parent, issue.name, issue.ino)
            elif issue.kind == "lost-blocks":
                issue.repaired = await _hole_out(meta, issue.ino, lost[issue.ino], meta.settings.block_bytes)
            else:
                continue
            if not issue.repaired:
                issue.error = "changed since the check; run fsck again"
        except Exception as exc:  # one failed repair must not stop the others
            issue.error = str(exc)
            log.warning("fsck_repair_failed", kind=issue.kind, path=issue.path, error=str(exc))
    lost_found: int | None = None
    # Orphans last: creating /lost+found changes the root, whose own fix must be applied first.
    for ino, f in sorted(fixes.items(), key=lambda item: item[1].orphan is not None):
        mine = [i for i in f.issues if id(i) in in_report]
        if not mine:
            continue
        try:
            if f.orphan == "lost+found" and lost_found is None:
                lost_found = await _lost_found(meta)
            ok = await _apply_fix(meta, ino, f, lost_found)
            for i in mine:
                i.repaired = ok
                i.error = "" if ok else "changed since the check; run fsck again"
        except Exception as exc:
            for i in mine:
                i.error = str(exc)
            log.warning("fsck_repair_failed", ino=ino, error=str(exc))
    for issue in report.issues:
        if issue.kind == "counters":
            c = report.counters
            await _add_counters(
                kv,
                c["usedSpace"]["expected"] - c["usedSpace"]["stored"],
                c["totalInodes"]["expected"] - c["totalInodes"]["stored"],
            )
            issue.repaired = True
    for issue in report.issues:
        log.info("fsck_repair", kind=issue.kind, path=issue.path, repaired=issue.repaired, error=issue.error)


async def _add_counters(kv: KV, space: int, inodes: int) -> None:
    """Add the differences to the usage counters (blind adds: concurrent clients' updates are kept)."""

    async def body(tx: Tx) -> None:
        store.charge(tx, space, inodes)

    await kv.txn(body)


async def _remove_dangling(kv: KV, parent: int, name: bytes, ino: int) -> bool:
    async def body(tx: Tx) -> bool:
        raw = await tx.get(keys.dentry(parent, name))
        if raw is None or decode_dentry(raw)[1] != ino or await tx.get(keys.attr(ino)) is not None:
            return False
        store.del_entry(tx, parent, name)
        return True

    return await kv.txn(body)


async def _remove_dead_entries(kv: KV, ino: int) -> bool:
    prefix = keys.dentry_prefix(ino)
    while True:

        async def body(tx: Tx) -> bool | None:
            raw = await tx.get(keys.attr(ino))
            if raw is not None and Attr.decode(raw).typ is FileType.DIRECTORY:
                return False
            rows = await tx.scan(prefix, keys.prefix_end(prefix), limit=1000, keys_only=True)
            for key, _ in rows:
                tx.delete(key)
            return True if len(rows) < 1000 else None

        done = await kv.txn(body)
        if done is not None:
            return done


async def _release_stray(meta: Meta, ino: int, max_indx: int) -> bool:
    """Treat the records of an inode without attributes as a deleted file's: delfile marker, release."""
    length = max(1, (max_indx + 1) * CHUNK_SIZE)
    now = int(time.time())
    prefix = keys.inode_prefix(ino)

    async def body(tx: Tx) -> bool:
        if await tx.get(keys.attr(ino)) is not None:
            return False
        marker = b"D" + keys.ino_le(ino)
        if await tx.exists(marker, keys.prefix_end(marker)):
            return False
        for key, _ in await tx.scan(prefix, keys.prefix_end(prefix), keys_only=True):
            if len(key) > 9 and key[9] not in (_C, _D):
                tx.delete(key)
        if max_indx >= 0:
            tx.put(keys.delfile(ino, length), now.to_bytes(8, "big"))
        return True

    if not await meta.kv.txn(body):
        return False
    if max_indx >= 0:
        await chunks.cleanup_file(meta, ino, length)
    return True


async def _retype(kv: KV, parent: int, name: bytes, ino: int) -> bool:
    async def body(tx: Tx) -> bool:
        raw, raw_attr = await tx.get_many([keys.dentry(parent, name), keys.attr(ino)])
        if raw is None or raw_attr is None or decode_dentry(raw)[1] != ino:
            return False
        store.put_entry(tx, parent, name, Attr.decode(raw_attr).typ, ino)
        return True

    return await kv.txn(body)


def _split(record: SliceRecord, bad: set[int], block_size: int) -> list[SliceRecord]:
    """`record` with the ranges that fall in blocks `bad` of its slice replaced by holes."""
    out: list[SliceRecord] = []
    at = record.off
    end = record.off + record.len
    while at < end:
        index = at // block_size
        stop = min(end, (index + 1) * block_size)
        hole = index in bad
        pos = record.pos + (at - record.off)
        prev = out[-1] if out else None
        if prev is not None and (prev.id == 0) == hole and prev.end == pos:
            out[-1] = SliceRecord(prev.pos, prev.id, prev.size, prev.off, prev.len + stop - at)
        elif hole:
            out.append(SliceRecord(pos, 0, 0, 0, stop - at))
        else:
            out.append(SliceRecord(pos, record.id, record.size, at, stop - at))
        at = stop
    return out


async def _hole_out(meta: Meta, ino: int, bad_blocks: set[tuple[int, int, int]], block_size: int) -> bool:
    """Replace the ranges of `ino`'s records that lie in the bad blocks by holes, adjusting slice refs."""
    bad: dict[tuple[int, int], set[int]] = defaultdict(set)
    for sid, size, index in bad_blocks:
        bad[(sid, size)].add(index)
    prefix = keys.chunk_prefix(ino)
    now = time.time_ns()

    async def body(tx: Tx) -> tuple[bool, list[tuple[int, int]]]:
        raw_attr = await tx.get(keys.attr(ino))
        if raw_attr is None:
            return False, []
        freed: list[tuple[int, int]] = []
        changed = False
        for key, value in await tx.scan(prefix, keys.prefix_end(prefix)):
            records = decode_slices(value)
            new: list[SliceRecord] = []
            for r in records:
                broken = bad.get((r.id, r.size)) if r.id else None
                new += _split(r, broken, block_size) if broken else [r]
            if new == records:
                continue
            changed = True
            tx.put(key, encode_slices(new))
            before: dict[tuple[int, int], int] = defaultdict(int)
            after: dict[tuple[int, int], int] = defaultdict(int)
            for r in records:
                if r.id:
                    before[(r.id, r.size)] += 1
            for r in new:
                if r.id:
                    after[(r.id, r.size)] += 1
            for pair in set(before) | set(after):
                delta = after[pair] - before[pair]
                if delta > 0:
                    await chunks.add_refs(tx, [pair] * delta)
                elif delta < 0:
                    freed += await chunks.release(tx, [pair] * -delta)
        if changed:
            attr = Attr.decode(raw_attr)
            attr.mtime_ns = attr.ctime_ns = now
            store.put_attr(tx, ino, attr)
        return changed, freed

    changed, freed = await meta.kv.txn(body)
    if freed:
        await meta.free_slices(freed)
    return changed


async def _lost_found(meta: Meta) -> int:
    """The inode of ``/lost+found``, created (mode 0700) when missing."""

    async def body(tx: Tx) -> tuple[FileType, int] | None:
        return await store.get_entry(tx, ROOT_INODE, LOST_FOUND)

    found = await meta.kv.read(body)
    if found is None:
        ino, _ = await meta.mkdir(ROOT_INODE, LOST_FOUND, LOST_FOUND_MODE)
        return ino
    if found[0] is not FileType.DIRECTORY:
        raise VolumeError(f"/{LOST_FOUND.decode()} exists and is not a directory")
    return found[1]


async def _apply_fix(meta: Meta, ino: int, f: _Fix, lost_found: int | None) -> bool:
    """Apply one inode's attribute fix if the inode is as the check saw it."""
    now = time.time_ns()

    async def body(tx: Tx) -> tuple[bool, Attr | None]:
        raw = await tx.get(keys.attr(ino))
        if raw is None:
            return False, None
        attr = Attr.decode(raw)
        if not _same(attr, f.seen):
            return False, None
        if f.orphan == "delete":
            await delete_inode(tx, ino, attr, now)
            return True, attr
        if f.nlink is not None:
            attr.nlink = f.nlink
        if f.prefs is not None:
            prefix = keys.parent_ref_prefix(ino)
            for key, _ in await tx.scan(prefix, keys.prefix_end(prefix), keys_only=True):
                tx.delete(key)
            for p, count in f.prefs.items():
                tx.put(keys.parent_ref(ino, p), count.to_bytes(8, "little", signed=True))
        if f.parent is not None:
            attr.parent = f.parent
        if f.orphan == "lost+found":
            assert lost_found is not None
            lf = await store.get_attr(tx, lost_found)
            name = b"#%d" % ino
            n = 1
            while await tx.get(keys.dentry(lost_found, name)) is not None:
                n += 1
                name = b"#%d-%d" % (ino, n)
            store.put_entry(tx, lost_found, name, attr.typ, ino)
            prefix = keys.parent_ref_prefix(ino)
            for key, _ in await tx.scan(prefix, keys.prefix_end(prefix), keys_only=True):
                tx.delete(key)
            attr.parent = lost_found
            if attr.typ is FileType.DIRECTORY:
                lf.nlink += 1
            else:
                attr.nlink = 1
            lf.mtime_ns = lf.ctime_ns = now
            store.put_attr(tx, lost_found, lf)
        store.put_attr(tx, ino, attr)
        return True, None

    ok, deleted = await meta.kv.txn(body)
    if deleted is not None:
        meta.note_usage(-store.space_of(deleted), -1)
        if deleted.typ is FileType.REGULAR and deleted.length > 0:
            await chunks.cleanup_file(meta, ino, deleted.length)
    return ok

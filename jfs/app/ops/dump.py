"""`dump`: write a volume's metadata as the JSON document of ``juicefs dump`` (format in `jfs.domain.dumpfmt`).

Contract:

* The output is what JuiceFS 1.4.2 writes for the same metadata, byte for byte, except where noted in
  `jfs.domain.dumpfmt` (a literal U+FFFD in a name) and for the order of ``DelFiles`` and ``Sustained``
  (JuiceFS prints them in Go map order, jfs by key).
* Memory stays flat whatever the size of the volume: directories are listed page by page (`PAGE` entries),
  the nodes of a page are read by up to `threads` concurrent read transactions (coroutines, not OS
  threads), written, and dropped. Held at any time: the page being written and the next page of each
  directory level being walked, plus at most `_Walker.LOOKAHEAD` pages of directories further on, read
  ahead so that the engine's latency overlaps the writing. Hard-linked inodes are printed in full under
  every name (as JuiceFS does), so nothing is remembered across pages.
* Each node (attributes, xattrs, chunks or symlink target) is read consistently (unless it has more than
  `NODE_BATCH` keys, which are read in several batches); the dump as a whole is not a snapshot: a volume changed while it is dumped gives a dump mixing states (as with JuiceFS).
* ``Setting`` shows the stored setting with SecretKey/SessionToken as "removed" unless `keep_secret`;
  ``Counters`` are the raw counters; ``Trash`` is the trash root with its hour directories (a placeholder
  when the volume has no trash root), left out for a `subdir` dump, whose ``FSTree`` is that directory.
* ``Quotas`` (left out when there are none): the limits of every directory quota, keyed by inode, as
  JuiceFS dumps them (usage is not dumped: a load recounts it from the tree). With quotas, the dumped
  ``Setting`` shows ``"DirStats": true`` whatever is stored (jfs keeps it false): JuiceFS ignores
  directory quotas on a volume without directory statistics, and its load rebuilds them (`_Head.text`).
  A `subdir` dump keeps only the quotas of that directory and of the directories below it (JuiceFS dumps
  all of them, and its load then writes quotas for inodes that are not in the loaded tree). A record's
  jfs-only state (being counted) is not dumped.
* Block checksums (ADR 0008): when the engine holds checksum records, each slice that has one shows it as
  ``jfsCrc32`` (`jfs.domain.dumpfmt`), read in the node's transaction; a record that does not fit its
  slice (unusable to the reader too) is left out with a warning. A volume without records dumps exactly as
  JuiceFS would.
* ``UserQuotas`` / ``GroupQuotas`` (each left out when empty), after ``Quotas``: the limits of every user
  and group quota that has one (records kept only for usage are not dumped, as JuiceFS), keyed by uid/gid.
* No ``posix_acl_*`` or ``ChangeLog``: jfs has none of them.

Where it reads: the tree is walked, the subdir resolved and the quotas listed through the engine's reader
(`jfs.app.meta.reader`, `jfs.app.meta.quota`). What is about the stored layout itself stays key-level on
purpose, because the dump format shows records as stored: each node's records (one range scan of its
inode keys), the checksum records, the raw counters, the sustained and delfile records.
"""

from __future__ import annotations

import asyncio
import errno
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from jfs.app.errors import OpsError
from jfs.app.meta import owner_quota, quota, reader
from jfs.app.progress import ProgressBar, ProgressBoard, QuietBoard
from jfs.domain import dumpfmt, keys
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, Attr, FileType
from jfs.domain.checksums import CRC32, BadSumsRecord, SliceSums
from jfs.domain.errors import FSError
from jfs.domain.records import SliceRecord, decode_i64, decode_slices, decode_u64
from jfs.ports.kv import KV, RangeReadingKV, Tx

log = structlog.get_logger(__name__)

PAGE = 1024
"""Directory entries listed (and nodes held) per page."""
NODE_BATCH = 1024
"""Keys of one inode read per range request."""
MIN_GROUP = 16
"""Fewest nodes one read transaction fetches when a page is split across `threads` transactions."""
RANGE_GROUP = 256
"""Nodes whose ranges one `RangeReadingKV.read_ranges` call reads."""
"""Fewest nodes one read transaction fetches when a page is split across `threads` transactions."""
FLUSH_BYTES = 1 << 18

Writer = Callable[[bytes], object]


@dataclass(frozen=True, slots=True)
class DumpResult:
    entries: int
    """Nodes written (every name of a hard-linked file counts; the roots of FSTree and Trash too)."""
    seconds: float
    bytes: int


@dataclass(slots=True)
class _Node:
    name: bytes
    ino: int
    typ: FileType
    attr: Attr | None = None
    symlink: bytes | None = None
    xattrs: list[tuple[bytes, bytes]] = field(default_factory=list)
    chunks: list[tuple[int, list[SliceRecord]]] = field(default_factory=list)
    sums: dict[int, SliceSums] = field(default_factory=dict)
    """Checksum records of the slices of `chunks` (only read when the engine has any)."""
    first: asyncio.Task[tuple[list[_Node], bytes | None]] | None = None
    """A directory's first page while it is read ahead of the writer (handed over when it is reached)."""
    started: bool = False


@dataclass(slots=True)
class _Dir:
    ino: int
    depth: int
    next: asyncio.Task[tuple[list[_Node], bytes | None]] | None
    """The read of the directory's next page (None once the listing is exhausted)."""
    pending: deque[_Node] = field(default_factory=deque)
    subdirs: deque[_Node] = field(default_factory=deque)
    """The directories among `pending` whose first page is not being read yet (candidates to read ahead)."""
    written: int = 0


class _Out:
    """Buffers text and hands it to `write` in large pieces."""

    def __init__(self, write: Writer) -> None:
        self._write = write
        self._parts: list[str] = []
        self._size = 0
        self.total = 0

    def __call__(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            data = "".join(self._parts).encode()
            self._parts.clear()
            self._size = 0
            self.total += len(data)
            self._write(data)


def _node_range(node: _Node) -> tuple[bytes, bytes]:
    """The key range holding everything the dump shows of `node` (a directory's entries excluded)."""
    prefix = keys.inode_prefix(node.ino)
    begin = keys.attr(node.ino) if node.typ is FileType.DIRECTORY else prefix
    return begin, keys.prefix_end(prefix)


def _take(node: _Node, key: bytes, value: bytes) -> bytes | None:
    """File one record of `node`'s range into it; returns the raw attribute record when `key` is it."""
    kind = key[9]
    if kind == 0x49:  # I
        return value
    if kind == 0x43 and len(key) == 14:  # C + index
        node.chunks.append((int.from_bytes(key[10:14], "big"), decode_slices(value)))
    elif kind == 0x53:  # S
        node.symlink = value
    elif kind == 0x58:  # X
        node.xattrs.append((key[10:], value))
    return None


async def _fill(tx: Tx, node: _Node) -> None:
    """Read everything the dump shows of `node` (one range scan of its keys, directory entries excluded)."""
    begin, end = _node_range(node)
    raw_attr: bytes | None = None
    async for key, value in tx.scan_iter(begin, end, batch=NODE_BATCH):
        raw = _take(node, key, value)
        if raw is not None:
            raw_attr = raw
    if raw_attr is not None:
        node.attr = Attr.decode(raw_attr)


def _fill_from(node: _Node, pairs: list[tuple[bytes, bytes]]) -> None:
    """`_fill` from the pairs of the node's whole range, already read."""
    raw_attr: bytes | None = None
    for key, value in pairs:
        raw = _take(node, key, value)
        if raw is not None:
            raw_attr = raw
    if raw_attr is not None:
        node.attr = Attr.decode(raw_attr)


async def _list_page(kv: KV, ino: int, after: bytes) -> tuple[list[_Node], bytes | None]:
    rows = await reader.dir_page(kv, ino, after, PAGE)
    nodes = [_Node(name, child, typ) for name, typ, child in rows]
    cursor = nodes[-1].name if len(rows) >= PAGE else None
    return nodes, cursor


async def _fill_sums(tx: Tx, nodes: list[_Node], block_bytes: int) -> None:
    """Read the checksum records of the slices of `nodes` (one batched read); keep those that fit."""
    ids = sorted({r.id for node in nodes for _, rs in node.chunks for r in rs if r.id})
    if not ids:
        return
    sizes = {r.id: r.size for node in nodes for _, rs in node.chunks for r in rs if r.id}
    found: dict[int, SliceSums] = {}
    for sid, raw in zip(ids, await tx.get_many([keys.block_sums(i) for i in ids]), strict=True):
        if raw is None:
            continue
        try:
            sums = SliceSums.decode(raw)
        except BadSumsRecord as exc:
            log.warning("dump_checksum_record_unusable", slice=sid, error=str(exc))
            continue
        if sums.algorithm != CRC32 or not sums.fits(sizes[sid], block_bytes):
            log.warning("dump_checksum_record_unusable", slice=sid, algorithm=sums.algorithm,
                        record_size=sums.size, size=sizes[sid], blocks=len(sums.crcs))
            continue
        found[sid] = sums
    if found:
        for node in nodes:
            node.sums = {r.id: found[r.id] for _, rs in node.chunks for r in rs if r.id in found}


def _node_text(node: _Node, name: str, depth: int) -> str:
    attr = node.attr
    if attr is None:
        log.warning("dump_missing_attr", inode=node.ino, name=node.name.decode(errors="replace"))
        attr = dumpfmt.placeholder_attr(node.typ)
    chunks = None
    if attr.typ is FileType.REGULAR and node.chunks:
        chunks = [(i, rs) for i, rs in node.chunks if i * dumpfmt.CHUNK_SIZE < attr.length]
    for xname, _ in node.xattrs:
        try:
            xname.decode()
        except UnicodeDecodeError:
            log.warning("dump_xattr_name_not_utf8", inode=node.ino, name=repr(xname))
    return dumpfmt.node_head(name, node.ino, attr, depth, symlink=node.symlink, xattrs=node.xattrs, chunks=chunks,
                             sums=node.sums)


Page = tuple[list[_Node], bytes | None]


class _Walker:
    """Writes a tree depth-first while pages of directories later in the walk are already being read.

    At most `threads` read transactions run at once (`_sem`), and at most `LOOKAHEAD` pages are fetched
    ahead of the writer (each up to `PAGE` nodes), which bounds memory whatever the tree.
    """

    LOOKAHEAD = 8

    def __init__(self, kv: KV, out: _Out, threads: int, progress: ProgressBar, sums_block: int = 0) -> None:
        self.kv = kv
        self.sums_block = sums_block
        """Block size in bytes when checksum records are to be read with the chunks (0: the engine has none)."""
        self.ranges = kv if isinstance(kv, RangeReadingKV) and not sums_block else None
        """The engine when it reads many nodes' ranges per round trip (checksum records, which must be read
        in the nodes' transaction, keep the transaction path)."""
        self.out = out
        self.threads = threads
        self.progress = progress
        self.entries = 0
        self._sem = asyncio.Semaphore(threads)
        self._ahead = 0
        self._tasks: set[asyncio.Task[Page]] = set()

    async def fill(self, nodes: list[_Node]) -> None:
        """Read the details of `nodes` in groups, up to `threads` groups at once."""
        if self.ranges is not None:
            await self._fill_ranges(nodes, self.ranges)
        else:
            await self._fill_tx(nodes)

    async def _fill_tx(self, nodes: list[_Node]) -> None:
        """`fill` through read transactions, one range scan per node."""
        size = max(MIN_GROUP, -(-len(nodes) // (2 * self.threads)))

        async def one(group: list[_Node]) -> None:
            async def body(tx: Tx) -> None:
                for node in group:
                    node.attr, node.symlink, node.xattrs, node.chunks, node.sums = None, None, [], [], {}
                    await _fill(tx, node)
                if self.sums_block:
                    await _fill_sums(tx, group, self.sums_block)

            async with self._sem:
                await self.kv.read(body)

        await asyncio.gather(*(one(nodes[i: i + size]) for i in range(0, len(nodes), size)))

    async def _fill_ranges(self, nodes: list[_Node], kv: RangeReadingKV) -> None:
        """`fill` on an engine that reads many ranges per round trip: `RANGE_GROUP` nodes per call; a node
        whose range reaches `NODE_BATCH` keys (a file of more than ~1,000 chunks) is read again alone in
        its own transaction, batch by batch."""

        async def one(group: list[_Node]) -> None:
            async with self._sem:
                found = await kv.read_ranges([_node_range(n) for n in group], NODE_BATCH)
            big = []
            decode = Attr.decode
            for node, pairs in zip(group, found, strict=True):  # fresh nodes (a range read is never retried)
                if len(pairs) == 1 and pairs[0][0][9] == 0x49:  # the usual node: its attributes only
                    node.attr = decode(pairs[0][1])
                elif len(pairs) >= NODE_BATCH:
                    big.append(node)
                else:
                    _fill_from(node, pairs)
            if big:
                await self._fill_tx(big)

        await asyncio.gather(*(one(nodes[i: i + RANGE_GROUP]) for i in range(0, len(nodes), RANGE_GROUP)))

    async def _page(self, ino: int, after: bytes) -> Page:
        async with self._sem:
            nodes, cursor = await _list_page(self.kv, ino, after)
        if nodes:
            await self.fill(nodes)
        return nodes, cursor

    def _start(self, ino: int, after: bytes) -> asyncio.Task[Page]:
        self._ahead += 1
        task = asyncio.ensure_future(self._page(ino, after))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _take(self, task: asyncio.Task[Page]) -> Page:
        try:
            return await task
        finally:
            self._ahead -= 1

    def _look_ahead(self, d: _Dir) -> None:
        while self._ahead < self.LOOKAHEAD and d.subdirs:
            node = d.subdirs.popleft()
            if not node.started:
                node.started = True
                node.first = self._start(node.ino, b"")

    async def tree(self, label: str, root: _Node) -> None:
        """Write `root` (already filled) under `label` at depth 1, then its whole subtree."""
        out = self.out
        if root.attr is None and root.ino == TRASH_INODE:
            root.attr = dumpfmt.TRASH_PLACEHOLDER[1]
        out(_node_text(root, label, 1))
        self._count()
        if not _is_dir(root):
            return
        stack = [_Dir(root.ino, 1, self._start(root.ino, b""))]
        try:
            while stack:
                d = stack[-1]
                if not d.pending:
                    if d.next is None:
                        out(dumpfmt.dir_tail(d.depth))
                        stack.pop()
                        continue
                    nodes, cursor = await self._take(d.next)
                    d.next = self._start(d.ino, cursor) if cursor is not None else None
                    d.pending.extend(nodes)
                    d.subdirs.extend(n for n in nodes if _is_dir(n))
                    self._look_ahead(d)
                    continue
                node = d.pending.popleft()
                depth = d.depth + 2
                text = _node_text(node, dumpfmt.escape(node.name), depth)
                out("," + text if d.written else text)
                d.written += 1
                self.entries += 1
                if not self.entries & 255:
                    self.progress.advance(256)
                if _is_dir(node):
                    first = node.first if node.started else self._start(node.ino, b"")
                    node.started, node.first = True, None
                    assert first is not None
                    stack.append(_Dir(node.ino, depth, first))
                    self._look_ahead(d)
        finally:
            for task in list(self._tasks):
                task.cancel()

    def _count(self) -> None:
        self.entries += 1
        if self.entries % 256 == 0:
            self.progress.advance(256)


def _is_dir(node: _Node) -> bool:
    return (node.attr.typ if node.attr is not None else node.typ) is FileType.DIRECTORY


async def _resolve(kv: KV, subdir: bytes) -> int:
    try:
        ino, typ = await reader.resolve_path(kv, subdir)
    except FSError as exc:
        what = "not a directory" if exc.errno == errno.ENOTDIR else "no such directory in the volume"
        raise OpsError(f"subdir {str(exc.filename).lstrip('/')}: {what}") from None
    if typ is not FileType.DIRECTORY:
        raise OpsError(f"subdir {subdir.decode(errors='replace').strip('/')}: not a directory")
    return ino


@dataclass(slots=True)
class _Head:
    """What the document shows before ``DelFiles``."""

    setting: dict[str, Any]
    counters: dict[str, int]
    sustained: list[dict[str, Any]]

    @property
    def block_bytes(self) -> int:
        try:
            return int(self.setting.get("BlockSize") or 4096) * 1024
        except (TypeError, ValueError):
            return 4096 * 1024

    def text(self, *, keep_secret: bool, quotas: bool) -> str:
        """The document up to ``"DelFiles": [``. With `quotas`, ``DirStats`` shows true: JuiceFS keeps
        directory quotas only on volumes with directory statistics (its ``quota set`` turns them on, its
        load rebuilds them from the tree), so its load of the dump enforces and lists them."""
        setting = dict(self.setting, DirStats=True) if quotas else self.setting
        head = {
            "Setting": dumpfmt.dump_setting(setting, keep_secret=keep_secret),
            "Counters": self.counters,
            "Sustained": self.sustained,
        }
        return dumpfmt.go_json_indent(head)[: -len("\n}")] + ',\n  "DelFiles": ['


async def _header(kv: KV) -> _Head:
    """The setting, counters and sustained inodes; OpsError when the engine holds no volume."""
    names = (keys.USED_SPACE, keys.TOTAL_INODES, keys.NEXT_INODE, keys.NEXT_CHUNK, keys.NEXT_SESSION, keys.NEXT_TRASH)

    async def body(tx: Tx) -> tuple[bytes | None, list[bytes | None], list[tuple[bytes, bytes]]]:
        setting = await tx.get(keys.SETTING)
        counters = await tx.get_many([keys.counter(n) for n in names])
        sustained = await tx.scan(b"SS", keys.prefix_end(b"SS"), keys_only=True)
        return setting, counters, sustained

    raw, counters, sustained_keys = await kv.read(body)
    if raw is None:
        raise OpsError(f"no volume found in {kv.url}: nothing to dump")
    try:
        setting = json.loads(raw)
    except ValueError:
        raise OpsError(f"the setting record of {kv.url} is not valid JSON") from None
    values = [decode_i64(v) for v in counters]
    by_sid: dict[int, list[int]] = {}
    for key, _ in sustained_keys:
        if len(key) == 18:
            by_sid.setdefault(keys.parse_sid(key), []).append(keys.ino_from_le(key, 10))
    return _Head(
        setting,
        {"usedSpace": values[0], "usedInodes": values[1], "nextInodes": values[2], "nextChunk": values[3],
         "nextSession": values[4], "nextTrash": values[5]},
        [{"sid": sid, "inodes": inos} for sid, inos in sorted(by_sid.items())],
    )


async def _has_sums(kv: KV) -> bool:
    """Whether the engine holds any block-checksum record (one short scan)."""

    async def body(tx: Tx) -> bool:
        end = keys.prefix_end(keys.BLOCK_SUMS_PREFIX)
        return bool(await tx.scan(keys.BLOCK_SUMS_PREFIX, end, limit=1, keys_only=True))

    return await kv.read(body)


async def _quotas(kv: KV, root: int) -> dict[int, tuple[int, int]]:
    """Directory inode -> (max space, max inodes) of every quota; for a subdir dump (`root` is not the
    volume root) only those of `root` and of directories below it."""
    out = {ino: (q.max_space, q.max_inodes) for ino, q in await quota.all_quotas(kv)}
    if root != ROOT_INODE and out:
        out = {ino: q for ino, q in out.items() if await reader.is_below(kv, ino, root)}
    return out


async def _owner_limits(kv: KV) -> dict[str, dict[int, tuple[int, int]]]:
    """``UserQuotas``/``GroupQuotas`` -> uid/gid -> (max space, max inodes), only owners with a limit and
    only non-empty sections."""
    records = await owner_quota.all_records(kv)
    out = {}
    for section, kind in (("UserQuotas", owner_quota.USER), ("GroupQuotas", owner_quota.GROUP)):
        limits = {i: (q.max_space, q.max_inodes) for i, q in records[kind].items() if q.max_space > 0 or q.max_inodes > 0}
        if limits:
            out[section] = limits
    return out


async def _delfiles(kv: KV, out: _Out) -> None:
    """Stream the ``DelFiles`` items (pages of keys, so a huge backlog stays out of memory)."""
    after = b""
    first = True
    while True:
        begin = keys.DELFILE_PREFIX + after + b"\x00" if after else keys.DELFILE_PREFIX

        async def body(tx: Tx, begin: bytes = begin) -> list[tuple[bytes, bytes]]:
            return await tx.scan(begin, keys.prefix_end(keys.DELFILE_PREFIX), limit=PAGE)

        rows = await kv.read(body)
        for key, value in rows:
            if len(key) != 17:
                continue
            ino, length = keys.parse_delfile(key)
            out(("" if first else ",") + f'\n    {{\n      "inode": {ino},\n      "length": {length},\n'
                f'      "expire": {decode_u64(value)}\n    }}')
            first = False
        if len(rows) < PAGE:
            break
        after = rows[-1][0][1:]
    out("]" if first else "\n  ]")


async def dump_meta(
    kv: KV, write: Writer, *, subdir: bytes = b"", keep_secret: bool = False, threads: int = 10,
    progress: ProgressBoard | None = None,
) -> DumpResult:
    """Write the metadata of the volume in `kv` through `write` (bytes, in order). See the module docstring.

    Progress: one bar "Dumped entries" on `progress`. Raises OpsError when the engine holds no volume or
    `subdir` is not a directory of it.
    """
    start = time.perf_counter()
    out = _Out(write)
    head = await _header(kv)
    root_ino = await _resolve(kv, subdir) if subdir.strip(b"/.") else ROOT_INODE
    quotas = await _quotas(kv, root_ino)
    sums_block = head.block_bytes if await _has_sums(kv) else 0
    bar = (progress or QuietBoard()).bar(
        "Dumped entries", head.counters["usedInodes"] + 2 if root_ino == ROOT_INODE else None, unit="entries"
    )
    try:
        out(head.text(keep_secret=keep_secret, quotas=bool(quotas)))
        await _delfiles(kv, out)
        if quotas:
            out(',\n  "Quotas": ' + dumpfmt.quotas_json(quotas))
        for section, limits in (await _owner_limits(kv)).items():
            out(f',\n  "{section}": ' + dumpfmt.quotas_json(limits))
        out(",")
        walker = _Walker(kv, out, max(1, threads), bar, sums_block)
        root = _Node(b"", root_ino, FileType.DIRECTORY)
        with_trash = root_ino == ROOT_INODE
        trash = _Node(b"", TRASH_INODE, FileType.DIRECTORY)
        await walker.fill([root, trash] if with_trash else [root])
        if root.attr is None:
            raise OpsError(f"the root inode {root_ino} of {kv.url} has no attributes: the volume is damaged")
        await walker.tree("FSTree", root)
        if with_trash:
            out(",")
            await walker.tree("Trash", trash)
        out("\n}\n")
        out.flush()
        bar.advance(walker.entries % 256)
        bar.set_total(walker.entries)
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    log.info("dump_done", entries=walker.entries, seconds=round(elapsed, 3), bytes=out.total)
    return DumpResult(walker.entries, elapsed, out.total)

"""`dump`: write a volume's metadata as the JSON document of ``juicefs dump`` (format in `jfs.domain.dumpfmt`).

Contract:

* The output is what JuiceFS 1.4.2 writes for the same metadata, byte for byte, except where noted in
  `jfs.domain.dumpfmt` (a literal U+FFFD in a name) and for the order of ``DelFiles`` and ``Sustained``
  (JuiceFS prints them in Go map order, jfs by key).
* Memory stays flat whatever the size of the volume: directories are listed page by page (`PAGE` entries),
  each page read and rendered by the page stage (`jfs.app.ops.dump_page`: up to `threads` engine calls at
  once), written, and dropped. Held at any time: the page being written and the next page of each
  directory level being walked, plus at most `_Walker.LOOKAHEAD` pages of directories further on, read
  ahead so that the engine's latency overlaps the writing. Hard-linked inodes are printed in full under
  every name (as JuiceFS does), so nothing is remembered across pages. On an engine with
  `RangeReadingKV`, one bit per inode number marks the inodes with records besides their attributes
  (`dump_page.inodes_with_more_records`, walked once before the tree).
* With `workers` (and `RangeReadingKV`, and at least `MIN_ENTRIES` inodes), pages are rendered by worker
  processes (`jfs.app.ops.dump_workers`) and written here in order: the same bytes.
* Each node (attributes, xattrs, chunks or symlink target) is read consistently (unless it has more than
  `NODE_BATCH` keys, which are read in several batches), except that on `RangeReadingKV` a file not marked
  is read by its attributes alone, so an xattr that is its first and was set after the marking walk is
  missed (chunks are not: a length sends the file to a range read; ADR 0062); the dump as a whole is not a
  snapshot: a volume changed while it is dumped gives a dump mixing states (as with JuiceFS).
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
from typing import Any, Protocol

import structlog

from jfs.app.errors import OpsError
from jfs.app.meta import owner_quota, quota, reader
from jfs.app.ops.dump_page import PAGE, Node, Page, PageReader, inodes_with_more_records, node_text
from jfs.app.ops.dump_workers import MIN_ENTRIES, WorkerPages, WorkerSpec
from jfs.app.progress import ProgressBar, ProgressBoard, QuietBoard
from jfs.domain import dumpfmt, keys
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, FileType
from jfs.domain.errors import FSError
from jfs.domain.records import decode_i64, decode_u64
from jfs.ports.kv import KV, RangeReadingKV, Tx

log = structlog.get_logger(__name__)

FLUSH_BYTES = 1 << 18

Writer = Callable[[bytes], object]


@dataclass(frozen=True, slots=True)
class DumpResult:
    entries: int
    """Nodes written (every name of a hard-linked file counts; the roots of FSTree and Trash too)."""
    seconds: float
    bytes: int


class PageSource(Protocol):
    """Where the walker gets its pages: `PageReader` in this process, or worker processes."""

    async def page(self, ino: int, after: bytes, depth: int) -> Page: ...


@dataclass(slots=True)
class _Dir:
    ino: int
    depth: int
    next: asyncio.Future[Page] | None
    """The read of the directory's next page (None once the listing is exhausted)."""
    pending: deque[tuple[str, int, list[asyncio.Future[Page] | None]]] = field(default_factory=deque)
    """Segments to write: (text, directory inode or 0, the directory's first page once read ahead)."""
    subdirs: deque[tuple[int, list[asyncio.Future[Page] | None]]] = field(default_factory=deque)
    """The directories among `pending` whose first page is not being read yet (candidates to read ahead)."""


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


class _Walker:
    """Writes a tree depth-first while pages of directories later in the walk are already being read.

    At most `LOOKAHEAD` pages (each up to `PAGE` nodes) are fetched ahead of the writer, which bounds
    memory whatever the tree; `pages` bounds the engine calls in flight.
    """

    LOOKAHEAD = 8

    def __init__(self, pages: PageSource, out: _Out, progress: ProgressBar) -> None:
        self.pages = pages
        self.out = out
        self.progress = progress
        self.entries = 0
        self._ahead = 0
        self._tasks: set[asyncio.Future[Page]] = set()

    def _start(self, ino: int, after: bytes, depth: int) -> asyncio.Future[Page]:
        self._ahead += 1
        task = asyncio.ensure_future(self.pages.page(ino, after, depth))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _take(self, task: asyncio.Future[Page]) -> Page:
        try:
            return await task
        finally:
            self._ahead -= 1

    def _look_ahead(self, d: _Dir) -> None:
        while self._ahead < self.LOOKAHEAD and d.subdirs:
            ino, holder = d.subdirs.popleft()
            if holder[0] is None:
                holder[0] = self._start(ino, b"", d.depth + 4)

    async def tree(self, label: str, root: Node) -> None:
        """Write `root` (already filled) under `label` at depth 1, then its whole subtree."""
        out = self.out
        if root.attr is None and root.raw is None and root.ino == TRASH_INODE:
            root.attr = dumpfmt.TRASH_PLACEHOLDER[1]
        out(node_text(root, label, 1))
        self._count(1)
        if not root.is_dir:
            return
        stack = [_Dir(root.ino, 1, self._start(root.ino, b"", 3))]
        try:
            while stack:
                d = stack[-1]
                if not d.pending:
                    if d.next is None:
                        out(dumpfmt.dir_tail(d.depth))
                        stack.pop()
                        continue
                    segs, cursor, n = await self._take(d.next)
                    d.next = self._start(d.ino, cursor, d.depth + 2) if cursor is not None else None
                    for text, ino in segs:
                        holder: list[asyncio.Future[Page] | None] = [None]
                        d.pending.append((text, ino, holder))
                        if ino:
                            d.subdirs.append((ino, holder))
                    self._count(n)
                    self._look_ahead(d)
                    continue
                text, ino, holder = d.pending.popleft()
                out(text)
                if ino:
                    first = holder[0] if holder[0] is not None else self._start(ino, b"", d.depth + 4)
                    holder[0] = first  # taken: look-ahead skips it
                    stack.append(_Dir(ino, d.depth + 2, first))
                    self._look_ahead(d)
        finally:
            for task in list(self._tasks):
                task.cancel()

    def _count(self, n: int) -> None:
        before = self.entries
        self.entries += n
        if (self.entries >> 8) != (before >> 8):
            self.progress.advance(((self.entries >> 8) - (before >> 8)) << 8)


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
    progress: ProgressBoard | None = None, workers: WorkerSpec | None = None,
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
        pages = PageReader(kv, threads, sums_block)
        if pages.ranges is not None:
            pages.marked = await inodes_with_more_records(pages.ranges)
        root = Node(b"", root_ino, FileType.DIRECTORY)
        with_trash = root_ino == ROOT_INODE
        trash = Node(b"", TRASH_INODE, FileType.DIRECTORY)
        await pages.fill([root, trash] if with_trash else [root])
        if root.attr is None and root.raw is None:
            raise OpsError(f"the root inode {root_ino} of {kv.url} has no attributes: the volume is damaged")
        pool = None
        if (workers is not None and workers.count > 0 and isinstance(kv, RangeReadingKV)
                and head.counters["usedInodes"] >= MIN_ENTRIES):
            pool = await WorkerPages.start(workers.argv, workers.count,
                                           {"url": workers.url, "threads": threads, "sums_block": sums_block,
                                            "page": pages.page_size, "marked": pages.marked,
                                            "log_level": workers.log_level})
        walker = _Walker(pool or pages, out, bar)
        try:
            await walker.tree("FSTree", root)
            if with_trash:
                out(",")
                await walker.tree("Trash", trash)
        finally:
            if pool is not None:
                await pool.close()
        out("\n}\n")
        out.flush()
        bar.advance(walker.entries % 256)
        bar.set_total(walker.entries)
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    log.info("dump_done", entries=walker.entries, seconds=round(elapsed, 3), bytes=out.total)
    return DumpResult(walker.entries, elapsed, out.total)

"""The page stage of `dump`: one page of a directory listed, its nodes read, and their text rendered.

Contract:

* `PageReader.page(ino, after, depth)` lists up to `PAGE` entries of directory `ino` after the name
  `after` (from the first with ``b""``), reads every node (attributes, xattrs, chunks or symlink target;
  checksum records when `sums_block`), and returns their text as `dump` writes it (`jfs.domain.dumpfmt`) at
  nesting `depth`: a list of `Segment` (a run of complete non-directory nodes, or the head of one
  directory up to the opening of its ``entries``, whose children the caller writes next), each node but
  the directory's first preceded by ``,``. The text is the same whichever process renders it, so pages
  may be rendered by worker processes (`jfs.app.ops.dump_workers`) and written in order by the caller.
* Each node is read consistently (unless it has more than `NODE_BATCH` keys, read batch by batch); nothing
  is cached between pages. Memory: one page of nodes.
* On an engine that reads many ranges per round trip (`RangeReadingKV`) the nodes of a page are read
  `RANGE_GROUP` ranges per call; otherwise (or with checksum records, read in the nodes' transaction)
  by up to `threads` read transactions of at least `MIN_GROUP` nodes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from jfs.app.meta import reader
from jfs.domain import dumpfmt, keys
from jfs.domain.attrs import Attr, FileType
from jfs.domain.checksums import CRC32, BadSumsRecord, SliceSums
from jfs.domain.records import SliceRecord, decode_slices
from jfs.ports.kv import KV, RangeReadingKV, Tx

log = structlog.get_logger("jfs.app.ops.dump")

PAGE = 1024
"""Directory entries listed (and nodes held) per page."""
NODE_BATCH = 1024
"""Keys of one inode read per range request."""
MIN_GROUP = 16
"""Fewest nodes one read transaction fetches when a page is split across `threads` transactions."""
RANGE_GROUP = 256
"""Nodes whose ranges one `RangeReadingKV.read_ranges` call reads."""
SPARSE_BATCH = 5000
"""Index keys one `RangeReadingKV.sparse_keys` call examines while looking for inodes with more records."""
_REGULAR, _DIR, _SYMLINK = FileType.REGULAR.value, FileType.DIRECTORY.value, FileType.SYMLINK.value
_LENGTH = slice(51, 59)
"""Where an attribute record holds the length (`jfs.domain.attrs`: flags .. nlink come first)."""


class InoSet:
    """A set of inode numbers: a bitmap below `LIMIT` (growing with the largest), a set above. Picklable."""

    LIMIT = 1 << 27

    def __init__(self) -> None:
        self.bits = bytearray()
        self.big: set[int] = set()

    def add(self, n: int) -> None:
        if n >= self.LIMIT:
            self.big.add(n)
            return
        byte = n >> 3
        if byte >= len(self.bits):
            self.bits.extend(bytes(min(max(byte + 1, 2 * len(self.bits)), self.LIMIT >> 3) - len(self.bits)))
        self.bits[byte] |= 1 << (n & 7)

    def __contains__(self, n: int) -> bool:
        if n >= self.LIMIT:
            return n in self.big
        byte = n >> 3
        return byte < len(self.bits) and bool(self.bits[byte] & (1 << (n & 7)))


async def inodes_with_more_records(kv: RangeReadingKV) -> InoSet:
    """The inodes that have any record besides attributes, entries and parent counters (chunks, a symlink
    target, xattrs): one walk of the inode key space that sends back only their keys (`sparse_keys`)."""
    out = InoSet()
    begin, end = b"A", b"B"
    while True:
        last, found = await kv.sparse_keys(begin, end, SPARSE_BATCH, 9, b"IDP")
        for key in found:
            if len(key) >= 9:
                out.add(int.from_bytes(key[1:9], "little"))
        if last is None:
            return out
        begin = last + b"\x00"

Segment = tuple[str, int]
"""(text, directory inode): a run of complete nodes (inode 0), or the head of directory `inode`."""
Page = tuple[list[Segment], bytes | None, int]
"""The segments of one page, the cursor of the next page (None: the listing is complete), and the number
of nodes in the page."""


@dataclass(slots=True)
class Node:
    """One node being read: its name and dentry, then what its records say."""

    name: bytes
    ino: int
    typ: FileType
    attr: Attr | None = None
    raw: bytes | None = None
    """The attribute record when it is the node's only record (rendered without decoding it to `Attr`)."""
    symlink: bytes | None = None
    xattrs: list[tuple[bytes, bytes]] | None = None
    chunks: list[tuple[int, list[SliceRecord]]] | None = None
    sums: dict[int, SliceSums] | None = None
    """Checksum records of the slices of `chunks` (only read when the engine has any)."""

    def clear(self) -> None:
        self.attr = self.raw = self.symlink = self.xattrs = self.chunks = self.sums = None

    @property
    def is_dir(self) -> bool:
        if self.attr is not None:
            return self.attr.typ is FileType.DIRECTORY
        if self.raw is not None:
            return self.decoded().typ is FileType.DIRECTORY
        return self.typ is FileType.DIRECTORY

    def decoded(self) -> Attr:
        """The attributes (decoding `raw` once); a node without them gets the placeholder JuiceFS dumps."""
        if self.attr is None and self.raw is not None:
            self.attr, self.raw = Attr.decode(self.raw), None
        return self.attr if self.attr is not None else dumpfmt.placeholder_attr(self.typ)


def node_range(node: Node) -> tuple[bytes, bytes]:
    """The key range holding everything the dump shows of `node` (a directory's entries excluded)."""
    prefix = keys.inode_prefix(node.ino)
    begin = keys.attr(node.ino) if node.typ is FileType.DIRECTORY else prefix
    return begin, keys.prefix_end(prefix)


def _take(node: Node, key: bytes, value: bytes) -> bytes | None:
    """File one record of `node`'s range into it; returns the raw attribute record when `key` is it."""
    kind = key[9]
    if kind == 0x49:  # I
        return value
    if kind == 0x43 and len(key) == 14:  # C + index
        if node.chunks is None:
            node.chunks = []
        node.chunks.append((int.from_bytes(key[10:14], "big"), decode_slices(value)))
    elif kind == 0x53:  # S
        node.symlink = value
    elif kind == 0x58:  # X
        if node.xattrs is None:
            node.xattrs = []
        node.xattrs.append((key[10:], value))
    return None


async def _fill(tx: Tx, node: Node) -> None:
    """Read everything the dump shows of `node` (one range scan of its keys, directory entries excluded)."""
    begin, end = node_range(node)
    raw_attr: bytes | None = None
    async for key, value in tx.scan_iter(begin, end, batch=NODE_BATCH):
        raw = _take(node, key, value)
        if raw is not None:
            raw_attr = raw
    if raw_attr is not None:
        node.attr = Attr.decode(raw_attr)


def _fill_from(node: Node, pairs: list[tuple[bytes, bytes]]) -> None:
    """`_fill` from the pairs of the node's whole range, already read."""
    raw_attr: bytes | None = None
    for key, value in pairs:
        raw = _take(node, key, value)
        if raw is not None:
            raw_attr = raw
    if raw_attr is not None:
        node.attr = Attr.decode(raw_attr)


async def _fill_sums(tx: Tx, nodes: list[Node], block_bytes: int) -> None:
    """Read the checksum records of the slices of `nodes` (one batched read); keep those that fit."""
    slices = [r for node in nodes for _, rs in node.chunks or () for r in rs if r.id]
    ids = sorted({r.id for r in slices})
    if not ids:
        return
    sizes = {r.id: r.size for r in slices}
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
            node.sums = {r.id: found[r.id] for _, rs in node.chunks or () for r in rs if r.id in found}


def node_text(node: Node, name: str, depth: int) -> str:
    """The text of `node` under the (escaped) `name` at `depth` (`dumpfmt.node_head`)."""
    if node.raw is not None:
        fast = dumpfmt.plain_node_text(name, node.ino, node.raw, depth)
        if fast is not None:
            return fast[0]
    if node.attr is None and node.raw is None:
        log.warning("dump_missing_attr", inode=node.ino, name=node.name.decode(errors="replace"))
    attr = node.decoded()
    chunks = None
    if attr.typ is FileType.REGULAR and node.chunks:
        chunks = [(i, rs) for i, rs in node.chunks if i * dumpfmt.CHUNK_SIZE < attr.length]
    for xname, _ in node.xattrs or ():
        try:
            xname.decode()
        except UnicodeDecodeError:
            log.warning("dump_xattr_name_not_utf8", inode=node.ino, name=repr(xname))
    return dumpfmt.node_head(name, node.ino, attr, depth, symlink=node.symlink, xattrs=node.xattrs or None,
                             chunks=chunks, sums=node.sums)


def segments(nodes: list[Node], depth: int, first: bool) -> list[Segment]:
    """The text of `nodes` (children of one directory at `depth`) as `Segment`s; `first`: the page holds
    the directory's first child (written without a leading comma)."""
    out: list[Segment] = []
    run: list[str] = []
    escape = dumpfmt.escape
    plain = dumpfmt.plain_node_text
    comma = "" if first else ","
    for node in nodes:
        name = escape(node.name)
        fast = plain(name, node.ino, node.raw, depth) if node.raw is not None else None
        if fast is not None:
            text, is_dir = fast
        else:
            text, is_dir = node_text(node, name, depth), node.is_dir
        if is_dir:
            if run:
                out.append(("".join(run), 0))
                run = []
            out.append((comma + text, node.ino))
        else:
            run.append(comma + text)
        comma = ","
    if run:
        out.append(("".join(run), 0))
    return out


class PageReader:
    """Reads and renders pages (see the module docstring). At most `threads` engine calls at once."""

    def __init__(self, kv: KV, threads: int, sums_block: int = 0, page_size: int = 0,
                 marked: InoSet | None = None) -> None:
        self.kv = kv
        self.page_size = page_size or PAGE
        self.marked = marked
        """With `RangeReadingKV`: the inodes with records besides their attributes when the walk began
        (`inodes_with_more_records`); the others of a page are read by their attribute key alone."""
        self.sums_block = sums_block
        """Block size in bytes when checksum records are to be read with the chunks (0: the engine has none)."""
        self.ranges = kv if isinstance(kv, RangeReadingKV) and not sums_block else None
        """The engine when it reads many nodes' ranges per round trip (checksum records, which must be read
        in the nodes' transaction, keep the transaction path)."""
        self.threads = max(1, threads)
        self._sem = asyncio.Semaphore(self.threads)

    async def page(self, ino: int, after: bytes, depth: int) -> Page:
        """The page of directory `ino` after `after`, rendered for nesting `depth`."""
        async with self._sem:
            rows = await reader.dir_page(self.kv, ino, after, self.page_size)
        nodes = [Node(name, child, typ) for name, typ, child in rows]
        cursor = rows[-1][0] if len(rows) >= self.page_size else None
        if nodes:
            await self.fill(nodes)
        return segments(nodes, depth, not after), cursor, len(nodes)

    async def fill(self, nodes: list[Node]) -> None:
        """Read the details of `nodes` in groups, up to `threads` groups at once."""
        if self.ranges is not None:
            await self._fill_ranges(nodes, self.ranges, self.marked)
        else:
            await self._fill_tx(nodes)

    async def _fill_tx(self, nodes: list[Node]) -> None:
        """`fill` through read transactions, one range scan per node."""
        size = max(MIN_GROUP, -(-len(nodes) // (2 * self.threads)))

        async def one(group: list[Node]) -> None:
            async def body(tx: Tx) -> None:
                for node in group:
                    node.clear()
                    await _fill(tx, node)
                if self.sums_block:
                    await _fill_sums(tx, group, self.sums_block)

            async with self._sem:
                await self.kv.read(body)

        await asyncio.gather(*(one(nodes[i: i + size]) for i in range(0, len(nodes), size)))

    async def _fill_ranges(self, nodes: list[Node], kv: RangeReadingKV, marked: InoSet | None) -> None:
        """`fill` on an engine that reads many ranges per round trip: `RANGE_GROUP` nodes per call. With
        `marked`, a regular file (or fifo, device, socket) not in it is read by its attribute key alone (a
        point), in a call of its own when the group also has ranges (on Redis a native MGET, without the
        ranges' script: each node is still read consistently, the group need not be); it is read again by its range when its record says it may have more (a regular
        file with a length: chunks written since the walk began; or another type than its entry said). A
        node whose range reaches `NODE_BATCH` keys (a file of more than ~1,000 chunks) is read again alone
        in its own transaction, batch by batch."""

        async def one(group: list[Node]) -> None:
            pointed: list[Node] = []
            if marked is None:
                ranged = group
            else:
                ranged = []
                for node in group:
                    if node.typ is FileType.DIRECTORY or node.typ is FileType.SYMLINK or node.ino in marked:
                        ranged.append(node)
                    else:
                        pointed.append(node)
            async with self._sem:
                if ranged and pointed:  # two calls on the connection at once: the points by a native read
                    by_range, by_point = await asyncio.gather(
                        kv.read_ranges([node_range(n) for n in ranged], NODE_BATCH),
                        kv.read_ranges((), NODE_BATCH, [keys.attr(n.ino) for n in pointed]))
                    found = by_range + by_point
                else:
                    found = await kv.read_ranges([node_range(n) for n in ranged], NODE_BATCH,
                                                 [keys.attr(n.ino) for n in pointed])
            big = []
            again = []
            for node, pairs in zip(ranged, found[: len(ranged)], strict=True):  # fresh nodes (never retried)
                if len(pairs) == 1 and pairs[0][0][9] == 0x49:  # the usual node: its attributes only
                    node.raw = pairs[0][1]
                elif len(pairs) >= NODE_BATCH:
                    big.append(node)
                else:
                    _fill_from(node, pairs)
            for node, pairs in zip(pointed, found[len(ranged):], strict=True):
                if not pairs:
                    continue  # no attributes (as a range read of nothing)
                raw = pairs[0][1]
                typ = raw[1] >> 4 if len(raw) >= _LENGTH.stop else 0
                if typ in (0, _DIR, _SYMLINK) or (typ == _REGULAR and any(raw[_LENGTH])):
                    again.append(node)
                else:
                    node.raw = raw
            if again:
                await self._fill_ranges(again, kv, None)
            if big:
                await self._fill_tx(big)

        await asyncio.gather(*(one(nodes[i: i + RANGE_GROUP]) for i in range(0, len(nodes), RANGE_GROUP)))

"""What the data path knows about one open inode: its last seen attributes, the resolved layouts of its
chunks (`ChunkMap`), and its pending writes.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from jfs.app.data.eager import start_now
from jfs.domain.attrs import Attr
from jfs.domain.slices import Piece, resolve

if TYPE_CHECKING:
    from jfs.app.data.writer import FileWriter
    from jfs.app.meta.engine import Meta

MAX_CACHED_CHUNKS = 1024

Layout = tuple[list[Piece], int]
"""(resolved pieces of a chunk, number of raw records)"""


class ChunkMap:
    """Resolved layouts of the chunks of one inode, cached while it is open in this client.

    Invalidation (`invalidate`) is exact for this client's own changes; changes by other clients are
    noticed when the inode's attributes change (see `InodeState.revalidate`). A fetch that overlaps an
    invalidation is used by its caller but not cached, and concurrent misses of one chunk share one fetch.
    """

    def __init__(self, meta: Meta, ino: int) -> None:
        self.meta = meta
        self.ino = ino
        self.generation = 0
        self._layouts: OrderedDict[int, Layout] = OrderedDict()
        self._loading: dict[tuple[int, int], asyncio.Task[Layout]] = {}
        self.fetches = 0

    async def get(self, indx: int) -> Layout:
        layout = self._layouts.get(indx)
        if layout is not None:
            self._layouts.move_to_end(indx)
            return layout
        key = (indx, self.generation)
        task = self._loading.get(key)
        if task is None:
            # Started at once: a fetch that does not wait (an inline SQLite read) is done before `get`
            # awaits it, two loop passes fewer per first read of a chunk (a small file's whole GET).
            task = start_now(self._fetch(indx, self.generation))
            self._loading[key] = task
            task.add_done_callback(lambda t: self._loading.pop(key, None))
        return await asyncio.shield(task)

    def cached(self, indx: int) -> Layout | None:
        """`get` if the layout of chunk `indx` is cached (None otherwise), without waiting."""
        layout = self._layouts.get(indx)
        if layout is not None:
            self._layouts.move_to_end(indx)
        return layout

    async def _fetch(self, indx: int, generation: int) -> Layout:
        records = await self.meta.read_chunk(self.ino, indx)
        self.fetches += 1
        layout = (resolve(records), len(records))
        if generation == self.generation:
            self._layouts[indx] = layout
            while len(self._layouts) > MAX_CACHED_CHUNKS:
                self._layouts.popitem(last=False)
        return layout

    def drop_slices(self, ids: set[int]) -> None:
        """Forget every cached layout that names one of the slices `ids` (they were freed), and make the
        fetches in flight uncacheable: they may have read the chunk before the change that freed them."""
        stale = [indx for indx, (pieces, _) in self._layouts.items() if any(p.id in ids for p in pieces)]
        for indx in stale:
            del self._layouts[indx]
        if self._loading:
            self.generation += 1

    def invalidate(self, indx: int | None = None) -> None:
        """Forget chunk `indx` (None: every chunk)."""
        self.generation += 1
        if indx is None:
            self._layouts.clear()
        else:
            self._layouts.pop(indx, None)


class InodeState:
    """One inode open in this client."""

    def __init__(self, ino: int, attr: Attr, chunks: ChunkMap) -> None:
        self.ino = ino
        self.attr = attr
        self.attr_time = time.monotonic()
        """When `attr` was last confirmed by the engine (monotonic seconds)."""
        self.chunks = chunks
        self.writer: FileWriter | None = None
        self.handles = 0
        self.local_changes = 0
        """Bumped by every change this client makes: attributes fetched before one are stale."""

    def length(self) -> int:
        """File length as this client sees it (including writes not committed yet)."""
        if self.writer is not None:
            return max(self.attr.length, self.writer.pending_end())
        return self.attr.length

    def note_local(self, attr: Attr) -> None:
        """Adopt attributes returned by this client's own change (caches were invalidated precisely)."""
        self.attr = attr
        self.attr_time = time.monotonic()
        self.local_changes += 1

    def revalidate(self, attr: Attr, seen_changes: int | None = None) -> bool:
        """Adopt attributes read from the engine; drops every cached layout if the content may have
        changed (different mtime or length). Returns whether it did.

        `seen_changes` is `local_changes` from before the read: if this client changed the file since,
        `attr` may predate that change and is ignored (the next revalidation looks again).
        """
        if seen_changes is not None and seen_changes != self.local_changes:
            return False
        changed = (attr.mtime_ns, attr.length) != (self.attr.mtime_ns, self.attr.length)
        if changed:
            self.chunks.invalidate()
        self.attr = attr
        self.attr_time = time.monotonic()
        return changed

"""`PageList`: the bytes of one block being written, kept as the writers' own buffers.

Appending a buffer is O(1) and copies nothing; `join` makes the one copy into a single `bytes` when the
block is handed to the uploader. Overwriting a range never mutates a buffer: the list is re-cut around the
new one, so views handed out by `views` stay valid (and keep showing what they showed) forever.

A block may also be *placed* (ADR 0030): it owns a block-sized `BlockArena`, offers the free space after
its bytes (`offer`), a face reads a sequential write's payload straight into it (the FUSE server's
``readv`` of a WRITE request), and `write` of exactly that region only moves the end: a block filled that
way is uploaded as the arena itself, with no join. Bytes of the arena before the end never change.
Any other append at the end of a list that has an arena is copied into it (ADR 0039): interleaved
writers of several files, whose payloads cannot be placed, still make one copy per byte — now on the
caller's thread, into a reused buffer, instead of a join into a fresh one on the CPU pool — and the
caller's buffer (the FUSE request buffer) is free again as soon as `write` returns.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any, TypeVar

Buffer = bytes | bytearray | memoryview
THREAD_JOIN_MIN = 256 << 10
"""Lists at least this long are joined on the CPU pool rather than on the event loop."""


class BlockArena(bytearray):
    """A block-sized buffer a `PageList` places bytes in; views of an arena are never kept unless placed
    (a view of one handed to some other list's `write` is copied)."""

    __slots__ = ()


def _address(view: memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


_B = TypeVar("_B", bound=bytearray)

_resize: Any
try:
    _resize = ctypes.pythonapi.PyByteArray_Resize
    _resize.argtypes = (ctypes.py_object, ctypes.c_ssize_t)
    _resize.restype = ctypes.c_int
except AttributeError:  # not CPython
    _resize = None


def uninitialised(size: int, kind: type[_B] = bytearray) -> _B:  # type: ignore[assignment]
    """A `size`-byte `kind` (a bytearray type) whose bytes are not zeroed first, on CPython (whoever
    takes it fills it before anything reads it); elsewhere a zeroed one."""
    buf = kind()
    if _resize is None:
        buf.extend(bytes(size))
    elif size > 0:
        _resize(buf, size)
    return buf


def new_arena(size: int) -> BlockArena:
    """A `size`-byte arena with room to grow by one byte without moving (see `ArenaPool.take`). Its bytes
    are not zeroed (on CPython): a list only ever shows bytes placed in it, and zeroing 4 MiB on the
    loop cost more than the copy it saves; fresh pages are faulted in by the kernel's copy into them."""
    arena = uninitialised(size + 1, BlockArena)
    arena.pop()
    return arena


class ArenaPool:
    """Block arenas let go of by their lists, kept for reuse (a fresh 4 MiB buffer costs its zeroing and
    a page fault per 4 KiB). An arena is reused only once no view of it is alive.

    Idle arenas kept: `keep`, and beyond that as many as `room()` has bytes for (the caller's memory
    budget left free; ADR 0053): when writers outrun the store, the arenas of a full write budget come
    back together once their blocks are stored, and the next blocks take them again — with only `keep`
    of them kept, the rest went back to malloc and the next blocks faulted fresh pages in (4 writers: 3
    of 4 arenas were new ones). So idle arenas plus the bytes `room` counts never exceed that budget by
    more than `keep` arenas."""

    def __init__(self, size: int, keep: int, room: Callable[[], int] | None = None) -> None:
        self.size = size
        self.keep = keep
        self._room = room
        self._free: list[BlockArena] = []

    def take(self) -> BlockArena:
        """An arena nobody looks at any more: a returned one if any, else a new one."""
        free = self._free
        for i, arena in enumerate(free):
            try:
                arena.append(0)  # BufferError while a view of the arena is alive (a reader, a cache put)
                arena.pop()
            except BufferError:
                continue
            del free[i]
            return arena
        return new_arena(self.size)

    @property
    def idle(self) -> int:
        """Arenas kept for reuse now."""
        return len(self._free)

    def give(self, arena: BlockArena) -> None:
        """Keep `arena` for reuse if there is room for it (see the class), else let it go."""
        free = self._free
        if len(free) < self.keep or (self._room is not None and (len(free) + 1) * self.size <= self._room()):
            free.append(arena)

    def clear(self) -> int:
        """Let go of every idle arena (when nothing is being written); returns how many there were."""
        n = len(self._free)
        self._free.clear()
        return n


def as_view(data: Buffer, owned: bool = False) -> memoryview:
    """A flat byte view of `data` that no one can change later: mutable buffers are copied once, unless
    `owned` (the caller hands the buffer over and nobody writes to it again)."""
    if isinstance(data, bytes):
        return memoryview(data)
    view = data if isinstance(data, memoryview) else memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if owned or isinstance(view.obj, bytes):
        return view
    return memoryview(view.tobytes())


def as_bytes(data: bytes | memoryview) -> bytes:
    """`data` as bytes, without a copy when it already is bytes or a view of a whole bytes object (a small
    WRITE's payload, copied once out of the request buffer, ADR 0090); else one copy."""
    if isinstance(data, bytes):
        return data
    obj = data.obj
    if type(obj) is bytes and data.nbytes == len(obj) and data.format == "B" and data.ndim == 1:
        return obj
    return bytes(data)


class PageList:
    """Bytes [0, size) of a block as a list of immutable views, in order."""

    __slots__ = ("_arena", "_base", "_parts", "_placed", "size")

    def __init__(self, arena: BlockArena | None = None) -> None:
        self._parts: list[memoryview] = []
        self.size = 0
        self._arena = arena
        self._base = 0
        self._placed = 0
        """Bytes [0, _placed) of the arena are the list's first bytes (while == size, `offer` may offer more)."""

    @property
    def arena(self) -> BlockArena | None:
        return self._arena

    def offer(self) -> memoryview | None:
        """The arena after the end, for a caller to fill and hand to `write` at `size` (or None)."""
        arena = self._arena
        if arena is None or self._placed != self.size or self.size >= len(arena):
            return None
        view = memoryview(arena)
        if not self._base:
            self._base = _address(view)
        return view[self.size :]

    def write(self, off: int, data: memoryview) -> None:
        """Put `data` at `off`; `off` may not be past the end (no gaps). The list may grow."""
        n = len(data)
        if off < 0 or off > self.size:
            raise ValueError(f"write at {off} would leave a gap after {self.size} bytes")
        if n == 0:
            return
        arena = self._arena
        if arena is not None and off == self.size == self._placed and off + n <= len(arena):
            whole = memoryview(arena)
            if not (data.obj is arena and self._base and _address(data) == self._base + off):
                # One copy into the block's own buffer, no join later (a memoryview assignment: a
                # bytearray slice assignment would copy a non-bytearray source twice).
                whole[off : off + n] = data
            self._placed = self.size = off + n
            if len(self._parts) == 1 and self._parts[0].obj is arena:
                self._parts[0] = whole[: self.size]
            else:
                self._parts.append(whole[off : self.size])
            return
        if type(data.obj) is BlockArena:
            data = memoryview(data.tobytes())  # another list's arena (or not its end): never kept
        if off == self.size:
            self._parts.append(data)
            self.size += n
            return
        end = off + n
        before: list[memoryview] = []
        after: list[memoryview] = []
        at = 0
        for part in self._parts:
            p_end = at + len(part)
            if p_end <= off:
                before.append(part)
            elif at >= end:
                after.append(part)
            else:
                if at < off:
                    before.append(part[: off - at])
                if p_end > end:
                    after.append(part[end - at :])
            at = p_end
        before.append(data)
        before.extend(after)
        self._parts = before
        self.size = max(self.size, end)

    def views(self, off: int, n: int) -> list[memoryview]:
        """Views of bytes [off, off+n) (clipped to the size), in order."""
        out: list[memoryview] = []
        end = min(off + n, self.size)
        at = 0
        for part in self._parts:
            p_end = at + len(part)
            if p_end > off and at < end:
                out.append(part[max(0, off - at) : min(len(part), end - at)])
            if p_end >= end:
                break
            at = p_end
        return out

    def single(self) -> memoryview | None:
        """All bytes as they are, when one buffer holds them (a block written in one piece, e.g. a WebDAV
        PUT's block-sized body pieces): no copy; None when `join` must make one."""
        if len(self._parts) == 1 and len(self._parts[0]) == self.size:
            return self._parts[0]
        return None

    def join(self) -> bytes:
        """All bytes as one object (one copy); afterwards the list holds just that object."""
        if (
            len(self._parts) == 1
            and isinstance(self._parts[0].obj, bytes)
            and len(self._parts[0].obj) == self.size
        ):
            return self._parts[0].obj
        data = b"".join(self._parts)
        self._parts = [memoryview(data)]
        return data

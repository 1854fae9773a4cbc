"""`PageList`: the bytes of one block being written, kept as the writers' own buffers.

Appending a buffer is O(1) and copies nothing; `join` makes the one copy into a single `bytes` when the
block is handed to the uploader. Overwriting a range never mutates a buffer: the list is re-cut around the
new one, so views handed out by `views` stay valid (and keep showing what they showed) forever.
"""

from __future__ import annotations

Buffer = bytes | bytearray | memoryview


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


class PageList:
    """Bytes [0, size) of a block as a list of immutable views, in order."""

    __slots__ = ("_parts", "size")

    def __init__(self) -> None:
        self._parts: list[memoryview] = []
        self.size = 0

    def write(self, off: int, data: memoryview) -> None:
        """Put `data` at `off`; `off` may not be past the end (no gaps). The list may grow."""
        n = len(data)
        if off < 0 or off > self.size:
            raise ValueError(f"write at {off} would leave a gap after {self.size} bytes")
        if n == 0:
            return
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

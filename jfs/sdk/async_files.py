"""Open files of the asyncio SDK: `AsyncFile` (bytes) and `AsyncTextFile` (str), both async context
managers. Writes are buffered by the client's data path and committed by `flush`/`fsync`/`close` (visible
to other clients after that: close-to-open, as on a mount)."""

from __future__ import annotations

import codecs
import errno
import fcntl
import os
from typing import TYPE_CHECKING, Any

from jfs.domain.errors import FSError
from jfs.domain.locks import F_RDLCK, F_UNLCK, F_WRLCK, MAX_END
from jfs.sdk.errors import os_error
from jfs.sdk.modes import OpenMode

if TYPE_CHECKING:
    from jfs.sdk.aio import AsyncClient


READ_CHUNK = 4 << 20


class AsyncFile:
    """An open file description: position, mode, and the locks taken through it."""

    def __init__(self, client: AsyncClient, path: str, ino: int, fh: int, mode: OpenMode) -> None:
        self._c = client
        self.name = path
        self.ino = ino
        self.fh = fh
        self.mode = mode
        self.pos = 0
        self.closed = False

    async def __aenter__(self) -> AsyncFile:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check(self, *, read: bool = False, write: bool = False) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if read and not self.mode.readable:
            raise OSError(errno.EBADF, "file not open for reading", self.name)
        if write and not self.mode.writable:
            raise OSError(errno.EBADF, "file not open for writing", self.name)

    async def _size(self) -> int:
        attr = await self._c.client.vfs.getattr(self._c.ctx, self.ino)
        return attr.length

    async def pread(self, size: int, offset: int) -> bytes:
        """Up to `size` bytes at `offset` (position unchanged)."""
        self._check(read=True)
        data = await self._c._call(self.name, lambda: self._c.client.vfs.read(self._c.ctx, self.ino, self.fh, offset, size))
        return bytes(data)

    async def read_buffer(self, size: int) -> bytes | bytearray | memoryview:
        """Up to `size` (>= 0) bytes from the position, as the data path's buffer (nobody changes it later):
        the sync SDK copies it into the caller's buffer, one copy instead of two."""
        self._check(read=True)
        data = await self._c._call(self.name, lambda: self._c.client.vfs.read(self._c.ctx, self.ino, self.fh, self.pos,
                                                                               size))
        self.pos += len(data)
        return data

    async def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes from the position (all to the end when negative)."""
        self._check(read=True)
        if size is None or size < 0:
            chunks = []
            while True:
                part = await self.pread(READ_CHUNK, self.pos)
                if not part:
                    break
                chunks.append(part)
                self.pos += len(part)
            return b"".join(chunks)
        data = await self.pread(size, self.pos)
        self.pos += len(data)
        return data

    async def pwrite(self, data: bytes | bytearray | memoryview, offset: int, *, owned: bool = False) -> int:
        """Write `data` at `offset` (position unchanged). `owned`: the caller hands a mutable `data` over and
        nobody changes it again, so it is kept without a copy (a `bytes` object never needs one)."""
        self._check(write=True)
        payload = data if owned else bytes(data)
        return await self._c._call(self.name, lambda: self._c.client.vfs.write(
            self._c.ctx, self.ino, self.fh, offset, payload, owned=True))

    async def write(self, data: bytes | bytearray | memoryview, *, owned: bool = False) -> int:
        """Write at the position (at the end of the file in append mode); returns the bytes written.
        `owned` as for `pwrite`."""
        self._check(write=True)
        if self.mode.append:
            self.pos = await self._c.client.vfs.append_offset(self.ino)
        n = await self.pwrite(data, self.pos, owned=owned)
        self.pos += n
        return n

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check()
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self.pos + offset
        elif whence == os.SEEK_END:
            pos = await self._size() + offset
        elif whence in (os.SEEK_DATA, os.SEEK_HOLE):
            pos = await self._c._call(self.name, lambda: self._c.client.vfs.lseek(self._c.ctx, self.ino, offset, whence))
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise OSError(errno.EINVAL, "negative seek position", self.name)
        self.pos = pos
        return pos

    def tell(self) -> int:
        self._check()
        return self.pos

    async def truncate(self, size: int | None = None) -> int:
        self._check(write=True)
        from jfs.app.meta.setattr import SetAttr

        length = self.pos if size is None else size
        await self._c._call(self.name, lambda: self._c.client.vfs.setattr(self._c.ctx, self.ino, SetAttr(size=length)))
        return length

    async def flush(self) -> None:
        """Commit the buffered writes (other clients see them from their next open)."""
        self._check()
        await self._c._call(self.name, lambda: self._c.client.vfs.flush(self._c.ctx, self.ino, self.fh))

    async def fsync(self) -> None:
        self._check()
        await self._c._call(self.name, lambda: self._c.client.vfs.fsync(self._c.ctx, self.ino, self.fh))

    async def close(self) -> None:
        """Commit, release this description's flock and this client's POSIX locks on the file, close."""
        if self.closed:
            return
        self.closed = True
        c = self._c
        try:
            await c.client.vfs.close(c.ctx, self.ino, self.fh, c._lock_owner, self.fh)
        except FSError as exc:
            raise os_error(exc, self.name) from None

    async def write_close(self, chunks: list[bytes]) -> None:
        """`write` each chunk, then `close` (closed even when a write fails; the write's error wins): the
        sync SDK's buffered files end with this, one hand-off to the loop instead of one per call."""
        try:
            if chunks and not self.closed and self.mode.writable and not self.mode.append:
                # `write`'s work without its layers (one coroutine per chunk instead of three)
                c = self._c
                vfs, ctx = c.client.vfs, c.ctx
                try:
                    for chunk in chunks:
                        self.pos += await vfs.write(ctx, self.ino, self.fh, self.pos,
                                                    chunk if type(chunk) is bytes else bytes(chunk), owned=True)
                except FSError as exc:
                    raise os_error(exc, self.name) from None
            else:
                for chunk in chunks:
                    await self.write(chunk)
        finally:
            await self.close()

    async def flock(self, operation: int) -> None:
        """flock(2): `fcntl.LOCK_SH`, `LOCK_EX` or `LOCK_UN`, with `LOCK_NB` not to wait (BlockingIOError)."""
        self._check()
        kind = {fcntl.LOCK_SH: "R", fcntl.LOCK_EX: "W", fcntl.LOCK_UN: "U"}.get(operation & ~fcntl.LOCK_NB)
        if kind is None:
            raise ValueError(f"invalid flock operation {operation}")
        block = not operation & fcntl.LOCK_NB
        await self._c._call(self.name, lambda: self._c.client.vfs.flock(self._c.ctx, self.ino, self.fh, kind,
                                                                         block=block))

    async def lockf(self, cmd: int, length: int = 0, start: int = 0, whence: int = os.SEEK_SET) -> None:
        """POSIX record lock like `fcntl.lockf`: LOCK_SH / LOCK_EX / LOCK_UN (| LOCK_NB) on
        [start, start+length) (length 0 = to the end of file), owned by this client (as a process owns
        them): released by any close of the file through this client."""
        self._check()
        ltype = {fcntl.LOCK_SH: F_RDLCK, fcntl.LOCK_EX: F_WRLCK, fcntl.LOCK_UN: F_UNLCK}.get(cmd & ~fcntl.LOCK_NB)
        if ltype is None:
            raise ValueError(f"invalid lockf command {cmd}")
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos}.get(whence)
        if base is None:
            base = await self._size()
        first = base + start
        last = MAX_END if length == 0 else first + length - 1
        if first < 0 or last < first:
            raise OSError(errno.EINVAL, "invalid lock range", self.name)
        block = not cmd & fcntl.LOCK_NB
        await self._c._call(self.name, lambda: self._c.client.vfs.setlk(
            self._c.ctx, self.ino, self._c._lock_owner, ltype, first, last, block=block))

    def __repr__(self) -> str:
        return f"<jfs.AsyncFile {self.name!r} mode={self.mode}>"


class AsyncTextFile:
    """Text over an `AsyncFile`: `encoding`, `errors`, universal newlines on read (``newline=None``)."""

    def __init__(self, raw: AsyncFile, encoding: str, errors: str, newline: str | None) -> None:
        self.buffer = raw
        self.encoding = encoding
        self.errors = errors
        self.newline = newline
        self._decoder = codecs.getincrementaldecoder(encoding)(errors)
        self._pending = ""

    @property
    def name(self) -> str:
        return self.buffer.name

    async def __aenter__(self) -> AsyncTextFile:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _translate(self, text: str) -> str:
        return text.replace("\r\n", "\n").replace("\r", "\n") if self.newline is None else text

    async def read(self, size: int = -1) -> str:
        if size is None or size < 0:
            text = self._pending + self._decoder.decode(await self.buffer.read(), final=True)
            self._pending = ""
            return self._translate(text)
        while len(self._pending) < size:
            raw = await self.buffer.read(max(size, 8192))
            self._pending += self._decoder.decode(raw, final=not raw)
            if not raw:
                break
        out, self._pending = self._pending[:size], self._pending[size:]
        return self._translate(out)

    async def readline(self) -> str:
        while "\n" not in self._pending:
            raw = await self.buffer.read(8192)
            self._pending += self._decoder.decode(raw, final=not raw)
            if not raw:
                break
        i = self._pending.find("\n")
        cut = len(self._pending) if i < 0 else i + 1
        line, self._pending = self._pending[:cut], self._pending[cut:]
        return self._translate(line)

    def __aiter__(self) -> AsyncTextFile:
        return self

    async def __anext__(self) -> str:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    async def write(self, text: str) -> int:
        out = text if self.newline in (None, "") else text.replace("\n", self.newline)
        await self.buffer.write(out.encode(self.encoding, self.errors))
        return len(text)

    async def flush(self) -> None:
        await self.buffer.flush()

    async def close(self) -> None:
        await self.buffer.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.buffer, name)

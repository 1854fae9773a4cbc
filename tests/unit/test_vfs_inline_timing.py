"""open, read and flush are timed inline (ADR 0079), as lookup, create, write and release were: no wrapping
coroutine and no argument text unless someone reads ``.accesslog``; the counts, the errors, the access-log
lines and the EIO for an engine failure stay what `VFS._timed` made them."""

from __future__ import annotations

import errno
import gc
import os
import types
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jfs.adapters.kv.memory import open_memory
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.meta.setattr import SetAttr
from jfs.app.vfs import VFS, VfsConfig
from jfs.domain.attrs import ROOT_INODE
from jfs.domain.errors import FSError
from jfs.ports.kv import KVError
from jfs.testing.data_harness import DataVolume


@pytest.fixture
async def vfs() -> AsyncIterator[VFS]:
    store = MemoryStore("mem://timing")

    async def opener() -> MemoryStore:
        return store

    v = await DataVolume.create(await open_memory(f"memory://timing-{uuid.uuid4().hex}"), opener)
    yield VFS(v.meta, v.dp, VfsConfig())
    await v.stop()


def _counts(vfs: VFS) -> dict[str, tuple[int, int]]:
    return {op: (vfs.stats.ops[op], vfs.stats.errors[op]) for op in ("open", "read", "flush", "release")}


async def _no_timed(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("open/read/flush went through VFS._timed")


async def test_open_read_flush_are_counted_and_logged_without_timed(vfs: VFS, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = vfs.ctx()
    ino, _, f = await vfs.create(ctx, ROOT_INODE, b"f", 0o644, os.O_WRONLY)
    await vfs.write(ctx, ino, f.fh, 0, b"hello")
    monkeypatch.setattr(vfs, "_timed", _no_timed)
    await vfs.flush(ctx, ino, f.fh)
    await vfs.release(ctx, ino, f.fh)
    vfs.accesslog.open(424242)  # someone reads .accesslog: lines with the arguments are written
    r = await vfs.open(ctx, ino, os.O_RDONLY)
    assert bytes(await vfs.read(ctx, ino, r.fh, 0, 100)) == b"hello"
    await vfs.flush(ctx, ino, r.fh)
    await vfs.release(ctx, ino, r.fh)
    assert _counts(vfs) == {"open": (1, 0), "read": (1, 0), "flush": (2, 0), "release": (2, 0)}
    lines = []
    while not vfs.accesslog.readers[424242].empty():
        lines.append(vfs.accesslog.readers[424242].get_nowait().decode())
    vfs.accesslog.close(424242)
    ops = [line.split("] ", 1)[1].split(" - ")[0] for line in lines]
    assert ops == [f"open ({ino},{os.O_RDONLY:o})", "read ()", f"flush ({ino})", f"release ({ino})"]
    assert all(" - OK <" in line for line in lines)


async def test_a_refused_open_is_counted_as_an_error_with_its_errno(vfs: VFS) -> None:
    root = vfs.ctx()
    ino, _, f = await vfs.create(root, ROOT_INODE, b"private", 0o600, os.O_WRONLY)
    await vfs.release(root, ino, f.fh)
    await vfs.setattr(root, ino, SetAttr(mode=0o600))
    vfs.accesslog.open(7)
    with pytest.raises(FSError) as e:
        await vfs.open(vfs.ctx(uid=1000, gid=1000), ino, os.O_RDONLY)
    assert e.value.errno == errno.EACCES
    assert vfs.stats.ops["open"] == 1 and vfs.stats.errors["open"] == 1
    line = vfs.accesslog.readers[7].get_nowait().decode()
    assert f"open ({ino},0) - {os.strerror(errno.EACCES)} <" in line
    vfs.accesslog.close(7)
    with pytest.raises(FSError) as e:  # an unknown handle: EBADF before any timing, as before
        await vfs.read(root, ino, 987654, 0, 1)
    assert e.value.errno == errno.EBADF
    with pytest.raises(FSError) as e:
        await vfs.flush(root, ino, 987654)
    assert e.value.errno == errno.EBADF
    assert vfs.stats.ops["read"] == 0 and vfs.stats.ops["flush"] == 0


async def test_an_engine_failure_in_open_read_or_flush_is_eio_counted_once(
    vfs: VFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = vfs.ctx()
    ino, _, f = await vfs.create(ctx, ROOT_INODE, b"f", 0o644, os.O_RDWR)
    await vfs.write(ctx, ino, f.fh, 0, b"x")

    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise KVError("engine unreachable")

    for name, call in (
        ("open", lambda: vfs.open(ctx, ino, os.O_RDONLY)),
        ("read", lambda: vfs.read(ctx, ino, f.fh, 0, 1)),
        ("flush", lambda: vfs.flush(ctx, ino, f.fh)),
    ):
        with monkeypatch.context() as m:
            m.setattr(vfs.data, "read_buffer" if name == "read" else name, unreachable)
            with pytest.raises(FSError) as e:
                await call()
        assert e.value.errno == errno.EIO
        assert e.value.__suppress_context__  # raised `from None`, as `_timed` did
        assert (vfs.stats.ops[name], vfs.stats.errors[name]) == (1, 1)
    await vfs.flush(ctx, ino, f.fh)
    await vfs.release(ctx, ino, f.fh)


async def test_failed_operations_leave_no_reference_cycle(vfs: VFS) -> None:
    """A negative LOOKUP (one per created file) or a refused open raised again from `_fail` must not leave
    the exception, its traceback and `_fail`'s frame in a cycle for the collector (ADR 0072's rule)."""
    root = vfs.ctx()
    ino, _, f = await vfs.create(root, ROOT_INODE, b"private", 0o600, os.O_WRONLY)
    await vfs.release(root, ino, f.fh)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(3):
            with pytest.raises(FSError):
                await vfs.lookup(root, ROOT_INODE, b"missing")
            with pytest.raises(FSError):
                await vfs.open(vfs.ctx(uid=1000, gid=1000), ino, os.O_RDONLY)
        gc.collect()
        cyclic = [x for x in gc.garbage if isinstance(x, BaseException | types.FrameType | types.TracebackType)]
        assert cyclic == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()

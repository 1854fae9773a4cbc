"""`jfs rmr` runs with the caller's permissions, never as the mount's (root) process."""

from __future__ import annotations

import pytest

from jfs.adapters.kv.memory import open_memory
from jfs.app.meta import Ctx, Meta
from jfs.app.meta.engine import format_meta
from jfs.app.tree_jobs import remove_tree
from jfs.domain.attrs import ROOT_INODE, FileType
from jfs.domain.settings import Settings


async def test_remove_tree_checks_the_callers_permissions() -> None:
    kv = await open_memory("memory://")
    await format_meta(kv, Settings(name="rmr", trash_days=0))
    m = await Meta.load(kv)
    await m.start_session(background=False)
    try:
        d, _ = await m.mkdir(ROOT_INODE, b"rootdir", 0o755)
        await m.mknod(d, b"f", FileType.REGULAR, 0o644)
        alice = Ctx(uid=1000, gid=1000, check=True)
        with pytest.raises(PermissionError):
            await remove_tree(m, ROOT_INODE, b"rootdir", ctx=alice)
        assert [e.name async for e in m.readdir(d)] == [b"f"]
        counts = await remove_tree(m, ROOT_INODE, b"rootdir", ctx=Ctx(check=True))
        assert (counts["files"], counts["dirs"]) == (1, 1)
        assert [e.name async for e in m.readdir(ROOT_INODE)] == []
    finally:
        await m.close()

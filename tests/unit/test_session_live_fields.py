"""A client's live fields (`Meta.session_extra`, e.g. write-back staging) reach its session record at the
next heartbeat, where `jfs status` reads them."""

from __future__ import annotations

from typing import Any

from jfs.adapters.kv.memory import open_memory
from jfs.app.meta import Meta
from jfs.app.meta.engine import format_meta
from jfs.domain.settings import Settings


async def test_live_fields_are_published_at_each_heartbeat() -> None:
    kv = await open_memory("memory://")
    await format_meta(kv, Settings(name="sessvol", trash_days=0))
    meta = await Meta.load(kv)
    try:
        await meta.start_session("/mnt/x", background=False)
        live: dict[str, Any] = {"Blocks": 3, "Bytes": 300}
        meta.session_extra = lambda: {"Staging": dict(live)}
        (before,) = await meta.list_sessions()
        assert "Staging" not in before  # published by the heartbeat, not by each write
        await meta.heartbeat_once()
        (s,) = await meta.list_sessions()
        assert s["Staging"] == {"Blocks": 3, "Bytes": 300} and s["MountPoint"] == "/mnt/x"
        live.update(Blocks=0, Bytes=0)
        await meta.heartbeat_once()
        (s,) = await meta.list_sessions()
        assert s["Staging"] == {"Blocks": 0, "Bytes": 0}
    finally:
        await meta.close()
        await kv.close()

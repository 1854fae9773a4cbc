"""Two metadata clients (sessions) of one freshly formatted volume, for the contract tests of what one
client's commits keep of another's changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from jfs.app.meta import Meta
from jfs.app.meta.engine import format_meta
from jfs.domain.settings import Settings
from jfs.ports.kv import KV


@asynccontextmanager
async def two_clients_on(kv: KV) -> AsyncIterator[tuple[Meta, Meta]]:
    """Two clients (sessions) of a volume formatted on `kv` (trash off); both closed on exit."""
    await format_meta(kv, Settings(name="pair", trash_days=0))
    clients = []
    for _ in range(2):
        m = await Meta.load(kv)
        await m.start_session(background=False)
        clients.append(m)
    try:
        yield clients[0], clients[1]
    finally:
        for m in clients:
            await m.close()

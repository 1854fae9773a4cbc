"""Fixtures shared by the contract tests (the engines themselves come from the `jfs.testing` plugin)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from meta_pairs import two_clients_on

from jfs.app.meta import Meta
from jfs.ports.kv import KV


@pytest.fixture
async def two_clients(kv: KV) -> AsyncIterator[tuple[Meta, Meta]]:
    """Two clients (sessions) of a volume formatted on `kv`."""
    async with two_clients_on(kv) as pair:
        yield pair

"""WebDAV lock records: which locks apply and conflict (jfs.domain.dav_locks), and the volume's lock
table (jfs.app.dav_locks): granted atomically against every other holder, expiry, refresh."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from jfs.adapters.kv.registry import open_kv
from jfs.app.dav_locks import DavLocks
from jfs.domain import dav_locks as rules
from jfs.domain.dav_locks import LockConflict
from jfs.ports.kv import KV


def lock(root: str, scope: str = "exclusive", depth: str = "0", ttl: float = 60, **kw: Any) -> dict[str, Any]:
    return {"token": f"opaquelocktoken:{uuid.uuid4()}", "root": root, "scope": scope, "depth": depth,
            "type": "write", "owner": "o", "principal": "u", "timeout": ttl, "expire": time.time() + ttl, **kw}


def test_applies_to_root_and_below_only_with_depth_infinity() -> None:
    assert rules.applies_to(lock("/a"), "/a")
    assert not rules.applies_to(lock("/a"), "/a/b")
    assert rules.applies_to(lock("/a", depth="infinity"), "/a/b/c")
    assert not rules.applies_to(lock("/a", depth="infinity"), "/ab")
    assert rules.applies_to(lock("/", depth="infinity"), "/x")


@pytest.mark.parametrize(("new", "held", "conflict"), [
    (lock("/a"), lock("/a"), True),
    (lock("/a", "shared"), lock("/a", "shared"), False),
    (lock("/a", "shared"), lock("/a"), True),
    (lock("/a/b"), lock("/a"), False),  # a depth-0 parent lock does not cover its members
    (lock("/a/b"), lock("/a", depth="infinity"), True),
    (lock("/a", depth="infinity"), lock("/a/b/c"), True),
    (lock("/a"), lock("/a/b/c"), False),
    (lock("/ab"), lock("/a", depth="infinity"), False),
])
def test_conflicts(new: dict[str, Any], held: dict[str, Any], conflict: bool) -> None:
    assert rules.conflicts(new, held) is conflict


def test_selected_by_root_and_children() -> None:
    assert rules.selected(lock("/a"), "/a", include_root=True, include_children=False)
    assert not rules.selected(lock("/a/b"), "/a", include_root=True, include_children=False)
    assert rules.selected(lock("/a/b"), "/a", include_root=False, include_children=True)
    assert not rules.selected(lock("/a"), "/a", include_root=False, include_children=True)
    assert not rules.selected(lock("/ab"), "/a", include_root=False, include_children=True)


@pytest_asyncio.fixture
async def kv() -> AsyncIterator[KV]:
    store = await open_kv(f"memory://dav-locks-{uuid.uuid4().hex}")
    try:
        yield store
    finally:
        await store.close()


async def test_table_grants_refuses_conflicts_and_forgets_expired(kv: KV) -> None:
    table = DavLocks(kv)
    first = await table.create(lock("/docs", depth="infinity"))
    with pytest.raises(LockConflict) as caught:
        await table.create(lock("/docs/a.txt"))
    assert caught.value.lock["token"] == first["token"]
    shared = await table.create(lock("/other", "shared"))
    await table.create(lock("/other", "shared"))
    assert {x["root"] for x in await table.live()} == {"/docs", "/other"}
    assert (await table.get(first["token"]))["root"] == "/docs"  # type: ignore[index]

    assert await table.delete(first["token"])
    assert not await table.delete(first["token"])
    await table.create(lock("/docs/a.txt"))

    short = await table.create(lock("/short", ttl=0.2))
    await asyncio.sleep(0.3)
    assert await table.get(short["token"]) is None
    assert "/short" not in {x["root"] for x in await table.live()}
    await table.create(lock("/short"))  # an expired lock is no obstacle

    refreshed = await table.refresh(shared["token"], 120, time.time() + 120)
    assert refreshed is not None and refreshed["timeout"] == 120
    assert await table.refresh("opaquelocktoken:none", 1, time.time() + 1) is None


async def test_racing_creates_grant_one_exclusive_lock(kv: KV) -> None:
    table = DavLocks(kv)
    results = await asyncio.gather(*(table.create(lock("/race")) for _ in range(8)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, LockConflict) for r in results if isinstance(r, BaseException))

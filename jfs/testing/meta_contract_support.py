"""What the metadata-engine contract's tests share (`jfs.testing.meta_contract` and
`jfs.testing.meta_contract_lifecycle`): the `meta` / `trash_meta` fixtures (a freshly formatted volume on the
`kv` engine of jfs.testing.plugin, with a registered session; trash off / on), two callers (`ALICE`,
`BOB`) and small readers of the engine's state. A module that collects the tests must import the fixtures
by name (``from jfs.testing.meta_contract_support import *`` does)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from jfs.app.meta import Ctx, Meta
from jfs.app.meta.engine import format_meta
from jfs.domain import keys
from jfs.domain.records import decode_i64
from jfs.domain.settings import Settings
from jfs.ports.kv import KV, Tx

ALICE = Ctx(uid=1000, gid=1000)
BOB = Ctx(uid=1001, gid=1001)


async def fresh_meta(kv: KV, **settings: object) -> Meta:
    await format_meta(kv, Settings(name="contract", **settings))  # type: ignore[arg-type]
    m = await Meta.load(kv)
    await m.start_session(background=False)
    return m


@pytest.fixture
async def meta(kv: KV) -> AsyncIterator[Meta]:
    m = await fresh_meta(kv, trash_days=0)
    yield m
    await m.close()


@pytest.fixture
async def trash_meta(kv: KV) -> AsyncIterator[Meta]:
    m = await fresh_meta(kv, trash_days=1)
    yield m
    await m.close()


def errno_of(exc_info: pytest.ExceptionInfo[OSError]) -> int | None:
    return exc_info.value.errno


async def names_in(m: Meta, ino: int) -> list[bytes]:
    return [e.name async for e in m.readdir(ino)]


async def counter_value(m: Meta, name: bytes) -> int:
    async def body(tx: Tx) -> int:
        return decode_i64(await tx.get(keys.counter(name)))

    return await m.kv.read(body)


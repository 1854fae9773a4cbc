"""What the KV contract's tests share (`jfs.testing.kv_contract`, `jfs.testing.kv_builtin_adapters`):
one-transaction writers and readers, a counter-increment body, the test exception `Boom` and `forced`, the
capability check that says whether a test may force interleavings on an engine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from jfs.domain.records import decode_i64, encode_i64
from jfs.ports.kv import KV, Tx

Connect = Callable[[], Awaitable[KV]]
MiB = 1 << 20


class Boom(Exception):
    """Raised by test bodies."""


def forced(kv: KV) -> bool:
    """Whether the test may force interleavings by awaiting events inside bodies (see the module docstring)."""
    return not getattr(kv, "serializes_writers", False)


async def put_all(kv: KV, pairs: list[tuple[bytes, bytes]]) -> None:
    """Write `pairs` in one transaction."""
    async def body(tx: Tx) -> None:
        for k, v in pairs:
            tx.put(k, v)

    await kv.txn(body)


async def read_get(kv: KV, key: bytes) -> bytes | None:
    """The value of `key` read in a read-only transaction."""
    async def body(tx: Tx) -> bytes | None:
        return await tx.get(key)

    return await kv.read(body)


async def read_scan(kv: KV, begin: bytes, end: bytes, **kw: Any) -> list[tuple[bytes, bytes]]:
    """`Tx.scan(begin, end, **kw)` in a read-only transaction."""
    async def body(tx: Tx) -> list[tuple[bytes, bytes]]:
        return await tx.scan(begin, end, **kw)

    return await kv.read(body)


def rmw_body(key: bytes) -> Callable[[Tx], Awaitable[None]]:
    """A transaction body that increments the i64 counter at `key` (read, modify, write)."""
    async def body(tx: Tx) -> None:
        tx.put(key, encode_i64(decode_i64(await tx.get(key)) + 1))

    return body

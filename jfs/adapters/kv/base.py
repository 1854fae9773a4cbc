"""Pieces shared by the KV adapters: the retry loop and the buffered-write overlay.

Adapters only decide *how* one attempt runs and whether it conflicted; `retrying` applies the
``KV_CONFLICT`` budget of `jfs.domain.retry` (ADR 0017) so that every engine retries the same way.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import structlog
from sortedcontainers import SortedDict

from jfs.domain.records import decode_i64, encode_i64
from jfs.domain.retry import KV_CONFLICT
from jfs.ports.kv import RESTARTS, ConflictError, Pointer, ReadOnlyTransaction, TooManyConflicts, Tx

T = TypeVar("T")
log = structlog.get_logger("jfs.kv")

DELETED = None


async def get_follow_in_two(tx: Tx, keys: Sequence[bytes], pointer: Pointer) -> list[bytes | None]:
    """`Tx.get_follow` for engines without server-side scripting: `get_many`, then `get`."""
    values = await tx.get_many(keys)
    target = pointer.target(values[pointer.source])
    values.append(None if target is None else await tx.get(target))
    return values


def txn_name(what: str | Callable[..., object]) -> str:
    """A transaction's name for logs: a string as is, else the body's qualified name without the
    ``<locals>`` parts (``write_slice.body`` for the nested ``body`` of ``write_slice``)."""
    if isinstance(what, str):
        return what
    name = getattr(what, "__qualname__", None) or type(what).__name__
    return name.replace(".<locals>", "")


async def retrying(
    attempt: Callable[[], Awaitable[T]], max_retries: int, what: str | Callable[..., object] = "txn"
) -> T:
    """Run `attempt` until it does not raise ConflictError, at most `max_retries` times.

    Sleeps as `KV_CONFLICT` says between tries (a random 0..n² ms after n tries). Raises TooManyConflicts when every try conflicted.
    `what` names the transaction in the ``txn_retried`` warning (after ≥ 4 tries) and in `RESTARTS`: a
    string, or the body (named lazily, only when it conflicted).
    """
    last: ConflictError | None = None
    for i in range(max(1, max_retries)):
        try:
            result = await attempt()
        except ConflictError as exc:
            last = exc
            name = txn_name(what)
            RESTARTS.note(name)
            log.debug("txn_conflict", what=name, tries=i + 1, reason=str(exc))
            await asyncio.sleep(KV_CONFLICT.delay(i + 1, random.random()))
            continue
        if i > 2:
            log.warning("txn_retried", what=txn_name(what), tries=i + 1, reason=str(last))
        return result
    raise TooManyConflicts(f"transaction {txn_name(what)} still conflicting after {max_retries} tries: {last}")


class WriteBuffer:
    """Writes buffered by one transaction: key -> value, or None for a delete; plus blind counter adds."""

    __slots__ = ("writes", "adds")

    def __init__(self) -> None:
        self.writes: SortedDict[bytes, bytes | None] = SortedDict()
        self.adds: dict[bytes, int] = {}

    def put(self, key: bytes, value: bytes) -> None:
        self.writes[key] = bytes(value)

    def delete(self, key: bytes) -> None:
        self.writes[key] = DELETED

    def add(self, key: bytes, delta: int) -> None:
        self.adds[key] = self.adds.get(key, 0) + delta

    def lookup(self, key: bytes) -> tuple[bool, bytes | None]:
        """(found, value): found is True when the body wrote or deleted `key`."""
        if key in self.writes:
            return True, self.writes[key]
        return False, None

    def in_range(self, begin: bytes, end: bytes) -> Iterator[tuple[bytes, bytes | None]]:
        for key in self.writes.irange(begin, end, inclusive=(True, False)):
            yield key, self.writes[key]

    def __bool__(self) -> bool:
        return bool(self.writes) or bool(self.adds)


def merge_scan(
    stored: Iterable[tuple[bytes, bytes]],
    buffered: Iterable[tuple[bytes, bytes | None]],
    limit: int | None,
) -> list[tuple[bytes, bytes]]:
    """Overlay buffered writes (None = deleted) on stored pairs, both ascending; cut at `limit`."""
    out: list[tuple[bytes, bytes]] = []
    it_s = iter(stored)
    it_b = iter(buffered)
    s = next(it_s, None)
    b = next(it_b, None)
    while s is not None or b is not None:
        if limit is not None and len(out) >= limit:
            break
        if b is None or (s is not None and s[0] < b[0]):
            assert s is not None
            out.append(s)
            s = next(it_s, None)
            continue
        if s is not None and s[0] == b[0]:
            s = next(it_s, None)
        if b[1] is not None:
            out.append((b[0], b[1]))
        b = next(it_b, None)
    return out


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``****``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    cred, at, host = rest.rpartition("@")
    if ":" in cred:
        user = cred.split(":", 1)[0]
        cred = f"{user}:****"
    return f"{scheme}://{cred}{at}{host}"


class BufferedWrites:
    """The write half of a transaction that buffers its writes until commit (memory, TiKV, etcd): put,
    delete and blind adds go to `_buf`; every write raises ReadOnlyTransaction in a read-only transaction.
    The class using it provides `_readonly`, `_buf`, `get` and `scan`."""

    _readonly: bool
    _buf: WriteBuffer

    async def get(self, key: bytes) -> bytes | None:
        raise NotImplementedError

    async def scan(
        self, begin: bytes, end: bytes, *, limit: int = 0, keys_only: bool = False
    ) -> list[tuple[bytes, bytes]]:
        raise NotImplementedError

    async def exists(self, begin: bytes, end: bytes) -> bool:
        return bool(await self.scan(begin, end, limit=1, keys_only=True))

    def put(self, key: bytes, value: bytes) -> None:
        if self._readonly:
            raise ReadOnlyTransaction("put in a read-only transaction")
        self._buf.put(key, value)

    def delete(self, key: bytes) -> None:
        if self._readonly:
            raise ReadOnlyTransaction("delete in a read-only transaction")
        self._buf.delete(key)

    async def incr_by(self, key: bytes, delta: int) -> int:
        if self._readonly:
            raise ReadOnlyTransaction("incr_by in a read-only transaction")
        value = decode_i64(await self.get(key)) + delta
        self.put(key, encode_i64(value))
        return value

    def add(self, key: bytes, delta: int) -> None:
        if self._readonly:
            raise ReadOnlyTransaction("add in a read-only transaction")
        self._buf.add(key, delta)

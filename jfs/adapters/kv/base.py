"""Pieces shared by the KV adapters: the retry loop, the buffered-write overlay, the scan pager and
the transaction boilerplate (read-only guards, `incr_by`, `exists`, `txn`/`read`).

Adapters only decide *how* one attempt runs and whether it conflicted; `retrying` applies the
``KV_CONFLICT`` budget of `jfs.domain.retry` (ADR 0017) so that every engine retries the same way.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import structlog
from sortedcontainers import SortedDict

from jfs.domain.records import decode_i64, encode_i64
from jfs.domain.retry import KV_CONFLICT
from jfs.ports.kv import (
    DEFAULT_MAX_RETRIES,
    RESTARTS,
    ConflictError,
    Pointer,
    ReadOnlyTransaction,
    TooManyConflicts,
)

T = TypeVar("T")
log = structlog.get_logger("jfs.kv")

DELETED = None

Pairs = list[tuple[bytes, bytes]]


def after(key: bytes) -> bytes:
    """The smallest key greater than `key`: where a scan resumes after it."""
    return key + b"\x00"


async def paged_scan(
    page: Callable[[bytes, bytes, int], Awaitable[Sequence[tuple[bytes, bytes]]]],
    begin: bytes,
    end: bytes,
    batch: int,
) -> AsyncIterator[tuple[bytes, bytes]]:
    """`Tx.scan_iter` from a page reader: ``page(cursor, end, n)`` returns at most `n` ascending pairs of
    [cursor, end); a short page ends the scan. Nothing is read when ``begin >= end``."""
    cursor = begin
    while cursor < end:
        chunk = await page(cursor, end, batch)
        for pair in chunk:
            yield pair
        if len(chunk) < batch:
            return
        cursor = after(chunk[-1][0])


async def read_pages(
    page: Callable[[bytes, int], Awaitable[tuple[Pairs, bool]]], begin: bytes, limit: int | None, batch: int
) -> Pairs:
    """Read at most `limit` (None = all) ascending pairs from `begin` in requests of at most `batch`:
    ``page(cursor, n)`` returns (at most `n` pairs from cursor, whether more may follow)."""
    out: Pairs = []
    cursor = begin
    while limit is None or len(out) < limit:
        want = batch if limit is None else min(batch, limit - len(out))
        chunk, more = await page(cursor, want)
        out += chunk
        if not more or not chunk:
            break
        cursor = after(chunk[-1][0])
    return out


def txn_name(what: str | Callable[..., object]) -> str:
    """A transaction's name for logs: a string as is, else the body's qualified name without the
    ``<locals>`` parts (``write_slice.body`` for the nested ``body`` of ``write_slice``)."""
    if isinstance(what, str):
        return what
    name = getattr(what, "__qualname__", None) or type(what).__name__
    return name.replace(".<locals>", "")


async def retrying(
    attempt: Callable[[], Awaitable[T]], max_retries: int, what: str | Callable[..., object] = "txn",
    *, failed: ConflictError | None = None,
) -> T:
    """Run `attempt` until it does not raise ConflictError, at most `max_retries` times.

    Sleeps as `KV_CONFLICT` says between tries (a random 0..n² ms after n tries). Raises TooManyConflicts when every try conflicted.
    `what` names the transaction in the ``txn_retried`` warning (after ≥ 4 tries) and in `RESTARTS`: a
    string, or the body (named lazily, only when it conflicted). `failed`: the conflict of a first try the
    caller already ran itself (a fast path without this coroutine): counted as try 1.
    """
    last: ConflictError | None = None
    for i in range(max(1, max_retries)):
        try:
            if failed is not None:
                exc, failed = failed, None
                raise exc
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

    def split(self, keys: Sequence[bytes]) -> tuple[dict[bytes, bytes | None], list[bytes]]:
        """(values of the keys the body wrote or deleted, the other keys once each, in order)."""
        out: dict[bytes, bytes | None] = {}
        missing: list[bytes] = []
        for key in dict.fromkeys(keys):
            found, value = self.lookup(key)
            if found:
                out[key] = value
            else:
                missing.append(key)
        return out, missing

    def deletions_in(self, begin: bytes, end: bytes) -> int:
        """How many keys of [begin, end) the body deleted (they may hide stored pairs of a scan)."""
        return sum(1 for _, v in self.in_range(begin, end) if v is None)

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


class TxWrites:
    """What every adapter's `Tx` does alike: the read-only guard, `incr_by` as read-then-put, `exists`
    as a one-key scan, `get_follow` as `get_many` then `get` (for engines without server-side
    scripting), and `scan_iter` paged by `paged_scan`. The class using it provides `_readonly`, `get`,
    `get_many`, `put`, `scan` and `_page(cursor, end, n)` (at most `n` stored pairs of [cursor, end))."""

    __slots__ = ()
    _readonly: bool

    def _writable(self, what: str) -> None:
        """Raise ReadOnlyTransaction naming `what` when the transaction is read-only."""
        if self._readonly:
            raise ReadOnlyTransaction(f"{what} in a read-only transaction")

    async def get(self, key: bytes) -> bytes | None:
        raise NotImplementedError

    def put(self, key: bytes, value: bytes) -> None:
        raise NotImplementedError

    async def scan(
        self, begin: bytes, end: bytes, *, limit: int | None = None, keys_only: bool = False
    ) -> list[tuple[bytes, bytes]]:
        raise NotImplementedError

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        raise NotImplementedError

    async def _page(self, cursor: bytes, end: bytes, n: int) -> Pairs:
        raise NotImplementedError

    async def exists(self, begin: bytes, end: bytes) -> bool:
        return bool(await self.scan(begin, end, limit=1, keys_only=True))

    async def get_follow(self, keys: Sequence[bytes], pointer: Pointer) -> list[bytes | None]:
        values = await self.get_many(keys)
        target = pointer.target(values[pointer.source])
        values.append(None if target is None else await self.get(target))
        return values

    def scan_iter(self, begin: bytes, end: bytes, *, batch: int = 1024) -> AsyncIterator[tuple[bytes, bytes]]:
        return paged_scan(self._page, begin, end, batch)

    async def incr_by(self, key: bytes, delta: int) -> int:
        self._writable("incr_by")
        value = decode_i64(await self.get(key)) + delta
        self.put(key, encode_i64(value))
        return value


class BufferedWrites(TxWrites):
    """The write half of a transaction that buffers its writes until commit (memory, TiKV, etcd): put,
    delete and blind adds go to `_buf`; every write raises ReadOnlyTransaction in a read-only transaction.
    The class using it calls ``__init__(readonly)`` and provides `get`, `get_many`, `scan` and `_page`."""

    def __init__(self, readonly: bool) -> None:
        self._readonly = readonly
        self._buf = WriteBuffer()

    def put(self, key: bytes, value: bytes) -> None:
        self._writable("put")
        self._buf.put(key, value)

    def delete(self, key: bytes) -> None:
        self._writable("delete")
        self._buf.delete(key)

    def add(self, key: bytes, delta: int) -> None:
        self._writable("add")
        self._buf.add(key, delta)


class SnapshotScans(BufferedWrites):
    """`get_many` and `scan` of a buffering transaction that reads stored pairs from a remote snapshot
    (TiKV, etcd): buffered writes are overlaid on what the store returns. The class provides
    `_get_stored(keys)` (values of keys the body did not write), `_scan_stored(begin, end, n, keys_only)`
    (at most `n`, None = all, stored pairs of [begin, end)) and `_scanned(begin, covered)`, called in a
    read-write transaction with the part of the range the scan covered, for validation at commit."""

    async def _get_stored(self, keys: list[bytes]) -> dict[bytes, bytes | None]:
        raise NotImplementedError

    async def _scan_stored(self, begin: bytes, end: bytes, limit: int | None, keys_only: bool) -> Pairs:
        raise NotImplementedError

    def _scanned(self, begin: bytes, covered: bytes, stored: Pairs, keys_only: bool) -> None:
        raise NotImplementedError

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        out, missing = self._buf.split(keys)
        if missing:
            out.update(await self._get_stored(missing))
        return [out.get(k) for k in keys]

    async def scan(
        self, begin: bytes, end: bytes, *, limit: int | None = None, keys_only: bool = False
    ) -> list[tuple[bytes, bytes]]:
        if begin >= end or limit == 0:
            return []
        # buffered deletes may hide stored keys: fetch enough that the merged result still reaches `limit`
        fetch = None if limit is None else limit + self._buf.deletions_in(begin, end)
        stored = await self._scan_stored(begin, end, fetch, keys_only)
        covered = after(stored[-1][0]) if fetch is not None and len(stored) == fetch else end
        if not self._readonly:
            self._scanned(begin, covered, stored, keys_only)
        out = merge_scan(stored, self._buf.in_range(begin, covered), limit)
        return [(k, b"") for k, _ in out] if keys_only else out


class RetryingKV:
    """`txn` and `read` of an engine whose one attempt is `_attempt(body, readonly)`, retried on
    ConflictError by `retrying` (the conflict is named after the body). An engine that schedules its
    attempts itself (SQLite: inline or on worker threads) overrides `_run` instead."""

    async def _attempt(self, body: Callable[[Any], Awaitable[T]], readonly: bool) -> T:
        raise NotImplementedError

    async def _run(self, body: Callable[[Any], Awaitable[T]], readonly: bool, max_retries: int) -> T:
        return await retrying(lambda: self._attempt(body, readonly), max_retries, body)

    async def txn(self, body: Callable[[Any], Awaitable[T]], *, max_retries: int = DEFAULT_MAX_RETRIES) -> T:
        return await self._run(body, False, max_retries)

    async def read(self, body: Callable[[Any], Awaitable[T]], *, max_retries: int = DEFAULT_MAX_RETRIES) -> T:
        return await self._run(body, True, max_retries)

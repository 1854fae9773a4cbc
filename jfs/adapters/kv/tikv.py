"""`tikv://pd1:2379,pd2:2379/prefix` — the KV port on TiKV optimistic transactions (Percolator MVCC).

Keys are stored as ``prefix + b"\\xfd" + key`` when a prefix is given (the JuiceFS convention, so several
volumes can share a cluster), as-is otherwise.

How one attempt runs:

* Read-write bodies: ``begin(pessimistic=False)``; reads go to the TiKV transaction (one snapshot at its
  start timestamp); writes and blind adds are buffered in a WriteBuffer and merged into reads
  (read-your-writes). At commit the buffer is applied to the transaction, `add`s become read+write inside
  it (so, unlike on Redis/SQLite, an `add` MAY conflict on TiKV and be retried), then:

  - every key the body read and does not write is locked with ``lock_keys`` — Percolator then reports a
    write conflict if any of them was committed by someone else after our start, which closes write skew
    (plain TiKV optimistic transactions are only snapshot-isolated);
  - every scanned range is re-read at a fresh timestamp and compared (digest) with what the body saw:
    a changed range is a conflict. This catches phantoms committed before our commit starts; one committed
    in the short window between that re-read and our prewrite is NOT caught (TiKV has no range locks).
    For jfs's own emptiness checks (rmdir, rename over a directory) the window does not matter: such a
    body also rewrites or deletes the directory's attribute record, which every insertion into that
    directory rewrites too, so the two conflict on that key.

* Read-only bodies use a snapshot at ``current_timestamp()``: consistent, no validation needed.

Errors: messages naming a write conflict, a lock, or asking to retry → ConflictError; PD/TiKV unreachable →
EngineUnavailable; a connection lost during commit → EngineUnavailable saying the outcome is unknown.
`reset()` deletes everything under the prefix (the whole keyspace without one), in batches.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote

import structlog

from jfs.domain.records import decode_i64, encode_i64
from jfs.ports.kv import DEFAULT_MAX_RETRIES, ConflictError, EngineError, EngineUnavailable, KVError

from .base import Pairs, RetryingKV, SnapshotScans, read_pages, retrying
from .registry import BadMetaURL

T = TypeVar("T")
log = structlog.get_logger("jfs.kv")

CONNECT_TIMEOUT = 10.0
SCAN_BATCH = 10_240
RESET_BATCH = 5_000
_CONFLICT = (
    "writeconflict",
    "write conflict",
    "keyislocked",
    "key is locked",
    "txnlocknotfound",
    "retry",
    "deadlock",
)
_UNREACHABLE = (
    "pd cluster failed",
    "failed to connect",
    "connection refused",
    "transport error",
    "unavailable",
    "timed out",
    "deadline",
    "broken pipe",
    "connection reset",
)


_RUST_LOCATION = re.compile(r"\[[^\]]*\.rs:\d+\]:\s*")


def _one_line(exc: BaseException) -> str:
    """The message on one line, without the Rust source locations the binding prepends."""
    return " ".join(_RUST_LOCATION.sub("", str(exc)).split()) or type(exc).__name__


def _classify(exc: BaseException, address: str, committing: bool = False) -> KVError:
    """Map an exception of the (untyped) TiKV binding onto the port's errors by its message."""
    msg = _one_line(exc)
    low = msg.lower()
    if any(m in low for m in _CONFLICT):
        return ConflictError(f"TiKV: {msg}")
    if isinstance(exc, OSError | asyncio.TimeoutError) or any(m in low for m in _UNREACHABLE):
        if committing:
            return EngineUnavailable(
                f"lost contact with TiKV at {address} while committing; the outcome of the transaction is unknown: {msg}"
            )
        return EngineUnavailable(f"cannot reach TiKV at {address}: {msg}")
    return EngineError(f"TiKV at {address} failed: {msg}")


def _pairs(reply: Any) -> list[tuple[bytes, bytes]]:
    """Scan / batch_get replies are a list of (key, value) or, in older bindings, a dict."""
    items = reply.items() if isinstance(reply, dict) else reply
    return [(bytes(k), bytes(v)) for k, v in items]


def _digest(pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    h = hashlib.sha1()
    for k, v in pairs:
        h.update(len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v)
    return h.digest()


class TikvTx(SnapshotScans):
    """One attempt: `reader` is a TiKV transaction (read-write) or snapshot (read-only)."""

    def __init__(self, kv: TikvKV, reader: Any, readonly: bool) -> None:
        self._kv = kv
        self._reader = reader
        super().__init__(readonly)
        self._p = kv.prefix
        self._read_keys: set[bytes] = set()
        self._ranges: list[tuple[bytes, bytes, bool, bytes]] = []  # begin, end (exclusive), keys_only, digest
        self.committed = False

    async def _call(self, aw: Awaitable[Any]) -> Any:
        try:
            return await aw
        except KVError:
            raise
        except Exception as exc:
            raise _classify(exc, self._kv.address) from exc

    async def get(self, key: bytes) -> bytes | None:
        found, value = self._buf.lookup(key)
        if found:
            return value
        self._read_keys.add(key)
        raw = await self._call(self._reader.get(self._p + key))
        return None if raw is None else bytes(raw)

    async def _get_stored(self, keys: list[bytes]) -> dict[bytes, bytes | None]:
        self._read_keys.update(keys)
        n = len(self._p)
        got = _pairs(await self._call(self._reader.batch_get([self._p + k for k in keys])))
        return {k[n:]: v for k, v in got}

    async def _stored(
        self, begin: bytes, end: bytes, limit: int | None, keys_only: bool, reader: Any = None
    ) -> Pairs:
        """Stored pairs of [begin, end) (values b"" when keys_only), at most `limit` (None = all)."""
        reader = reader or self._reader
        p, n = self._p, len(self._p)

        async def page(cursor: bytes, want: int) -> tuple[Pairs, bool]:
            if keys_only:
                keys = await self._call(reader.scan_keys(p + cursor, p + end, want, True, False))
                chunk = [(bytes(k)[n:], b"") for k in keys]
            else:
                pairs = _pairs(await self._call(reader.scan(p + cursor, p + end, want, True, False)))
                chunk = [(k[n:], v) for k, v in pairs]
            return chunk, len(chunk) == want

        return await read_pages(page, begin, limit, SCAN_BATCH)

    async def _scan_stored(self, begin: bytes, end: bytes, limit: int | None, keys_only: bool) -> Pairs:
        return await self._stored(begin, end, limit, keys_only)

    def _scanned(self, begin: bytes, covered: bytes, stored: Pairs, keys_only: bool) -> None:
        self._ranges.append((begin, covered, keys_only, _digest(stored)))

    async def _page(self, cursor: bytes, end: bytes, n: int) -> Pairs:
        return await self._stored(cursor, end, n, False)

    async def commit(self) -> None:
        """Apply the buffer to the TiKV transaction, lock the read set, re-check scanned ranges, commit."""
        txn, p = self._reader, self._p
        written = set(self._buf.writes)
        for key, value in self._buf.writes.items():
            await self._call(txn.delete(p + key) if value is None else txn.put(p + key, value))
        for key, delta in self._buf.adds.items():
            found, current = self._buf.lookup(key)
            if not found:
                raw = await self._call(txn.get(p + key))
                current = None if raw is None else bytes(raw)
            await self._call(txn.put(p + key, encode_i64(decode_i64(current) + delta)))
            written.add(key)
        if not written:
            return  # reads only: they all came from one snapshot
        locks = [p + k for k in self._read_keys - written]
        if locks:
            await self._call(txn.lock_keys(locks))
        if self._ranges:
            snapshot = self._kv.client.snapshot(await self._call(self._kv.client.current_timestamp()), False)
            for begin, end, keys_only, digest in self._ranges:
                if _digest(await self._stored(begin, end, None, keys_only, snapshot)) != digest:
                    raise ConflictError("TiKV: a scanned range changed before commit")
        try:
            await txn.commit()
        except Exception as exc:
            raise _classify(exc, self._kv.address, committing=True) from exc
        self.committed = True


class TikvKV(RetryingKV):
    """See the module docstring."""

    serializes_writers = False

    def __init__(self, url: str, client: Any, address: str, prefix: bytes) -> None:
        self.url = url
        self.client = client
        self.address = address
        self.prefix = prefix

    async def _attempt(self, body: Callable[[Any], Awaitable[T]], readonly: bool) -> T:
        try:
            if readonly:
                ts = await self.client.current_timestamp()
                reader = self.client.snapshot(ts, False)
            else:
                reader = await self.client.begin(False)
        except Exception as exc:
            raise _classify(exc, self.address) from exc
        if readonly:
            return await body(TikvTx(self, reader, True))
        tx = TikvTx(self, reader, False)
        try:
            result = await body(tx)
            await tx.commit()
            return result
        finally:
            if not tx.committed:  # also ends read-only use of a read-write transaction
                await self._rollback(reader)

    async def _rollback(self, txn: Any) -> None:
        # the binding refuses to drop an active transaction; a failed commit may already have rolled back
        try:
            await txn.rollback()
        except Exception as exc:
            log.debug("tikv_rollback_failed", error=_one_line(exc))

    async def reset(self) -> None:
        """Delete every key under the prefix (the whole keyspace when there is none), in batches."""
        begin = self.prefix
        end = self.prefix[:-1] + b"\xfe" if self.prefix else None

        async def one_batch() -> int:
            txn = await self.client.begin(False)
            try:
                keys = await txn.scan_keys(begin, end, RESET_BATCH, True, False)
                for key in keys:
                    await txn.delete(bytes(key))
                await txn.commit()
            except BaseException:
                await self._rollback(txn)
                raise
            return len(keys)

        async def attempt() -> int:
            try:
                return await one_batch()
            except Exception as exc:
                raise _classify(exc, self.address) from exc

        while await retrying(attempt, DEFAULT_MAX_RETRIES, "reset") == RESET_BATCH:
            pass

    async def close(self) -> None:
        self.client = None


def parse_tikv_url(url: str) -> tuple[list[str], bytes]:
    """(PD endpoints, physical key prefix) of ``tikv://pd1:2379,pd2:2379/prefix``; ValueError if malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "tikv":
        raise ValueError(f"not a tikv:// URL: {url}")
    hosts, _, prefix = rest.partition("/")
    prefix = unquote(prefix.partition("?")[0]).rstrip("/")
    endpoints = [h.strip() for h in hosts.split(",") if h.strip()]
    if not endpoints:
        raise ValueError("tikv:// URL without PD endpoints (e.g. tikv://pd1:2379,pd2:2379/myvolume)")
    return endpoints, (prefix.encode() + b"\xfd") if prefix else b""


async def open_tikv(url: str) -> TikvKV:
    """Connect to the PD endpoints of `url` (bounded by CONNECT_TIMEOUT seconds).

    Raises EngineUnavailable (one line) when PD cannot be reached, BadMetaURL when the URL is malformed.
    """
    try:
        endpoints, prefix = parse_tikv_url(url)
    except ValueError as exc:
        raise BadMetaURL(str(exc)) from None
    address = ",".join(endpoints)
    try:
        from tikv_client.asynchronous import TransactionClient
    except ImportError as exc:
        raise EngineUnavailable(
            f"the TiKV client is not installed ({exc}): pip install 'jfs[tikv]'"
        ) from None

    async def connect() -> Any:
        client = await TransactionClient.connect(endpoints)
        await client.current_timestamp()  # proves PD answers
        return client

    try:
        client = await asyncio.wait_for(connect(), CONNECT_TIMEOUT)
    except TimeoutError:
        raise EngineUnavailable(
            f"cannot reach TiKV PD at {address}: no answer within {CONNECT_TIMEOUT:g} s"
        ) from None
    except Exception as exc:
        raise EngineUnavailable(f"cannot reach TiKV PD at {address}: {_one_line(exc)}") from None
    log.debug("tikv_opened", pd=address, prefix=prefix.decode(errors="replace"))
    return TikvKV(url, client, address, prefix)

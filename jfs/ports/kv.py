"""The KV-transaction port: an ordered byte-key store with serializable transactions.

Every metadata operation of jfs is one call of `KV.txn` (or `KV.read`). Semantics every adapter must
provide, proved by `tests/contract/test_kv_contract.py`:

* **Ordering.** Keys and values are arbitrary bytes (keys non-empty; 0x00 and 0xFF allowed). Scans return
  keys in ascending unsigned byte order over the half-open range ``[begin, end)``.
* **Serializable.** The outcome of concurrent transactions equals some serial order of them: no lost
  updates, no write skew on keys read in the transaction, no phantoms in ranges scanned with `scan` /
  `exists`. A body whose outcome counts (its commit, its return value, its exception) saw one consistent
  state; a run that saw an inconsistent one is discarded and re-run, so bodies must tolerate such a run
  (no unbounded loops on what they read). (`scan_iter` is the exception: see its docstring.)
* **Atomic.** A transaction's writes are applied all together at commit or not at all. A body that raises
  leaves nothing behind, and its exception propagates unchanged to the caller of `txn`.
* **Read-your-writes.** Inside a body, `get`, `get_many`, `scan` and `exists` see the body's own `put`s and
  `delete`s. The effect of `add` is not visible before commit.
* **Retries.** `txn` re-runs the body on conflict (up to `max_retries`, with growing randomized back-off),
  so a body must be re-runnable: it may not keep state across runs or touch the outside world. It may only
  await the methods of its `Tx`. When retries are exhausted `TooManyConflicts` is raised.
* **Errors.** `EngineUnavailable` means the engine cannot be reached or refuses us (down, bad address, bad
  password); nothing was committed by the failing attempt, or — if the connection died during commit — the
  outcome is unknown and the message says so. Other adapter failures raise `EngineError`.
* **Counters.** `incr_by` and `add` treat the value as an 8-byte little-endian signed integer (absent = 0).
  `incr_by` is a read-modify-write that participates in conflict detection; `add` is a blind commutative
  increment applied atomically at commit that never causes a conflict (for hot usage counters).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeVar, runtime_checkable

from jfs.domain.retry import KV_CONFLICT_ATTEMPTS

T = TypeVar("T")

DEFAULT_MAX_RETRIES = KV_CONFLICT_ATTEMPTS
"""Runs of a conflicting body before TooManyConflicts: the `KV_CONFLICT` budget of `jfs.domain.retry`."""


class KVError(Exception):
    """Base of every error an adapter raises on its own behalf."""


class ConflictError(KVError):
    """A transaction lost a race with another one; retrying it may succeed. Internal to `txn`."""


class TooManyConflicts(KVError):
    """A transaction kept conflicting after the maximum number of retries."""


class EngineUnavailable(KVError):
    """The engine cannot be reached, or it refused us (bad credentials, wrong database)."""


class EngineError(KVError):
    """Any other failure reported by the engine (corrupt data, unsupported value, server error)."""


class Restarts:
    """Conflict restarts of transactions in this process, by transaction name (the body's qualified name).

    The adapters' retry loop counts every try that ended in ConflictError (JuiceFS's
    ``transaction_restart``); ``.stats`` shows the total, and tests use it to check that one client's
    transactions do not conflict with each other.
    """

    def __init__(self) -> None:
        self.total = 0
        self.by_name: dict[str, int] = {}

    def note(self, name: str) -> None:
        self.total += 1
        self.by_name[name] = self.by_name.get(name, 0) + 1

    def reset(self) -> None:
        self.total = 0
        self.by_name.clear()


RESTARTS = Restarts()


class ReadOnlyTransaction(KVError):
    """A write was attempted inside `KV.read`."""


@dataclass(frozen=True, slots=True)
class Pointer:
    """A key named by bytes inside the value of another key (see `Tx.get_follow`):
    ``prefix + value[start:stop] + suffix``, with the middle bytes reversed when `reverse` (a number
    stored big-endian in values but little-endian in keys)."""

    source: int
    """Index, in the keys of the same `get_follow` call, of the key whose value holds the pointer."""
    start: int
    stop: int
    prefix: bytes = b""
    suffix: bytes = b""
    reverse: bool = False

    def target(self, value: bytes | None) -> bytes | None:
        """The key `value` points at; None when `value` is absent or shorter than `stop`."""
        if value is None or len(value) < self.stop:
            return None
        middle = value[self.start : self.stop]
        return self.prefix + (middle[::-1] if self.reverse else middle) + self.suffix


@runtime_checkable
class Tx(Protocol):
    """One transaction, valid only while its body runs."""

    async def get(self, key: bytes) -> bytes | None:
        """The value of `key`, or None when absent."""

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of `keys` in order (None for absent ones), in as few round trips as the engine allows."""

    async def get_follow(self, keys: Sequence[bytes], pointer: Pointer) -> list[bytes | None]:
        """`get_many(keys)` plus one more value: that of the key `pointer` names inside the value of
        ``keys[pointer.source]`` (None when that value is absent or too short, or the key it names is
        absent). Same isolation as reading all of them in this transaction; engines with server-side
        scripting serve it in one round trip (a lookup: dentry and the inode it names)."""

    async def scan(
        self, begin: bytes, end: bytes, *, limit: int | None = None, keys_only: bool = False
    ) -> list[tuple[bytes, bytes]]:
        """Pairs with begin <= key < end, ascending, at most `limit` of them.

        With `keys_only` the values are returned as b"" (cheaper where the engine allows). The scanned range
        (up to the last key returned when the limit was reached) takes part in conflict detection.
        """

    def scan_iter(self, begin: bytes, end: bytes, *, batch: int = 1024) -> AsyncIterator[tuple[bytes, bytes]]:
        """Stream pairs of ``[begin, end)`` ascending, `batch` at a time, in flat memory.

        For huge ranges (readdir of a million entries, dump). Each batch is read consistently, but batches
        may come from different states of the store and the range does not take part in conflict
        detection; writes buffered by this body are not merged in.
        """

    async def exists(self, begin: bytes, end: bytes) -> bool:
        """Whether any key lies in ``[begin, end)`` (participates in conflict detection)."""

    def put(self, key: bytes, value: bytes) -> None:
        """Set `key` to `value` at commit."""

    def delete(self, key: bytes) -> None:
        """Remove `key` at commit (absent keys are fine)."""

    async def incr_by(self, key: bytes, delta: int) -> int:
        """Read the counter at `key`, add `delta`, write it back; returns the new value."""

    def add(self, key: bytes, delta: int) -> None:
        """Blindly add `delta` to the counter at `key` at commit; never conflicts."""


class AssumingTx(Protocol):
    """Offered by a `Tx` whose commit validates every read by value (Redis): `assume` records `value` (None:
    absent) as read for `key` without a round trip; the commit then fails with ConflictError (and the body
    is retried) unless `key` still holds exactly that. For a caller that knows what it last wrote there."""

    def assume(self, key: bytes, value: bytes | None) -> None: ...

    def assume_empty(self, begin: bytes, end: bytes) -> None:
        """The same for a range: ``[begin, end)`` held no key, validated by the commit (as a scanned range)."""


class RangeDeletingTx(Protocol):
    """Offered by a `Tx` that can delete a key range at commit without reading it first (Redis: inside the
    commit script, saving the scan's round trip). `delete_range` removes, atomically with the rest of the
    commit, every key then stored in ``[begin, end)`` — also keys another transaction wrote there after this
    body began (a blind write: the range takes no part in conflict detection). The body must neither read
    nor write keys of the range afterwards (EngineError)."""

    def delete_range(self, begin: bytes, end: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class KeyShape:
    """Keys exactly `length` bytes long whose byte at `at` (0-based) is `byte` (e.g. the chunk records
    ``A<ino:8>C<indx:4>``: length 14, byte 9 = ``C``)."""

    length: int
    at: int
    byte: int

    def fits(self, key: bytes) -> bool:
        return len(key) == self.length and key[self.at] == self.byte


class ShapeScanningTx(Protocol):
    """Offered by a `Tx` that can stream the keys of one shape out of a range without handing every other
    key of the range to the caller (SQLite: a partial index on the shape, see its adapter). Same
    guarantees as `Tx.scan_iter` (batches read consistently, no conflict detection, buffered writes not
    merged in); yields exactly the pairs of ``scan_iter(begin, end)`` whose key `shape.fits`."""

    def scan_shaped_iter(
        self, begin: bytes, end: bytes, shape: KeyShape, *, batch: int = 1024
    ) -> AsyncIterator[tuple[bytes, bytes]]: ...


class AppendingTx(Protocol):
    """Offered by a `Tx` that can append to a value at commit at a cost independent of the value's length
    (Redis: STRLEN + APPEND inside the commit script; ADR 0055). `append(key, suffix, at)` joins the commit:
    it fails with ConflictError (and the body is retried) unless `key`'s value is then exactly `at` bytes
    long (0: absent or empty), and otherwise sets it to that value + `suffix`, atomically with the rest.

    What the body observed of `key` is its length only: the transaction stays serializable (it read "`key`
    has `at` bytes" and wrote "`key` + `suffix`"), but a rewrite of `key` that keeps its length is not a
    conflict — a caller uses it where every such rewrite leaves an equivalent value (a chunk compaction) or
    changes something else the body read. Reads of `key` earlier in the body are validated as usual; the
    body must not append to a key it put, deleted or range-deleted, nor read, scan, put, delete, add to or
    range-delete `key` after appending to it (EngineError).
    Several appends to one key in a body join (the first `at` holds)."""

    def append(self, key: bytes, suffix: bytes, at: int) -> None: ...


@runtime_checkable
class BulkLoadingKV(Protocol):
    """Offered by an engine that can write many keys faster outside a transaction, for `jfs load` into an
    EMPTY engine that nothing else uses (no volume exists until the load writes the setting last).
    ``load_puts`` writes every pair, blindly: no conflict detection, no atomicity across the pairs (a
    load that fails half-way leaves a partial engine either way, which the load reports); the pairs are
    all written when it returns. Redis: one MSET and one ZADD of the index per call, without Lua (ADR 0062)."""

    async def load_puts(self, items: Sequence[tuple[bytes, bytes]]) -> None: ...


@runtime_checkable
class RangeReadingKV(Protocol):
    """Offered by an engine that reads many key ranges in one round trip (Redis: one script call), for the
    offline tools that read every inode's records (dump). ``read_ranges`` returns the pairs of each
    ``[begin, end)``, ascending, at most `limit` per range (one that returns `limit` may hold more). Each
    range is read consistently (Redis: up to 2,000 ranges of a call from one state), outside any
    transaction: the ranges take no part in conflict detection, as with `Tx.scan_iter`. ``sparse_keys`` walks
    a key range and returns only the keys that a byte filter keeps (dump: the inodes with records besides
    their attributes, ADR 0062)."""

    async def read_ranges(self, ranges: Sequence[tuple[bytes, bytes]], limit: int,
                          points: Sequence[bytes] = ()) -> list[list[tuple[bytes, bytes]]]:
        """The pairs of each range, then for each of `points` (single keys, read with the ranges in the
        same state) ``[(key, value)]`` or ``[]``."""
        ...

    async def sparse_keys(self, begin: bytes, end: bytes, limit: int, at: int,
                          skip: bytes) -> tuple[bytes | None, list[bytes]]:
        """Examine up to `limit` keys of ``[begin, end)`` in order; return the last key examined (None when
        there was none) and the keys among them whose byte at index `at` is not one of `skip` (or that are
        shorter). Fewer than `limit` examined keys are not reported as such: the caller goes on from the
        last key until it gets None. Read outside any transaction, like `read_ranges`."""
        ...


@runtime_checkable
class PageReadingKV(Protocol):
    """Offered by an engine that reads a range page by page in native commands cheaper than its consistent
    range read (Redis: one SORT_RO of the index by rank per page, keys and values in one reply, the next
    page asked while this one is used; ADR 0082), for scans that are not snapshots anyway (fsck's, gc's).
    ``read_pages`` yields the pairs of ``[begin, end)`` ascending, in pages of at most `limit`; each value
    is what its key held at some moment of the scan, a key deleted in between is left out (that page is
    then read again consistently, which also reports an engine whose index names a key without data, as
    `RangeReadingKV` does). Outside any transaction."""

    def read_pages(self, begin: bytes, end: bytes, limit: int) -> AsyncIterator[list[tuple[bytes, bytes]]]: ...


class FollowedRange(NamedTuple):
    """What `RangeFollowingKV.follow_range` read: `keys` and `values` of the range (ascending), `targets`
    (for each, the value of the key its value points at, or None), `extra` (the values of the extra keys,
    or None), and `last`: the last key listed when the range may hold more (`limit` keys were listed; the
    next page begins after it), else None."""

    keys: list[bytes]
    values: list[bytes]
    targets: list[bytes | None]
    extra: list[bytes | None]
    last: bytes | None


@runtime_checkable
class RangeFollowingKV(Protocol):
    """Offered by an engine that reads a range, and the keys its values point at, in a few native commands
    (Redis: ZRANGEBYLEX, MGET of the values, MGET of the pointed-at keys and `extra`), for the tree-wide
    summaries that need every entry's attributes (``jfs summary``). ``follow_range`` returns up to `limit`
    pairs of ``[begin, end)`` with, for each, the value of the key `pointer` names in it (`pointer.source`
    is ignored), and the values of `extra` keys read with those. Outside any transaction and not one
    snapshot: each value is what its key held at some moment during the call (a key the range listed but
    that was deleted before its value was read is left out), like a listing's attributes read after its
    names (`jfs.app.meta.readdir`)."""

    async def follow_range(self, begin: bytes, end: bytes, limit: int, pointer: Pointer,
                           extra: Sequence[bytes] = ()) -> FollowedRange: ...


@runtime_checkable
class FollowingKV(Protocol):
    """An engine that reads what `Tx.get_follow` reads without a transaction around it, in one round trip."""

    def read_follow(self, keys: Sequence[bytes], pointer: Pointer) -> Awaitable[list[bytes | None]]:
        """What ``read(lambda tx: tx.get_follow(keys, pointer))`` returns — the values of `keys`, then that
        of the key `pointer` names — read atomically (one snapshot), as a read-only transaction of one round
        has nothing to validate. Errors as `read`'s. (A LOOKUP's dentry and inode: ADR 0094.)"""
        ...


class KV(Protocol):
    """A connected metadata engine."""

    url: str
    """The URL it was opened with, password removed."""

    async def txn(self, body: Callable[[Tx], Awaitable[T]], *, max_retries: int = DEFAULT_MAX_RETRIES) -> T:
        """Run `body` in a read-write transaction, retrying it on conflict; return what it returns."""

    async def read(self, body: Callable[[Tx], Awaitable[T]], *, max_retries: int = DEFAULT_MAX_RETRIES) -> T:
        """Run `body` in a read-only transaction (writes raise ReadOnlyTransaction)."""

    async def reset(self) -> None:
        """Delete every key (tests and `format --force` only)."""

    async def close(self) -> None:
        """Release connections and threads. The KV is unusable afterwards."""


KVOpener = Callable[[str], Awaitable[KV]]
"""What an engine plugin provides: an async function from a META-URL to a connected KV."""

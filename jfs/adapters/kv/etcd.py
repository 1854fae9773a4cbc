"""`etcd://[user:pass@]host1:2379,host2:2379/prefix` — the KV port on etcd v3 (Raft, MVCC, Txn compare).

Keys are stored as ``/prefix`` + 0xFD + key, byte for byte as JuiceFS does (see `etcd_url`), so jfs and
JuiceFS clients share one volume. docs/adr/0013-etcd-adapter.md records the choices; in short:

* **Snapshot reads.** A body's first read fixes revision R (the store's revision when it was served);
  every later read of the body asks for revision R, so a body sees one state, and a read-only body needs
  no validation at all. (R compacted away meanwhile → ConflictError → the body re-runs.)
* **Optimistic commit.** Writes are buffered (read-your-writes by overlay). The commit is ONE etcd Txn
  whose compares are the read set: every key read (also the keys a scan returned) must still have the
  mod revision it had at R (0 = absent, so a deletion is a change too), and every scanned range must hold
  no key modified after R (``mod_revision < R + 1`` over the range: catches phantoms). If a compare
  fails nothing is written and the body re-runs through the port's retry loop.
* **Blind adds** are a read-modify-write inside the commit: the counters' last value and mod revision are
  cached per connection (read when unknown) and compared in a separate, nested level whose failure branch
  returns their current values, so a moved counter costs one re-send of the commit — never a re-run of the
  body (an `add` never conflicts from the body's point of view) and no extra read in the common case. A body without puts or deletes commits
  its adds without validating its reads (they saw one snapshot; blind adds cannot skew).
* **etcd's limits.** `--max-txn-ops` (128) bounds, along every path of a nested Txn, the sum of each
  level's count (its compares or its operations, whichever is larger). Writes beyond it are nested in
  sub-Txns (one atomic request still: thousands of writes fit); batched reads are split into several
  requests at revision R (safe). The read set cannot be split: when its point compares do not fit, the
  keys a store read found absent are compared as ranges instead, one per record type (no key of the span
  modified after R: `EtcdTx._absent_runs`; a compaction releasing a thousand slices reads a thousand
  absent reference records); a body that read more *present* keys and ranges than fit beside its writes
  (~120 with the default) fails with EngineError naming --max-txn-ops, as does a commit over
  `--max-request-bytes` (1.5 MiB by default; one value too) — atomicity forbids splitting.
* **Read cache** (docs/adr/0025-etcd-read-cache.md). A read-write body serves `get`/`get_many` of keys
  this client recently read or wrote from `ReadCache` (value and mod revision, or absent) without a round
  trip; those keys join the read set like any other, so a stale entry fails the commit's compares. The
  read set's compares carry a failure branch that re-reads every key read: a failed commit refreshes the
  cache at its revision F, and the retry uses no entry older than F (a stale entry fails one commit, not
  two). The body's first store read after cached ones is a Txn that also compares those keys, and
  after it only entries that hold at R are used: from its first store read on, a body sees the state at
  R. A body that used the cache and wrote nothing, or raised, has its read set validated (one
  compare-only Txn) before its result or exception counts: a body's outcome rests on one consistent
  state. Read-only bodies read the server only; `get_follow` there uses a cached pointer only to fetch
  its likely target in the same request (a lookup in one round trip), checked against what was read.
* **What this client's commits left** (docs/adr/0043-etcd-directory-attributes-known-from-own-commits.md).
  Cache entries written or compared by a successful commit carry the commit's send time; `recent_value`
  hands them out with their age to a face that may answer with a value that old (the kernel's GETATTR of
  a directory this mount has just changed). Never used by a transaction. `delete_range`: etcd_range_delete.
* **Deferred adds** (docs/adr/0034-etcd-batched-usage-and-limits.md). `EtcdKV.defer_adds` takes the
  volume's usage counters out of every transaction, as JuiceFS does: committed deltas are summed and
  added once a second, before this client reads one of them, and at close.
* **Fail-over** between members is `EtcdClient`'s; a commit whose outcome is unknown (connection lost
  after sending) is checked: if every key it put holds its value at one common revision newer than R, and
  the keys it deleted are gone, it was applied; otherwise it is sent again (its compares decide).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import structlog

from jfs.domain.records import decode_i64, encode_i64
from jfs.ports.kv import ConflictError, EngineError, EngineUnavailable, KVError, Pointer

from .base import Pairs, RetryingKV, SnapshotScans, read_pages, retrying
from .etcd_cache import ReadCache, Version
from .etcd_client import Ambiguous, EtcdClient
from .etcd_range_delete import RangeDeletes
from .etcd_url import EtcdTarget, parse_etcd_url
from .registry import BadMetaURL

T = TypeVar("T")
log = structlog.get_logger("jfs.kv")

SCAN_BATCH = 10_000
OPEN_TIMEOUT = 5.0
ADD_RETRIES = 50  # re-sends of one commit whose counters moved
AMBIGUOUS_RETRIES = 3
DEFER_INTERVAL = 1.0
"""Seconds between flushes of deferred counter deltas (`EtcdKV.defer_adds`; JuiceFS: one second)."""
NO_CACHE = 1 << 63
"""`EtcdTx`'s cache floor when it may not read from the cache at all."""


def _chunks(items: Sequence[Any], n: int) -> list[Sequence[Any]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


@functools.cache
def _capacity(budget: int) -> int:
    """How many operations fit in a list of `budget` operations nested as `EtcdTx._pack` nests them."""
    return max([budget, *(k * _capacity(budget - k) for k in range(2, budget))])


class EtcdTx(RangeDeletes, SnapshotScans):
    """One attempt of a body; see the module docstring."""

    def __init__(self, kv: EtcdKV, readonly: bool, floor: int = NO_CACHE) -> None:
        self._dropped = []
        self._kv = kv
        self._c = kv.client
        self._pb = kv.client.pb
        self._p = kv.prefix
        super().__init__(readonly)
        self.rev = 0  # R: 0 until the first read is served
        self._rev_lock = asyncio.Lock()
        self._seen: dict[bytes, int] = {}  # key -> mod revision at R, or of its cache entry (0 = absent)
        self._ranges: list[tuple[bytes, bytes]] = []  # scanned [begin, covered end)
        self._use_cache = floor < NO_CACHE and not readonly and kv.cache.max_bytes > 0
        self._min_at = floor  # entries known before this revision are not used
        self.cached: set[bytes] = set()  # keys served from the cache
        self._floor = 0  # the latest revision a cache entry used was known at
        self._torn = False  # the body saw two versions of one key (cache, then server): cannot commit
        self.refreshed_at = NO_CACHE
        self.deferred: dict[bytes, int] = {}
        """Adds to counters the KV defers (`EtcdKV.defer_adds`): handed to it once the commit succeeded."""
        """After a ConflictError: the revision as of which the failed request re-read the whole read set
        into the cache (the next attempt may use entries from then on), NO_CACHE when it did not."""

    # ---- read set and cache ------------------------------------------------------------------------------

    def _note(self, key: bytes, mod_revision: int) -> None:
        """Add `key` to the read set; a second, different version of it makes the attempt unable to commit."""
        if self._seen.setdefault(key, mod_revision) != mod_revision:
            self._torn = True

    def _stored_value(self, key: bytes, value: bytes | None, mod_revision: int) -> bytes | None:
        """Note a point read served by the store at R (read set, and the cache for later bodies)."""
        self._note(key, mod_revision)
        self._kv.cache.note(key, value, mod_revision, self.rev)
        return value

    def _from_cache(self, key: bytes) -> Version | None:
        """The cache entry of `key` to serve a read with, noted in the read set; None: read the store."""
        if not self._use_cache or (key in self._seen and key not in self.cached):
            return None  # a key this body already read from the store is read there again (same R)
        hit = self._kv.cache.get(key)
        if hit is None or hit.at < self._min_at:
            return None
        # once R is fixed (the first store read checked the entries used before), only entries that
        # hold at R: from then on, everything the body sees is the state at R
        if self.rev and not hit.holds_at(self.rev):
            return None
        self._note(key, hit.mod_revision)
        self.cached.add(key)
        self._floor = max(self._floor, hit.at)
        return hit

    def _stale(self, reason: str) -> ConflictError:
        """Drop every entry this attempt read (one of them, or a scanned range, is stale) and say so."""
        self._kv.cache.discard(self._seen)
        return ConflictError(reason)

    def _refresh_ops(self) -> list[Any]:
        """Range requests of every key read: the failure branch of the read set's compares."""
        pb, p = self._pb, self._p
        return [pb.RequestOp(request_range=pb.RangeRequest(key=p + k)) for k in self._seen]

    def _refreshed(self, reply: Any, revision: int, reason: str) -> ConflictError:
        """The read set's compares failed at `revision` and `reply` (their failure branch) holds the
        current versions of the keys read: cache them and let the next attempt use entries from then."""
        cache = self._kv.cache
        for key, r in zip(self._seen, reply.responses, strict=True):
            kvs = r.response_range.kvs
            if kvs:
                cache.note(key, bytes(kvs[0].value), kvs[0].mod_revision, revision)
            else:
                cache.note(key, None, 0, revision)
        self.refreshed_at = revision
        return ConflictError(reason)

    # ---- reads -------------------------------------------------------------------------------------------

    async def _at_rev(self, method: str, make: Callable[[int], Any]) -> Any:
        """Send ``make(R)``; the first read of the body is sent with 0 (latest) and fixes R."""
        if not self.rev:
            async with self._rev_lock:
                if not self.rev:
                    if self.cached:
                        return await self._first_after_cache(method, make(0))
                    reply = await self._c.call(method, make(0), write=False)
                    self.rev = reply.header.revision
                    return reply
        return await self._c.call(method, make(self.rev), write=False)

    async def _first_after_cache(self, method: str, request: Any) -> Any:
        """The body's first store read after reads from the cache: one Txn that also compares the keys
        read from the cache, so the body goes on only if they still hold at the R it fixes (it sees
        one state); if not, ConflictError, its failure branch having refreshed them."""
        pb, p = self._pb, self._p
        mod, eq = pb.Compare.MOD, pb.Compare.EQUAL
        compares = [pb.Compare(key=p + k, target=mod, result=eq, mod_revision=self._seen[k]) for k in self.cached]
        if method == "Range":
            op = pb.RequestOp(request_range=request)
        else:
            op = pb.RequestOp(request_txn=request)
        reply = await self._c.call(
            "Txn", pb.TxnRequest(compare=compares, success=[op], failure=self._refresh_ops()), write=False
        )
        if not reply.succeeded:
            raise self._refreshed(reply, reply.header.revision, "etcd: a key read from the cache has changed")
        self.rev = reply.header.revision
        inner = reply.responses[0]
        return inner.response_range if method == "Range" else inner.response_txn

    def add(self, key: bytes, delta: int) -> None:
        if self._dropped:
            self._check_outside(key)
        if key in self._kv.deferred_keys:
            self._writable("add")
            self.deferred[key] = self.deferred.get(key, 0) + delta
        else:
            super().add(key, delta)

    def add_now(self, key: bytes, delta: int) -> None:
        """`add` in this transaction's commit, even to a counter whose adds the KV defers."""
        super().add(key, delta)

    async def _settle(self, keys: Sequence[bytes]) -> None:
        """Before reading counters whose adds are deferred: commit this client's pending deltas, so the
        read sees them; ConflictError when that commit came after this body's revision R (it re-runs)."""
        if self._kv.deferred_keys.isdisjoint(keys):
            return
        if await self._kv.flush_deferred() and self.rev:
            raise ConflictError("etcd: deferred counter deltas committed after the body's first read")

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if self._dropped:
            for key in keys:
                self._check_outside(key)
        await self._settle(keys)
        return await super().get_many(keys)

    async def get(self, key: bytes) -> bytes | None:
        if self._dropped:
            self._check_outside(key)
        await self._settle((key,))
        found, value = self._buf.lookup(key)
        if found:
            return value
        hit = self._from_cache(key)
        if hit is not None:
            return hit.value
        return await self._get_one(key)

    async def _get_one(self, key: bytes) -> bytes | None:
        pb, pkey = self._pb, self._p + key
        reply = await self._at_rev(
            "Range", lambda rev: pb.RangeRequest(key=pkey, revision=rev, serializable=rev > 0)
        )
        if not reply.kvs:
            return self._stored_value(key, None, 0)
        kv = reply.kvs[0]
        return self._stored_value(key, bytes(kv.value), kv.mod_revision)

    async def get_follow(self, keys: Sequence[bytes], pointer: Pointer) -> list[bytes | None]:
        """`get_many(keys)` and the key `pointer` names. When the source's value is known (written by the
        body, or cached — in a read-only body too, as a guess only) its target is read in the same request,
        and kept only if the source's value read now names it; otherwise the target is read after."""
        source = keys[pointer.source]
        found, known = self._buf.lookup(source)
        if not found:
            hit = self._kv.cache.get(source)
            known = hit.value if hit is not None else None
        guess = pointer.target(known)
        if guess is None or guess in keys:
            return await super().get_follow(keys, pointer)
        new_guess = guess not in self._seen
        values = await self.get_many([*keys, guess])
        target = pointer.target(values[pointer.source])
        if target == guess:
            return values
        if new_guess:  # read for nothing: keep it out of the read set
            self._seen.pop(guess, None)
            self.cached.discard(guess)
        values[-1] = None if target is None else await self.get(target)
        return values

    async def _get_stored(self, keys: list[bytes]) -> dict[bytes, bytes | None]:
        out: dict[bytes, bytes | None] = {}
        if self._use_cache:
            for key in keys:
                hit = self._from_cache(key)
                if hit is not None:
                    out[key] = hit.value
            keys = [k for k in keys if k not in out]
        if len(keys) <= 1:
            if keys:
                out[keys[0]] = await self._get_one(keys[0])
            return out
        pb, p = self._pb, self._p

        def make(chunk: Sequence[bytes]) -> Callable[[int], Any]:
            return lambda rev: pb.TxnRequest(
                success=[
                    pb.RequestOp(request_range=pb.RangeRequest(key=p + k, revision=rev, serializable=rev > 0))
                    for k in chunk
                ]
            )

        n = self._kv.target.max_txn_ops
        first_n = n - len(self._seen) if self.cached and not self.rev else n  # nested in the check's Txn
        if first_n < 1:
            raise self._stale("etcd: too many keys read from the cache to check; read again without it")
        chunks = [keys[:first_n], *_chunks(keys[first_n:], n)]
        first = await self._at_rev("Txn", make(chunks[0]))
        rest = await asyncio.gather(*(self._at_rev("Txn", make(c)) for c in chunks[1:]))
        for chunk, reply in zip(chunks, [first, *rest], strict=True):
            for key, r in zip(chunk, reply.responses, strict=True):
                kvs = r.response_range.kvs
                if kvs:
                    out[key] = self._stored_value(key, bytes(kvs[0].value), kvs[0].mod_revision)
                else:
                    out[key] = self._stored_value(key, None, 0)
        return out

    async def _stored(
        self, begin: bytes, end: bytes, limit: int | None, keys_only: bool, pinned: bool = True
    ) -> Pairs:
        """Stored pairs of [begin, end), at most `limit`; values b"" when keys_only. `pinned` reads at R
        and, in a read-write body, notes each key's mod revision in the read set."""
        pb, p, n = self._pb, self._p, len(self._p)
        note = pinned and not self._readonly

        async def page(cursor: bytes, want: int) -> tuple[Pairs, bool]:
            def make(rev: int) -> Any:
                return pb.RangeRequest(
                    key=p + cursor,
                    range_end=p + end,
                    limit=want,
                    keys_only=keys_only,
                    revision=rev,
                    serializable=rev > 0,
                )

            if pinned:
                reply = await self._at_rev("Range", make)
            else:
                reply = await self._c.call("Range", make(0), write=False)
            chunk = []
            for kv in reply.kvs:
                key = bytes(kv.key)[n:]
                if note:
                    self._note(key, kv.mod_revision)
                chunk.append((key, b"" if keys_only else bytes(kv.value)))
            return chunk, bool(reply.more)

        return await read_pages(page, begin, limit, SCAN_BATCH)

    async def _scan_stored(self, begin: bytes, end: bytes, limit: int | None, keys_only: bool) -> Pairs:
        return await self._stored(begin, end, limit, keys_only)

    def _scanned(self, begin: bytes, covered: bytes, stored: Pairs, keys_only: bool) -> None:
        self._ranges.append((begin, covered))

    async def _page(self, cursor: bytes, end: bytes, n: int) -> Pairs:
        return await self._stored(cursor, end, n, False, pinned=False)

    # ---- commit ------------------------------------------------------------------------------------------

    async def _latest(self, keys: Sequence[bytes]) -> list[Any]:
        """The latest Range reply entries (``kvs``: empty = absent) of `keys`, in order, outside R."""
        pb, p = self._pb, self._p
        out: list[Any] = []
        for chunk in _chunks(keys, self._kv.target.max_txn_ops):
            reply = await self._c.call(
                "Txn",
                pb.TxnRequest(
                    success=[pb.RequestOp(request_range=pb.RangeRequest(key=p + k)) for k in chunk]
                ),
                write=False,
            )
            out += [r.response_range.kvs for r in reply.responses]
        return out

    def _read_compares(self, coalesce: bool = False) -> list[Any]:
        """The read set's compares: one per key read (mod revision as seen, 0 = absent) and one per
        scanned range (no key modified after R). With `coalesce`, the keys found absent at R by a store
        read are compared per run of keys sharing their first byte (the record type) as ranges in which
        no key was modified after R (see `_absent_runs`)."""
        pb, p = self._pb, self._p
        mod, eq, less = pb.Compare.MOD, pb.Compare.EQUAL, pb.Compare.LESS
        runs = self._absent_runs() if coalesce else []
        merged = {k for run in runs for k in run}
        out = [
            pb.Compare(key=p + k, target=mod, result=eq, mod_revision=r)
            for k, r in self._seen.items()
            if k not in merged
        ]
        out += [
            pb.Compare(key=p + b, range_end=p + e, target=mod, result=less, mod_revision=self.rev + 1)
            for b, e in [*self._ranges, *((run[0], run[-1] + b"\x00") for run in runs)]
        ]
        return out

    def _absent_runs(self) -> list[list[bytes]]:
        """Runs (sorted, two keys or more, one first byte) of the keys a store read found absent at R.

        "No key in [first, last] has a mod revision above R" holds exactly when each of them is still
        absent (one created after R would carry a later mod revision; deletions of other keys do not
        count) and every present key of the span is unchanged since R — which every key this body read
        in the span is anyway (store reads are at R; a cached entry is used only if it holds at R). It
        is stricter than the point compares (a change to a key of the span that the body did not read
        fails the commit too), so it is used only when the point compares do not fit --max-txn-ops: a
        compaction or truncate that releases a thousand slices, whose reference records are absent.
        """
        if not self.rev:
            return []
        absent = sorted(k for k, r in self._seen.items() if r == 0 and k not in self.cached)
        runs: dict[int, list[bytes]] = {}
        for k in absent:
            runs.setdefault(k[0] if k else -1, []).append(k)
        return [run for run in runs.values() if len(run) > 1]

    async def _counters(self) -> tuple[list[bytes], list[Any], dict[bytes, bytes]]:
        """(counters read from the store, their compares, new values of every add). A counter the body
        wrote is added to in the buffer; the others come from the KV's cache of the last value and mod
        revision seen (refreshed by a failed commit), read from the store when not cached."""
        pb, p = self._pb, self._p
        cache = self._kv.counters
        values: dict[bytes, bytes] = {}
        fresh: list[bytes] = []
        for key, delta in self._buf.adds.items():
            found, current = self._buf.lookup(key)
            if found:
                values[key] = encode_i64(decode_i64(current) + delta)
            else:
                fresh.append(key)
        unknown = [k for k in fresh if k not in cache]
        if unknown:
            self._kv.remember(unknown, await self._latest(unknown))
        compares: list[Any] = []
        for key in fresh:
            current, mod = cache.get(key, (None, 0))
            values[key] = encode_i64(decode_i64(current) + self._buf.adds[key])
            compares.append(
                pb.Compare(key=p + key, target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=mod)
            )
        return fresh, compares, values

    def _pack(self, ops: list[Any], budget: int) -> list[Any]:
        """`ops` as a list of at most `budget` operations, nesting groups of them in sub-Txns. etcd counts
        every level of a nested Txn against --max-txn-ops: a sub-Txn may hold only what its parents
        left (budget minus the parent's own count), so the groups shrink as they nest."""
        n = len(ops)
        if n <= budget:
            return ops
        fits = [k for k in range(2, budget) if k * _capacity(budget - k) >= n]
        if not fits:
            raise EngineError(self._too_big(n))
        two_levels = [k for k in fits if k * (budget - k) >= n]
        k = two_levels[0] if two_levels else (budget // 2 if budget // 2 in fits else fits[0])
        pb = self._pb
        return [
            pb.RequestOp(request_txn=pb.TxnRequest(success=self._pack(list(c), budget - k)))
            for c in _chunks(ops, -(-n // k))
        ]

    def _too_big(self, what: int) -> str:
        n = self._kv.target.max_txn_ops
        return (
            f"etcd: a transaction needing {what} compares/operations does not fit in one etcd Txn with "
            f"--max-txn-ops {n}: raise --max-txn-ops on every member and give the same value as ?max-txn-ops=N"
        )

    def _request(
        self, groups: Sequence[Sequence[Any]], ops: list[Any], failures: Sequence[Sequence[Any]] = ()
    ) -> Any:
        """One Txn: level i holds compare group i, failure branch ``failures[i]`` (none when missing)
        and, as its only operation, level i+1; the innermost level holds the writes (nested, see
        `_pack`). Every level counts against --max-txn-ops along the path (the larger of its compares
        and its operations), so the read set must fit in it."""
        pb = self._pb
        fails = [list(failures[i]) if i < len(failures) else [] for i in range(max(len(groups), 1))]
        budget = self._kv.target.max_txn_ops
        for group, fail in zip(groups[:-1], fails, strict=False):
            budget -= max(len(group), len(fail), 1)
        last = groups[-1] if groups else []
        failure = fails[len(groups) - 1] if groups else []
        if budget - len(last) < min(len(ops), 1) or budget < max(len(last), len(failure)):
            raise EngineError(self._too_big(sum(len(g) for g in groups) + len(ops)))
        txn = pb.TxnRequest(
            compare=last, success=self._pack(ops, budget - max(len(last), len(failure))), failure=failure
        )
        for group, fail in reversed(list(zip(groups[:-1], fails, strict=False))):
            txn = pb.TxnRequest(compare=group, success=[pb.RequestOp(request_txn=txn)], failure=fail)
        return txn

    @staticmethod
    def _failed_level(reply: Any, levels: int) -> tuple[int | None, Any]:
        """(index of the level whose compares failed, that level's reply), or (None, innermost reply)."""
        for level in range(levels):
            if not reply.succeeded:
                return level, reply
            if level < levels - 1:
                reply = reply.responses[0].response_txn
        return None, reply

    async def _applied(
        self, puts: dict[bytes, bytes], deletes: list[bytes], dropped: Sequence[tuple[bytes, bytes]] = ()
    ) -> bool:
        """After an ambiguous commit: whether it was applied (see the module docstring; the ranges it
        deleted whole must be empty too)."""
        if not await self._dropped_empty(dropped):
            return False
        keys = list(puts) + deletes
        revisions: set[int] = set()
        for key, kvs in zip(keys, await self._latest(keys), strict=True):
            if key in puts:
                if not kvs or bytes(kvs[0].value) != puts[key]:
                    return False
                revisions.add(kvs[0].mod_revision)
            elif kvs:
                return False
        floor = max(self.rev, self._floor)
        return len(revisions) <= 1 and all(r > floor for r in revisions)

    async def validate(self) -> None:
        """Check, in one compare-only Txn, that every key and range the body read is unchanged (what a
        body that used the cache needs before its result counts); ConflictError when not."""
        if self._torn:
            raise self._stale("etcd: the transaction saw two versions of a key")
        coalesced = False
        try:
            request = self._request([self._read_compares()], [], [self._refresh_ops()])
        except EngineError:
            try:
                request, coalesced = self._request([self._read_compares(coalesce=True)], []), True
            except EngineError:
                raise self._stale("etcd: read set too large to validate; read again without the cache") from None
        reply = await self._c.call("Txn", request, write=False)
        if not reply.succeeded:
            if coalesced:
                raise self._stale("etcd: a key read by the transaction changed")
            raise self._refreshed(reply, reply.header.revision, "etcd: a key read by the transaction changed")

    async def commit(self) -> None:
        await self._commit()
        if self.deferred:
            self._kv.note_deferred(self.deferred)

    async def _commit(self) -> None:
        writes, adds, dropped = self._buf.writes, self._buf.adds, self._dropped
        if not writes and not adds and not dropped:
            if self.cached:
                await self.validate()
            return  # reads only: they all came from the snapshot at R (or were validated above)
        if self._torn:
            raise self._stale("etcd: the transaction saw two versions of a key")
        pb, p = self._pb, self._p
        reads = self._read_compares() if writes or dropped or self.cached else []
        read_groups = [reads] if reads else []
        coalesced = False  # the read set's absent keys compared as ranges (`_absent_runs`): no refresh
        ambiguous = 0
        for _ in range(ADD_RETRIES):
            fresh, add_compares, counters = await self._counters()
            puts = {k: v for k, v in writes.items() if v is not None}
            puts.update(counters)
            deletes = [k for k, v in writes.items() if v is None and k not in counters]
            ops = [pb.RequestOp(request_put=pb.PutRequest(key=p + k, value=v)) for k, v in puts.items()]
            ops += [pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=p + k)) for k in deletes]
            ops += [
                pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=p + b, range_end=p + e))
                for b, e in dropped
            ]
            groups = [*read_groups, *([add_compares] if add_compares else [])]
            # when the read set changed, its level's failure branch returns the current versions of the
            # keys read (for the retry); when only the counters moved, the add level's returns theirs
            failures = [[] if coalesced else self._refresh_ops()] if read_groups else []
            if add_compares:
                failures.append([pb.RequestOp(request_range=pb.RangeRequest(key=p + k)) for k in fresh])
            try:
                request = self._request(groups, ops, failures)
            except EngineError:
                if read_groups and not coalesced:  # too many point compares: absent keys as ranges
                    smaller = self._read_compares(coalesce=True)
                    if len(smaller) < len(reads):
                        reads, coalesced = smaller, True
                        read_groups = [reads]
                        continue
                if not self.cached:
                    raise
                raise self._stale("etcd: read set too large with the cache's; read again without it") from None
            sent = time.monotonic()
            try:
                reply = await self._c.call("Txn", request, write=True)
            except Ambiguous as exc:
                for key in fresh:
                    self._kv.counters.pop(key, None)
                self._kv.cache.discard([*self._seen, *puts, *deletes])
                ambiguous += 1
                log.warning("etcd_commit_ambiguous", error=str(exc))
                if await self._applied(puts, deletes, dropped):
                    return
                if ambiguous > AMBIGUOUS_RETRIES:
                    raise EngineUnavailable(
                        f"lost contact with etcd at {self._c.address} while committing; the outcome of the transaction is unknown: {exc}"
                    ) from None
                continue
            failed, level = self._failed_level(reply, len(groups))
            if failed is None:
                done = reply.header.revision
                self._kv.counters.update((k, (counters[k], done)) for k in fresh)
                cache = self._kv.cache
                if read_groups:  # the read set was compared: each key read still held its version at `done`
                    for key, mod_revision in self._seen.items():
                        if key not in writes:
                            cache.confirm(key, mod_revision, done, sent)
                for key, value in puts.items():
                    cache.note(key, value, done, done, t=sent)
                for key in deletes:
                    cache.note(key, None, 0, done, deleted_at=done, t=sent)
                return
            if failed < len(read_groups):
                if coalesced:
                    raise self._stale("etcd: a key or range read by the transaction changed")
                raise self._refreshed(
                    level, reply.header.revision, "etcd: a key or range read by the transaction changed"
                )
            self._kv.remember(fresh, [r.response_range.kvs for r in level.responses])
        raise ConflictError("etcd: counters kept changing during commit")


class EtcdKV(RetryingKV):
    """See the module docstring."""

    serializes_writers = False

    def __init__(self, url: str, target: EtcdTarget, client: EtcdClient) -> None:
        self.url = url
        self.target = target
        self.client = client
        self.prefix = target.prefix
        self.counters: dict[bytes, tuple[bytes | None, int]] = {}
        """Last value and mod revision seen of the counters `add` was used on (a hint, checked at commit)."""
        self.cache = ReadCache(target.read_cache_bytes)
        """Last versions of keys read or written (hints for read-write bodies, checked at commit)."""
        self.deferred_keys: frozenset[bytes] = frozenset()
        self.defer_interval = DEFER_INTERVAL
        self._pending: dict[bytes, int] = {}
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    # ---- what this client's own commits left ------------------------------------------------------------

    def recent_value(self, key: bytes, within: float) -> tuple[bytes | None, float] | None:
        """`ReadCache.recent`: the value this client's latest commit that wrote or compared `key` left
        there and its age, if at most `within` seconds; no round trip, never used by a transaction."""
        return self.cache.recent(key, within)

    # ---- deferred adds -----------------------------------------------------------------------------------

    def defer_adds(self, keys: Iterable[bytes]) -> None:
        """From now on, `add` to the counters `keys` is not part of the transaction's commit: the deltas
        of committed transactions are summed in memory and added by one transaction at most
        `defer_interval` seconds later (as JuiceFS batches its usage counters), and before this client
        reads one of the counters (so its own reads see them) or closes. Removes the hottest keys from
        concurrent commits (every create and unlink adds to the volume's usage counters). The price, as
        in JuiceFS: other clients see the counters up to `defer_interval` late, and a client that dies
        loses its last second of deltas (fsck repairs the counters)."""
        self.deferred_keys = self.deferred_keys | frozenset(keys)

    def note_deferred(self, deltas: dict[bytes, int]) -> None:
        """Deltas of a committed transaction, to be added by the next flush."""
        for key, delta in deltas.items():
            self._pending[key] = self._pending.get(key, 0) + delta
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        while self._pending:
            await asyncio.sleep(self.defer_interval)
            try:
                await self.flush_deferred()
            except Exception as exc:  # kept pending: tried again next round
                log.warning("etcd_deferred_flush_failed", error=str(exc))

    async def flush_deferred(self) -> bool:
        """Add the pending deltas (one transaction, after any flush in flight); returns whether it
        committed something. On failure the deltas stay pending and the error is raised."""
        async with self._flush_lock:
            batch, self._pending = self._pending, {}
            batch = {k: d for k, d in batch.items() if d}
            if not batch:
                return False

            async def body(tx: EtcdTx) -> None:
                for key, delta in batch.items():
                    tx.add_now(key, delta)

            try:
                await self.txn(body)
            except Exception:
                for key, delta in batch.items():
                    self._pending[key] = self._pending.get(key, 0) + delta
                raise
            return True

    def remember(self, keys: Sequence[bytes], kvs: Sequence[Any]) -> None:
        """Cache the counters `keys` from their Range replies `kvs` (empty = absent)."""
        for key, found in zip(keys, kvs, strict=True):
            self.counters[key] = (bytes(found[0].value), found[0].mod_revision) if found else (None, 0)

    async def _run(self, body: Callable[[Any], Awaitable[T]], readonly: bool, max_retries: int) -> T:
        """The port's retry loop. The first attempt may use any cache entry; after a conflict, only
        entries at least as new as the request that failed, which re-read the whole read set (so a stale
        entry fails one commit, never two); when nothing was re-read, the retry reads the store only."""
        floor = 0

        async def attempt() -> T:
            nonlocal floor
            tx = EtcdTx(self, readonly, floor)
            try:
                return await self._run_tx(tx, body, readonly)
            except ConflictError:
                floor = tx.refreshed_at
                raise

        return await retrying(attempt, max_retries, body)

    async def _attempt(self, body: Callable[[Any], Awaitable[T]], readonly: bool) -> T:
        return await self._run_tx(EtcdTx(self, readonly, 0), body, readonly)

    async def _run_tx(self, tx: EtcdTx, body: Callable[[Any], Awaitable[T]], readonly: bool) -> T:
        """One attempt of `body` in `tx`; an exception of the body counts only once its reads are
        known current (validated when it read from the cache)."""
        try:
            result = await body(tx)
        except KVError:
            raise
        except Exception:
            if tx.cached:  # the body may have failed on a stale entry: its error counts only if not
                await tx.validate()
            raise
        if not readonly:
            await tx.commit()
        return result

    async def reset(self) -> None:
        """Delete every key under the prefix (one DeleteRange: idempotent, so simply re-sent if ambiguous)."""
        pb = self.client.pb
        self.cache.clear()
        self.counters.clear()
        self._pending.clear()
        end = self.prefix[:-1] + bytes([self.prefix[-1] + 1])
        for _ in range(AMBIGUOUS_RETRIES + 1):
            try:
                await self.client.call(
                    "DeleteRange", pb.DeleteRangeRequest(key=self.prefix, range_end=end), write=True
                )
                return
            except Ambiguous as exc:
                last = exc
        raise EngineUnavailable(f"cannot reset etcd at {self.client.address}: {last}")

    async def close(self) -> None:
        """Add the deferred deltas still pending (a failure is logged: fsck repairs the counters), close."""
        try:
            await self.flush_deferred()  # after a flush in flight, if any
        except Exception as exc:
            log.warning("etcd_deferred_flush_failed", error=str(exc), lost=dict(self._pending))
        if self._flusher is not None:  # now asleep or done: nothing of its own in flight
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher
        await self.client.close()


async def open_etcd(url: str) -> EtcdKV:
    """Connect to the members of `url` and check one answers (within OPEN_TIMEOUT seconds).

    Raises BadMetaURL when the URL is malformed, EngineUnavailable (one line) when no member answers or
    the credentials are refused.
    """
    from .base import redact_url

    try:
        target = parse_etcd_url(url)
    except ValueError as exc:
        raise BadMetaURL(f"bad etcd URL '{redact_url(url)}': {exc}") from None
    try:
        import aetcd.rpc  # noqa: F401
        import grpc  # noqa: F401
    except ImportError as exc:
        raise EngineUnavailable(
            f"the etcd client is not installed ({exc}): pip install 'jfs[etcd]'"
        ) from None
    probe = EtcdClient(dataclasses.replace(target, timeout=min(OPEN_TIMEOUT, target.timeout)))
    probe.prefer_leader = False  # one answer is all it needs
    try:
        await probe.call(
            "Range", probe.pb.RangeRequest(key=target.prefix, limit=1, keys_only=True), write=False
        )
    except BaseException:
        await probe.close()
        raise
    await probe.close()
    log.debug("etcd_opened", endpoints=target.address, prefix=target.prefix.decode(errors="replace"))
    return EtcdKV(redact_url(url), target, EtcdClient(target))

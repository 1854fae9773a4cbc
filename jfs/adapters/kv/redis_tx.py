"""One attempt of a transaction body on Redis: buffered writes, the recorded read set, piggy-backed validation.

Protocol (docs/adr/0002-redis-transactions.md, scripts in `redis_lua`):

* The body's read set is recorded: for each point read the value seen (None = absent), for each scan its
  effective range (up to the last key returned when a limit cut it short) and the digest the server sent.
  It is kept packed as the scripts' validation section, so each later round only appends to it.
* The first read round is a plain GET / MGET (or the SCAN script for a scan, the FOLLOW one for a
  followed pointer). Every later round is ONE EVALSHA of the READ script that first re-validates the whole
  read set so far and then reads: each round is atomic with checking everything read before it, so after
  the last round the body has seen one state.
  A failed check raises ConflictError at once and the caller's retry loop re-runs the body.
* Writes are buffered (read-your-writes by overlaying the buffer); `add`s are buffered separately, and so
  are `delete_range`s (`RangeDeletingTx`: the COMMIT script deletes those ranges, no scan round trip) and
  `append`s (`AppendingTx`: checked by the value's length, then APPENDed by the COMMIT script, ADR 0055).
* `finish()` commits. A body without puts/deletes needs no round trip for its reads (blind adds are
  applied without validation, as the port allows). Otherwise the COMMIT script re-validates the read set
  and, only if it holds, applies puts, deletes and adds atomically.
* Reads issued concurrently by one body (`asyncio.gather` of Tx calls) do not validate each other; such a
  read-only body is validated by one more READ round at `finish()`.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import itertools
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from jfs.ports.kv import ConflictError, EngineError, Pointer

from .base import TxWrites, merge_scan
from .redis_lua import EMPTY_DIGEST
from .resp import ConnectionLost, ReplyError, bulk, bulks

if TYPE_CHECKING:
    from .redis import RedisKV

DATA = b"k"
HASH_OVER = 256  # point reads of longer values are validated by sha1 instead of shipping the value back
_ABSENT = bulk(b"a") + bulk(b"")
_VALUE = bulk(b"v")
_SHA1 = bulk(b"h")


def scan_digest(pairs: list[tuple[bytes, bytes]], keys_only: bool) -> bytes:
    """The digest `redis_lua` computes of a scanned range holding `pairs` (sha1 hex of the length-prefixed
    keys, and values unless `keys_only`; the constant EMPTY_DIGEST for none)."""
    if not pairs:
        return EMPTY_DIGEST
    if keys_only:
        parts = [b"%d:%b" % (len(k), k) for k, _ in pairs]
    else:
        parts = [b"%d:%b%d:%b" % (len(k), k, len(v), v) for k, v in pairs]
    return hashlib.sha1(b"".join(parts)).hexdigest().encode()


_NO_APPENDS: Mapping[bytes, tuple[int, bytes]] = MappingProxyType({})
"""`RedisTx._appends` until the first append: shared, so read-only (ADR 0067)."""


class ReadSet:
    """What a body read, kept as the packed validation section of the scripts (see `redis_lua`)."""

    __slots__ = ("values", "ranges", "_keys", "_expect", "_scans", "_packed", "_unpacked_scans")

    def __init__(self) -> None:
        # A LOOKUP's transaction is one round and no commit: its read set is never packed. The packed
        # sections start as the shared empty bytes and the scans as the shared empty tuple; they become a
        # bytearray / list only when something goes in (ADR 0067: four allocations less per transaction).
        self.values: dict[bytes, bytes | None] = {}
        self.ranges = 0
        self._keys: bytes | bytearray = b""  # the points' data keys
        self._expect: bytes | bytearray = b""  # the points' (mode, expected) pairs
        self._scans: bytes | bytearray = b""  # (begin, end, incl, keys_only, digest) per scan
        self._unpacked_scans: Sequence[tuple[bytes, bytes, bool, bool, bytes | list[tuple[bytes, bytes]]]] = ()
        self._packed = 0  # how many of `values` (in insertion order) are in _keys/_expect yet

    def __bool__(self) -> bool:
        return bool(self.values) or self.ranges > 0

    def saw(self, key: bytes, value: bytes | None) -> None:
        """Record a point read; ConflictError when the body already saw another value for `key`."""
        values = self.values
        if key in values:
            if values[key] != value:
                raise ConflictError("a key changed between two reads of one transaction")
            return
        values[key] = value

    def _pack(self) -> None:
        """Pack the point reads and scans not packed yet. Lazy: the last round of a read-only body (a
        listing's thousands of attributes, its scan of names) is never validated, so its values are never
        packed nor its digest computed."""
        if self._unpacked_scans:
            scans = self._scans or bytearray()
            for begin, end, incl, keys_only, seen in self._unpacked_scans:
                digest = seen if isinstance(seen, bytes) else scan_digest(seen, keys_only)
                scans += bulks((begin, end, int(incl), int(keys_only), digest))
            self._scans = scans
            self._unpacked_scans = ()
        values = self.values
        if self._packed == len(values):
            return
        keys = self._keys or bytearray()
        expect = self._expect or bytearray()
        self._keys, self._expect = keys, expect
        for key, value in itertools.islice(values.items(), self._packed, None):
            keys += bulk(DATA + key)
            if value is None:
                expect += _ABSENT
            elif len(value) > HASH_OVER:
                expect += _SHA1 + bulk(hashlib.sha1(value).hexdigest().encode())
            else:
                expect += _VALUE + bulk(value)
        self._packed = len(values)

    def scanned(self, begin: bytes, end: bytes, incl: bool, keys_only: bool,
                seen: bytes | list[tuple[bytes, bytes]]) -> None:
        """Record a scan of [begin, end) ([begin, end] with `incl`): `seen` is the range's digest, or the
        (key, value) pairs it held, whose digest is computed only if the scan is ever validated."""
        pending = self._unpacked_scans
        if not pending:
            pending = self._unpacked_scans = []
        pending.append((begin, end, incl, keys_only, seen))  # type: ignore[attr-defined]
        self.ranges += 1

    def explain(self, reason: bytes) -> str:
        """A script's conflict `reason` (``point read #3 changed``) with the key it means, for logs."""
        text = reason.decode(errors="replace")
        if text.startswith("point read #"):
            with contextlib.suppress(ValueError, IndexError):
                n = int(text.split("#", 1)[1].split()[0])
                key = next(itertools.islice(self.values, n - 1, None))
                return f"{text}: {key[:24]!r}"
        return text

    def read_args(self, op: bytes, dkeys: Sequence[bytes] = (), scan: tuple[Any, ...] = ()) -> tuple[int, bytes]:
        """(count, packed arguments) of the READ script: validate, then `op` on `dkeys` / `scan`."""
        self._pack()
        np = len(self.values)
        head = bulks((np, self.ranges, op, len(dkeys), *scan, *dkeys))
        count = 4 + len(scan) + len(dkeys) + 3 * np + 5 * self.ranges
        return count, b"".join((head, self._keys, self._expect, self._scans))

    def commit_args(
        self, validate: bool, nw: int, nd: int, na: int, writes: tuple[Any, ...], adds: tuple[Any, ...],
        cleared: tuple[bytes, ...] = (), appends: tuple[Any, ...] = (),
    ) -> tuple[int, bytes]:
        """(count, packed arguments) of the COMMIT script: `writes` are the sections up to the counters'
        data keys, `adds` the (key, delta) pairs, `cleared` the (begin, end) pairs of deleted ranges,
        `appends` the (data key, key, expected length, suffix) groups."""
        nc = len(cleared) // 2
        nq = len(appends) // 4
        if not validate:
            tail = (*writes, *adds, *cleared, *appends)
            return 7 + len(tail), bulks((0, 0, nw, nd, na, nc, nq, *tail))
        self._pack()
        np = len(self.values)
        head = bulks((np, self.ranges, nw, nd, na, nc, nq, *writes))
        count = 7 + len(writes) + len(adds) + len(cleared) + len(appends) + 3 * np + 5 * self.ranges
        return count, b"".join(
            (head, self._keys, bulks((*adds, *cleared)), self._expect, self._scans, bulks(appends))
        )


class RedisTx(TxWrites):
    """The `Tx` of the Redis adapter; see the module docstring."""

    __slots__ = (
        "_kv", "_readonly", "_writes", "_adds", "_cleared", "_appends", "_sorted", "_reads", "_rounds", "_overlap",
    )

    def __init__(self, kv: RedisKV, readonly: bool) -> None:
        self._kv = kv
        self._readonly = readonly
        self._writes: dict[bytes, bytes | None] = {}  # buffered puts; None = delete
        self._adds: dict[bytes, int] = {}
        # delete_range()s, applied by the commit; append()s: key -> (expected length, suffix). Both rare
        # (no LOOKUP, GETATTR or CREATE has one): shared empties until the first one (ADR 0067).
        self._cleared: Sequence[tuple[bytes, bytes]] = ()
        self._appends: Mapping[bytes, tuple[int, bytes]] = _NO_APPENDS
        self._sorted: list[bytes] | None = None  # the buffered keys in order, built when a scan needs them
        self._reads = ReadSet()
        self._rounds = 0  # read rounds in flight
        self._overlap = False  # two rounds were in flight at once: neither validated the other's result

    async def _round(self, op: bytes, dkeys: list[bytes], scan: tuple[Any, ...] = ()) -> Any:
        """One read round (`op` g: values of `dkeys`; s: the `scan`): a plain command while nothing was
        read yet, else the READ script validating everything read so far."""
        if self._cleared:
            self._check_cleared(dkeys, scan, op)
        if self._appends:
            self._check_appended(dkeys, scan, op)
        if self._rounds:
            self._overlap = True
        self._rounds += 1
        try:
            reads = self._reads
            if not reads.values and not reads.ranges:  # `not reads` without a Python-level __bool__ call
                if op == b"g":
                    if len(dkeys) == 1:
                        return [await self._kv._read(b"GET", dkeys[0])]
                    return await self._kv._read(b"MGET", *dkeys)
                if op == b"f":  # `_kv._script("follow", ...)` without its frame (ADR 0067)
                    kv = self._kv
                    nargs, packed = 6 + len(dkeys), bulks((*scan, *dkeys))
                    try:
                        return await kv._client.evalsha(kv._sha["follow"], nargs, packed)
                    except (ReplyError, ConnectionLost) as exc:
                        return await kv._script_after(exc, "follow", nargs, packed)
                return await self._kv._script("scan", 4, bulks(scan[:4]))  # {keys[, values]}: see `_pairs`
            reply = await self._kv._script("read", *reads.read_args(op, dkeys, scan))
            if type(reply) is bytes:
                raise ConflictError(f"validated read: {reads.explain(reply)}")
            return reply
        finally:
            self._rounds -= 1

    def _buffered(self, begin: bytes, end: bytes) -> list[tuple[bytes, bytes | None]]:
        """Buffered writes in [begin, end), ascending."""
        writes = self._writes
        if not writes:
            return []
        keys = self._sorted
        if keys is None:
            keys = self._sorted = sorted(writes)
        lo = bisect.bisect_left(keys, begin)
        hi = bisect.bisect_left(keys, end, lo)
        return [(k, writes[k]) for k in keys[lo:hi]]

    def assume(self, key: bytes, value: bytes | None) -> None:
        """`AssumingTx.assume`: `value` joins the read set unread; the next read round or the commit
        validates it. Only before the body read or wrote `key` (else it is a bug: ConflictError on a
        different value)."""
        self._reads.saw(key, value)

    def assume_empty(self, begin: bytes, end: bytes) -> None:
        """`AssumingTx.assume_empty`: [begin, end) joins the read set as scanned and found empty."""
        self._reads.scanned(begin, end, False, True, EMPTY_DIGEST)

    async def get(self, key: bytes) -> bytes | None:
        writes = self._writes
        if key in writes:
            return writes[key]
        (value,) = await self._round(b"g", [DATA + key])
        self._reads.saw(key, value)
        return value  # type: ignore[no-any-return]

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if not keys:
            return []  # not a round: Redis refuses an MGET of no keys
        writes = self._writes
        if not writes:  # the common case (a listing's attributes): one pass over the keys each way
            values: list[bytes | None] = await self._round(b"g", [DATA + key for key in keys])
            seen = self._reads.values
            if not seen:  # nothing read before (a listing's attributes): nothing these could conflict with
                seen.update(zip(keys, values, strict=True))
                return values
            saw = self._reads.saw
            for key, value in zip(keys, values, strict=True):
                saw(key, value)
            return values
        out: list[bytes | None] = []
        missing: list[int] = []
        for i, key in enumerate(keys):
            if key in writes:
                out.append(writes[key])
            else:
                out.append(None)
                missing.append(i)
        if missing:
            values = await self._round(b"g", [DATA + keys[i] for i in missing])
            saw = self._reads.saw
            for i, value in zip(missing, values, strict=True):
                saw(keys[i], value)
                out[i] = value
        return out

    async def get_follow(self, keys: Sequence[bytes], pointer: Pointer) -> list[bytes | None]:
        if self._writes:  # buffered writes may shadow any of these keys: no shortcut
            return await super().get_follow(keys, pointer)
        p = pointer
        args = (p.source, p.start, p.stop, DATA + p.prefix, p.suffix, int(p.reverse))
        reply = await self._round(b"f", [DATA + k for k in keys], args)
        n = len(keys)
        values: list[bytes | None] = list(reply[:n])
        saw = self._reads.saw
        for key, value in zip(keys, values, strict=True):
            saw(key, value)
        target = p.target(values[p.source])
        if target is None:
            values.append(None)
        else:
            saw(target, reply[n])
            values.append(reply[n])
        return values

    @staticmethod
    def _pairs(reply: list[Any], keys_only: bool) -> list[tuple[bytes, bytes]]:
        """The pairs of a scan reply: SCAN's ``[keys]`` / ``[keys, values]`` or READ's ``[digest, keys]`` /
        ``[digest, keys, values]``. EngineError when the index names a key without data."""
        at = 0 if type(reply[0]) is list else 1
        keys = reply[at]
        if keys_only or not keys:
            return [(k, b"") for k in keys]
        values = reply[at + 1]
        if None in values:
            raise EngineError("jfs: index and data out of sync in a scanned range")
        return list(zip(keys, values, strict=True))

    async def scan(
        self, begin: bytes, end: bytes, *, limit: int | None = None, keys_only: bool = False
    ) -> list[tuple[bytes, bytes]]:
        if begin >= end or limit == 0:
            return []
        fetch = 0
        if limit is not None:
            # buffered deletes may hide stored keys: fetch enough that the merged result still reaches `limit`
            fetch = limit + sum(1 for _, v in self._buffered(begin, end) if v is None)
        # No digest from the server: what it returned is what it would hash (`scan_digest`), computed
        # here only if a later round or the commit validates the scan — a listing's never is.
        reply = await self._round(b"s", [], (begin, end, fetch, int(keys_only), 0))
        stored = self._pairs(reply, keys_only)
        if fetch and len(stored) == fetch:
            last = stored[-1][0]
            self._reads.scanned(begin, last, True, keys_only, stored)
            buffered = self._buffered(begin, last + b"\x00")
        else:
            self._reads.scanned(begin, end, False, keys_only, stored)
            buffered = self._buffered(begin, end)
        # Nothing buffered in the range (every read-only body): the stored pairs are the result (a copy: the
        # read set keeps `stored` for its digest, and the caller may change what it gets).
        if buffered or (limit is not None and len(stored) > limit):
            out = merge_scan(stored, buffered, limit)
        else:
            out = list(stored)
        if keys_only:
            return [(k, b"") for k, _ in out]
        return out

    async def _page(self, cursor: bytes, end: bytes, n: int) -> list[tuple[bytes, bytes]]:
        reply = await self._kv._script("scan", 4, bulks((cursor, end, n, 0)))
        return self._pairs(reply, False)

    def _check_cleared(self, dkeys: Sequence[bytes], scan: tuple[Any, ...], op: bytes) -> None:
        """EngineError when a read touches a range this body deleted (see `delete_range`)."""
        for begin, end in self._cleared:
            if op == b"s" and scan[0] < end and begin < scan[1]:
                raise EngineError("a transaction scanned a range it deleted with delete_range")
            for dk in dkeys:
                if begin <= dk[1:] < end:
                    raise EngineError("a transaction read a key of a range it deleted with delete_range")

    def delete_range(self, begin: bytes, end: bytes) -> None:
        """`RangeDeletingTx.delete_range`: the COMMIT script deletes what [begin, end) then holds."""
        self._writable("delete_range")
        if begin >= end:
            return
        if any(begin <= key < end for key in self._appends):
            raise EngineError("a transaction deleted the range of a key it appended to")
        for key, _ in self._buffered(begin, end):
            self._writes[key] = None  # written earlier in this body: gone with the range
        cleared = self._cleared
        if not cleared:
            cleared = self._cleared = []
        cleared.append((begin, end))  # type: ignore[attr-defined]

    def _check_appended(self, dkeys: Sequence[bytes], scan: tuple[Any, ...], op: bytes) -> None:
        """EngineError when a read touches a key this body appended to (see `append`)."""
        for key in self._appends:
            if op == b"s" and scan[0] <= key < scan[1]:
                raise EngineError("a transaction scanned a key it appended to")
            if DATA + key in dkeys:
                raise EngineError("a transaction read a key it appended to")

    def append(self, key: bytes, suffix: bytes, at: int) -> None:
        """`AppendingTx.append`: the COMMIT script checks STRLEN == `at` and APPENDs `suffix` (constant cost
        at the server, whatever the value's length). Appends to one key in one body join (the first `at`
        holds). EngineError for a key this body put, deleted or deleted the range of."""
        self._writable("append")
        if key in self._writes or any(b <= key < e for b, e in self._cleared):
            raise EngineError("a transaction appended to a key it wrote")
        appends: dict[bytes, tuple[int, bytes]]
        if self._appends:
            appends = self._appends  # type: ignore[assignment]  # made a dict by the first append
        else:
            appends = self._appends = {}
        if key in appends:
            first, before = appends[key]
            appends[key] = (first, before + suffix)
        else:
            appends[key] = (at, bytes(suffix))

    def _write(self, key: bytes, value: bytes | None, what: str) -> None:
        self._writable(what)
        if self._appends and key in self._appends:
            raise EngineError("a transaction wrote a key it appended to")
        if self._cleared and value is not None and any(b <= key < e for b, e in self._cleared):
            raise EngineError("a transaction wrote a key of a range it deleted with delete_range")
        writes = self._writes
        if self._sorted is not None and key not in writes:
            self._sorted = None
        writes[key] = value

    def put(self, key: bytes, value: bytes) -> None:
        self._write(key, bytes(value), "put")

    def delete(self, key: bytes) -> None:
        self._write(key, None, "delete")

    def add(self, key: bytes, delta: int) -> None:
        self._writable("add")
        if self._appends and key in self._appends:
            raise EngineError("a transaction added to a key it appended to")
        self._adds[key] = self._adds.get(key, 0) + delta

    async def finish(self) -> None:
        """Commit: validate the read set if needed and apply the buffered writes, in one script call."""
        writes = self._writes
        adds = self._adds
        reads = self._reads
        cleared = self._cleared
        appended = self._appends
        if not writes and not adds and not cleared and not appended:
            if reads and self._overlap:
                reply = await self._kv._script("read", *reads.read_args(b"v"))
                if type(reply) is bytes:
                    raise ConflictError(f"validated read: {reads.explain(reply)}")
            return
        puts: list[Any] = []
        index: list[Any] = []
        deleted: list[bytes] = []
        for k, v in writes.items():
            if v is None:
                deleted.append(k)
            else:
                puts += (DATA + k, v)
                index += (0, k)
        sections: list[Any] = puts + index
        sections += [DATA + k for k in deleted]
        sections += deleted
        sections += [DATA + k for k in adds]
        pairs: list[Any] = []
        for item in adds.items():
            pairs += item
        # only adds after reads: the reads already saw one state and blind adds never conflict
        validate = bool(writes or cleared or appended) and bool(reads)
        appends: list[Any] = []
        for k, (at, suffix) in appended.items():
            appends += (DATA + k, k, at, suffix)
        args = reads.commit_args(validate, len(index) // 2, len(deleted), len(adds), tuple(sections), tuple(pairs),
                                 tuple(b for r in cleared for b in r), tuple(appends))
        kv = self._kv
        try:  # `kv._script("commit", ..., writes=True)` without its frame (ADR 0067)
            reply = await kv._client.evalsha(kv._sha["commit"], *args)
        except (ReplyError, ConnectionLost) as exc:
            reply = await kv._script_after(exc, "commit", *args, writes=True)
        if reply != 1:
            raise ConflictError(reads.explain(reply) if isinstance(reply, bytes) else str(reply))

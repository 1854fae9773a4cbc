"""`redis://`, `rediss://`, `unix://` — the KV port on a standalone Redis, serializable by read validation.

Layout (the Redis database belongs to the volume): the value of key K is the string ``b"k" + K``; the sorted
set ``b"i"`` holds every K with score 0, so ZRANGEBYLEX (memcmp order) gives ordered range scans.

Transactions are optimistic (docs/adr/0002-redis-transactions.md; scripts in `redis_lua`):

* The body's read set is recorded: for each point read the value seen (None = absent), for each scan its
  effective range (up to the last key returned when a limit cut it short) and the digest the server sent.
* The first read round is a plain GET / MGET (or the READ script for a scan). Every later round is ONE
  EVALSHA of the READ script that first re-validates the whole read set so far and then reads: each round
  is atomic with checking everything read before it, so after the last round the body has seen one state.
  A failed check raises ConflictError at once and `retrying` re-runs the body.
* Writes are buffered (read-your-writes by overlaying the buffer); `add`s are buffered separately.
* Commit: a body without puts/deletes needs no round trip for its reads (blind adds are applied by the
  commit script without validation). Otherwise the COMMIT script re-validates the read set and, only if it
  holds, applies puts, deletes and adds; Lua scripts run atomically, so the transaction is equivalent to
  running entirely at its commit.

Errors: unreachable server, refused credentials, a bad database number → EngineUnavailable naming host:port
(never the password); a connection lost after a commit was sent → EngineUnavailable saying the outcome is
unknown (a commit is never re-sent); LOADING/BUSY/… → ConflictError (retried); other error replies →
EngineError. Redis Cluster is not supported (the scripts touch keys they do not declare).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import redis.exceptions as rexc
import structlog

from jfs.domain.records import decode_i64, encode_i64
from jfs.ports.kv import (
    DEFAULT_MAX_RETRIES,
    ConflictError,
    EngineError,
    EngineUnavailable,
    ReadOnlyTransaction,
)

from . import redis_lua
from .base import merge_scan, redact_url, retrying
from .redis_url import parse_redis_url
from .registry import BadMetaURL
from .resp import CannotConnect, RespClient

T = TypeVar("T")
log = structlog.get_logger("jfs.kv")

DATA = b"k"
HASH_OVER = 256  # point reads of longer values are validated by sha1 instead of shipping the value back
CONNECTIONS = int(__import__("os").environ.get("JFS_CONNS", "1"))  # multiplexed sockets per KV: one already carries >100k commands/s (see the ADR)
_TRANSIENT = ("BUSY", "LOADING", "TRYAGAIN", "MASTERDOWN")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _redact(url: str) -> str:
    """`redact_url`, plus a ``password=`` query parameter masked."""
    url = redact_url(url)
    base, sep, query = url.partition("?")
    if not sep or "password" not in query:
        return url
    params = [(k, "****" if k == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)]
    return f"{base}?{urlencode(params, safe='*/')}"


class RedisTx:
    """One attempt of a transaction body; see the module docstring for the read-set bookkeeping."""

    __slots__ = (
        "_kv", "_readonly", "_writes", "_adds", "_sorted", "_points", "_dkeys", "_expect", "_ranges",
        "_rounds", "_overlap",
    )

    def __init__(self, kv: RedisKV, readonly: bool) -> None:
        self._kv = kv
        self._readonly = readonly
        self._writes: dict[bytes, bytes | None] = {}  # buffered puts; None = delete
        self._adds: dict[bytes, int] = {}
        self._sorted: list[bytes] | None = None  # the buffered keys in order, built when a scan needs them
        self._points: dict[bytes, bytes | None] = {}
        self._dkeys: list[bytes] = []  # data keys of the points, then their (mode, expected) pairs:
        self._expect: list[bytes] = []  # the validation section of the scripts (see redis_lua)
        self._ranges: list[bytes | int] = []  # the scans as (begin, end, incl, keys_only, digest) groups
        self._rounds = 0  # read rounds in flight
        self._overlap = False  # two rounds were in flight at once: neither validated the other's result

    def _saw(self, key: bytes, value: bytes | None) -> None:
        points = self._points
        if key in points:
            if points[key] != value:
                raise ConflictError("a key changed between two reads of one transaction")
            return
        points[key] = value
        self._dkeys.append(DATA + key)
        if value is None:
            self._expect += (b"a", b"")
        elif len(value) > HASH_OVER:
            self._expect += (b"h", hashlib.sha1(value).hexdigest().encode())
        else:
            self._expect += (b"v", value)

    def _read_args(self, op: bytes, dkeys: list[bytes], tail: Sequence[Any] = ()) -> list[Any]:
        """Arguments of the READ script: validate the read set, then do `op` (see redis_lua)."""
        return [
            len(self._dkeys), len(self._ranges) // 5, op, len(dkeys),
            *self._dkeys, *dkeys, *self._expect, *self._ranges, *tail,
        ]

    async def _round(self, op: bytes, dkeys: list[bytes], scan: Sequence[Any] = ()) -> Any:
        """One read round (`op` g: values of `dkeys`; s: the `scan`): a plain command while nothing was
        read yet, else the READ script validating everything read so far."""
        if self._rounds:
            self._overlap = True
        self._rounds += 1
        try:
            if not (self._dkeys or self._ranges):
                if op == b"g":
                    if len(dkeys) == 1:
                        return [await self._kv._read(b"GET", dkeys[0])]
                    return await self._kv._read(b"MGET", *dkeys)
                return await self._kv._script("read", [0, 0, op, 0, *scan])
            reply = await self._kv._script("read", self._read_args(op, dkeys, scan))
            if type(reply) is bytes:
                raise ConflictError(f"validated read: {reply.decode(errors='replace')}")
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

    async def get(self, key: bytes) -> bytes | None:
        writes = self._writes
        if key in writes:
            return writes[key]
        (value,) = await self._round(b"g", [DATA + key])
        self._saw(key, value)
        return value  # type: ignore[no-any-return]

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        writes = self._writes
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
            for i, value in zip(missing, values, strict=True):
                self._saw(keys[i], value)
                out[i] = value
        return out

    @staticmethod
    def _pairs(reply: list[Any], keys_only: bool) -> list[tuple[bytes, bytes]]:
        flat = reply[1:]
        if keys_only:
            return [(k, b"") for k in flat]
        return list(zip(flat[0::2], flat[1::2], strict=True))

    async def scan(
        self, begin: bytes, end: bytes, *, limit: int | None = None, keys_only: bool = False
    ) -> list[tuple[bytes, bytes]]:
        if begin >= end or limit == 0:
            return []
        fetch = 0
        if limit is not None:
            # buffered deletes may hide stored keys: fetch enough that the merged result still reaches `limit`
            fetch = limit + sum(1 for _, v in self._buffered(begin, end) if v is None)
        reply = await self._round(b"s", [], (begin, end, fetch, int(keys_only), 1))
        digest, stored = reply[0], self._pairs(reply, keys_only)
        if fetch and len(stored) == fetch:
            last = stored[-1][0]
            self._ranges += (begin, last, 1, int(keys_only), digest)
            buffered = self._buffered(begin, last + b"\x00")
        else:
            self._ranges += (begin, end, 0, int(keys_only), digest)
            buffered = self._buffered(begin, end)
        out = merge_scan(stored, buffered, limit)
        if keys_only:
            return [(k, b"") for k, _ in out]
        return out

    async def scan_iter(
        self, begin: bytes, end: bytes, *, batch: int = 1024
    ) -> AsyncIterator[tuple[bytes, bytes]]:
        cursor = begin
        while cursor < end:
            reply = await self._kv._script("read", [0, 0, b"s", 0, cursor, end, batch, 0, 0])
            chunk = self._pairs(reply, False)
            for pair in chunk:
                yield pair
            if len(chunk) < batch:
                return
            cursor = chunk[-1][0] + b"\x00"

    async def exists(self, begin: bytes, end: bytes) -> bool:
        return bool(await self.scan(begin, end, limit=1, keys_only=True))

    def _write(self, key: bytes, value: bytes | None, what: str) -> None:
        if self._readonly:
            raise ReadOnlyTransaction(f"{what} in a read-only transaction")
        writes = self._writes
        if self._sorted is not None and key not in writes:
            self._sorted = None
        writes[key] = value

    def put(self, key: bytes, value: bytes) -> None:
        self._write(key, bytes(value), "put")

    def delete(self, key: bytes) -> None:
        self._write(key, None, "delete")

    async def incr_by(self, key: bytes, delta: int) -> int:
        if self._readonly:
            raise ReadOnlyTransaction("incr_by in a read-only transaction")
        value = decode_i64(await self.get(key)) + delta
        self.put(key, encode_i64(value))
        return value

    def add(self, key: bytes, delta: int) -> None:
        if self._readonly:
            raise ReadOnlyTransaction("add in a read-only transaction")
        self._adds[key] = self._adds.get(key, 0) + delta

    async def finish(self) -> None:
        """Commit: validate the read set if needed and apply the buffered writes, in one script call."""
        writes = self._writes
        adds = self._adds
        has_reads = bool(self._dkeys or self._ranges)
        if not writes and not adds:
            if has_reads and self._overlap:  # concurrent rounds: no round validated all the others
                reply = await self._kv._script("read", self._read_args(b"v", []))
                if type(reply) is bytes:
                    raise ConflictError(f"validated read: {reply.decode(errors='replace')}")
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
        args: list[Any]
        if writes and has_reads:
            args = [len(self._dkeys), len(self._ranges) // 5, len(index) // 2, len(deleted), len(adds)]
            args += self._dkeys
            args += self._expect
            args += self._ranges
        else:  # blind writes, or only adds after reads already seen as one state
            args = [0, 0, len(index) // 2, len(deleted), len(adds)]
        args += puts
        args += index
        args += [DATA + k for k in deleted]
        args += deleted
        args += [DATA + k for k in adds]
        for item in adds.items():
            args += item
        reply = await self._kv._script("commit", args, writes=True)
        if reply != 1:
            raise ConflictError(reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply))


class RedisKV:
    """See the module docstring."""

    serializes_writers = False

    def __init__(self, url: str, client: RespClient) -> None:
        self.url = _redact(url)
        self._client = client
        self._address = client.target.address
        self._sha: dict[str, str] = {}

    def _unavailable(self, exc: BaseException) -> EngineUnavailable:
        reason = _one_line(exc)
        if isinstance(exc, rexc.AuthenticationError) and "authentication" not in reason:
            reason = f"authentication failed: {reason}"
        return EngineUnavailable(f"cannot reach Redis at {self._address}: {reason}")

    def _error(self, exc: rexc.ResponseError) -> Exception:
        msg = _one_line(exc)
        if msg.startswith(_TRANSIENT):
            return ConflictError(f"Redis is temporarily unable to run the transaction: {msg}")
        return EngineError(f"Redis at {self._address} replied with an error: {msg}")

    async def _load_scripts(self) -> None:
        for name, source in (("read", redis_lua.READ), ("commit", redis_lua.COMMIT)):
            sha = await self._call(b"SCRIPT", b"LOAD", source)
            self._sha[name] = sha.decode()

    async def _call(self, *args: Any) -> Any:
        """An administrative command, not retried."""
        try:
            return await self._client.execute(*args)
        except rexc.ConnectionError as exc:
            raise self._unavailable(exc) from None
        except rexc.ResponseError as exc:
            raise self._error(exc) from exc

    async def _read(self, *args: Any) -> Any:
        """One read command; retried once on a new connection when the old one died (reads are idempotent)."""
        try:
            return await self._client.execute(*args)
        except rexc.ConnectionError as exc:
            if isinstance(exc, CannotConnect):
                raise self._unavailable(exc) from None
        except rexc.ResponseError as exc:
            raise self._error(exc) from exc
        return await self._call(*args)

    async def _script(self, name: str, args: list[Any], *, writes: bool = False) -> Any:
        """EVALSHA one of our scripts, reloading it after NOSCRIPT (e.g. after a server restart).

        A read-only script is retried once when its connection died; a commit only when it certainly was
        not sent — otherwise its outcome is unknown and EngineUnavailable says so.
        """
        retried = False
        while True:
            try:
                return await self._client.evalsha(self._sha[name], *args)
            except rexc.ResponseError as exc:
                if retried or not str(exc).startswith("NOSCRIPT"):
                    raise self._error(exc) from exc
                await self._load_scripts()
            except rexc.ConnectionError as exc:
                if isinstance(exc, CannotConnect):
                    raise self._unavailable(exc) from None
                if writes and getattr(exc, "sent", True):
                    raise EngineUnavailable(
                        f"lost the connection to Redis at {self._address} while committing; "
                        f"the outcome of the transaction is unknown: {_one_line(exc)}"
                    ) from None
                if retried:
                    raise self._unavailable(exc) from None
            retried = True

    async def _run(self, body: Callable[[Any], Awaitable[T]], readonly: bool, max_retries: int) -> T:
        async def attempt() -> T:
            tx = RedisTx(self, readonly)
            result = await body(tx)
            await tx.finish()
            return result

        return await retrying(attempt, max_retries)

    async def txn(self, body: Callable[[Any], Awaitable[T]], *, max_retries: int = DEFAULT_MAX_RETRIES) -> T:
        return await self._run(body, False, max_retries)

    async def read(self, body: Callable[[Any], Awaitable[T]], *, max_retries: int = DEFAULT_MAX_RETRIES) -> T:
        return await self._run(body, True, max_retries)

    async def reset(self) -> None:
        """FLUSHDB: the whole Redis database belongs to the volume."""
        await self._call(b"FLUSHDB")

    async def close(self) -> None:
        await self._client.close()


async def open_redis(url: str) -> RedisKV:
    """Connect to the Redis database named by `url` and load the Lua scripts.

    ``redis://[user:pass@]host:port/db``, ``rediss://…`` (TLS), ``unix:///path/to/sock?db=N`` (details in
    `redis_url`). Raises EngineUnavailable (one line, no password) when the server cannot be used;
    BadMetaURL when the URL is malformed.
    """
    try:
        target = parse_redis_url(url)
    except (ValueError, OSError) as exc:
        raise BadMetaURL(f"malformed Redis URL '{_redact(url)}': {_one_line(exc)}") from None
    kv = RedisKV(url, RespClient(target, connections=CONNECTIONS))
    try:
        try:
            await kv._client.connect()
        except rexc.ConnectionError as exc:
            raise kv._unavailable(exc) from None
        await kv._load_scripts()
        try:
            reply: Any = await kv._client.execute(b"CONFIG", b"GET", b"maxmemory-policy")
            policy = reply[1].decode() if isinstance(reply, list) and len(reply) > 1 else "noeviction"
            if policy != "noeviction":  # evicting metadata keys would corrupt the volume
                log.warning("redis_eviction_policy", address=kv._address, policy=policy, want="noeviction")
        except rexc.ResponseError:
            pass  # CONFIG may be disabled on managed services
    except BaseException:
        await kv.close()
        raise
    log.debug("redis_opened", url=kv.url)
    return kv

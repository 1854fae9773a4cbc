"""`redis://`, `rediss://`, `unix://` — the KV port on a standalone Redis, serializable by read validation.

Layout (the Redis database belongs to the volume): the value of key K is the string ``b"k" + K``; the sorted
set ``b"i"`` holds every K with score 0, so ZRANGEBYLEX (memcmp order) gives ordered range scans.

Transactions are optimistic (docs/adr/0002-redis-transactions.md): `redis_tx.RedisTx` records what a body
reads and re-validates it in the Lua scripts of `redis_lua` — piggy-backed on each later read round, and in
the one-EVALSHA commit that applies the buffered writes. The wire client is the lean pipelined `resp`.

Errors: unreachable server, refused credentials, a bad database number → EngineUnavailable naming host:port
(never the password); a connection lost after a commit was sent → EngineUnavailable saying the outcome is
unknown (a commit is never re-sent); LOADING/BUSY/… → ConflictError (retried); other error replies →
EngineError. Redis Cluster is not supported (the scripts touch keys they do not declare).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import structlog

from jfs.ports.kv import (
    DEFAULT_MAX_RETRIES,
    ConflictError,
    EngineError,
    EngineUnavailable,
    FollowedRange,
    Pointer,
)

from . import redis_batch, redis_lua, redis_pages
from .base import RetryingKV, redact_url, retrying
from .redis_tx import DATA, RedisTx
from .redis_url import parse_redis_url
from .registry import BadMetaURL
from .resp import (
    CONNECT_TIMEOUT,
    REPLY_TIMEOUT,
    AuthenticationFailed,
    CannotConnect,
    ConnectionLost,
    ReplyError,
    RespClient,
    bulks,
)

T = TypeVar("T")
log = structlog.get_logger("jfs.kv")

CONNECTIONS = 1  # multiplexed sockets per KV: one carries >100k commands/s and more cost CPU (see the ADR)
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


class RedisKV(RetryingKV):
    """See the module docstring."""

    serializes_writers = False

    def __init__(self, url: str, client: RespClient) -> None:
        self.url = _redact(url)
        self._client = client
        self._address = client.target.address
        self._sha: dict[str, bytes] = {}
        self._sort: bytes | bool | None = None
        """The command of `redis_pages` that worked (None: not tried yet; False: refused, native reads)."""

    def _unavailable(self, exc: BaseException) -> EngineUnavailable:
        reason = _one_line(exc)
        if isinstance(exc, AuthenticationFailed) and "authentication" not in reason:
            reason = f"authentication failed: {reason}"
        elif (self._client.target.ssl is not None and "tls-cert-file" not in self.url
              and ("reset by peer" in reason or "connection lost" in reason)):
            # TLS 1.3: a server that requires a client certificate may close the connection before the
            # client reads its "certificate required" alert.
            reason += " (the server may require a client certificate: tls-cert-file and tls-key-file)"
        return EngineUnavailable(f"cannot reach Redis at {self._address}: {reason}")

    def _error(self, exc: ReplyError) -> Exception:
        msg = _one_line(exc)
        if msg.startswith(_TRANSIENT):
            return ConflictError(f"Redis is temporarily unable to run the transaction: {msg}")
        return EngineError(f"Redis at {self._address} replied with an error: {msg}")

    async def _load_scripts(self) -> None:
        scripts = (("read", redis_lua.READ), ("commit", redis_lua.COMMIT), ("follow", redis_lua.FOLLOW),
                   ("scan", redis_lua.SCAN),
                   *redis_batch.SCRIPTS)
        for name, source in scripts:
            self._sha[name] = await self._call(b"SCRIPT", b"LOAD", source)

    async def _check_layout(self) -> None:
        """EngineUnavailable when the database holds a JuiceFS volume in JuiceFS's own Redis layout (its
        ``setting`` key; every key of jfs's layout is ``i`` or starts with ``k``), with the way over."""
        try:
            raw = await self._call(b"GET", b"setting")
        except EngineError:  # not a string (WRONGTYPE): not JuiceFS's either
            return
        if raw is None:
            return
        try:
            name = json.loads(raw).get("Name")
        except (ValueError, AttributeError):
            name = None
        what = f"JuiceFS volume '{name}'" if isinstance(name, str) and name else "a JuiceFS volume"
        raise EngineUnavailable(
            f"{self.url} holds {what} in JuiceFS's Redis layout, which jfs does not read; "
            f"copy it into a jfs engine with: juicefs dump {self.url} | jfs load META-URL -"
        )

    async def _call(self, *args: Any) -> Any:
        """An administrative command, not retried."""
        try:
            return await self._client.execute(*args)
        except ConnectionLost as exc:
            raise self._unavailable(exc) from None
        except ReplyError as exc:
            raise self._error(exc) from exc

    async def _read(self, *args: Any) -> Any:
        """One read command; retried once on a new connection when the old one died (reads are idempotent)."""
        try:
            return await self._client.execute(*args)
        except ConnectionLost as exc:
            if isinstance(exc, CannotConnect):
                raise self._unavailable(exc) from None
        except ReplyError as exc:
            raise self._error(exc) from exc
        return await self._call(*args)

    async def _read_packed(self, command: bytes) -> Any:
        """`_read` of a command already packed (RESP)."""
        try:
            return await self._client.execute_packed(command)
        except ConnectionLost as exc:
            if isinstance(exc, CannotConnect):
                raise self._unavailable(exc) from None
        except ReplyError as exc:
            raise self._error(exc) from exc
        try:
            return await self._client.execute_packed(command)
        except ConnectionLost as exc:
            raise self._unavailable(exc) from None
        except ReplyError as exc:
            raise self._error(exc) from exc

    async def _script(self, name: str, nargs: int, args: bytes, *, writes: bool = False) -> Any:
        """EVALSHA one of our scripts with `nargs` packed `args`, reloading it after NOSCRIPT (server restart).

        A read-only script is retried once when its connection died; a commit only when it certainly was
        not sent — otherwise its outcome is unknown and EngineUnavailable says so.
        """
        try:
            return await self._client.evalsha(self._sha[name], nargs, args)
        except (ReplyError, ConnectionLost) as exc:
            return await self._script_after(exc, name, nargs, args, writes=writes)

    async def _script_after(self, exc: ReplyError | ConnectionLost, name: str, nargs: int, args: bytes, *,
                            writes: bool = False) -> Any:
        """`_script` from its first try's failure `exc` on. The hot paths (`RedisTx`'s FOLLOW round and
        commit) send their first try themselves and come here only when it failed: one coroutine frame
        less per script call (docs/adr/0067-redis-per-request-python-trimmed.md)."""
        retried = False
        while True:
            if isinstance(exc, ReplyError):
                if retried or not str(exc).startswith("NOSCRIPT"):
                    raise self._error(exc) from exc
                await self._load_scripts()
            else:
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
            try:
                return await self._client.evalsha(self._sha[name], nargs, args)
            except (ReplyError, ConnectionLost) as again:
                exc = again

    async def _attempt(self, body: Callable[[Any], Awaitable[T]], readonly: bool) -> T:
        tx = RedisTx(self, readonly)
        result = await body(tx)
        await tx.finish()
        return result

    async def _run(self, body: Callable[[Any], Awaitable[T]], readonly: bool, max_retries: int) -> T:
        """`RetryingKV._run` with the first attempt run here: the common case (no conflict) costs no
        `retrying` / `_attempt` coroutines (a LOOKUP through the mount is a handful of Python frames deep
        as it is; docs/adr/0047-redis-mount-lookup-fewer-python-layers.md); after a conflict `retrying`
        goes on from try 2, counted and paced as if it had run try 1."""
        tx = RedisTx(self, readonly)
        try:
            result = await body(tx)
            if not readonly or tx._overlap:  # a read-only body's `finish` only validates overlapping rounds
                await tx.finish()
            return result
        except ConflictError as exc:
            failed = exc
        return await retrying(lambda: self._attempt(body, readonly), max_retries, body, failed=failed)

    async def read_follow(self, keys: Sequence[bytes], pointer: Pointer) -> list[bytes | None]:
        """`FollowingKV.read_follow`: one call of the FOLLOW script, as a read-only transaction's first
        round is (`RedisTx.get_follow`), without the transaction: no `RedisTx`, read set or body to run
        (the script reads every key in one atomic step; one round has nothing to validate). ADR 0094."""
        p = pointer
        nargs = 6 + len(keys)
        packed = bulks((p.source, p.start, p.stop, DATA + p.prefix, p.suffix, int(p.reverse),
                        *[DATA + k for k in keys]))
        try:
            reply = await self._client.evalsha(self._sha["follow"], nargs, packed)
        except (ReplyError, ConnectionLost) as exc:
            reply = await self._script_after(exc, "follow", nargs, packed)
        return list(reply)  # the keys' values, then the followed key's (nil when absent or not named)

    def txn(self, body: Callable[[Any], Awaitable[T]], *,
            max_retries: int = DEFAULT_MAX_RETRIES) -> Coroutine[Any, Any, T]:
        return self._run(body, False, max_retries)

    def read(self, body: Callable[[Any], Awaitable[T]], *,
             max_retries: int = DEFAULT_MAX_RETRIES) -> Coroutine[Any, Any, T]:
        return self._run(body, True, max_retries)

    def read_ranges(self, ranges: Sequence[tuple[bytes, bytes]], limit: int,
                    points: Sequence[bytes] = ()) -> Coroutine[Any, Any, list[list[tuple[bytes, bytes]]]]:
        """`RangeReadingKV.read_ranges`: one atomic script call per batch (`redis_batch`)."""
        return redis_batch.read_ranges(self, ranges, limit, points)

    def sparse_keys(self, begin: bytes, end: bytes, limit: int, at: int,
                    skip: bytes) -> Coroutine[Any, Any, tuple[bytes | None, list[bytes]]]:
        """`RangeReadingKV.sparse_keys`: one native ZRANGEBYLEX, filtered here (`redis_batch`)."""
        return redis_batch.sparse_keys(self, begin, end, limit, at, skip)

    def load_puts(self, items: Sequence[tuple[bytes, bytes]]) -> Coroutine[Any, Any, None]:
        """`BulkLoadingKV.load_puts` (`redis_batch`)."""
        return redis_batch.load_puts(self, items)

    async def _write_packed(self, command: bytes) -> Any:
        """A write command outside any transaction (bulk load only), already packed in RESP
        (`resp.pack_mset`, `resp.pack_zadd`): errors as for `_call`; a connection lost after sending it
        leaves the outcome unknown (EngineUnavailable says so)."""
        try:
            return await self._client.execute_packed(command)
        except ConnectionLost as exc:
            if isinstance(exc, CannotConnect) or not getattr(exc, "sent", True):
                raise self._unavailable(exc) from None
            raise EngineUnavailable(f"lost the connection to Redis at {self._address} while loading; "
                                    f"the outcome of the write is unknown: {_one_line(exc)}") from None
        except ReplyError as exc:
            raise self._error(exc) from exc

    def read_pages(self, begin: bytes, end: bytes, limit: int) -> AsyncIterator[list[tuple[bytes, bytes]]]:
        """`PageReadingKV.read_pages`: one SORT_RO per page, the next one sent ahead (`redis_pages`)."""
        return redis_pages.read_pages(self, begin, end, limit)

    def follow_range(self, begin: bytes, end: bytes, limit: int, pointer: Pointer,
                     extra: Sequence[bytes] = ()) -> Coroutine[Any, Any, FollowedRange]:
        """`RangeFollowingKV.follow_range`: three native commands (`redis_batch`)."""
        return redis_batch.follow_range(self, begin, end, limit, pointer, extra)

    async def reset(self) -> None:
        """FLUSHDB: the whole Redis database belongs to the volume."""
        await self._call(b"FLUSHDB")

    async def close(self) -> None:
        await self._client.close()


async def open_redis(url: str) -> RedisKV:
    """Connect to the Redis database named by `url` and load the Lua scripts.

    ``redis://[user:pass@]host:port/db``, ``rediss://…`` (TLS), ``unix:///path/to/sock?db=N``, with
    ``?read_timeout=10s&dial_timeout=2s`` to change the reply (60 s) and connect (5 s) timeouts (details in
    `redis_url`). Raises EngineUnavailable (one line, no password) when the server cannot be used;
    BadMetaURL when the URL is malformed.
    """
    try:
        target = parse_redis_url(url)
    except (ValueError, OSError) as exc:
        raise BadMetaURL(f"malformed Redis URL '{_redact(url)}': {_one_line(exc)}") from None
    client = RespClient(
        target,
        connections=CONNECTIONS,
        timeout=REPLY_TIMEOUT if target.read_timeout is None else target.read_timeout,
        connect_timeout=CONNECT_TIMEOUT if target.dial_timeout is None else target.dial_timeout,
    )
    kv = RedisKV(url, client)
    try:
        try:
            await kv._client.connect()
        except ConnectionLost as exc:
            raise kv._unavailable(exc) from None
        await kv._load_scripts()
        await kv._check_layout()
        try:
            reply: Any = await kv._client.execute(b"CONFIG", b"GET", b"maxmemory-policy")
            policy = reply[1].decode() if isinstance(reply, list) and len(reply) > 1 else "noeviction"
            if policy != "noeviction":  # evicting metadata keys would corrupt the volume
                log.warning("redis_eviction_policy", address=kv._address, policy=policy, want="noeviction")
        except ReplyError:
            pass  # CONFIG may be disabled on managed services
    except BaseException:
        await kv.close()
        raise
    log.debug("redis_opened", url=kv.url)
    return kv

"""`redis://`, `rediss://`, `unix://` — the KV port on a standalone Redis, serializable by read validation.

Layout (the Redis database belongs to the volume): the value of key K is the string ``b"k" + K``; the sorted
set ``b"i"`` holds every K with score 0, so ZRANGEBYLEX (memcmp order) gives ordered range scans.

Transactions are optimistic (docs/adr/0002-redis-transactions.md):

* Reads go straight to Redis, one round trip each: GET, MGET, or one EVALSHA of a read-only Lua script that
  does ZRANGEBYLEX + MGET and returns the pairs with a digest of what it saw.
* The body's read set is recorded: for each point read the value seen (None = absent), for each scan its
  effective range (up to the last key returned when a limit cut it short) and the digest.
* Writes are buffered (read-your-writes by overlaying the buffer); `add`s are buffered separately.
* Commit is ONE EVALSHA that re-checks every recorded read (value or sha1 equality; range re-scan + digest
  equality) and, only if all hold, applies the puts/deletes and the blind adds. Lua scripts run atomically,
  so validation + apply is a single serialization point: the transaction is equivalent to running entirely
  at its commit. A failed check raises ConflictError and `retrying` re-runs the body.
* A body that made ≤ 1 read round trip saw one atomic snapshot: without puts/deletes it needs no
  validation. Bodies with only blind writes commit without validation.

Errors: unreachable server, refused credentials, a bad database number → EngineUnavailable naming host:port
(never the password); a connection lost while a commit script was in flight → EngineUnavailable saying the
outcome is unknown (the client never re-sends a commit); other error replies → EngineError. Redis Cluster is
not supported (the scripts touch keys they do not declare).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from jfs.domain.records import decode_i64, encode_i64
from jfs.ports.kv import (
    DEFAULT_MAX_RETRIES,
    ConflictError,
    EngineError,
    EngineUnavailable,
    ReadOnlyTransaction,
)

from .base import WriteBuffer, merge_scan, redact_url, retrying
from .registry import BadMetaURL

T = TypeVar("T")
log = structlog.get_logger("jfs.kv")

DATA = b"k"
INDEX = b"i"
HASH_OVER = 64  # point reads of longer values are validated by sha1 instead of shipping the value back

# Shared Lua helpers. `range_keys` lists indexed keys in [b, e) (or [b, e] when incl), `values` fetches their
# values in MGET chunks (unpack() has a small argument limit), `digest` is the sha1 of the length-prefixed
# keys (and values).
_LUA_LIB = r"""
local function range_keys(b, e, incl, limit)
  local hi = (incl and '[' or '(') .. e
  if limit > 0 then
    return redis.call('ZRANGEBYLEX', 'i', '[' .. b, hi, 'LIMIT', 0, limit)
  end
  return redis.call('ZRANGEBYLEX', 'i', '[' .. b, hi)
end
local function values(keys)
  local vals = {}
  local n = #keys
  local i = 1
  while i <= n do
    local j = math.min(i + 499, n)
    local ks = {}
    for x = i, j do ks[#ks + 1] = 'k' .. keys[x] end
    local vs = redis.call('MGET', unpack(ks))
    for x = 1, #ks do
      if not vs[x] then return nil end
      vals[#vals + 1] = vs[x]
    end
    i = j + 1
  end
  return vals
end
local function digest(keys, vals)
  local parts = {}
  for x = 1, #keys do
    parts[#parts + 1] = tostring(#keys[x]) .. ':' .. keys[x]
    if vals then parts[#parts + 1] = tostring(#vals[x]) .. ':' .. vals[x] end
  end
  return redis.sha1hex(table.concat(parts))
end
"""

# ARGV: begin, end, limit (0 = none), keys_only ('1'/'0'), want_digest ('1'/'0').
# Returns {digest or '', k1, v1, k2, v2, ...} ({digest, k1, k2, ...} when keys_only).
_SCAN_LUA = (
    _LUA_LIB
    + r"""
local keys = range_keys(ARGV[1], ARGV[2], false, tonumber(ARGV[3]))
local keys_only = ARGV[4] == '1'
local vals = nil
if not keys_only then
  vals = values(keys)
  if not vals then return redis.error_reply('jfs: index and data out of sync in the scanned range') end
end
local out = {''}
if ARGV[5] == '1' then out[1] = digest(keys, vals) end
for x = 1, #keys do
  out[#out + 1] = keys[x]
  if vals then out[#out + 1] = vals[x] end
end
return out
"""
)

# ARGV: n_points, n_ranges, n_puts, n_deletes, n_adds, then
#   points  (key, mode, expected)  mode: 'a' absent, 'v' value equals expected, 'h' sha1hex equals expected
#   ranges  (begin, end, incl, keys_only, digest)
#   puts    (key, value);  deletes (key);  adds (key, delta)
# Returns 1 when committed, else a string naming the first read that changed (nothing is written then).
_COMMIT_LUA = (
    _LUA_LIB
    + r"""
local np, nr, nw, nd, na = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local i = 6
for p = 1, np do
  local cur = redis.call('GET', 'k' .. ARGV[i])
  local mode, want = ARGV[i + 1], ARGV[i + 2]
  local ok
  if mode == 'a' then ok = not cur
  elseif mode == 'v' then ok = (cur == want)
  else ok = cur and redis.sha1hex(cur) == want end
  if not ok then return 'point read #' .. p .. ' changed' end
  i = i + 3
end
for r = 1, nr do
  local keys = range_keys(ARGV[i], ARGV[i + 1], ARGV[i + 2] == '1', 0)
  local vals = nil
  if ARGV[i + 3] ~= '1' then
    vals = values(keys)
    if not vals then return redis.error_reply('jfs: index and data out of sync in a validated range') end
  end
  if digest(keys, vals) ~= ARGV[i + 4] then return 'scanned range #' .. r .. ' changed' end
  i = i + 5
end
for _ = 1, nw do
  redis.call('SET', 'k' .. ARGV[i], ARGV[i + 1])
  redis.call('ZADD', 'i', 0, ARGV[i])
  i = i + 2
end
for _ = 1, nd do
  redis.call('DEL', 'k' .. ARGV[i])
  redis.call('ZREM', 'i', ARGV[i])
  i = i + 1
end
for _ = 1, na do
  local key = ARGV[i]
  local cur = redis.call('GET', 'k' .. key)
  local n = 0
  if cur and #cur > 0 then
    if #cur < 8 then return redis.error_reply('jfs: counter value is shorter than 8 bytes') end
    n = struct.unpack('<i8', cur)
  end
  redis.call('SET', 'k' .. key, struct.pack('<i8', n + tonumber(ARGV[i + 1])))
  redis.call('ZADD', 'i', 0, key)
  i = i + 2
end
return 1
"""
)

_TRANSIENT = ("BUSY", "LOADING", "TRYAGAIN", "MASTERDOWN")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _sha1(value: bytes) -> bytes:
    return hashlib.sha1(value).hexdigest().encode()


class RedisTx:
    """One attempt of a transaction body; see the module docstring for the read-set bookkeeping."""

    def __init__(self, kv: RedisKV, readonly: bool) -> None:
        self._kv = kv
        self._readonly = readonly
        self._buf = WriteBuffer()
        self._points: dict[bytes, bytes | None] = {}
        self._ranges: list[tuple[bytes, bytes, bool, bool, bytes]] = []  # begin, end, incl, keys_only, digest
        self._trips = 0

    def _saw(self, key: bytes, value: bytes | None) -> None:
        if key in self._points and self._points[key] != value:
            raise ConflictError("a key changed between two reads of one transaction")
        self._points[key] = value

    async def get(self, key: bytes) -> bytes | None:
        found, value = self._buf.lookup(key)
        if found:
            return value
        self._trips += 1
        stored: bytes | None = await self._kv._read("GET", DATA + key)
        self._saw(key, stored)
        return stored

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        out: list[bytes | None] = []
        missing: list[int] = []
        for i, key in enumerate(keys):
            found, value = self._buf.lookup(key)
            out.append(value)
            if not found:
                missing.append(i)
        if missing:
            self._trips += 1
            values = await self._kv._read("MGET", *(DATA + keys[i] for i in missing))
            for i, value in zip(missing, values, strict=True):
                self._saw(keys[i], value)
                out[i] = value
        return out

    async def _scan_stored(
        self, begin: bytes, end: bytes, fetch: int, keys_only: bool, want_digest: bool
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        reply = await self._kv._script("scan", begin, end, fetch, int(keys_only), int(want_digest))
        flat = reply[1:]
        if keys_only:
            return reply[0], [(k, b"") for k in flat]
        return reply[0], list(zip(flat[0::2], flat[1::2], strict=True))

    async def scan(
        self, begin: bytes, end: bytes, *, limit: int | None = None, keys_only: bool = False
    ) -> list[tuple[bytes, bytes]]:
        if begin >= end or limit == 0:
            return []
        fetch = 0
        if limit is not None:
            # buffered deletes may hide stored keys: fetch enough that the merged result still reaches `limit`
            fetch = limit + sum(1 for _, v in self._buf.in_range(begin, end) if v is None)
        self._trips += 1
        digest, stored = await self._scan_stored(begin, end, fetch, keys_only, True)
        if fetch and len(stored) == fetch:
            last = stored[-1][0]
            self._ranges.append((begin, last, True, keys_only, digest))
            buffered = self._buf.in_range(begin, last + b"\x00")
        else:
            self._ranges.append((begin, end, False, keys_only, digest))
            buffered = self._buf.in_range(begin, end)
        out = merge_scan(stored, buffered, limit)
        if keys_only:
            return [(k, b"") for k, _ in out]
        return out

    async def scan_iter(
        self, begin: bytes, end: bytes, *, batch: int = 1024
    ) -> AsyncIterator[tuple[bytes, bytes]]:
        cursor = begin
        while cursor < end:
            _, chunk = await self._scan_stored(cursor, end, batch, False, False)
            for pair in chunk:
                yield pair
            if len(chunk) < batch:
                return
            cursor = chunk[-1][0] + b"\x00"

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

    def _read_args(self) -> list[Any]:
        args: list[Any] = []
        for key, seen in self._points.items():
            if seen is None:
                args += [key, b"a", b""]
            elif len(seen) > HASH_OVER:
                args += [key, b"h", _sha1(seen)]
            else:
                args += [key, b"v", seen]
        for begin, end, incl, keys_only, digest in self._ranges:
            args += [begin, end, int(incl), int(keys_only), digest]
        return args

    async def finish(self) -> None:
        """Validate the read set if needed and apply the buffered writes, in one script call."""
        writes = self._buf.writes
        validate = bool(self._points or self._ranges) and (self._trips > 1 or bool(writes))
        if not validate and not self._buf:
            return
        puts = [(k, v) for k, v in writes.items() if v is not None]
        deletes = [k for k, v in writes.items() if v is None]
        args: list[Any] = []
        if validate:
            args += self._read_args()
        for k, v in puts:
            args += [k, v]
        args += deletes
        for k, delta in self._buf.adds.items():
            args += [k, delta]
        counts = [len(self._points), len(self._ranges)] if validate else [0, 0]
        counts += [len(puts), len(deletes), len(self._buf.adds)]
        reply = await self._kv._script("commit", *counts, *args, writes=bool(self._buf))
        if reply != 1:
            raise ConflictError(reply.decode() if isinstance(reply, bytes) else str(reply))


class RedisKV:
    """See the module docstring."""

    serializes_writers = False

    def __init__(self, url: str, client: Any, address: str) -> None:
        self.url = redact_url(url)
        self._client = client
        self._address = address
        self._sha: dict[str, str] = {}

    def _unavailable(self, exc: BaseException, what: str = "") -> EngineUnavailable:
        reason = _one_line(exc)
        if isinstance(exc, rexc.AuthenticationError):
            reason = f"authentication failed: {reason}"
        return EngineUnavailable(f"cannot reach Redis at {self._address}{what}: {reason}")

    async def _load_scripts(self) -> None:
        for name, source in (("scan", _SCAN_LUA), ("commit", _COMMIT_LUA)):
            self._sha[name] = await self._client.script_load(source)

    async def _read(self, command: str, *args: Any) -> Any:
        """One read command; a dead pooled connection is retried once (reads are idempotent)."""
        for attempt in (1, 2):
            try:
                return await self._client.execute_command(command, *args)
            except (rexc.ConnectionError, rexc.TimeoutError) as exc:
                if isinstance(exc, rexc.BusyLoadingError):
                    raise ConflictError(f"Redis is loading its dataset: {_one_line(exc)}") from exc
                if attempt == 2 or isinstance(exc, rexc.AuthenticationError | rexc.TimeoutError):
                    raise self._unavailable(exc) from None
            except rexc.ResponseError as exc:
                raise self._error(exc) from exc
        raise AssertionError("unreachable")

    def _error(self, exc: rexc.ResponseError) -> Exception:
        msg = _one_line(exc)
        if msg.startswith(_TRANSIENT):
            return ConflictError(f"Redis is temporarily unable to run the transaction: {msg}")
        return EngineError(f"Redis at {self._address} replied with an error: {msg}")

    async def _script(self, name: str, *args: Any, writes: bool = False) -> Any:
        """EVALSHA one of our scripts, reloading it after NOSCRIPT (e.g. after a server restart)."""
        for attempt in (1, 2):
            try:
                return await self._client.evalsha(self._sha[name], 0, *args)
            except rexc.NoScriptError:
                if attempt == 2:
                    raise EngineError(f"Redis at {self._address} keeps forgetting our Lua scripts") from None
                await self._safe(self._load_scripts())
            except (rexc.ConnectionError, rexc.TimeoutError) as exc:
                if isinstance(exc, rexc.BusyLoadingError):
                    raise ConflictError(f"Redis is loading its dataset: {_one_line(exc)}") from exc
                if writes:
                    raise EngineUnavailable(
                        f"lost the connection to Redis at {self._address} while committing; "
                        f"the outcome of the transaction is unknown: {_one_line(exc)}"
                    ) from None
                if attempt == 2 or isinstance(exc, rexc.AuthenticationError | rexc.TimeoutError):
                    raise self._unavailable(exc) from None
            except rexc.ResponseError as exc:
                raise self._error(exc) from exc
        raise AssertionError("unreachable")

    async def _safe(self, aw: Awaitable[T]) -> T:
        try:
            return await aw
        except (rexc.ConnectionError, rexc.TimeoutError) as exc:
            raise self._unavailable(exc) from None
        except rexc.ResponseError as exc:
            raise self._error(exc) from exc

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
        await self._safe(self._client.flushdb())

    async def close(self) -> None:
        await self._client.aclose()
        await self._client.connection_pool.disconnect()  # a client given a pool does not close it


def _address(kwargs: dict[str, Any]) -> str:
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


async def open_redis(url: str) -> RedisKV:
    """Connect to the Redis database named by `url` and load the Lua scripts.

    ``redis://[user:pass@]host:port/db``, ``rediss://…`` (TLS), ``unix:///path/to/sock?db=N``.
    Raises EngineUnavailable (one line, no password) when the server cannot be used; BadMetaURL when the
    URL is malformed.
    """
    try:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=64,  # bounded: callers queue for a connection instead of opening thousands
            timeout=60,
            socket_connect_timeout=5,
            socket_timeout=60,
            retry=Retry(NoBackoff(), 0),  # never re-send a command on our behalf: a commit is not idempotent
            decode_responses=False,
        )
    except ValueError as exc:
        raise BadMetaURL(f"malformed Redis URL '{redact_url(url)}': {exc}") from None
    client = aioredis.Redis(connection_pool=pool)
    kv = RedisKV(url, client, _address(pool.connection_kwargs))
    try:
        try:
            await client.ping()
            await kv._load_scripts()
        except (rexc.ConnectionError, rexc.TimeoutError, rexc.ResponseError, OSError) as exc:
            raise kv._unavailable(exc) from None
        try:
            reply: Any = await client.config_get("maxmemory-policy")
            policy = next(iter(reply.values()), "noeviction") if reply else "noeviction"
            policy = policy.decode() if isinstance(policy, bytes) else str(policy)
            if policy != "noeviction":  # evicting metadata keys would corrupt the volume
                log.warning("redis_eviction_policy", address=kv._address, policy=policy, want="noeviction")
        except rexc.RedisError:
            pass  # CONFIG may be disabled on managed services
    except BaseException:
        await kv.close()
        raise
    log.debug("redis_opened", url=kv.url)
    return kv

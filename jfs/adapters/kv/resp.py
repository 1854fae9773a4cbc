"""A lean asyncio client for the Redis protocol (RESP2): a few multiplexed, pipelined connections.

Why jfs has its own client instead of redis-py's asyncio one: measured in docs/adr/0002 — per command
redis-py checks a connection out of a pool, runs its retry and event machinery and writes the command with
its own syscall, which capped the metadata engine at ~1-2k transactions/s. Here the expensive parts are
hiredis's C code (`hiredis.pack_command`, `hiredis.Reader`); what remains is a future per command.

Contract of `RespClient`:

* `execute(*args)` sends one command and returns its reply: bytes, int, None, or a list of those.
  An error reply raises `ReplyError` (the connection stays usable).
* Commands of all tasks share `connections` sockets. Commands queued during one turn of the event loop are
  written with one syscall, and replies are matched to requests in order (Redis answers a connection FIFO).
* At most `max_inflight` commands are outstanding; more callers wait in line (a burst of 10,000
  transactions queues instead of failing).
* Connection trouble raises `ConnectionLost`; its `sent` is False only when the command certainly never
  left this process (so it did not run). The client never re-sends a command: callers decide (reads may
  retry, a commit must not). A dead connection is replaced on the next command; if that fails, the command
  raises `CannotConnect` (`sent` False), or `AuthenticationFailed` for refused credentials.
* Timeouts: connecting + logging in must finish within `connect_timeout`; a connection that has commands
  outstanding but received no reply for `timeout` seconds is aborted (its commands raise `ConnectionLost`).

The error classes derive from the KV port's own (`jfs.ports.kv`): a reply error is an EngineError, a lost
connection an EngineUnavailable; redis-py is not needed at run time (ADR 0020).
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Coroutine, Sequence
from typing import Any

import hiredis
import structlog

from jfs.ports.kv import EngineError, EngineUnavailable

from .redis_url import RedisTarget

log = structlog.get_logger("jfs.kv")

CONNECT_TIMEOUT = 5.0
REPLY_TIMEOUT = 60.0
MAX_INFLIGHT = 4096


class ReplyError(EngineError):
    """The server answered a command with an error (``-ERR …``, ``-NOSCRIPT …``)."""


class ConnectionLost(EngineUnavailable):
    """The connection failed; `sent` tells whether the command may have reached the server."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class CannotConnect(ConnectionLost):
    """No connection could be made (refused, DNS, TLS, timeout, bad database); nothing was sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, sent=False)


class AuthenticationFailed(CannotConnect):
    """The server refused our credentials (or wants some)."""


class _ProtocolError(Exception):
    """The server sent bytes that are not RESP."""


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "closed by the server"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class Connection(asyncio.Protocol):
    """One socket: requests are queued, flushed once per loop turn, and answered in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, address: str) -> None:
        self._loop = loop
        self._timeout = timeout
        self._address = address
        self._reader = hiredis.Reader(replyError=ReplyError, protocolError=_ProtocolError)
        self._pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._heard = 0.0  # loop time of the last bytes received, or of a send to an idle connection
        self._watchdog: asyncio.TimerHandle | None = None
        self._abort_reason = ""
        self._quiet = False  # closed on purpose: nothing to log
        self._drained: asyncio.Future[None] | None = None
        self.alive = False

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is no asyncio.Transport)
        self.alive = True

    def data_received(self, data: bytes) -> None:
        self._heard = self._loop.time()
        reader = self._reader
        pending = self._pending
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except _ProtocolError as exc:
                self.abort(f"protocol error: {_reason(exc)}")
                return
            if reply is False:
                return
            if not pending:
                self.abort("unexpected reply from the server")
                return
            fut = pending.popleft()
            if fut.done():  # the caller was cancelled
                continue
            if type(reply) is ReplyError:
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        reason = self._abort_reason or _reason(exc)
        if not self._quiet:
            log.warning("redis_connection_lost", address=self._address, reason=reason, pending=len(self._pending))
        unsent = len(self._out)  # the newest requests never reached the socket
        self._out = []
        pending, self._pending = self._pending, collections.deque()
        for i, fut in enumerate(pending):
            if not fut.done():
                sent = i < len(pending) - unsent
                fut.set_exception(ConnectionLost(f"connection lost: {reason}", sent=sent))
        self._wake_writers()

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        self._wake_writers()

    # -- requests

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        """Queue one packed command; the future gets its reply (or ReplyError / ConnectionLost)."""
        fut: asyncio.Future[Any] = self._loop.create_future()
        if not self.alive:
            fut.set_exception(ConnectionLost("connection lost before sending", sent=False))
            return fut
        if not self._out:
            self._loop.call_soon(self._flush)
        if not self._pending:  # an idle connection starts waiting now
            self._heard = self._loop.time()
        self._out.append(packed)
        self._pending.append(fut)
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(self._timeout, self._check)
        return fut

    async def drained(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        if self._drained is not None:
            await asyncio.shield(self._drained)

    @property
    def load(self) -> int:
        return len(self._pending)

    def abort(self, reason: str, *, quiet: bool = False) -> None:
        """Drop the connection at once; outstanding requests fail with ConnectionLost(reason)."""
        self._quiet = self._quiet or quiet
        if not self._abort_reason:
            self._abort_reason = reason
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        if self._transport is not None and self.alive:
            self._abort_reason = self._abort_reason or "client closed"
            self._quiet = True
            self._transport.close()

    def _flush(self) -> None:
        out, self._out = self._out, []
        if not out or self._transport is None or not self.alive:
            return
        self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _check(self) -> None:
        # Measured from the last sign of life, so a silent server is noticed `timeout` seconds after it went
        # quiet (counting replies per check interval could take up to twice as long).
        self._watchdog = None
        if not self._pending:
            return
        quiet = self._loop.time() - self._heard
        if quiet >= self._timeout * 0.999:
            self.abort(f"no reply within {self._timeout:g} s")
        else:
            self._watchdog = self._loop.call_later(self._timeout - quiet, self._check)

    def _wake_writers(self) -> None:
        if self._drained is not None:
            if not self._drained.done():
                self._drained.set_result(None)
            self._drained = None


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def pack(args: tuple[Any, ...]) -> bytes:
    """One command (bytes, str, int or float arguments) in RESP."""
    return hiredis.pack_command(args)  # type: ignore[no-any-return]


def bulks(args: tuple[Any, ...]) -> bytes:
    """Arguments as RESP bulk strings without the array header: pieces of a command to concatenate."""
    packed: bytes = hiredis.pack_command(args)
    return packed[packed.index(b"\n") + 1 :]


def pack_mset(prefix: bytes, pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    """``MSET prefix+k1 v1 prefix+k2 v2 …`` in RESP (what `pack` makes of it, byte for byte), packed by one
    bytes format per pair: about half of `pack`'s cost with the flattened argument tuple it needs (the
    bulk loader sends millions of pairs)."""
    fmt = b"$%d\r\n" + prefix.replace(b"%", b"%%") + b"%b\r\n$%d\r\n%b\r\n"
    extra = len(prefix)
    return b"*%d\r\n$4\r\nMSET\r\n%b" % (2 * len(pairs) + 1,
                                           b"".join([fmt % (len(k) + extra, k, len(v), v) for k, v in pairs]))


def pack_zadd(key: bytes, score: bytes, members: Sequence[bytes]) -> bytes:
    """``ZADD key score m1 score m2 …`` (one score for every member, in the given order) in RESP, as `pack`
    makes it, by one bytes format per member (see `pack_mset`)."""
    fmt = b"$%d\r\n" % len(score) + score.replace(b"%", b"%%") + b"\r\n$%d\r\n%b\r\n"
    return b"*%d\r\n$4\r\nZADD\r\n%b%b" % (2 * len(members) + 2, bulk(key),
                                             b"".join([fmt % (len(m), m) for m in members]))


def bulk(arg: bytes) -> bytes:
    """One bytes argument as a RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(arg), arg)


async def open_connection(target: RedisTarget, *, connect_timeout: float, timeout: float) -> Connection:
    """Connect, log in and select the database; CannotConnect / AuthenticationFailed on failure."""
    loop = asyncio.get_running_loop()
    conn: Connection | None = None
    try:
        async with asyncio.timeout(connect_timeout):
            if target.path is not None:
                _, conn = await loop.create_unix_connection(
                    lambda: Connection(loop, timeout, target.address), target.path
                )
            else:
                _, conn = await loop.create_connection(
                    lambda: Connection(loop, timeout, target.address),
                    target.host,
                    target.port,
                    ssl=target.ssl,
                    server_hostname=target.host if target.ssl else None,
                )
            assert conn is not None
            sock = conn._transport.get_extra_info("socket") if conn._transport else None
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            await _handshake(conn, target)
    except CannotConnect:
        if conn is not None:
            conn.abort("handshake failed", quiet=True)
        raise
    except (OSError, TimeoutError, ConnectionLost, ReplyError) as exc:
        if conn is not None:
            conn.abort("handshake failed", quiet=True)
        if isinstance(exc, TimeoutError):
            raise CannotConnect(f"timed out after {connect_timeout:g} s") from None
        raise CannotConnect(_reason(exc)) from None
    return conn


async def _handshake(conn: Connection, target: RedisTarget) -> None:
    steps: list[tuple[tuple[Any, ...], str]] = []
    if target.password is not None:
        auth: tuple[Any, ...] = ("AUTH", target.password)
        if target.username:
            auth = ("AUTH", target.username, target.password)
        steps.append((auth, "auth"))
    if target.db:
        steps.append((("SELECT", target.db), "select"))
    steps.append((("PING",), "ping"))
    futures = [conn.send(pack(cmd)) for cmd, _ in steps]  # pipelined: one round trip
    results = await asyncio.gather(*futures, return_exceptions=True)
    for (_, what), result in zip(steps, results, strict=True):
        if isinstance(result, ReplyError):
            message = _reason(result)
            if what == "auth" or message.startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
                raise AuthenticationFailed(f"authentication failed: {message}")
            if what == "ping" and message.startswith(("LOADING", "BUSY")):
                continue  # usable soon: commands will get the same error, which callers may retry
            raise CannotConnect(message)
        if isinstance(result, BaseException):
            raise result


class RespClient:
    """Multiplexed connections to one Redis server; see the module docstring for the contract."""

    def __init__(
        self,
        target: RedisTarget,
        *,
        connections: int = 1,
        max_inflight: int = MAX_INFLIGHT,
        connect_timeout: float = CONNECT_TIMEOUT,
        timeout: float = REPLY_TIMEOUT,
    ) -> None:
        self.target = target
        self._conns: list[Connection | None] = [None] * max(1, connections)
        self._connecting: list[asyncio.Future[Connection] | None] = [None] * len(self._conns)
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._max_inflight = max(1, max_inflight)
        self._inflight = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False
        self._evalsha: dict[bytes, bytes] = {}  # sha -> packed "EVALSHA sha 0"

    # `execute` and `evalsha` return `execute_packed`'s coroutine instead of awaiting it in one of their own:
    # one coroutine frame less per command (every metadata operation is a few commands).

    def execute(self, *args: Any) -> Coroutine[Any, Any, Any]:
        """Send one command and return its reply; see the module docstring for the errors."""
        return self.execute_packed(pack(args))

    def evalsha(self, sha: bytes, nargs: int, args: bytes) -> Coroutine[Any, Any, Any]:
        """``EVALSHA sha 0`` followed by `nargs` arguments already packed by `bulks` (no keys declared)."""
        head = self._evalsha.get(sha)
        if head is None:
            head = self._evalsha[sha] = bulks((b"EVALSHA", sha, 0))
        return self.execute_packed(b"".join((b"*%d\r\n" % (nargs + 3), head, args)))

    async def execute_packed(self, command: bytes) -> Any:
        """Send one command already packed by `pack` (or built from `bulks`) and return its reply."""
        if self._inflight >= self._max_inflight or self._waiters:
            await self._wait_turn()
        else:
            self._inflight += 1
        try:
            conns = self._conns
            if len(conns) == 1:  # `_pick` inline for the usual single connection (ADR 0067)
                conn = conns[0]
                if conn is None or not conn.alive:
                    conn = await self._reconnect()
            else:
                conn = self._pick() or await self._reconnect()
            if conn._drained is not None:
                await conn.drained()
            return await conn.send(command)
        finally:
            if self._waiters:
                self._release()
            else:
                self._inflight -= 1  # `_release` with no one waiting, without the call

    def _pick(self) -> Connection | None:
        conns = self._conns
        if len(conns) == 1:
            conn = conns[0]
            return conn if conn is not None and conn.alive else None
        best: Connection | None = None
        for conn in conns:
            if conn is None or not conn.alive:
                return None  # (re)connect that slot first
            if best is None or conn.load < best.load:
                best = conn
        return best

    async def _reconnect(self) -> Connection:
        if self._closed:
            raise ConnectionLost("the client is closed", sent=False)
        slot = next(i for i, c in enumerate(self._conns) if c is None or not c.alive)
        waiting = self._connecting[slot]
        if waiting is None:
            waiting = asyncio.ensure_future(self._connect_slot(slot))
            waiting.add_done_callback(_consume)  # its waiters may all have been cancelled
            self._connecting[slot] = waiting
        return await asyncio.shield(waiting)

    async def _connect_slot(self, slot: int) -> Connection:
        try:
            conn = await open_connection(self.target, connect_timeout=self._connect_timeout, timeout=self._timeout)
            if self._closed:
                conn.close()
                raise ConnectionLost("the client is closed", sent=False)
            self._conns[slot] = conn
            return conn
        finally:
            self._connecting[slot] = None

    async def _wait_turn(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut  # the releasing command hands its slot over: _inflight already counts us
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()
            raise

    def _release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._inflight -= 1

    async def connect(self) -> None:
        """Open every connection now (raises CannotConnect / AuthenticationFailed)."""
        for _ in self._conns:
            if self._pick() is None:
                await self._reconnect()

    async def close(self) -> None:
        self._closed = True
        for conn in self._conns:
            if conn is not None:
                conn.close()
        await asyncio.sleep(0)  # let the transports run connection_lost


"""`VolumeLockStorage`: WsgiDAV's lock-storage interface on the volume's own lock table
(`jfs.app.dav_locks`), so the locks of every `jfs webdav` of a volume are one set (ADR 0012).

Lock roots handed to WsgiDAV are paths of the served tree; they are stored prefixed with the served
subdirectory, so servers of different subdirectories of one volume agree on what is locked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from wsgidav.dav_error import (
    HTTP_LOCKED,
    HTTP_SERVICE_UNAVAILABLE,
    DAVError,
    DAVErrorCondition,
    PRECONDITION_CODE_LockConflict,
)
from wsgidav.lock_man.lock_manager import generate_lock_token, normalize_lock_root, validate_lock

from jfs.app.dav_locks import DavLocks
from jfs.domain import dav_locks as rules
from jfs.domain.dav_locks import Lock, LockConflict
from jfs.ports.kv import KVError
from jfs.sdk import Client

DEFAULT_TIMEOUT = 604800.0
"""Seconds a lock lives when the client asks for none (one week, WsgiDAV's default)."""
MAX_TIMEOUT = 4 * 604800.0
"""The longest lock granted; "Infinite" is clamped to it."""


def _engine_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The lock table out of reach is HTTP 503, as for the files."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KVError as exc:
            raise DAVError(HTTP_SERVICE_UNAVAILABLE, f"metadata engine: {exc}") from None

    wrapped.__doc__ = fn.__doc__
    return wrapped


class VolumeLockStorage:
    """Locks in the metadata engine of the volume `client` serves (WsgiDAV `lock_storage`)."""

    def __init__(self, client: Client, subdir: str = "") -> None:
        self._client = client
        self._table = DavLocks(client.aio.client.kv)
        self._prefix = rules.normalize(subdir) if subdir.strip("/") else ""
        self._request = threading.local()

    # ---- one read of the table per request

    def per_request(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterator[bytes]]:
        """Wrap the WSGI `app` so that a request reads the lock table once, however many resources and
        ancestors WsgiDAV asks about (a PROPFIND asks for every entry's lockdiscovery); a lock granted,
        refreshed or released by the request itself is read afresh. A cheroot worker serves one request
        at a time, so the snapshot is per thread."""

        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
            self._request.active = True
            self._request.locks = None
            try:
                result = app(environ, start_response)
                try:
                    yield from result
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            finally:
                self._request.active = False
                self._request.locks = None

        return wrapped

    def _live(self) -> list[Lock]:
        if not getattr(self._request, "active", False):
            return list(self._client.run(self._table.live()))
        if self._request.locks is None:
            self._request.locks = self._client.run(self._table.live())
        return list(self._request.locks)

    def wants_snapshot(self) -> bool:
        """Whether this thread serves a request whose lock snapshot is not read yet."""
        return getattr(self._request, "active", False) and self._request.locks is None

    async def read_snapshot(self) -> list[Lock]:
        """The live locks, read on the client's loop (for `prime`, inside a caller's own loop trip)."""
        return await self._table.live()

    def prime(self, locks: list[Lock]) -> None:
        """Use `locks` (from `read_snapshot`, in this request) as this request's snapshot."""
        if getattr(self._request, "active", False):
            self._request.locks = locks

    def any_at_or_above(self, locks: list[Lock], ref_url: str) -> bool:
        """Whether one of `locks` (a `read_snapshot`) is rooted at `ref_url` (a resource's URL in the served
        tree, quoted as WsgiDAV's lock roots are) or at one of its ancestors: the locks that can apply to a
        write of a file there."""
        where = self._to_volume(ref_url)
        return any(rules.is_within(where, str(lock["root"])) for lock in locks)

    def _changed(self) -> None:
        self._request.locks = None

    def __repr__(self) -> str:
        return "VolumeLockStorage"

    # ---- paths: served tree <-> volume

    def _to_volume(self, path: str) -> str:
        return rules.normalize(self._prefix + normalize_lock_root(path))

    def _to_served(self, lock: Lock) -> Lock:
        out = dict(lock)
        if isinstance(out.get("owner"), str):
            out["owner"] = out["owner"].encode()  # WsgiDAV hands the owner's XML over as bytes
        root = str(lock["root"])
        out["root"] = rules.normalize(root[len(self._prefix):]) if self._prefix else root
        return out

    def _mine(self, lock: Lock) -> bool:
        return not self._prefix or rules.is_within(str(lock["root"]), self._prefix)

    # ---- WsgiDAV's interface

    def open(self) -> None:
        """Nothing to open: the table lives in the engine."""

    def close(self) -> None:
        """Nothing to close: the client is closed by its owner."""

    @_engine_errors
    def cleanup(self) -> None:
        self._changed()
        self._client.run(self._table.purge_expired())

    @_engine_errors
    def clear(self) -> None:
        self._changed()
        self._client.run(self._table.clear())

    @_engine_errors
    def get(self, token: str) -> Lock | None:
        lock = self._client.run(self._table.get(token))
        return None if lock is None or not self._mine(lock) else self._to_served(lock)

    @_engine_errors
    def create(self, path: str, lock: dict[str, Any]) -> Lock:
        """Grant `lock` on `path` (WsgiDAV has checked for conflicts; the engine checks again, atomically
        with the write, against every server of the volume): HTTP 423 when another lock won."""
        timeout = lock.get("timeout")
        timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        if timeout < 0 or timeout > MAX_TIMEOUT:
            timeout = MAX_TIMEOUT
        lock["root"] = normalize_lock_root(path)
        lock["timeout"] = timeout
        lock["expire"] = time.time() + timeout
        validate_lock(lock)
        lock["token"] = generate_lock_token()
        record = dict(lock, root=self._to_volume(path))
        if isinstance(record.get("owner"), bytes):
            record["owner"] = record["owner"].decode("utf-8", "replace")
        self._changed()
        try:
            self._client.run(self._table.create(record))
        except LockConflict as exc:
            cond = DAVErrorCondition(PRECONDITION_CODE_LockConflict)
            cond.add_href(self._to_served(exc.lock)["root"])
            raise DAVError(HTTP_LOCKED, err_condition=cond) from None
        return lock

    @_engine_errors
    def refresh(self, token: str, *, timeout: float | None) -> Lock:
        timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        if timeout < 0 or timeout > MAX_TIMEOUT:
            timeout = MAX_TIMEOUT
        self._changed()
        lock = self._client.run(self._table.refresh(token, timeout, time.time() + timeout))
        if lock is None:
            raise ValueError(f"no such lock: {token}")
        return self._to_served(lock)

    @_engine_errors
    def delete(self, token: str) -> bool:
        self._changed()
        result: bool = self._client.run(self._table.delete(token))
        return result

    @_engine_errors
    def get_lock_list(self, path: str, *, include_root: bool, include_children: bool,
                      token_only: bool) -> list[Any]:
        """The live locks rooted at `path` (include_root) and/or below it (include_children)."""
        where = self._to_volume(path)
        found = [
            lock for lock in self._live()
            if rules.selected(lock, where, include_root=include_root, include_children=include_children)
        ]
        if token_only:
            return [lock["token"] for lock in found]
        return [self._to_served(lock) for lock in found]

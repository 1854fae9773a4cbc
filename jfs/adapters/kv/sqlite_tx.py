"""The SQLite adapter's transaction (`SqliteTx`): the reads and writes a body makes on one connection,
with the inline limits (`INLINE_ROWS`) that send a heavy body to the worker threads (`_Heavy`), and the SQL
helpers it and `jfs.adapters.kv.sqlite.SqliteKV` share. See `jfs.adapters.kv.sqlite` for the execution
model (inline bodies, workers, checkpointer)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any

from jfs.domain.records import decode_i64, encode_i64
from jfs.ports.kv import ConflictError, EngineError, KeyShape, KVError

from .base import TxWrites, paged_scan

INLINE_ROWS = 1024
"""Most rows an inline read body may ask for at once (see `jfs.adapters.kv.sqlite`)."""
_IN_CHUNK = 500  # keys per `IN (…)` list: far below SQLITE_MAX_VARIABLE_NUMBER

SHAPE_INDEXES = {KeyShape(14, 9, 0x43): "kv_chunk_keys"}
"""Partial indexes of the keys of one shape (ADR 0057), created on open when missing: the chunk records
``A<ino:8>C<indx:4>`` (`jfs.domain.keys.chunk`), which gc, fsck and compaction stream out of the inode key
space — there among every attribute and entry (2M keys for 1M empty files, no chunk at all). SQLite keeps
them up to date for every writer of the file, older jfs versions included; an upsert that changes a
value only leaves them alone (the index holds the key alone)."""


def _shape_where(shape: KeyShape) -> str:
    """The SQL condition of `shape` (literals, as a partial index's WHERE must be matched)."""
    return f"length(k) = {shape.length} AND substr(k, {shape.at + 1}, 1) = x'{shape.byte:02x}'"


def _shape_index_sql(shape: KeyShape, name: str) -> str:
    return f"CREATE INDEX IF NOT EXISTS {name} ON kv (k) WHERE {_shape_where(shape)}"

def _map_error(exc: sqlite3.Error, path: str) -> KVError:
    """Busy/locked after the busy timeout is a retryable conflict; everything else is an engine error."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return ConflictError(f"SQLite database {path} is busy: {exc}")
    return EngineError(f"SQLite error on {path}: {exc}")


class _Heavy(BaseException):
    """An inline read body asked for more than `INLINE_ROWS` rows (or a lock): re-run it on a reader.
    A BaseException so that a body's ``except Exception`` cannot swallow it."""


class SqliteTx(TxWrites):
    """One transaction on a worker's connection; valid only while its body runs in that worker."""

    __slots__ = ("_conn", "_readonly", "_path", "_adds", "_inline", "_writes", "_deleted")

    def __init__(self, conn: sqlite3.Connection, readonly: bool, path: str, inline: bool = False) -> None:
        self._conn = conn
        self._readonly = readonly
        self._path = path
        self._adds: dict[bytes, int] = {}
        self._inline = inline
        self._writes = 0
        self._deleted: set[bytes] = set()
        """Keys this transaction deleted and has not written since: deleting one again is a no-op (the
        engine's blind deletes of a directory's JuiceFS statistics record come once per change of it)."""

    def _q(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            if self._inline:
                raise _Heavy from exc  # e.g. locked: the reader pool waits for it instead of the loop
            raise _map_error(exc, self._path) from exc

    def _exec(self, sql: str, args: Sequence[Any]) -> None:
        self._writable("write")
        if self._inline:
            self._writes += 1
            if self._writes > INLINE_ROWS:
                raise _Heavy
        try:
            self._conn.execute(sql, args)
        except sqlite3.Error as exc:
            if self._inline:
                raise _Heavy from exc
            raise _map_error(exc, self._path) from exc

    async def get(self, key: bytes) -> bytes | None:
        rows = self._q("SELECT v FROM kv WHERE k = ?", (key,))
        return rows[0][0] if rows else None

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if self._inline and len(keys) > INLINE_ROWS:
            raise _Heavy
        found: dict[bytes, bytes] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), _IN_CHUNK):
            part = unique[i : i + _IN_CHUNK]
            marks = ",".join("?" * len(part))
            found.update(self._q(f"SELECT k, v FROM kv WHERE k IN ({marks})", part))
        return [found.get(k) for k in keys]

    async def scan(
        self, begin: bytes, end: bytes, *, limit: int | None = None, keys_only: bool = False
    ) -> list[tuple[bytes, bytes]]:
        n = -1 if limit is None else limit
        if self._inline and not 0 <= n <= INLINE_ROWS:
            # Inline, read at most INLINE_ROWS + 1 rows: a longer range goes to a worker.
            n = INLINE_ROWS + 1
            rows = self._q(
                f"SELECT k{'' if keys_only else ', v'} FROM kv WHERE k >= ? AND k < ? ORDER BY k LIMIT ?",
                (begin, end, n),
            )
            if len(rows) == n:
                raise _Heavy
            return [(r[0], b"") for r in rows] if keys_only else [(r[0], r[1]) for r in rows]
        if keys_only:
            rows = self._q("SELECT k FROM kv WHERE k >= ? AND k < ? ORDER BY k LIMIT ?", (begin, end, n))
            return [(r[0], b"") for r in rows]
        return [
            (r[0], r[1])
            for r in self._q("SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k LIMIT ?", (begin, end, n))
        ]

    async def _page(self, cursor: bytes, end: bytes, n: int) -> list[tuple[bytes, bytes]]:
        if self._inline:
            raise _Heavy
        return self._q("SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k LIMIT ?", (cursor, end, n))

    def scan_shaped_iter(
        self, begin: bytes, end: bytes, shape: KeyShape, *, batch: int = 1024
    ) -> AsyncIterator[tuple[bytes, bytes]]:
        """`ShapeScanningTx`: the pairs of [begin, end) whose key fits `shape`, filtered by SQLite — through
        the partial index of `shape` when `SHAPE_INDEXES` has one (only those rows are visited), else by
        a range scan that leaves the other rows in SQLite's C code."""
        index = SHAPE_INDEXES.get(shape)
        sql = (
            f"SELECT k, v FROM kv {f'INDEXED BY {index}' if index else ''} WHERE {_shape_where(shape)}"
            " AND k >= ? AND k < ? ORDER BY k LIMIT ?"
        )

        async def page(cursor: bytes, stop: bytes, n: int) -> list[tuple[bytes, bytes]]:
            if self._inline:
                raise _Heavy
            return self._q(sql, (cursor, stop, n))

        return paged_scan(page, begin, end, batch)

    async def exists(self, begin: bytes, end: bytes) -> bool:
        return bool(self._q("SELECT 1 FROM kv WHERE k >= ? AND k < ? LIMIT 1", (begin, end)))

    def put(self, key: bytes, value: bytes) -> None:
        self._exec(
            "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", (key, value)
        )
        if self._deleted:
            self._deleted.discard(key)

    def delete(self, key: bytes) -> None:
        if key in self._deleted:
            return
        self._exec("DELETE FROM kv WHERE k = ?", (key,))
        self._deleted.add(key)

    def add(self, key: bytes, delta: int) -> None:
        self._writable("add")
        self._adds[key] = self._adds.get(key, 0) + delta

    def apply_adds(self) -> None:
        """Apply the buffered blind adds (called by the writer after the body returned): one statement for up
        to `_ADDS_PER_STATEMENT` counters (a create adds to two), the sums made by SQLite (`_i64_add`)
        instead of a read and a write from here."""
        items = list(self._adds.items())
        for i in range(0, len(items), _ADDS_PER_STATEMENT):
            part = items[i : i + _ADDS_PER_STATEMENT]
            args: list[bytes] = []
            for key, delta in part:
                args += (key, encode_i64(delta))
            self._writes += len(part) - 1  # rows, for the inline limit: `_exec` counts the statement as one
            self._exec(_ADD_SQL.get(len(part)) or _add_sql(len(part)), args)
        if self._deleted:
            self._deleted.difference_update(self._adds)


def _add_sql(n: int) -> str:
    """The statement adding to `n` counters (``jfs_i64_add`` on conflict)."""
    rows = ", ".join(["(?, ?)"] * n)
    return f"INSERT INTO kv (k, v) VALUES {rows} ON CONFLICT (k) DO UPDATE SET v = jfs_i64_add(v, excluded.v)"


_ADDS_PER_STATEMENT = 256  # 512 parameters: far below SQLite's limit (32,766; 999 before 3.32)
_ADD_SQL = {n: _add_sql(n) for n in range(1, 5)}


def _i64_add(value: bytes | None, delta: bytes) -> bytes:
    """SQL ``jfs_i64_add(v, delta)``: counter `v` plus `delta`, both in the port's counter encoding (8-byte
    little-endian signed; a missing or longer value read as `decode_i64` reads it)."""
    return encode_i64(decode_i64(value) + decode_i64(delta))

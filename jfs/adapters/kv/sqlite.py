"""`sqlite3://` — a local KV in one SQLite file, for single-host volumes (several mounts may share the file).

Storage: one table ``kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID`` in WAL mode. BLOB comparison is memcmp,
so SQL order is the port's unsigned byte order.

Execution model (see docs/adr/0003-sqlite-adapter.md for why and for measurements):

* A transaction body is driven *inside a worker thread* in one hop: every `SqliteTx` method completes
  synchronously, so the body coroutine runs to completion under ``coro.send(None)``. A body that awaits
  anything else (a sleep, a lock, I/O) fails with EngineError "transaction body awaited something outside
  its transaction". Bodies run with a copy of the caller's contextvars.
* Read-write bodies go to ONE writer thread that group-commits: it drains every queued body, opens
  ``BEGIN IMMEDIATE``, runs each body inside its own SAVEPOINT (a body that raises is rolled back to its
  savepoint alone and its exception is delivered unchanged), and ends with a single COMMIT. Writes execute
  immediately inside the writer's transaction, so read-your-writes (scans included) is natural; `add`s are
  applied when the body returns, so they are invisible to the body itself, as the port requires.
* Every body first runs *inline*, on the caller's thread, on a connection of that thread (no busy wait):
  a read-only one inside a deferred ``BEGIN … COMMIT``, a read-write one inside ``BEGIN IMMEDIATE …
  COMMIT``. A metadata operation costs tens of microseconds there, less than the two thread hops (and the
  GIL hand-overs) of a worker. A body that asks for more than `INLINE_ROWS` rows or writes (a long scan,
  `scan_iter`, a big `get_many`, a big delete) or meets a locked database (another writer, in this process
  or another) is rolled back and abandoned — bodies are re-runnable by contract — and runs again on the
  worker threads below, which wait for locks. Transactions of one kind complete in the order they were
  issued, as they did with the workers alone (callers adopt what a transaction returns — a newer result
  overtaken by an older one would leave them with stale state). While write bodies wait on the writer, new
  ones join its queue (it commits them as one batch, which a database locked by another process needs);
  while read bodies wait on the readers, a new one waits for those issued before it and then runs inline,
  so that a busy phase cannot stay on the readers (ADR 0097: joining their queue kept every read of a
  phase off the loop for as long as new ones kept arriving). An inline
  commit may run SQLite's automatic WAL checkpoint: a few milliseconds on the caller's thread every
  thousand pages written — unless the background checkpointer runs (the default, ADR 0027: a thread that
  runs PASSIVE checkpoints every `CHECKPOINT_EVERY` write transactions; the automatic one only past
  `BACKSTOP_PAGES`; ``JFS_SQLITE_BG_CHECKPOINT=0`` turns it off). Inline execution is on by default
  (ADR 0009, ADR 0023); ``JFS_SQLITE_INLINE=0``
  turns it off, ``JFS_SQLITE_INLINE_WRITES=0`` keeps it for reads only. (It was off for a while: the SIGKILL
  crash test seemed to lose an acknowledged create with it on — a bug of the test, which let its writer
  write into the bare mount point; with the test fixed, 10 of 10 runs passed with it on.)
* Read-only bodies on the workers go to a small pool of reader connections; each batch of bodies runs
  inside one ``BEGIN … COMMIT`` so it reads one WAL snapshot.
* ``BEGIN IMMEDIATE`` plus a long busy timeout serialize writers across processes; SQLITE_BUSY after the
  timeout becomes ConflictError (retried by `retrying`). Writers never conflict with each other otherwise,
  which is what ``serializes_writers = True`` advertises to the contract suite.

URL: ``sqlite3://relative/path.db``, ``sqlite3:///absolute/path.db``; query options ``synchronous=normal|full``
(default ``normal``: survives a process crash, an OS crash/power loss may lose the last commits) and
``busy_timeout=<ms>`` (default 30000).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import itertools
import json
import os
import queue
import sqlite3
import threading
import types
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from jfs.ports.kv import DEFAULT_MAX_RETRIES, ConflictError, EngineError, EngineUnavailable, KVError

from .base import RetryingKV, retrying
from .registry import BadMetaURL
from .sqlite_tx import SHAPE_INDEXES, SqliteTx, _Heavy, _i64_add, _map_error, _shape_index_sql
from .sqlite_url import parse_sqlite_url

T = TypeVar("T")
log = structlog.get_logger("jfs.kv")

READERS = 3
MAX_WRITE_BATCH = 512
MAX_READ_BATCH = 32

SCAN_CACHE_KIB = 4096
"""Page cache of the reader and checkpointer threads' connections (at most `cache_kib`). They serve long
scans, which read each page once (the OS page cache keeps the file): a 32 MiB cache on each would only
make a process's memory grow with the database (``jfs dump`` of 100k files: 25 MiB more with them)."""


def cache_kib() -> int:
    """Page cache per connection in KiB: ``$JFS_SQLITE_CACHE_KIB``, default 32768 (32 MiB; one-pass tools
    such as dump, load, gc and fsck set a small one, `jfs.compose.one_pass_engine_caches`)."""
    try:
        return max(64, int(os.environ.get("JFS_SQLITE_CACHE_KIB", "32768")))
    except ValueError:
        return 32768

def mmap_bytes() -> int:
    """Memory-mapped reads for the inline connections (a mount's point reads): ``$JFS_SQLITE_MMAP_MIB``
    MiB of the file, default 1024, 0 = off (one-pass tools turn it off, `jfs.compose.one_pass_engine_caches`).

    Why (ADR 0057): a page SQLite does not hold in its cache is then read by a memory access instead of a
    ``pread`` copy, and a page of a file dropped from the OS page cache comes in with the kernel's read-around
    (cold random lookups in a 1M-file database: 52-58 → 14-18 µs of CPU per dentry + attribute). Writes
    still go through the WAL; SQLite keeps the mapping coherent across connections and processes. The
    mapped pages the process touched count in its RSS (shared, reclaimable page cache, not heap)."""
    try:
        return max(0, int(os.environ.get("JFS_SQLITE_MMAP_MIB", "1024"))) << 20
    except ValueError:
        return 1 << 30


CHECKPOINT_EVERY = 128
"""Write transactions between two WAL checkpoints of the background checkpointer (a few pages each)."""
BACKSTOP_PAGES = 10_000
"""`wal_autocheckpoint` of this process's connections while the checkpointer runs: a commit checkpoints
on its own thread only if the WAL grew this long (the checkpointer could not keep up)."""

_SCHEMA = "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"




_STOP = object()


def _drive(awaitable: Awaitable[T]) -> T:
    """Run a coroutine whose awaits all complete synchronously; refuse one that really suspends."""

    async def wrap() -> T:
        return await awaitable

    # A body is a coroutine: driven as it is (a wrapper only for other awaitables).
    coro = awaitable if type(awaitable) is types.CoroutineType else wrap()
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise EngineError("transaction body awaited something outside its transaction")


class _Job:
    """A unit of work for a worker: `run(conn)` executed in the worker thread, result sent to `future`."""

    __slots__ = ("run", "future", "loop", "context")

    def __init__(
        self,
        run: Callable[[sqlite3.Connection], Any],
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.run = run
        self.future = future
        self.loop = loop
        self.context = contextvars.copy_context()


Outcome = tuple[_Job, bool, Any]  # (job, ok, result or exception)


def _resolve(outcomes: list[Outcome]) -> None:
    for job, ok, value in outcomes:
        if job.future.done():  # the caller was cancelled
            continue
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)


def _deliver(outcomes: list[Outcome]) -> None:
    """Hand outcomes back to their event loops: one thread-safe call per loop per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:  # loop closed: nobody is waiting any more
            pass


def _drain(q: queue.Queue[Any], first: Any, limit: int) -> tuple[list[_Job], bool]:
    """`first` plus whatever else is queued (up to `limit`); also whether a stop request was seen."""
    if first is _STOP:
        return [], True
    batch = [first]
    while len(batch) < limit:
        try:
            item = q.get_nowait()
        except queue.Empty:
            break
        if item is _STOP:
            return batch, True
        batch.append(item)
    return batch, False


class SqliteKV(RetryingKV):
    """See the module docstring."""

    serializes_writers = True
    """Writers never conflict with each other (they are serialized); conflicts only come from lock waits."""

    def __init__(self, url: str, path: str, synchronous: str, busy_timeout_ms: int) -> None:
        self.url = url
        self.path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._writes: queue.Queue[Any] = queue.Queue()
        self._reads: queue.Queue[Any] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._inline: dict[int, sqlite3.Connection] = {}  # id of a running loop -> its inline connection
        # Inline execution is on unless JFS_SQLITE_INLINE=0 (JFS_SQLITE_INLINE_WRITES=0: reads only).
        self._inline_on = os.environ.get("JFS_SQLITE_INLINE", "1") != "0"
        self._inline_writes = self._inline_on and os.environ.get("JFS_SQLITE_INLINE_WRITES", "1") != "0"
        self._queued = {True: 0, False: 0}  # bodies on the worker threads now: writers, readers
        # The read bodies on the reader threads by issue number -> a future of their loop, done when they
        # are: a later read waits for those issued before it, then runs inline (see `_run`).
        self._reads_on_workers: dict[int, asyncio.Future[None]] = {}
        self._issued = itertools.count()
        # WAL checkpoints on a thread of their own unless JFS_SQLITE_BG_CHECKPOINT=0 (ADR 0027).
        self._bg_checkpoint = os.environ.get("JFS_SQLITE_BG_CHECKPOINT", "1") != "0"
        self._commits = 0  # write transactions since the checkpointer was last woken
        self._checkpoint_due = threading.Event()
        self.checkpoints = 0
        """Checkpoints run by the background checkpointer."""

    # ---- connections -------------------------------------------------------------------------------------

    def _connect(self, writer: bool) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None, cached_statements=256,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            if writer:
                self._check_schema(conn)  # before WAL mode: a foreign database is left as it was
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise EngineUnavailable(
                        f"cannot open SQLite database {self.path}: WAL mode refused ({mode})"
                    )
                conn.execute(_SCHEMA)
                for shape, name in SHAPE_INDEXES.items():
                    conn.execute(_shape_index_sql(shape, name))  # once per database: a scan of the table
            else:
                conn.execute("PRAGMA query_only = ON")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            if self._bg_checkpoint:
                conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
            conn.execute(f"PRAGMA cache_size = -{cache_kib()}")
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.create_function("jfs_i64_add", 2, _i64_add, deterministic=True)
        except sqlite3.Error as exc:
            conn.close()
            raise self._unavailable(exc) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        """EngineUnavailable unless the database is empty or holds only jfs's ``kv`` table; a JuiceFS
        volume (JuiceFS's own SQL schema: jfs_setting, jfs_node, …) is named as such, with the way over."""
        tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        if all(t == "kv" for t in tables):
            return
        if "jfs_setting" in tables:
            raise EngineUnavailable(
                f"{self.path} holds {_juicefs_volume(conn)} in JuiceFS's SQL schema, which jfs does not read; "
                f"copy it into a jfs engine with: juicefs dump {self.url} | jfs load META-URL -"
            )
        shown = ", ".join(tables[:5]) + (f", … ({len(tables)} tables)" if len(tables) > 5 else "")
        raise EngineUnavailable(
            f"cannot open SQLite database {self.path}: it is not a jfs metadata database (tables: {shown})"
        )

    def _unavailable(self, exc: sqlite3.Error) -> EngineUnavailable:
        where = os.path.dirname(os.path.abspath(self.path))
        reason = str(exc)
        if not os.path.isdir(where):
            reason = f"directory {where} does not exist"
        elif os.path.exists(self.path) and not os.access(self.path, os.R_OK | os.W_OK):
            reason = f"permission denied ({exc})"
        elif not os.path.exists(self.path) and not os.access(where, os.W_OK):
            reason = f"permission denied: cannot create a file in {where}"
        return EngineUnavailable(f"cannot open SQLite database {self.path}: {reason}")

    # ---- worker threads ----------------------------------------------------------------------------------

    def _spawn(
        self, name: str, main: Callable[[sqlite3.Connection], None], writer: bool
    ) -> concurrent.futures.Future[None]:
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def report(exc: BaseException | None) -> None:
            try:
                if exc is None:
                    ready.set_result(None)
                else:
                    ready.set_exception(exc)
            except concurrent.futures.InvalidStateError:
                pass  # open_sqlite was cancelled (Ctrl-C) meanwhile: its clean-up stops this thread

        def thread_main() -> None:
            try:
                conn = self._connect(writer)
                if main != self._writer_main:
                    conn.execute(f"PRAGMA cache_size = -{min(SCAN_CACHE_KIB, cache_kib())}")
            except BaseException as exc:  # reported to open_sqlite
                report(exc)
                return
            report(None)
            try:
                main(conn)
            finally:
                conn.close()

        thread = threading.Thread(target=thread_main, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()
        return ready

    async def _start(self) -> None:
        try:
            await asyncio.wrap_future(self._spawn("jfs-sqlite-writer", self._writer_main, True))
            if self._bg_checkpoint:
                await asyncio.wrap_future(self._spawn("jfs-sqlite-checkpointer", self._checkpointer_main, True))
            await asyncio.gather(
                *(
                    asyncio.wrap_future(self._spawn(f"jfs-sqlite-reader-{i}", self._reader_main, False))
                    for i in range(READERS)
                )
            )
        except BaseException:
            await self.close()
            raise

    def _fail_pending(self, q: queue.Queue[Any]) -> None:
        leftovers: list[Outcome] = []
        while True:
            try:
                item = q.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                leftovers.append((item, False, EngineError(f"SQLite KV {self.path} is closed")))
        _deliver(leftovers)

    def _serve(
        self, q: queue.Queue[Any], limit: int, run_batch: Callable[[list[_Job]], list[Outcome]]
    ) -> None:
        """A worker's loop: take up to `limit` jobs of `q` at a time, run them, deliver their outcomes;
        on the stop request, fail what is still queued."""
        stop = False
        while not stop:
            batch, stop = _drain(q, q.get(), limit)
            if batch:
                _deliver(run_batch(batch))
        self._fail_pending(q)

    def _writer_main(self, conn: sqlite3.Connection) -> None:
        def run_batch(batch: list[_Job]) -> list[Outcome]:
            try:
                return self._write_batch(conn, batch)
            except BaseException as exc:  # keep the writer alive whatever happened
                log.error("sqlite_writer_failed", path=self.path, error=repr(exc))
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                return [
                    (job, False, EngineError(f"SQLite writer failed on {self.path}: {exc}")) for job in batch
                ]

        self._serve(self._writes, MAX_WRITE_BATCH, run_batch)

    def _write_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[Outcome]:
        """Run every job of `batch` in one IMMEDIATE transaction, each inside its own savepoint."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(job, False, _map_error(exc, self.path)) for job in batch]
        outcomes: list[Outcome] = []
        aborted: BaseException | None = None
        for job in batch:
            if job.future.cancelled():
                continue
            if aborted is not None:
                outcomes.append(
                    (job, False, ConflictError(f"group commit aborted by an engine error: {aborted}"))
                )
                continue
            conn.execute("SAVEPOINT body")
            try:
                result = job.context.run(job.run, conn)
            except BaseException as exc:  # delivered to the caller unchanged
                outcomes.append((job, False, exc))
                try:
                    conn.execute("ROLLBACK TO body")
                    conn.execute("RELEASE body")
                except sqlite3.Error as rb_exc:  # SQLite already rolled the whole transaction back
                    aborted = rb_exc
            else:
                conn.execute("RELEASE body")
                outcomes.append((job, True, result))
        if aborted is not None or not conn.in_transaction:
            err = ConflictError(f"group commit aborted by an engine error: {aborted}")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(job, False, err if ok else value) for job, ok, value in outcomes]
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            mapped = _map_error(exc, self.path)
            return [(job, False, mapped if ok else value) for job, ok, value in outcomes]
        self._committed(len(outcomes))
        return outcomes

    def _committed(self, n: int = 1) -> None:
        """`n` write transactions were committed: wake the checkpointer every CHECKPOINT_EVERY of them."""
        self._commits += n
        if self._commits >= CHECKPOINT_EVERY:
            self._commits = 0
            self._checkpoint_due.set()

    def _checkpointer_main(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL into the database when woken (PASSIVE: never waits for, nor blocks, readers and
        writers). Commits on the loop's thread thus only append to the WAL: SQLite's automatic checkpoint
        ran there, with its fsyncs, every thousand pages — most of a small file's commit time."""
        while True:
            self._checkpoint_due.wait()
            self._checkpoint_due.clear()
            if self._closed:
                return
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.checkpoints += 1
            except sqlite3.Error as exc:  # the backstop autocheckpoint still bounds the WAL
                log.warning("sqlite_checkpoint_failed", path=self.path, error=str(exc))

    def _reader_main(self, conn: sqlite3.Connection) -> None:
        def run_batch(batch: list[_Job]) -> list[Outcome]:
            outcomes: list[Outcome] = []
            try:
                conn.execute("BEGIN")
                for job in batch:
                    if job.future.cancelled():
                        continue
                    try:
                        outcomes.append((job, True, job.context.run(job.run, conn)))
                    except BaseException as exc:
                        outcomes.append((job, False, exc))
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                mapped = _map_error(exc, self.path)
                done = {id(o[0]) for o in outcomes}
                outcomes += [(job, False, mapped) for job in batch if id(job) not in done]
            return outcomes

        self._serve(self._reads, MAX_READ_BATCH, run_batch)
        self._reads.put(_STOP)  # pass the stop request on to the next reader

    # ---- the port ----------------------------------------------------------------------------------------

    async def _submit(self, q: queue.Queue[Any], run: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise EngineError(f"SQLite KV {self.path} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        q.put(_Job(run, future, loop))
        return await future

    def _body_runner(
        self, body: Callable[[Any], Awaitable[T]], readonly: bool
    ) -> Callable[[sqlite3.Connection], T]:
        def run(conn: sqlite3.Connection) -> T:
            tx = SqliteTx(conn, readonly, self.path)
            result = _drive(body(tx))
            if not readonly:
                tx.apply_adds()
            return result

        return run

    async def _run(self, body: Callable[[Any], Awaitable[T]], readonly: bool, max_retries: int) -> T:
        """Run `body` inline on the event loop's thread when allowed and light, else on the workers."""
        writer = not readonly
        inline = self._inline_writes if writer else self._inline_on
        seq = next(self._issued) if readonly else -1
        if inline and readonly and self._reads_on_workers:
            await self._after_earlier_reads(seq)
        if inline and not self._closed and not (writer and self._queued[True]):
            conn = self._inline_connection()
            if conn is not None:
                try:
                    if writer:
                        return self._write_inline(conn, body)
                    return self._read_inline(conn, body)
                except (_Heavy, ConflictError):  # a body's own ConflictError: retried with back-off below
                    pass
        run = self._body_runner(body, readonly)
        q = self._writes if writer else self._reads

        def job() -> Awaitable[T]:
            return retrying(lambda: self._submit(q, run), max_retries, body)

        if writer:
            return await self._queue(True, job)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reads_on_workers[seq] = done
        try:
            return await self._queue(False, job)
        finally:
            del self._reads_on_workers[seq]
            done.set_result(None)

    async def _after_earlier_reads(self, seq: int) -> None:
        """Wait until no read body issued before `seq` on this loop is still on the reader threads.

        Transactions complete in the order they were issued (callers adopt what a transaction returns: a
        newer result overtaken by an older one would leave them with stale state), so a read issued while an
        earlier one waits on the readers must not finish first. It waits for those earlier ones only and then
        runs inline: joining the readers' queue instead kept every later read of a busy phase off the loop
        for as long as new ones kept arriving (ADR 0097). Write bodies still join the writer's queue while
        it holds any: there they commit as one batch, which a database locked by another process needs."""
        loop = asyncio.get_running_loop()
        while True:
            earlier = [f for s, f in list(self._reads_on_workers.items()) if s < seq and f.get_loop() is loop]
            if not earlier:
                return
            await asyncio.wait(earlier)

    async def _queue(self, writer: bool, job: Callable[[], Awaitable[T]]) -> T:
        """Run `job` on the workers, counted in `_queued`: while a write is counted, new writes do not run
        inline (they join the writer's queue, see `_run`); reads are ordered by `_reads_on_workers`."""
        self._queued[writer] += 1
        try:
            return await job()
        finally:
            self._queued[writer] -= 1

    def _inline_connection(self) -> sqlite3.Connection | None:
        """The running event loop's inline connection (opened on first use), for its read and its write
        bodies alike; None if it cannot be opened.

        One per loop, not per thread: the SDK's loop is run by whichever thread calls (ADR 0058), one at a
        time, so one connection serves them all in turn (one per thread would open a connection per calling
        thread and drop each one's page cache whenever another thread's connection commits, as below).
        Bodies run inline only inside a step of the loop, to their end: never two at once on one loop.

        One connection, not one per kind (ADR 0057): SQLite drops a connection's whole page cache when it
        begins a transaction after *another* connection changed the database, so a read connection beside
        the thread's write connection re-read every B-tree page from the root after each of the thread's own
        commits (a mount's lookup after a create or rename: ~9 ``pread``s, 2× the CPU of the reads at 1M
        files). A loop runs one body at a time to its end (`_drive`), so the two kinds never overlap on it;
        a read body cannot write (`SqliteTx` refuses). Changes by other connections and processes still
        reset the cache: what is read is always the database's latest committed state."""
        key = id(asyncio.get_running_loop())  # reused only once that loop is gone: then by one loop again
        conn = self._inline.get(key)
        if conn is not None:
            return conn
        try:
            conn = self._connect(True)
            conn.execute("PRAGMA busy_timeout = 0")  # never wait on the caller's thread: fall back instead
            conn.execute(f"PRAGMA mmap_size = {mmap_bytes()}")
        except (KVError, sqlite3.Error):
            return None
        self._inline[key] = conn
        return conn

    def _write_inline(self, conn: sqlite3.Connection, body: Callable[[Any], Awaitable[T]]) -> T:
        try:
            conn.execute("BEGIN IMMEDIATE")  # SQLITE_BUSY at once (no wait) while another writer holds it
        except sqlite3.Error:
            raise _Heavy from None
        try:
            tx = SqliteTx(conn, False, self.path, inline=True)
            result = _drive(body(tx))
            tx.apply_adds()
            conn.execute("COMMIT")
            self._committed()
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _Heavy from exc  # nothing was committed: the writer thread will try (and report)
            raise
        return result

    def _read_inline(self, conn: sqlite3.Connection, body: Callable[[Any], Awaitable[T]]) -> T:
        try:
            conn.execute("BEGIN")
        except sqlite3.Error:
            raise _Heavy from None
        try:
            return _drive(body(SqliteTx(conn, True, self.path, inline=True)))
        finally:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    async def reset(self) -> None:
        def wipe(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM kv")

        await retrying(lambda: self._submit(self._writes, wipe), DEFAULT_MAX_RETRIES, "reset")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writes.put(_STOP)
        self._reads.put(_STOP)
        self._checkpoint_due.set()
        conns, self._inline = self._inline, {}
        for conn in conns.values():
            conn.close()
        threads, self._threads = self._threads, []
        await asyncio.gather(*(asyncio.to_thread(t.join) for t in threads))


def _juicefs_volume(conn: sqlite3.Connection) -> str:
    """``JuiceFS volume 'NAME'`` from JuiceFS's ``jfs_setting`` table (``a JuiceFS volume`` if unreadable)."""
    try:
        row = conn.execute("SELECT value FROM jfs_setting WHERE name = 'format'").fetchone()
        name = json.loads(row[0]).get("Name") if row else None
    except (sqlite3.Error, ValueError, TypeError, AttributeError):
        name = None
    return f"JuiceFS volume '{name}'" if isinstance(name, str) and name else "a JuiceFS volume"


async def open_sqlite(url: str) -> SqliteKV:
    """Open (creating if needed) the SQLite file named by `url`.

    Raises EngineUnavailable (one line naming the path) when the directory is missing, the file is not a
    SQLite/jfs database or access is denied; ValueError (BadMetaURL) for a malformed URL.
    """
    try:
        path, synchronous, busy = parse_sqlite_url(url)
    except ValueError as exc:
        raise BadMetaURL(str(exc)) from None
    kv = SqliteKV(url, path, synchronous, busy)
    await kv._start()
    log.debug("sqlite_opened", path=path, synchronous=synchronous)
    return kv

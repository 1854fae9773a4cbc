"""Light per-layer instrumentation of one client: metadata transactions, object requests, block caches.

Counters only — a `Meter` per kind of call holding its count, total seconds and bytes — kept by thin
wrappers around the two driven ports: `TimedKV` (every `txn` / `read` of the metadata engine goes through
``Meta.kv``) and `TimedStore` (every request the data path sends to the object store). Each call costs one
``time.perf_counter`` pair and a few integer additions; nothing is allocated per call.

`layer_gauges` turns them, with the block-cache hit/miss counters and the process's CPU and memory, into
the Prometheus-style ``name{label} value`` pairs the mount serves in ``.stats`` (`jfs.app.internal.Stats`),
named like JuiceFS's (``juicefs_…`` → ``jfs_…``). `jfs bench` reads them before and after a run.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from jfs.ports.kv import DEFAULT_MAX_RETRIES, KV, RESTARTS, Tx
from jfs.ports.objects import ObjectInfo, ObjectStore

T = TypeVar("T")
perf_counter = time.perf_counter


class Meter:
    """Count, total seconds, bytes and failures of one kind of call."""

    __slots__ = ("count", "seconds", "bytes", "errors")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.bytes = 0
        self.errors = 0

    def to_dict(self) -> dict[str, float]:
        return {"count": self.count, "seconds": self.seconds, "bytes": self.bytes, "errors": self.errors}

    async def measure(self, call: Awaitable[T], size: Callable[[T], int] | None = None) -> T:
        """Await `call`, counting it, its time, its failure and (with `size`, on success) its bytes."""
        start = perf_counter()
        try:
            result = await call
            if size is not None:
                self.bytes += size(result)
            return result
        except BaseException:
            self.errors += 1
            raise
        finally:
            self.count += 1
            self.seconds += perf_counter() - start


class TimedKV:
    """A KV whose `txn` and `read` calls are counted and timed; everything else goes to the wrapped engine.

    The time of a call includes the engine's conflict retries (one call = one metadata operation).
    """

    def __init__(self, inner: KV) -> None:
        self.inner = inner
        self.txns = Meter()
        self.reads = Meter()

    @classmethod
    def wrap(cls, kv: KV) -> Any:
        """`kv` timed (unchanged when it already is)."""
        return kv if isinstance(kv, TimedKV) else cls(kv)

    def __getattr__(self, name: str) -> Any:  # url, reset, close, adapter-specific attributes
        return getattr(self.inner, name)

    async def txn(self, body: Callable[[Tx], Awaitable[T]], *, max_retries: int = DEFAULT_MAX_RETRIES) -> T:
        return await self.txns.measure(self.inner.txn(body, max_retries=max_retries))

    async def read(self, body: Callable[[Tx], Awaitable[T]], *, max_retries: int = DEFAULT_MAX_RETRIES) -> T:
        return await self.reads.measure(self.inner.read(body, max_retries=max_retries))


class TimedStore:
    """An ObjectStore whose requests (PUT, GET, HEAD, DELETE; not LIST) are counted, timed and sized."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.meters = {"PUT": Meter(), "GET": Meter(), "HEAD": Meter(), "DELETE": Meter()}
        self._put, self._get = self.meters["PUT"], self.meters["GET"]
        self._head, self._delete = self.meters["HEAD"], self.meters["DELETE"]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create_bucket(self) -> None:
        await self.inner.create_bucket()

    async def put(self, key: str, data: bytes | memoryview) -> None:
        await self._put.measure(self.inner.put(key, data), lambda _: len(data))

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        return await self._get.measure(self.inner.get(key, off, limit), len)

    async def head(self, key: str) -> ObjectInfo:
        return await self._head.measure(self.inner.head(key))

    async def delete(self, key: str) -> None:
        await self._delete.measure(self.inner.delete(key))

    def list(self, prefix: str = "", start_after: str = "", limit: int | None = None) -> AsyncIterator[ObjectInfo]:
        return self.inner.list(prefix, start_after, limit)

    async def close(self) -> None:
        await self.inner.close()


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def layer_gauges(meta: Any, data: Any = None) -> dict[str, float]:
    """``.stats`` lines (name → value) of the metadata, object-store and cache layers of one client.

    `meta` is a `Meta` (its ``kv`` a `TimedKV`), `data` a `DataPath` (its ``objects`` a `TimedStore`, its
    ``fetcher`` and ``disk`` the caches); whatever is missing is left out.
    """
    out: dict[str, float] = {}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["jfs_cpu_usage"] = round(usage.ru_utime + usage.ru_stime, 6)
    out["jfs_memory"] = _rss_bytes()
    kv = getattr(meta, "kv", None)
    if isinstance(kv, TimedKV):
        for method, m in (("txn", kv.txns), ("read", kv.reads)):
            out[f'jfs_meta_ops_total{{method="{method}"}}'] = m.count
            out[f'jfs_meta_ops_durations_seconds_sum{{method="{method}"}}'] = round(m.seconds, 6)
            out[f'jfs_meta_ops_errors_total{{method="{method}"}}'] = m.errors
        out["jfs_transaction_durations_histogram_seconds_count"] = kv.txns.count
        out["jfs_transaction_durations_histogram_seconds_sum"] = round(kv.txns.seconds, 6)
        out["jfs_transaction_restart"] = RESTARTS.total  # conflict retries of this process's transactions
    if data is None:
        return out
    store = getattr(data, "objects", None)
    if isinstance(store, TimedStore):
        for method, m in store.meters.items():
            label = f'{{method="{method}"}}'
            out[f"jfs_object_request_durations_histogram_seconds_count{label}"] = m.count
            out[f"jfs_object_request_durations_histogram_seconds_sum{label}"] = round(m.seconds, 6)
            out[f"jfs_object_request_data_bytes{label}"] = m.bytes
            out[f"jfs_object_request_errors{label}"] = m.errors
    compactor = getattr(data, "compactor", None)
    if compactor is not None:
        out['jfs_compactions{result="done"}'] = getattr(compactor, "compacted", 0)
        out['jfs_compactions{result="abandoned"}'] = getattr(compactor, "abandoned", 0)
    reader = getattr(data, "reader", None)
    if reader is not None:
        out["jfs_read_block_vanished"] = getattr(reader, "vanished", 0)
    out["jfs_deferred_slice_deletions"] = getattr(data, "deferred_deletions", 0)
    fetcher = getattr(data, "fetcher", None)
    if fetcher is not None:
        out["jfs_memcache_hits"] = getattr(fetcher, "mem_hits", 0)
        out["jfs_memcache_miss"] = getattr(fetcher, "mem_misses", 0)
        out["jfs_memcache_hit_bytes"] = getattr(fetcher, "mem_hit_bytes", 0)
    disk = getattr(data, "disk", None)
    if disk is not None:
        out["jfs_blockcache_hits"] = disk.hits
        out["jfs_blockcache_miss"] = disk.misses
        out["jfs_blockcache_hit_bytes"] = getattr(disk, "hit_bytes", 0)
        out["jfs_blockcache_read_hist_seconds_sum"] = round(getattr(disk, "read_seconds", 0.0), 6)
        out["jfs_blockcache_writes"] = getattr(disk, "writes", 0)
        out["jfs_blockcache_write_bytes"] = getattr(disk, "write_bytes", 0)
        out["jfs_blockcache_write_hist_seconds_sum"] = round(getattr(disk, "write_seconds", 0.0), 6)
    return out


def parse_stats(text: str) -> dict[str, float]:
    """The ``name value`` lines of a ``.stats`` file (labels stay part of the name); other lines ignored."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.strip().rpartition(" ")
        if not name or name.startswith("#"):
            continue
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out

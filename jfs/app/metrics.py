"""Light per-layer instrumentation of one client: metadata transactions, object requests, block caches.

Counters only — a `Meter` per kind of call holding its count, total seconds and bytes — kept by thin
wrappers around the two driven ports: `TimedKV` (every `txn` / `read` of the metadata engine goes through
``Meta.kv``) and `TimedStore` (every request the data path sends to the object store). Each call costs one
``time.perf_counter`` pair and a few integer additions; nothing is allocated per call.

`layer_gauges` turns them, with the block-cache hit/miss counters and the process's CPU and memory, into
the Prometheus-style ``name{label} value`` pairs the mount serves in ``.stats`` (`jfs.app.virtual_files.Stats`),
named like JuiceFS's (``juicefs_…`` → ``jfs_…``). `jfs bench` reads them before and after a run.
`juicefs_stats` adds the same figures under the flat names of JuiceFS's own ``.stats`` (for JuiceFS's
``stats`` and ``bench`` commands pointed at a jfs mount).

`Histogram` adds latency buckets (JuiceFS's: 0.1 ms × 1.5^k) to the FUSE operations (`Stats`), metadata
transactions and object requests; `families` hands all of it, with JuiceFS's metric names, to an exporter
(`jfs.adapters.metrics`) as plain data.
"""

from __future__ import annotations

import os
import resource
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from jfs.ports.kv import DEFAULT_MAX_RETRIES, KV, RESTARTS, Pointer, Tx
from jfs.ports.objects import ObjectInfo, ObjectStore

T = TypeVar("T")
perf_counter = time.perf_counter


LATENCY_BOUNDS: tuple[float, ...] = tuple(0.0001 * 1.5**k for k in range(30))
"""Upper bounds (seconds) of latency buckets: JuiceFS's ``prometheus.ExponentialBuckets(0.0001, 1.5, 30)``."""


class Histogram:
    """Counts of observations per bucket of `LATENCY_BOUNDS` (the last slot is +Inf), not cumulative."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BOUNDS) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BOUNDS, seconds)] += 1

    def merged(self, other: Histogram) -> Histogram:
        out = Histogram()
        out.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        return out


class Meter:
    """Count, total seconds (with their latency histogram), bytes and failures of one kind of call."""

    __slots__ = ("count", "seconds", "bytes", "errors", "hist")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.bytes = 0
        self.errors = 0
        self.hist = Histogram()

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
            self.took(perf_counter() - start)

    def took(self, elapsed: float) -> None:
        """Count one call that took `elapsed` seconds (`measure` without its coroutine). The one place a
        call's count, time and histogram are kept: `TimedKV`, `TimedStore` and the FUSE operations'
        `Stats` all come here (ADR 0072; `Histogram.observe` written out: one Python call per call)."""
        self.count += 1
        self.seconds += elapsed
        self.hist.counts[bisect_left(LATENCY_BOUNDS, elapsed)] += 1


class TimedKV:
    """A KV whose `txn` and `read` calls are counted and timed; everything else goes to the wrapped engine.

    The time of a call includes the engine's conflict retries (one call = one metadata operation).
    """

    def __init__(self, inner: KV) -> None:
        self.inner = inner
        self.txns = Meter()
        self.reads = Meter()
        follow = getattr(inner, "read_follow", None)
        self._follow: Callable[[Sequence[bytes], Pointer], Awaitable[list[bytes | None]]] | None = follow
        self.read_follow = None if follow is None else self._read_follow
        """`FollowingKV.read_follow` of the engine, timed as a `read`; None when the engine has none."""

    @classmethod
    def wrap(cls, kv: KV) -> Any:
        """`kv` timed (unchanged when it already is)."""
        return kv if isinstance(kv, TimedKV) else cls(kv)

    def __getattr__(self, name: str) -> Any:  # url, reset, close, adapter-specific attributes
        return getattr(self.inner, name)

    # Timed inline rather than through `Meter.measure`: one coroutine frame less per metadata operation
    # (ADR 0067); counted by `Meter.took` (ADR 0072).

    async def txn(self, body: Callable[[Tx], Awaitable[T]], *, max_retries: int = DEFAULT_MAX_RETRIES) -> T:
        meter = self.txns
        start = perf_counter()
        try:
            return await self.inner.txn(body, max_retries=max_retries)
        except BaseException:
            meter.errors += 1
            raise
        finally:
            meter.took(perf_counter() - start)

    async def read(self, body: Callable[[Tx], Awaitable[T]], *, max_retries: int = DEFAULT_MAX_RETRIES) -> T:
        meter = self.reads
        start = perf_counter()
        try:
            return await self.inner.read(body, max_retries=max_retries)
        except BaseException:
            meter.errors += 1
            raise
        finally:
            meter.took(perf_counter() - start)

    async def _read_follow(self, keys: Sequence[bytes], pointer: Pointer) -> list[bytes | None]:
        meter = self.reads
        start = perf_counter()
        try:
            return await self._follow(keys, pointer)  # type: ignore[misc]  # set whenever this is bound
        except BaseException:
            meter.errors += 1
            raise
        finally:
            meter.took(perf_counter() - start)


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
    from jfs.app.data.staging import StagingStore

    staging = getattr(data, "store", None)
    if isinstance(staging, StagingStore):  # --writeback
        out["jfs_staging_blocks"] = staging.pending
        out["jfs_staging_block_bytes"] = staging.pending_bytes
        out["jfs_staging_uploaded"] = staging.uploaded
        out["jfs_staging_direct_uploads"] = staging.direct  # blocks not staged: over the bound
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
        out["jfs_blockcache_warms"] = getattr(disk, "warms", 0)  # entries read into the page cache (ADR 0074)
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


# ---------------------------------------------------------------------------------------------------
# Metric families with JuiceFS's names, for an exporter


@dataclass(slots=True)
class Family:
    """One metric family as plain data: `kind` is "gauge", "counter" or "histogram"; a histogram's values
    are ``(buckets, sum)``, buckets being (upper bound, count in that bucket alone) up to +Inf."""

    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], Any]] = field(default_factory=list)

    def add(self, value: Any, **labels: str) -> Family:
        self.samples.append((labels, value))
        return self


def families(vfs: Any) -> list[Family]:
    """Everything one client measures, named as JuiceFS names it (``docs/operations.md`` lists them).

    `vfs` is a `jfs.app.vfs.VFS`; read from another thread (an exporter's) only through atomic copies.
    """
    stats, meta, data = vfs.stats, vfs.meta, vfs.data
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = [
        Family("juicefs_uptime", "gauge", "Total running time in seconds.").add(time.time() - stats.started),
        Family("juicefs_cpu_usage", "gauge", "Accumulated CPU usage in seconds.").add(usage.ru_utime + usage.ru_stime),
        Family("juicefs_memory", "gauge", "Used memory in bytes.").add(_rss_bytes()),
        Family("juicefs_used_space", "gauge", "Total used space in bytes.").add(float(meta.used_space)),
        Family("juicefs_used_inodes", "gauge", "Total used number of inodes.").add(float(meta.used_inodes)),
        Family("juicefs_fuse_open_handlers", "gauge", "Number of open files and directories.").add(vfs.open_handles),
    ]
    lat = Family("juicefs_fuse_ops_durations_histogram_seconds", "histogram", "Operations latency distributions.")
    total = Family("juicefs_fuse_ops_total", "counter", "Number of operations by method.")
    failed = Family("juicefs_fuse_ops_errors", "counter", "Operations that failed, by method (jfs).")
    for op, m in sorted(stats.by_op()):
        lat.add((_buckets(m.hist.counts), m.seconds), method=op)
        total.add(m.count, method=op)
        failed.add(m.errors, method=op)
    out += [lat, total, failed]
    for op, name, text in (("read", "juicefs_fuse_read_size_bytes", "Size of read distributions."),
                           ("write", "juicefs_fuse_written_size_bytes", "Size of write distributions.")):
        m = stats.meters.get(op)  # one bucket: jfs keeps the count and the bytes, not a size distribution
        out.append(Family(name, "histogram", text).add(([(float("inf"), m.count if m else 0)], m.bytes if m else 0)))
    kv = getattr(meta, "kv", None)
    if isinstance(kv, TimedKV):
        txn = Family("juicefs_transaction_durations_histogram_seconds", "histogram",
                     "Transactions latency distributions.")
        both = kv.txns.hist.merged(kv.reads.hist)
        txn.add((_buckets(both.counts), kv.txns.seconds + kv.reads.seconds))
        by_kind = Family("juicefs_meta_ops_durations_histogram_seconds", "histogram",
                         "Metadata transactions latency distributions, by kind (txn: read-write, read: read-only).")
        meta_errors = Family("juicefs_meta_ops_errors", "counter", "Metadata transactions that failed (jfs).")
        for method, m in (("txn", kv.txns), ("read", kv.reads)):
            by_kind.add((_buckets(m.hist.counts), m.seconds), method=method)
            meta_errors.add(m.errors, method=method)
        out += [txn, by_kind, meta_errors,
                Family("juicefs_transaction_restart", "counter",
                       "Number of times a transaction restarted (conflicts).").add(RESTARTS.total)]
    store = getattr(data, "objects", None)
    if isinstance(store, TimedStore):
        req = Family("juicefs_object_request_durations_histogram_seconds", "histogram",
                     "Object storage requests latency distributions.")
        sent = Family("juicefs_object_request_data_bytes", "counter", "Object storage request bytes.")
        errs = Family("juicefs_object_request_errors", "counter", "Failed requests to object storage.")
        for method, m in store.meters.items():
            req.add((_buckets(m.hist.counts), m.seconds), method=method)
            sent.add(m.bytes, method=method)
            errs.add(m.errors, method=method)
        out += [req, sent, errs]
    disk = getattr(data, "disk", None)
    if disk is not None:
        for name, value, text in (
            ("blocks", len(getattr(disk, "_index", ())), "Number of cached blocks."),
            ("bytes", disk.used, "Size of cached blocks in bytes."),
            ("hits", disk.hits, "Count of cached block reads."),
            ("miss", disk.misses, "Count of missed block reads."),
            ("hit_bytes", disk.hit_bytes, "Bytes of cached block reads."),
            ("writes", disk.writes, "Count of blocks written to the cache."),
            ("write_bytes", disk.write_bytes, "Bytes of blocks written to the cache."),
            ("warms", getattr(disk, "warms", 0), "Cached blocks read into the page cache after a missed small read (jfs)."),
        ):
            kind = "gauge" if name in ("blocks", "bytes") else "counter"
            out.append(Family(f"juicefs_blockcache_{name}", kind, text).add(value))
    fetcher = getattr(data, "fetcher", None)
    if fetcher is not None:
        out += [
            Family("juicefs_memcache_hits", "counter", "Blocks read from the memory cache (jfs).").add(fetcher.mem_hits),
            Family("juicefs_memcache_miss", "counter", "Blocks not in the memory cache (jfs).").add(fetcher.mem_misses),
            Family("juicefs_memcache_hit_bytes", "counter", "Bytes read from the memory cache (jfs).")
            .add(fetcher.mem_hit_bytes),
        ]
    budget = getattr(data, "budget", None)
    if budget is not None:
        out.append(Family("juicefs_used_buffer_size_bytes", "gauge", "Size of currently used write buffer.")
                   .add(budget.used))
    from jfs.app.data.staging import StagingStore

    staging = getattr(data, "store", None)
    if isinstance(staging, StagingStore):  # --writeback
        out += [
            Family("juicefs_staging_blocks", "gauge", "Number of blocks in the staging path.").add(staging.pending),
            Family("juicefs_staging_block_bytes", "gauge", "Total bytes of blocks in the staging path.")
            .add(staging.pending_bytes),
            Family("juicefs_staging_direct_uploads", "counter",
                   "Blocks uploaded directly because staging was over its bound (jfs).").add(staging.direct),
        ]
    from jfs.app.meta_backup import GAUGES as backups

    if backups.running:  # --backup-meta
        out += [
            Family("juicefs_last_successful_backup", "gauge", "Last successful backup.").add(backups.last_success),
            Family("juicefs_last_backup_duration", "gauge", "Last backup duration.").add(backups.last_duration),
        ]
    compactor = getattr(data, "compactor", None)
    if compactor is not None:
        out.append(Family("juicefs_compactions", "counter", "Chunk compactions by result (jfs).")
                   .add(getattr(compactor, "compacted", 0), result="done")
                   .add(getattr(compactor, "abandoned", 0), result="abandoned"))
    return out


def juicefs_stats(vfs: Any) -> dict[str, float]:
    """`families` under the flat names JuiceFS's own ``.stats`` uses, so that ``juicefs stats`` and the
    "FUSE operation / Update meta / Put object …" rows of ``juicefs bench`` read a jfs mount too.

    JuiceFS's form: a sample's label values are appended to its family's name (``juicefs_fuse_ops_total_create``,
    ``juicefs_object_request_data_bytes_PUT``); a histogram becomes ``…_total`` (count) and ``…_sum``
    (seconds), per label set and summed over all of them (``juicefs_fuse_ops_durations_histogram_seconds_total``).
    The block cache's read and write timings, kept as plain sums here, are given the same two names.
    """
    out: dict[str, float] = {}
    for fam in families(vfs):
        if fam.kind != "histogram":
            for labels, value in fam.samples:
                out[fam.name + "".join(f"_{v}" for v in labels.values())] = float(value)
            continue
        count = seconds = 0.0
        for labels, (buckets, total) in fam.samples:
            n = float(sum(c for _, c in buckets))
            if labels:
                suffix = "".join(f"_{v}" for v in labels.values())
                out[f"{fam.name}{suffix}_total"], out[f"{fam.name}{suffix}_sum"] = n, float(total)
            count, seconds = count + n, seconds + total
        out[f"{fam.name}_total"], out[f"{fam.name}_sum"] = count, float(seconds)
    disk = getattr(getattr(vfs, "data", None), "disk", None)
    if disk is not None:
        out["juicefs_blockcache_read_hist_seconds_total"] = float(disk.hits)
        out["juicefs_blockcache_read_hist_seconds_sum"] = float(getattr(disk, "read_seconds", 0.0))
        out["juicefs_blockcache_write_hist_seconds_total"] = float(disk.writes)
        out["juicefs_blockcache_write_hist_seconds_sum"] = float(getattr(disk, "write_seconds", 0.0))
    return out


def _buckets(counts: list[int]) -> list[tuple[float, int]]:
    return list(zip((*LATENCY_BOUNDS, float("inf")), list(counts), strict=True))

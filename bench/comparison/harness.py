"""The harness of `bench/compare.py`: sizes, result types, subprocesses, the two kinds of mount, RSS sampling.

Contracts: `run` bounds every child by a timeout and kills its whole process group on timeout or
interruption; a failure of a step is a `StepError` whose message goes into one table cell. Every `Mount`
that mounted is in `LIVE_MOUNTS` until it is unmounted, so `unmount_all` (also run at exit) leaves no mount
behind. Mount-point probes come from `jfs.testing.mounts` / the FUSE adapter, not from here.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jfs.adapters.fuse.mounting import mount_device
from jfs.testing.mounts import is_mounted

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20
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
    """One row of a table.

    `kind` says how rounds combine (see `comparison.rounds`): ``"median"`` of each system's values,
    ``"max"`` (RSS), ``"cpu"`` (CPU seconds summed over rounds / work summed over rounds). `long`: a row of
    the long workload parts (big files, fio sequential, the RSS peaks over them), measured in the first
    ``--rounds-long`` rounds only.
    """

    key: str
    label: str
    higher_is_better: bool = True
    kind: str = "median"
    long: bool = False


def items_of(p: Params) -> list[Item]:
    """The rows of each table, in order; the key prefix (before the dot) names the workload."""
    return [
        Item("bench.big_write", "juicefs bench: big file write (MiB/s)", long=True),
        Item("bench.big_read", "juicefs bench: big file read (MiB/s)", long=True),
        Item("bench.small_write", "juicefs bench: small file write (files/s)"),
        Item("bench.small_read", "juicefs bench: small file read (files/s)"),
        Item("bench.stat", "juicefs bench: stat (files/s)"),
        Item("md.mkdir", "mdtest: mkdir (ops/s)"),
        Item("md.create", "mdtest: create (ops/s)"),
        Item("md.stat", "mdtest: stat, cold kernel cache (ops/s)"),
        Item("md.rename", "mdtest: rename (ops/s)"),
        Item("md.unlink", "mdtest: unlink (ops/s)"),
        Item("md.rmdir", "mdtest: rmdir (ops/s)"),
        Item("fio.seq_write_1", "fio: seq write 1 MiB, 1 job (MiB/s)", long=True),
        Item("fio.seq_read_1", "fio: seq read 1 MiB, 1 job (MiB/s)", long=True),
        Item("fio.seq_write_4", "fio: seq write 1 MiB, 4 jobs (MiB/s)", long=True),
        Item("fio.seq_read_4", "fio: seq read 1 MiB, 4 jobs (MiB/s)", long=True),
        Item("fio.rand_write", "fio: random write 4 KiB, 1 job (IOPS)"),
        Item("fio.rand_read", "fio: random read 4 KiB, 1 job (IOPS)"),
        Item("ls.create", f"create {p.ls_entries} files in one directory (files/s)"),
        Item("ls.cold", f"`ls -l` of {p.ls_entries} entries, cold (s)", higher_is_better=False),
        Item("ls.warm", f"`ls -l` of {p.ls_entries} entries, warm (s)", higher_is_better=False),
        Item("rss.idle", "RSS after mount (MiB)", higher_is_better=False, kind="max"),
        Item("rss.bench", "peak RSS during juicefs bench (MiB)", higher_is_better=False, kind="max", long=True),
        Item("rss.peak", "peak RSS over all workloads (MiB)", higher_is_better=False, kind="max", long=True),
        Item("bench.cpu_big", "CPU s per GiB: juicefs bench big files, write + read", higher_is_better=False,
             kind="cpu", long=True),
        Item("fio.cpu_seq", "CPU s per GiB: fio seq 1 MiB, 1 + 4 jobs, write + read", higher_is_better=False,
             kind="cpu", long=True),
        Item("bench.cpu_small", "CPU s per 10k ops: juicefs bench small files, write + read + stat",
             higher_is_better=False, kind="cpu"),
        Item("md.cpu", "CPU s per 10k ops: mdtest, all six phases", higher_is_better=False, kind="cpu"),
        Item("ls.cpu_create", f"CPU s per 10k ops: create {p.ls_entries} files in one directory",
             higher_is_better=False, kind="cpu"),
        Item("ls.cpu_list", f"CPU s per 10k entries: `ls -l` of {p.ls_entries}, cold + warm",
             higher_is_better=False, kind="cpu"),
    ]


Result = float | str
"""A measured value, or ``"error: ..."``."""

Round = dict[str, dict[str, Result]]
"""One round of one backend: {system: {item key: result}}."""

CPU_SECONDS = ":cpu_s"
CPU_WORK = ":cpu_work"
"""Suffixes of the extra result keys holding a CPU row's raw counters: ``KEY:cpu_s`` the CPU seconds used,
``KEY:cpu_work`` what they are divided by (GiB, 10k operations), so that rounds can sum both."""


# --------------------------------------------------------------------------------------------------------
# Small helpers: progress, subprocesses, mounts, caches


T0 = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr, with the seconds since start."""
    print(f"[{time.monotonic() - T0:7.1f}s] {message}", file=sys.stderr, flush=True)


_GO_LOG = re.compile(r"^\d{4}/\d\d/\d\d [\d:.]+ \S+\[\d+\] <\w+>: |\s*\[\w+@[\w.]+:\d+\]$")
"""The timestamp/process prefix and source-location suffix of a JuiceFS log line."""


def tail(text: str, lines: int = 3) -> str:
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
        raise StepError(f"{Path(cmd[0]).name} exited with {proc.returncode}: {tail(out)}")
    return out


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.communicate(timeout=10)


def abort_fuse(path: Path) -> None:
    """Abort the FUSE connection of the mount at `path`: stuck callers get ENOTCONN instead of hanging."""
    dev = mount_device(str(path))
    if dev is not None:
        with contextlib.suppress(OSError):
            Path(f"/sys/fs/fuse/connections/{dev[1]}/abort").write_text("1")


def drop_caches() -> None:
    """Write back dirty pages, then drop the kernel's page, dentry and inode caches (root only).

    The `sync` first matters: drop_caches leaves dirty pages in memory, so a system whose local block
    files were written through the page cache (JuiceFS's cache dir, its `file` bucket) would read them
    back from memory in a "cold" phase while one that wrote them with O_DIRECT (jfs, ADR 0059) reads disk.
    """
    os.sync()
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


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_proc_stat(text: str, ticks: int = CLOCK_TICKS) -> tuple[float, float]:
    """(own, reaped children's) CPU seconds, user + system, from the text of ``/proc/PID/stat``.

    Own = utime + stime (fields 14, 15); reaped children = cutime + cstime (fields 16, 17): the CPU of the
    children this process has waited for. The command name (field 2) may hold spaces and parentheses, so
    fields are counted after its last ``)``. Raises ValueError on a malformed line.
    """
    try:
        fields = text.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state)
        utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    except IndexError:
        raise ValueError(f"malformed /proc/PID/stat: {text[:80]!r}") from None
    return (utime + stime) / ticks, (cutime + cstime) / ticks


def proc_cpu(pid: int) -> tuple[float, float] | None:
    """`parse_proc_stat` of a live `pid`; None if it has gone."""
    try:
        return parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError):
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
# CPU accounting


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds of a mount's processes at one instant.

    `workers`: {pid: own CPU s} of the serving processes (the leaves of the mount's process tree: for
    JuiceFS the worker, not its supervisor). `reaped`: {pid: reaped children's CPU s} of the other mount
    processes (the supervisor), which account for a worker that exited and was waited for.
    """

    workers: dict[int, float]
    reaped: dict[int, float]


def cpu_sample(servers: dict[int, int]) -> CpuSample:
    """Sample `servers` ({pid: ppid}, as from `fuse_servers`); processes already gone are left out."""
    leaves = {pid for pid in servers if pid not in servers.values()}
    workers: dict[int, float] = {}
    reaped: dict[int, float] = {}
    for pid in servers:
        cpu = proc_cpu(pid)
        if cpu is None:
            continue
        if pid in leaves:
            workers[pid] = cpu[0]
        else:
            reaped[pid] = cpu[1]
    return CpuSample(workers, reaped)


def cpu_between(start: CpuSample, end: CpuSample) -> float | None:
    """CPU seconds the serving processes used from `start` to `end`; None if it cannot be accounted.

    A worker in both samples counts its difference; one only in `end` started in between and counts all
    its CPU; one only in `start` exited in between (e.g. JuiceFS's supervisor replaced it): its CPU after
    `start` is the growth of its supervisor's reaped-children CPU less its CPU at `start` -- None when no
    supervisor in both samples saw it reaped.
    """
    total = sum(cpu - start.workers.get(pid, 0.0) for pid, cpu in end.workers.items())
    gone = [pid for pid in start.workers if pid not in end.workers]
    if gone:
        reaped = sum(cpu - start.reaped[pid] for pid, cpu in end.reaped.items() if pid in start.reaped)
        before = sum(start.workers[pid] for pid in gone)
        if reaped < before:
            return None
        total += reaped - before
    return max(total, 0.0)


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

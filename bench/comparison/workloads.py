"""The workloads of `bench/compare.py`, run the same way on a jfs and a JuiceFS mount.

Each workload writes its figures into `Context.results` (item key -> value) and may raise; `run_system`
turns a failing workload into ``error: ...`` cells of its own items only, so the rest of the run goes on.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jfs.testing.mounts import is_mounted

from .harness import (
    CPU_SECONDS,
    CPU_WORK,
    Item,
    MiB,
    Mount,
    Params,
    Result,
    RssSampler,
    StepError,
    abort_fuse,
    cpu_between,
    cpu_sample,
    drop_caches,
    fuse_servers,
    progress,
    rss_mib,
    run,
    tail,
)
from .profiling import profiled

GiB = 1 << 30
TEN_K = 10_000


@dataclass
class Context:
    mount: Mount
    params: Params
    juicefs: str
    sampler: RssSampler
    label: str
    results: dict[str, Result] = field(default_factory=dict)
    full: bool = True
    """Run the long parts (big files, fio sequential) too; False in rounds after ``--rounds-long``."""

    def step(self, message: str) -> None:
        progress(f"{self.label}: {message}")

    @contextlib.contextmanager
    def cpu(self, key: str, per: float) -> Iterator[None]:
        """Measure the mount's CPU seconds over the block; on success store them divided by `per` at `key`.

        Sampled once before and once after (no polling), over the processes serving the mount found afresh
        each time (see `cpu_between`): a worker replaced meanwhile is still accounted for. A failing block
        stores nothing (its workload's error fills the cell).
        """
        start = cpu_sample(self._servers())
        yield
        servers = self._servers()
        for pid in start.workers:  # an exited worker not yet reaped (zombie) still shows its CPU
            if pid not in servers and Path(f"/proc/{pid}").exists():
                servers[pid] = -1
        used = cpu_between(start, cpu_sample(servers))
        if used is None:
            self.results[key] = "error: the mount process was replaced and its CPU could not be accounted"
            return
        self.results[key] = used / per
        self.results[key + CPU_SECONDS] = used  # the raw counters, for rounds to sum
        self.results[key + CPU_WORK] = per

    def profiled(self, step: str) -> contextlib.AbstractContextManager[None]:
        """Profile the mount while the block runs, if `step` is one asked for (`profiling`)."""
        return profiled(self.mount.system, self.mount.pid, self.label, step)

    def _servers(self) -> dict[int, int]:
        """The mount's processes now; the mount (and so the RSS sampler) follows a replaced worker."""
        servers = fuse_servers(self.mount.mnt)
        if servers:
            self.mount.pids = dict(servers)
        return servers


_BENCH_ROWS = {
    "Write big file": "bench.big_write",
    "Read big file": "bench.big_read",
    "Write small file": "bench.small_write",
    "Read small file": "bench.small_read",
    "Stat file": "bench.stat",
}


_BIG_ROWS = ("Write big file", "Read big file")


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
    """`juicefs bench` on the mount point, with the RSS of the mount process sampled meanwhile.

    Run twice, big files only then small files only (the same phases in the same order as one run), so that
    the CPU of each part is measured on its own: per GiB written + read, per small-file write/read/stat.
    Without `ctx.full`, only the small files (and no RSS peak: it would not cover the big files).
    """
    p = ctx.params
    big = f"big files {p.big_file_mib} MiB, " if ctx.full else "no big files, "
    ctx.step(f"juicefs bench -p {p.threads} ({big}{p.small_file_count} small files)")
    ctx.sampler.reset_window()
    common = [ctx.juicefs, "bench", str(ctx.mount.mnt), "-p", str(p.threads), "--small-file-size",
              f"{p.small_file_kib}K"]
    big_gib = 2 * p.threads * p.big_file_mib * MiB / GiB  # each thread writes then reads one big file
    small_ops = 3 * p.threads * p.small_file_count  # each small file written, read and stat'ed
    outs = []
    try:
        if ctx.full:
            with ctx.cpu("bench.cpu_big", big_gib), ctx.profiled("bench.big"):
                outs.append(run([*common, "--big-file-size", f"{p.big_file_mib}M", "--small-file-count", "0"],
                                timeout=p.step_timeout))
        with ctx.cpu("bench.cpu_small", small_ops / TEN_K), ctx.profiled("bench.small"):
            outs.append(run([*common, "--big-file-size", "0", "--small-file-count", str(p.small_file_count)],
                            timeout=p.step_timeout))
    finally:
        ctx.sampler.sample()
        if ctx.sampler.window_peak and ctx.full:
            ctx.results["rss.bench"] = round(ctx.sampler.window_peak, 1)
    values = {k: v for out in outs for k, v in parse_juicefs_bench(out).items()}
    if len(values) != len(_BENCH_ROWS) - (0 if ctx.full else len(_BIG_ROWS)):
        raise StepError(f"unexpected juicefs bench output: {tail(outs[-1], 4)}")
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
    with worker_pool(ctx, p.md_procs) as timed, ctx.cpu("md.cpu", 6 * jobs_total / TEN_K):
        for phase in ("mkdir", "create", "stat", "rename", "unlink", "rmdir"):
            ctx.step(f"mdtest {phase}: {p.md_procs} x {p.md_items}")
            if phase == "stat":
                drop_caches()
            try:
                with ctx.profiled(f"md.{phase}"):
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
        raise StepError(f"fio {name} {rw}: no JSON result ({exc}): {tail(log)}") from None
    if job.get("error"):
        raise StepError(f"fio {name} {rw}: error {job['error']}: {tail(log)}")
    return dict(job["write" if "write" in rw else "read"])


def workload_fio(ctx: Context) -> None:
    """fio sequential 1 MiB (1 and 4 jobs) and random 4 KiB (1 job, time based).

    Without `ctx.full` the sequential part is not measured: only the 1-job file the random read reads is
    written and read (in the same way, so that the random read finds the same state).
    """
    p = ctx.params
    if ctx.full:
        moved = sum(2 * jobs * (p.fio_seq_mib // jobs) for jobs in (1, 4)) * MiB / GiB  # written + read
        with ctx.cpu("fio.cpu_seq", moved):
            for jobs in (1, 4):
                _fio_sequential(ctx, jobs)
    else:
        ctx.step("fio seq 1 job, unmeasured: the random read's file")
        _fio_sequential(ctx, 1, measured=False)
    ctx.step(f"fio random write 4 KiB, {p.fio_runtime} s")
    with ctx.profiled("fio.rand_write"):
        stats = fio(ctx, "rand", "randwrite", "4k", p.fio_rand_mib, runtime=p.fio_runtime)
    ctx.results["fio.rand_write"] = stats["iops"]
    ctx.step(f"fio random read 4 KiB, {p.fio_runtime} s")
    drop_caches()
    with ctx.profiled("fio.rand_read"):
        stats = fio(ctx, "seq1", "randread", "4k", p.fio_seq_mib, runtime=p.fio_runtime)
    ctx.results["fio.rand_read"] = stats["iops"]


def _fio_sequential(ctx: Context, jobs: int, *, measured: bool = True) -> None:
    """Write then (after dropping the caches) read ``jobs`` files of 1/jobs of the sequential size each."""
    size = ctx.params.fio_seq_mib // jobs
    ctx.step(f"fio seq write {jobs} job(s) x {size} MiB")
    with ctx.profiled(f"fio.seq_write_{jobs}" if measured else ""):
        stats = fio(ctx, f"seq{jobs}", "write", "1M", size, jobs)
    if measured:
        ctx.results[f"fio.seq_write_{jobs}"] = stats["bw_bytes"] / MiB
    ctx.step(f"fio seq read {jobs} job(s) x {size} MiB")
    drop_caches()
    with ctx.profiled(f"fio.seq_read_{jobs}" if measured else ""):
        stats = fio(ctx, f"seq{jobs}", "read", "1M", size, jobs)
    if measured:
        ctx.results[f"fio.seq_read_{jobs}"] = stats["bw_bytes"] / MiB


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
    with worker_pool(ctx, procs) as timed, ctx.cpu("ls.cpu_create", p.ls_entries / TEN_K), ctx.profiled("ls.create"):
        ctx.results["ls.create"] = p.ls_entries / timed(_create_files, jobs)
    ctx.step("remount and drop caches; ls -l (cold)")
    ctx.sampler.sample()
    ctx.mount.remount()
    drop_caches()
    # after the remount: not the mount's start-up
    with ctx.cpu("ls.cpu_list", 2 * p.ls_entries / TEN_K), ctx.profiled("ls.list"):
        ctx.results["ls.cold"] = _timed_ls(ctx, directory)
        ctx.step("ls -l (warm)")
        ctx.results["ls.warm"] = _timed_ls(ctx, directory)


WORKLOADS: list[tuple[str, Callable[[Context], None]]] = [
    ("bench", workload_bench),
    ("md", workload_mdtest),
    ("fio", workload_fio),
    ("ls", workload_ls),
]


def short(message: str, limit: int = 60) -> str:
    message = " ".join(message.split()).replace("|", "/")
    return message if len(message) <= limit else message[: limit - 1] + "…"


def run_system(mount: Mount, params: Params, juicefs: str, label: str, items: list[Item],
               results: dict[str, Result], *, full: bool = True) -> None:
    """Format, mount, run every workload, unmount; fills `results` {item key: value or error} as it goes.

    Without `full`, the long parts are left out and their items (`Item.long`) stay absent from `results`.
    """
    errors: dict[str, str] = {}
    progress(f"{label}: format and mount")
    try:
        mount.format()
        mount.mount()
    except (StepError, OSError) as exc:
        progress(f"{label}: {exc}")
        mount.unmount()
        results.update({item.key: f"error: {exc}" for item in items if full or not item.long})
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
            ctx = Context(mount, params, juicefs, sampler, label, results, full)
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
            if full:
                results["rss.peak"] = sampler.overall_peak or "error: no sample"
    finally:
        progress(f"{label}: unmount")
        mount.unmount()
    for item in items:
        if item.key not in results and (full or not item.long):
            workload_error = errors.get(item.key.split(".")[0], "not measured")
            results[item.key] = f"error: {workload_error}"



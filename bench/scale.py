"""Does the cost of an operation grow with the volume? jfs and JuiceFS 1.4.2 side by side at 10k, 100k and
1M files (issue 17, "Scale"), one backend per run, each system on its own engine and local bucket.

Usage:  .venv/bin/python bench/scale.py [--backend sqlite-file|redis-file] [--files 1000000]
        [--per-dir 1000] [--processes 4] [--stat 100000] [--big-dir 100000] [--rename 10000]
        [--remove 100000] [--systems jfs,juicefs] [--workdir DIR] [--juicefs PATH] [--json FILE]
        [--checkpoints 10000,100000] [--backup-meta]

Per system: format (trash off), mount (``--backup-meta 0``: no automatic metadata backup in the middle of a
phase, ADR 0104; ``--backup-meta`` here keeps each system's default), then
1. create ``--files`` empty files, ``--per-dir`` per directory, with ``--processes`` processes; the rate is
   reported per segment ending at each checkpoint (10k, 100k, 1M — those ≤ ``--files``);
2. at every checkpoint: stat ``--stat`` distinct random existing paths (at most the files so far) after
   dropping the kernel's caches (cold), in ``--processes`` processes;
3. at the end: create one directory of ``--big-dir`` entries, ``ls -l`` of it cold and warm; ``du -s`` and
   ``summary`` of the whole tree; rename ``--rename`` files (within their directories); ``rm -rf`` of
   ``--remove`` files (whole directories);
4. unmounted: ``dump`` of the volume to a file and ``load`` of it into a fresh engine of the same kind
   (entries/s), ``gc`` and ``fsck`` (seconds); for each the command's peak RSS and CPU (wait4).
Every mounted phase also records the CPU (user + system) of the processes serving the mount per operation,
the figure to compare on a busy machine, where rates are noise; that of redis-server (redis-file) per
operation; and how busy the machine's CPUs were, all processes counted. A failing phase is recorded in the table
(the mounted part of that system stops, the offline commands still run). Prints a markdown table (rates,
CPU, ratio jfs / JuiceFS, and rate at the last checkpoint / first) and writes the numbers as JSON with
``--json``. Needs root (FUSE mounts, drop_caches). Nothing is left mounted and a Redis server it started
is stopped, also on Ctrl-C, SIGTERM or SIGHUP (the table so far then goes to stderr).

Duration at 1M files on a quiet 2-core machine (estimated from CPU per operation at 100k): about 12 min
for jfs and 20 min for JuiceFS per backend, most of it the 1M creates; ``--systems`` runs one at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jfs.adapters.fuse.mounting import is_mounted

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comparison.harness import abort_fuse, cpu_between, cpu_sample, fuse_servers, proc_cpu  # noqa: E402

CHECKPOINTS = (10_000, 100_000, 1_000_000)
"""File counts at which rates are reported (those above ``--files`` are skipped; ``--checkpoints`` overrides)."""


def say(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def drop_caches() -> None:
    os.sync()
    with contextlib.suppress(OSError):
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


GNU_TIME = "/usr/bin/time"


def timed_child(argv: list[str], *, stdout: Any = subprocess.DEVNULL, timeout: float = 7200) -> tuple[float, float, float]:
    """Run `argv`; (wall seconds, peak RSS in MiB, user + system CPU seconds) of the command itself. CPU
    from wait4; the peak from GNU time's %M when /usr/bin/time exists: wait4's ru_maxrss of a child this
    process spawned starts at this process's own RSS (the address space it was forked with, ~96 MiB here
    after the create phases), which would hide a smaller command's peak. Raises RuntimeError on failure or
    after `timeout` seconds (the command is killed)."""
    started = time.perf_counter()
    err = tempfile.TemporaryFile()
    name = " ".join(argv[:3])
    peak_file = None
    if os.path.exists(GNU_TIME):
        peak_file = tempfile.NamedTemporaryFile(prefix="jfs-scale-peak-", delete=False)
        peak_file.close()
        argv = [GNU_TIME, "-f", "%M", "-o", peak_file.name, *argv]
    proc = subprocess.Popen(argv, stdout=stdout, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} timed out after {timeout:.0f} s")
            time.sleep(0.02)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the command and GNU time around it
        proc.wait()
        if peak_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(peak_file.name)
        raise
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 and peak_file is not None:
        with contextlib.suppress(OSError):
            os.unlink(peak_file.name)
    if proc.returncode != 0:
        err.seek(0)
        raise RuntimeError(f"{name} failed ({proc.returncode}): {err.read().decode()[-800:]}")
    peak_kib = float(usage.ru_maxrss)
    if peak_file is not None:
        with open(peak_file.name, encoding="ascii") as f:
            lines = f.read().split()
        os.unlink(peak_file.name)
        if lines and lines[-1].isdigit():
            peak_kib = float(lines[-1])
    return seconds, peak_kib / 1024, usage.ru_utime + usage.ru_stime


TICKS = os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs so far (``/proc/stat``; idle and iowait are not busy)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def off_loop_cpu(pids: Iterable[int]) -> float:
    """User + system CPU seconds of the threads of `pids` other than each process's main thread (threads
    that have exited are not counted)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                if task.name == str(pid):
                    continue
                with contextlib.suppress(OSError, ValueError, IndexError):
                    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                    total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


@dataclass
class System:
    name: str
    binary: list[str]
    root: Path
    meta_url: str
    load_url: str
    """An empty engine of the same kind for `load`."""
    results: dict[str, Any] = field(default_factory=dict)
    servers: dict[int, int] = field(default_factory=dict)
    """{pid: ppid} of the processes serving the mount (for their CPU), found after mounting."""
    backup: bool = False
    """Mount with the system's default automatic metadata backup (else ``--backup-meta 0``)."""
    engine_pid: int | None = None
    """The metadata server's process (redis-server) when the run started one: its CPU per phase is recorded."""

    @property
    def mnt(self) -> Path:
        return self.root / "mnt"

    @property
    def is_jfs(self) -> bool:
        return self.name == "jfs"

    def run(self, *args: str, timeout: float = 600) -> str:
        out = subprocess.run([*self.binary, *args], capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{self.name} {args[0]} failed: {(out.stderr or out.stdout)[-800:]}")
        return out.stdout

    def format(self) -> None:
        bucket = ["--storage", "file", "--bucket", f"{self.root / 'bucket'}/"]
        if self.is_jfs:
            self.run("format", self.meta_url, "scale-jfs", "--trash-days", "0", *bucket)
        else:
            self.run("format", "--trash-days", "0", self.meta_url, "scale-juicefs", *bucket)

    def mount(self) -> None:
        self.mnt.mkdir(parents=True, exist_ok=True)
        cache = ["--cache-dir", str(self.root / "cache")]
        # No automatic metadata backup: its first one starts ~6 min after mounting (interval / 10), in
        # whichever phase runs then, and JuiceFS skips volumes over 1M inodes while jfs backs them up (ADR 0104).
        backup = [] if self.backup else ["--backup-meta", "0"]
        if self.is_jfs:
            self.run("mount", self.meta_url, str(self.mnt), "-d", *cache, "--metrics", "off", *backup)
        else:
            self.run("mount", "-d", "--no-usage-report", self.meta_url, str(self.mnt), *cache,
                     "--log", str(self.root / "juicefs.log"), "--metrics", "127.0.0.1:0", *backup)
        if not is_mounted(self.mnt):
            raise RuntimeError(f"{self.name}: {self.mnt} is not mounted")
        self.servers = fuse_servers(self.mnt)

    def unmount(self) -> None:
        """Take the mount down whatever state it is in (lazy unmount and FUSE abort as the last resorts)."""
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            if is_mounted(self.mnt):
                subprocess.run([*self.binary, "umount", str(self.mnt)], capture_output=True, timeout=300)
        if is_mounted(self.mnt):
            abort_fuse(self.mnt)
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(["umount", "-l", str(self.mnt)], capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        for pid in self.servers:  # the daemons exit on unmount; one whose connection was aborted may linger
            with contextlib.suppress(ProcessLookupError, PermissionError):
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.2)
                os.kill(pid, signal.SIGKILL)
        self.servers = {}

    @contextlib.contextmanager
    def cpu(self, key: str, ops: int) -> Iterator[None]:
        """Record the mount's CPU per operation (µs) over the block as ``<key> CPU µs/op``; for jfs also
        the share of it its processes' other threads than the main one used, ``<key> CPU off-loop %``
        (SQLite's worker threads and checkpointer, executors: a SQLite metadata body runs on the event
        loop's thread unless it fell back to the workers, ADR 0096)."""
        start = cpu_sample(self.servers)
        off = off_loop_cpu(self.servers) if self.is_jfs else 0.0
        engine = proc_cpu(self.engine_pid) if self.engine_pid else None
        machine = machine_ticks()
        yield
        used = cpu_between(start, cpu_sample(self.servers))
        if used is not None and ops:
            self.results[f"{key} CPU µs/op"] = used / ops * 1e6
            if self.is_jfs and used > 0:
                self.results[f"{key} CPU off-loop %"] = (off_loop_cpu(self.servers) - off) / used * 100
        engine_end = proc_cpu(self.engine_pid) if self.engine_pid else None
        if engine is not None and engine_end is not None and ops:
            self.results[f"{key} CPU engine µs/op"] = (engine_end[0] - engine[0]) / ops * 1e6
        end = machine_ticks()
        busy, total = end[0] - machine[0], end[1] - machine[1]
        if total > 0:
            self.results[f"{key} CPU machine busy %"] = busy / total * 100


# ---------------------------------------------------------------------------------------------- workers


def _create(job: tuple[str, int, int, int]) -> None:
    top, d, start, stop = job
    base = f"{top}/d{d:05d}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(base)
    for i in range(start, stop):
        os.close(os.open(f"{base}/f{i:05d}", os.O_CREAT | os.O_WRONLY, 0o644))


def _stat_many(paths: list[str]) -> None:
    for p in paths:
        os.stat(p)


def _rename_many(pairs: list[tuple[str, str]]) -> None:
    for a, b in pairs:
        os.rename(a, b)


def _worker_signals() -> None:
    """Workers leave Ctrl-C to the driver (which terminates them with SIGTERM, quietly)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _pool_run(pool: Any, fn: Callable[[Any], None], jobs: list[Any]) -> float:
    started = time.perf_counter()
    for _ in pool.imap_unordered(fn, jobs, chunksize=1):
        pass
    return time.perf_counter() - started


def _chunks(items: list[Any], n: int) -> list[list[Any]]:
    size = max(1, -(-len(items) // (n * 8)))
    return [items[i:i + size] for i in range(0, len(items), size)]


# ---------------------------------------------------------------------------------------------- phases


def checkpoints(args: argparse.Namespace) -> list[int]:
    marks = [int(c) for c in args.checkpoints.split(",")] if args.checkpoints else list(CHECKPOINTS)
    return [c for c in marks if c < args.files] + [args.files]


def create_phase(sys_: System, pool: Any, args: argparse.Namespace) -> None:
    top = str(sys_.mnt / "tree")
    os.makedirs(top, exist_ok=True)
    marks = checkpoints(args)
    done = 0
    rng = random.Random(7)
    for mark in marks:
        jobs = []
        n = done
        while n < mark:
            d, i = divmod(n, args.per_dir)
            stop = min((d + 1) * args.per_dir, mark)
            jobs.append((top, d, i, stop - d * args.per_dir))
            n = stop
        with sys_.cpu(f"create@{mark}", mark - done):
            seconds = _pool_run(pool, _create, jobs)
        sys_.results[f"create@{mark}/s"] = (mark - done) / seconds
        say(f"{sys_.name}: created {mark:,} files ({(mark - done) / seconds:,.0f}/s)")
        done = mark
        count = min(args.stat, mark)
        picks = rng.sample(range(mark), count)  # distinct: a repeat would hit the kernel's caches
        paths = [f"{top}/d{p // args.per_dir:05d}/f{p % args.per_dir:05d}" for p in picks]
        drop_caches()
        with sys_.cpu(f"stat@{mark}", count):
            seconds = _pool_run(pool, _stat_many, _chunks(paths, args.processes))
        sys_.results[f"stat@{mark}/s"] = count / seconds
        say(f"{sys_.name}: stat of {count:,} random paths cold at {mark:,} ({count / seconds:,.0f}/s)")


def big_dir_phase(sys_: System, pool: Any, args: argparse.Namespace) -> None:
    top = str(sys_.mnt / "big")
    os.makedirs(top, exist_ok=True)
    per = -(-args.big_dir // (args.processes * 4))
    jobs = [(top, 0, i, min(i + per, args.big_dir)) for i in range(0, args.big_dir, per)]
    with sys_.cpu("create in one dir", args.big_dir):
        seconds = _pool_run(pool, _create, jobs)
    sys_.results["create in one dir/s"] = args.big_dir / seconds
    say(f"{sys_.name}: created {args.big_dir:,} files in one directory ({args.big_dir / seconds:,.0f}/s)")
    for label in ("cold", "warm"):
        if label == "cold":
            drop_caches()
        started = time.perf_counter()
        with sys_.cpu(f"ls -l {label}", args.big_dir):
            subprocess.run(["ls", "-l", f"{top}/d00000"], stdout=subprocess.DEVNULL, check=True, timeout=3600)
        seconds = time.perf_counter() - started
        sys_.results[f"ls -l {label} s"] = seconds
        say(f"{sys_.name}: ls -l of {args.big_dir:,} entries {label}: {seconds:.2f} s")


def tree_phases(sys_: System, pool: Any, args: argparse.Namespace) -> None:
    top = sys_.mnt / "tree"
    inodes = args.files + -(-args.files // args.per_dir)
    drop_caches()
    started = time.perf_counter()
    with sys_.cpu("du -s", inodes):
        subprocess.run(["du", "-s", str(top)], stdout=subprocess.DEVNULL, check=True, timeout=7200)
    sys_.results["du -s s"] = time.perf_counter() - started
    say(f"{sys_.name}: du -s of the tree: {sys_.results['du -s s']:.1f} s")
    started = time.perf_counter()
    with sys_.cpu("summary", inodes):
        sys_.run("summary", str(top), timeout=7200)
    sys_.results["summary s"] = time.perf_counter() - started
    say(f"{sys_.name}: summary of the tree: {sys_.results['summary s']:.1f} s")
    count = min(args.rename, args.files)
    pairs = []
    for n in range(count):
        d, i = divmod(n, args.per_dir)
        src = f"{top}/d{d:05d}/f{i:05d}"
        pairs.append((src, src + ".r"))
    with sys_.cpu("rename", count):
        seconds = _pool_run(pool, _rename_many, _chunks(pairs, args.processes))
    sys_.results["rename/s"] = count / seconds
    say(f"{sys_.name}: rename {count:,}: {count / seconds:,.0f}/s")
    dirs, removed = removed_dirs(args)
    victims = [str(top / f"d{d:05d}") for d in range(dirs)]
    started = time.perf_counter()
    with sys_.cpu("rm -rf", removed):
        subprocess.run(["rm", "-rf", *victims], check=True, timeout=7200)
    seconds = time.perf_counter() - started
    sys_.results["rm -rf/s"] = removed / seconds
    say(f"{sys_.name}: rm -rf of {removed:,} files: {removed / seconds:,.0f}/s")


def removed_dirs(args: argparse.Namespace) -> tuple[int, int]:
    """(directories, files) that the ``rm -rf`` phase removes: whole directories of the tree."""
    dirs = min(-(-args.remove // args.per_dir), -(-args.files // args.per_dir))
    return dirs, min(dirs * args.per_dir, args.files)


def volume_entries(args: argparse.Namespace) -> int:
    """Entries of the volume after the mounted phases (what dump writes and load reads): the root, ``tree``
    with its remaining directories and files, ``big`` with its directory and files."""
    dirs, removed = removed_dirs(args)
    return 1 + 1 + (-(-args.files // args.per_dir) - dirs) + (args.files - removed) + 2 + args.big_dir


def offline_phases(sys_: System, args: argparse.Namespace) -> None:
    """dump, load, gc and fsck, each as its own command: wall seconds, peak RSS and CPU from wait4. A
    failing step is recorded (and the next one still runs, except load without a dump)."""
    entries = volume_entries(args)
    dump = sys_.root / "dump.json"
    steps: list[tuple[str, list[str]]] = [
        ("dump", [*sys_.binary, "dump", sys_.meta_url, str(dump)]),
        ("load", [*sys_.binary, "load", sys_.load_url, str(dump)]),
        ("gc", [*sys_.binary, "gc", sys_.meta_url]),
        ("fsck", [*sys_.binary, "fsck", sys_.meta_url]),
    ]
    for op, argv in steps:
        if op == "load" and not dump.exists():
            continue
        try:
            seconds, rss, cpu = timed_child(argv)
        except RuntimeError as exc:
            sys_.results[f"{op} error"] = str(exc).splitlines()[0][:200]
            say(f"{sys_.name}: {op} FAILED: {exc}")
            continue
        if op in ("dump", "load"):
            sys_.results.update({f"{op} entries/s": entries / seconds, f"{op} CPU µs/entry": cpu / entries * 1e6})
        else:
            sys_.results.update({f"{op} s": seconds, f"{op} CPU s": cpu})
        sys_.results[f"{op} RSS MiB"] = rss
        say(f"{sys_.name}: {op} {seconds:.1f} s ({entries / seconds:,.0f} entries/s), CPU {cpu:.1f} s, "
            f"peak {rss:.0f} MiB")
    with contextlib.suppress(OSError):
        dump.unlink()  # large at 1M files


# ---------------------------------------------------------------------------------------------- driver


@contextlib.contextmanager
def engines(backend: str, workdir: Path, names: list[str]) -> Iterator[tuple[dict[str, tuple[str, str]], int | None]]:
    """(name -> (engine URL of its volume, URL of an empty engine of the same kind for `load`), the process
    id of the metadata server or None); a Redis server started here is stopped on exit."""
    if backend == "sqlite-file":
        yield {n: (f"sqlite3://{workdir / n / 'meta.db'}", f"sqlite3://{workdir / n / 'loaded.db'}") for n in names}, None
    elif backend == "redis-file":
        from jfs.testing.servers import redis_server

        with redis_server() as server:
            urls = {n: (f"{server.url}/{i}", f"{server.url}/{i + len(names)}") for i, n in enumerate(names, start=1)}
            yield urls, server.process.pid
    else:
        raise SystemExit(f"unknown backend {backend}")


LOWER_BETTER = (" s", " MiB", "µs/op", "µs/entry")


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"
    return "–" if v is None else str(v)


def _ordered(keys: list[str]) -> list[str]:
    """`keys` with each CPU row (``<phase> CPU …``) right after the first row of its phase."""
    cpu = [k for k in keys if " CPU " in k]
    out: list[str] = []
    for k in keys:
        if " CPU " in k:
            continue
        out.append(k)
        base = k.removesuffix(" RSS MiB").removesuffix("/s").removesuffix(" s").removesuffix(" entries")
        out += [c for c in cpu if c.split(" CPU ")[0] == base and c not in out]
    return out + [c for c in cpu if c not in out]


def report(systems: list[System], args: argparse.Namespace, *, note: str = "") -> str:
    """The markdown table of every phase (both systems side by side) and the per-checkpoint ratios."""
    keys = list(dict.fromkeys(k for s in systems for k in s.results))
    names = [s.name for s in systems]
    lines = [f"### Scale, {args.backend}, {args.files:,} files ({time.strftime('%Y-%m-%d %H:%M')})", ""]
    if note:
        lines += [note, ""]
    lines += ["| phase | " + " | ".join(names) + " | jfs vs JuiceFS |", "|---|" + "---:|" * (len(systems) + 1)]
    for k in _ordered(keys):
        vals = [s.results.get(k) for s in systems]
        ratio = "–"
        if len(vals) == 2 and not k.endswith("%") and all(isinstance(v, float) and v > 0 for v in vals):
            a, b = vals
            ratio = f"{(b / a if k.endswith(LOWER_BETTER) else a / b):.2f}×"
        lines.append(f"| {k} | " + " | ".join(_cell(v) for v in vals) + f" | {ratio} |")
    lines += ["", "jfs vs JuiceFS: > 1.0 = jfs better (rates: jfs / JuiceFS; seconds, MiB, CPU: JuiceFS / jfs). "
              "CPU µs/op: user + system CPU of the processes serving the mount per operation (per entry for "
              "`ls -l`, per inode for `du -s` and summary); dump/load/gc/fsck: of the command itself (wait4). "
              "CPU engine µs/op: the same for redis-server (redis-file). CPU machine busy %: the share of all "
              "CPUs' time not idle over the phase, every process counted (near 100 %: the machine's CPUs are "
              "what bounds the phase)."]
    marks = checkpoints(args)
    for s in systems:
        for what in ("create", "stat"):
            first, last = s.results.get(f"{what}@{marks[0]}/s"), s.results.get(f"{what}@{marks[-1]}/s")
            if len(marks) > 1 and isinstance(first, float) and isinstance(last, float):
                lines.append(f"- {s.name}: {what} rate at {marks[-1]:,} files = {last / first:.2f}× its rate "
                             f"at {marks[0]:,} (issue 17 wants ≥ 0.8×)")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="sqlite-file", choices=["sqlite-file", "redis-file"])
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--per-dir", type=int, default=1000)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--stat", type=int, default=100_000)
    ap.add_argument("--big-dir", type=int, default=100_000)
    ap.add_argument("--rename", type=int, default=10_000)
    ap.add_argument("--remove", type=int, default=100_000)
    ap.add_argument("--systems", default="jfs,juicefs")
    ap.add_argument("--workdir")
    ap.add_argument("--juicefs", default=shutil.which("juicefs") or str(Path(sys.executable).parent / "juicefs"))
    ap.add_argument("--checkpoints", help="comma-separated file counts (default 10000,100000,1000000)")
    ap.add_argument("--json")
    ap.add_argument("--backup-meta", action="store_true",
                    help="mount with each system's default automatic metadata backup (default: off, ADR 0104)")
    return ap.parse_args(argv)


def run_system(s: System, args: argparse.Namespace) -> None:
    """Every phase on one system; a failing phase is recorded in its results (``error``) and ends the
    mounted part, the offline commands still run. Unmounted on return, also on KeyboardInterrupt."""
    s.format()
    try:
        s.mount()
        with mp.get_context("fork").Pool(args.processes, initializer=_worker_signals) as pool:
            create_phase(s, pool, args)
            big_dir_phase(s, pool, args)
            tree_phases(s, pool, args)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        s.results["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        say(f"{s.name}: FAILED: {exc}")
    finally:
        s.unmount()
    offline_phases(s, args)


def run(args: argparse.Namespace) -> tuple[str, dict[str, dict[str, Any]]]:
    """Every phase for every system of `args`; (the markdown report, the raw results by system).

    Nothing is left mounted and the servers it started are stopped, also when a phase fails (recorded in
    the report) or on KeyboardInterrupt (the report so far goes to stderr, then it is re-raised). The work
    directory is removed unless ``--workdir`` names one."""
    if os.geteuid() != 0:
        raise SystemExit("bench/scale.py needs root (FUSE mounts, drop_caches)")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="jfs-scale-"))
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    jfs_bin = [sys.executable, "-c", "from jfs.cli import run; run()"]  # the `jfs` console script's entry (ADR 0083)
    systems: list[System] = []
    try:
        with engines(args.backend, workdir, names) as (urls, engine_pid):
            for name in names:
                root = workdir / name
                root.mkdir(parents=True, exist_ok=True)
                s = System(name, jfs_bin if name == "jfs" else [args.juicefs], root, *urls[name],
                           backup=args.backup_meta, engine_pid=engine_pid)
                systems.append(s)
                run_system(s, args)
    except KeyboardInterrupt:
        print(report(systems, args, note="**Interrupted**: the phases so far."), file=sys.stderr)
        raise
    finally:
        for s in systems:
            s.unmount()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return report(systems, args), {s.name: s.results for s in systems}


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # clean up on any of them
        signal.signal(sig, _interrupt)
    try:
        text, results = run(args)
    except KeyboardInterrupt:
        say("interrupted: unmounted and cleaned up")
        return 130
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

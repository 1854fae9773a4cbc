"""Profiles of chosen steps of `bench/compare.py` (``--profile STEP,...``), taken in the run's own sequence.

For each chosen step and round, both mounts are profiled while the step runs: ``perf record -g`` (99 Hz) of
the process serving the mount, and for jfs also ``py-spy record --idle --threads`` (raw collapsed stacks, its
Python frames and the loop's idle time). Files go to the profile directory as ``<label>-<step>.*``, each with a
text summary next to it (``perf report`` by shared object and symbol; py-spy samples per thread, the loop
thread's busiest frames). A profiled step's figures are perturbed by the profilers; the report says which
steps were profiled.
"""

from __future__ import annotations

import collections
import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STEPS = (
    "bench.big", "bench.small",
    "md.mkdir", "md.create", "md.stat", "md.rename", "md.unlink", "md.rmdir",
    "fio.seq_write_1", "fio.seq_read_1", "fio.seq_write_4", "fio.seq_read_4", "fio.rand_write", "fio.rand_read",
    "ls.create", "ls.list",
)  # fmt: skip
"""The steps that can be profiled (`--profile`)."""


@dataclass(frozen=True)
class Profiling:
    steps: frozenset[str]
    directory: Path


_config: Profiling | None = None


def configure(steps: list[str], directory: Path) -> None:
    """Profile `steps` from now on, writing into `directory` (made here)."""
    global _config
    directory.mkdir(parents=True, exist_ok=True)
    _config = Profiling(frozenset(steps), directory)


def missing_tools() -> list[str]:
    """What `--profile` needs and this machine lacks."""
    problems = []
    if shutil.which("perf") is None:
        problems.append("perf is missing (apt-get install -y linux-perf)")
    if _pyspy() is None:
        problems.append("py-spy is missing (pip install py-spy)")
    return problems


def _pyspy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def profiled(system: str, pid: int | None, label: str, step: str) -> Iterator[None]:
    """Profile process `pid` (the mount of `system`) while the block runs, if `step` was asked for."""
    config = _config
    if config is None or step not in config.steps or pid is None:
        yield
        return
    base = config.directory / f"{re.sub(r'[^A-Za-z0-9.-]+', '_', label)}-{step}"
    procs = [subprocess.Popen(
        ["perf", "record", "-g", "-F", "99", "-p", str(pid), "-o", f"{base}.perf.data"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )]  # fmt: skip
    pyspy = _pyspy()
    if system == "jfs" and pyspy is not None:
        procs.append(subprocess.Popen(
            [pyspy, "record", "-p", str(pid), "--nonblocking", "--threads", "--idle", "--format", "raw",
             "-r", "100", "-o", f"{base}.pyspy.txt"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
    try:
        yield
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _summarize(base)


def _summarize(base: Path) -> None:
    perf_data = Path(f"{base}.perf.data")
    if perf_data.exists():
        out = subprocess.run(
            ["perf", "report", "-i", str(perf_data), "--stdio", "--no-children", "--sort", "dso,sym", "-g", "none",
             "--percent-limit", "0.5"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        Path(f"{base}.perf.txt").write_text(out.stdout)
    raw = Path(f"{base}.pyspy.txt")
    if raw.exists():
        Path(f"{base}.pyspy-summary.txt").write_text(summarize_pyspy(raw.read_text()))


def summarize_pyspy(raw: str, top: int = 30) -> str:
    """From py-spy's raw collapsed stacks (``thread (tid): name;frame;... count``): samples per thread, then
    the main thread's idle share, its busiest frames (inclusive) and its leaf frames."""
    per_thread: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    main_total = main_idle = 0
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        per_thread[frames[0]] += n
        if "MainThread" not in frames[0]:
            continue
        main_total += n
        leaf = frames[-1]
        if len(frames) == 1 or leaf.startswith("Runner.run ") or ".select (selectors.py" in leaf:
            main_idle += n  # waiting for events: in uvloop's C code, or in the standard loop's selector
            continue
        for frame in set(frames[1:]):
            inclusive[frame] += n
        leaves[frames[-1]] += n
    lines = ["samples per thread:"]
    lines += [f"{n:8d}  {thread}" for thread, n in per_thread.most_common()]
    if main_total:
        lines.append(f"\nmain thread: {main_total} samples, {100 * main_idle / main_total:.1f} % idle in the loop")
        lines.append("\nmain thread, inclusive (% of its samples):")
        lines += [f"{100 * n / main_total:6.1f}  {frame}" for frame, n in inclusive.most_common(top)]
        lines.append("\nmain thread, leaf frames (% of its samples):")
        lines += [f"{100 * n / main_total:6.1f}  {frame}" for frame, n in leaves.most_common(top)]
    return "\n".join(lines) + "\n"

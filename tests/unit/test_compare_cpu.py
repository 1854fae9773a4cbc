"""The CPU accounting of `bench/compare.py`: /proc/PID/stat parsing and CPU between two samples."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from comparison.harness import (  # noqa: E402  (bench/ is not a package on the path)
    CpuSample,
    cpu_between,
    cpu_sample,
    parse_proc_stat,
    proc_cpu,
)

# pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
STAT = "4242 (juice fs) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 1000 300 20 0 12 0 99 1 2\n"


def test_parse_proc_stat_counts_after_the_last_parenthesis() -> None:
    own, reaped = parse_proc_stat(STAT, ticks=100)
    assert own == pytest.approx(3.0)  # (250 + 50) / 100
    assert reaped == pytest.approx(13.0)  # (1000 + 300) / 100


def test_parse_proc_stat_rejects_a_truncated_line() -> None:
    with pytest.raises(ValueError):
        parse_proc_stat("4242 (jfs) S 1 2 3", ticks=100)


def test_proc_cpu_of_this_process_and_of_a_gone_one() -> None:
    cpu = proc_cpu(os.getpid())
    assert cpu is not None and cpu[0] >= 0
    assert proc_cpu(2**22 + 1) is None  # above pid_max: never a live process


def test_sample_splits_workers_from_supervisors() -> None:
    me, parent = os.getpid(), os.getppid()
    sample = cpu_sample({me: parent, parent: 1})
    assert set(sample.workers) == {me}
    assert set(sample.reaped) == {parent}


def test_same_worker_counts_its_difference() -> None:
    assert cpu_between(CpuSample({10: 2.0}, {}), CpuSample({10: 5.5}, {})) == pytest.approx(3.5)


def test_worker_started_in_between_counts_all_its_cpu() -> None:
    assert cpu_between(CpuSample({}, {}), CpuSample({11: 1.25}, {})) == pytest.approx(1.25)


def test_replaced_worker_is_accounted_through_its_supervisor() -> None:
    # worker 10 had 2 s at start, exited at 7 s (reaped: supervisor 9's children CPU 0 -> 7); new worker 11: 1 s
    start = CpuSample({10: 2.0}, {9: 0.0})
    end = CpuSample({11: 1.0}, {9: 7.0})
    assert cpu_between(start, end) == pytest.approx(5.0 + 1.0)


def test_replaced_worker_without_a_supervisor_cannot_be_accounted() -> None:
    assert cpu_between(CpuSample({10: 2.0}, {}), CpuSample({11: 1.0}, {})) is None
    assert cpu_between(CpuSample({10: 2.0}, {9: 0.0}), CpuSample({11: 1.0}, {9: 0.0})) is None

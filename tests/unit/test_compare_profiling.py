"""`bench/compare.py --profile`: the steps it accepts and the py-spy summary it writes (no profilers run)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from comparison.cli import parse_args  # noqa: E402  (bench/ is not a package on the path)
from comparison.profiling import STEPS, profiled, summarize_pyspy  # noqa: E402


def test_profile_steps_are_checked() -> None:
    assert parse_args(["--profile", "fio.rand_write, bench.small"]).profile == ["fio.rand_write", "bench.small"]
    assert parse_args([]).profile == []
    with pytest.raises(SystemExit):
        parse_args(["--profile", "fio.randwrite"])
    assert "ls.list" in STEPS and "md.stat" in STEPS


def test_an_unconfigured_or_unchosen_step_runs_without_profilers() -> None:
    ran = []
    with profiled("jfs", 1, "label", "fio.rand_write"):
        ran.append(1)
    assert ran == [1]


def test_pyspy_summary_counts_threads_idle_share_and_busy_frames() -> None:
    raw = "\n".join([
        "thread (1): MainThread;<module> (m.py:1);Runner.run (asyncio/runners.py:118) 50",
        "thread (1): MainThread;<module> (m.py:1);FileStore._put (file.py:412);_write_all (file.py:701) 30",
        "thread (1): MainThread;<module> (m.py:1);_run_once (base_events.py:1);EpollSelector.select (selectors.py:468) 10",
        "thread (1): MainThread;<module> (m.py:1);VFS.write (core.py:503) 10",
        "thread (7): jfs-file_0;_worker (thread.py:81) 100",
    ])  # fmt: skip
    text = summarize_pyspy(raw)
    assert "     100  thread (1): MainThread" in text and "     100  thread (7): jfs-file_0" in text
    assert "100 samples, 60.0 % idle in the loop" in text
    assert "  30.0  _write_all (file.py:701)" in text  # a leaf
    assert "  40.0  <module> (m.py:1)" in text  # inclusive of the busy samples only

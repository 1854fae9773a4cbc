"""`bench/scale.py`'s bookkeeping: checkpoints, the entry count dump/load divide by, the report's rows and
ratios, and that a failing command is reported with its CPU and memory left out."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import scale  # noqa: E402  (bench/ is not a package on the path)


def _args(*extra: str) -> object:
    return scale.parse_args(["--files", "20000", "--checkpoints", "2000", "--per-dir", "1000", "--big-dir", "5000",
                             "--remove", "5000", *extra])


def test_checkpoints_end_at_the_file_count() -> None:
    assert scale.checkpoints(_args()) == [2000, 20000]
    assert scale.checkpoints(scale.parse_args(["--files", "50000"])) == [10_000, 50_000]


def test_volume_entries_counts_what_the_mounted_phases_leave() -> None:
    # root + tree + 20 - 5 dirs + 15,000 files + big + big/d00000 + 5,000 files
    assert scale.volume_entries(_args()) == 1 + 1 + 15 + 15_000 + 2 + 5_000


def test_report_puts_cpu_under_its_phase_and_ratios_the_right_way() -> None:
    args = _args()
    jfs = scale.System("jfs", [], Path("/x"), "m", "l")
    juicefs = scale.System("juicefs", [], Path("/y"), "m", "l")
    jfs.results = {"create@2000 CPU µs/op": 300.0, "create@2000/s": 2000.0, "ls -l cold s": 1.0,
                   "create@20000/s": 1000.0, "load error": "load failed (1)"}
    juicefs.results = {"create@2000 CPU µs/op": 600.0, "create@2000/s": 1000.0, "ls -l cold s": 2.0}
    lines = scale.report([jfs, juicefs], args).splitlines()
    rows = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| phase")]
    assert [r.split(" | ")[0] for r in rows] == ["| create@2000/s", "| create@2000 CPU µs/op", "| ls -l cold s",
                                                 "| create@20000/s", "| load error"]
    assert rows[0].endswith("| 2.00× |")  # rate: jfs / JuiceFS
    assert rows[1].endswith("| 2.00× |")  # CPU: JuiceFS / jfs
    assert rows[2].endswith("| 2.00× |")  # seconds: JuiceFS / jfs
    assert "load failed (1)" in rows[4]
    assert any("create rate at 20,000 files = 0.50× its rate at 2,000" in ln for ln in lines)


def test_timed_child_reports_cpu_and_raises_on_failure() -> None:
    seconds, rss, cpu = scale.timed_child([sys.executable, "-c", "sum(range(3_000_000))"])
    assert seconds > 0 and rss > 1 and cpu > 0
    with pytest.raises(RuntimeError, match="failed"):
        scale.timed_child([sys.executable, "-c", "raise SystemExit(3)"])


@pytest.mark.parametrize(("files", "big"), [(2500, 0), (2500, 7), (0, 7)])
def test_synthetic_dump_holds_the_tree_and_the_listed_directory(tmp_path: Path, files: int, big: int) -> None:
    import json

    from scale_offline import write_dump

    dump = tmp_path / "dump.json"
    entries = write_dump(dump, files, 1000, str(tmp_path / "bucket"), big=big)
    doc = json.loads(dump.read_text())
    tree = doc["FSTree"]["entries"]
    dirs = [n for n in tree if n.startswith("d")]
    assert len(dirs) == -(-files // 1000)
    assert sum(len(tree[d]["entries"]) for d in dirs) == files
    inodes = [doc["FSTree"]["attr"]["inode"]]
    for node in tree.values():
        inodes.append(node["attr"]["inode"])
        inodes.extend(child["attr"]["inode"] for child in node["entries"].values())
    assert len(inodes) == len(set(inodes)) == doc["Counters"]["usedInodes"] == entries - 1
    assert doc["Counters"]["nextInodes"] > max(inodes)
    assert doc["FSTree"]["attr"]["nlink"] == len(tree) + 2
    if big:
        assert sorted(tree["big"]["entries"]) == [f"file-{i:07d}" for i in range(big)]
    else:
        assert "big" not in tree


def test_off_loop_cpu_counts_other_threads_not_the_main_one() -> None:
    import os
    import threading
    import time

    pid = os.getpid()
    before = scale.off_loop_cpu([pid])
    t0 = time.process_time()
    while time.process_time() - t0 < 0.3:  # the main thread's CPU: not counted
        pass
    assert scale.off_loop_cpu([pid]) - before < 0.1

    burnt, done = threading.Event(), threading.Event()

    def burn() -> None:
        t = time.thread_time()
        while time.thread_time() - t < 0.3:
            pass
        burnt.set()
        done.wait(10)  # alive while sampled: an exited thread leaves /proc/PID/task

    worker = threading.Thread(target=burn)
    worker.start()
    burnt.wait(10)
    assert scale.off_loop_cpu([pid]) - before >= 0.2
    done.set()
    worker.join()
    assert scale.off_loop_cpu([999_999_999]) == 0.0  # a process that is gone


def test_phase_cpu_records_the_engine_and_the_machine(tmp_path: Path) -> None:
    import subprocess
    import time

    # A stand-in "engine" process that burns CPU during the phase: its CPU per operation is recorded.
    burner = subprocess.Popen([sys.executable, "-c", "import time\nt=time.process_time()\n"
                               "while time.process_time()-t<0.4: pass\ntime.sleep(30)"])
    try:
        s = scale.System("juicefs", [], tmp_path, "m", "l", engine_pid=burner.pid)
        with s.cpu("stat@10", 1000):
            deadline = time.monotonic() + 20  # until the stand-in has burnt its CPU, however busy the machine
            while time.monotonic() < deadline and (scale.proc_cpu(burner.pid) or (0.0,))[0] < 0.35:
                time.sleep(0.05)
        assert s.results["stat@10 CPU engine µs/op"] >= 0.2 / 1000 * 1e6
        assert 0 < s.results["stat@10 CPU machine busy %"] <= 100
    finally:
        burner.kill()
        burner.wait()
    busy, total = scale.machine_ticks()
    assert 0 <= busy <= total
    jfs = scale.System("jfs", [], tmp_path, "m", "l")
    jfs.results = {"stat@10 CPU machine busy %": 50.0}
    lines = scale.report([jfs, s], _args()).splitlines()
    busy_row = next(ln for ln in lines if ln.startswith("| stat@10 CPU machine busy %"))
    assert busy_row.endswith("| – |")  # a share of the machine: no ratio

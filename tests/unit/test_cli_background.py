"""The background start of serving commands (`jfs.cli.background`): detached child, wait, one-line reason."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from jfs.app.errors import VolumeError
from jfs.cli.background import last_log_line, spawn_detached, start_detached, wait_for


def test_last_log_line_skips_blank_lines_and_answers_empty_without_a_log(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert last_log_line(str(log)) == ""
    log.write_text("")
    assert last_log_line(str(log)) == ""
    log.write_text("first\n  jfs: error: no volume  \n\n   \n")
    assert last_log_line(str(log)) == "jfs: error: no volume"


def test_a_child_that_exits_is_not_waited_for_and_its_output_is_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "sub" / "child.log"
    child = start_detached([sys.executable, "-c", "print('refused')"], str(log))
    assert not wait_for(child, lambda: False, timeout=30)
    assert child.wait(10) == 0
    assert last_log_line(str(log)) == "refused"


def test_ready_ends_the_wait(tmp_path: Path) -> None:
    child = start_detached([sys.executable, "-c", "import time; time.sleep(30)"], str(tmp_path / "c.log"))
    try:
        assert wait_for(child, lambda: True, timeout=5)
    finally:
        child.kill()
        child.wait()


def test_a_log_that_cannot_be_opened_is_one_volume_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(VolumeError, match="cannot open log file"):
        start_detached([sys.executable, "-c", "pass"], str(tmp_path / "file" / "x.log"))


def test_a_refusal_is_found_among_other_daemons_lines_in_a_shared_log(tmp_path: Path) -> None:
    """Other daemons append to the same log (the default /var/log/jfs.log) while the child fails: the
    one line reported is the child's refusal, never an older refusal or another daemon's warning."""
    log = tmp_path / "shared.log"
    log.write_text("jfs: error: an older refusal of another command\n")
    script = ("import sys; print('jfs: error: no volume found', flush=True); "
              "open(sys.argv[1], 'a').write('level=warning event=retry other_daemon=1\\n')")
    with pytest.raises(VolumeError) as info:
        spawn_detached([sys.executable, "-c", script, str(log)], lambda: False, "mount of /x", str(log), timeout=30)
    assert str(info.value) == "no volume found"
    assert last_log_line(str(log), since=log.stat().st_size) == ""


TELLS = ("import sys, time; sys.path[:0] = [{root!r}]; from jfs.cli.background import take_ready_fd, tell_ready; "
         "fd = take_ready_fd(); import os; assert 'JFS_READY_FD' not in os.environ; "
         "time.sleep(0.3); open({flag!r}, 'w').close(); tell_ready(fd); time.sleep(30)")


def test_the_ready_pipe_wakes_the_wait_when_the_child_serves(tmp_path: Path) -> None:
    """The child writes its ready byte (ADR 0069): `spawn_detached` asks `ready()` at once, not only every
    50 ms; the pipe is closed in the parent afterwards."""
    flag = tmp_path / "flag"

    def ready() -> bool:
        return flag.exists()

    root = str(Path(__file__).resolve().parents[2])
    child = spawn_detached([sys.executable, "-c", TELLS.format(root=root, flag=str(flag))], ready, "the child",
                           str(tmp_path / "c.log"), timeout=60, ready_pipe=True)
    try:
        assert flag.exists(), last_log_line(str(tmp_path / "c.log"))
    finally:
        child.kill()
        child.wait()


def test_a_closed_ready_pipe_falls_back_to_polling(tmp_path: Path) -> None:
    """A child that closes the pipe without writing (or never uses it): the wait polls every 50 ms, it does
    not spin on the pipe's end of file."""
    read_end, write_end = os.pipe()
    os.close(write_end)  # end of file at once
    calls: list[int] = []
    sleeper = start_detached([sys.executable, "-c", "import time; time.sleep(30)"], str(tmp_path / "s.log"))
    try:
        assert not wait_for(sleeper, lambda: bool(calls.append(1)), timeout=0.5, wake=read_end)
    finally:
        sleeper.kill()
        sleeper.wait()
        os.close(read_end)
    assert len(calls) <= 0.5 / 0.05 + 3

"""The CLI's one error boundary (`jfs.cli.errors`) and the one rich rendering of progress (`jfs.cli.progress`)."""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

import jfs.cli.main as cli
from jfs.adapters.kv.registry import BadMetaURL
from jfs.app.errors import ActiveSessions, JfsError, MdtestError, OpsError, RestoreError, VolumeError
from jfs.app.meta.engine import VolumeNotFormatted
from jfs.cli import errors, messages
from jfs.cli.progress import RichBoard
from jfs.domain.dumpfmt import DumpFormatError
from jfs.domain.errors import FSError
from jfs.ports.kv import EngineUnavailable
from jfs.ports.objects import ObjectStoreUnavailable


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = errors.State()  # the one state, which `errors` re-exports from `messages`
    monkeypatch.setattr(errors, "state", fresh)
    monkeypatch.setattr(messages, "state", fresh)


def reported(exc: BaseException, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = errors.report(exc)
    return status, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    "exc",
    [
        VolumeError("volume 'v' already exists"),
        OpsError("the dump has no 'Setting' section"),
        RestoreError("no trash directory '2026-01-01-00'"),
        MdtestError("the test path cannot be the root\nof the volume"),
        ActiveSessions("volume 'v' has 1 active session(s)", [{"Sid": 1}]),
        VolumeNotFormatted("no volume found in memory://x: run 'jfs format' first"),
        JfsError("x is not on a jfs mount"),
        EngineUnavailable("cannot connect to redis://db:6379"),
        ObjectStoreUnavailable("cannot connect to http://s3"),
        DumpFormatError("line 3: unexpected ']'"),
    ],
)
def test_every_user_facing_error_is_one_line(exc: BaseException, capsys: pytest.CaptureFixture[str]) -> None:
    status, lines = reported(exc, capsys)
    assert status == 1
    assert lines == [f"jfs: error: {' '.join(str(exc).split())}"]


def test_bad_arguments_exit_2_and_bugs_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert reported(BadMetaURL("unknown scheme 'foo'"), capsys) == (2, ["jfs: error: unknown scheme 'foo'"])
    status, lines = reported(KeyError("oops"), capsys)
    assert status == 1 and len(lines) == 1
    assert lines[0].startswith("jfs: error: internal error: KeyError") and "--debug" in lines[0]
    status, lines = reported(FSError(errno.ENOENT, "x"), capsys)
    assert status == 1 and len(lines) == 1


def test_secrets_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    errors.state.secrets.append("hunter22")
    _, lines = reported(VolumeError("redis://:hunter22@db refused"), capsys)
    assert lines == ["jfs: error: redis://:****@db refused"]


def test_a_command_failing_with_a_jfs_error_prints_one_line(tmp_path: Path) -> None:
    """`jfs info` on a path outside any jfs mount: the mount helper's JfsError, through the boundary."""
    result = CliRunner().invoke(cli.app, ["info", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"jfs: error: {tmp_path} is not on a jfs mount"]


def test_load_of_a_malformed_dump_is_one_line(tmp_path: Path) -> None:
    dump = tmp_path / "bad.json"
    dump.write_text('{"Setting": [')
    target = tmp_path / "target.db"
    result = CliRunner().invoke(cli.app, ["load", f"sqlite3://{target}", str(dump)])
    assert result.exit_code == 1, result.output
    errors_ = [line for line in result.stderr.splitlines() if line.startswith("jfs: error: ")]
    assert len(errors_) == 1 and "cannot load the dump" in errors_[0]
    assert "Traceback" not in result.output
    assert not target.exists()  # refused before the engine was opened


def test_rich_board_renders_bars_and_closes_counters() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    board = RichBoard(console)
    with board:
        counted = board.bar("Dumped entries", unit="entries")
        counted.advance(5)
        counted.close()
        sized = board.bar("Write big blocks", 4, unit="blocks")
        sized.advance(1)
        sized.set_total(2)
        sized.advance(1)
        sized.close()
    tasks: list[Any] = board._progress.tasks
    assert [(t.description, t.completed, t.total, t.finished) for t in tasks] == [
        ("Dumped entries", 5, 5, True),
        ("Write big blocks", 2, 2, True),
    ]
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "Dumped entries" in out and "entries/s" in out

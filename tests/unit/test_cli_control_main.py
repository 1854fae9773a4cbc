"""The mount-served commands (info, summary, rmr, warmup) enter through `jfs.cli.control_main`: the same
commands and help as through the full CLI, without importing the engines' and object stores' modules."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from jfs import cli
from jfs.cli import control_main, main


def test_the_light_entry_serves_exactly_the_mount_commands() -> None:
    registered = {c.name for c in control_main.app.registered_commands}
    assert registered == set(control_main.COMMANDS) == set(cli._SERVED_BY_A_MOUNT)


@pytest.mark.parametrize("command", sorted(control_main.COMMANDS))
def test_help_is_the_full_clis(command: str) -> None:
    runner = CliRunner()
    light = runner.invoke(control_main.app, [command, "--help"], prog_name="jfs", env={"COLUMNS": "100"})
    full = runner.invoke(main.app, [command, "--help"], prog_name="jfs", env={"COLUMNS": "100"})
    assert light.exit_code == full.exit_code == 0
    assert light.output == full.output


def test_the_light_entry_imports_no_engine() -> None:
    code = ("import sys, jfs.cli.control_main; "
            "print(sorted(m for m in sys.modules if m.startswith(('jfs.adapters', 'structlog', 'jfs.app.meta'))))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_a_path_off_any_mount_fails_with_one_line(tmp_path: object) -> None:
    res = subprocess.run([sys.executable, "-c", "from jfs.cli import run; run()", "summary", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.startswith("jfs: error: ") and res.stderr.count("\n") == 1

"""The ``jfs`` command group loads a command module only when one of its commands is used (ADR 0063): the
table in `jfs.cli.main` must say exactly what the modules register, ``--help`` must list every command in
that order, and a command must not pay for the others' imports (nor for pydantic through typer)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import typer
from typer.main import TyperInfo, get_group_from_info
from typer.testing import CliRunner

import jfs.cli.main as cli


def _registered_by(module: str) -> list[str]:
    scratch = typer.Typer()
    importlib.import_module(f"jfs.cli.{module}").register(scratch)
    group = get_group_from_info(TyperInfo(scratch), pretty_exceptions_short=True, suggest_commands=True,
                                rich_markup_mode="rich")
    return list(group.commands)


def test_the_table_lists_exactly_what_each_module_registers_in_order() -> None:
    modules = dict.fromkeys(m for _, m in cli.COMMANDS if m is not None)
    for module in modules:
        assert [n for n, m in cli.COMMANDS if m == module] == _registered_by(module), module
    own = [info.name or info.callback.__name__ for info in cli.app.registered_commands]
    assert [n for n, m in cli.COMMANDS if m is None] == own
    names = [n for n, _ in cli.COMMANDS]
    assert len(names) == len(set(names))


def test_help_lists_every_command_in_table_order() -> None:
    result = CliRunner().invoke(cli.app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = [line.strip("│ ").split(" ", 1)[0] for line in result.output.splitlines()]
    listed = [w for w in lines if w in {n for n, _ in cli.COMMANDS}]
    assert listed == [n for n, _ in cli.COMMANDS]


def test_a_mistyped_command_still_gets_a_hint_from_a_lazy_module() -> None:
    result = CliRunner().invoke(cli.app, ["statu"])
    assert result.exit_code == 2
    assert "'status'" in result.output


def test_a_command_of_a_lazy_module_runs_and_a_group_of_one_too() -> None:
    for args in (["status", "--help"], ["quota", "set", "--help"], ["gc", "--help"]):
        result = CliRunner().invoke(cli.app, args)
        assert result.exit_code == 0, (args, result.output)
        assert "Usage: jfs " + args[0] in " ".join(result.output.split())


def _modules_after(args: list[str], cwd: Path) -> set[str]:
    """The modules a fresh ``jfs ARGS`` process has imported when it ends."""
    code = (
        "import sys, json, atexit\n"
        "atexit.register(lambda: print('MODULES=' + json.dumps(sorted(sys.modules)), file=sys.__stderr__))\n"
        f"sys.argv = ['jfs'] + {args!r}\n"
        "from jfs.cli import run\n"
        "run()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stderr.splitlines() if x.startswith("MODULES="))
    return set(json.loads(line[len("MODULES="):]))


def test_status_and_gc_of_a_plain_volume_import_only_what_they_use(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    subprocess.run([sys.executable, "-m", "jfs.cli.main", "format", url, "lazy", "--storage", "file",
                    "--bucket", str(tmp_path / "bucket"), "--trash-days", "0"], check=True,
                   capture_output=True, timeout=120)
    never = {"pydantic", "jfs.cli.bench_cmd", "jfs.cli.observe_cmd", "jfs.cli.webdav_cmd", "jfs.cli.quota_cmd",
             "jfs.cli.dump_cmd", "jfs.cli.control_cmd", "cryptography", "awscrt", "zstandard", "cramjam",
             "jfs.app.vfs", "jfs.bootstrap", "boto3", "aiohttp", "fsspec"}
    for args in (["status", url], ["gc", url], ["version"]):
        loaded = _modules_after(args, tmp_path)
        assert not never & loaded, (args, sorted(never & loaded))
    assert "jfs.cli.maint_cmd" not in _modules_after(["status", url], tmp_path)


def test_help_lists_the_commands_without_logging_asyncio_or_engines(tmp_path: Path) -> None:
    loaded = _modules_after(["--help"], tmp_path)
    assert "jfs.cli.dump_cmd" in loaded  # every command module, for their help lines
    assert not {"structlog", "asyncio", "pydantic", "jfs.compose", "jfs.adapters.kv.base"} & loaded

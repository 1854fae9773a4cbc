"""What a ``jfs`` command imports before doing anything (ADR 0081): light commands do not load the heavy
libraries again, structlog comes without rich, and logging is still configured before the first event."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from jfs.cli import installed_version

HEAVY = {"typer", "rich", "structlog", "asyncio", "pydantic", "importlib.metadata", "ssl", "jfs.cli.main",
         "jfs.compose"}


def _run(args: list[str], cwd: Path, prelude: str = "") -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """A fresh ``jfs ARGS`` process (entered as the console script is) and the modules it had imported."""
    code = (
        "import sys, json, atexit\n"
        "atexit.register(lambda: print('MODULES=' + json.dumps(sorted(sys.modules)), file=sys.__stderr__))\n"
        f"{prelude}\n"
        f"sys.argv = ['jfs'] + {args!r}\n"
        "from jfs.cli import run\n"
        "run()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)
    line = next(x for x in out.stderr.splitlines() if x.startswith("MODULES="))
    out.stderr = "".join(x + "\n" for x in out.stderr.splitlines() if not x.startswith("MODULES="))
    return out, set(json.loads(line[len("MODULES="):]))


@pytest.mark.parametrize("args", [["version"], ["--version"], ["-V"]])
def test_version_imports_none_of_the_heavy_modules(args: list[str], tmp_path: Path) -> None:
    out, loaded = _run(args, tmp_path)
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout == f"jfs version {version('jfs')}\n"
    assert not HEAVY & loaded, sorted(HEAVY & loaded)


def test_version_help_is_still_typers(tmp_path: Path) -> None:
    out, _ = _run(["version", "--help"], tmp_path)
    assert out.returncode == 0 and "Usage: jfs version" in out.stdout


def test_installed_version_is_importlib_metadatas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert installed_version() == version("jfs")
    monkeypatch.chdir(tmp_path)  # "" on sys.path now lists a directory without jfs metadata
    assert installed_version() == version("jfs")


def test_command_help_configures_no_logging(tmp_path: Path) -> None:
    out, loaded = _run(["gc", "--help"], tmp_path)
    assert out.returncode == 0 and "Usage: jfs gc" in out.stdout
    assert not {"structlog", "asyncio", "pydantic", "jfs.compose"} & loaded


def test_info_and_summary_convert_paths_without_pydantic(tmp_path: Path) -> None:
    for command in ("info", "summary"):
        out, loaded = _run([command, str(tmp_path)], tmp_path)
        assert out.returncode == 1 and out.stderr.startswith("jfs: error: ") and out.stderr.count("\n") == 1
        assert "pydantic" not in loaded, command
        if command == "info":  # plain lines: no rich either
            assert not {"rich", "structlog", "asyncio"} & loaded


def test_a_command_that_logs_gets_one_logfmt_line_per_event_and_structlog_without_rich(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    out, loaded = _run(["-v", "status", url], tmp_path)
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    event = next(x for x in lines if "event=sqlite_opened" in x)  # logged by the engine: logging was configured
    assert event.startswith("timestamp=") and " level=debug " in event and " logger=jfs.kv" in event
    assert lines[-1].startswith("jfs: error: no volume found")
    assert "structlog" in loaded
    assert not {"rich.pretty", "rich.traceback", "pydantic"} & loaded


def test_structlog_is_imported_without_rich_and_rich_still_works(tmp_path: Path) -> None:
    code = ("import jfs.cli, structlog, structlog.dev, structlog.tracebacks, sys\n"
            "assert structlog.dev.rich is None and structlog.tracebacks.rich is None\n"
            "assert not any(m == 'rich' or m.startswith('rich.') for m in sys.modules), 'rich imported'\n"
            "import rich.console\n"
            "from jfs.cli import structlog_import\n"
            "assert structlog_import._Finder not in sys.meta_path\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.stdout == "ok\n", out.stderr


def test_looking_structlog_up_does_not_spend_the_finder(tmp_path: Path) -> None:
    code = ("import importlib.util, sys, jfs.cli\n"
            "from jfs.cli import structlog_import\n"
            "assert importlib.util.find_spec('structlog') is not None and 'structlog' not in sys.modules\n"
            "assert structlog_import._Finder in sys.meta_path\n"
            "import structlog.dev\n"
            "assert structlog.dev.rich is None and structlog_import._Finder not in sys.meta_path\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.stdout == "ok\n", out.stderr


def test_rich_modules_imported_before_structlog_are_kept(tmp_path: Path) -> None:
    code = ("import rich.console, sys\n"
            "before = sys.modules['rich.console']\n"
            "import jfs.cli, structlog\n"
            "assert sys.modules['rich.console'] is before and sys.modules['rich'] is not None\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.stdout == "ok\n", out.stderr


def test_when_imported_runs_now_or_right_after_the_import(tmp_path: Path) -> None:
    code = ("import sys\n"
            "from jfs.cli import structlog_import\n"
            "seen = []\n"
            "structlog_import.when_imported(lambda: seen.append('structlog' in sys.modules))\n"
            "assert seen == []\n"
            "import structlog\n"
            "assert seen == [True]\n"
            "structlog_import.when_imported(lambda: seen.append('again'))\n"
            "assert seen == [True, 'again']\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.stdout == "ok\n", out.stderr


def test_the_terminal_traceback_is_structlogs_rich_one(tmp_path: Path) -> None:
    """`jfs.cli.logs.RichTraceback` renders what structlog's `RichTracebackFormatter(show_locals=False)`
    renders (compared in a process whose structlog was imported with rich)."""
    code = ("import io, structlog, structlog.dev\n"
            "assert structlog.dev.rich is not None\n"
            "from jfs.cli.logs import RichTraceback\n"
            "def boom(secret='hunter2'):\n"
            "    raise ValueError('bad')\n"
            "try:\n"
            "    boom()\n"
            "except ValueError as exc:\n"
            "    info = (type(exc), exc, exc.__traceback__)\n"
            "ours, theirs = io.StringIO(), io.StringIO()\n"
            "RichTraceback()(ours, info)\n"
            "structlog.dev.RichTracebackFormatter(show_locals=False)(theirs, info)\n"
            "assert ours.getvalue() == theirs.getvalue(), (ours.getvalue(), theirs.getvalue())\n"
            "assert 'ValueError' in ours.getvalue() and 'hunter2' not in ours.getvalue()\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                         env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"})
    assert out.stdout == "ok\n", out.stderr

"""The shape every module of the `jfs` package keeps (issue 19): a module docstring that states what it holds,
at most 800 lines, a name that says what it holds, and a command line whose top (`jfs.cli.main`) no other
module imports. No allow-list: a module that breaks a rule is split, documented, renamed or rewired, not
excused here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "jfs"
MAX_LINES = 800
MIN_DOCSTRING = 40
"""Characters: a docstring shorter than this names the module, it does not state a contract."""

MODULES = sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def test_the_package_is_found() -> None:
    assert len(MODULES) > 100, PACKAGE


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_module_states_its_contract_in_a_docstring(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    assert doc, f"{_name(path)} has no module docstring: say what it holds, its invariants and its errors"
    assert len(doc) >= MIN_DOCSTRING, f"{_name(path)}: a docstring of {len(doc)} characters states no contract"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_module_is_at_most_800_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{_name(path)} has {lines} lines (> {MAX_LINES}): split it by what it holds"


VAGUE_NAMES = frozenset({"common", "helper", "helpers", "info", "internal", "misc", "stuff", "tools", "util", "utils"})
"""Module names that say nothing of what they hold (issue 19 renamed `tools`, `internal` and `info`)."""


def test_module_names_say_what_they_hold() -> None:
    vague = [_name(p) for p in MODULES if p.stem in VAGUE_NAMES or p.stem.removesuffix("_cmd") in VAGUE_NAMES]
    assert vague == [], "name the module after what it holds (e.g. tree_jobs, virtual_files, inode_info)"


def _imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_module_imports_the_top_of_the_command_line() -> None:
    """Shared CLI helpers live in `jfs.cli.app_calls`, `render`, `errors`, `control_client`: importing
    `jfs.cli.main` from a command module made a cycle and reached for its private names. Only the console
    script's entry point (`jfs.cli.run`, in the package's ``__init__``) starts it."""
    entry_point = PACKAGE / "cli" / "__init__.py"
    offenders = [_name(p) for p in MODULES if p != entry_point and "jfs.cli.main" in _imports_of(p)]
    assert offenders == []


def test_the_rules_see_what_they_check(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from jfs.cli import main as cli\nx = 1\n", encoding="utf-8")
    assert "jfs.cli.main" in _imports_of(bad)
    assert ast.get_docstring(ast.parse(bad.read_text(encoding="utf-8"))) is None

"""`jfs summary` without typer and rich (`jfs.cli.summary_plain`, ADR 0083): the plain forms it takes, and
the tree it draws is byte for byte what rich draws on a non-terminal stdout — or it leaves the drawing to
rich."""

from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from jfs.cli.summary_plain import SummaryArgs, plain_args, plain_tree, rich_tree


def _rich(doc: dict[str, Any]) -> str:
    """What `jfs.cli.render.stdout_console` prints for the tree on a non-terminal."""
    buf = io.StringIO()
    Console(file=buf, highlight=False, width=200, color_system=None).print(rich_tree(doc))
    return buf.getvalue()


def _node(name: str, typ: str = "regular", *, children: list[dict[str, Any]] | None = None,
          denied: bool = False, size: int = 5000) -> dict[str, Any]:
    node: dict[str, Any] = {"name": name, "inode": 7, "type": typ, "files": 3, "dirs": 1 if typ == "directory" else 0,
                            "length": size, "space": size * 3, "unreadable": 0}
    if children is not None:
        node["children"] = children
    if denied:
        node["denied"] = True
    return node


def test_the_usual_tree_is_drawn_as_rich_draws_it() -> None:
    leaf = [_node(f"f{i:05d}") for i in range(3)] + [_node("...", "other")]
    doc = _node("tree", "directory", children=[
        _node("d0", "directory", children=leaf),
        _node("d1", "directory", children=[_node("x y [dim]z[/dim] [A]", size=3 << 30), _node("no", "directory", denied=True)]),
        _node("d2", "directory", children=[]),
        _node("link", "symlink", size=0),
    ])
    drawn = plain_tree(doc)
    assert drawn is not None
    assert drawn == _rich(doc)
    assert "├── d0/" in drawn and "│   └── ..." in drawn and "└── link" in drawn


def test_names_that_look_like_markup_are_drawn_as_rich_draws_them() -> None:
    odd = ["[/]", "[bold]x[/bold]", "[@click]", "[#fff]", "a]b[", "[", "]", "[link=x]y", "ends with [b]", " lead",
           "trail ", "/", "..."]
    doc = _node("/", "directory", children=[_node(n, t) for n in odd for t in ("directory", "regular")])
    drawn = plain_tree(doc)
    assert drawn is not None
    assert drawn == _rich(doc)


def test_a_root_without_children_is_one_line() -> None:
    doc = _node("file", size=0)
    assert plain_tree(doc) == _rich(doc)


def test_names_rich_might_draw_otherwise_are_left_to_rich() -> None:
    for name in (":smile:", "tab\there", "back\\slash", "é", "wide界", "x" * 195):
        doc = _node("top", "directory", children=[_node(name)])
        assert plain_tree(doc) is None, name


def test_a_deep_long_line_is_left_to_rich() -> None:
    doc = _node("t", "directory")
    node = doc
    for _ in range(60):  # 4 columns of guides per level
        child = _node("d", "directory", children=[])
        node["children"] = [child]
        node = child
    assert plain_tree(doc) is None
    assert plain_tree(_node("t", "directory", children=[_node("d", "directory", children=[])])) is not None


names = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=40)


@st.composite
def trees(draw: st.DrawFn, level: int = 0) -> dict[str, Any]:
    typ = draw(st.sampled_from(["directory", "regular", "symlink", "other"]))
    kids = None
    if typ == "directory" and level < 3:
        kids = draw(st.lists(trees(level + 1), max_size=4))
    return _node(draw(names), typ, children=kids, denied=typ == "directory" and draw(st.booleans()) and not kids,
                 size=draw(st.integers(0, 1 << 50)))


@settings(max_examples=200, deadline=None)
@given(trees())
def test_any_tree_is_drawn_as_rich_draws_it_or_left_to_rich(doc: dict[str, Any]) -> None:
    drawn = plain_tree(doc)
    if drawn is not None:
        assert drawn == _rich(doc)


def test_plain_args() -> None:
    assert plain_args(["/m"]) == SummaryArgs("/m", 2, 10, False)
    assert plain_args(["/m", "--depth", "0", "-e", "3", "--json"]) == SummaryArgs("/m", 0, 3, True)
    assert plain_args(["--entries=0", "-d", "5", "--", "-odd"]) == SummaryArgs("-odd", 5, 0, False)
    for left_to_typer in ([], ["--help"], ["/a", "/b"], ["/m", "-d"], ["/m", "-d", "-1"], ["/m", "--depth", "x"],
                          ["/m", "-d=3"], ["/m", "--bogus"], [""], ["/m", "-d", "١"]):
        assert plain_args(left_to_typer) is None, left_to_typer


def test_plain_and_typer_entries_fail_alike(tmp_path: object) -> None:
    missing = f"{tmp_path}/missing"
    plain = subprocess.run([sys.executable, "-c", "from jfs.cli import run; run()", "summary", missing],
                           capture_output=True, text=True)
    typer_ = subprocess.run([sys.executable, "-c", "from jfs.cli import run; run()", "summary", missing, "--depth=1x"],
                            capture_output=True, text=True)
    full = subprocess.run([sys.executable, "-m", "jfs.cli.main", "summary", missing],
                          capture_output=True, text=True)
    assert plain.returncode == full.returncode == 1
    assert plain.stderr == full.stderr == f"jfs: error: {missing}: No such file or directory\n"
    assert typer_.returncode == 2  # typer's usage error: the plain entry left it alone


def test_the_plain_entry_imports_neither_typer_nor_rich(tmp_path: object) -> None:
    code = ("import sys; sys.argv = ['jfs', 'summary', sys.argv[1]]\n"
            "from jfs.cli import run\n"
            "try:\n    run()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', 'click')))")
    out = subprocess.run([sys.executable, "-c", code, f"{tmp_path}/missing"], capture_output=True, text=True).stdout
    assert out.strip() == "[]"

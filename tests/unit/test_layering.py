"""The import rules of the hexagonal layout, checked on the source with `ast` (nothing is imported).

* ``jfs/domain``: pure rules. Standard library and ``jfs.domain`` only, and no I/O or concurrency module.
* ``jfs/ports``: the interfaces. Standard library, ``jfs.domain`` and ``jfs.ports`` only.
* ``jfs/app``: use cases on the ports. Never imports ``jfs.adapters``, the composition roots
  (``jfs.compose``, ``jfs.bootstrap``) or ``jfs.cli``: it receives opened ports (`KV`, `Meta`, `ObjectStore`).
* ``jfs/adapters``: driven adapters (kv, objects) implement ports and never import ``jfs.app``; driving adapters
  (fuse) call the use cases in ``jfs.app``. No adapter imports ``jfs.cli``.
* ``jfs/sdk``: a face on the VFS; builds its client through ``jfs/bootstrap.py``, never imports adapters or cli.
* ``jfs/cli``, the composition roots ``jfs/compose.py`` and ``jfs/bootstrap.py`` may import anything.

Inside ``jfs/app`` (ADR 0018):

* ``jfs/app/meta``, the metadata engine, imports from ``jfs.app`` only itself, ``jfs.app.errors`` and
  ``jfs.app.metrics``: the data path, the VFS, the ops tools and the loose use cases are its clients.
* ``jfs/app/ops``, the operator tools, work on the engine and the data path, never on the VFS or the
  object view (``jfs.app.vfs``, ``jfs.app.objectview``).
* Outside ``jfs/app/meta`` nothing imports a private name (``_x``) of the engine's modules: what the
  tools need from the engine is public there.

Imports inside functions and ``if TYPE_CHECKING:`` blocks count, and so do literal
``importlib.import_module("…")`` / ``__import__("…")`` calls.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "jfs"

STDLIB = frozenset(sys.stdlib_module_names)
# Domain code must be deterministic and free of I/O: these modules mean sockets, processes, threads or loops.
IO_MODULES = (
    "asyncio",
    "socket",
    "sqlite3",
    "subprocess",
    "threading",
    "_thread",
    "multiprocessing",
    "concurrent",
    "selectors",
    "ssl",
    "http",
    "urllib.request",
    "ftplib",
    "smtplib",
)


@dataclass(frozen=True)
class Import:
    file: Path
    line: int
    target: str
    """Absolute dotted name; for ``from a import b`` both ``a`` and ``a.b`` are checked."""

    def __str__(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, source: str | None = None) -> Iterator[Import]:
    """Every module `path` imports, relative imports resolved."""
    tree = ast.parse(source if source is not None else path.read_text(), filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield Import(path, node.lineno, base)
            for alias in node.names:
                if alias.name != "*":
                    yield Import(path, node.lineno, f"{base}.{alias.name}")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield Import(path, node.lineno, node.args[0].value)


def under(target: str, *prefixes: str) -> bool:
    return any(target == p or target.startswith(p + ".") for p in prefixes)


def is_stdlib(target: str) -> bool:
    return target.split(".")[0] in STDLIB


Rule = Callable[[Import], str | None]


def domain_rule(imp: Import) -> str | None:
    t = imp.target
    if under(t, *IO_MODULES):
        return "jfs/domain may not do I/O or concurrency"
    if t == "jfs" or under(t, "jfs.domain") or is_stdlib(t):
        return None
    return "jfs/domain may import only the standard library and jfs.domain"


def ports_rule(imp: Import) -> str | None:
    t = imp.target
    if t == "jfs" or under(t, "jfs.domain", "jfs.ports") or is_stdlib(t):
        return None
    return "jfs/ports may import only the standard library, jfs.domain and jfs.ports"


COMPOSITION_ROOTS = ("jfs.compose", "jfs.bootstrap")
"""Build live adapters from a META-URL; only the faces (cli, sdk, gateways) use them."""


def app_rule(imp: Import) -> str | None:
    if under(imp.target, "jfs.adapters"):
        return "jfs/app may not import jfs.adapters (use cases receive opened ports)"
    if under(imp.target, *COMPOSITION_ROOTS):
        return "jfs/app may not import a composition root (jfs.compose, jfs.bootstrap)"
    if under(imp.target, "jfs.cli"):
        return "jfs/app may not import jfs.cli"
    return None


DRIVING_ADAPTERS = ("fuse", "s3gw", "webdav")
"""Adapters on the driving side (the kernel calls them; they call the use cases in jfs/app)."""


def adapters_rule(imp: Import) -> str | None:
    if under(imp.target, "jfs.cli"):
        return "jfs/adapters may not import jfs.cli"
    driving = any(imp.file.is_relative_to(PACKAGE / "adapters" / d) for d in DRIVING_ADAPTERS)
    if under(imp.target, "jfs.app") and not driving:
        return "driven adapters (kv, objects) may not import jfs.app"
    return None


def sdk_rule(imp: Import) -> str | None:
    if under(imp.target, "jfs.adapters"):
        return "jfs/sdk is a face on the VFS: it builds clients through jfs.bootstrap, never adapters"
    if under(imp.target, "jfs.cli"):
        return "jfs/sdk may not import jfs.cli"
    return None


META_MAY_IMPORT = ("jfs.app.meta", "jfs.app.errors", "jfs.app.metrics")
"""What the metadata engine may import from jfs.app (beyond jfs.app itself, the package)."""


def meta_rule(imp: Import) -> str | None:
    t = imp.target
    if under(t, "jfs.app") and t != "jfs.app" and not under(t, *META_MAY_IMPORT):
        return "jfs/app/meta may import from jfs.app only itself, jfs.app.errors and jfs.app.metrics"
    return app_rule(imp)


def ops_rule(imp: Import) -> str | None:
    if under(imp.target, "jfs.app.vfs", "jfs.app.objectview"):
        return "jfs/app/ops works on the engine and the data path, not on the VFS"
    return app_rule(imp)


def private_meta_rule(imp: Import) -> str | None:
    t = imp.target
    if imp.file.is_relative_to(PACKAGE / "app" / "meta") or not under(t, "jfs.app.meta"):
        return None
    if any(part.startswith("_") and not part.startswith("__") for part in t.split(".")[3:]):
        return "only jfs/app/meta may use the engine's private names"
    return None


RULES: dict[str, Rule] = {
    "domain": domain_rule,
    "ports": ports_rule,
    "app": app_rule,
    "adapters": adapters_rule,
    "sdk": sdk_rule,
    "app/meta": meta_rule,
    "app/ops": ops_rule,
    ".": private_meta_rule,
}
"""Directory under jfs/ → the rule every module below it obeys (on top of the rules of enclosing layers)."""


def violations(layer: str, rule: Rule) -> list[str]:
    """One line per offending import statement (`file:line imports module  (rule)`), sorted."""
    found: dict[tuple[Path, int, str], Import] = {}
    for path in sorted((PACKAGE / layer).resolve().rglob("*.py")):
        for imp in imports_of(path):
            reason = rule(imp)
            key = (imp.file, imp.line, reason or "")
            if reason and (key not in found or len(imp.target) < len(found[key].target)):
                found[key] = imp  # `from a import b` yields a and a.b: name the module once
    return [f"  {imp}  ({reason})" for (_, _, reason), imp in sorted(found.items(), key=lambda kv: kv[0][:2])]


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports(layer: str) -> None:
    found = violations(layer, RULES[layer])
    if found:
        pytest.fail(f"{len(found)} forbidden import(s) in jfs/{layer}:\n" + "\n".join(found), pytrace=False)


def test_layers_exist() -> None:
    """Guards against a vacuous pass: the layers the rules talk about are there and have modules."""
    for layer in ("domain", "ports", "app/meta", "app/ops"):
        assert list((PACKAGE / layer).rglob("*.py")), f"jfs/{layer} has no modules"


def _fake(rel: str, source: str) -> list[str]:
    """The reasons the rules give against `source` placed at `rel` (every rule whose directory holds it)."""
    path = ROOT / rel
    rules = [rule for layer, rule in RULES.items() if path.is_relative_to((PACKAGE / layer).resolve())]
    return [reason for imp in imports_of(path, source) for rule in rules if (reason := rule(imp))]


def test_checker_catches_violations() -> None:
    assert _fake("jfs/domain/x.py", "import asyncio\n")
    assert _fake("jfs/domain/x.py", "from concurrent.futures import ThreadPoolExecutor\n")
    assert _fake("jfs/domain/x.py", "def f():\n    import sqlite3\n")
    assert _fake("jfs/domain/x.py", "import structlog\n")
    assert _fake("jfs/domain/x.py", "from ..ports import kv\n")
    assert _fake("jfs/domain/x.py", "from jfs import adapters\n")
    assert _fake("jfs/ports/x.py", "from jfs.app import volume\n")
    assert _fake("jfs/app/meta/x.py", "from jfs.adapters.kv import registry\n")
    assert _fake("jfs/app/meta/x.py", "from ...adapters.kv.sqlite import open_sqlite\n")
    assert _fake("jfs/app/x.py", "import importlib\nimportlib.import_module('jfs.adapters.kv.redis')\n")
    assert _fake("jfs/app/ops/x.py", "from jfs.compose import open_engine\n")
    assert _fake("jfs/app/ops/x.py", "def f():\n    from jfs import compose\n")
    assert _fake("jfs/app/x.py", "from jfs.bootstrap import open_client\n")
    assert _fake("jfs/app/volume.py", "from jfs.adapters.objects.registry import open_store\n")
    assert _fake("jfs/adapters/kv/x.py", "from jfs.app.volume import VolumeError\n")
    assert _fake("jfs/sdk/x.py", "from jfs.adapters.kv.sqlite import open_sqlite\n")
    assert _fake("jfs/adapters/objects/x.py", "import jfs.cli.main\n")
    assert _fake("jfs/app/meta/x.py", "from jfs.app.ops import restore\n")
    assert _fake("jfs/app/meta/x.py", "def f():\n    from jfs.app.ops.gc import run_gc\n")
    assert _fake("jfs/app/meta/x.py", "from jfs.app import tools\n")
    assert _fake("jfs/app/meta/x.py", "from ..data import writer\n")
    assert _fake("jfs/app/meta/x.py", "import jfs.app.vfs\n")
    assert _fake("jfs/app/ops/x.py", "from jfs.app.vfs import Vfs\n")
    assert _fake("jfs/app/ops/gc/x.py", "from jfs.app.meta.quota import _chain\n")
    assert _fake("jfs/app/x.py", "from jfs.app.meta.trash_purge import _empty_dir\n")
    assert _fake("jfs/cli/x.py", "from jfs.app.meta import _secret\n")


def test_checker_allows_what_the_rules_allow() -> None:
    assert not _fake(
        "jfs/domain/x.py", "import json, re\nfrom dataclasses import dataclass\nfrom .errors import FSError\n"
    )
    assert not _fake("jfs/ports/x.py", "from typing import Protocol\nfrom jfs.domain.errors import FSError\n")
    assert not _fake("jfs/app/meta/x.py", "from jfs.ports.kv import KV\nfrom jfs.domain import keys\n")
    assert not _fake("jfs/adapters/kv/x.py", "from jfs.ports.kv import KV\nimport redis.asyncio\n")
    assert not _fake("jfs/app/meta/x.py", "from jfs.app import errors\nfrom jfs.app.meta import store, _x\n")
    assert not _fake("jfs/app/meta/x.py", "from jfs.app.metrics import TimedKV\nfrom .quota import _chain\n")
    assert not _fake("jfs/app/ops/x.py", "from jfs.app.meta import reader\nfrom jfs.app.data import writer\n")
    assert not _fake("jfs/app/ops/x.py", "from jfs.app.meta.quota import __doc__\n")

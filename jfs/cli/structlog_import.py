"""structlog for the ``jfs`` processes without rich, and configured the moment it is first imported (ADR 0081).

``import structlog`` imports all of structlog: `structlog.dev` and `structlog.tracebacks` import rich's
console, traceback and pretty-printer when rich is installed (~40–80 ms of CPU, a fifth of a ``jfs`` command's
start), only to offer rich tracebacks to `structlog.dev.ConsoleRenderer` and rich reprs of locals to the dict
tracebacks. jfs uses neither as structlog's default: its terminal renderer gets an explicit formatter
(`jfs.cli.logs.RichTraceback`, rich imported when an exception is first rendered) and its logfmt renderer
formats exceptions as plain text. So `install` (called by the `jfs.cli` package's import, before any jfs
module can import structlog) puts a finder first on `sys.meta_path` that runs structlog's own import with
``rich`` hidden (`sys.modules["rich"] = None` during it; rich modules already imported are put back after):
structlog then takes its documented "rich is not installed" path (``structlog.dev.rich is None``). rich itself
stays importable for everything else. The finder removes itself on its first use.

`when_imported(callback)` runs `callback` at once when structlog is imported, else right after its import
(before the importing module goes on, so before any event can be logged): the CLI configures logging that
way, and a command that never imports structlog (``jfs version``, ``--help``) never pays for it.

Contract: structlog's behaviour is its own "without rich" behaviour; no structlog module is patched. A process
that imported structlog before `jfs.cli` (a test runner, an SDK host) keeps its rich-enabled structlog; jfs
renders the same lines either way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

_callbacks: list[Callable[[], None]] = []


def when_imported(callback: Callable[[], None]) -> None:
    """Run `callback` now if structlog is imported, else right after structlog's first import."""
    if "structlog" in sys.modules:
        callback()
    else:
        _callbacks.append(callback)


def _without_rich(run: Callable[[], None]) -> None:
    """Run `run` while ``import rich`` (and ``rich.*``) fails; the rich modules imported before are restored."""
    hidden = {name: mod for name, mod in sys.modules.items() if name == "rich" or name.startswith("rich.")}
    for name in hidden:
        del sys.modules[name]
    sys.modules["rich"] = None  # type: ignore[assignment]  # the import system's "not importable" marker
    try:
        run()
    finally:
        if sys.modules.get("rich", 0) is None:
            del sys.modules["rich"]
        sys.modules.update(hidden)


class _Loader:
    """Wraps structlog's loader: its module is executed with rich hidden, then the pending callbacks run."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        uninstall()
        module.__loader__ = self.inner
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        _without_rich(lambda: self.inner.exec_module(module))
        callbacks = _callbacks[:]
        _callbacks.clear()
        for callback in callbacks:
            callback()


class _Finder:
    """A `sys.meta_path` finder for the name ``structlog`` only; removed once structlog's module runs (a mere
    `importlib.util.find_spec("structlog")` leaves it in place)."""

    _finding = False

    @classmethod
    def find_spec(cls, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "structlog" or cls._finding:
            return None
        from importlib.util import find_spec

        cls._finding = True
        try:
            spec = find_spec(name)  # the other finders (this one answers None meanwhile): site-packages
        finally:
            cls._finding = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            uninstall()
            return spec
        spec.loader = _Loader(spec.loader)  # type: ignore[assignment]  # a Loader by protocol
        return spec


def install() -> None:
    """Import structlog without rich from now on (no-op when it is already imported)."""
    if "structlog" not in sys.modules and _Finder not in sys.meta_path:
        sys.meta_path.insert(0, _Finder)  # type: ignore[arg-type]


def uninstall() -> None:
    while _Finder in sys.meta_path:
        sys.meta_path.remove(_Finder)  # type: ignore[arg-type]

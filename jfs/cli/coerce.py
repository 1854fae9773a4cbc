"""Command-line values converted without pydantic when the conversion is plain (ADR 0063).

Typer (0.2x) converts every option and argument value through a pydantic ``TypeAdapter`` built on first use:
importing pydantic and building the adapters costs about 0.1 s of CPU in every ``jfs`` command, more than
the commands' own work on a small volume. After `install`, each parameter gets a `PlainParam` instead: it converts the values whose result is certain — a ``str``, an
``int``/``float`` written as plain decimal digits inside the parameter's range, a member of an ``Enum``
choice, the value of a ``parser=`` that accepts it — exactly as typer's adapter would, and hands
anything else (a malformed or out-of-range number, bytes, lists, paths, files, dates, ...) to typer's own
adapter, built then: typer's messages and results are unchanged, only the common case skips pydantic.

Contract: for every value, ``PlainParam`` returns what typer's adapter returns, or raises what it raises
(tests/unit/test_cli_coerce.py compares the two on every parameter of the ``jfs`` commands). With a typer
that has no ``typer._coercion`` (older releases convert through click, without pydantic) `install` does
nothing.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, get_args

try:  # typer >= 0.2x: pydantic-based conversion
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer._param_types import coerce_cli_choice
    from typer.core import _TyperParameter
except ImportError:  # pragma: no cover - older typer: click converts, nothing to skip
    RuntimeParam = None  # type: ignore[assignment,misc]

_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,15})?")
_MISS = object()


def _plain_value(descriptor: Any, value: Any, ctx: Any = None) -> Any:
    """`value` converted as typer's adapter would, or `_MISS` when that is not certain."""
    info = descriptor.parameter_info
    annotation = descriptor.annotation
    if descriptor.is_list or descriptor.is_tuple:
        # ``list[str]`` given strings (``jfs info PATH...``, ADR 0081): the adapter's list of them; every other
        # list or tuple, typer's adapter every time
        if (descriptor.is_list and get_args(annotation) == (str,) and info.parser is None
                and type(value) in (list, tuple) and all(type(item) is str for item in value)):
            return list(value)
        return _MISS
    if info.parser is not None:  # typer's adapter: the parser's result as it is, whatever the annotation
        try:
            return info.parser(value)
        except Exception:  # noqa: BLE001 - the adapter runs it again and words the error
            return _MISS
    if annotation is str:
        return value if type(value) is str else _MISS
    if annotation is bool:
        return value if type(value) is bool else _MISS
    if annotation is int or annotation is float:
        if type(value) is annotation:
            number = value
        elif type(value) is str and (_INT if annotation is int else _FLOAT).fullmatch(value):
            number = annotation(value)
        else:
            return _MISS
        if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
            return _MISS  # clamped or refused: the adapter decides
        return number
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        try:
            return coerce_cli_choice(value, choices=tuple(annotation), case_sensitive=info.case_sensitive, ctx=ctx)
        except ValueError:
            return _MISS
    return _MISS


if RuntimeParam is not None:

    class PlainParam(RuntimeParam):  # type: ignore[misc,valid-type]
        """A parameter's conversion: plain values here, the rest through typer's own (pydantic) one."""

        def __init__(self, descriptor: Any) -> None:
            super().__init__(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation)
            object.__setattr__(self, "descriptor", descriptor)
            object.__setattr__(self, "fallback", None)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            result = _plain_value(self.descriptor, value, ctx)
            if result is not _MISS:
                return result
            if self.fallback is None:
                object.__setattr__(self, "fallback", build_runtime_param(self.descriptor))
            return self.fallback._coerce_value(value, param=param, ctx=ctx)


def _plain_enough(descriptor: Any) -> bool:
    """Whether `PlainParam` can take a share of this parameter's values (not files, paths). A list or tuple
    option gets one too: typer's `RuntimeParam.coerce` answers its absence (``None``) without converting, so
    an option not given (``jfs mount`` without ``-o``) builds no adapter (ADR 0069); a ``list[str]`` given
    strings is converted here (ADR 0081), every other value given goes to typer's own conversion."""
    if descriptor.file_annotation is not None:
        return False
    if descriptor.is_list or descriptor.is_tuple:
        return not descriptor.is_path
    info = descriptor.parameter_info
    if info.parser is not None:
        return True
    annotation = descriptor.annotation
    if annotation in (str, int, float, bool):
        return not descriptor.is_path
    return isinstance(annotation, type) and issubclass(annotation, Enum)


def install() -> None:
    """From now on, a typer parameter's first conversion builds a `PlainParam` where one applies (typer builds
    the conversion of a parameter on its first value, its help option's and completion flags' included,
    so this hooks that one method rather than walking the commands). Idempotent."""
    if RuntimeParam is None or getattr(_TyperParameter.get_runtime_param, "_jfs_plain", False):
        return
    typers_own = _TyperParameter.get_runtime_param

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None and _plain_enough(self.type_descriptor):
            self._runtime_param = PlainParam(self.type_descriptor)
        return typers_own(self)

    get_runtime_param._jfs_plain = True  # type: ignore[attr-defined]
    _TyperParameter.get_runtime_param = get_runtime_param

"""`jfs.cli.coerce.PlainParam` converts option values as typer's own pydantic conversion does (ADR 0063):
the same result, or the same error, for every parameter of every ``jfs`` command, on the values users type
and on arbitrary strings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer._click import Context
from typer._coercion import build_runtime_param
from typer.core import _TyperParameter
from typer.main import get_command

import jfs.cli.main as cli
from jfs.cli.coerce import PlainParam, _plain_enough


def _params() -> Iterator[tuple[Any, Any]]:
    group = get_command(cli.app)
    group.load_all()

    def walk(command: Any) -> Iterator[tuple[Any, Any]]:
        for p in command.params:
            if isinstance(p, _TyperParameter) and _plain_enough(p.type_descriptor):
                yield command, p
        for sub in getattr(command, "commands", {}).values():
            yield from walk(sub)

    yield from walk(group)


PARAMS = list(_params())
SAMPLES = ["0", "1", "12", "-3", "007", "1.5", "-0.25", "1.", ".5", "1e3", " 7", "7 ", "abc", "", "+4",
           "12s", "1m", "1h", "100M", "1G", "0.1", "inf", "nan", "99999999999999999999", "True", "yes",
           "debug", "DEBUG", "Info", "lz4", "zstd", "none", "file", "s3", "inode", "uid"]


def _outcome(runtime: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        result = runtime._coerce_value(value, param=param, ctx=ctx)
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        return "error", (type(exc).__name__, str(exc))
    return "value", (type(result), result if result == result else "nan")


def _same(command: Any, param: Any, value: Any) -> None:
    ctx = Context(command)
    theirs = _outcome(build_runtime_param(param.type_descriptor), value, param, ctx)
    ours = _outcome(PlainParam(param.type_descriptor), value, param, ctx)
    assert ours == theirs, (command.name, param.name, value)


def test_the_commands_have_plain_parameters_of_every_kind() -> None:
    kinds = {repr(p.type_descriptor.annotation) for _, p in PARAMS}
    assert {"<class 'str'>", "<class 'int'>", "<class 'float'>", "<class 'bool'>"} <= kinds
    assert any(p.type_descriptor.parameter_info.parser for _, p in PARAMS)
    assert any(p.type_descriptor.is_choice for _, p in PARAMS)
    assert any(p.type_descriptor.parameter_info.min is not None for _, p in PARAMS)


@pytest.mark.parametrize("value", SAMPLES)
def test_every_parameter_converts_a_typed_value_as_typer_does(value: str) -> None:
    for command, param in PARAMS:
        _same(command, param, value)


def test_every_parameter_converts_its_default_as_typer_does() -> None:
    for command, param in PARAMS:
        if param.default is not None and not callable(param.default):
            _same(command, param, param.default)
        _same(command, param, True)
        _same(command, param, 3)
        _same(command, param, 2.5)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="0123456789.-+eE smhkKMGiB_x", max_size=12))
def test_arbitrary_strings_convert_as_typer_does(value: str) -> None:
    for command, param in PARAMS:
        _same(command, param, value)


def test_out_of_range_numbers_get_typers_own_message() -> None:
    command, param = next((c, p) for c, p in PARAMS if p.type_descriptor.parameter_info.min is not None
                          and p.type_descriptor.annotation is int and not p.type_descriptor.parameter_info.clamp)
    low = str(int(param.type_descriptor.parameter_info.min) - 1)
    kind, (name, message) = _outcome(PlainParam(param.type_descriptor), low, param, Context(command))
    assert kind == "error" and name == "BadParameter" and message


def test_a_list_option_not_given_builds_no_adapter() -> None:
    """``jfs mount`` without ``-o`` (ADR 0069): its absence is answered as typer does, without pydantic;
    values given, all strings, too (ADR 0081)."""
    command, param = next((c, p) for c, p in PARAMS if c.name == "mount" and p.name == "fuse_options")
    ctx = Context(command)
    ours, theirs = PlainParam(param.type_descriptor), build_runtime_param(param.type_descriptor)
    assert ours.coerce(None, param=param, ctx=ctx) == theirs.coerce(None, param=param, ctx=ctx)
    assert ours.fallback is None
    values = ("allow_other", "noatime")
    assert ours.coerce(values, param=param, ctx=ctx) == theirs.coerce(values, param=param, ctx=ctx)
    assert ours.fallback is None  # a list of strings is plain too (ADR 0081)


LIST_PARAMS = [(c, p) for c, p in PARAMS if p.type_descriptor.is_list]


def test_the_commands_have_list_of_str_parameters() -> None:
    assert any(c.name == "info" and p.name == "paths" for c, p in LIST_PARAMS)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=6), max_size=4), st.sampled_from([list, tuple]))
def test_lists_of_strings_convert_as_typer_does(values: list[str], kind: type) -> None:
    """``jfs info PATH...`` and the other ``list[str]`` parameters: typer's list, without pydantic (ADR 0081)."""
    for command, param in LIST_PARAMS:
        _same(command, param, kind(values))


def test_a_list_of_strings_builds_no_adapter() -> None:
    command, param = next((c, p) for c, p in LIST_PARAMS if c.name == "info")
    ours = PlainParam(param.type_descriptor)
    assert ours.coerce(("a", "b"), param=param, ctx=Context(command)) == ["a", "b"]
    assert ours.fallback is None
    _same(command, param, ("a", 3))  # not all strings: typer's own conversion decides

"""Entry-name and symlink-target rules."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jfs.domain.errors import FSError
from jfs.domain.names import is_dot, validate_name, validate_symlink_target


def code(fn: Callable[[bytes], None], arg: bytes) -> int | None:
    try:
        fn(arg)
    except FSError as e:
        return e.errno
    return None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (b"a", None),
        (b"x" * 255, None),
        (b"\xff\xfe not utf-8", None),
        (b".", None),
        (b"x" * 256, errno.ENAMETOOLONG),
        (b"", errno.EINVAL),
        (b"a/b", errno.EINVAL),
        (b"a\0b", errno.EINVAL),
    ],
)
def test_validate_name(name: bytes, expected: int | None) -> None:
    assert code(validate_name, name) == expected


@given(st.binary(min_size=1, max_size=300))
def test_any_bytes_but_slash_and_nul_up_to_255(name: bytes) -> None:
    ok = len(name) <= 255 and b"/" not in name and b"\0" not in name
    assert (code(validate_name, name) is None) == ok


def test_is_dot() -> None:
    assert is_dot(b".") and is_dot(b"..")
    assert not is_dot(b"...") and not is_dot(b".a") and not is_dot(b"")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/etc/passwd", None),
        (b"x" * 4096, None),
        (b"", errno.ENOENT),
        (b"x" * 4097, errno.ENAMETOOLONG),
        (b"a\0", errno.EINVAL),
    ],
)
def test_validate_symlink_target(target: bytes, expected: int | None) -> None:
    assert code(validate_symlink_target, target) == expected

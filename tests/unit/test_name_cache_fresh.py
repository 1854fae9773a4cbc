"""`NameCache.fresh_since`: attributes remembered after a given moment (read from the engine by the
caller's own walk) and no others."""

from __future__ import annotations

from jfs.app.vfs.names import NameCache
from jfs.domain.attrs import Attr, FileType


def _attr(length: int = 0) -> Attr:
    return Attr(FileType.REGULAR, 0o644, length=length)


def test_only_attributes_remembered_after_the_mark_are_fresh() -> None:
    names = NameCache(60, 60)
    old = _attr(1)
    names.remember(1, b"old", 10, old)
    mark = names.stored
    assert names.fresh_since(10, mark) is None  # cached before: up to a TTL old
    new = _attr(2)
    names.remember(1, b"new", 11, new)
    assert names.fresh_since(11, mark) is new
    names.remember_attr(10, old)  # read again after the mark
    assert names.fresh_since(10, mark) is old
    names.forget_attr(11)
    assert names.fresh_since(11, mark) is None
    assert names.fresh_since(99, mark) is None


def test_without_an_attribute_cache_nothing_is_fresh() -> None:
    names = NameCache(60, 0)
    mark = names.stored
    names.remember(1, b"f", 10, _attr())
    assert names.fresh_since(10, mark) is None

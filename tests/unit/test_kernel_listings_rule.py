"""`KernelListings`: when an OPENDIR lets the kernel keep its cached listing (ADR 0024)."""

from __future__ import annotations

import pytest

from jfs.adapters.fuse import listings
from jfs.adapters.fuse.listings import KernelListings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(listings.time, "monotonic", c)
    return c


def _list(k: KernelListings, fh: int, ino: int) -> None:
    k.started(fh, ino)
    k.finished(fh)


def test_kept_after_a_complete_listing_within_the_ttl(clock: Clock) -> None:
    k = KernelListings(1.0)
    assert not k.keep(5)  # nothing listed yet: the kernel drops what it has
    _list(k, 1, 5)
    clock.now += 0.5
    assert k.keep(5)
    clock.now += 0.6  # the listing began 1.1 s ago: its names and attributes have expired in the kernel
    assert not k.keep(5)


def test_a_change_drops_the_kernel_copy(clock: Clock) -> None:
    k = KernelListings(1.0)
    k.keep(5)
    _list(k, 1, 5)
    k.changed(5)
    assert not k.keep(5)


def test_a_listing_under_way_at_a_change_does_not_count(clock: Clock) -> None:
    k = KernelListings(1.0)
    k.keep(5)
    k.started(1, 5)
    k.changed(5)
    k.keep(5)
    k.finished(1)
    assert not k.keep(5)


def test_a_listing_begun_before_the_drop_does_not_count(clock: Clock) -> None:
    k = KernelListings(1.0)
    k.keep(5)
    k.started(1, 5)
    clock.now += 0.1
    k.keep(5)  # another opendir: the kernel drops its copy
    k.finished(1)
    assert not k.keep(5)


def test_an_unfinished_listing_does_not_count(clock: Clock) -> None:
    k = KernelListings(1.0)
    k.keep(5)
    k.started(1, 5)
    k.closed(1)
    k.finished(1)
    assert not k.keep(5)


def test_the_oldest_listing_since_the_drop_bounds_the_keep(clock: Clock) -> None:
    k = KernelListings(1.0)
    k.keep(5)
    _list(k, 1, 5)
    clock.now += 0.8
    _list(k, 2, 5)  # a later listing does not make the kernel's (possibly older) copy younger
    clock.now += 0.3
    assert not k.keep(5)


def test_zero_ttl_keeps_nothing(clock: Clock) -> None:
    k = KernelListings(0.0)
    k.keep(5)
    _list(k, 1, 5)
    assert not k.keep(5)


def test_changed_all(clock: Clock) -> None:
    k = KernelListings(1.0)
    for ino in (5, 6):
        k.keep(ino)
        _list(k, ino, ino)
    k.changed_all()
    assert not k.keep(5) and not k.keep(6)


def test_sweep_forgets_expired_directories(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listings, "SWEEP_EVERY", 10)
    k = KernelListings(1.0)
    for ino in range(20):
        k.keep(ino)
        _list(k, ino, ino)
    clock.now += 5
    for ino in range(100, 110):
        k.keep(ino)
    assert set(k._dropped) <= set(range(100, 110))
    assert not k._filled


async def test_a_lock_granted_drops_the_listings_of_the_file_and_its_directory(clock: Clock) -> None:
    from jfs.adapters.fuse.vfs_operations import _KernelCache

    k = KernelListings(1.0)
    cache = _KernelCache(k)
    for ino in (5, 6, 7):
        k.keep(ino)
        _list(k, ino, ino)
    await cache.lock_granted(6, 5)  # a lock on 6 (a file or a directory) in directory 5
    assert not k.keep(5) and not k.keep(6) and k.keep(7)
    await cache.lock_granted(7, None)  # directory unknown: every listing goes
    k.keep(8)
    _list(k, 8, 8)
    await cache.lock_granted(9, None)
    assert not k.keep(8)


def test_a_listing_with_a_reply_without_attributes_is_not_kept(clock: Clock) -> None:
    """ADR 0080: a plain READDIR reply (``--readdir-plus auto``/``never``) hands the kernel names without
    dentries; such a listing is listed again rather than kept (`ls -l` of it would LOOKUP every name)."""
    k = KernelListings(1.0)
    k.keep(5)
    k.started(1, 5)
    k.unattributed(1)
    k.finished(1)
    assert not k.keep(5)
    k.started(2, 5)  # listed again, every reply with attributes
    k.finished(2)
    assert k.keep(5)

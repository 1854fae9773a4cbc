"""`ReadCache` (jfs/adapters/kv/etcd_cache.py): versions only move forward, memory stays bounded."""

from __future__ import annotations

from jfs.adapters.kv.etcd_cache import ENTRY_OVERHEAD, ReadCache, Version
from jfs.adapters.kv.etcd_url import parse_etcd_url


def test_a_version_known_earlier_does_not_replace_a_later_one() -> None:
    c = ReadCache()
    c.note(b"k", b"new", 20, 20)
    c.note(b"k", b"old", 10, 15)  # a read served at 15, noted after a commit at 20
    assert c.get(b"k") == Version(b"new", 20, 20, 20)
    c.note(b"k", None, 7, 30)  # found absent at 30: absent has mod revision 0, known only at 30
    assert c.get(b"k") == Version(None, 0, 30, 30)
    c.note(b"k", None, 0, 40, deleted_at=35)  # deleted by this client at 35
    v = c.get(b"k")
    assert v is not None and v.holds_at(35) and v.holds_at(40) and not v.holds_at(34) and not v.holds_at(41)
    c.note(b"k", b"v", 50, 60)
    v = c.get(b"k")
    assert v is not None and v.holds_at(50) and not v.holds_at(49)


def test_least_recently_used_entries_go_first_and_bytes_stay_bounded() -> None:
    size = 3 + 10 + ENTRY_OVERHEAD
    c = ReadCache(max_bytes=3 * size)
    for k in (b"k01", b"k02", b"k03"):
        c.note(k, b"x" * 10, 1, 1)
    assert c.get(b"k01") is not None  # now the most recently used
    c.note(b"k04", b"x" * 10, 1, 1)
    assert c.get(b"k02") is None and c.get(b"k01") is not None and len(c) == 3
    assert c.bytes == 3 * size


def test_values_too_large_are_not_kept_and_drop_the_older_entry() -> None:
    c = ReadCache(max_value=8)
    c.note(b"k", b"small", 1, 1)
    c.note(b"k", b"much too large", 2, 2)
    assert c.get(b"k") is None and c.bytes == 0


def test_discard_and_clear() -> None:
    c = ReadCache()
    c.note(b"a", b"1", 1, 1)
    c.note(b"b", None, 0, 1)
    c.discard([b"a", b"missing"])
    assert c.get(b"a") is None and c.get(b"b") == Version(None, 0, 1, 1)
    c.clear()
    assert len(c) == 0 and c.bytes == 0


def test_read_cache_url_option() -> None:
    assert parse_etcd_url("etcd://h/v").read_cache_bytes == 32 << 20
    assert parse_etcd_url("etcd://h/v?read-cache=0").read_cache_bytes == 0
    assert parse_etcd_url("etcd://h/v?read-cache=4").read_cache_bytes == 4 << 20


def test_a_commit_time_survives_a_later_read_of_the_same_version_only() -> None:
    c = ReadCache()
    c.note(b"k", b"v", 10, 10, t=5.0)  # written by a commit sent at t=5
    c.note(b"k", b"v", 10, 12)  # read again at 12: same version, the commit's time is kept
    assert c.get(b"k") == Version(b"v", 10, 12, 10, 5.0)
    c.note(b"k", b"w", 13, 13)  # another client's version, read: no commit time
    assert c.get(b"k") == Version(b"w", 13, 13, 13, 0.0)
    c.note(b"gone", None, 0, 20, deleted_at=20, t=6.0)
    c.note(b"gone", None, 0, 21)
    v = c.get(b"gone")
    assert v is not None and v.t == 6.0 and v.since == 21 and v.at == 21  # absent: known at 21 only


def test_confirm_extends_only_the_version_compared() -> None:
    c = ReadCache()
    c.note(b"k", b"v", 10, 11)
    c.confirm(b"k", 9, 20, 7.0)  # the commit compared another version: nothing learnt about this one
    assert c.get(b"k") == Version(b"v", 10, 11, 10, 0.0)
    c.confirm(b"k", 10, 20, 7.0)  # held its version up to the commit at 20, sent at t=7
    assert c.get(b"k") == Version(b"v", 10, 20, 10, 7.0)
    c.confirm(b"k", 10, 15, 8.0)  # an older revision never moves an entry back
    assert c.get(b"k") == Version(b"v", 10, 20, 10, 7.0)
    c.note(b"a", None, 0, 30)
    c.confirm(b"a", 0, 40, 9.0)  # absent at 40; it may have come and gone since 30
    v = c.get(b"a")
    assert v is not None and v.holds_at(40) and not v.holds_at(35) and v.t == 9.0
    c.confirm(b"missing", 0, 40, 9.0)  # no entry: none made up
    assert c.get(b"missing") is None
    assert c.peek(b"k") == Version(b"v", 10, 20, 10, 7.0)

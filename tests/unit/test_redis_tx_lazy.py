"""The Redis transaction's sections allocated on first use (ADR 0067): no state shared between transactions,
and the packed read set exactly as when every section was allocated up front."""

from __future__ import annotations

import hashlib

import pytest

from jfs.adapters.kv import redis_tx
from jfs.adapters.kv.redis_tx import ReadSet, RedisTx
from jfs.adapters.kv.resp import bulk, bulks
from jfs.ports.kv import ConflictError, EngineError

DATA = redis_tx.DATA


def test_appends_and_cleared_are_per_transaction() -> None:
    a, b = RedisTx(None, False), RedisTx(None, False)  # type: ignore[arg-type]  # no engine call is made
    a.append(b"k1", b"xy", 3)
    a.append(b"k1", b"z", 99)  # joins the first: its expected length holds
    a.delete_range(b"r0", b"r9")
    assert dict(a._appends) == {b"k1": (3, b"xyz")}
    assert list(a._cleared) == [(b"r0", b"r9")]
    assert not b._appends and not b._cleared  # the other transaction saw none of it
    assert not redis_tx._NO_APPENDS  # the shared empty stayed empty
    with pytest.raises(TypeError):
        redis_tx._NO_APPENDS[b"k"] = (0, b"")  # type: ignore[index]  # immutable by construction
    with pytest.raises(EngineError):
        a.put(b"k1", b"v")  # still refused: a key this body appended to
    with pytest.raises(EngineError):
        a.put(b"r5", b"v")  # still refused: inside a deleted range


def test_read_set_packs_as_before() -> None:
    rs = ReadSet()
    assert not rs
    count, packed = rs.read_args(b"v")
    assert (count, packed) == (4, bulks((0, 0, b"v", 0)))
    rs.saw(b"a", b"1")
    rs.saw(b"b", None)
    big = b"v" * 1000
    rs.saw(b"c", big)
    rs.scanned(b"d", b"e", False, True, b"digest")
    assert rs
    with pytest.raises(ConflictError):
        rs.saw(b"a", b"2")
    count, packed = rs.read_args(b"g", [DATA + b"x"])
    keys = bulk(DATA + b"a") + bulk(DATA + b"b") + bulk(DATA + b"c")
    expect = (redis_tx._VALUE + bulk(b"1") + redis_tx._ABSENT + redis_tx._SHA1
              + bulk(hashlib.sha1(big).hexdigest().encode()))
    scans = bulks((b"d", b"e", 0, 1, b"digest"))
    assert count == 4 + 1 + 3 * 3 + 5
    assert packed == bulks((3, 1, b"g", 1, DATA + b"x")) + keys + expect + scans
    # Packing again adds only what is new, in place.
    rs.saw(b"f", b"2")
    rs.scanned(b"g", b"h", True, False, b"d2")
    _, again = rs.read_args(b"v")
    assert again == (bulks((4, 2, b"v", 0)) + keys + bulk(DATA + b"f") + expect + redis_tx._VALUE + bulk(b"2")
                     + scans + bulks((b"g", b"h", 1, 0, b"d2")))


def test_read_only_transaction_refuses_writes() -> None:
    tx = RedisTx(None, True)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="read-only"):
        tx.append(b"k", b"x", 0)
    with pytest.raises(Exception, match="read-only"):
        tx.delete_range(b"a", b"b")
    assert not tx._appends and not tx._cleared

"""`SpareFiles` and the ``file`` store with spares (ADR 0045): deleted objects vanish at once, new objects
are written over kept files (same inode, exact new bytes and length), and nothing outlives the store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jfs.adapters.objects.file import TMP_PREFIX, FileStore
from jfs.adapters.objects.file_spares import SpareFiles
from jfs.ports.objects import ObjectNotFound

MiB = 1 << 20


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _spares(tmp_path: Path, **kw: float) -> SpareFiles:
    return SpareFiles(str(tmp_path), TMP_PREFIX, min_age=kw.pop("min_age", 0.0), **kw)  # type: ignore[arg-type]


def test_kept_file_is_written_over_in_place(tmp_path: Path) -> None:
    sp = _spares(tmp_path)
    old = tmp_path / "a"
    old.write_bytes(b"x" * (2 * MiB))
    ino = old.stat().st_ino
    assert sp.keep(str(old))
    assert not old.exists() and sp.count() == 1
    new = tmp_path / "d" / "b"  # a directory that does not exist yet
    data = os.urandom(MiB + 5)
    assert sp.put(str(new), data)
    assert new.read_bytes() == data  # cut to the new length
    assert new.stat().st_ino == ino and sp.count() == 0
    assert not sp.put(str(tmp_path / "c"), data)  # none left: the caller writes a new file


def test_small_young_and_overflowing_files_are_not_used(tmp_path: Path) -> None:
    sp = _spares(tmp_path, keep_max=1)
    small = tmp_path / "s"
    small.write_bytes(b"s" * 100)
    assert not sp.keep(str(small)) and small.exists()
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(b"x" * MiB)
    assert sp.keep(str(tmp_path / "a"))
    assert not sp.keep(str(tmp_path / "b"))  # full: the caller unlinks
    assert not sp.put(str(tmp_path / "big"), b"y" * (2 * MiB))  # no spare big enough
    young = _spares(tmp_path / "y", min_age=60.0)
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "a").write_bytes(b"x" * MiB)
    assert young.keep(str(tmp_path / "y" / "a"))
    assert not young.put(str(tmp_path / "y" / "b"), b"z" * MiB)  # a read may still hold it


def test_expired_spares_are_unlinked(tmp_path: Path) -> None:
    sp = _spares(tmp_path, ttl=0.0)
    (tmp_path / "a").write_bytes(b"x" * MiB)
    assert sp.keep(str(tmp_path / "a"))
    sp._expire()
    assert sp.count() == 0 and os.listdir(sp.dir) == []


def test_dead_process_spares_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / (TMP_PREFIX + "spares") / "999999999-dead"
    stale.mkdir(parents=True)
    (stale / "0").write_bytes(b"old")
    sp = _spares(tmp_path)
    (tmp_path / "a").write_bytes(b"x" * MiB)
    assert sp.keep(str(tmp_path / "a"))
    assert not stale.exists()


async def test_store_with_spares(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path), spares=True)
    assert store.spares is not None
    store.spares.min_age = 0.0
    a = os.urandom(4 * MiB)
    await store.put("vol/chunks/0/1", a)
    await store.delete("vol/chunks/0/1")
    with pytest.raises(ObjectNotFound):
        await store.get("vol/chunks/0/1")
    assert [i.key async for i in store.list("")] == []  # the spare is not an object
    b = bytearray(os.urandom(3 * MiB))  # the gateway's body pieces are bytearrays
    await store.put("vol/chunks/0/2", b)
    assert await store.get("vol/chunks/0/2") == b
    assert store.spares.count() == 0
    await store.delete("vol/chunks/0/2")
    await store.close()
    assert _files(tmp_path) == []  # nothing outlives the store


async def test_store_without_spares_unlinks(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path))
    assert store.spares is None
    await store.put("k", b"x" * (2 * MiB))
    await store.delete("k")
    assert _files(tmp_path) == []
    await store.close()


async def test_read_racing_a_deletion_reports_the_object_missing(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path), spares=True)
    assert store.spares is not None
    store.spares.min_age = 0.0
    await store.put("a", b"a" * (2 * MiB))
    path = store._path("a")
    with open(path, "rb") as f:  # noqa: ASYNC230 (a reader that opened the object before it was deleted)
        await store.delete("a")
        await store.put("b", b"b" * (2 * MiB))  # written over the same file
        assert f.read(1) == b"b"  # what such a read would see: hence the check
        assert not store.spares.still(path, f.fileno())
    await store.put("c", b"c" * (2 * MiB))
    with open(store._path("c"), "rb") as f:  # noqa: ASYNC230
        assert store.spares.still(store._path("c"), f.fileno())
    await store.close()

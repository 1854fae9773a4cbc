"""The kernel's cached directory listings on real mounts (ADR 0024): a repeated listing of an unchanged
directory is served by the kernel, any change this mount makes or learns of is listed at once, and a
change made by another mount is listed within the entry/attribute timeout."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.testing.engines import wipe_engine
from jfs.testing.mounts import format_volume, mounted

TTL = 1.0  # the mounts' default entry and attribute timeouts


@pytest.fixture(scope="module", params=["trash-off", "trash-on", "redis-trash-on", "auto/trash-on",
                                        "auto/redis-trash-on", "never/trash-off"])
def two_mounts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """Two mounts of one SQLite (or Redis: its listings read by native commands, ADR 0071) + local directory
    volume, without and with the trash (the default format); READDIRPLUS "always" (the default) or, with a
    ``MODE/`` prefix, ``--readdir-plus MODE`` (ADR 0080: the rule must hold whichever replies carry attributes)."""
    mode, _, kind = request.param.rpartition("/")
    plus = ["--readdir-plus", mode] if mode else []
    base = tmp_path_factory.mktemp("listings")
    url = f"sqlite3://{base}/meta.db"
    if kind.startswith("redis"):
        url = f"{request.getfixturevalue('redis_server_url')}/7"
        asyncio.run(wipe_engine(url))
    format_volume(url, str(base / "bucket"), "listings", *(["--trash-days", "1"] if kind.endswith("trash-on") else []))
    outside = Path(tempfile.mkdtemp(prefix="jfs-listings-"))
    try:
        with mounted(url, outside / "a", *plus) as a, mounted(url, outside / "b", *plus) as b:
            yield a, b
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def _pages_read(mnt: Path) -> int:
    """Listing pages this mount read from the metadata engine so far (`.stats`)."""
    m = re.search(rb'jfs_fuse_ops_total\{method="readdir"\} (\d+)', (mnt / ".stats").read_bytes())
    return int(m.group(1)) if m else 0


def _fresh_dir(mnt: Path, name: str, files: int = 50) -> Path:
    d = mnt / name
    d.mkdir()
    for i in range(files):
        (d / f"f{i:03d}").write_bytes(b"")
    return d


def test_repeated_listing_is_served_by_the_kernel(two_mounts: tuple[Path, Path], request: pytest.FixtureRequest) -> None:
    a, _ = two_mounts
    d = _fresh_dir(a, "repeat")
    assert len(os.listdir(d)) == 50
    before = _pages_read(a)
    for _ in range(5):
        assert len(os.listdir(d)) == 50
    if request.node.callspec.id.startswith("never/"):  # no reply carries attributes: nothing kept (ADR 0080)
        assert _pages_read(a) >= before + 5
    else:
        assert _pages_read(a) == before, "an unchanged directory was listed through the mount again"


def test_only_listings_whose_replies_all_carried_attributes_are_kept(
    two_mounts: tuple[Path, Path], request: pytest.FixtureRequest
) -> None:
    """ADR 0080: with ``--readdir-plus auto`` a bare listing of more than one reply gets plain READDIR replies
    after the first and is listed again; `scandir` + `stat` gets READDIRPLUS throughout and is kept. With
    "always" both are kept; with "never" neither (no reply carries attributes)."""
    never = request.node.callspec.id.startswith("never/")
    a, _ = two_mounts
    d = a / "multi"
    d.mkdir()
    for i in range(1500):  # several 64 KiB replies either way
        os.close(os.open(d / f"file-with-a-longer-name-{i:05d}", os.O_CREAT | os.O_WRONLY, 0o644))
    time.sleep(TTL + 0.2)  # the creates' dentries expire; the next listing begins from nothing known
    os.listdir(d)
    before = _pages_read(a)
    os.listdir(d)
    relisted = _pages_read(a) > before
    assert relisted is (never or request.node.callspec.id.startswith("auto/"))
    time.sleep(TTL + 0.2)
    for e in os.scandir(d):
        e.stat()
    before = _pages_read(a)
    os.listdir(d)
    if never:
        assert _pages_read(a) > before, "a listing of plain READDIR replies was kept"
    else:
        assert _pages_read(a) == before, "a listing whose replies all carried attributes was not kept"


def test_own_changes_are_listed_at_once(two_mounts: tuple[Path, Path]) -> None:
    a, _ = two_mounts
    d = _fresh_dir(a, "own")
    os.listdir(d)
    (d / "new").write_bytes(b"x")
    assert "new" in os.listdir(d)
    os.unlink(d / "f000")
    assert "f000" not in os.listdir(d)
    os.rename(d / "new", d / "renamed")
    names = os.listdir(d)
    assert "renamed" in names and "new" not in names
    os.mkdir(d / "sub")
    assert "sub" in os.listdir(d)
    os.rmdir(d / "sub")
    assert "sub" not in os.listdir(d)


def test_the_trash_lists_what_was_just_deleted(two_mounts: tuple[Path, Path], request: pytest.FixtureRequest) -> None:
    trash_on = "trash-on" in request.node.callspec.id
    a, _ = two_mounts
    d = _fresh_dir(a, "trashed", files=3)
    before = {p for h in os.listdir(a / ".trash") for p in os.listdir(a / ".trash" / h)}
    os.unlink(d / "f001")
    after = {p for h in os.listdir(a / ".trash") for p in os.listdir(a / ".trash" / h)}
    trashed = [n for n in after - before if n.endswith("-f001")]
    if trash_on:
        assert trashed, after - before  # listed at once: trash listings are never cached
    else:
        assert not trashed and after == before  # trash-days 0: the file is gone, not kept


def test_other_mounts_changes_are_listed_within_the_timeout(two_mounts: tuple[Path, Path]) -> None:
    a, b = two_mounts
    d = _fresh_dir(a, "other")
    os.listdir(b / "other")
    (d / "late").write_bytes(b"")
    os.unlink(d / "f001")
    time.sleep(TTL + 0.2)
    names = os.listdir(b / "other")
    assert "late" in names and "f001" not in names


def test_a_lock_taken_lists_what_the_previous_holder_made(two_mounts: tuple[Path, Path]) -> None:
    """ADR 0014: after a lock on a file of the directory, its names (and now its listing) are current."""
    a, b = two_mounts
    d = _fresh_dir(a, "locked", files=5)
    (d / "lockfile").write_bytes(b"")
    assert "made-under-lock" not in os.listdir(b / "locked")
    with open(d / "lockfile", "rb") as fa:
        fcntl.flock(fa, fcntl.LOCK_EX)
        (d / "made-under-lock").write_bytes(b"")
        fcntl.flock(fa, fcntl.LOCK_UN)
    with open(b / "locked" / "lockfile", "rb") as fb:
        fcntl.flock(fb, fcntl.LOCK_EX)
        try:
            assert "made-under-lock" in os.listdir(b / "locked")
        finally:
            fcntl.flock(fb, fcntl.LOCK_UN)


def test_listing_goes_through_the_mount_once_the_timeout_passed(two_mounts: tuple[Path, Path]) -> None:
    a, _ = two_mounts
    d = _fresh_dir(a, "expired", files=10)
    os.listdir(d)
    time.sleep(TTL + 0.2)
    before = _pages_read(a)
    os.listdir(d)
    assert _pages_read(a) > before


def test_no_readdir_cache_lists_through_the_mount(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), "nocache")
    outside = Path(tempfile.mkdtemp(prefix="jfs-listings-"))
    try:
        with mounted(url, outside / "m", "--no-readdir-cache") as m:
            d = _fresh_dir(m, "d", files=5)
            os.listdir(d)
            before = _pages_read(m)
            os.listdir(d)
            assert _pages_read(m) > before
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def test_listed_attributes_follow_other_mounts_within_the_timeout(two_mounts: tuple[Path, Path]) -> None:
    """Whichever listing replies carry attributes (ADR 0080), `scandir` + `stat` after the attribute timeout
    shows another mount's chmod and write."""
    a, b = two_mounts
    d = _fresh_dir(a, "attrs", files=20)
    assert {e.name: e.stat().st_size for e in os.scandir(d)}["f002"] == 0
    os.chmod(b / "attrs" / "f002", 0o600)
    (b / "attrs" / "f002").write_bytes(b"12345")
    time.sleep(TTL + 0.2)
    seen = {e.name: e.stat() for e in os.scandir(d)}
    assert seen["f002"].st_mode & 0o777 == 0o600 and seen["f002"].st_size == 5
    assert os.stat(d / "f003").st_mode & 0o777 == 0o644

"""Removed directory trees come back from the trash, through a real mount with ``--trash-days 1``, on SQLite
and on Redis (db 5): ``rm -rf`` and ``jfs rmr`` of a tree of ~500 files, then ``jfs restore HOUR
--put-back`` brings every file back with its bytes and the structure identical; what cannot be put back
(name taken, original directory gone) makes the command exit 1 with a line naming it; expiry of trashed
trees leaves fsck clean, the usage at zero and no block behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.testing.engines import wipe_engine
from jfs.testing.mounts import jfs, mounted

REDIS_DB = 5
FILES = 500


@pytest.fixture(params=["sqlite", "redis"])
def volume(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """(meta URL, mount point, bucket) of a fresh volume with the trash on, mounted."""
    if request.param == "sqlite":
        url = f"sqlite3://{tmp_path}/meta.db"
    else:
        url = f"{request.getfixturevalue('redis_server_url')}/{REDIS_DB}"
        asyncio.run(wipe_engine(url))
    bucket = tmp_path / "bucket"
    jfs("format", url, "trash-vol", "--bucket", str(bucket), "--trash-days", "1")
    outside = Path(tempfile.mkdtemp(prefix="jfs-trash-"))
    try:
        with mounted(url, outside / "mnt") as mnt:
            yield url, mnt, bucket
    finally:
        shutil.rmtree(outside, ignore_errors=True)
        if request.param == "redis":
            asyncio.run(wipe_engine(url))


_BYTES = bytes(range(251))


def content(i: int) -> bytes:
    """File i's bytes: empty, small, or a few hundred KB; a rotation of 0..250 that differs per file."""
    size = 0 if i % 50 == 0 else 300_000 + i if i % 97 == 0 else (i * 397) % 20_000 + 1
    start = (i * 7) % 251
    return ((_BYTES[start:] + _BYTES[:start]) * (size // 251 + 1))[:size]


def make_tree(top: Path, files: int = FILES) -> None:
    """Nested directories (some empty), `files` files of known bytes spread over them, a symlink."""
    dirs = [top / rel for rel in ("", "a", "a/b", "a/b/c", "a/b/c/d", "a/e", "f", "f/g", "f/g/h", "i")]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    (top / "a" / "empty").mkdir()
    (top / "f" / "g" / "empty too").mkdir()
    os.chmod(top / "a" / "e", 0o700)
    for i in range(files):
        (dirs[i % len(dirs)] / f"file-{i}").write_bytes(content(i))
    (top / "a" / "link").symlink_to("b/c/file-3")


def tree_of(top: Path) -> dict[str, tuple[str, int, bytes]]:
    """relative path → (kind, mode, bytes or link target) of everything below `top`."""
    out: dict[str, tuple[str, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(top))
            st = os.lstat(p)
            if p.is_symlink():
                out[rel] = ("link", 0, os.readlink(p).encode())
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode & 0o7777, b"")
            else:
                out[rel] = ("file", st.st_mode & 0o7777, p.read_bytes())
    return out


def hours(mnt: Path) -> list[str]:
    return sorted(os.listdir(mnt / ".trash"))


def restore(url: str, mnt: Path) -> subprocess.CompletedProcess[str]:
    return jfs("restore", url, *hours(mnt), "--put-back", check=False)


def gc(url: str, *args: str) -> str:
    """`jfs gc` judging every object, however young."""
    env = {**os.environ, "JFS_GC_SKIPPEDTIME": "0"}
    return subprocess.run([sys.executable, "-m", "jfs.cli.main", "gc", url, *args], check=True, capture_output=True,
                          text=True, env=env, timeout=120).stdout


def status(url: str) -> tuple[int, int]:
    doc = json.loads(jfs("status", url, "--json").stdout)["Statistic"]
    return doc["UsedSpace"], doc["UsedInodes"]


def test_rm_rf_and_rmr_of_a_tree_are_restored_whole(volume: tuple[str, Path, Path]) -> None:
    url, mnt, _ = volume
    top = mnt / "project"
    make_tree(top)
    before = tree_of(top)
    assert sum(1 for kind, _, _ in before.values() if kind == "file") == FILES
    entries = len(before) + 1
    usage = status(url)

    subprocess.run(["rm", "-rf", str(top)], check=True)
    assert not top.exists()
    res = restore(url, mnt)
    assert res.returncode == 0, res.stderr
    assert f"restored {entries} of {entries} entries" in res.stdout and "error" not in res.stderr
    assert tree_of(top) == before
    hour_dirs = len(hours(mnt))  # charged 4 KiB and an inode each, as JuiceFS charges them
    assert status(url) == (usage[0] + 4096 * hour_dirs, usage[1] + hour_dirs)
    fsck = jfs("fsck", url, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

    out = jfs("rmr", str(top))
    assert f"removed {FILES + 1} files and {entries - FILES - 1} directories" in out.stdout
    assert not top.exists()
    res = restore(url, mnt)
    assert res.returncode == 0, res.stderr
    assert f"restored {entries} of {entries} entries" in res.stdout
    assert tree_of(top) == before
    assert [os.listdir(mnt / ".trash" / h) for h in hours(mnt)] == [[] for _ in hours(mnt)]
    fsck = jfs("fsck", url, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_what_cannot_be_put_back_is_named_and_fails_the_command(volume: tuple[str, Path, Path]) -> None:
    url, mnt, _ = volume
    taken = mnt / "taken"
    make_tree(taken, files=40)
    before = tree_of(taken)
    make_tree(mnt / "parent" / "orphan", files=10)
    subprocess.run(["rm", "-rf", str(taken)], check=True)
    taken.mkdir()  # the name is taken again
    subprocess.run(["rm", "-rf", str(mnt / "parent" / "orphan")], check=True)
    parent_ino = (mnt / "parent").stat().st_ino
    (mnt / "parent").rmdir()
    for h in hours(mnt):  # ... and its parent emptied from the trash by hand: gone for good
        for entry in os.listdir(mnt / ".trash" / h):
            if entry.endswith("-parent"):
                (mnt / ".trash" / h / entry).rmdir()

    res = restore(url, mnt)
    assert res.returncode == 1
    (error,) = [line for line in res.stderr.splitlines() if line.startswith("jfs: error:")]
    assert re.match(r"jfs: error: (\d+) of \1 entries were not restored and stay in the trash: ", error)
    assert "/taken (name taken)" in error and f"<inode {parent_ino}>/orphan (original directory gone)" in error
    assert "entries below them were kept inside them" in error
    assert os.listdir(taken) == []

    taken.rename(mnt / "newer")  # free the name: the tree comes back whole
    res = restore(url, mnt)
    assert res.returncode == 1 and "taken" not in res.stderr and "orphan (original directory gone)" in res.stderr
    assert tree_of(taken) == before
    fsck = jfs("fsck", url, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_expired_trees_leave_nothing_behind(volume: tuple[str, Path, Path]) -> None:
    url, mnt, bucket = volume
    make_tree(mnt / "one", files=200)
    make_tree(mnt / "two", files=50)
    subprocess.run(["rm", "-rf", str(mnt / "one")], check=True)
    jfs("rmr", str(mnt / "two"))
    jfs("restore", url, *hours(mnt))  # "two" rebuilt inside the trash: a nested tree must expire too
    os.sync()
    assert status(url)[1] > 250

    asyncio.run(_purge(url, time.time() + 3 * 86400))
    gc(url, "--delete")
    assert status(url) == (0, 0)
    assert hours(mnt) == [] and [n for n in os.listdir(mnt) if not n.startswith(".")] == []
    report = json.loads(gc(url, "--json"))
    assert {k: v["count"] for k, v in report["Objects"].items()} == {
        "valid": 0, "pending": 0, "trash": 0, "leaked": 0, "skipped": 0}  # fmt: skip
    assert not [p for p in (bucket / "trash-vol" / "chunks").rglob("*") if p.is_file()]
    fsck = jfs("fsck", url, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


async def _purge(url: str, now: float) -> None:
    from jfs.app.meta import trash_purge
    from jfs.compose import open_volume

    async with open_volume(url) as vol:
        assert await trash_purge.purge_trash(vol.meta, now) > 250
        await vol.meta.drain()

"""Open → unlink → keep using: an unlinked file stays fully usable through its open descriptors until the
last close, with the trash on (the default format) and off, on SQLite and Redis, through a real mount.

With the trash on, what the last writer left is what the trash keeps (restorable).
"""

from __future__ import annotations

import asyncio
import mmap
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.testing.engines import wipe_engine
from jfs.testing.mounts import format_volume, mounted, reachable_dir

CHILD_WRITER = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
print("open", flush=True)
sys.stdin.readline()          # the parent unlinks the file meanwhile
for i in range(64):
    os.pwrite(fd, bytes([65 + i % 26]) * 4096, (256 + i) * 4096)
os.fsync(fd)
st = os.fstat(fd)
print(st.st_size, st.st_nlink, flush=True)
os.close(fd)
"""


@pytest.fixture(scope="module", params=["sqlite-trash", "sqlite-notrash", "redis-trash", "redis-notrash"])
def volume(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, bool]]:
    engine, trash = request.param.split("-")
    base = tmp_path_factory.mktemp(request.param)
    if engine == "sqlite":
        url = f"sqlite3://{base}/meta.db"
    else:
        url = f"{request.getfixturevalue('redis_server_url')}/7"
        asyncio.run(wipe_engine(url))
    format_volume(url, str(base / "bucket"), "unlinked", *(["--trash-days", "1"] if trash == "trash" else []))
    with reachable_dir("jfs-unlinked-") as outside:
        with mounted(url, outside / "mnt") as mnt:
            yield mnt, trash == "trash"


def _trashed(mnt: Path, name: str) -> list[Path]:
    return [p for hour in (mnt / ".trash").iterdir() for p in hour.iterdir() if p.name.endswith("-" + name)]


def test_writers_appends_truncate_and_mmap_after_unlink(volume: tuple[Path, bool], tmp_path: Path) -> None:
    mnt, trash = volume
    path = mnt / f"tmpfile-{os.getpid()}-{time.monotonic_ns()}"
    rw = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    app = os.open(path, os.O_WRONLY | os.O_APPEND)
    child = subprocess.Popen([sys.executable, "-c", CHILD_WRITER, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "open"
        os.write(rw, b"x" * 10_000)
        os.unlink(path)
        assert not path.exists()
        child.stdin.write("go\n")
        child.stdin.flush()
        size, nlink = child.stdout.readline().split()
        assert child.wait(30) == 0
        assert (int(size), int(nlink)) == (320 * 4096, 0)
        # The child's writes (another process, another descriptor) are visible here.
        assert os.pread(rw, 4096, 256 * 4096) == b"A" * 4096
        # Writes, appends, fsync, truncate, chmod through the descriptors opened before the unlink.
        os.pwrite(rw, b"head", 0)
        os.write(app, b"tail")
        os.fsync(rw)
        assert os.fstat(rw).st_size == 320 * 4096 + 4
        assert os.fstat(rw).st_nlink == 0
        os.ftruncate(rw, 8192)
        assert os.fstat(app).st_size == 8192
        os.fchmod(rw, 0o600)
        assert os.fstat(rw).st_mode & 0o777 == 0o600
        os.ftruncate(rw, 3 * 4096)
        with mmap.mmap(rw, 3 * 4096) as mm:
            mm[4096:4100] = b"mmap"
            mm.flush()
        os.write(app, b"end")
        os.fsync(app)
        expected = bytearray(b"head" + b"x" * (8192 - 4) + b"\0" * 4096 + b"end")
        expected[4096:4100] = b"mmap"
        assert os.pread(rw, 1 << 20, 0) == bytes(expected)
        assert os.fstat(rw).st_size == len(expected)
    finally:
        os.close(app)
        os.close(rw)
        if child.poll() is None:
            child.kill()
            child.wait()
    kept = _trashed(mnt, path.name) if trash else []
    if trash:
        assert len(kept) == 1 and kept[0].read_bytes() == bytes(expected)
        assert kept[0].stat().st_nlink == 0  # deleted for POSIX, kept by the trash
        with pytest.raises(PermissionError):
            kept[0].open("ab")


def test_close_without_fsync_after_unlink_keeps_nothing_lost(volume: tuple[Path, bool]) -> None:
    """The usual temp-file pattern: create, unlink at once, write, read back, close — no error anywhere."""
    mnt, trash = volume
    path = mnt / f"scratch-{time.monotonic_ns()}"
    data = os.urandom(3 << 20)
    with open(path, "w+b") as f:
        os.unlink(path)
        f.write(data)
        f.flush()
        f.seek(0)
        assert f.read() == data
        assert os.fstat(f.fileno()).st_nlink == 0
    if trash:
        assert [p.read_bytes() == data for p in _trashed(mnt, path.name)] == [True]

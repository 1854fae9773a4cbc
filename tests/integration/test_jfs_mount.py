"""A real jfs mount (SQLite + local directory) exercised with ordinary system calls."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.testing.mounts import format_volume, jfs, mounted


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    base = tmp_path_factory.mktemp("vol")
    url = f"sqlite3://{base}/meta.db"
    format_volume(url, str(base / "bucket"))
    with mounted(url, base / "mnt") as mnt:
        yield url, mnt


@pytest.fixture
def mnt(volume: tuple[str, Path], request: pytest.FixtureRequest) -> Path:
    d = volume[1] / request.node.name
    d.mkdir()
    return d


def test_files_and_directories(mnt: Path) -> None:
    (mnt / "a").write_bytes(b"hello")
    assert (mnt / "a").read_bytes() == b"hello"
    (mnt / "dir" / "sub").mkdir(parents=True)
    names = sorted(f"f{i:04d}" for i in range(1000))
    for n in names:
        (mnt / "dir" / n).touch()
    assert sorted(os.listdir(mnt / "dir")) == sorted(names + ["sub"])
    assert os.stat(mnt / "dir").st_nlink == 3
    os.rename(mnt / "a", mnt / "dir" / "sub" / "b")
    assert (mnt / "dir" / "sub" / "b").read_bytes() == b"hello"
    with pytest.raises(OSError) as e:
        os.rmdir(mnt / "dir")
    assert e.value.errno == errno.ENOTEMPTY
    os.symlink("sub/b", mnt / "dir" / "ln")
    assert os.readlink(mnt / "dir" / "ln") == "sub/b"
    assert (mnt / "dir" / "ln").read_bytes() == b"hello"


def test_unlinking_one_name_shows_new_nlink_at_once(mnt: Path) -> None:
    (mnt / "x").write_bytes(b"1")
    os.link(mnt / "x", mnt / "y")
    assert os.stat(mnt / "y").st_nlink == 2
    os.unlink(mnt / "x")
    assert os.stat(mnt / "y").st_nlink == 1  # no stale count from the kernel's attribute cache
    (mnt / "z").write_bytes(b"2")
    os.link(mnt / "z", mnt / "w")
    os.stat(mnt / "w")
    os.rename(mnt / "y", mnt / "z")  # replaces one name of a two-name inode
    assert os.stat(mnt / "w").st_nlink == 1


def test_big_file_round_trip_and_truncate(mnt: Path) -> None:
    data = os.urandom(3 << 20) * 7  # 21 MiB, several blocks
    with open(mnt / "big", "wb") as f:
        f.write(data)
    assert hashlib.sha256((mnt / "big").read_bytes()).digest() == hashlib.sha256(data).digest()
    with open(mnt / "big", "r+b") as f:
        f.seek(5 << 20)
        f.write(b"X" * 100)
        f.truncate(10 << 20)
    expect = data[: 5 << 20] + b"X" * 100 + data[(5 << 20) + 100 : 10 << 20]
    assert (mnt / "big").read_bytes() == expect
    os.truncate(mnt / "big", 12 << 20)
    assert (mnt / "big").read_bytes() == expect + bytes(2 << 20)


def test_sparse_write_far_away(mnt: Path) -> None:
    with open(mnt / "sparse", "wb") as f:
        f.seek((64 << 20) + 10)
        f.write(b"end")
    st = os.stat(mnt / "sparse")
    assert st.st_size == (64 << 20) + 13
    with open(mnt / "sparse", "rb") as f:
        f.seek((64 << 20) - 5)
        assert f.read() == bytes(15) + b"end"


def test_xattrs(mnt: Path) -> None:
    p = mnt / "x"
    p.touch()
    os.setxattr(p, "user.color", b"blue")
    assert os.getxattr(p, "user.color") == b"blue"
    assert os.listxattr(p) == ["user.color"]
    os.removexattr(p, "user.color")
    with pytest.raises(OSError) as e:
        os.getxattr(p, "user.color")
    assert e.value.errno == errno.ENODATA


def test_chmod_chown_utime(mnt: Path) -> None:
    p = mnt / "f"
    p.touch()
    os.chmod(p, 0o600)
    os.chown(p, 1234, 5678)
    os.utime(p, ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(p)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o600, 1234, 5678)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_123, 2_000_000_456)


def _hold_lock(path: Path, kind: str) -> subprocess.Popen[str]:
    code = (
        "import fcntl,sys,time\n"
        f"f=open({str(path)!r},'r+')\n"
        + ("fcntl.flock(f, fcntl.LOCK_EX)\n" if kind == "flock" else "fcntl.lockf(f, fcntl.LOCK_EX, 10, 0)\n")
        + "print('locked', flush=True)\nsys.stdin.readline()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.parametrize("kind", ["flock", "fcntl"])
def test_locks_between_processes(mnt: Path, kind: str) -> None:
    p = mnt / "lock"
    p.write_bytes(b"0" * 100)
    holder = _hold_lock(p, kind)
    try:
        with open(p, "r+") as f:
            with pytest.raises(BlockingIOError):
                if kind == "flock":
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                else:
                    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
            assert holder.stdin is not None
            holder.stdin.write("\n")
            holder.stdin.flush()
            holder.wait(10)
            deadline = time.monotonic() + 10
            while True:  # the holder's close releases asynchronously
                try:
                    if kind == "flock":
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    else:
                        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
                    break
                except BlockingIOError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
    finally:
        holder.kill()
        holder.wait()


def test_copy_file_range_and_fallocate(mnt: Path) -> None:
    src, dst = mnt / "src", mnt / "dst"
    data = os.urandom(300_000)
    src.write_bytes(data)
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        assert os.copy_file_range(fi.fileno(), fo.fileno(), 200_000, 50_000, 0) == 200_000
    assert dst.read_bytes() == data[50_000:250_000]
    with open(dst, "r+b") as f:
        os.posix_fallocate(f.fileno(), 0, 1 << 20)
    assert os.stat(dst).st_size == 1 << 20


def test_statfs_and_special_files(volume: tuple[str, Path]) -> None:
    _, root = volume
    st = os.statvfs(root)
    assert st.f_bsize == 4096 and st.f_blocks > 0 and st.f_files > 0
    assert "jfs_fuse_ops_total" in (root / ".stats").read_text()
    cfg = json.loads((root / ".config").read_text())
    assert cfg["Format"]["Name"] == "test-vol"
    assert ".trash" in os.listdir(root)


def test_close_to_open_across_two_mounts(volume: tuple[str, Path], tmp_path: Path) -> None:
    url, root = volume
    with mounted(url, tmp_path / "second") as other:
        (root / "shared").write_bytes(b"version one")
        assert (other / "shared").read_bytes() == b"version one"
        (root / "shared").write_bytes(b"version two, longer")
        assert (other / "shared").read_bytes() == b"version two, longer"
        (root / "shared").write_bytes(b"version three, same")  # same length as before
        assert (other / "shared").read_bytes() == b"version three, same"
        (other / "fromB").write_bytes(b"b")
        assert (root / "fromB").read_bytes() == b"b"


def test_status_lists_the_mount_session(volume: tuple[str, Path]) -> None:
    url, root = volume
    out = jfs("status", url, "--json")
    doc = json.loads(out.stdout)
    assert any(s.get("MountPoint") == str(root) for s in doc["Sessions"])


def test_info_shows_chunks_slices_and_objects(mnt: Path) -> None:
    (mnt / "f").write_bytes(b"x" * 5000)
    out = jfs("info", str(mnt / "f"), "--json")
    doc = json.loads(out.stdout)
    assert doc["length"] == 5000 and doc["type"] == "regular"
    objects = [o for c in doc["chunks"] for s in c["slices"] for o in s["objects"]]
    assert len(objects) == 1 and objects[0].startswith("test-vol/chunks/") and objects[0].endswith("_0_5000")
    out = jfs("info", str(mnt), "--json")
    assert json.loads(out.stdout)["summary"]["files"] == 1
    bad = jfs("info", "/tmp", check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1

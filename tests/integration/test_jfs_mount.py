"""A real jfs mount (SQLite + local directory) exercised with ordinary system calls."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import mmap
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.testing.mounts import format_test_volume, jfs, mounted, reachable_dir
from jfs.testing.object_fixtures import seaweed_s3  # noqa: F401  (fixture)


@pytest.fixture(scope="module", params=["sqlite-file", "sqlite-file-trash", "redis-s3"])
def volume(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A formatted volume mounted at a temp dir: SQLite + local directory (trash off, and on as `jfs format`
    makes it by default), or Redis + SeaweedFS S3."""
    base = tmp_path_factory.mktemp(request.param)
    trash = ["--trash-days", "1"] if request.param.endswith("-trash") else []
    url = format_test_volume(request, base, *trash, redis_db=9, bucket_prefix="mount")
    # The mount point lives outside pytest's private (0700) temp tree so other users can reach it.
    with reachable_dir("jfs-mount-") as outside:
        with mounted(url, outside / "mnt") as mnt:
            mnt.chmod(0o755)
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


def test_files_replaced_or_unlinked_while_open_stay_usable(mnt: Path) -> None:
    """A rename over an open file, and the last of two hard links going, leave the open descriptors fully
    usable (with the trash on, both victims go to the trash)."""
    (mnt / "target").write_bytes(b"old")
    fd = os.open(mnt / "target", os.O_RDWR)
    try:
        (mnt / "new").write_bytes(b"new")
        os.rename(mnt / "new", mnt / "target")
        os.pwrite(fd, b"still mine", 0)
        os.fsync(fd)
        assert os.pread(fd, 100, 0) == b"still mine"
        assert os.fstat(fd).st_nlink == 0
        assert (mnt / "target").read_bytes() == b"new"
    finally:
        os.close(fd)
    (mnt / "a").write_bytes(b"A")
    os.link(mnt / "a", mnt / "b")
    fd = os.open(mnt / "b", os.O_WRONLY | os.O_APPEND)
    try:
        os.unlink(mnt / "a")
        assert os.fstat(fd).st_nlink == 1
        os.unlink(mnt / "b")
        os.write(fd, b"ppend")
        os.ftruncate(fd, 4)
        os.fsync(fd)
        assert os.fstat(fd).st_size == 4 and os.fstat(fd).st_nlink == 0
    finally:
        os.close(fd)
    assert sorted(os.listdir(mnt)) == ["target"]


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


def test_mmap_read_write(mnt: Path) -> None:
    p = mnt / "m"
    p.write_bytes(bytes(8192))
    with open(p, "r+b") as f, mmap.mmap(f.fileno(), 8192) as m:
        m[100:105] = b"hello"
        m.flush()
    assert p.read_bytes()[100:105] == b"hello"
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        assert m[100:105] == b"hello"


def test_file_larger_than_two_chunks(mnt: Path) -> None:
    block = os.urandom(1 << 20)
    size = 130  # MiB: three chunks
    h = hashlib.sha256()
    with open(mnt / "huge", "wb") as f:
        for i in range(size):
            piece = block[i:] + block[:i]
            f.write(piece)
            h.update(piece)
    assert os.stat(mnt / "huge").st_size == size << 20
    r = hashlib.sha256()
    with open(mnt / "huge", "rb") as f:
        while piece := f.read(4 << 20):
            r.update(piece)
    assert r.digest() == h.digest()


def test_directory_with_10k_entries(mnt: Path) -> None:
    d = mnt / "many"
    d.mkdir()
    for i in range(10_000):
        (d / f"entry-{i:05d}").touch()
    out = subprocess.run(["ls", "-l", str(d)], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.count("entry-") == 10_000
    assert len({e.name for e in os.scandir(d)}) == 10_000


def test_seek_data_and_hole(mnt: Path) -> None:
    p = mnt / "s"
    with open(p, "wb") as f:
        f.write(b"data")
        f.truncate(1 << 20)
    fd = os.open(p, os.O_RDONLY)
    try:
        assert os.lseek(fd, 0, os.SEEK_DATA) == 0
        assert 4 <= os.lseek(fd, 0, os.SEEK_HOLE) <= 1 << 20
        with pytest.raises(OSError) as e:
            os.lseek(fd, 2 << 20, os.SEEK_DATA)
        assert e.value.errno == errno.ENXIO
    finally:
        os.close(fd)


def _as_user(uid: int, command: str) -> subprocess.CompletedProcess[str]:
    """Run a shell command as `uid` (no supplementary groups)."""

    def drop() -> None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, preexec_fn=drop,
                          timeout=30, cwd="/")


def test_permission_denied_for_another_user(mnt: Path) -> None:
    secret = mnt / "secret"
    secret.write_bytes(b"root only")
    os.chmod(secret, 0o600)
    os.chmod(mnt, 0o755)
    assert _as_user(4242, f"ls '{mnt}'").returncode == 0  # the mount is reachable: denials below are real
    res = _as_user(4242, f"cat '{secret}'")
    assert res.returncode != 0 and "Permission denied" in res.stderr
    res = _as_user(4242, f"echo x > '{mnt / 'new'}'")
    assert res.returncode != 0 and "Permission denied" in res.stderr
    os.chmod(mnt, 0o1777)
    res = _as_user(4242, f"echo x > '{mnt / 'mine'}'")
    assert res.returncode == 0, res.stderr
    assert os.stat(mnt / "mine").st_uid == 4242
    res = _as_user(4343, f"rm -f '{mnt / 'mine'}'")
    assert res.returncode != 0 and "not permitted" in res.stderr  # sticky directory: EPERM


def test_a_write_by_another_user_clears_setuid_and_setgid(mnt: Path) -> None:
    """Security semantics the FUSE paths must keep (ADR 0090): a write by a caller without CAP_FSETID
    clears S_ISUID and S_ISGID (group-executable); the owner's root write keeps them."""
    os.chmod(mnt, 0o755)
    f = mnt / "suid-target"
    f.write_bytes(b"#!/bin/sh\n")
    os.chmod(f, 0o6777)
    with open(f, "ab") as out:  # root (CAP_FSETID): the bits stay
        out.write(b"# root\n")
    assert os.stat(f).st_mode & 0o7777 == 0o6777
    res = _as_user(4242, f"printf 'echo hi\\n' >> '{f}'")
    assert res.returncode == 0, res.stderr
    assert os.stat(f).st_mode & 0o7777 == 0o0777
    assert f.read_bytes() == b"#!/bin/sh\n# root\necho hi\n"


def test_locks_across_two_mounts(volume: tuple[str, Path], tmp_path: Path) -> None:
    url, root = volume
    (root / "shared-lock").write_bytes(b"0" * 10)
    holder = _hold_lock(root / "shared-lock", "flock")
    try:
        with mounted(url, tmp_path / "second") as other:
            code = (
                "import fcntl\n"
                f"f=open({str(other / 'shared-lock')!r},'r+')\n"
                "try:\n    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    print('blocked')\n"
            )
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
            assert out.stdout.strip() == "blocked"
            assert holder.stdin is not None
            holder.stdin.write("\n")
            holder.stdin.flush()
            holder.wait(10)
            deadline = time.monotonic() + 10
            while True:
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
                if out.stdout.strip() != "blocked":
                    break
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        holder.kill()
        holder.wait()

"""Limits and hostile arguments through a real mount: arbitrary bytes in names and xattrs, 255-byte names,
paths deeper than PATH_MAX, huge xattrs, absurd offsets. Each gets the errno Linux gives, and the mount
process stays alive and keeps serving."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.testing.mounts import format_volume, is_mounted, mounted

MAX_FILE_SIZE = (64 << 20) << 31  # 2^57: 2^31 chunks of 64 MiB, as JuiceFS


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("limits")
    url = f"sqlite3://{base}/meta.db"
    format_volume(url, str(base / "bucket"))
    outside = Path(tempfile.mkdtemp(prefix="jfs-limits-"))
    try:
        with mounted(url, outside / "mnt") as mnt:
            yield mnt
    finally:
        shutil.rmtree(outside, ignore_errors=True)


@pytest.fixture
def mnt(volume: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    d = volume / request.node.name
    d.mkdir()
    yield d
    # The mount survived whatever the test threw at it: it still answers, and logged no crashed handler.
    assert is_mounted(str(volume))
    probe = volume / f"alive-{request.node.name}"
    probe.write_bytes(b"still serving")
    assert probe.read_bytes() == b"still serving"
    probe.unlink()
    log = (volume.parent / f"{volume.name}.log").read_text(errors="replace")
    assert "fuse_handler_failed" not in log and "Traceback" not in log, log[-3000:]


def _errno(fn, *args, **kwargs) -> int:  # type: ignore[no-untyped-def]
    with pytest.raises(OSError) as e:
        fn(*args, **kwargs)
    return int(e.value.errno or 0)


LOW = bytes(b for b in range(1, 128) if b != ord("/"))  # with HIGH: every byte a name may hold
HIGH = bytes(range(128, 256))


def test_names_of_arbitrary_bytes(mnt: Path) -> None:
    root = bytes(mnt)
    names = [LOW, HIGH, b"\xff\xfe\x80 not utf-8", b"\n\t\r", b" ", b"...", b"-", "日本語".encode(), b"\x01"]
    for i, name in enumerate(names):
        p = os.path.join(root, name)
        with open(p, "wb") as f:
            f.write(name)
        os.mkdir(p + b".d")
        os.symlink(name + b"\x80target", p + b".l")
        assert os.readlink(p + b".l") == name + b"\x80target"
        os.setxattr(p, b"user." + name[:200], name + bytes([i]))
    listed = set(os.listdir(root))
    assert listed == {n for n in names} | {n + b".d" for n in names} | {n + b".l" for n in names}
    for i, name in enumerate(names):
        p = os.path.join(root, name)
        with open(p, "rb") as f:
            assert f.read() == name
        assert os.getxattr(p, b"user." + name[:200]) == name + bytes([i])
        assert b"user." + name[:200] in [n.encode("utf-8", "surrogateescape") for n in os.listxattr(p)]
        os.rename(p, p + b"\xc0moved")
    assert os.path.exists(os.path.join(root, HIGH + b"\xc0moved"))
    for bad in (b".", b".."):
        assert _errno(os.mkdir, os.path.join(root, bad)) == errno.EEXIST


def test_name_length_limit(mnt: Path) -> None:
    ok, long = "n" * 255, "n" * 256
    (mnt / ok).write_bytes(b"x")
    assert (mnt / ok).read_bytes() == b"x"
    wide = "é" * 127 + "x"  # 255 bytes of UTF-8
    (mnt / wide).mkdir()
    assert wide in os.listdir(mnt)
    for fn, args in [
        (os.open, (mnt / long, os.O_CREAT | os.O_WRONLY)),
        (os.mkdir, (mnt / long,)),
        (os.symlink, ("t", mnt / long)),
        (os.link, (mnt / ok, mnt / long)),
        (os.rename, (mnt / ok, mnt / long)),
        (os.stat, (mnt / long,)),
        (os.mkdir, (mnt / ("é" * 128),)),  # 256 bytes
    ]:
        assert _errno(fn, *args) == errno.ENAMETOOLONG, fn
    os.symlink("t" * 4095, mnt / "longest-target")
    assert len(os.readlink(mnt / "longest-target")) == 4095
    assert _errno(os.symlink, "t" * 4096, mnt / "too-long-target") == errno.ENAMETOOLONG
    assert sorted(os.listdir(mnt)) == sorted([ok, wide, "longest-target"])


def test_paths_deeper_than_path_max(mnt: Path) -> None:
    component = "d" * 250
    fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    depth = 0
    try:
        while len(str(mnt)) + depth * 251 < 6000:  # well past PATH_MAX (4096), reached relatively
            os.mkdir(component, dir_fd=fd)
            nfd = os.open(component, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            depth += 1
        with open(os.open("deep-file", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd), "wb") as f:
            f.write(b"at the bottom")
        with open(os.open("deep-file", os.O_RDONLY, dir_fd=fd), "rb") as f:
            assert f.read() == b"at the bottom"
    finally:
        os.close(fd)
    full = str(mnt) + f"/{component}" * depth + "/deep-file"
    assert len(full) > 6000
    assert _errno(os.stat, full) == errno.ENAMETOOLONG  # as Linux: a path of 4096 bytes or more
    levels = (4095 - len(str(mnt))) // 251
    fits = str(mnt) + f"/{component}" * levels
    assert len(fits) < 4096 and os.path.isdir(fits)
    k = 4096 - len(fits) - 1  # a last component that makes the path exactly 4096 bytes
    assert 0 < k <= 255
    assert _errno(os.stat, fits + "/" + "x" * k) == errno.ENAMETOOLONG
    assert _errno(os.stat, fits + "/" + "x" * (k - 1)) == errno.ENOENT  # 4095 bytes: looked up
    os.chdir(fits)  # and from there, relative paths go on
    try:
        rel = "/".join([component] * (depth - levels)) + "/deep-file"
        assert Path(rel).read_bytes() == b"at the bottom"
    finally:
        os.chdir("/")
    shutil.rmtree(mnt / component)  # fd-relative removal of the whole chain
    assert os.listdir(mnt) == []


def test_xattr_limits(mnt: Path) -> None:
    p = mnt / "x"
    p.touch()
    big = os.urandom(65536)
    os.setxattr(p, "user.big", big)
    assert os.getxattr(p, "user.big") == big
    assert _errno(os.setxattr, p, "user.bigger", big + b"!") == errno.E2BIG
    os.setxattr(p, "user.empty", b"")
    assert os.getxattr(p, "user.empty") == b""
    name255 = "user." + "n" * 250
    os.setxattr(p, name255, b"v")
    assert os.getxattr(p, name255) == b"v"
    assert _errno(os.setxattr, p, name255 + "n", b"v") == errno.ERANGE
    assert _errno(os.getxattr, p, name255 + "n") == errno.ERANGE
    assert _errno(os.setxattr, p, "user.big", b"v", os.XATTR_CREATE) == errno.EEXIST
    assert _errno(os.setxattr, p, "user.none", b"v", os.XATTR_REPLACE) == errno.ENODATA
    assert _errno(os.getxattr, p, "user.none") == errno.ENODATA
    for i in range(200):
        os.setxattr(p, f"user.k{i:03d}", bytes([i]) * i)
    names = os.listxattr(p)
    assert len(names) == 203 and "user.k199" in names
    assert os.getxattr(p, "user.k150") == bytes([150]) * 150
    os.removexattr(p, "user.big")
    assert _errno(os.removexattr, p, "user.big") == errno.ENODATA


def test_absurd_offsets(mnt: Path) -> None:
    p = mnt / "f"
    p.write_bytes(b"0123456789")
    fd = os.open(p, os.O_RDWR)
    try:
        assert os.pread(fd, 10, 1 << 62) == b""
        assert os.pread(fd, 10, 5) == b"56789"
        assert _errno(os.pread, fd, 10, -1) == errno.EINVAL
        assert _errno(os.pwrite, fd, b"x", -1) == errno.EINVAL
        assert _errno(os.pwrite, fd, b"x", MAX_FILE_SIZE) == errno.EFBIG
        for off, n in ((MAX_FILE_SIZE - 1, 2), (MAX_FILE_SIZE - 4096, 8192)):
            try:  # a write across the limit: cut short at the limit (as Linux does) or refused
                assert os.pwrite(fd, b"y" * n, off) == MAX_FILE_SIZE - off
            except OSError as exc:
                assert exc.errno == errno.EFBIG
            assert os.fstat(fd).st_size <= MAX_FILE_SIZE
        os.ftruncate(fd, 10)
        assert _errno(os.pwrite, fd, b"x", 1 << 62) == errno.EFBIG
        assert _errno(os.pwrite, fd, b"xx", (1 << 63) - 1) == errno.EINVAL  # the offset itself overflows
        assert _errno(os.ftruncate, fd, MAX_FILE_SIZE + 1) == errno.EFBIG
        assert _errno(os.ftruncate, fd, -1) == errno.EINVAL
        assert _errno(os.posix_fallocate, fd, MAX_FILE_SIZE, 10) in (errno.EFBIG, errno.EINVAL)
        assert _errno(os.lseek, fd, 1 << 40, os.SEEK_DATA) == errno.ENXIO
        assert os.fstat(fd).st_size == 10  # nothing above changed the file
        assert os.pwrite(fd, b"end", MAX_FILE_SIZE - 3) == 3  # the very last bytes a file may hold
        assert os.fstat(fd).st_size == MAX_FILE_SIZE
        assert os.pread(fd, 8, MAX_FILE_SIZE - 5) == b"\0\0end"
        assert os.pread(fd, 4, 8) == b"89\0\0"
        os.ftruncate(fd, 4)
        assert os.pread(fd, 100, 0) == b"0123"
    finally:
        os.close(fd)
    q = mnt / "appender"
    q.write_bytes(b"")
    os.truncate(q, MAX_FILE_SIZE - 1)
    afd = os.open(q, os.O_WRONLY | os.O_APPEND)
    try:
        try:
            assert os.write(afd, b"xy") == 1  # cut short at the limit
        except OSError as exc:
            assert exc.errno == errno.EFBIG
        os.ftruncate(afd, MAX_FILE_SIZE)
        assert _errno(os.write, afd, b"z") == errno.EFBIG  # nothing more fits
    finally:
        os.close(afd)
    assert os.stat(q).st_size == MAX_FILE_SIZE

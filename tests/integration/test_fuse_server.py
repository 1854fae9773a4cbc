"""The FUSE server on a real kernel mount: memfs served by `jfs.adapters.fuse.server` in a subprocess,
exercised with plain ``os`` calls from the test process (and from helper processes for locks).

Every mount is made by `mounted`, which always unmounts (lazily) and kills the server, also when the
test fails; the server subprocess also dies with its parent (PR_SET_PDEATHSIG), and a module-level
guard unmounts anything left under the test's temporary directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import random
import select
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jfs.adapters.fuse.mounting import is_mounted, unmount


def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "FUSE tests need Linux"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as exc:
        return f"cannot open /dev/fuse: {exc}"
    if os.geteuid() != 0 and not any(
        os.access(os.path.join(d, "fusermount3"), os.X_OK) for d in os.environ.get("PATH", "").split(":")
    ):
        return "not root and no fusermount3 on PATH"
    return None


pytestmark = [pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]

libc = ctypes.CDLL(None, use_errno=True)
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4
AT_FDCWD = -100
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
FLOCK = struct.Struct("hhqqi4x")  # struct flock on x86-64/aarch64: type whence start len pid
BLOCK = 64 * 1024  # memfs block size: its holes are whole blocks


class Mount:
    def __init__(self, path: Path, proc: subprocess.Popen[str], log: Path) -> None:
        self.path = path
        self.proc = proc
        self.log = log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


_pending: dict[int, bytes] = {}


def _readline(stream: object, timeout: float) -> str | None:
    """One line from a subprocess pipe, or None if none arrives within `timeout` seconds.

    Reads the raw fd (not the buffered file object), so select() never misses buffered lines.
    """
    fd = stream.fileno()  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    buf = _pending.pop(fd, b"")
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            _pending[fd] = buf
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            _pending[fd] = buf
            return None
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    if rest:
        _pending[fd] = rest
    return line.decode()


@contextlib.contextmanager
def mounted(base: Path, *args: str) -> Iterator[Mount]:
    """Mount a fresh memfs at ``base/mnt`` for the duration of the block; always cleaned up."""
    mnt = base / "mnt"
    mnt.mkdir(parents=True, exist_ok=True)
    log = base / "memfs.log"
    with open(log, "w") as errf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jfs.testing.memfs", str(mnt), *args],
            stdout=subprocess.PIPE, stderr=errf, text=True,
        )
    try:
        line = _readline(proc.stdout, 30)
        assert proc.stdout is not None
        _pending.pop(proc.stdout.fileno(), None)
        if line != "READY":
            raise RuntimeError(f"memfs did not start ({line!r}):\n{log.read_text()}")
        yield Mount(mnt, proc, log)
    finally:
        _cleanup(mnt, proc)


def _cleanup(mnt: Path, proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
    if is_mounted(mnt):
        with contextlib.suppress(OSError):
            unmount(mnt, lazy=True)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("fuse")
    yield path
    # Safety net: nothing of ours may stay mounted.
    with open("/proc/self/mountinfo") as f:
        left = [line.split()[4] for line in f if line.split()[4].startswith(str(path))]
    for mnt in left:
        with contextlib.suppress(OSError):
            unmount(mnt, lazy=True)
    assert not left, f"mounts left behind: {left}"


@pytest.fixture(scope="module")
def fs(base: Path) -> Iterator[Mount]:
    with mounted(base / "main") as m:
        yield m
        text = m.log_text()
    # Errors and warnings fail the module, except the one the handler-bug test provokes on purpose.
    unexpected = [ln for ln in text.splitlines()
                  if ("[error" in ln or "[warning" in ln) and not ("fuse_handler_failed" in ln and "op=GETXATTR" in ln)]
    assert not unexpected, "server logged errors:\n" + text


@pytest.fixture
def work(fs: Mount, request: pytest.FixtureRequest) -> Path:
    name: str = request.node.name
    d = fs.path / name.replace("[", "_").replace("]", "_")
    d.mkdir()
    return d


def _wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@contextlib.contextmanager
def _child(script: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    proc = _spawn(script, *args)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None and proc.stderr is not None
        _pending.pop(proc.stdout.fileno(), None)
        proc.stdout.close()
        proc.stderr.close()


# ---------------------------------------------------------------------------------------------- basics


def test_mount_is_listed_with_fsname_and_subtype(fs: Mount) -> None:
    with open("/proc/mounts") as f:
        lines = [line.split() for line in f]
    mine = [ln for ln in lines if ln[1] == str(fs.path)]
    assert mine, "mount point not in /proc/mounts"
    source, _, fstype, opts = mine[-1][:4]
    assert source == "memfs"
    assert fstype == "fuse.memfs"
    assert "default_permissions" in opts and "allow_other" in opts
    assert {"nosuid", "nodev"} <= set(opts.split(","))


def test_create_write_read_small_file(work: Path) -> None:
    p = work / "hello.txt"
    p.write_bytes(b"hello, world\n")
    assert p.read_bytes() == b"hello, world\n"
    st = os.stat(p)
    assert stat.S_ISREG(st.st_mode) and st.st_size == 13 and st.st_nlink == 1
    with open(p, "ab") as f:
        f.write(b"more\n")
    assert p.read_bytes() == b"hello, world\nmore\n"
    with open(p, "r+b") as f:
        f.seek(7)
        f.write(b"WORLD")
    assert p.read_bytes() == b"hello, WORLD\nmore\n"
    with pytest.raises(FileExistsError):
        os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with open(p, "wb") as f:  # O_TRUNC arrives with OPEN (FUSE_ATOMIC_O_TRUNC)
        pass
    assert os.stat(p).st_size == 0


def test_write_and_read_back_4_mib(work: Path) -> None:
    data = random.Random(7).randbytes(4 << 20)
    p = work / "big"
    with open(p, "wb") as f:
        assert f.write(data) == len(data)
    assert os.stat(p).st_size == len(data)
    with open(p, "rb") as f:
        assert f.read() == data
    fd = os.open(p, os.O_RDONLY)
    try:
        assert os.pread(fd, 100, (1 << 20) - 50) == data[(1 << 20) - 50:(1 << 20) + 50]
        assert os.pread(fd, 10, len(data) - 4) == data[-4:]
        assert os.pread(fd, 10, len(data) + 100) == b""
    finally:
        os.close(fd)


def test_sparse_write_reads_zeros_in_between(work: Path) -> None:
    p = work / "sparse"
    fd = os.open(p, os.O_CREAT | os.O_RDWR)
    try:
        os.pwrite(fd, b"tail", 3 * BLOCK + 10)
        assert os.fstat(fd).st_size == 3 * BLOCK + 14
        assert os.pread(fd, 16, BLOCK) == bytes(16)
        assert os.pread(fd, 4, 3 * BLOCK + 10) == b"tail"
    finally:
        os.close(fd)


def test_mkdir_and_readdir_of_2000_entries(work: Path) -> None:
    d = work / "many"
    d.mkdir()
    names = [f"file-{i:05d}-{'x' * (i % 40)}" for i in range(2000)]
    for i, name in enumerate(names):
        with open(d / name, "wb") as f:
            f.write(b"y" * (i % 7))
    os.mkdir(d / "sub")
    assert sorted(os.listdir(d)) == sorted([*names, "sub"])
    with os.scandir(d) as it:
        seen = {}
        for entry in it:
            st = entry.stat(follow_symlinks=False)
            seen[entry.name] = (entry.is_dir(), st.st_size, entry.inode() == st.st_ino)
    assert len(seen) == 2001
    assert seen["sub"][0] is True
    for i, name in enumerate(names):
        assert seen[name] == (False, i % 7, True)
    assert os.stat(d).st_nlink == 3  # ., its entry in the parent, sub/..


def test_readdir_survives_changes_during_listing(work: Path) -> None:
    d = work / "changing"
    d.mkdir()
    for i in range(600):
        (d / f"n{i:04d}").touch()
    seen = []
    with os.scandir(d) as it:
        for k, entry in enumerate(it):
            seen.append(entry.name)
            if k == 10:
                for j in range(0, 600, 2):  # remove half, including some not listed yet
                    os.unlink(d / f"n{j:04d}")
    assert len(seen) == len(set(seen)), "an entry was listed twice"
    odd = {f"n{i:04d}" for i in range(1, 600, 2)}
    assert odd <= set(seen), "a surviving entry was skipped"


def test_rename_plain_overwrite_and_directories(work: Path) -> None:
    (work / "a").write_bytes(b"A")
    os.rename(work / "a", work / "b")
    assert not (work / "a").exists() and (work / "b").read_bytes() == b"A"
    (work / "c").write_bytes(b"C")
    os.rename(work / "c", work / "b")  # replaces
    assert (work / "b").read_bytes() == b"C"
    os.makedirs(work / "d1/inner")
    os.mkdir(work / "d2")
    os.rename(work / "d1/inner", work / "d2/inner")
    assert os.listdir(work / "d1") == [] and os.listdir(work / "d2") == ["inner"]
    assert os.stat(work / "d1").st_nlink == 2 and os.stat(work / "d2").st_nlink == 3
    (work / "d2/inner/f").touch()
    os.mkdir(work / "full")
    (work / "full/x").touch()
    with pytest.raises(OSError) as exc:
        os.rename(work / "d2/inner", work / "full")
    assert exc.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as exc:
        os.rename(work / "d2", work / "d2/inner/below")
    assert exc.value.errno == errno.EINVAL


def _renameat2(old: Path, new: Path, flags: int) -> None:
    if libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def test_renameat2_noreplace_and_exchange(work: Path) -> None:
    (work / "x").write_bytes(b"X")
    (work / "y").write_bytes(b"Y")
    with pytest.raises(FileExistsError):
        _renameat2(work / "x", work / "y", RENAME_NOREPLACE)
    _renameat2(work / "x", work / "z", RENAME_NOREPLACE)
    assert (work / "z").read_bytes() == b"X" and not (work / "x").exists()
    _renameat2(work / "z", work / "y", RENAME_EXCHANGE)
    assert (work / "z").read_bytes() == b"Y" and (work / "y").read_bytes() == b"X"
    os.mkdir(work / "dir")
    _renameat2(work / "dir", work / "y", RENAME_EXCHANGE)  # a directory and a file trade places
    assert (work / "y").is_dir() and (work / "dir").read_bytes() == b"X"
    with pytest.raises(FileNotFoundError):
        _renameat2(work / "z", work / "missing", RENAME_EXCHANGE)
    with pytest.raises(OSError) as exc:
        _renameat2(work / "z", work / "w", RENAME_WHITEOUT)
    assert exc.value.errno in (errno.EINVAL, errno.EPERM)


def test_hard_links_symlinks_and_readlink(work: Path) -> None:
    a = work / "a"
    a.write_bytes(b"data")
    os.link(a, work / "b")
    assert os.stat(a).st_nlink == 2 and os.stat(work / "b").st_ino == os.stat(a).st_ino
    os.unlink(a)
    assert os.stat(work / "b").st_nlink == 1
    assert (work / "b").read_bytes() == b"data"
    os.symlink("b", work / "s")
    assert os.readlink(work / "s") == "b"
    assert stat.S_ISLNK(os.lstat(work / "s").st_mode)
    assert (work / "s").read_bytes() == b"data"
    long_target = "t" * 4000
    os.symlink(long_target, work / "long")
    assert os.readlink(work / "long") == long_target
    os.mkdir(work / "d")
    with pytest.raises(PermissionError):
        os.link(work / "d", work / "d2")
    os.mkfifo(work / "fifo")
    assert stat.S_ISFIFO(os.stat(work / "fifo").st_mode)


def test_unlinked_open_file_stays_readable(work: Path) -> None:
    p = work / "ghost"
    p.write_bytes(b"boo")
    with open(p, "rb") as f:
        os.unlink(p)
        assert not p.exists()
        assert f.read() == b"boo"
        assert os.fstat(f.fileno()).st_nlink == 0


def test_xattrs_and_size_probing(work: Path) -> None:
    p = work / "x"
    p.touch()
    assert os.listxattr(p) == []
    os.setxattr(p, "user.small", b"v")
    big = bytes(range(256)) * 4
    os.setxattr(p, "user.big", big)
    assert os.getxattr(p, "user.small") == b"v"
    assert os.getxattr(p, "user.big") == big
    assert sorted(os.listxattr(p)) == ["user.big", "user.small"]
    path = os.fsencode(p)
    # size probe: a NULL buffer of size 0 returns the value's size
    assert libc.getxattr(path, b"user.big", None, 0) == len(big)
    buf = ctypes.create_string_buffer(10)
    assert libc.getxattr(path, b"user.big", buf, 10) == -1 and ctypes.get_errno() == errno.ERANGE
    assert libc.listxattr(path, None, 0) == len(b"user.small\0user.big\0")
    assert libc.listxattr(path, buf, 5) == -1 and ctypes.get_errno() == errno.ERANGE
    with pytest.raises(FileExistsError):
        os.setxattr(p, "user.small", b"w", os.XATTR_CREATE)
    with pytest.raises(OSError) as exc:
        os.setxattr(p, "user.none", b"w", os.XATTR_REPLACE)
    assert exc.value.errno == errno.ENODATA
    os.removexattr(p, "user.small")
    with pytest.raises(OSError) as exc:
        os.getxattr(p, "user.small")
    assert exc.value.errno == errno.ENODATA
    assert os.listxattr(p) == ["user.big"]


def test_truncate_chmod_chown_and_utime_with_nanoseconds(work: Path) -> None:
    p = work / "t"
    p.write_bytes(b"0123456789")
    os.truncate(p, 4)
    assert p.read_bytes() == b"0123"
    os.truncate(p, BLOCK + 1)
    assert p.read_bytes() == b"0123" + bytes(BLOCK - 3)
    with open(p, "r+b") as f:
        os.ftruncate(f.fileno(), 2)
    assert p.read_bytes() == b"01"
    os.chmod(p, 0o4751)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o4751
    os.chown(p, 1234, 5678)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    atime = 1_600_000_000_123_456_789
    mtime = 1_500_000_000_987_654_321
    os.utime(p, ns=(atime, mtime))
    st = os.stat(p)
    assert (st.st_atime_ns, st.st_mtime_ns) == (atime, mtime)
    os.utime(p, ns=(-1_000_000_001, 5))  # before the epoch
    assert os.stat(p).st_atime_ns == -1_000_000_001
    before = time.time_ns()
    os.utime(p)  # UTIME_NOW: the file system's clock
    st = os.stat(p)
    assert st.st_mtime_ns >= before - 1_000_000_000 and st.st_atime_ns >= before - 1_000_000_000


def test_statvfs(fs: Mount) -> None:
    sv = os.statvfs(fs.path)
    assert sv.f_bsize == BLOCK and sv.f_frsize == BLOCK
    assert sv.f_blocks == 1 << 20 and 0 < sv.f_bfree <= sv.f_blocks
    assert sv.f_namemax == 255 and sv.f_files == 1 << 24


# ---------------------------------------------------------------------------------------------- fallocate, copy_file_range, lseek


def test_posix_fallocate_and_punch_hole(work: Path) -> None:
    p = work / "falloc"
    fd = os.open(p, os.O_CREAT | os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, 3 * BLOCK)
        assert os.fstat(fd).st_size == 3 * BLOCK
        os.pwrite(fd, b"\xff" * (3 * BLOCK), 0)
        if libc.fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, ctypes.c_long(BLOCK),
                          ctypes.c_long(BLOCK)) != 0:
            pytest.fail(f"punch hole: {os.strerror(ctypes.get_errno())}")
        assert os.fstat(fd).st_size == 3 * BLOCK
        assert os.pread(fd, 3 * BLOCK, 0) == b"\xff" * BLOCK + bytes(BLOCK) + b"\xff" * BLOCK
        assert os.lseek(fd, 0, os.SEEK_HOLE) == BLOCK
        assert os.lseek(fd, BLOCK, os.SEEK_DATA) == 2 * BLOCK
        if libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, ctypes.c_long(0), ctypes.c_long(10 * BLOCK)) != 0:
            pytest.fail(f"keep size: {os.strerror(ctypes.get_errno())}")
        assert os.fstat(fd).st_size == 3 * BLOCK
    finally:
        os.close(fd)


def test_copy_file_range(work: Path) -> None:
    data = random.Random(3).randbytes(300_000)
    (work / "src").write_bytes(data)
    src = os.open(work / "src", os.O_RDONLY)
    dst = os.open(work / "dst", os.O_CREAT | os.O_WRONLY)
    try:
        done = 0
        while done < len(data):
            n = os.copy_file_range(src, dst, len(data) - done, done, done + 7)
            assert n > 0
            done += n
        assert os.copy_file_range(src, dst, 10, len(data)) == 0
    finally:
        os.close(src)
        os.close(dst)
    assert (work / "dst").read_bytes() == bytes(7) + data


def test_lseek_data_and_hole(work: Path) -> None:
    p = work / "holes"
    fd = os.open(p, os.O_CREAT | os.O_RDWR)
    try:
        os.pwrite(fd, b"a" * 100, 0)
        os.pwrite(fd, b"b" * 100, 4 * BLOCK)
        size = 4 * BLOCK + 100
        assert os.lseek(fd, 0, os.SEEK_DATA) == 0
        assert os.lseek(fd, 0, os.SEEK_HOLE) == BLOCK
        assert os.lseek(fd, 50, os.SEEK_HOLE) == BLOCK
        assert os.lseek(fd, BLOCK + 5, os.SEEK_DATA) == 4 * BLOCK
        assert os.lseek(fd, 4 * BLOCK, os.SEEK_HOLE) == size
        with pytest.raises(OSError) as exc:
            os.lseek(fd, size, os.SEEK_DATA)
        assert exc.value.errno == errno.ENXIO
        assert os.lseek(fd, 0, os.SEEK_END) == size
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------- locks


def test_flock_between_two_processes(work: Path) -> None:
    p = work / "flocked"
    p.write_bytes(b"x")
    fd = os.open(p, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        script = """
            import fcntl, os, sys
            fd = os.open(sys.argv[1], os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                print("nb-acquired", flush=True)
            except BlockingIOError:
                print("nb-busy", flush=True)
            fcntl.flock(fd, fcntl.LOCK_SH)
            print("acquired", flush=True)
            fcntl.flock(fd, fcntl.LOCK_UN)
            print("released", flush=True)
        """
        with _child(script, str(p)) as child:
            assert _readline(child.stdout, 10) == "nb-busy"
            assert _readline(child.stdout, 0.5) is None, "the waiter got the lock while it was held"
            fcntl.flock(fd, fcntl.LOCK_SH)  # downgrade: the shared waiter may proceed
            assert _readline(child.stdout, 10) == "acquired"
            assert _readline(child.stdout, 10) == "released"
            assert child.wait(10) == 0
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    # The lock goes away with the last close. The kernel sends that unlock with RELEASE, which is
    # asynchronous (after close() returns), so another open file gets the lock shortly after.
    fd2 = os.open(p, os.O_RDWR)
    try:
        assert _wait_until(lambda: _try_flock(fd2), 5)
    finally:
        os.close(fd2)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def test_posix_locks_between_two_processes(work: Path) -> None:
    p = work / "lockf"
    p.write_bytes(b"0" * 200)
    fd = os.open(p, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX, 100, 0)  # bytes 0..99
        script = """
            import fcntl, os, struct, sys
            FLOCK = struct.Struct("hhqqi4x")
            fd = os.open(sys.argv[1], os.O_RDWR)
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 150)  # free range: fine
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50)
                print("nb-acquired", flush=True)
            except OSError as exc:
                print("nb-busy", exc.errno, flush=True)
            got = FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_GETLK, FLOCK.pack(fcntl.F_WRLCK, 0, 50, 10, 0)))
            print("getlk", got[0], got[2], got[3], got[4], flush=True)
            fcntl.lockf(fd, fcntl.LOCK_EX, 10, 50)
            print("acquired", flush=True)
            sys.stdin.readline()
        """
        with _child(script, str(p)) as child:
            line = _readline(child.stdout, 10)
            assert line is not None and line.split()[0] == "nb-busy", line
            assert int(line.split()[1]) in (errno.EAGAIN, errno.EACCES)
            line = _readline(child.stdout, 10)
            assert line == f"getlk {fcntl.F_WRLCK} 0 100 {os.getpid()}", line
            assert _readline(child.stdout, 0.5) is None, "the waiter got the lock while it was held"
            fcntl.lockf(fd, fcntl.LOCK_UN, 100, 0)
            assert _readline(child.stdout, 10) == "acquired"
            # while the child holds 50..59, our non-blocking attempt fails, and F_GETLK names the child
            with pytest.raises(OSError) as exc:
                fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 55)
            assert exc.value.errno in (errno.EAGAIN, errno.EACCES)
            got = FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_GETLK, FLOCK.pack(fcntl.F_RDLCK, 0, 0, 0, 0)))
            assert got[0] == fcntl.F_WRLCK and got[4] == child.pid
            child.kill()  # a dying process closes its files: FLUSH releases its POSIX locks
            child.wait(10)
            assert _wait_until(lambda: _try_lockf(fd, 50), 5)
    finally:
        os.close(fd)


def _try_lockf(fd: int, start: int) -> bool:
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, start)
        return True
    except OSError:
        return False


def test_blocked_setlkw_waiter_interrupted_by_signal_gets_eintr(work: Path) -> None:
    p = work / "intr"
    p.write_bytes(b"x")
    fd = os.open(p, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        script = """
            import ctypes, fcntl, os, signal, struct, sys, time
            libc = ctypes.CDLL(None, use_errno=True)
            signal.signal(signal.SIGALRM, lambda *a: None)  # a handler without SA_RESTART
            fd = os.open(sys.argv[1], os.O_RDWR)
            buf = ctypes.create_string_buffer(struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0), 32)
            print("waiting", flush=True)
            signal.setitimer(signal.ITIMER_REAL, 1.0)
            t0 = time.monotonic()
            r = libc.fcntl(fd, fcntl.F_SETLKW, buf)
            print(r, ctypes.get_errno(), round(time.monotonic() - t0, 1), flush=True)
        """
        with _child(script, str(p)) as child:
            assert _readline(child.stdout, 10) == "waiting"
            line = _readline(child.stdout, 15)
            assert line is not None, "the interrupted waiter did not return"
            r, err, waited = line.split()
            assert (int(r), int(err)) == (-1, errno.EINTR)
            assert float(waited) >= 0.9
            assert child.wait(10) == 0
        # the abandoned waiter left nothing behind: our lock still works and can be released
        fcntl.lockf(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------- robustness


def test_slow_handler_does_not_block_other_requests(work: Path) -> None:
    slow = work / "slow"
    slow.write_bytes(b"z" * 100)
    os.setxattr(slow, "user.memfs.read_delay", b"2")
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(slow.read_bytes()))  # a new open drops the cache
    t0 = time.monotonic()
    reader.start()
    try:
        time.sleep(0.2)
        t1 = time.monotonic()
        assert not (work / "absent").exists()  # a LOOKUP round trip
        os.stat(work)
        (work / "new").write_bytes(b"n")  # CREATE + WRITE + FLUSH + RELEASE
        assert os.listdir(work) is not None
        assert time.monotonic() - t1 < 1.5, "fast requests waited for the slow one (2 s)"
    finally:
        reader.join(10)
    assert result == [b"z" * 100]
    assert time.monotonic() - t0 >= 1.9


def test_handler_bug_answers_eio_and_the_mount_survives(fs: Mount, work: Path) -> None:
    p = work / "buggy"
    p.touch()
    with pytest.raises(OSError) as exc:
        os.getxattr(p, "user.memfs.crash")
    assert exc.value.errno == errno.EIO
    assert os.stat(p).st_size == 0
    assert "fuse_handler_failed" in fs.log_text()


def test_unimplemented_operation_fails_instead_of_hanging(work: Path) -> None:
    p = work / "io"
    p.write_bytes(b"x")
    fs_ioc_getflags = 0x80086601
    with open(p, "rb") as f:
        t0 = time.monotonic()
        with pytest.raises(OSError) as exc:
            fcntl.ioctl(f.fileno(), fs_ioc_getflags, b"\0" * 8)
        assert exc.value.errno in (errno.ENOTTY, errno.ENOSYS, errno.EINVAL)
        poller = select.poll()  # FUSE_POLL is not implemented: the kernel falls back to "ready"
        poller.register(f.fileno(), select.POLLIN)
        assert poller.poll(5000)
        assert time.monotonic() - t0 < 5


# ---------------------------------------------------------------------------------------------- separate mounts


def test_notifications_invalidate_long_lived_kernel_caches(base: Path) -> None:
    with mounted(base / "notify", "--attr-timeout", "60", "--entry-timeout", "60",
                 "--negative-timeout", "60") as m:
        d = m.path / "n"
        d.mkdir()
        a = d / "a"
        a.write_bytes(b"1")
        os.link(a, d / "b")
        assert os.stat(a).st_nlink == 2
        assert not (d / "c").exists()  # now cached as negative for 60 s
        os.setxattr(d, "user.memfs.remote_unlink", b"b")  # "another client" removes b
        assert os.stat(a).st_nlink == 1  # notify_inval_inode is in effect before the reply
        assert _wait_until(lambda: not (d / "b").exists()), "notify_delete did not drop the dentry"
        os.setxattr(d, "user.memfs.remote_create", b"c")
        assert _wait_until(lambda: (d / "c").exists()), "notify_inval_entry did not drop the negative entry"
        os.setxattr(a, "user.memfs.remote_chmod", b"600")
        assert stat.S_IMODE(os.stat(a).st_mode) == 0o600
        assert sorted(os.listdir(d)) == ["a", "c"]


def test_mount_through_fusermount3(base: Path) -> None:
    with mounted(base / "fusermount", "--fusermount") as m:
        assert "via=fusermount3" in m.log_text()
        (m.path / "f").write_bytes(b"via fusermount3")
        assert (m.path / "f").read_bytes() == b"via fusermount3"
        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(15) == 0
        assert not is_mounted(m.path)


def test_sigterm_unmounts_and_drains(base: Path) -> None:
    with mounted(base / "sigterm", "--stop-timeout", "2") as m:
        (m.path / "f").write_bytes(b"x")
        held = os.open(m.path / "f", os.O_RDONLY)  # keeps the lazily unmounted connection alive
        try:
            t0 = time.monotonic()
            m.proc.send_signal(signal.SIGTERM)
            assert _wait_until(lambda: not is_mounted(m.path), 5), "not unmounted after SIGTERM"
            assert m.proc.wait(15) == 0
            assert time.monotonic() - t0 < 10
            with pytest.raises(OSError):
                os.fstat(held)  # the connection was aborted after the stop timeout
        finally:
            with contextlib.suppress(OSError):
                os.close(held)  # ENOTCONN: the FLUSH of this close has nobody to answer it
        text = m.log_text()
        assert "fuse_stop_requested" in text and "fuse_connection_closed" in text


@pytest.mark.parametrize("dispatch", ["task", "inline"])
def test_other_dispatch_modes_serve_the_same(base: Path, dispatch: str) -> None:
    with mounted(base / dispatch, "--dispatch", dispatch) as m:
        data = random.Random(1).randbytes(3 << 20)
        (m.path / "big").write_bytes(data)
        assert (m.path / "big").read_bytes() == data
        os.makedirs(m.path / "a/b/c")
        assert os.listdir(m.path / "a/b") == ["c"]
        slow = m.path / "slow"
        slow.write_bytes(b"s")
        os.setxattr(slow, "user.memfs.read_delay", b"2")
        reader = threading.Thread(target=slow.read_bytes)
        reader.start()
        time.sleep(0.1)
        t1 = time.monotonic()
        assert not (m.path / "nothing").exists()
        assert time.monotonic() - t1 < 1.5
        reader.join(10)
        text = m.log_text()
        assert "[error" not in text and "[warning" not in text, text

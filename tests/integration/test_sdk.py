"""The Python SDK (`jfs.Client`, `jfs.AsyncClient`) on real volumes: the API a Python user expects, the SDK
and a FUSE mount of the same volume at once (each sees the other's changes, locks hold across them, fsck
clean), bad input, a killed SDK process's session cleaned, and a run as an unprivileged user without
/dev/fuse."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import jfs
from jfs.app.volume import VolumeError
from jfs.testing.mounts import format_test_volume, format_volume, mounted, reachable_dir
from jfs.testing.mounts import jfs as jfs_cli
from jfs.testing.object_fixtures import seaweed_s3  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def sqlite_volume(tmp_path_factory: pytest.TempPathFactory) -> str:
    base = tmp_path_factory.mktemp("sdk")
    url = f"sqlite3://{base}/meta.db"
    format_volume(url, str(base / "bucket"))
    return url


@pytest.fixture
def fs(sqlite_volume: str) -> Iterator[jfs.Client]:
    with jfs.Client(sqlite_volume, cache_dir=None) as client:
        yield client


@pytest.fixture
def d(fs: jfs.Client, request: pytest.FixtureRequest) -> str:
    path = f"/{request.node.name.replace('[', '_').replace(']', '_')}"
    fs.mkdir(path)
    return path


def test_files_like_builtin_open(fs: jfs.Client, d: str) -> None:
    with fs.open(f"{d}/t.txt", "w", encoding="utf-8") as f:
        assert isinstance(f, io.TextIOWrapper)
        f.write("héllo\nworld\n")
    assert fs.read_text(f"{d}/t.txt") == "héllo\nworld\n"
    with fs.open(f"{d}/t.txt") as f:
        assert list(f) == ["héllo\n", "world\n"]
    with fs.open(f"{d}/t.txt", "a") as f:
        f.write("more\n")
    assert fs.read_bytes(f"{d}/t.txt").endswith(b"world\nmore\n")
    with pytest.raises(FileExistsError) as e:
        fs.open(f"{d}/t.txt", "x")
    assert e.value.filename == f"{d}/t.txt"
    payload = os.urandom(5 << 20)
    with fs.open(f"{d}/b", "wb") as f:
        assert f.write(payload) == len(payload)
    with fs.open(f"{d}/b", "r+b") as f:
        f.seek(1000)
        f.write(b"XYZ")
        f.seek(-3, os.SEEK_END)
        assert f.read() == payload[-3:]
        f.seek(998)
        assert f.read(7) == payload[998:1000] + b"XYZ" + payload[1003:1005]
        buf = bytearray(10)
        f.seek(0)
        assert f.readinto(buf) == 10 and bytes(buf) == payload[:10]
        assert f.tell() == 10
        f.truncate(4096)
    assert fs.getsize(f"{d}/b") == 4096
    with fs.open(f"{d}/b", "rb", buffering=0) as raw:
        assert isinstance(raw, jfs.RawFile)
        assert raw.read(3) == payload[:3]
        with pytest.raises(io.UnsupportedOperation):
            raw.fileno()
    with pytest.raises(ValueError):
        fs.open(f"{d}/b", "rw")
    with pytest.raises(ValueError):
        fs.open(f"{d}/b", "rb", encoding="utf-8")


def test_names_attributes_and_trees(fs: jfs.Client, d: str) -> None:
    fs.makedirs(f"{d}/a/b/c")
    fs.makedirs(f"{d}/a/b/c", exist_ok=True)
    with pytest.raises(FileExistsError):
        fs.makedirs(f"{d}/a/b/c")
    fs.write_bytes(f"{d}/a/f", b"1234")
    assert sorted(fs.listdir(f"{d}/a")) == ["b", "f"]
    entries = {e.name: e for e in fs.scandir(f"{d}/a")}
    assert entries["b"].is_dir() and entries["f"].is_file() and entries["f"].stat().st_size == 4
    assert list(fs.walk(f"{d}/a")) == [(f"{d}/a", ["b"], ["f"]), (f"{d}/a/b", ["c"], []), (f"{d}/a/b/c", [], [])]
    fs.rename(f"{d}/a/f", f"{d}/a/b/g")
    fs.link(f"{d}/a/b/g", f"{d}/a/h")
    assert fs.stat(f"{d}/a/h").st_nlink == 2
    fs.symlink("b/g", f"{d}/a/ln")
    assert fs.readlink(f"{d}/a/ln") == "b/g" and fs.read_bytes(f"{d}/a/ln") == b"1234"
    assert fs.islink(f"{d}/a/ln") and not fs.islink(f"{d}/a/h")
    fs.chmod(f"{d}/a/h", 0o600)
    fs.chown(f"{d}/a/h", 1000, 1000)
    fs.utime(f"{d}/a/h", ns=(1_000_000_000, 2_000_000_123))
    st = fs.stat(f"{d}/a/b/g")
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid, st.st_mtime_ns) == (0o600, 1000, 1000, 2_000_000_123)
    fs.truncate(f"{d}/a/h", 2)
    assert fs.read_bytes(f"{d}/a/b/g") == b"12"
    fs.setxattr(f"{d}/a/h", "user.k", b"v")
    assert fs.getxattr(f"{d}/a/h", "user.k") == b"v" and fs.listxattr(f"{d}/a/h") == ["user.k"]
    fs.removexattr(f"{d}/a/h", "user.k")
    assert fs.summary(f"{d}/a")["files"] == 3
    fs.write_bytes(f"{d}/big", b"z" * 3_000_000)
    assert fs.copy_file(f"{d}/big", f"{d}/copy") == 3_000_000
    assert fs.read_bytes(f"{d}/copy") == b"z" * 3_000_000
    with pytest.raises(OSError) as e:
        fs.rmdir(f"{d}/a")
    assert e.value.errno == errno.ENOTEMPTY
    assert fs.rmtree(f"{d}/a")["files"] >= 2
    assert not fs.exists(f"{d}/a")
    fs.remove(f"{d}/big")
    with pytest.raises(FileNotFoundError) as e:
        fs.stat(f"{d}/big")
    assert e.value.errno == errno.ENOENT and e.value.filename == f"{d}/big"
    with pytest.raises(NotADirectoryError):
        fs.open(f"{d}/copy/through/a/file", "w")


def test_usable_from_several_threads_at_once(fs: jfs.Client, d: str) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                fs.write_bytes(f"{d}/t{n}-{i}", bytes([n]) * (i + 1) * 1000)
                assert fs.read_bytes(f"{d}/t{n}-{i}") == bytes([n]) * (i + 1) * 1000
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(fs.listdir(d)) == 120


def test_async_client(sqlite_volume: str) -> None:
    async def main() -> None:
        async with jfs.AsyncClient(sqlite_volume, cache_dir=None) as c:
            await c.makedirs("/async/x", exist_ok=True)
            async with await c.open("/async/x/f", "wb") as f:
                await f.write(b"abc" * 1000)
            async with await c.open("/async/x/f", "rb") as f:
                await f.seek(3)
                assert await f.read(3) == b"abc"
            async with await c.open("/async/x/t", "w") as t:
                await t.write("one\ntwo\n")
            async with await c.open("/async/x/t") as t:
                assert [line async for line in t] == ["one\n", "two\n"]
            assert sorted(await c.listdir("/async/x")) == ["f", "t"]
            await c.rmtree("/async")
            assert not await c.exists("/async")

    asyncio.run(main())


def test_open_unlinked_file_stays_writable_with_the_trash_on(tmp_path: Path) -> None:
    """Issue 11.1 through the SDK: open, remove, keep writing, read back; the trash keeps the result."""
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), "test-vol", "--trash-days", "1")
    with jfs.Client(url, cache_dir=None) as fs:
        f = fs.open("/tmp-file", "w+b")
        fs.remove("/tmp-file")
        f.write(b"a" * 10_000)
        f.flush()
        f.seek(0)
        assert f.read() == b"a" * 10_000
        f.truncate(5000)
        f.fsync()
        f.close()
        (hour,) = fs.listdir("/.trash")
        (kept,) = fs.listdir(f"/.trash/{hour}")
        assert fs.read_bytes(f"/.trash/{hour}/{kept}") == b"a" * 5000


def test_bad_input_is_one_clear_exception(tmp_path: Path, sqlite_volume: str) -> None:
    with pytest.raises(VolumeError, match="not formatted|no volume"):
        jfs.Client(f"sqlite3://{tmp_path}/empty.db", cache_dir=None)
    with pytest.raises(Exception) as e:
        jfs.Client("nosuch://host/1")
    assert "nosuch" in str(e.value)
    with pytest.raises(TypeError, match="unknown option"):
        jfs.Client(sqlite_volume, cache_sise="1G")
    with jfs.Client(sqlite_volume, cache_dir=None, read_only=True) as ro:
        with pytest.raises(OSError) as err:
            ro.write_bytes("/nope", b"x")
        assert err.value.errno == errno.EROFS
        with pytest.raises(OSError) as err:
            ro.mkdir("/nope")
        assert err.value.errno == errno.EROFS
        assert not ro.exists("/nope")
    with pytest.raises(VolumeError, match="subdir"):
        jfs.Client(sqlite_volume, cache_dir=None, subdir="/no/such/dir")


def test_subdir_is_the_client_root(sqlite_volume: str) -> None:
    with jfs.Client(sqlite_volume, cache_dir=None) as fs:
        fs.makedirs("/tenant/data", exist_ok=True)
        fs.write_bytes("/tenant/data/x", b"x")
    with jfs.Client(sqlite_volume, cache_dir=None, subdir="/tenant") as sub:
        assert sub.listdir("/") == ["data"]
        assert sub.read_bytes("/data/x") == b"x"
        assert sub.listdir("/..") == ["data"]  # never above the client's root


# ------------------------------------------------------------------------------------- SDK and a mount


def _soon(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    """`check` holds within `timeout` s (the mount's kernel caches entries and attributes for 1 s)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module", params=["sqlite-file", "redis-s3"])
def sdk_and_mount(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    url = format_test_volume(request, tmp_path_factory.mktemp(request.param), redis_db=12, bucket_prefix="sdk")
    with reachable_dir("jfs-sdk-") as outside:
        with mounted(url, outside / "mnt") as mnt:
            yield url, mnt


def test_sdk_and_mount_see_each_other(sdk_and_mount: tuple[str, Path]) -> None:
    url, mnt = sdk_and_mount
    with jfs.Client(url, cache_dir=None) as fs:
        fs.makedirs("/shared/dir", exist_ok=True)
        fs.write_bytes("/shared/dir/from-sdk", b"sdk" * 100_000)
        assert (mnt / "shared/dir/from-sdk").read_bytes() == b"sdk" * 100_000
        (mnt / "shared/dir/from-mount").write_bytes(b"mount" * 50_000)
        assert fs.read_bytes("/shared/dir/from-mount") == b"mount" * 50_000
        fs.rename("/shared/dir/from-sdk", "/shared/renamed")
        assert _soon(lambda: not (mnt / "shared/dir/from-sdk").exists())  # once the kernel's entry expires
        assert (mnt / "shared/renamed").read_bytes() == b"sdk" * 100_000
        os.unlink(mnt / "shared/dir/from-mount")
        assert _soon(lambda: not fs.exists("/shared/dir/from-mount"))  # once the SDK's cached name expires
        # Rewriting a file the other side has read: close-to-open, both ways.
        fs.write_bytes("/shared/renamed", b"v2")
        assert (mnt / "shared/renamed").read_bytes() == b"v2"
        (mnt / "shared/renamed").write_bytes(b"v3 from the mount")
        assert fs.read_bytes("/shared/renamed") == b"v3 from the mount"
    fsck = jfs_cli("fsck", url, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_locks_between_the_sdk_and_a_mount(sdk_and_mount: tuple[str, Path]) -> None:
    url, mnt = sdk_and_mount
    (mnt / "lockfile").write_bytes(b"0")
    with jfs.Client(url, cache_dir=None) as fs:
        with fs.open("/lockfile", "r+b") as f:
            f.flock(fcntl.LOCK_EX)
            with open(mnt / "lockfile", "r+b") as g:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(g, fcntl.LOCK_EX | fcntl.LOCK_NB)
                f.flock(fcntl.LOCK_UN)
                fcntl.flock(g, fcntl.LOCK_EX | fcntl.LOCK_NB)
                with pytest.raises(BlockingIOError):
                    f.flock(fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(g, fcntl.LOCK_UN)
            # POSIX record locks: the mount holds bytes 0-9, the SDK may lock 10+ but not 5.
            with open(mnt / "lockfile", "r+b") as g:
                fcntl.lockf(g, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
                f.lockf(fcntl.LOCK_EX | fcntl.LOCK_NB, 0, 10)
                with pytest.raises(BlockingIOError):
                    f.lockf(fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 5)
            f.lockf(fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 5)  # the mount's close released its locks


# ------------------------------------------------------------------------------------- processes

CHILD = """
import jfs, sys, time
fs = jfs.Client(sys.argv[1], cache_dir=None, heartbeat=1)
fs.write_bytes("/from-child", b"child")
print("ready", flush=True)
time.sleep(600)
"""


def test_killed_sdk_process_session_is_cleaned(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"))
    child = subprocess.Popen([sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        sessions = json.loads(jfs_cli("status", url, "--json").stdout)["Sessions"]
        (victim,) = [s["Sid"] for s in sessions]
        assert sessions[0]["MountPoint"].startswith("sdk:")
    finally:
        child.kill()
        child.wait()
    with jfs.Client(url, cache_dir=None, heartbeat=1) as fs:
        assert fs.read_bytes("/from-child") == b"child"
        deadline = time.monotonic() + 30
        while victim in [s["Sid"] for s in json.loads(jfs_cli("status", url, "--json").stdout)["Sessions"]]:
            assert time.monotonic() < deadline, "the killed SDK session was never cleaned"
            time.sleep(0.5)


def test_clean_exit_commits_and_removes_the_session(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"))
    script = "import jfs, sys\nfs = jfs.Client(sys.argv[1], cache_dir=None)\nf = fs.open('/left-open', 'wb')\nf.write(b'x' * 100000)\n"
    subprocess.run([sys.executable, "-c", script, url], check=True, timeout=60)
    assert json.loads(jfs_cli("status", url, "--json").stdout)["Sessions"] == []
    with jfs.Client(url, cache_dir=None) as fs:
        assert fs.getsize("/left-open") == 100000


def test_unprivileged_user_without_dev_fuse(tmp_path: Path) -> None:
    """The SDK needs neither root nor /dev/fuse: run it as nobody in a mount namespace whose /dev is empty."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.skip("needs root, unshare and setpriv to build the unprivileged environment")
    with reachable_dir("jfs-nobody-") as work:
        work.chmod(0o777)
        url = f"sqlite3://{work}/meta.db"
        format_volume(url, str(work / "bucket"))
        subprocess.run(["chown", "-R", "65534:65534", str(work)], check=True)
        script = textwrap.dedent(f"""
            import os, jfs
            assert os.getuid() == 65534 and not os.path.exists("/dev/fuse")
            with jfs.Client({url!r}, cache_dir=None) as fs:
                fs.write_bytes("/by-nobody", b"hello")
                assert fs.read_bytes("/by-nobody") == b"hello"
                assert fs.stat("/by-nobody").st_uid == 65534
            print("ok")
        """)
        env = {**os.environ, "HOME": str(work)}
        out = subprocess.run(
            ["unshare", "--mount", "sh", "-c",
             'mount -t tmpfs none /dev && exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"', "sh",
             sys.executable, "-c", script],
            capture_output=True, text=True, timeout=120, env=env, cwd=str(work))
        assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr


def test_close_commits_and_releases_posix_locks_and_flocks(sqlite_volume: str, d: str) -> None:
    """A close is one VFS call unless the client holds POSIX locks on the file (ADR 0044): either way the
    data are committed for other clients and the closing client's locks are gone."""
    with jfs.Client(sqlite_volume, cache_dir=None) as a, jfs.Client(sqlite_volume, cache_dir=None) as b:
        with a.open(f"{d}/plain", "wb") as f:
            f.write(b"p" * 4096)
        assert b.read_bytes(f"{d}/plain") == b"p" * 4096
        with a.open(f"{d}/locked", "wb") as f:
            f.lockf(fcntl.LOCK_EX)
            f.flock(fcntl.LOCK_EX)
            f.write(b"l" * 100)
        assert b.read_bytes(f"{d}/locked") == b"l" * 100
        with b.open(f"{d}/locked", "r+b") as g:
            g.lockf(fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by a's close: no BlockingIOError
            g.flock(fcntl.LOCK_EX | fcntl.LOCK_NB)

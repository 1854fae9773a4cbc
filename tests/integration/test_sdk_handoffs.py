"""The sync SDK's hand-offs to its loop thread: how many each common call costs (counted by wrapping the
client's `_LoopThread.run`), and that the shortcuts keep the semantics — a name-cache `stat` sees every
change the client made, buffered bytes sent with the close still reach the file (and the position), a big
`bytes` write passed through uncopied keeps `tell`, errors still carry errno and path."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator

import pytest

import jfs
from jfs.app.virtual_files import CONTROL_INODE, STATS_INODE
from jfs.testing.mounts import format_volume


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> str:
    base = tmp_path_factory.mktemp("sdk-hops")
    url = f"sqlite3://{base}/meta.db"
    format_volume(url, str(base / "bucket"))
    return url


class Counted:
    def __init__(self, client: jfs.Client) -> None:
        self.n = 0
        loop = client._loop
        inner = loop.run

        def run(coro):  # type: ignore[no-untyped-def]
            self.n += 1
            return inner(coro)

        loop.run = run  # type: ignore[method-assign]

    def take(self) -> int:
        n, self.n = self.n, 0
        return n


@pytest.fixture
def fs(volume: str) -> Iterator[jfs.Client]:
    with jfs.Client(volume, cache_dir=None) as client:
        yield client


@pytest.fixture
def d(fs: jfs.Client, request: pytest.FixtureRequest) -> str:
    path = f"/{request.node.name}"
    fs.mkdir(path)
    return path


def test_small_buffered_file_is_two_handoffs(fs: jfs.Client, d: str) -> None:
    hops = Counted(fs)
    with fs.open(f"{d}/a", "wb") as f:
        f.write(b"x" * 4096)
        f.write(b"y")
        assert f.tell() == 4097
    assert hops.take() == 2  # open (creates the file at once), then write + commit + close together
    assert fs.read_bytes(f"{d}/a") == b"x" * 4096 + b"y"
    assert hops.take() == 1
    with fs.open(f"{d}/t", "w") as t:
        t.write("héllo\n")
    assert hops.take() == 2
    assert fs.read_text(f"{d}/t") == "héllo\n"


def test_unbuffered_writes_are_not_held_back(fs: jfs.Client, d: str) -> None:
    with fs.open(f"{d}/u", "wb", buffering=0) as w:
        w.write(b"abc")
        with fs.open(f"{d}/u", "rb", buffering=0) as r:
            assert r.read() == b"abc"  # same client: visible before the writer closes


def test_cached_stat_without_handoff_sees_own_changes(fs: jfs.Client, d: str) -> None:
    fs.write_bytes(f"{d}/f", b"12345")
    assert fs.stat(f"{d}/f").st_size == 5
    hops = Counted(fs)
    st = fs.stat(f"{d}/f")
    assert st.st_size == 5 and fs.exists(f"{d}/f") and fs.isfile(f"{d}/f") and fs.getsize(f"{d}/f") == 5
    assert hops.take() == 0
    fs.write_bytes(f"{d}/f", b"1234567")
    assert fs.stat(f"{d}/f").st_size == 7
    fs.rename(f"{d}/f", f"{d}/g")
    assert not fs.exists(f"{d}/f") and fs.stat(f"{d}/g").st_size == 7
    fs.remove(f"{d}/g")
    with pytest.raises(FileNotFoundError) as exc:
        fs.stat(f"{d}/g")
    assert exc.value.errno == errno.ENOENT and exc.value.filename == f"{d}/g"


def test_cached_stat_leaves_symlinks_and_dotdot_to_the_loop(fs: jfs.Client, d: str) -> None:
    fs.write_bytes(f"{d}/target", b"abc")
    fs.symlink("target", f"{d}/link")
    fs.stat(f"{d}/link")
    assert fs.stat(f"{d}/link").st_size == 3
    assert fs.islink(f"{d}/link") and not fs.islink(f"{d}/target")
    assert fs.lstat(f"{d}/link").st_size == len("target")
    assert fs.stat(f"{d}/../{d.strip('/')}/target").st_size == 3
    with pytest.raises(NotADirectoryError):
        fs.stat(f"{d}/target/x")


def test_big_bytes_writes_keep_position_and_content(fs: jfs.Client, d: str) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB
    with fs.open(f"{d}/big", "wb") as f:
        f.write(b"ab")
        f.write(block)
        assert f.tell() == 2 + len(block)
        f.write(block)
        f.write(b"cd")
    assert fs.read_bytes(f"{d}/big") == b"ab" + block + block + b"cd"
    with fs.open(f"{d}/big", "ab") as f:
        f.write(block)
    assert fs.getsize(f"{d}/big") == 3 * len(block) + 4


def test_big_reads_keep_position_and_content(fs: jfs.Client, d: str) -> None:
    data = bytes(range(256)) * (4096 * 3) + b"tail"  # 3 MiB + 4
    fs.write_bytes(f"{d}/big", data)
    mib = 1 << 20
    with fs.open(f"{d}/big", "rb") as f:
        hops = Counted(fs)
        assert f.read(mib) == data[:mib] and f.tell() == mib  # nothing buffered: straight from the file
        assert hops.take() == 1
        assert f.read(10) == data[mib:mib + 10]  # buffered
        assert f.read(mib) == data[mib + 10:2 * mib + 10] and f.tell() == 2 * mib + 10
        assert f.seek(5) == 5
        assert f.read(2 * mib) == data[5:2 * mib + 5] and f.tell() == 2 * mib + 5
        assert f.read(7) == data[2 * mib + 5:2 * mib + 12]
        assert f.read() == data[2 * mib + 12:]
        assert f.read(mib) == b"" and f.tell() == len(data)
    with fs.open(f"{d}/big", "r+b") as f:
        assert f.read(mib) == data[:mib]


def test_create_first_keeps_open_semantics(fs: jfs.Client, d: str) -> None:
    hops = Counted(fs)
    with fs.open(f"{d}/new", "wb") as f:
        f.write(b"1")
    assert hops.take() == 2
    with fs.open(f"{d}/new", "ab") as f:  # exists (and known): opened, not recreated
        f.write(b"2")
    assert fs.read_bytes(f"{d}/new") == b"12"
    fs.aio.client.vfs.names.clear()  # unknown to the cache: the create is tried first and refused
    with fs.open(f"{d}/new", "ab") as f:
        f.write(b"3")
    assert fs.read_bytes(f"{d}/new") == b"123"
    fs.aio.client.vfs.names.clear()
    with pytest.raises(FileExistsError) as exc:
        fs.open(f"{d}/new", "xb")
    assert exc.value.errno == errno.EEXIST and exc.value.filename == f"{d}/new"
    fs.makedirs(f"{d}/sub")
    fs.aio.client.vfs.names.clear()
    with pytest.raises(IsADirectoryError):
        fs.open(f"{d}/sub", "wb")
    with pytest.raises(FileNotFoundError):
        fs.open(f"{d}/missing/x", "wb")
    fs.mkdir(f"{d}/ro")
    fs.write_bytes(f"{d}/ro/f", b"old")
    fs.chmod(f"{d}/ro", 0o555)
    fs.aio.client.vfs.names.clear()
    with fs.open(f"{d}/ro/f", "wb") as f:  # an existing file opens where a create may be refused
        f.write(b"new")
    assert fs.read_bytes(f"{d}/ro/f") == b"new"
    for name, ino in ((".control", CONTROL_INODE), (".stats", STATS_INODE)):  # virtual: never created
        with contextlib.suppress(OSError), fs.open(f"/{name}", "wb"):
            pass
        assert fs.stat(f"/{name}").st_ino == ino


def test_creating_files_reads_no_metadata(fs: jfs.Client, d: str) -> None:
    fs.makedirs(f"{d}/many")
    fs.write_bytes(f"{d}/many/first", b"x")
    kv = fs.aio.client.meta.kv
    reads, txns = kv.reads.count, kv.txns.count
    for i in range(10):  # the directory's attributes are dropped by every create: walked on its type
        with fs.open(f"{d}/many/f{i}", "wb") as f:
            f.write(b"s" * 4096)
    assert kv.reads.count == reads and kv.txns.count - txns == 20  # a create and a slice commit each
    assert sorted(fs.listdir(f"{d}/many")) == sorted(["first"] + [f"f{i}" for i in range(10)])


def test_seek_without_handoff(fs: jfs.Client, d: str) -> None:
    fs.write_bytes(f"{d}/s", b"0123456789")
    with fs.open(f"{d}/s", "rb", buffering=0) as f:
        hops = Counted(fs)
        assert f.seek(4) == 4 and f.seek(2, os.SEEK_CUR) == 6 and f.tell() == 6
        assert hops.take() == 0
        with pytest.raises(OSError) as exc:
            f.seek(-1)
        assert exc.value.errno == errno.EINVAL
        assert f.read(2) == b"67"
        assert f.seek(-3, os.SEEK_END) == 7


def test_errors_and_threads(fs: jfs.Client, d: str) -> None:
    with pytest.raises(FileNotFoundError) as exc:
        fs.open(f"{d}/missing/x", "wb")
    assert exc.value.errno == errno.ENOENT and exc.value.filename == f"{d}/missing/x"
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(40):
                p = f"{d}/p{k}-{i}"
                with fs.open(p, "wb") as f:
                    f.write(b"x" * (i + 1))
                assert fs.stat(p).st_size == i + 1
                assert fs.read_bytes(p) == b"x" * (i + 1)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(fs.listdir(d)) == 160

"""A read-only open that follows its own path walk reuses the walk's engine read (`VFS.open(fresh=...)`):
a small `read_bytes` or `stat_and_read` is two metadata reads, not three — with the same access checks and
the same view of other clients' changes."""

from __future__ import annotations

import dataclasses
import errno
import stat
import time
from collections.abc import Iterator

import pytest

import jfs
from jfs.testing.mounts import format_volume


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> str:
    base = tmp_path_factory.mktemp("sdk-fresh")
    url = f"sqlite3://{base}/meta.db"
    format_volume(url, str(base / "bucket"))
    return url


@pytest.fixture
def fs(volume: str) -> Iterator[jfs.Client]:
    with jfs.Client(volume, cache_dir=None) as client:
        yield client


@pytest.fixture
def d(fs: jfs.Client, request: pytest.FixtureRequest) -> str:
    path = f"/{request.node.name}"
    fs.mkdir(path)
    return path


def _expire(fs: jfs.Client, d: str, name: str) -> None:
    """Drop the name cache's entry and attributes of `d/name`, as its TTL would."""
    names = fs.aio.client.vfs.names
    ino = fs.stat(f"{d}/{name}").st_ino
    names.forget_entry(fs.stat(d).st_ino, name.encode())
    names.forget_attr(ino)


def _reads(fs: jfs.Client) -> list[int]:
    """Counts the client's engine read transactions (wraps `kv.read`)."""
    kv = fs.aio.client.meta.kv
    inner = kv.read
    n = [0]

    async def read(*a, **k):  # type: ignore[no-untyped-def]
        n[0] += 1
        return await inner(*a, **k)

    kv.read = read  # type: ignore[method-assign]
    return n


def test_stat_and_read_of_a_small_file_is_two_engine_reads(fs: jfs.Client, d: str) -> None:
    fs.write_bytes(f"{d}/f", b"hello")
    _expire(fs, d, "f")  # as after the TTL: the walk reads from the engine
    n = _reads(fs)
    st, data = fs.run(fs.aio.stat_and_read(f"{d}/f", 1 << 20))
    assert data == b"hello" and st.st_size == 5
    assert n[0] == 2  # the lookup and the slices; the open checked the lookup's attributes
    _expire(fs, d, "f")
    n[0] = 0
    assert fs.read_bytes(f"{d}/f") == b"hello"
    assert n[0] == 2


def test_stat_and_read_of_other_things(fs: jfs.Client, d: str) -> None:
    fs.write_bytes(f"{d}/big", b"b" * 100)
    st, data = fs.run(fs.aio.stat_and_read(f"{d}/big", 10))
    assert st.st_size == 100 and data is None
    st, data = fs.run(fs.aio.stat_and_read(d, 10))
    assert stat.S_ISDIR(st.st_mode) and data is None
    with pytest.raises(FileNotFoundError) as info:
        fs.run(fs.aio.stat_and_read(f"{d}/missing", 10))
    assert info.value.filename == f"{d}/missing"


def test_a_fresh_open_still_checks_access(fs: jfs.Client, d: str) -> None:
    fs.write_bytes(f"{d}/secret", b"s")
    fs.chmod(f"{d}/secret", 0o600)
    fs.chown(f"{d}/secret", 1234, 1234)
    root_ctx = fs.aio.ctx
    fs.aio.ctx = dataclasses.replace(root_ctx, uid=4321, gid=4321, groups=frozenset(), check=True)
    try:
        fs.aio.client.vfs.names.clear()  # every component read by the new user
        with pytest.raises(PermissionError) as info:
            fs.read_bytes(f"{d}/secret")
        assert info.value.errno == errno.EACCES
        fs.aio.client.vfs.names.clear()
        st, data = fs.run(fs.aio.stat_and_read(f"{d}/secret", 10))
        assert st.st_uid == 1234 and data is None
    finally:
        fs.aio.ctx = root_ctx


def test_a_fresh_open_sees_another_clients_change(volume: str, fs: jfs.Client, d: str) -> None:
    fs.write_bytes(f"{d}/shared", b"one")
    assert fs.read_bytes(f"{d}/shared") == b"one"
    with jfs.Client(volume, cache_dir=None) as other:
        time.sleep(0.01)
        other.write_bytes(f"{d}/shared", b"second")
    fs.aio.client.vfs.names.clear()  # the entry expired: the walk reads the new attributes
    assert fs.read_bytes(f"{d}/shared") == b"second"
    fs.aio.client.vfs.names.clear()
    assert fs.run(fs.aio.stat_and_read(f"{d}/shared", 100))[1] == b"second"


def test_a_cached_walk_does_not_stand_for_a_fresh_read(fs: jfs.Client, d: str) -> None:
    """Attributes from the name cache are up to a TTL old: the open reads the engine itself."""
    fs.write_bytes(f"{d}/c", b"c")
    fs.stat(f"{d}/c")  # cached now
    n = _reads(fs)
    assert fs.read_bytes(f"{d}/c") == b"c"
    assert n[0] == 2  # the open's own read and the slices

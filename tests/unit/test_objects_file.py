"""The ``file`` object store beyond the shared contract: atomic puts, temp files, layout, laziness."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import jfs.adapters.objects.file as file_mod
from jfs.adapters.objects.file import TMP_PREFIX, FileStore
from jfs.ports.objects import ObjectNotFound, ObjectStoreError, ObjectStoreUnavailable


@pytest.fixture(params=["unnamed", "named"])
def temps(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Puts through unnamed temp files (``O_TMPFILE`` + ``linkat``) and through named ones (the fallback)."""
    if request.param == "unnamed" and not file_mod._unnamed_temps.usable:
        pytest.skip("no O_TMPFILE here")
    monkeypatch.setattr(file_mod._unnamed_temps, "usable", request.param == "unnamed")
    return str(request.param)


@pytest.fixture
async def store(tmp_path: Path, temps: str) -> Any:
    s = FileStore(f"{tmp_path}/bucket/")
    await s.create_bucket()
    yield s
    await s.close()


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


class _BreaksMidway:
    """A file object that writes half of what it is given, then fails like a full disk."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.real.write(view[: len(view) // 2])
        self.real.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self) -> _BreaksMidway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.real.close()


def _break_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = open

    def breaking_open(file: Any, mode: str = "r", *a: Any, **k: Any) -> Any:
        f = real_open(file, mode, *a, **k)
        return _BreaksMidway(f) if "w" in mode else f

    monkeypatch.setattr(file_mod, "open", breaking_open, raising=False)  # put_file's copy

    def breaking_write_all(fd: int, data: Any) -> None:  # put's write(2)s
        view = memoryview(data)
        os.write(fd, view[: len(view) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_mod, "_write_all", breaking_write_all)


@pytest.fixture
def failing_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    _break_writes(monkeypatch)


async def test_layout_is_one_file_per_key(store: FileStore, tmp_path: Path) -> None:
    await store.put("vol/chunks/0/4/4105_0_8000", b"block")
    assert (tmp_path / "bucket/vol/chunks/0/4/4105_0_8000").read_bytes() == b"block"
    assert store.url == f"{tmp_path}/bucket/"
    assert FileStore(f"file://{tmp_path}/bucket").url == store.url


async def test_failed_write_leaves_no_object_and_no_temp_file(
    store: FileStore, tmp_path: Path, failing_writes: None
) -> None:
    with pytest.raises(ObjectStoreError, match="No space left"):
        await store.put("vol/chunks/0/0/1_0_100", b"x" * 100)
    with pytest.raises(ObjectNotFound):
        await store.get("vol/chunks/0/0/1_0_100")
    assert _all_files(tmp_path / "bucket") == []
    assert [i async for i in store.list()] == []


async def test_failed_overwrite_keeps_the_old_object(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.put("k/obj", b"old" * 10)
    _break_writes(monkeypatch)
    with pytest.raises(ObjectStoreError):
        await store.put("k/obj", b"new" * 1000)
    assert await store.get("k/obj") == b"old" * 10
    assert _all_files(tmp_path / "bucket") == ["k/obj"]


async def test_temp_file_is_never_visible_under_the_real_name(
    store: FileStore, monkeypatch: pytest.MonkeyPatch, temps: str
) -> None:
    if temps == "unnamed":
        return await _unnamed_temp_is_named_once_complete(store, monkeypatch)
    seen: list[tuple[str, bool]] = []
    real_replace = os.replace

    def spying_replace(src: str, dst: str) -> None:
        # At rename time the data are complete in the temp file and the real name does not exist yet.
        seen.append((os.path.basename(src), os.path.exists(dst)))
        assert Path(src).read_bytes() == b"payload"
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spying_replace)
    await store.put("a/b", b"payload")
    assert len(seen) == 1 and seen[0][0].startswith(TMP_PREFIX + "b.") and seen[0][1] is False


async def _unnamed_temp_is_named_once_complete(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, bool]] = []
    real_link = os.link

    def spying_link(src: str, dst: str, **kw: Any) -> None:
        # At link time the data are complete in the unnamed file and the real name does not exist yet.
        seen.append((src, os.path.exists(dst)))
        assert Path(f"/proc/{src}").read_bytes() == b"payload"
        real_link(src, dst, **kw)

    def no_replace(src: str, dst: str) -> None:
        raise AssertionError("a new object is linked, not renamed")

    monkeypatch.setattr(os, "link", spying_link)
    monkeypatch.setattr(os, "replace", no_replace)
    await store.put("a/b", b"payload")
    assert len(seen) == 1 and seen[0][0].startswith("self/fd/") and seen[0][1] is False
    assert await store.get("a/b") == b"payload"


async def test_overwrite_replaces_the_object_and_leaves_no_temp_file(store: FileStore, tmp_path: Path) -> None:
    await store.put("k/obj", b"old")
    await store.put("k/obj", b"newer")
    assert await store.get("k/obj") == b"newer"
    assert _all_files(tmp_path / "bucket") == ["k/obj"]
    await store.put("k/dir/x", b"1")
    with pytest.raises(ObjectStoreError, match="other keys live under it"):
        await store.put("k/dir", b"2")
    assert _all_files(tmp_path / "bucket") == ["k/dir/x", "k/obj"]


async def test_a_file_system_without_o_tmpfile_falls_back_to_named_temps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not file_mod._unnamed_temps.usable:
        pytest.skip("no O_TMPFILE here")
    monkeypatch.setattr(file_mod._unnamed_temps, "usable", True)
    real_open = os.open

    def no_tmpfile(path: Any, flags: int, *a: Any, **k: Any) -> int:
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", no_tmpfile)
    s = FileStore(str(tmp_path / "bucket"))
    await s.create_bucket()
    await s.put("a/b", b"1")
    assert await s.get("a/b") == b"1"
    assert file_mod._unnamed_temps.usable is False
    assert _all_files(tmp_path / "bucket") == ["a/b"]
    await s.close()


async def test_leftover_temp_files_are_ignored(store: FileStore, tmp_path: Path) -> None:
    await store.put("vol/chunks/0/0/7_0_3", b"abc")
    (tmp_path / f"bucket/vol/chunks/0/0/{TMP_PREFIX}8_0_3.deadbeef").write_bytes(b"ab")  # a crash mid-put
    (tmp_path / f"bucket/{TMP_PREFIX}top.cafebabe").write_bytes(b"")
    assert [i.key async for i in store.list()] == ["vol/chunks/0/0/7_0_3"]
    with pytest.raises(ObjectNotFound):
        await store.get("vol/chunks/0/0/8_0_3")
    with pytest.raises(ObjectStoreError, match="reserved"):
        await store.put(f"vol/{TMP_PREFIX}x", b"")


async def test_no_fsync_by_default_fsync_before_rename_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, temps: str
) -> None:
    events: list[str] = []
    real_fsync, real_replace, real_link = os.fsync, os.replace, os.link

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append("rename")  # the name appears: by rename (named temp) or link (unnamed)
        real_replace(src, dst)

    def link(src: str, dst: str, **kw: Any) -> None:
        events.append("rename")
        real_link(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "link", link)
    default = FileStore(str(tmp_path / "b1"))  # JuiceFS's file storage does not fsync either (ADR 0023)
    await default.create_bucket()
    await default.put("k", b"1")
    assert events == ["rename"]
    events.clear()
    synced = FileStore(str(tmp_path / "b2"), fsync=True)
    await synced.create_bucket()
    await synced.put("k", b"1")
    assert events == ["fsync-file", "rename"]
    events.clear()
    durable = FileStore(str(tmp_path / "b3"), fsync=True, fsync_dir=True)
    await durable.create_bucket()
    await durable.put("d/k", b"1")  # creates d/: its entry in the bucket directory is synced too
    assert events == ["fsync-file", "rename", "fsync-dir", "fsync-dir"]
    events.clear()
    await durable.put("d/k2", b"1")
    assert events == ["fsync-file", "rename", "fsync-dir"]
    for s in (default, synced, durable):
        await s.close()


async def test_open_file_syncs_only_when_the_environment_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(file_mod.FSYNC_ENV, raising=False)
    plain = await file_mod.open_file(str(tmp_path / "a"))
    assert (plain.fsync, plain.fsync_dir) == (False, False)
    monkeypatch.setenv(file_mod.FSYNC_ENV, "1")
    durable = await file_mod.open_file(str(tmp_path / "b"))
    assert (durable.fsync, durable.fsync_dir) == (True, True)
    for s in (plain, durable):
        await s.close()


async def test_missing_bucket_directory_is_unavailable(tmp_path: Path) -> None:
    s = FileStore(str(tmp_path / "nope"))
    calls = [s.put("a/b", b"1"), s.get("a/b"), s.head("a/b"), s.delete("a/b")]
    for call in calls:
        with pytest.raises(ObjectStoreUnavailable, match=f"bucket directory {tmp_path}/nope/ does not exist"):
            await call
    with pytest.raises(ObjectStoreUnavailable):
        _ = [i async for i in s.list()]
    assert not (tmp_path / "nope").exists()  # put did not create it behind format's back
    await s.create_bucket()
    await s.put("a/b", b"1")
    assert await s.get("a/b") == b"1"
    await s.close()


@pytest.mark.parametrize(
    "key", ["", "/abs", "a//b", "a/./b", "../escape", "a/../../b", "trailing/", "nul\x00"]
)
async def test_invalid_keys_are_refused(store: FileStore, key: str) -> None:
    with pytest.raises(ObjectStoreError, match="invalid object key"):
        await store.put(key, b"x")


async def test_a_key_cannot_be_both_object_and_prefix(store: FileStore) -> None:
    await store.put("a", b"1")
    with pytest.raises(ObjectStoreError, match="a prefix of it is an object"):
        await store.put("a/b", b"2")
    await store.put("x/y", b"3")
    with pytest.raises(ObjectStoreError, match="other keys live under it"):
        await store.put("x", b"4")
    with pytest.raises(ObjectNotFound):
        await store.get("x")
    with pytest.raises(ObjectNotFound):
        await store.head("x")
    await store.delete("x")  # not an object: nothing to delete
    assert [i.key async for i in store.list()] == ["a", "x/y"]


async def test_range_get_reads_only_the_range(store: FileStore, tmp_path: Path) -> None:
    fd = os.open(tmp_path / "bucket/huge", os.O_WRONLY | os.O_CREAT, 0o644)
    os.ftruncate(fd, 8 << 30)  # sparse: reading it all would take long and need 8 GiB
    os.pwrite(fd, b"tail", (8 << 30) - 4)
    os.close(fd)
    assert await store.get("huge", (8 << 30) - 6, 100) == b"\0\0tail"
    assert (await store.head("huge")).size == 8 << 30


async def test_list_descends_only_where_keys_can_match(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for d in range(10):
        for i in range(3):
            await store.put(f"vol/chunks/{d}/{i}", b"x")
    await store.put("other/k", b"x")
    scanned: list[str] = []
    real_scandir = os.scandir

    def scandir(path: str) -> Any:
        scanned.append(os.path.relpath(path, store.root))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert [i.key async for i in store.list("vol/chunks/3/")] == [f"vol/chunks/3/{i}" for i in range(3)]
    assert scanned == ["vol/chunks/3"]
    scanned.clear()
    assert [i.key async for i in store.list("vol/", "vol/chunks/7/0")] == [
        "vol/chunks/7/1",
        "vol/chunks/7/2",
        "vol/chunks/8/0",
        "vol/chunks/8/1",
        "vol/chunks/8/2",
        "vol/chunks/9/0",
        "vol/chunks/9/1",
        "vol/chunks/9/2",
    ]
    assert scanned == ["vol", "vol/chunks", "vol/chunks/7", "vol/chunks/8", "vol/chunks/9"]
    scanned.clear()
    assert len([i async for i in store.list("vol/", limit=4)]) == 4
    assert scanned == ["vol", "vol/chunks", "vol/chunks/0", "vol/chunks/1"]


async def test_blocking_io_runs_in_the_store_threads(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: set[str] = set()
    real_open = open

    def spying_open(*a: Any, **k: Any) -> Any:
        threads.add(threading.current_thread().name)
        return real_open(*a, **k)

    monkeypatch.setattr(file_mod, "open", spying_open, raising=False)
    await store.put("t/k", b"1" * (file_mod.INLINE_PUT_MAX + 1))
    await store.get("t/k")
    assert threads and all(name.startswith("jfs-file") for name in threads)


def _spy_put_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    threads: list[str] = []
    real_put = FileStore._put

    def spying_put(self: FileStore, *a: Any) -> None:
        threads.append(threading.current_thread().name)
        real_put(self, *a)

    monkeypatch.setattr(FileStore, "_put", spying_put)
    return threads


async def test_a_small_put_is_written_without_a_thread_hop(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    threads = _spy_put_threads(monkeypatch)
    await store.put("t/small", b"s" * 4096)
    assert threads == [threading.current_thread().name]
    assert await store.get("t/small") == b"s" * 4096


async def test_up_to_128_kib_is_put_inline_and_a_bigger_block_in_the_pool(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inline bound is 128 KiB (ADR 0101): a small file of `juicefs bench` (128 KiB, one block) is stored
    on the caller's thread, a bigger block by the store's threads; all are stored whole."""
    threads = _spy_put_threads(monkeypatch)
    edge, bigger = os.urandom(file_mod.INLINE_PUT_MAX), os.urandom(file_mod.INLINE_PUT_MAX + 1)
    assert len(edge) == 128 << 10
    n = file_mod.TEMP_POOL_START + 2  # also once the pool of unnamed temp files is in use
    for i in range(n):
        await store.put(f"t/edge{i}", edge)
    await store.put("t/bigger", bigger)
    here = threading.current_thread().name
    assert threads[:-1] == [here] * n and threads[-1].startswith("jfs-file")
    assert [await store.get(f"t/edge{i}") for i in range(n)] == [edge] * n
    assert await store.get("t/bigger") == bigger


async def test_slow_inline_puts_go_back_to_the_threads(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    threads = _spy_put_threads(monkeypatch)
    clock = [100.0]
    monkeypatch.setattr(file_mod, "_now", lambda: clock[0])
    monkeypatch.setattr(file_mod, "_preemptions", lambda: 0)  # never preempted: slow is the storage's
    real_put = FileStore._put

    def slow_put(self: FileStore, *a: Any) -> None:
        real_put(self, *a)
        clock[0] += 1.0  # every put takes a second

    monkeypatch.setattr(FileStore, "_put", slow_put)
    majority = file_mod.INLINE_PUT_WINDOW // 2 + 1
    for i in range(majority):  # inline until most of the window is slow
        await store.put(f"t/a{i}", b"a")
    await store.put("t/b", b"b")  # paused: through the pool
    here = threading.current_thread().name
    assert threads[:majority] == [here] * majority and threads[majority].startswith("jfs-file")
    clock[0] += file_mod.INLINE_PUT_PAUSE + 1
    await store.put("t/c", b"c")  # inline again, and still slow: paused again at once
    await store.put("t/d", b"d")
    assert threads[majority + 1] == here and threads[majority + 2].startswith("jfs-file")
    assert [await store.get(k) for k in ("t/a0", "t/b", "t/c", "t/d")] == [b"a", b"b", b"c", b"d"]


async def test_an_occasional_slow_inline_put_keeps_the_fast_path(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put held up now and then (the scheduler, the GIL on a loaded machine) is noise, not a slow disk."""
    threads = _spy_put_threads(monkeypatch)
    clock = [100.0]
    monkeypatch.setattr(file_mod, "_now", lambda: clock[0])
    real_put = FileStore._put
    n = [0]

    def sometimes_slow_put(self: FileStore, *a: Any) -> None:
        real_put(self, *a)
        n[0] += 1
        clock[0] += 0.05 if n[0] % 3 == 0 else 0.00001  # one put in three waits 50 ms

    monkeypatch.setattr(FileStore, "_put", sometimes_slow_put)
    for i in range(30):
        await store.put(f"t/{i}", b"x")
    assert threads == [threading.current_thread().name] * 30


async def test_slow_puts_of_a_preempted_thread_keep_the_fast_path(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put that waited for a CPU (an involuntary context switch of its thread) says nothing about the disk."""
    threads = _spy_put_threads(monkeypatch)
    clock = [100.0]
    switches = [0]
    monkeypatch.setattr(file_mod, "_now", lambda: clock[0])
    monkeypatch.setattr(file_mod, "_preemptions", lambda: switches[0])
    real_put = FileStore._put

    def preempted_put(self: FileStore, *a: Any) -> None:
        real_put(self, *a)
        clock[0] += 1.0  # every put takes a second...
        switches[0] += 1  # ...because the thread was preempted during it

    monkeypatch.setattr(FileStore, "_put", preempted_put)
    for i in range(3 * file_mod.INLINE_PUT_WINDOW):
        await store.put(f"t/{i}", b"x")
    assert threads == [threading.current_thread().name] * (3 * file_mod.INLINE_PUT_WINDOW)


def test_preemptions_count_this_threads_involuntary_switches() -> None:
    before = file_mod._preemptions()
    assert before >= 0 and file_mod._preemptions() >= before


def test_temp_names_differ_in_a_forked_child() -> None:
    parent = file_mod._temp_names.next()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(w, file_mod._temp_names.next().encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 200).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert child.rsplit("-", 1)[0] != parent.rsplit("-", 1)[0]


async def test_an_fsynced_store_never_puts_inline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore(str(tmp_path / "bucket"), fsync=True)
    await store.create_bucket()
    threads = _spy_put_threads(monkeypatch)
    await store.put("t/k", b"k")
    assert threads and threads[0].startswith("jfs-file")
    await store.close()


async def test_a_small_range_in_the_page_cache_is_read_without_a_thread_hop(tmp_path: Path) -> None:
    if not file_mod._RWF_NOWAIT:
        pytest.skip("RWF_NOWAIT not available")
    store = FileStore(str(tmp_path / "b"))
    await store.create_bucket()
    small, big = b"s" * 4096, b"b" * (file_mod.NOWAIT_MAX + 1)
    await store.put("v/small", small)
    await store.put("v/big", big)
    pooled: list[str] = []
    real_get = store._get

    def counting_get(key: str, off: int, limit: int) -> bytes:
        pooled.append(key)
        return real_get(key, off, limit)

    store._get = counting_get  # type: ignore[method-assign]
    try:
        assert await store.get("v/small", 0, len(small)) == small  # just written: in the page cache
        assert await store.get("v/small", 100, 50) == small[100:150]
        assert pooled == []
        assert await store.get("v/small") == small  # whole-object gets always go to the pool
        assert await store.get("v/big", 0, len(big)) == big  # too big for the caller's thread
        assert pooled == ["v/small", "v/big"]
        with pytest.raises(ObjectNotFound):
            await store.get("v/missing", 0, 10)
    finally:
        await store.close()


async def _pool_filled(store: FileStore) -> None:
    """Wait until the store's pool of unnamed temp files has been topped up (ADR 0051)."""
    import asyncio

    for _ in range(file_mod.TEMP_POOL_START):
        fd = store._temps.take()  # the first refill starts at the TEMP_POOL_START-th take
        if fd is not None:
            os.close(fd)
    for _ in range(3000):  # 30 s: a refill thread can wait long on a loaded machine
        # Above the low mark, not "full": the takes above may pop files the refill already added, and a
        # pool above the low mark is (rightly) not refilled again.
        if len(store._temps._fds) > file_mod.TEMP_POOL_LOW and not store._temps._filling:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the temp-file pool was not filled")


@pytest.mark.parametrize("temps", ["unnamed"], indirect=True)  # the pool holds unnamed files only
async def test_small_puts_take_unnamed_files_opened_ahead(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, temps: str
) -> None:
    await _pool_filled(store)
    opened: list[str] = []
    real_open = os.open

    def spying_open(path: Any, flags: int, *a: Any, **k: Any) -> int:
        opened.append(threading.current_thread().name)
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", spying_open)
    left = len(store._temps._fds)
    await store.put("vol/chunks/0/0/1_0_4096", b"s" * 4096)
    await store.put("vol/chunks/0/0/1_0_4096", b"t" * 4096)  # an overwrite through a pooled file too
    assert threading.current_thread().name not in opened  # no file made on the caller's thread
    assert len(store._temps._fds) == left - 2
    assert await store.get("vol/chunks/0/0/1_0_4096") == b"t" * 4096
    assert _all_files(tmp_path / "bucket") == ["vol/chunks/0/0/1_0_4096"]
    await store.close()
    assert not store._temps._fds  # closed: the kernel frees the unnamed files


@pytest.mark.parametrize("temps", ["unnamed"], indirect=True)  # the pool holds unnamed files only
async def test_a_failed_put_through_a_pooled_file_leaves_nothing(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, temps: str
) -> None:
    await store.put("k/obj", b"old")
    await _pool_filled(store)
    _break_writes(monkeypatch)
    with pytest.raises(ObjectStoreError, match="No space left"):
        await store.put("k/obj", b"new" * 100)
    with pytest.raises(ObjectStoreError, match="No space left"):
        await store.put("k/other", b"new" * 100)
    assert await store.get("k/obj") == b"old"
    assert _all_files(tmp_path / "bucket") == ["k/obj"]


@pytest.mark.parametrize("temps", ["unnamed"], indirect=True)  # the pool holds unnamed files only
async def test_a_link_to_another_file_system_turns_the_pool_off(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, temps: str
) -> None:
    await _pool_filled(store)
    real_link = os.link
    calls = [0]

    def cross_device_once(src: Any, dst: Any, **kw: Any) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_link(src, dst, **kw)

    monkeypatch.setattr(os, "link", cross_device_once)
    await store.put("a/b", b"payload")
    assert store._temps.usable is False
    assert await store.get("a/b") == b"payload"
    assert _all_files(tmp_path / "bucket") == ["a/b"]


async def test_missing_directories_are_made_for_a_pooled_put(store: FileStore, tmp_path: Path, temps: str) -> None:
    if temps == "unnamed":
        await _pool_filled(store)
    await store.put("new/deep/dir/key", b"v")
    assert (tmp_path / "bucket/new/deep/dir/key").read_bytes() == b"v"
    with pytest.raises(ObjectStoreError, match="a prefix of it is an object"):
        await store.put("new/deep/dir/key/below", b"w")


@pytest.mark.parametrize("temps", ["unnamed"], indirect=True)  # the pool holds unnamed files only
async def test_a_forked_child_never_uses_its_parents_pooled_files(store: FileStore, temps: str) -> None:
    await _pool_filled(store)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        fd = store._temps.take()
        os.write(w, b"none" if fd is None else b"fd")
        os._exit(0)
    os.close(w)
    child = os.read(r, 10)
    os.close(r)
    os.waitpid(pid, 0)  # noqa: ASYNC222 - the child has exited (it wrote and left)
    assert child == b"none"
    assert store._temps.take() is not None  # the parent's are still its own


@pytest.mark.parametrize("temps", ["unnamed"], indirect=True)  # the pool holds unnamed files only
async def test_the_pool_is_first_filled_after_a_few_puts(store: FileStore, temps: str) -> None:
    for i in range(file_mod.TEMP_POOL_START - 1):
        await store.put(f"k/{i}", b"x")
    assert not store._temps._filling and not store._temps._fds  # a command that puts little: no pool
    await _pool_filled(store)

"""Directory quotas across renames, `quota set` under concurrent writers, and quota propagation between
mounts — on SQLite and on Redis (db 6)."""

from __future__ import annotations

import asyncio
import errno
import json
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.app.meta import Meta, quota
from jfs.app.meta.engine import format_meta
from jfs.app.meta.rename import RENAME_EXCHANGE
from jfs.app.ops import quota_cmd
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE
from jfs.domain.errors import FSError
from jfs.domain.records import Quota
from jfs.domain.settings import Settings
from jfs.ports.kv import Tx
from jfs.testing.engines import wipe_engine
from jfs.testing.mounts import format_volume, jfs, mounted

REDIS_DB = 6
ENGINES = ["sqlite", "redis"]


def _url(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if engine == "sqlite":
        return f"sqlite3://{tmp_path}/meta.db"
    return f"{request.getfixturevalue('redis_server_url')}/{REDIS_DB}"


@pytest.fixture(params=ENGINES)
async def meta(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Meta]:
    kv = await open_kv(_url(request.param, request, tmp_path))
    await kv.reset()
    await format_meta(kv, Settings(name="quota", trash_days=0))
    m = await Meta.load(kv)
    try:
        yield m
    finally:
        await m.close()
        await kv.close()


async def _mkdirs(m: Meta, path: str) -> int:
    ino = ROOT_INODE
    for part in path.strip("/").split("/"):
        try:
            ino, _ = await m.lookup(ino, part.encode())
        except FSError:
            ino, _ = await m.mkdir(ino, part.encode(), 0o755)
    return ino


async def _file(m: Meta, parent: int, name: str, size: int) -> int:
    ino, _ = await m.create(parent, name.encode(), 0o644)
    if size:
        await m.truncate(ino, size)
    await m.close_file(ino)
    return ino


async def _used(m: Meta, ino: int) -> tuple[int, int]:
    raw = await m.kv.read(lambda tx: tx.get(keys.dir_quota(ino)))
    assert raw is not None
    q = Quota.decode(raw)
    return q.used_space, q.used_inodes


async def _assert_exact(m: Meta, *dirs: int) -> None:
    for d in dirs:
        assert await _used(m, d) == await quota_cmd.usage(m, d), f"quota of inode {d}"


async def test_rename_moves_usage_between_quota_trees(meta: Meta) -> None:
    m = meta
    a, b, c = [await _mkdirs(m, p) for p in ("/a", "/b", "/c")]
    ax = await _mkdirs(m, "/a/x")
    d = await _mkdirs(m, "/a/d/sub")
    await _file(m, a, "f", 10_000)
    await _file(m, d, "g", 5000)
    await m.symlink(await _mkdirs(m, "/a/d"), b"ln", b"sub/g")
    await _file(m, ax, "h", 100)
    for path in ("/a", "/b", "/a/x"):
        await quota_cmd.set_quota(m, path, inodes=100, settle=0)
    assert await _used(m, a) == (3 * 4096 + 12288 + 4096 + 8192 + 4096, 7)
    quotas = (a, b, ax)

    await m.rename(a, b"f", b, b"f")  # a file between two quota trees
    await _assert_exact(m, *quotas)
    await m.rename(a, b"d", b, b"d")  # a directory (no record of its own): its subtree is walked
    await _assert_exact(m, *quotas)
    assert await _used(m, b) == (12288 + 3 * 4096 + 8192, 5)
    await m.rename(b, b"d", c, b"d")  # out of every quota
    await _assert_exact(m, *quotas)
    assert await _used(m, b) == (12288, 1)
    await quota_cmd.set_quota(m, "/c/d", settle=0)
    cd = await _mkdirs(m, "/c/d")
    await m.rename(c, b"d", ax, b"d")  # a directory with a quota of its own, into a nested quota
    await _assert_exact(m, *quotas, cd)
    await m.rename(ax, b"h", a, b"h")  # within /a: only /a/x changes
    await _assert_exact(m, *quotas, cd)
    await m.rename(cd, b"sub", b, b"sub")  # out of two nested quotas at once
    await _assert_exact(m, *quotas, cd)

    # Replacing a destination releases what it used (a file, then an empty directory with a quota).
    await _file(m, b, "victim", 50_000)
    await _file(m, a, "big", 20_000)
    await m.rename(a, b"big", b, b"victim")
    await _assert_exact(m, *quotas, cd)
    await _mkdirs(m, "/b/empty")
    await quota_cmd.set_quota(m, "/b/empty", settle=0)
    await _mkdirs(m, "/a/e2")
    await m.rename(a, b"e2", b, b"empty")
    assert not [q for q in await quota_cmd.list_quotas(m) if q["path"] == "/b/empty"]
    await _assert_exact(m, *quotas, cd)

    # RENAME_EXCHANGE moves both sides.
    await _file(m, a, "one", 1)
    await m.rename(b, b"sub", a, b"one", RENAME_EXCHANGE)
    await _assert_exact(m, *quotas, cd)
    await m.rename(a, b"one", b, b"victim", RENAME_EXCHANGE)
    await _assert_exact(m, *quotas, cd)


async def test_rename_into_a_full_quota_fails_with_edquot(meta: Meta, monkeypatch: pytest.MonkeyPatch) -> None:
    m = meta
    full, roomy, out = [await _mkdirs(m, p) for p in ("/full", "/roomy", "/out")]
    inner = await _mkdirs(m, "/full/inner")
    await _file(m, full, "f", 1)
    await _file(m, out, "small", 1)
    await _file(m, out, "large", 64 << 10)
    await _mkdirs(m, "/out/tree/a/b")
    await quota_cmd.set_quota(m, "/full", inodes=2, settle=0)
    await quota_cmd.set_quota(m, "/roomy", capacity=32 << 10, settle=0)
    for src, name, dst in ((out, b"small", full), (out, b"tree", full), (out, b"large", roomy), (out, b"tree", inner)):
        with pytest.raises(FSError) as exc:
            await m.rename(src, name, dst, name)
        assert exc.value.errno == errno.EDQUOT
        await m.lookup(src, name)  # nothing moved
    await m.rename(full, b"f", inner, b"f")  # within the full quota: no growth
    await m.rename(out, b"small", roomy, b"small")  # fits the space limit
    await m.rename(out, b"tree", roomy, b"tree")
    await _assert_exact(m, full, roomy)
    await m.rename(inner, b"f", out, b"f")  # shrinking is always allowed, then there is room again
    await m.rename(roomy, b"small", full, b"small")
    await _assert_exact(m, full, roomy)
    # A directory too big to count inside the rename: EXDEV, so that mv copies it instead.
    monkeypatch.setattr(quota, "MOVE_WALK_LIMIT", 1)
    with pytest.raises(FSError) as exc:
        await m.rename(roomy, b"tree", out, b"tree")
    assert exc.value.errno == errno.EXDEV
    await m.rename(roomy, b"tree", roomy, b"tree2")  # same directory: nothing to count


async def test_recount_is_exact_and_falls_back_for_big_trees(meta: Meta, monkeypatch: pytest.MonkeyPatch) -> None:
    m = meta
    top = await _mkdirs(m, "/t/u/v")
    for i in range(5):
        await _file(m, top, f"f{i}", i * 3000)
    t = await _mkdirs(m, "/t")
    doc = await quota_cmd.set_quota(m, "/t", capacity=1 << 30, settle=0)
    assert (doc["used_space"], doc["used_inodes"]) == await quota_cmd.usage(m, t)
    monkeypatch.setattr(quota, "SET_WALK_LIMIT", 3)  # paged, approximate path: exact when nothing moves
    async with asyncio.timeout(30):
        q = await quota.recount(m, t)
    assert (q.used_space, q.used_inodes) == await quota_cmd.usage(m, t)
    assert q.max_space == 1 << 30


# ---------------------------------------------------------------------------------------------------
# Through mounts: concurrent writers while `jfs quota set` runs, and a second mount enforcing it.


def _writer(root: Path, stop: threading.Event, errors: list[BaseException]) -> None:
    """Churn below `root`: create files of various sizes, grow some, delete some, rename some away."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "sub").mkdir(exist_ok=True)
    i = 0
    try:
        while not stop.is_set() and i < 3000:
            p = root / f"f{i}"
            p.write_bytes(b"x" * ((i * 1777) % 9000))
            if i % 3 == 0:
                with open(root / f"f{i // 2}", "ab") as f:
                    f.write(b"y" * 5000)
            if i % 4 == 1:
                (root / f"f{i - 1}").unlink(missing_ok=True)
            if i % 5 == 2:
                p.rename(root / "sub" / f"r{i}")
            i += 1
    except BaseException as exc:  # reported by the test
        errors.append(exc)


@pytest.mark.parametrize("engine", ENGINES)
def test_quota_set_with_concurrent_writers_and_a_second_mount(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = _url(engine, request, tmp_path)
    if engine == "redis":
        asyncio.run(wipe_engine(url))
    format_volume(url, str(tmp_path / "bucket"))
    with mounted(url, tmp_path / "m1") as m1, mounted(url, tmp_path / "m2") as m2:
        (m1 / "q" / "pre").mkdir(parents=True)
        (m1 / "q" / "pre" / "data").write_bytes(b"p" * 10000)
        stop = threading.Event()
        errors: list[BaseException] = []
        writers = [threading.Thread(target=_writer, args=(mnt / "q" / name, stop, errors))
                   for mnt, name in ((m1, "w1"), (m2, "w2"))]
        for w in writers:
            w.start()
        try:
            time.sleep(0.3)
            started = time.monotonic()
            out = jfs("quota", "set", url, "--path", "/q", "--capacity-bytes", str(1 << 30), "--json")
            took = time.monotonic() - started
            time.sleep(0.5)  # the writers go on after the quota exists everywhere
        finally:
            stop.set()
            for w in writers:
                w.join(60)
        assert not errors, errors
        assert json.loads(out.stdout)["max_space"] == 1 << 30
        assert took < 12  # much less than a heartbeat (12 s): mounts learn about quotas every 2 s
        got = json.loads(jfs("quota", "get", url, "--path", "/q", "--json").stdout)
        walk = json.loads(jfs("summary", str(m1 / "q"), "--json", "--depth", "0").stdout)
        actual = (walk["space"] - 4096, walk["files"] + walk["dirs"] - 1)
        assert (got["used_space"], got["used_inodes"]) == actual
        assert actual[1] > 20  # the writers did work meanwhile

        # The second mount enforces the (now tightened) limit at once; freeing space makes room again.
        jfs("quota", "set", url, "--path", "/q", "--inodes", str(actual[1] + 1))
        (m2 / "q" / "last").write_bytes(b"")
        with pytest.raises(OSError) as exc:
            (m2 / "q" / "one-too-many").write_bytes(b"")
        assert exc.value.errno == errno.EDQUOT
        with pytest.raises(OSError) as exc:
            (m1 / "q" / "pre" / "moved-in").mkdir()
        assert exc.value.errno == errno.EDQUOT
        (m2 / "q" / "last").rename(m2 / "outside")  # a rename out of the quota frees its inode
        (m1 / "q" / "again").write_bytes(b"")


def test_a_new_quota_reaches_a_running_mount_within_seconds(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Without `quota set`'s own wait: the mount's loop picks the record up within REFRESH_INTERVAL."""
    url = _url("sqlite", request, tmp_path)
    format_volume(url, str(tmp_path / "bucket"))
    with mounted(url, tmp_path / "m") as mnt:
        (mnt / "q").mkdir()

        async def create() -> None:
            kv = await open_kv(url)
            try:
                m = await Meta.load(kv)
                ino, _ = await m.lookup(ROOT_INODE, b"q")

                async def put(tx: Tx) -> None:
                    tx.put(keys.dir_quota(ino), Quota(max_inodes=1).encode())

                await kv.txn(put)
            finally:
                await kv.close()

        asyncio.run(create())
        (mnt / "q" / "a").write_bytes(b"")  # charged or not, depending on timing: the record says 0 used
        deadline = time.monotonic() + quota.PROPAGATION + 1
        while True:
            try:
                (mnt / "q" / f"t{time.monotonic_ns()}").write_bytes(b"")
            except OSError as exc:
                assert exc.errno == errno.EDQUOT
                break
            assert time.monotonic() < deadline, "the mount did not learn about the quota"
            time.sleep(0.2)


@pytest.mark.parametrize("engine", ENGINES)
async def test_user_quota_exact_under_concurrent_clients(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Two clients (own connections) write as one uid at once: the ``QU``/``QG`` records, charged in each
    transaction (conflicts retried on Redis), end equal to the scan (ADR 0026)."""
    from jfs.app.meta import owner_quota
    from jfs.app.meta.context import Ctx

    url = _url(engine, request, tmp_path)
    kv1 = await open_kv(url)
    await kv1.reset()
    await format_meta(kv1, Settings(name="ugq", trash_days=0))
    kv2 = await open_kv(url)
    m1, m2 = await Meta.load(kv1), await Meta.load(kv2)
    ctx = Ctx(uid=1000, gid=100, check=False)
    try:
        await quota_cmd.set_owner_quota(m1, owner_quota.USER, 1000, inodes=10_000, settle=0)
        await quota.refresh_flags(m2)
        assert m2.has_owner_quotas

        async def work(m: Meta, tag: str) -> None:
            d, _ = await m.mkdir(ROOT_INODE, tag.encode(), 0o755, ctx)
            for i in range(40):
                ino, _ = await m.create(d, b"f%d" % i, 0o644, ctx)
                await m.truncate(ino, 1000 * (i + 1), ctx)
                await m.close_file(ino)
                if i % 3 == 0:
                    await m.unlink(d, b"f%d" % i, ctx)

        await asyncio.gather(work(m1, "one"), work(m2, "two"))
        report = await quota_cmd.check_owner_quotas(m1)
        assert report["consistent"], report["mismatches"]
        q = await owner_quota.read_record(kv1, owner_quota.USER, 1000)
        assert q is not None and q.used_inodes == 2 + 2 * 26
    finally:
        await m1.close()
        await m2.close()
        await kv1.close()
        await kv2.close()

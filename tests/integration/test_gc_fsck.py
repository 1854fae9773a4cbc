"""gc, fsck, trash expiry/restore and destroy on volumes damaged on purpose.

Every test runs on SQLite + a local bucket directory and on Redis (a throwaway server, database 12,
flushed before and after) + a local bucket directory. Damage is injected with raw KV transactions and
object-store calls; the tests check that gc and fsck find exactly that damage, that their repairs work,
and that a second run finds nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jfs.app.data.config import DataConfig
from jfs.app.data.files import DataPath
from jfs.app.meta import trash, trash_purge
from jfs.app.meta.engine import Meta
from jfs.app.ops import restore as restore_cmd
from jfs.app.ops.slice_set import SliceSet
from jfs.compose import format_volume, open_bucket, open_engine, open_volume
from jfs.domain import keys
from jfs.domain.attrs import TRASH_INODE, Attr, align4k
from jfs.domain.chunks import block_key
from jfs.domain.records import decode_slices, encode_i64, encode_u64
from jfs.domain.settings import Settings
from jfs.ports.kv import KV, Tx
from jfs.testing.engines import wipe_engine
from jfs.testing.volume_ops import fsck_volume, gc_volume

BS = 64 << 10
NAME = "gcvol"
REDIS_DB = 12
OLD = 7200.0
"""Seconds: how old injected objects and markers are made (older than the tests' skip age)."""
SKIP = 600.0


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(params=["sqlite-file", "redis-file"])
async def meta_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite-file":
        yield f"sqlite3://{tmp_path}/meta.db"
        return
    url = f"{request.getfixturevalue('redis_server_url')}/{REDIS_DB}"
    await wipe_engine(url)
    try:
        yield url
    finally:
        await wipe_engine(url)


@dataclass
class Client:
    kv: KV
    meta: Meta
    dp: DataPath

    async def write(self, parent: int, name: bytes, data: bytes, *, chunks: int = 1) -> int:
        """Create `name` holding `data`, written in `chunks` separately committed pieces."""
        ino, _ = await self.meta.create(parent, name, 0o644)
        h = await self.dp.open(ino, os.O_WRONLY)
        step = max(1, -(-len(data) // chunks))
        for off in range(0, len(data), step):
            await self.dp.write(h, off, data[off : off + step])
            await self.dp.flush(h)
        await self.dp.release(h)
        await self.meta.close_file(ino)
        return ino

    async def read(self, ino: int) -> bytes:
        h = await self.dp.open(ino)
        try:
            length = (await self.meta.getattr(ino)).length
            return await self.dp.read(h, 0, length)
        finally:
            await self.dp.release(h)
            await self.meta.close_file(ino)


@dataclass
class Vol:
    url: str
    bucket: Path

    def path(self, rel: str) -> Path:
        return self.bucket / NAME / rel

    def objects(self) -> set[str]:
        """Keys relative to the volume of every block object."""
        root = self.bucket / NAME
        return {str(p.relative_to(root)) for p in (root / "chunks").rglob("*") if p.is_file()}

    def put(self, rel: str, data: bytes, *, age: float = OLD) -> None:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        t = time.time() - age
        os.utime(p, (t, t))

    def age_all(self) -> None:
        t = time.time() - OLD
        for p in (self.bucket / NAME / "chunks").rglob("*"):
            if p.is_file():
                os.utime(p, (t, t))

    async def client(self) -> Client:
        kv = await open_engine(self.url)
        meta = await Meta.load(kv)
        await meta.start_session(background=False)
        store = await open_bucket(meta.settings)
        dp = await DataPath(meta, store, DataConfig.from_settings(meta.settings)).start()
        return Client(kv, meta, dp)

    async def close(self, c: Client) -> None:
        store = c.dp.store
        await c.dp.close()
        await c.meta.close()
        await store.close()
        await c.kv.close()

    async def txn(self, body: object) -> object:
        kv = await open_engine(self.url)
        try:
            return await kv.txn(body)  # type: ignore[arg-type]
        finally:
            await kv.close()


async def restore(url: str, hours: list[str], *, put_back: bool) -> dict[str, list[restore_cmd.RestoreItem]]:
    """`jfs restore` without the CLI."""
    async with open_volume(url) as vol:
        return await restore_cmd.restore_hours(vol.meta, hours, put_back=put_back)


async def make_volume(url: str, tmp_path: Path, *, trash_days: int = 0) -> Vol:
    bucket = tmp_path / "bucket"
    await format_volume(url, Settings(name=NAME, storage="file", bucket=str(bucket), trash_days=trash_days,
                                      block_size=BS >> 10))  # fmt: skip
    return Vol(url, bucket)


def data(n: int, seed: int) -> bytes:
    return bytes((i * 131 + seed * 7) % 251 for i in range(n))


async def lookup(c: Client, parent: int, name: bytes) -> int:
    return (await c.meta.lookup(parent, name))[0]


async def slices_of(kv: KV, ino: int) -> list[tuple[int, int]]:
    async def body(tx: Tx) -> list[tuple[int, int]]:
        prefix = keys.chunk_prefix(ino)
        return [(r.id, r.size) for _, v in await tx.scan(prefix, keys.prefix_end(prefix))
                for r in decode_slices(v) if r.id]  # fmt: skip

    return await kv.read(body)


def blocks_of(slice_id: int, size: int) -> set[str]:
    return {block_key(slice_id, i, min(BS, size - i * BS)) for i in range(-(-size // BS))}


# ------------------------------------------------------------------------------------------------ tests


def test_slice_set_runs_and_lookup() -> None:
    s = SliceSet(run=7)
    pairs = [(i * 3 % 50 + 1, 1000 + i % 3) for i in range(200)] + [(1 << 40, 5), (2, 77)]
    for p in pairs:
        s.add(*p)
    s.freeze()
    want = sorted(set(pairs))
    assert list(s) == want
    assert len(s) == len(want)
    assert s.sizes(2) == sorted({z for i, z in want if i == 2})
    assert s.sizes(1 << 40) == [5] and s.sizes(999) == []
    assert [s.index(*p) for p in want] == list(range(len(want)))
    assert (2, 77) in s and (2, 78) not in s
    with pytest.raises(RuntimeError):
        s.add(1, 1)


async def test_clean_volume(meta_url: str, tmp_path: Path) -> None:
    vol = await make_volume(meta_url, tmp_path)
    c = await vol.client()
    try:
        d, _ = await c.meta.mkdir(1, b"d", 0o755)
        a = await c.write(d, b"a", data(3 * BS + 100, 1), chunks=3)
        await c.write(1, b"b", data(10, 2))
        await c.meta.link(a, 1, b"a-link")
        await c.meta.symlink(d, b"s", b"../b")
        await c.meta.truncate(a, BS)  # hidden data stays referenced until compaction
    finally:
        await vol.close(c)
    report = await fsck_volume(meta_url)
    assert report.issues == [], [i.to_dict() for i in report.issues]
    gc = await gc_volume(meta_url, skip_age=SKIP)
    assert gc.objects["valid"].count == len(vol.objects())
    assert all(gc.objects[k].count == 0 for k in ("pending", "trash", "leaked", "skipped"))


async def test_gc_classifies_and_reclaims(meta_url: str, tmp_path: Path) -> None:
    vol = await make_volume(meta_url, tmp_path)
    c = await vol.client()
    try:
        keep = await c.write(1, b"keep", data(2 * BS + 5, 3))
        doomed = await c.write(1, b"doomed", data(BS + 7, 4))
        freed = await c.write(1, b"freed", data(500, 5))
        keep_slice = (await slices_of(c.kv, keep))[0]
        doomed_slices = await slices_of(c.kv, doomed)
        freed_slices = await slices_of(c.kv, freed)
    finally:
        await vol.close(c)
    before = vol.objects()
    # A deleted file whose data was never released (delfile marker, chunks still there), an hour old.
    now = int(time.time())

    async def delete_without_cleanup(tx: Tx) -> None:
        attr = Attr.decode(await tx.get(keys.attr(doomed)) or b"")
        tx.delete(keys.dentry(1, b"doomed"))
        tx.delete(keys.attr(doomed))
        tx.put(keys.delfile(doomed, attr.length), encode_u64(now - int(OLD)))
        # A released slice whose blocks were not deleted (K = -1, chunk record gone).
        tx.delete(keys.dentry(1, b"freed"))
        tx.delete(keys.attr(freed))
        tx.delete(keys.chunk(freed, 0))
        tx.put(keys.slice_ref(*freed_slices[0]), encode_i64(-1))
        tx.add(keys.counter(keys.USED_SPACE), -align4k(attr.length) - align4k(500))
        tx.add(keys.counter(keys.TOTAL_INODES), -2)

    await vol.txn(delete_without_cleanup)
    # Leaks: an unknown slice, a block name that does not fit its slice's size, a foreign name; plus
    # one young unreferenced object that must be left alone.
    sid, size = keep_slice
    leaked = {"chunks/0/0/999999_0_4096", block_key(sid, 0, 12345), "chunks/0/0/garbage.tmp"}
    for rel in leaked:
        vol.put(rel, b"x" * 100)
    young = "chunks/0/0/888888_0_100"
    vol.put(young, b"y" * 100, age=0)

    report = await gc_volume(meta_url, skip_age=SKIP)
    assert report.objects["leaked"].count == 3 and set(report.leaked_examples) == leaked
    assert report.objects["skipped"].count == 1
    pending = {k for s in doomed_slices + freed_slices for k in blocks_of(*s)}
    assert report.objects["pending"].count == len(pending)
    assert report.objects["valid"].count == len(before) - len(pending)
    assert report.pending_files == 1 and report.pending_slices == 1
    assert vol.objects() == before | leaked | {young}, "gc without --delete changed the bucket"

    report = await gc_volume(meta_url, skip_age=SKIP, delete=True)
    assert report.deleted_leaked.count == 3 and report.kept_leaked == 0
    assert report.finished_files == 1
    assert vol.objects() == (before - pending) | {young}, "young object deleted or leaks/pending left"
    report = await gc_volume(meta_url, skip_age=SKIP)
    assert {k: s.count for k, s in report.objects.items()} == {
        "valid": len(before - pending), "pending": 0, "trash": 0, "leaked": 0, "skipped": 1,
    }  # fmt: skip
    assert report.pending_files == 0 and report.pending_slices == 0
    assert (await fsck_volume(meta_url)).issues == []


async def test_fsck_finds_and_repairs_damage(meta_url: str, tmp_path: Path) -> None:
    vol = await make_volume(meta_url, tmp_path)
    c = await vol.client()
    try:
        d, _ = await c.meta.mkdir(1, b"d", 0o755)
        broken = await c.write(d, b"broken", data(3 * BS, 6))  # one block deleted
        shrunk = await c.write(d, b"shrunk", data(2 * BS, 7))  # one block of the wrong size
        links = await c.write(d, b"links", data(10, 8))  # nlink broken
        gone = await c.write(d, b"gone", data(BS + 1, 9))  # inode record removed under its name
        lost = await c.write(d, b"lost", data(20, 10))  # name removed: orphan
        hard = await c.write(d, b"hard", data(30, 11))  # hard link with a parent counter removed
        await c.meta.link(hard, 1, b"hard2")
        gone_slices = await slices_of(c.kv, gone)
        broken_slice = (await slices_of(c.kv, broken))[0]
        shrunk_slice = (await slices_of(c.kv, shrunk))[0]
    finally:
        await vol.close(c)
    vol.path(block_key(broken_slice[0], 1, BS)).unlink()
    vol.path(block_key(shrunk_slice[0], 0, BS)).write_bytes(b"short")

    async def damage(tx: Tx) -> None:
        a = Attr.decode(await tx.get(keys.attr(links)) or b"")
        a.nlink = 3
        tx.put(keys.attr(links), a.encode())
        tx.delete(keys.attr(gone))
        tx.delete(keys.dentry(d, b"lost"))
        tx.delete(keys.parent_ref(hard, 1))
        tx.put(keys.counter(keys.USED_SPACE), encode_i64(1))

    await vol.txn(damage)

    report = await fsck_volume(meta_url)
    either = {"/hard2": "/d/hard"}  # a hard-linked file is reported under one of its names
    found = sorted((i.kind, either.get(i.path, i.path)) for i in report.issues)
    assert found == sorted([
        ("lost-blocks", "/d/broken"),
        ("lost-blocks", "/d/shrunk"),
        ("wrong-nlink", "/d/links"),
        ("broken-dentry", "/d/gone"),
        ("stray-records", "/d/gone"),
        ("orphan", f"<inode {lost}>"),
        ("wrong-parent", "/d/hard"),
        ("counters", "/"),
    ]), [i.to_dict() for i in report.issues]  # fmt: skip
    assert all(i.repair for i in report.issues)

    report = await fsck_volume(meta_url, repair=True)
    assert report.remaining == [], [i.to_dict() for i in report.remaining]
    report = await fsck_volume(meta_url)
    assert report.issues == [], [i.to_dict() for i in report.issues]
    # The stray inode's blocks were released; nothing is leaked.
    gc = await gc_volume(meta_url, skip_age=0)
    assert gc.objects["leaked"].count == 0 and gc.objects["pending"].count == 0
    assert not any(k in vol.objects() for s in gone_slices for k in blocks_of(*s))
    c = await vol.client()
    try:
        got = await c.read(broken)
        want = bytearray(data(3 * BS, 6))
        want[BS : 2 * BS] = bytes(BS)
        assert got == bytes(want), "the lost block reads as zeros, the rest is intact"
        assert await c.read(shrunk) == bytes(BS) + data(2 * BS, 7)[BS:]
        lf = await lookup(c, 1, b"lost+found")
        assert await c.read(await lookup(c, lf, b"#%d" % lost)) == data(20, 10)
        assert (await c.meta.getattr(links)).nlink == 1
        assert (await c.meta.getattr(hard)).nlink == 2
    finally:
        await vol.close(c)


async def test_fsck_lost_directory(meta_url: str, tmp_path: Path) -> None:
    """A directory's inode record disappears: its entry dangles, its entries live under a missing inode,
    its children lose their only name; an orphaned directory keeps its subtree in lost+found."""
    vol = await make_volume(meta_url, tmp_path)
    c = await vol.client()
    try:
        d, _ = await c.meta.mkdir(1, b"d", 0o755)
        child = await c.write(d, b"child", data(100, 1))
        e, _ = await c.meta.mkdir(1, b"e", 0o755)
        inner = await c.write(e, b"inner", data(50, 2))
    finally:
        await vol.close(c)

    async def damage(tx: Tx) -> None:
        tx.delete(keys.attr(d))  # /d vanishes; /e loses its name
        tx.delete(keys.dentry(1, b"e"))

    await vol.txn(damage)
    report = await fsck_volume(meta_url)
    found = sorted((i.kind, i.path) for i in report.issues)
    assert found == sorted([
        ("broken-dentry", "/d"),
        ("dead-entries", "/d"),
        ("wrong-nlink", "/"),
        ("orphan", "/d/child"),  # where it was: its attributes still name /d
        ("orphan", f"<inode {e}>"),
        ("counters", "/"),
    ]), [i.to_dict() for i in report.issues]  # fmt: skip
    assert (await fsck_volume(meta_url, repair=True)).remaining == []
    assert (await fsck_volume(meta_url)).issues == []
    c = await vol.client()
    try:
        lf = await lookup(c, 1, b"lost+found")
        assert await c.read(await lookup(c, lf, b"#%d" % child)) == data(100, 1)
        moved = await lookup(c, lf, b"#%d" % e)
        assert await c.read(await lookup(c, moved, b"inner")) == data(50, 2)
        assert inner == await lookup(c, moved, b"inner")
        assert (await c.meta.getattr(1)).nlink == 3  # lost+found is the only subdirectory
        assert (await c.meta.getattr(lf)).nlink == 3
    finally:
        await vol.close(c)


async def test_fsck_path_scope(meta_url: str, tmp_path: Path) -> None:
    vol = await make_volume(meta_url, tmp_path)
    c = await vol.client()
    try:
        a, _ = await c.meta.mkdir(1, b"a", 0o755)
        sub, _ = await c.meta.mkdir(a, b"sub", 0o755)
        b, _ = await c.meta.mkdir(1, b"b", 0o755)
        deep = await c.write(sub, b"deep", data(100, 1))
        other = await c.write(b, b"other", data(100, 2))
        deep_slice = (await slices_of(c.kv, deep))[0]
        other_slice = (await slices_of(c.kv, other))[0]
    finally:
        await vol.close(c)
    vol.path(block_key(deep_slice[0], 0, 100)).unlink()
    vol.path(block_key(other_slice[0], 0, 100)).unlink()

    def kinds(r: object) -> list[tuple[str, str]]:
        return sorted((i.kind, i.path) for i in r.issues)  # type: ignore[attr-defined]

    assert kinds(await fsck_volume(meta_url, path="/a", recursive=True)) == [("lost-blocks", "/a/sub/deep")]
    assert kinds(await fsck_volume(meta_url, path="/a")) == []  # only /a and its direct entries
    assert kinds(await fsck_volume(meta_url, path="/b/other")) == [("lost-blocks", "/b/other")]
    assert kinds(await fsck_volume(meta_url)) == [("lost-blocks", "/a/sub/deep"), ("lost-blocks", "/b/other")]
    r = await fsck_volume(meta_url, path="/a", recursive=True, repair=True)
    assert r.remaining == []
    assert kinds(await fsck_volume(meta_url)) == [("lost-blocks", "/b/other")]


async def test_gc_compact(meta_url: str, tmp_path: Path) -> None:
    vol = await make_volume(meta_url, tmp_path)
    c = await vol.client()
    try:
        content = data(3 * BS + 11, 12)
        ino = await c.write(1, b"frag", content, chunks=9)
        assert len(await slices_of(c.kv, ino)) >= 5
    finally:
        await vol.close(c)
    report = await gc_volume(meta_url, compact=True, delete=True, skip_age=0)
    assert report.compacted_chunks == 1
    c = await vol.client()
    try:
        assert len(await slices_of(c.kv, ino)) == 1
        assert await c.read(ino) == content
    finally:
        await vol.close(c)
    report = await gc_volume(meta_url, skip_age=0)
    assert report.objects["valid"].count == len(vol.objects()) == 4
    assert (await fsck_volume(meta_url)).issues == []


async def test_trash_purge_and_restore(meta_url: str, tmp_path: Path) -> None:
    vol = await make_volume(meta_url, tmp_path, trash_days=1)
    c = await vol.client()
    try:
        d, _ = await c.meta.mkdir(1, b"d", 0o755)
        inos = [await c.write(d, b"f%d" % i, data(BS + i, i)) for i in range(3)]
        for i in range(3):
            await c.meta.unlink(d, b"f%d" % i)
        await c.write(d, b"f1", data(5, 99))  # takes the name of a trashed file
        hours = await trash.hour_dirs(c.kv)
        assert len(hours) == 1
        hour = hours[0][0].decode()
        gc = await gc_volume(vol.url, skip_age=0)
        assert gc.objects["trash"].count == 5 and gc.objects["leaked"].count == 0
        assert (await fsck_volume(vol.url)).issues == []

        listed = await restore(vol.url, [hour], put_back=False)
        assert {(i.name, i.status, i.target) for i in listed[hour]} == {
            ("f0", "in-trash", "/d/f0"), ("f1", "exists", "/d/f1"), ("f2", "in-trash", "/d/f2"),
        }  # fmt: skip
        back = await restore(vol.url, [hour], put_back=True)
        assert sorted(i.status for i in back[hour]) == ["exists", "restored", "restored"]
        assert await c.read(await lookup(c, d, b"f0")) == data(BS, 0)
        assert await c.read(await lookup(c, d, b"f2")) == data(BS + 2, 2)
        assert (await fsck_volume(vol.url)).issues == []

        await c.meta.unlink(d, b"f0")
        assert await trash_purge.purge_trash(c.meta) == 0  # not expired yet
        purged = await trash_purge.purge_trash(c.meta, time.time() + 2 * 86400)
        assert purged == 2  # f0 again, and the old f1 that could not be restored
        assert await trash.hour_dirs(c.kv) == []
        assert (await c.meta.getattr(TRASH_INODE)).nlink == 2
        await c.meta.drain()
    finally:
        await vol.close(c)
    gc = await gc_volume(vol.url, skip_age=0)
    assert gc.objects["trash"].count == 0 and gc.objects["pending"].count == 0
    assert gc.objects["valid"].count == len(vol.objects()) == 3  # f2 (2 blocks) and the new f1
    assert (await fsck_volume(vol.url)).issues == []
    assert inos[0] not in await _all_inodes(vol)


async def test_trash_job_election(meta_url: str, tmp_path: Path) -> None:
    vol = await make_volume(meta_url, tmp_path, trash_days=1)
    c = await vol.client()
    try:
        await c.write(1, b"x", data(10, 1))
        await c.meta.unlink(1, b"x")

        async def age_hours(tx: Tx) -> None:  # move the hour directory three days back
            prefix = keys.dentry_prefix(TRASH_INODE)
            for key, value in await tx.scan(prefix, keys.prefix_end(prefix)):
                tx.delete(key)
                tx.put(prefix + b"2000-01-01-00", value)

        await c.kv.txn(age_hours)
        assert await trash_purge.purge_trash_if_elected(c.meta) == 1
        await c.write(1, b"y", data(10, 1))
        await c.meta.unlink(1, b"y")
        await c.kv.txn(age_hours)
        assert await trash_purge.purge_trash_if_elected(c.meta) == 0  # ran less than an hour ago
        await c.meta.drain()
    finally:
        await vol.close(c)


async def _all_inodes(vol: Vol) -> set[int]:
    kv = await open_engine(vol.url)

    async def body(tx: Tx) -> set[int]:
        return {keys.ino_from_le(k, 1) for k, _ in await tx.scan(b"A", b"B", keys_only=True)
                if len(k) == 10 and k[9] == 0x49}  # fmt: skip

    try:
        return await kv.read(body)
    finally:
        await kv.close()


# --------------------------------------------------------------------------------------------------- CLI


def jfs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jfs.cli.main", "-q", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)  # fmt: skip


async def test_cli_gc_fsck_exit_codes(meta_url: str, tmp_path: Path) -> None:
    import json

    vol = await make_volume(meta_url, tmp_path)
    c = await vol.client()
    try:
        ino = await c.write(1, b"f", data(BS, 1))
        sid, size = (await slices_of(c.kv, ino))[0]
    finally:
        await vol.close(c)
    vol.put("chunks/0/0/777777_0_10", b"z" * 10)
    r = jfs("gc", vol.url, "--json", env={"JFS_GC_SKIPPEDTIME": "60"})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["Objects"]["leaked"]["count"] == 1 and doc["Objects"]["valid"]["count"] == 1
    r = jfs("gc", vol.url, "--delete", env={"JFS_GC_SKIPPEDTIME": "60"})
    assert r.returncode == 0 and "deleted 1 leaked objects" in r.stdout, r.stdout + r.stderr
    r = jfs("gc", vol.url, env={"JFS_GC_SKIPPEDTIME": "soon"})
    assert r.returncode == 1 and "JFS_GC_SKIPPEDTIME" in r.stderr
    assert jfs("fsck", vol.url).returncode == 0
    vol.path(block_key(sid, 0, size)).unlink()
    r = jfs("fsck", vol.url)
    assert r.returncode == 1 and "lost-blocks" in r.stdout and "/f" in r.stdout, r.stdout
    r = jfs("fsck", vol.url, "--repair", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["Remaining"] == 0, r.stdout + r.stderr
    assert jfs("fsck", vol.url).returncode == 0
    r = jfs("fsck", vol.url, "--path", "/missing")
    assert r.returncode == 1 and r.stderr.startswith("jfs: error:")


async def test_destroy(meta_url: str, tmp_path: Path) -> None:
    vol = await make_volume(meta_url, tmp_path)
    c = await vol.client()
    uuid = c.meta.settings.uuid
    try:
        await c.write(1, b"f", data(2 * BS, 1))
        r = jfs("destroy", vol.url, uuid, "--yes")
        assert r.returncode == 1 and "active session" in r.stderr, r.stderr
        assert f"sid {c.meta.sid}" in r.stderr
    finally:
        await vol.close(c)
    assert vol.objects()
    r = jfs("destroy", vol.url, "not-the-uuid", "--yes")
    assert r.returncode == 1 and "not the UUID" in r.stderr
    r = jfs("destroy", vol.url, uuid)  # no terminal, no --yes
    assert r.returncode == 1 and "--yes" in r.stderr
    r = jfs("destroy", vol.url, uuid, "--yes")
    assert r.returncode == 0, r.stderr
    assert not [p for p in (vol.bucket / NAME).rglob("*") if p.is_file()]
    r = jfs("status", vol.url)
    assert r.returncode == 1 and "jfs format" in r.stderr


async def test_fsck_counters_after_a_delete_and_a_create_of_the_same_size(
    meta_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    """The counters end where they started (a file created, one of the same size deleted) while the scan
    saw both files: not a counters fault, and fsck must not report (or "repair") one."""
    from jfs.app.ops.fsck import run as fsck_run

    vol = await make_volume(meta_url, tmp_path)
    c = await vol.client()
    try:
        await c.write(1, b"a", data(5000, 1))
        real_scan = fsck_run.scan

        async def scan_between(kv: KV, model: object, progress: object) -> None:
            await c.write(1, b"b", data(5000, 2))  # counters +1 file before the scan...
            await real_scan(kv, model, progress)  # type: ignore[arg-type]
            await c.meta.unlink(1, b"a")  # ...and back after it, though the scan counted both

        monkeypatch.setattr(fsck_run, "scan", scan_between)
        report = await fsck_volume(meta_url)
        assert [i.kind for i in report.issues] == [], [i.to_dict() for i in report.issues]
        assert "not checked" in report.counters_note
        monkeypatch.setattr(fsck_run, "scan", real_scan)
        assert (await fsck_volume(meta_url)).issues == []
    finally:
        await vol.close(c)


async def test_gc_and_fsck_while_a_client_writes(meta_url: str, tmp_path: Path) -> None:
    """A live client creates, overwrites, truncates and deletes files while gc --delete (with the age
    threshold) and fsck run: nothing it still uses is deleted, and fsck reports nothing."""
    import asyncio
    import random

    vol = await make_volume(meta_url, tmp_path)
    c = await vol.client()
    expected: dict[bytes, bytes] = {}
    rnd = random.Random(7)

    async def churn() -> None:
        for step in range(int(os.environ.get("JFS_TEST_CHURN", "120"))):
            name = b"f%d" % rnd.randrange(12)
            if name in expected and rnd.random() < 0.3:
                await c.meta.unlink(1, name)
                del expected[name]
            elif name in expected:
                ino = await lookup(c, 1, name)
                h = await c.dp.open(ino, os.O_RDWR)
                off = rnd.randrange(len(expected[name]) + 1)
                piece = data(rnd.randrange(1, 2 * BS), step)
                await c.dp.write(h, off, piece)
                await c.dp.release(h)
                await c.meta.close_file(ino)
                old = expected[name]
                new = bytearray(old + bytes(max(0, off + len(piece) - len(old))))
                new[off : off + len(piece)] = piece
                expected[name] = bytes(new)
            else:
                expected[name] = data(rnd.randrange(1, 3 * BS), step)
                await c.write(1, name, expected[name], chunks=rnd.randrange(1, 4))
            await asyncio.sleep(0)

    try:
        writer = asyncio.ensure_future(churn())
        problems = []
        while not writer.done():
            await gc_volume(meta_url, delete=True, skip_age=60)
            problems += (await fsck_volume(meta_url)).issues
        await writer
        for name, content in expected.items():
            assert await c.read(await lookup(c, 1, name)) == content, name
        await c.meta.drain()
        await c.dp.drain()
    finally:
        await vol.close(c)
    assert problems == [], [i.to_dict() for i in problems]
    assert (await fsck_volume(meta_url)).issues == []
    gc = await gc_volume(meta_url, skip_age=0)
    assert gc.objects["leaked"].count == 0 and gc.objects["pending"].count == 0

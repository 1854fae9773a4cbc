"""Removed directory trees in the trash: rmdir keeps the directory (as JuiceFS), `jfs restore` rebuilds the
whole tree by parent inode numbers, expiry deletes trashed trees; counters, quotas and fsck stay right.

Runs on the memory and SQLite engines (a volume with a local bucket, so `fsck_volume` can check it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jfs.app.meta import Meta, trash_purge
from jfs.app.meta import trash as trash_mod
from jfs.app.meta.statfs import read_usage
from jfs.app.ops import quota_cmd
from jfs.app.ops import restore as restore_cmd
from jfs.app.tree_jobs import remove_tree
from jfs.cli.maint_cmd import restore_summary
from jfs.compose import format_volume
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, FileType
from jfs.domain.records import Quota
from jfs.domain.settings import Settings
from jfs.testing.engines import session_meta_at
from jfs.testing.volume_ops import fsck_volume

Snapshot = dict[str, tuple[str, int, int, bytes]]


@pytest.fixture(params=["memory", "sqlite"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = f"memory://trash-tree-{uuid.uuid4().hex}" if request.param == "memory" else f"sqlite3://{tmp_path}/m.db"
    await format_volume(url, Settings(name="trashtree", storage="file", bucket=str(tmp_path / "bucket"),
                                      trash_days=1))  # fmt: skip
    return url


@pytest.fixture
async def m(url: str) -> AsyncIterator[Meta]:
    async with session_meta_at(url) as meta:
        yield meta


async def build(m: Meta, parent: int, name: bytes, *, dirs: int = 3, depth: int = 2, files: int = 4) -> int:
    """A tree `name` in `parent`: `dirs` subdirectories per level, `depth` levels, `files` empty files, a
    symlink and an empty directory in each directory; returns its inode."""
    top, _ = await m.mkdir(parent, name, 0o750)
    todo = [(top, depth)]
    while todo:
        d, left = todo.pop()
        for i in range(files):
            f, _ = await m.create(d, b"f%d" % i, 0o640)
            await m.close_file(f)
        await m.symlink(d, b"link", b"f0")
        await m.mkdir(d, b"empty", 0o700)
        if left:
            for i in range(dirs):
                sub, _ = await m.mkdir(d, b"d%d" % i, 0o755)
                todo.append((sub, left - 1))
    return top


async def snapshot(m: Meta, ino: int, path: str = "") -> Snapshot:
    """path → (type, inode, mode, symlink target) of everything below directory `ino`."""
    out: Snapshot = {}
    async for e in m.readdir(ino, plus=True):
        assert e.attr is not None
        p = f"{path}/{e.name.decode()}"
        target = await m.readlink(e.ino) if e.attr.typ is FileType.SYMLINK else b""
        out[p] = (e.attr.typ.name, e.ino, e.attr.mode & 0o7777, target)
        if e.attr.typ is FileType.DIRECTORY:
            out.update(await snapshot(m, e.ino, p))
    return out


async def hour_entries(m: Meta) -> dict[str, list[bytes]]:
    out = {}
    for name, ino in await trash_mod.hour_dirs(m.kv):
        out[name.decode()] = sorted([e.name async for e in m.readdir(ino)])
    return out


async def quota_usage(m: Meta, ino: int) -> tuple[int, int] | None:
    async def body(tx: object) -> bytes | None:
        return await tx.get(keys.dir_quota(ino))  # type: ignore[attr-defined,no-any-return]

    raw = await m.kv.read(body)  # type: ignore[arg-type]
    return None if raw is None else (Quota.decode(raw).used_space, Quota.decode(raw).used_inodes)


async def assert_fsck_clean(url: str) -> None:
    report = await fsck_volume(url)
    assert report.issues == [], [i.to_dict() for i in report.issues]


def with_hour_dir(usage: tuple[int, int]) -> tuple[int, int]:
    """`usage` plus one trash hour directory (charged 4 KiB and one inode, as JuiceFS charges it)."""
    return usage[0] + 4096, usage[1] + 1


# ------------------------------------------------------------------------------------------------ tests


async def test_rmdir_moves_the_directory_to_the_trash(m: Meta, url: str) -> None:
    p, _ = await m.mkdir(ROOT_INODE, b"p", 0o755)
    d, _ = await m.mkdir(p, b"d", 0o700)
    usage = await read_usage(m.kv)
    await m.rmdir(p, b"d")
    hour, hour_attr = await m.lookup(TRASH_INODE, trash_mod.hour_name(time.time_ns()))
    assert [(e.name, e.ino, e.typ) async for e in m.readdir(hour)] == [(b"%d-%d-d" % (p, d), d, FileType.DIRECTORY)]
    assert hour_attr.nlink == 3 and (await m.getattr(p)).nlink == 2
    attr = await m.getattr(d)
    assert (attr.parent, attr.nlink, attr.mode & 0o777) == (hour, 2, 0o700)
    assert await read_usage(m.kv) == with_hour_dir(usage)  # charged until purged, like a trashed file
    await assert_fsck_clean(url)
    await m.rmdir(hour, b"%d-%d-d" % (p, d))  # removing it from the trash deletes it
    with pytest.raises(FileNotFoundError):
        await m.getattr(d)
    assert (await m.getattr(hour)).nlink == 2
    assert await read_usage(m.kv) == usage  # d released, the new hour directory charged
    await assert_fsck_clean(url)


async def test_removed_tree_is_restored_whole(m: Meta, url: str) -> None:
    p, _ = await m.mkdir(ROOT_INODE, b"p", 0o755)
    top = await build(m, p, b"tree")
    sub, _ = await m.lookup(top, b"d1")
    await quota_cmd.set_quota(m, "/p", inodes=10_000, settle=0)
    await quota_cmd.set_quota(m, "/p/tree/d1", inodes=10_000, settle=0)
    before = await snapshot(m, p)
    n = len(before)
    q_before, sub_q_before = await quota_usage(m, p), await quota_usage(m, sub)
    usage = await read_usage(m.kv)

    counts = await remove_tree(m, p, b"tree")  # what `jfs rmr` (and rm -rf) do: files, then emptied dirs
    assert counts["files"] + counts["dirs"] == n
    (hour, entries), = (await hour_entries(m)).items()
    assert len(entries) == n  # all side by side, each named after its original parent
    assert await quota_usage(m, p) == (0, 0) and await read_usage(m.kv) == with_hour_dir(usage)
    await assert_fsck_clean(url)

    result = await restore_cmd.restore_hours(m, [hour], put_back=True)
    assert {i.status for i in result[hour]} == {"restored"}
    assert {i.target for i in result[hour]} == {f"/p{k}" for k in before}
    assert await snapshot(m, p) == before  # same names, same inodes, same modes, same links
    assert await hour_entries(m) == {hour: []}
    assert await quota_usage(m, p) == q_before and await quota_usage(m, sub) == sub_q_before
    assert await read_usage(m.kv) == with_hour_dir(usage)
    assert (await m.getattr(p)).nlink == 3
    await assert_fsck_clean(url)
    assert restore_summary(result[hour], put_back=True) == (f"restored {n} of {n} entries", "")


async def test_restore_without_put_back_rebuilds_the_tree_inside_the_trash(m: Meta, url: str) -> None:
    top = await build(m, ROOT_INODE, b"tree", dirs=2)
    before = await snapshot(m, top)
    await quota_cmd.set_quota(m, "/", inodes=10_000, settle=0)
    await remove_tree(m, ROOT_INODE, b"tree")
    (hour, _), = (await hour_entries(m)).items()

    listed = await restore_cmd.restore_hours(m, [hour], put_back=False)
    by_status = {i.status for i in listed[hour] if i.ino != top}
    assert by_status == {"rebuilt"} and next(i.status for i in listed[hour] if i.ino == top) == "in-trash"
    assert await hour_entries(m) == {hour: [b"1-%d-tree" % top]}
    hour_ino, _ = await m.lookup(TRASH_INODE, hour.encode())
    assert await snapshot(m, top) == before  # whole, below its trashed top directory
    await assert_fsck_clean(url)

    back = await restore_cmd.restore_hours(m, [hour], put_back=True)
    assert [i.status for i in back[hour]] == ["restored"]
    assert await snapshot(m, top) == before and (await m.getattr(top)).parent == ROOT_INODE
    assert (await m.getattr(hour_ino)).nlink == 2
    assert await quota_usage(m, ROOT_INODE) == (len(before) * 4096 + 4096, len(before) + 1)
    await assert_fsck_clean(url)


async def test_what_cannot_be_put_back_stays_in_the_trash_and_is_named(m: Meta, url: str) -> None:
    p, _ = await m.mkdir(ROOT_INODE, b"p", 0o755)
    top = await build(m, p, b"taken", dirs=2, depth=1)
    before = await snapshot(m, top)
    q, _ = await m.mkdir(ROOT_INODE, b"q", 0o755)
    gone_top = await build(m, q, b"orphan", dirs=1, depth=1, files=2)
    await remove_tree(m, p, b"taken")
    await remove_tree(m, q, b"orphan")
    await m.mkdir(p, b"taken", 0o755)  # the name is taken meanwhile
    m.settings.trash_days = 0
    await m.rmdir(ROOT_INODE, b"q")  # and the other tree's parent is deleted for good
    m.settings.trash_days = 1
    (hour, _), = (await hour_entries(m)).items()

    result = await restore_cmd.restore_hours(m, [hour], put_back=True)
    status = {i.ino: i.status for i in result[hour]}
    assert status.pop(top) == "exists" and status.pop(gone_top) == "parent-gone"
    assert set(status.values()) == {"rebuilt"}  # kept inside their trashed top directories, whole
    line, failure = restore_summary(result[hour], put_back=True)
    assert line == f"restored 0 of {len(result[hour])} entries"
    assert "/p/taken (name taken)" in failure and f"<inode {q}>/orphan (original directory gone)" in failure
    assert f"{len(status)} entries below them were kept inside them" in failure
    await assert_fsck_clean(url)

    listed = await restore_cmd.restore_hours(m, [hour], put_back=False)  # only the two tops are left
    assert restore_summary(listed[hour], put_back=False) == (
        "rebuilt 0 of 2 entries inside the trash; 2 could not be put back (see Result); use --put-back to move "
        "them back", "")
    await m.rename(p, b"taken", p, b"newer")  # free the name: the next put-back brings the tree back
    again = await restore_cmd.restore_hours(m, [hour], put_back=True)
    assert {i.ino: i.status for i in again[hour]} == {top: "restored", gone_top: "parent-gone"}
    assert await snapshot(m, top) == before
    assert restore_summary(again[hour], put_back=True)[1].startswith("1 of 2 entries were not restored")
    await assert_fsck_clean(url)


async def test_tree_removed_across_two_hours(m: Meta, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    top = await build(m, ROOT_INODE, b"tree", dirs=2, depth=1, files=3)
    before = await snapshot(m, top)
    real_unlink, real_rmdir = m.unlink, m.rmdir

    async def unlink(*args: object, **kw: object) -> object:
        monkeypatch.setattr(trash_mod, "hour_name", lambda now: b"2026-01-01-00")
        return await real_unlink(*args, **kw)  # type: ignore[arg-type]

    async def rmdir(*args: object, **kw: object) -> None:
        monkeypatch.setattr(trash_mod, "hour_name", lambda now: b"2026-01-01-01")
        await real_rmdir(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(m, "unlink", unlink)
    monkeypatch.setattr(m, "rmdir", rmdir)
    await remove_tree(m, ROOT_INODE, b"tree")
    monkeypatch.undo()
    files_hour = await restore_cmd.restore_hours(m, ["2026-01-01-00"], put_back=True)
    assert {i.status for i in files_hour["2026-01-01-00"]} == {"parent-in-trash"}
    line, failure = restore_summary(files_hour["2026-01-01-00"], put_back=True)
    assert "original directory is in the trash (restore its hour too)" in failure
    both = await restore_cmd.restore_hours(m, ["2026-01-01-00", "2026-01-01-01"], put_back=True)
    assert {i.status for items in both.values() for i in items} == {"restored"}
    assert await snapshot(m, top) == before
    with pytest.raises(restore_cmd.RestoreError):
        await restore_cmd.restore_hours(m, ["2026-01-01-01", "1999-01-01-00"], put_back=True)
    await assert_fsck_clean(url)


async def test_expiry_deletes_trashed_trees(m: Meta, url: str) -> None:
    usage = await read_usage(m.kv)
    a = await build(m, ROOT_INODE, b"flat", dirs=2)
    b = await build(m, ROOT_INODE, b"nested", dirs=2)
    await quota_cmd.set_quota(m, "/nested/d0", inodes=100, settle=0)
    nested_d0, _ = await m.lookup(b, b"d0")
    n = len(await snapshot(m, a)) + len(await snapshot(m, b)) + 2
    await remove_tree(m, ROOT_INODE, b"flat")
    await remove_tree(m, ROOT_INODE, b"nested")
    (hour, _), = (await hour_entries(m)).items()
    await restore_cmd.restore_hours(m, [hour], put_back=False)  # "nested" and "flat" now whole in the trash
    assert len((await hour_entries(m))[hour]) == 2
    assert await trash_purge.purge_trash(m) == 0  # not expired yet
    assert await trash_purge.purge_trash(m, time.time() + 3 * 86400) == n
    await m.drain()
    assert await trash_mod.hour_dirs(m.kv) == []
    assert (await m.getattr(TRASH_INODE)).nlink == 2
    assert await read_usage(m.kv) == usage
    assert await quota_usage(m, nested_d0) is None
    for ino in (a, b, nested_d0):
        with pytest.raises(FileNotFoundError):
            await m.getattr(ino)
    await assert_fsck_clean(url)

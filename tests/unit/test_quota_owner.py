"""User and group quotas (`jfs.app.meta.owner_quota`, ``jfs quota --uid/--gid``) on the memory engine: every
usage-changing operation keeps the records equal to the scan, chown moves usage, EDQUOT on growth."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.app.meta import Meta, owner_quota
from jfs.app.meta.context import Ctx
from jfs.app.meta.engine import format_meta
from jfs.app.meta.setattr import SetAttr
from jfs.app.ops import quota_cmd
from jfs.domain.attrs import ROOT_INODE
from jfs.domain.errors import FSError
from jfs.domain.settings import Settings

ALICE = Ctx(uid=1000, gid=100, check=False)
BOB = Ctx(uid=1001, gid=100, check=False)


async def _meta(trash_days: int = 0) -> Meta:
    kv = await open_kv("memory://")
    await format_meta(kv, Settings(name="ugq", trash_days=trash_days))
    return await Meta.load(kv)


@pytest.fixture
async def meta() -> AsyncIterator[Meta]:
    m = await _meta()
    try:
        yield m
    finally:
        await m.close()
        await m.kv.close()


async def _file(m: Meta, parent: int, name: bytes, size: int, ctx: Ctx = ALICE) -> int:
    ino, _ = await m.create(parent, name, 0o644, ctx)
    if size:
        await m.truncate(ino, size, ctx)
    await m.close_file(ino)
    return ino


async def _consistent(m: Meta) -> None:
    report = await quota_cmd.check_owner_quotas(m)
    assert report["consistent"], report["mismatches"]


async def _used(m: Meta, kind: str, ident: int) -> tuple[int, int]:
    q = await owner_quota.read_record(m.kv, kind, ident)
    assert q is not None
    return q.used_space, q.used_inodes


async def test_set_counts_existing_usage_and_every_operation_keeps_it(meta: Meta) -> None:
    d, _ = await meta.mkdir(ROOT_INODE, b"d", 0o755, ALICE)
    await _file(meta, d, b"a", 5000)
    await meta.symlink(ROOT_INODE, b"s", b"d/a", ALICE)  # symlinks count nothing (as JuiceFS's scan)
    doc = await quota_cmd.set_owner_quota(meta, owner_quota.USER, 1000, capacity=1 << 30, settle=0)
    assert (doc["uid"], doc["used_space"], doc["used_inodes"]) == (1000, 4096 + 8192, 2)
    assert await _used(meta, owner_quota.GROUP, 100) == (4096 + 8192, 2)
    assert meta.has_owner_quotas
    await _consistent(meta)

    f = await _file(meta, d, b"b", 0)  # empty file: 4 KiB, as JuiceFS
    await meta.truncate(f, 10_000, ALICE)
    await meta.symlink(d, b"s2", b"x", ALICE)
    await meta.link(f, ROOT_INODE, b"hard", ALICE)  # a second name: charged once
    await _consistent(meta)
    assert await _used(meta, owner_quota.USER, 1000) == (4096 + 8192 + 12288, 3)

    await meta.unlink(ROOT_INODE, b"hard", ALICE)
    await meta.setattr(f, SetAttr(uid=1001, gid=200))  # chown moves the file's usage
    assert await _used(meta, owner_quota.USER, 1001) == (12288, 1)
    assert await _used(meta, owner_quota.GROUP, 200) == (12288, 1)
    assert await _used(meta, owner_quota.USER, 1000) == (4096 + 8192, 2)
    await _consistent(meta)

    await _file(meta, d, b"c", 100, BOB)
    await meta.rename(d, b"c", d, b"a", 0, ALICE)  # rename over alice's file: released from her
    assert await _used(meta, owner_quota.USER, 1000) == (4096, 1)
    await meta.unlink(d, b"a", ALICE)
    await meta.unlink(d, b"b", ALICE)
    await meta.unlink(d, b"s2", ALICE)
    await meta.rmdir(ROOT_INODE, b"d", ALICE)
    await _consistent(meta)
    assert await _used(meta, owner_quota.USER, 1000) == (0, 0)


async def test_limits_fail_growth_with_edquot(meta: Meta) -> None:
    await quota_cmd.set_owner_quota(meta, owner_quota.USER, 1000, capacity=16384, inodes=3, settle=0)
    f = await _file(meta, ROOT_INODE, b"a", 4096)
    with pytest.raises(FSError) as exc:
        await meta.truncate(f, 20_000, ALICE)
    assert exc.value.errno == errno.EDQUOT
    await _file(meta, ROOT_INODE, b"b", 0)
    await _file(meta, ROOT_INODE, b"c", 0)
    with pytest.raises(FSError) as exc:
        await meta.create(ROOT_INODE, b"d", 0o644, ALICE)
    assert exc.value.errno == errno.EDQUOT
    await _file(meta, ROOT_INODE, b"e", 0, BOB)  # another user is not limited
    await quota_cmd.set_owner_quota(meta, owner_quota.GROUP, 100, inodes=4, settle=0)
    with pytest.raises(FSError) as exc:
        await meta.create(ROOT_INODE, b"f", 0o644, BOB)  # ... but the group is
    assert exc.value.errno == errno.EDQUOT
    g = await _file(meta, ROOT_INODE, b"g", 0, Ctx(uid=1002, gid=300, check=False))
    with pytest.raises(FSError) as exc:
        await meta.setattr(g, SetAttr(uid=1000))  # chown to a full user
    assert exc.value.errno == errno.EDQUOT
    await _consistent(meta)


async def test_delete_keeps_usage_list_shows_limits_check_repairs(meta: Meta) -> None:
    await _file(meta, ROOT_INODE, b"a", 1)
    await quota_cmd.set_owner_quota(meta, owner_quota.USER, 1000, inodes=10, settle=0)
    await quota_cmd.set_owner_quota(meta, owner_quota.GROUP, 100, capacity=1 << 20, settle=0)
    listed = await quota_cmd.run(meta, "list")
    assert [d.get("uid", d.get("gid")) for d in listed] == [1000, 100]
    gone = await quota_cmd.delete_owner_quota(meta, owner_quota.USER, 1000)
    assert gone["max_inodes"] == 10
    assert await _used(meta, owner_quota.USER, 1000) == (4096, 1)
    assert [d.get("gid") for d in await quota_cmd.run(meta, "list")] == [100]
    with pytest.raises(FSError) as exc:
        await quota_cmd.get_owner_quota(meta, owner_quota.USER, 4242)
    assert exc.value.errno == errno.ENOENT
    with pytest.raises(FSError) as exc:
        await quota_cmd.set_owner_quota(meta, owner_quota.USER, 0, inodes=1, settle=0)
    assert exc.value.errno == errno.EINVAL

    async def spoil(tx):  # type: ignore[no-untyped-def]
        tx.put(owner_quota.record_key(owner_quota.USER, 1000), b"\0" * 32)

    await meta.kv.txn(spoil)
    report = await quota_cmd.check_owner_quotas(meta)
    assert not report["consistent"]
    assert report["mismatches"][0]["uid"] == 1000 and report["mismatches"][0]["actual_space"] == 4096
    assert (await quota_cmd.check_owner_quotas(meta, repair=True))["repaired"]
    await _consistent(meta)


async def test_trash_keeps_the_charge_until_purged() -> None:
    m = await _meta(trash_days=1)
    try:
        await _file(m, ROOT_INODE, b"a", 9000, Ctx(uid=0, gid=0, check=False))
        await _file(m, ROOT_INODE, b"b", 100)
        await quota_cmd.set_owner_quota(m, owner_quota.USER, 1000, capacity=1 << 30, settle=0)
        await m.unlink(ROOT_INODE, b"b", ALICE)  # into the trash: still alice's
        assert await _used(m, owner_quota.USER, 1000) == (4096, 1)
        await _consistent(m)  # the hour directory is root's, counted as JuiceFS's scan does
    finally:
        await m.close()
        await m.kv.close()


async def test_purge_and_last_close_release_the_charge() -> None:
    from jfs.app.meta.trash_purge import purge_trash

    m = await _meta(trash_days=1)
    try:
        await _file(m, ROOT_INODE, b"mine", 1, Ctx(uid=0, gid=0, check=False))
        d, _ = await m.mkdir(ROOT_INODE, b"d", 0o755, ALICE)
        await _file(m, d, b"a", 100)
        await quota_cmd.set_owner_quota(m, owner_quota.USER, 1000, inodes=100, settle=0)
        await m.unlink(d, b"a", ALICE)
        await m.rmdir(ROOT_INODE, b"d", ALICE)
        assert await _used(m, owner_quota.USER, 1000) == (8192, 2)  # both in the trash
        await _consistent(m)
        await purge_trash(m, now=4_000_000_000)  # every hour directory has expired
        assert await _used(m, owner_quota.USER, 1000) == (0, 0)
        assert await _used(m, owner_quota.USER, 0) == (4096, 1)  # root's file; the hour directory is gone
        await _consistent(m)
    finally:
        await m.close()
        await m.kv.close()


async def test_an_open_unlinked_file_is_released_at_its_last_close(meta: Meta) -> None:
    await quota_cmd.set_owner_quota(meta, owner_quota.USER, 1000, inodes=100, settle=0)
    ino, _ = await meta.create(ROOT_INODE, b"open", 0o644, ALICE)  # left open
    await meta.truncate(ino, 6000, ALICE)
    await meta.unlink(ROOT_INODE, b"open", ALICE)
    assert await _used(meta, owner_quota.USER, 1000) == (8192, 1)  # sustained: still held
    await meta.close_file(ino)
    assert await _used(meta, owner_quota.USER, 1000) == (0, 0)
    await _consistent(meta)

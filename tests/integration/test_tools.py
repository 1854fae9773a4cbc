"""`jfs summary`, `jfs rmr`, `jfs warmup` against a real mount on SQLite and on Redis (db 4), served through
`.control`; directory quotas through the mount (more in test_quota.py)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from jfs.cli.summary_plain import rich_tree
from jfs.testing.engines import wipe_engine
from jfs.testing.mounts import format_volume, jfs, mounted, reachable_dir


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def volume(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    import asyncio

    base = tmp_path_factory.mktemp("tools")
    if request.param == "sqlite":
        url = f"sqlite3://{base}/meta.db"
    else:
        url = f"{request.getfixturevalue('redis_server_url')}/4"
        asyncio.run(wipe_engine(url))
    format_volume(url, str(base / "bucket"))
    with reachable_dir("jfs-tools-") as outside:
        with mounted(url, outside / "mnt") as mnt:
            yield url, mnt


def test_summary_tree_and_json(volume: tuple[str, Path]) -> None:
    _, root = volume
    top = root / "sum"
    (top / "a" / "deep").mkdir(parents=True)
    (top / "b").mkdir()
    (top / "a" / "f1").write_bytes(b"x" * 9000)
    (top / "a" / "deep" / "f2").write_bytes(b"y" * 100)
    (top / "b" / "f3").write_bytes(b"z" * 10)
    (top / "small").write_bytes(b"")
    out = jfs("summary", str(top), "--json")
    doc = json.loads(out.stdout)
    assert (doc["files"], doc["dirs"], doc["length"]) == (4, 4, 9110)
    assert doc["space"] == 4 * 4096 + 12288 + 4096 + 4096 + 4096  # an empty file counts 4 KiB (align4k)
    names = [c["name"] for c in doc["children"]]
    assert names[0] == "a" and set(names) == {"a", "b", "small"}
    a = doc["children"][0]
    assert (a["files"], a["dirs"], a["length"]) == (2, 2, 9100)
    assert [c["name"] for c in a["children"]] == ["f1", "deep"]
    assert "children" not in a["children"][1]  # depth 2 stops here
    shallow = json.loads(jfs("summary", str(top), "--json", "--depth", "1", "--entries", "1").stdout)
    assert [c["name"] for c in shallow["children"]] == ["a", "..."]
    assert "children" not in shallow["children"][0]
    text = jfs("summary", str(top)).stdout
    assert "sum/" in text and "deep/" in text and "f1" in text
    # The console script's plain entry (no typer, the tree drawn without rich: ADR 0083) prints what rich
    # draws for the same answer on a non-terminal.
    plain = subprocess.run([sys.executable, "-c", "from jfs.cli import run; run()", "summary", str(top)],
                           capture_output=True, text=True, check=True, timeout=120).stdout
    buf = io.StringIO()
    Console(file=buf, highlight=False, width=200, color_system=None).print(rich_tree(doc))
    assert plain == text == buf.getvalue()


def test_rmr_removes_tree_and_refuses_root(volume: tuple[str, Path]) -> None:
    _, root = volume
    top = root / "gone"
    for i in range(3):
        d = top / f"d{i}" / "sub"
        d.mkdir(parents=True)
        for j in range(20):
            (d / f"f{j}").write_bytes(b"data")
    (top / "link").symlink_to("d0")
    assert os.path.isdir(top / "d1" / "sub")  # entries now cached by the kernel
    out = jfs("rmr", str(top))
    assert "removed 61 files and 7 directories" in out.stdout
    assert not os.path.exists(top)
    assert not os.path.exists(top / "d1" / "sub")
    assert "gone" not in os.listdir(root)
    top.mkdir()  # the name is usable again
    top.rmdir()
    res = jfs("rmr", str(root), check=False)
    assert res.returncode == 1 and "root of a mount" in res.stderr
    res = jfs("rmr", str(root / "missing"), check=False)
    assert res.returncode == 1


def test_warmup_fills_the_block_cache(volume: tuple[str, Path], tmp_path: Path) -> None:
    url, root = volume
    wd = root / "warm"
    wd.mkdir()
    payload = os.urandom(3 << 20)
    (wd / "big").write_bytes(payload)
    (wd / "sub").mkdir()
    (wd / "sub" / "small").write_bytes(b"hello")
    os.sync()
    with mounted(url, tmp_path / "second") as other:
        cache = tmp_path / "second-cache"

        before = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) if cache.exists() else 0
        out = jfs("warmup", str(other / "warm"), "--json")
        doc = json.loads(out.stdout)
        assert doc["files"] == 2 and doc["bytes"] == len(payload) + 5 and doc["errors"] == 0
        deadline = time.monotonic() + 10
        while True:
            after = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
            if after - before >= len(payload) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert after - before >= len(payload)
        text = jfs("warmup", str(other / "warm" / "sub" / "small")).stdout
        assert "warmed up 1 files" in text
        assert (other / "warm" / "big").read_bytes() == payload


# ---------------------------------------------------------------------------------------------------
# Directory quotas (SQLite and Redis db 7)


@pytest.mark.parametrize("engine", ["sqlite", "redis"])
def test_quota_enforced_through_the_mount(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    import asyncio
    import errno

    if engine == "sqlite":
        url = f"sqlite3://{tmp_path}/meta.db"
    else:
        url = f"{request.getfixturevalue('redis_server_url')}/7"
        asyncio.run(wipe_engine(url))
    format_volume(url, str(tmp_path / "bucket"))
    with mounted(url, tmp_path / "m1") as mnt:
        (mnt / "q" / "sub").mkdir(parents=True)
        (mnt / "q" / "pre").write_bytes(b"p" * 1000)
    out = jfs("quota", "set", url, "--path", "/q", "--inodes", "4", "--capacity-bytes", str(64 << 10), "--json")
    doc = json.loads(out.stdout)
    assert (doc["used_inodes"], doc["used_space"], doc["max_inodes"]) == (2, 8192, 4)
    assert "/q" in jfs("quota", "list", url).stdout
    with mounted(url, tmp_path / "m2") as mnt:
        q = mnt / "q"
        (q / "a").write_bytes(b"")
        (q / "sub" / "b").write_bytes(b"")  # nested: charged to /q too
        with pytest.raises(OSError) as exc:
            (q / "c").write_bytes(b"")
        assert exc.value.errno == errno.EDQUOT
        with pytest.raises(OSError) as exc:
            (q / "sub" / "d").mkdir()
        assert exc.value.errno == errno.EDQUOT
        (mnt / "outside").write_bytes(b"x" * (200 << 10))  # no quota there
        with pytest.raises(OSError) as exc:
            with open(q / "a", "wb") as f:
                f.write(b"a" * (100 << 10))
        assert exc.value.errno == errno.EDQUOT
        with pytest.raises(OSError) as exc:
            os.truncate(q / "sub" / "b", 1 << 20)
        assert exc.value.errno == errno.EDQUOT
        with open(q / "a", "wb") as f:
            f.write(b"a" * (20 << 10))  # fits
        with open(q / "a", "r+b") as f:
            with pytest.raises(OSError) as exc:
                os.posix_fallocate(f.fileno(), 0, 1 << 20)
            assert exc.value.errno == errno.EDQUOT
        with open(mnt / "outside", "rb") as src, open(q / "sub" / "b", "r+b") as dst:
            with pytest.raises(OSError) as exc:
                os.copy_file_range(src.fileno(), dst.fileno(), 200 << 10)
            assert exc.value.errno == errno.EDQUOT
        os.unlink(q / "pre")
        (q / "c").write_bytes(b"")  # the inode freed by the unlink is usable again
        got = json.loads(jfs("quota", "get", url, "--path", "/q", "--json").stdout)
        assert got["used_inodes"] == 4
        assert got["used_space"] == 4096 + (20 << 10) + 4096 + 4096
    jfs("quota", "delete", url, "--path", "/q")
    assert jfs("quota", "get", url, "--path", "/q", check=False).returncode == 1

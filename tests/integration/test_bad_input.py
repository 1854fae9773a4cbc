"""Bad input reaches the user as one clear line and a non-zero exit, and changes nothing."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from jfs.testing.mounts import format_volume, jfs, mounted
from jfs.testing.object_fixtures import seaweed_s3  # noqa: F401  (fixture)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_line_error(res: object) -> str:
    assert res.returncode != 0, res  # type: ignore[attr-defined]
    err = res.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("jfs: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("not-a-url", "malformed"),
        ("ftp://host/x", "unknown metadata engine"),
        ("redis://127.0.0.1:{port}/1", "cannot reach Redis"),
        ("redis://nosuchhost.invalid:6379/1", "cannot reach Redis"),
        ("sqlite3:///nonexistent/dir/meta.db", "nonexistent"),
    ],
)
def test_bad_meta_urls(url: str, needle: str, tmp_path: Path) -> None:
    url = url.format(port=_closed_port())
    line = _one_line_error(jfs("status", url, check=False))
    assert needle in line
    line = _one_line_error(jfs("format", url, "vol", "--bucket", str(tmp_path / "b"), check=False))
    assert needle in line
    assert not (tmp_path / "b").exists()


def test_wrong_redis_password(redis_server_url: str) -> None:
    url = redis_server_url.replace("redis://", "redis://:wrong@") + "/3"
    line = _one_line_error(jfs("status", url, check=False))
    assert "wrong" not in line.split("jfs: error:")[1].replace("****", "")


def test_sqlite_file_that_is_not_a_volume(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    line = _one_line_error(jfs("status", f"sqlite3://{junk}", check=False))
    assert "junk.db" in line
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("create table t(x)")
    _one_line_error(jfs("status", f"sqlite3://{other}", check=False))
    empty = tmp_path / "empty.db"
    line = _one_line_error(jfs("status", f"sqlite3://{empty}", check=False))
    assert "jfs format" in line


def test_refuses_to_overwrite_and_to_share_a_bucket(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/a.db"
    format_volume(url, str(tmp_path / "bucket"), "vol-a")
    line = _one_line_error(jfs("format", url, "vol-b", "--bucket", str(tmp_path / "bucket"), check=False))
    assert "already exists" in line
    other = f"sqlite3://{tmp_path}/b.db"
    line = _one_line_error(jfs("format", other, "vol-a", "--bucket", str(tmp_path / "bucket"), check=False))
    assert "already holds volume" in line
    res = jfs("status", other, check=False)
    assert res.returncode != 0  # nothing was written into the second engine


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"))
    with sqlite3.connect(tmp_path / "meta.db") as c:
        (value,) = c.execute("select v from kv where k = ?", (b"setting",)).fetchone()
        c.execute("update kv set v = ? where k = ?",
                  (bytes(value).replace(b'"MetaVersion": 1', b'"MetaVersion": 9'), b"setting"))
    line = _one_line_error(jfs("status", url, check=False))
    assert "upgrade jfs" in line


def test_bad_mountpoints(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"))
    line = _one_line_error(jfs("mount", url, str(tmp_path / "missing"), check=False))
    assert "not a directory" in line
    with mounted(url, tmp_path / "mnt") as mnt:
        line = _one_line_error(jfs("mount", url, str(mnt), check=False))
        assert "already a mount point" in line


def test_missing_s3_bucket_and_bad_credentials(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    s3 = request.getfixturevalue("seaweed_s3")
    url = f"sqlite3://{tmp_path}/meta.db"
    res = jfs("format", url, "vol", "--storage", "s3", "--bucket", f"{s3.endpoint}/no-such-bucket-x",  # type: ignore[attr-defined]
              "--access-key", "nobody", "--secret-key", "wrong-secret-123", check=False)
    line = _one_line_error(res)
    assert "wrong-secret-123" not in line
    assert jfs("status", url, check=False).returncode != 0


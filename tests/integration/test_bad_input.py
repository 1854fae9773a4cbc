"""Bad input reaches the user as one clear line and a non-zero exit, and changes nothing."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from jfs.testing.juicefs import JUICEFS, needs_juicefs, run_juicefs
from jfs.testing.mounts import format_volume, jfs, mount_process, mounted
from jfs.testing.object_fixtures import seaweed_s3  # noqa: F401  (fixture)
from jfs.testing.servers import redis_server


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
    (tmp_path / "file").write_text("x")
    line = _one_line_error(jfs("mount", url, str(tmp_path / "file"), check=False))
    assert line == f"jfs: error: mount point {tmp_path}/file is not a directory"
    line = _one_line_error(jfs("mount", url, str(tmp_path / "file" / "sub"), check=False))
    assert line == f"jfs: error: cannot create mount point {tmp_path}/file/sub: Not a directory"
    assert (tmp_path / "file").read_text() == "x"
    with mounted(url, tmp_path / "mnt") as mnt:
        line = _one_line_error(jfs("mount", url, str(mnt), check=False))
        assert "already a mount point" in line


def test_mount_creates_a_missing_mount_point(tmp_path: Path) -> None:
    """As JuiceFS: a missing mount point is created with its parents, and stays after the unmount; when the
    mount cannot start, the directories it made are gone again."""
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"))
    target = tmp_path / "new" / "a" / "mnt"
    with mount_process(url, target, "--cache-dir", str(tmp_path / "cache"), log=tmp_path / "mount.log") as proc:
        (target / "f").write_text("hello")
        assert (target / "f").read_text() == "hello"
    assert proc.returncode == 0
    assert target.is_dir() and not any(target.iterdir())

    bad = f"sqlite3://{tmp_path}/no-such-dir/meta.db"
    line = _one_line_error(jfs("mount", bad, str(tmp_path / "other" / "mnt"), check=False))
    assert "no-such-dir" in line
    assert not (tmp_path / "other").exists()


def test_mount_on_a_non_empty_directory(tmp_path: Path) -> None:
    """Allowed, as in JuiceFS and as the help says: the files are hidden while mounted (a warning says
    so) and untouched."""
    help_text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", jfs("mount", "--help").stdout).split())
    assert "existing empty directory" not in help_text
    assert "created with its parents if missing" in help_text and "hidden while the volume is mounted" in help_text
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"))
    target = tmp_path / "mnt" / "full"
    target.mkdir(parents=True)
    (target / "old").write_text("kept")
    with mount_process(url, target, "--cache-dir", str(tmp_path / "cache"), log=tmp_path / "mount.log"):
        assert not (target / "old").exists()
    assert (target / "old").read_text() == "kept"
    log = (tmp_path / "mount.log").read_text()
    assert "mountpoint_not_empty" in log and "Traceback" not in log


def _volume_doc(url: str) -> dict[str, object]:
    return json.loads(jfs("status", url, "--json").stdout)  # type: ignore[no-any-return]


def test_format_bad_bucket_address_is_a_usage_error(tmp_path: Path) -> None:
    """A malformed S3 address: exit 2 and what a bucket looks like, before the engine is touched."""
    url = f"sqlite3://{tmp_path}/meta.db"
    res = jfs("format", url, "vol", "--storage", "s3", "--bucket", "notaurl", check=False)
    line = _one_line_error(res)
    assert res.returncode == 2, res
    assert "internal error" not in line
    assert "'notaurl'" in line and "http(s)://host[:port]/bucket" in line
    assert not (tmp_path / "meta.db").exists()
    # an existing volume is left as it was
    format_volume(url, str(tmp_path / "bucket"))
    before = _volume_doc(url)
    res = jfs("format", url, "test-vol", "--force", "--storage", "s3", "--bucket", "http://h/a/b", check=False)
    assert res.returncode == 2 and "a key prefix after the bucket name" in _one_line_error(res)
    assert _volume_doc(url)["Setting"] == before["Setting"]


@pytest.mark.parametrize(
    ("bucket", "expected"),
    [
        ("/proc/jfs-nope", "cannot create the bucket directory /proc/jfs-nope/: /proc does not allow creating "
                           "directories (No such file or directory)"),
        ("{tmp}/file", "cannot create the bucket directory {tmp}/file/: {tmp}/file exists and is not a directory"),
        ("{tmp}/file/sub", "cannot create the bucket directory {tmp}/file/sub/: Not a directory"),
    ],
)
def test_format_bucket_directory_that_cannot_be_made(tmp_path: Path, bucket: str, expected: str) -> None:
    (tmp_path / "file").write_text("x")
    url = f"sqlite3://{tmp_path}/meta.db"
    res = jfs("format", url, "vol", "--bucket", bucket.format(tmp=tmp_path), check=False)
    assert res.returncode == 1
    assert _one_line_error(res) == "jfs: error: " + expected.format(tmp=tmp_path)
    assert (tmp_path / "file").read_text() == "x" and not Path("/proc/jfs-nope").exists()
    assert "no volume found" in _one_line_error(jfs("status", url, check=False))


def test_quota_on_a_missing_directory_names_it(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), "qvol")
    for args in (("set", "--capacity", "1"), ("get",), ("delete",)):
        res = jfs("quota", args[0], url, "--path", "/nope/x", *args[1:], check=False)
        assert res.returncode == 1
        assert _one_line_error(res) == "jfs: error: No such file or directory: /nope/x in volume 'qvol' (ENOENT)"
    res = jfs("quota", "set", url, "--path", "sub", "--inodes", "5", check=False)
    assert "/sub in volume 'qvol'" in _one_line_error(res)
    assert json.loads(jfs("quota", "list", url, "--json").stdout) == []


def test_tools_outside_a_jfs_mount_name_the_paths_given(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for cmd in ("warmup", "summary", "info"):
        res = jfs(cmd, str(tmp_path / "d"), check=False)
        assert res.returncode == 1
        assert _one_line_error(res) == f"jfs: error: {tmp_path}/d is not on a jfs mount"
    res = jfs("warmup", str(tmp_path / "d"), str(tmp_path), check=False)
    assert _one_line_error(res) == f"jfs: error: {tmp_path}/d, {tmp_path} are not on a jfs mount"
    res = jfs("rmr", str(tmp_path / "d"), check=False)
    assert _one_line_error(res) == f"jfs: error: {tmp_path}/d is not on a jfs mount"
    assert (tmp_path / "d").is_dir()


def test_missing_s3_bucket_and_bad_credentials(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    s3 = request.getfixturevalue("seaweed_s3")
    url = f"sqlite3://{tmp_path}/meta.db"
    res = jfs("format", url, "vol", "--storage", "s3", "--bucket", f"{s3.endpoint}/no-such-bucket-x",  # type: ignore[attr-defined]
              "--access-key", "nobody", "--secret-key", "wrong-secret-123", check=False)
    line = _one_line_error(res)
    assert "wrong-secret-123" not in line
    assert jfs("status", url, check=False).returncode != 0





def _every_command_says(url: str, workdir: Path, expected: str) -> None:
    """Each command that opens the engine fails with exactly `expected`, and creates nothing."""
    for args in (
        ("status", url), ("config", url), ("gc", url), ("fsck", url), ("dump", url, str(workdir / "d.json")),
        ("mount", url, str(workdir / "mnt")), ("format", url, "other", "--bucket", str(workdir / "b")),
        ("quota", "list", url), ("destroy", url, "some-uuid", "--yes"),
    ):
        res = jfs(*args, check=False)
        assert res.returncode == 1, (args, res)
        assert _one_line_error(res) == expected, args
    for made in ("d.json", "mnt", "b"):
        assert not (workdir / made).exists()


@needs_juicefs
def test_a_juicefs_sqlite_volume_is_named_with_the_way_over(tmp_path: Path) -> None:
    """A database in JuiceFS's SQL schema is named as such (not its 22 tables), with the command that
    copies it into jfs; it is left byte for byte as it was, and that command works."""
    db = tmp_path / "juicefs.db"
    url = f"sqlite3://{db}"
    run_juicefs("format", url, "jvol", "--bucket", str(tmp_path / "jbucket"), "--trash-days", "0")
    with contextlib.closing(sqlite3.connect(db)) as c:  # JuiceFS's last writes into the file, from its WAL
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = db.read_bytes()
    _every_command_says(url, tmp_path, (
        f"jfs: error: {db} holds JuiceFS volume 'jvol' in JuiceFS's SQL schema, which jfs does not read; "
        f"copy it into a jfs engine with: juicefs dump {url} | jfs load META-URL -"
    ))
    assert db.read_bytes() == before
    run_juicefs("status", url)

    target = f"sqlite3://{tmp_path}/jfs.db"
    dump = subprocess.Popen([JUICEFS or "juicefs", "dump", url], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    load = subprocess.run([sys.executable, "-m", "jfs.cli.main", "load", target, "-"], stdin=dump.stdout,
                          capture_output=True, text=True, timeout=120)
    assert dump.wait(60) == 0 and load.returncode == 0, load.stderr
    assert _volume_doc(target)["Setting"]["Name"] == "jvol"  # type: ignore[index]


@needs_juicefs
def test_a_juicefs_redis_volume_is_named_with_the_way_over(tmp_path: Path) -> None:
    """JuiceFS's own Redis layout (jfs keeps JuiceFS's TKV layout): named in one line, left as it was.
    (Before, jfs said "no volume found … run 'jfs format'", and format wrote a jfs volume beside it.)"""
    import redis

    with redis_server() as server:
        url = f"{server.url}/1"
        run_juicefs("format", url, "jredis", "--bucket", str(tmp_path / "jbucket"), "--trash-days", "0")
        client = redis.Redis(port=server.port, db=1)
        before = {k: client.dump(k) for k in client.keys("*")}
        _every_command_says(url, tmp_path, (
            f"jfs: error: {url} holds JuiceFS volume 'jredis' in JuiceFS's Redis layout, which jfs does not "
            f"read; copy it into a jfs engine with: juicefs dump {url} | jfs load META-URL -"
        ))
        assert {k: client.dump(k) for k in client.keys("*")} == before
        client.close()
        run_juicefs("status", url)

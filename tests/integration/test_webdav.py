"""`jfs webdav` with real clients against a real server process: curl (every method, Range, Depth,
Overwrite, locks, dead properties), cadaver, rclone (sync/check both ways) and a davfs2 mount, on SQLite +
file and Redis + SeaweedFS S3, with a FUSE mount of the same volume to check that each side sees the
other's changes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jfs.testing.mounts import format_test_volume, mounted, reachable_dir
from jfs.testing.object_fixtures import seaweed_s3  # noqa: F401  (fixture)
from jfs.testing.webdav import PASSWORD, USER, DavServer, curl, webdav_server

NS = "http://example.com/ns"


@dataclass
class Setup:
    meta_url: str
    mnt: Path
    dav: DavServer
    base: Path
    bucket: Path | None
    """The file bucket's directory (SQLite + file only)."""


@pytest.fixture(scope="module", params=["sqlite-file", "redis-s3"])
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp(f"dav-{request.param}")
    url = format_test_volume(request, base, redis_db=14, bucket_prefix="dav")
    bucket = base / "bucket" if request.param == "sqlite-file" else None
    with reachable_dir("jfs-dav-") as outside:
        with mounted(url, outside / "mnt") as mnt, webdav_server(url, base / "dav") as dav:
            yield Setup(url, mnt, dav, base, bucket)


@pytest.fixture
def d(setup: Setup, request: pytest.FixtureRequest) -> str:
    """A fresh directory for one test: its URL path (no trailing slash)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)
    (setup.mnt / name).mkdir()
    return f"/{name}"


def _wait_for(check: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def _objects(bucket: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(bucket))


# --------------------------------------------------------------------------- curl: the methods


def test_put_get_range_head_propfind(setup: Setup, d: str) -> None:
    url = setup.dav.url + d
    data = os.urandom(3 << 20) + b"tail"
    assert curl("PUT", f"{url}/f.bin", data=data).status == 201
    assert curl("PUT", f"{url}/f.bin", data=data).status == 204  # overwrite
    got = curl("GET", f"{url}/f.bin")
    assert got.status == 200 and got.body == data and got.headers["content-length"] == str(len(data))
    part = curl("GET", f"{url}/f.bin", headers={"Range": f"bytes={len(data) - 4}-"})
    assert part.status == 206 and part.body == b"tail"
    mid = curl("GET", f"{url}/f.bin", headers={"Range": "bytes=1048570-1048585"})
    assert mid.status == 206 and mid.body == data[1048570:1048586]
    head = curl("HEAD", f"{url}/f.bin", "-I")
    assert head.status == 200 and head.headers["content-length"] == str(len(data)) and "etag" in head.headers
    assert curl("GET", f"{url}/missing").status == 404

    assert curl("MKCOL", f"{url}/sub").status == 201
    assert curl("MKCOL", f"{url}/sub").status == 405
    assert curl("MKCOL", f"{url}/no/such/parent").status == 409
    assert curl("PUT", f"{url}/sub/deep.txt", data=b"x").status == 201
    zero = curl("PROPFIND", url, headers={"Depth": "0"})
    assert zero.status == 207 and zero.text.count("<ns0:response>") == 1
    one = curl("PROPFIND", url, headers={"Depth": "1"})
    assert one.status == 207 and one.text.count("<ns0:response>") == 3
    for prop in ("getcontentlength>3145732<", "getlastmodified>", "creationdate>", "getetag>",
                 "<ns0:collection", "getcontenttype>application/octet-stream<"):
        assert prop in one.text, prop
    inf = curl("PROPFIND", url, headers={"Depth": "infinity"})
    assert inf.status == 207 and f"{d}/sub/deep.txt" in inf.text
    named = curl("PROPFIND", f"{url}/f.bin", headers={"Depth": "0"},
                 data=b'<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getcontentlength/></prop></propfind>')
    assert named.status == 207 and "getcontentlength>3145732<" in named.text and "getetag" not in named.text


def test_multi_block_put_get_and_ranges(setup: Setup, d: str) -> None:
    """Bodies of several 4 MiB blocks: PUT pieces go to the volume block by block without copies and GET
    sends whole blocks from their buffers; the bytes, ranges across a block boundary and a chunked PUT
    (unknown length) all come back exact."""
    url = setup.dav.url + d
    data = os.urandom((9 << 20) + 5)
    assert curl("PUT", f"{url}/big.bin", data=data).status == 201
    got = curl("GET", f"{url}/big.bin")
    assert got.status == 200 and got.body == data
    edge = (4 << 20) - 3
    part = curl("GET", f"{url}/big.bin", headers={"Range": f"bytes={edge}-{edge + (4 << 20) + 9}"})
    assert part.status == 206 and part.body == data[edge:edge + (4 << 20) + 10]
    tail = curl("GET", f"{url}/big.bin", headers={"Range": "bytes=-7"})
    assert tail.status == 206 and tail.body == data[-7:]
    chunked = curl("PUT", f"{url}/chunked.bin", data=data, headers={"Transfer-Encoding": "chunked"})
    assert chunked.status == 201
    assert curl("GET", f"{url}/chunked.bin").body == data


def test_changes_through_the_mount_show_over_webdav_and_back(setup: Setup, d: str) -> None:
    url = setup.dav.url + d
    (setup.mnt / d[1:] / "from-mount.txt").write_bytes(b"written by FUSE")
    (setup.mnt / d[1:] / "mdir").mkdir()
    listing = curl("PROPFIND", url, headers={"Depth": "1"})
    assert f"{d}/from-mount.txt" in listing.text and f"{d}/mdir/" in listing.text
    assert curl("GET", f"{url}/from-mount.txt").body == b"written by FUSE"
    (setup.mnt / d[1:] / "from-mount.txt").write_bytes(b"changed by FUSE, longer")
    assert _wait_for(lambda: curl("GET", f"{url}/from-mount.txt").body == b"changed by FUSE, longer")

    assert curl("PUT", f"{url}/from-dav.txt", data=b"written by WebDAV").status == 201
    target = setup.mnt / d[1:] / "from-dav.txt"
    assert _wait_for(lambda: target.exists() and target.read_bytes() == b"written by WebDAV")
    assert curl("DELETE", f"{url}/from-mount.txt").status == 204
    assert _wait_for(lambda: not (setup.mnt / d[1:] / "from-mount.txt").exists())


def test_copy_by_slice_reference_move_delete(setup: Setup, d: str) -> None:
    url = setup.dav.url + d
    data = os.urandom(5 << 20)
    assert curl("PUT", f"{url}/src.bin", data=data).status == 201
    before = _objects(setup.bucket) if setup.bucket else 0
    assert curl("COPY", f"{url}/src.bin", headers={"Destination": f"{url}/copy.bin"}).status == 201
    assert curl("GET", f"{url}/copy.bin").body == data
    if setup.bucket:
        assert _objects(setup.bucket) == before, "COPY wrote data blocks: not a slice-reference copy"
    # Overwrite: F refuses an existing destination; T replaces it.
    assert curl("PUT", f"{url}/other.bin", data=b"other").status == 201
    assert curl("COPY", f"{url}/other.bin", headers={"Destination": f"{url}/copy.bin", "Overwrite": "F"}).status == 412
    assert curl("COPY", f"{url}/other.bin", headers={"Destination": f"{url}/copy.bin"}).status == 204
    assert curl("GET", f"{url}/copy.bin").body == b"other"

    # A tree: COPY Depth infinity copies it, Depth 0 only the collection.
    for p in ("t", "t/a", "t/a/b"):
        assert curl("MKCOL", f"{url}/{p}").status == 201
    assert curl("PUT", f"{url}/t/a/b/leaf.txt", data=b"leaf").status == 201
    assert curl("COPY", f"{url}/t", headers={"Destination": f"{url}/t2"}).status == 201
    assert curl("GET", f"{url}/t2/a/b/leaf.txt").body == b"leaf"
    assert curl("COPY", f"{url}/t", headers={"Destination": f"{url}/t0", "Depth": "0"}).status in (201, 204)
    assert (setup.mnt / d[1:] / "t0").is_dir() and not list((setup.mnt / d[1:] / "t0").iterdir())

    # MOVE is one rename: the inode stays the same.
    ino = (setup.mnt / d[1:] / "t" / "a").stat().st_ino
    assert curl("MOVE", f"{url}/t", headers={"Destination": f"{url}/moved"}).status in (201, 204)
    assert (setup.mnt / d[1:] / "moved" / "a").stat().st_ino == ino
    assert curl("GET", f"{url}/moved/a/b/leaf.txt").body == b"leaf"
    assert curl("GET", f"{url}/t/a/b/leaf.txt").status == 404
    fino = (setup.mnt / d[1:] / "src.bin").stat().st_ino
    assert curl("MOVE", f"{url}/src.bin", headers={"Destination": f"{url}/renamed.bin"}).status == 201
    assert (setup.mnt / d[1:] / "renamed.bin").stat().st_ino == fino
    assert curl("MOVE", f"{url}/renamed.bin", headers={"Destination": f"{url}/other.bin", "Overwrite": "F"}).status == 412
    assert curl("MOVE", f"{url}/renamed.bin", headers={"Destination": f"{url}/other.bin"}).status == 204
    assert (setup.mnt / d[1:] / "other.bin").stat().st_ino == fino

    # DELETE of a tree, server-side.
    for i in range(50):
        (setup.mnt / d[1:] / "moved" / f"f{i}").write_bytes(b"x")
    assert curl("DELETE", f"{url}/moved").status == 204
    # The mount wrote into `moved` just before: it may answer the directory's attributes from its own
    # change for the rest of the attribute timeout (1 s, ADR 0037), as the kernel's cache would; not longer.
    deadline = time.monotonic() + 1.5
    while (setup.mnt / d[1:] / "moved").exists():
        assert time.monotonic() < deadline, "another client's DELETE still unseen after the attribute timeout"
        time.sleep(0.05)
    assert curl("DELETE", f"{url}/moved").status == 404


def test_dead_properties_are_xattrs(setup: Setup, d: str) -> None:
    url = setup.dav.url + d
    assert curl("PUT", f"{url}/p.txt", data=b"props").status == 201
    patch = (f'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="{NS}"><D:set><D:prop>'
             '<Z:author>Ada &amp; co</Z:author><Z:tags><Z:tag>x</Z:tag></Z:tags></D:prop></D:set></D:propertyupdate>')
    r = curl("PROPPATCH", f"{url}/p.txt", data=patch.encode(), headers={"Content-Type": "application/xml"})
    assert r.status == 207 and "200 OK" in r.text
    local = setup.mnt / d[1:] / "p.txt"
    assert os.getxattr(local, f"user.dav.{{{NS}}}author").decode().endswith(">Ada &amp; co</ns0:author>") or \
        b"Ada &amp; co" in os.getxattr(local, f"user.dav.{{{NS}}}author")
    ask = f'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="{NS}"><D:prop><Z:author/><Z:tags/></D:prop></D:propfind>'
    got = curl("PROPFIND", f"{url}/p.txt", data=ask.encode(), headers={"Depth": "0"})
    assert got.status == 207 and "Ada &amp; co" in got.text and ">x<" in got.text
    allprop = curl("PROPFIND", f"{url}/p.txt", headers={"Depth": "0"})
    assert "Ada &amp; co" in allprop.text
    # They follow MOVE (same inode) and are copied by COPY.
    assert curl("MOVE", f"{url}/p.txt", headers={"Destination": f"{url}/q.txt"}).status == 201
    assert curl("COPY", f"{url}/q.txt", headers={"Destination": f"{url}/r.txt"}).status == 201
    got = curl("PROPFIND", f"{url}/r.txt", data=ask.encode(), headers={"Depth": "0"})
    assert "Ada &amp; co" in got.text
    remove = (f'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="{NS}"><D:remove><D:prop>'
              '<Z:author/></D:prop></D:remove></D:propertyupdate>')
    assert curl("PROPPATCH", f"{url}/r.txt", data=remove.encode()).status == 207
    assert f"user.dav.{{{NS}}}author" not in os.listxattr(setup.mnt / d[1:] / "r.txt")
    assert f"user.dav.{{{NS}}}author" in os.listxattr(setup.mnt / d[1:] / "q.txt")
    # Live properties are protected.
    live = ('<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
            '<D:getcontentlength>1</D:getcontentlength></D:prop></D:set></D:propertyupdate>')
    r = curl("PROPPATCH", f"{url}/q.txt", data=live.encode())
    assert r.status == 207 and "403 Forbidden" in r.text


LOCK_BODY = (b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
             b'<D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>')


def _lock(url: str, timeout: str = "Second-600", depth: str = "0") -> str:
    r = curl("LOCK", url, data=LOCK_BODY, headers={"Timeout": timeout, "Depth": depth,
                                                   "Content-Type": "application/xml"})
    assert r.status in (200, 201), r.text
    return r.headers["lock-token"].strip("<>")


def test_locks_are_shared_by_every_server_of_the_volume(setup: Setup, d: str) -> None:
    url = setup.dav.url + d
    assert curl("PUT", f"{url}/l.txt", data=b"v1").status == 201
    token = _lock(f"{url}/l.txt")
    assert curl("PUT", f"{url}/l.txt", data=b"v2").status == 423
    assert curl("DELETE", f"{url}/l.txt").status == 423
    assert curl("LOCK", f"{url}/l.txt", data=LOCK_BODY).status == 423
    disc = curl("PROPFIND", f"{url}/l.txt", headers={"Depth": "0"})
    assert token in disc.text and "tester" in disc.text
    # A second server on the same volume sees the lock (it lives in the engine, not in a process).
    with webdav_server(setup.meta_url, setup.base / "dav2") as other:
        url2 = other.url + d
        assert curl("PUT", f"{url2}/l.txt", data=b"v2").status == 423
        assert curl("PUT", f"{url2}/l.txt", data=b"v2", headers={"If": f"(<{token}>)"}).status == 204
        assert curl("UNLOCK", f"{url2}/l.txt", headers={"Lock-Token": f"<{token}>"}).status == 204
    assert curl("PUT", f"{url}/l.txt", data=b"v3").status == 204
    assert curl("GET", f"{url}/l.txt").body == b"v3"
    # A depth-infinity lock on a collection covers new members; LOCK of an unmapped URL creates it.
    assert curl("MKCOL", f"{url}/c").status == 201
    ctoken = _lock(f"{url}/c", depth="infinity")
    assert curl("PUT", f"{url}/c/new.txt", data=b"x").status == 423
    assert curl("PUT", f"{url}/c/new.txt", data=b"x", headers={"If": f"(<{ctoken}>)"}).status == 201
    assert curl("MOVE", f"{url}/c", headers={"Destination": f"{url}/c2"}).status == 423
    assert curl("UNLOCK", f"{url}/c", headers={"Lock-Token": f"<{ctoken}>"}).status == 204
    etoken = _lock(f"{url}/locked-new.txt")
    assert (setup.mnt / d[1:] / "locked-new.txt").exists()
    assert curl("UNLOCK", f"{url}/locked-new.txt", headers={"Lock-Token": f"<{etoken}>"}).status == 204
    # Timeouts: a lock past its time is gone; a refresh extends it.
    short = _lock(f"{url}/l.txt", timeout="Second-1")
    refreshed = curl("LOCK", f"{url}/l.txt", headers={"If": f"(<{short}>)", "Timeout": "Second-3"})
    assert refreshed.status == 200
    time.sleep(1.5)
    assert curl("PUT", f"{url}/l.txt", data=b"v4").status == 423
    time.sleep(2.0)
    assert curl("PUT", f"{url}/l.txt", data=b"v4").status == 204


# --------------------------------------------------------------------------- other real clients


def test_cadaver(setup: Setup, d: str, tmp_path: Path) -> None:
    if shutil.which("cadaver") is None:
        pytest.skip("cadaver is not installed (apt-get install cadaver)")
    (tmp_path / ".netrc").write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    (tmp_path / ".netrc").chmod(0o600)
    (tmp_path / "up.txt").write_bytes(b"uploaded by cadaver\n" * 1000)
    script = "\n".join([
        "mkcol cdir", "put up.txt cdir/up.txt", "copy cdir/up.txt cdir/copy.txt", "move cdir/copy.txt cdir/moved.txt",
        "propset cdir/up.txt color blue", "propget cdir/up.txt color", "lock cdir/up.txt", "discover cdir/up.txt",
        "unlock cdir/up.txt", "get cdir/moved.txt down.txt", "ls cdir", "delete cdir/up.txt", "quit",
    ]) + "\n"
    r = subprocess.run(["cadaver", f"{setup.dav.url}{d}/"], input=script, capture_output=True, text=True,
                       cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)}, timeout=60)
    out = r.stdout + r.stderr
    assert (tmp_path / "down.txt").read_bytes() == (tmp_path / "up.txt").read_bytes(), out
    assert "blue" in out, out
    assert "failed" not in out.lower(), out
    local = setup.mnt / d[1:] / "cdir"
    assert sorted(p.name for p in local.iterdir()) == ["moved.txt"]
    assert "moved.txt" in out


def test_rclone_sync_and_check_both_ways(setup: Setup, d: str, tmp_path: Path) -> None:
    if shutil.which("rclone") is None:
        pytest.skip("rclone is not installed (apt-get install rclone)")
    obscured = subprocess.run(["rclone", "obscure", PASSWORD], capture_output=True, text=True, check=True).stdout.strip()
    env = {**os.environ, "RCLONE_CONFIG": str(tmp_path / "none.conf"), "RCLONE_CONFIG_DAV_TYPE": "webdav",
           "RCLONE_CONFIG_DAV_URL": f"{setup.dav.url}{d}", "RCLONE_CONFIG_DAV_VENDOR": "other",
           "RCLONE_CONFIG_DAV_USER": USER, "RCLONE_CONFIG_DAV_PASS": obscured}

    def rclone(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["rclone", *args], capture_output=True, text=True, env=env, timeout=300)

    src = tmp_path / "src"
    for i in range(30):
        p = src / f"d{i % 4}" / f"f{i}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(1000 * i + 1))
    (src / "big.bin").write_bytes(os.urandom(9 << 20))
    r = rclone("sync", str(src), "dav:up")
    assert r.returncode == 0, r.stderr
    r = rclone("check", str(src), "dav:up")
    assert r.returncode == 0, r.stderr
    assert (setup.mnt / d[1:] / "up" / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    # Changes made through the mount come back with rclone.
    (setup.mnt / d[1:] / "up" / "d1" / "f1.bin").unlink()
    (setup.mnt / d[1:] / "up" / "from-mount.txt").write_bytes(b"mount side")
    back = tmp_path / "back"
    r = rclone("sync", "dav:up", str(back))
    assert r.returncode == 0, r.stderr
    r = rclone("check", "dav:up", str(back))
    assert r.returncode == 0, r.stderr
    assert (back / "from-mount.txt").read_bytes() == b"mount side" and not (back / "d1" / "f1.bin").exists()


def test_davfs2_mount_small_workload(setup: Setup, d: str, tmp_path: Path) -> None:
    if shutil.which("mount.davfs") is None:
        pytest.skip("davfs2 is not installed (apt-get install davfs2)")
    if os.geteuid() != 0:
        pytest.skip("mounting davfs2 needs root here")
    mnt = tmp_path / "davfs"
    mnt.mkdir()
    secrets = tmp_path / "secrets"
    secrets.write_text(f'{setup.dav.url}{d} {USER} "{PASSWORD}"\n')
    secrets.chmod(0o600)
    conf = tmp_path / "davfs2.conf"
    conf.write_text(f"secrets {secrets}\nuse_locks 1\ndelay_upload 0\n"
                    "ask_auth 0\nif_match_bug 1\n")
    r = subprocess.run(["mount", "-t", "davfs", f"{setup.dav.url}{d}", str(mnt), "-o", f"conf={conf}"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        pytest.skip(f"davfs2 cannot mount in this sandbox: {r.stderr.strip()}")
    try:
        (mnt / "docs").mkdir()
        for i in range(20):
            (mnt / "docs" / f"n{i}.txt").write_text(f"note {i}\n" * (i + 1))
        (mnt / "docs" / "n0.txt").rename(mnt / "docs" / "renamed.txt")
        (mnt / "docs" / "n1.txt").unlink()
        assert (mnt / "docs" / "n5.txt").read_text() == "note 5\n" * 6
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=120)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    local = setup.mnt / d[1:] / "docs"
    assert _wait_for(lambda: (local / "renamed.txt").exists())
    names = sorted(p.name for p in local.iterdir())
    assert names == sorted(["renamed.txt", *[f"n{i}.txt" for i in range(2, 20)]])
    assert (local / "n19.txt").read_text() == "note 19\n" * 20


def test_names_with_spaces_percent_and_unicode(setup: Setup, d: str) -> None:
    from urllib.parse import quote

    url = setup.dav.url + d
    for name in ("naïve café.txt", "100% done.txt", "日本語", "a+b&c=d;e"):
        assert curl("PUT", f"{url}/{quote(name)}", data=name.encode()).status == 201, name
        assert (setup.mnt / d[1:] / name).read_bytes() == name.encode()
        assert curl("GET", f"{url}/{quote(name)}").body == name.encode()
    (setup.mnt / d[1:] / "from mount é").write_bytes(b"m")
    listing = curl("PROPFIND", url, headers={"Depth": "1"})
    assert quote("from mount é") in listing.text or "from mount é" in listing.text
    assert curl("MOVE", f"{url}/{quote('日本語')}", headers={"Destination": f"{url}/{quote('移動.txt')}"}).status == 201
    assert (setup.mnt / d[1:] / "移動.txt").read_bytes() == "日本語".encode()

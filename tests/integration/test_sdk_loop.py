"""The sync SDK's loop, driven by its callers (ADR 0058) or by its background thread, with a real client: a
blocking flock in one thread while other threads work, heartbeats while the caller's thread sleeps, and many
threads creating files at once."""

from __future__ import annotations

import fcntl
import json
import threading
import time
from pathlib import Path

import pytest

import jfs
from jfs.sdk import loop as loop_mod
from jfs.testing.mounts import format_volume
from jfs.testing.mounts import jfs as jfs_cli


@pytest.fixture(autouse=True, params=["drive", "thread"])
def loop_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of running the client's loop (``JFS_SDK_LOOP``)."""
    monkeypatch.setattr(loop_mod, "_DRIVE", request.param == "drive")
    return str(request.param)


def _volume(tmp_path: Path) -> str:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"))
    return url


def test_a_blocking_flock_in_one_thread_while_others_work(tmp_path: Path) -> None:
    with jfs.Client(_volume(tmp_path), cache_dir=None) as fs:
        fs.write_bytes("/lock", b"")
        holder = fs.open("/lock", "rb")
        holder.flock(fcntl.LOCK_EX)
        got: list[float] = []

        def wait_for_lock() -> None:
            with fs.open("/lock", "rb") as f:
                f.flock(fcntl.LOCK_EX)  # blocks: this thread drives the loop while it waits
                got.append(time.monotonic())
                f.flock(fcntl.LOCK_UN)

        waiter = threading.Thread(target=wait_for_lock)
        waiter.start()
        time.sleep(0.3)
        for i in range(30):  # other work goes on meanwhile (handed to the waiting thread's loop)
            fs.write_bytes(f"/w{i}", b"%d" % i)
            assert fs.read_bytes(f"/w{i}") == b"%d" % i
        assert not got and waiter.is_alive()
        released = time.monotonic()
        holder.flock(fcntl.LOCK_UN)
        waiter.join(30)
        assert got and got[0] >= released
        holder.close()


def _expire(url: str) -> int:
    (session,) = json.loads(jfs_cli("status", url, "--json").stdout)["Sessions"]
    return int(session["Expire"])


def test_heartbeats_go_on_while_the_caller_sleeps(tmp_path: Path) -> None:
    url = _volume(tmp_path)
    with jfs.Client(url, cache_dir=None, heartbeat=1) as fs:
        fs.write_bytes("/x", b"x")
        first = _expire(url)
        time.sleep(3.5)  # no call: the background thread drives the loop, and the heartbeats
        assert _expire(url) >= first + 2


def test_many_threads_create_files_at_once(tmp_path: Path) -> None:
    with jfs.Client(_volume(tmp_path), cache_dir=None) as fs:
        def work(t: int) -> None:
            fs.mkdir(f"/t{t}")
            for i in range(40):
                with fs.open(f"/t{t}/f{i}", "wb") as f:
                    f.write(b"%d-%d" % (t, i))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        assert not any(th.is_alive() for th in threads)
        for t in range(6):
            assert sorted(fs.listdir(f"/t{t}")) == sorted(f"f{i}" for i in range(40))
            assert fs.read_bytes(f"/t{t}/f39") == b"%d-39" % t

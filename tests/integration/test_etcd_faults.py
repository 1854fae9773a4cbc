"""Faults of a 3-member etcd cluster under a running workload through a jfs mount.

Each test starts its own cluster (members are killed), formats a volume, mounts it and runs a writer that
creates, appends to and renames files, recording each operation once it returned. Mid-run a fault is
injected (leader killed, follower killed, leader frozen as if partitioned, whole cluster restarted, the
leader or a follower cut off the network); the writer must see no error (operations pause while the cluster recovers,
then continue), every acknowledged operation must be readable afterwards, and `jfs fsck` must be clean.
Needs `etcd`.

The network partition runs in a private network namespace (``unshare --net``: the test re-runs itself
there, so the host's network is never touched): two members listen on one end of a veth pair, the third
member runs in a network namespace of its own on the other end, and setting the link down cuts it off
— both directions, the process alive and unaware — until the link comes back up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jfs.testing.etcd_cluster import EtcdCluster, EtcdError, start_etcd_cluster
from jfs.testing.mounts import format_volume, jfs, mounted


@pytest.fixture
def cluster() -> Iterator[EtcdCluster]:
    try:
        c = start_etcd_cluster(3)
    except EtcdError as exc:
        pytest.skip(str(exc))
    try:
        yield c
    finally:
        c.stop()


class Writer(threading.Thread):
    """Creates ``f<i>`` (content ``i``), appends to ``log`` and renames ``t<i>`` → ``r<i>`` until stopped."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.done = 0
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.halt.is_set() and i < 5000:
            t0 = time.monotonic()
            try:
                (self.root / f"f{i}").write_text(f"{i}\n")
                with open(self.root / "log", "a") as f:
                    f.write(f"{i}\n")
                (self.root / f"t{i}").write_text("t")
                os.rename(self.root / f"t{i}", self.root / f"r{i}")
            except OSError as exc:
                self.errors.append(f"op {i}: {exc}")
                return
            self.latencies.append(time.monotonic() - t0)
            i += 1
            self.done = i


def run_with_fault(cluster: EtcdCluster, tmp_path: Path, fault: Callable[[], None]) -> Writer:
    url = cluster.url("faults")
    format_volume(url, str(tmp_path / "bucket"), "faults")
    with mounted(url, tmp_path / "mnt") as m:
        writer = Writer(m)
        writer.start()
        try:
            deadline = time.monotonic() + 20
            while writer.done < 20 and writer.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            before = writer.done
            fault()
            deadline = time.monotonic() + 40
            while writer.done < before + 30 and writer.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            writer.halt.set()
            writer.join(60)
        assert not writer.errors, writer.errors
        assert writer.done >= before + 30, f"writer stalled after the fault: {before} → {writer.done}"
        n = writer.done
        for i in range(n):
            assert (m / f"f{i}").read_text() == f"{i}\n"
            assert (m / f"r{i}").read_text() == "t"
            assert not (m / f"t{i}").exists()
        assert (m / "log").read_text().split() == [str(i) for i in range(n)]
    res = jfs("fsck", url, check=False)
    assert res.returncode == 0 and "no problems found" in res.stdout, res.stdout + res.stderr
    return writer


def test_leader_killed_under_load(cluster: EtcdCluster, tmp_path: Path) -> None:
    def fault() -> None:
        leader = cluster.leader()
        cluster.kill(leader)
        cluster.leader()  # a new one is elected among the two left
        cluster.start_member(leader)

    writer = run_with_fault(cluster, tmp_path, fault)
    assert max(writer.latencies) < 30


def test_follower_stopped_under_load(cluster: EtcdCluster, tmp_path: Path) -> None:
    def fault() -> None:
        leader = cluster.leader()
        follower = next(i for i in range(3) if i != leader)
        cluster.kill(follower)

    run_with_fault(cluster, tmp_path, fault)


def test_whole_cluster_restarted_under_load(cluster: EtcdCluster, tmp_path: Path) -> None:
    def fault() -> None:
        for i in range(3):
            cluster.kill(i)
        time.sleep(1)
        for i in range(3):
            cluster.start_member(i)
        cluster.wait_healthy()

    run_with_fault(cluster, tmp_path, fault)


def test_leader_frozen_under_load(cluster: EtcdCluster, tmp_path: Path) -> None:
    """A member that stops answering without closing its connections (a partition, seen from a client)."""

    def fault() -> None:
        leader = cluster.leader()
        cluster.freeze(leader)
        try:
            cluster.leader()
            time.sleep(3)
        finally:
            cluster.thaw(leader)

    run_with_fault(cluster, tmp_path, fault)


IN_NETNS = "JFS_ETCD_NETNS"
NEAR, FAR = "10.99.0.1", "10.99.0.2"


def _ip(*args: str, ns: int | None = None) -> None:
    prefix = ["nsenter", f"--net=/proc/{ns}/ns/net"] if ns is not None else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def split_cluster() -> Iterator[tuple[EtcdCluster, Callable[[bool], None]]]:
    """(Inside a private network namespace.) A 3-member cluster whose member 2 sits in a namespace of its
    own behind a veth pair; yields the cluster and `link(up)`, which connects or cuts member 2 off."""
    _ip("link", "set", "lo", "up")
    holder = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline, "unshare did not create a network namespace"
            time.sleep(0.02)
        _ip("link", "add", "vnear", "type", "veth", "peer", "name", "vfar", "netns", str(holder.pid))
        _ip("addr", "add", f"{NEAR}/24", "dev", "vnear")
        _ip("link", "set", "vnear", "up")
        _ip("link", "set", "lo", "up", ns=holder.pid)
        _ip("addr", "add", f"{FAR}/24", "dev", "vfar", ns=holder.pid)
        _ip("link", "set", "vfar", "up", ns=holder.pid)
        cluster = start_etcd_cluster(
            3, hosts=(NEAR, NEAR, FAR), launchers=((), (), ("nsenter", f"--net=/proc/{holder.pid}/ns/net"))
        )
        try:
            yield cluster, lambda up: _ip("link", "set", "vnear", "up" if up else "down")
        finally:
            cluster.stop()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_member_partitioned_under_load(role: str, tmp_path: Path) -> None:
    """One member cut off the network (not stopped), the leader or a follower: without it the two others
    go on (electing a new leader if needed), the mount's requests to it hang and fail over to them; it
    rejoins when the link is back."""
    if os.environ.get(IN_NETNS) != "1":
        if shutil.which("unshare") is None or shutil.which("nsenter") is None or shutil.which("ip") is None:
            pytest.skip("needs unshare, nsenter and ip (util-linux, iproute2)")
        if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
            pytest.skip("cannot create network namespaces here")
        res = subprocess.run(
            ["unshare", "--net", sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
             f"{__file__}::test_member_partitioned_under_load[{role}]", "--basetemp", str(tmp_path / "inner")],
            env={**os.environ, IN_NETNS: "1"}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert res.returncode == 0 and "1 passed" in res.stdout, (res.stdout + res.stderr)[-5000:]
        return
    try:
        ctx = split_cluster()
        cluster, link = ctx.__enter__()
    except (EtcdError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot build the split cluster: {exc}")
    try:
        cluster.move_leader(2 if role == "leader" else 0)

        def fault() -> None:
            assert (cluster.leader() == 2) == (role == "leader")
            link(False)
            try:
                deadline = time.monotonic() + 15
                while cluster.leader() == 2:  # member 2 is unreachable: a leader among 0 and 1
                    assert time.monotonic() < deadline, "no new leader behind the partition"
                time.sleep(3)
            finally:
                link(True)

        writer = run_with_fault(cluster, tmp_path, fault)
        assert max(writer.latencies) < 30
        cluster.wait_healthy()
    finally:
        ctx.__exit__(None, None, None)

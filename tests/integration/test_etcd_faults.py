"""Faults of a 3-member etcd cluster under a running workload through a jfs mount.

Each test starts its own cluster (members are killed), formats a volume, mounts it and runs a writer that
creates, appends to and renames files, recording each operation once it returned. Mid-run a fault is
injected (leader killed, follower killed, leader frozen as if partitioned, whole cluster restarted); the writer must see no error (operations pause while the cluster recovers, then continue), every
acknowledged operation must be readable afterwards, and `jfs fsck` must be clean. Needs `etcd`.
"""

from __future__ import annotations

import os
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

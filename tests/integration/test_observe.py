"""Observing a real mount: its Prometheus endpoint (`--metrics`), `jfs stats`, `jfs profile`, `jfs debug`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jfs.testing.mounts import format_volume, jfs, mounted


@pytest.fixture(scope="module")
def taken_port() -> Iterator[int]:
    """A port some other program listens on: the mount must move to the next free one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture(scope="module")
def mount(taken_port: int) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="jfs-observe-"))
    try:
        url = f"sqlite3://{base}/meta.db"
        format_volume(url, str(base / "bucket"), "obs-vol")
        with mounted(url, base / "mnt", "--metrics", f"127.0.0.1:{taken_port}") as mnt:
            yield mnt
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _scrape(mnt: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    addr = json.loads((mnt / ".config").read_text())["Mount"]["Metrics"]
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    hits = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert hits, f"{name}{labels} not exported"
    return sum(hits)


def test_metrics_endpoint_serves_juicefs_names_that_follow_activity(mount: Path, taken_port: int) -> None:
    addr = json.loads((mount / ".config").read_text())["Mount"]["Metrics"]
    host, port = addr.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > taken_port  # the taken port was skipped
    before = _scrape(mount)
    labels = {("vol_name", "obs-vol"), ("mp", str(mount))}
    uptime = [ls for (n, ls) in before if n == "juicefs_uptime"]
    assert uptime and labels <= uptime[0]

    data = os.urandom(3 << 20)
    (mount / "f").write_bytes(data)
    os.mkdir(mount / "d")
    assert (mount / "f").read_bytes() == data
    after = _scrape(mount)

    mkdirs = _value(after, "juicefs_fuse_ops_total", method="mkdir") - before.get(
        ("juicefs_fuse_ops_total", frozenset({("method", "mkdir"), *labels})), 0)
    assert mkdirs == 1
    assert _value(after, "juicefs_fuse_ops_durations_histogram_seconds_count", method="mkdir") == \
        _value(after, "juicefs_fuse_ops_total", method="mkdir")
    assert _value(after, "juicefs_fuse_ops_durations_histogram_seconds_bucket", method="mkdir", le="+Inf") >= 1
    assert _value(after, "juicefs_object_request_data_bytes", method="PUT") - \
        _value(before, "juicefs_object_request_data_bytes", method="PUT") >= len(data)
    assert _value(after, "juicefs_object_request_durations_histogram_seconds_count", method="PUT") > \
        _value(before, "juicefs_object_request_durations_histogram_seconds_count", method="PUT")
    assert _value(after, "juicefs_transaction_durations_histogram_seconds_count") > \
        _value(before, "juicefs_transaction_durations_histogram_seconds_count")
    assert _value(after, "juicefs_used_space") >= _value(before, "juicefs_used_space") + len(data)
    assert _value(after, "juicefs_used_inodes") == _value(before, "juicefs_used_inodes") + 2
    assert _value(after, "juicefs_blockcache_hits") + _value(after, "juicefs_memcache_hits") > 0 or \
        _value(after, "juicefs_blockcache_miss") > 0
    assert _value(after, "juicefs_uptime") > _value(before, "juicefs_uptime")
    assert _value(after, "process_resident_memory_bytes") > 0
    assert _value(after, "juicefs_transaction_restart") >= 0


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), "quiet-vol")
    with mounted(url, tmp_path / "mnt", "--metrics", "off") as mnt:
        assert "Metrics" not in json.loads((mnt / ".config").read_text())["Mount"]
    bad = jfs("mount", url, str(tmp_path / "mnt"), "--metrics", "localhost:port", check=False)
    assert bad.returncode == 1 and "bad metrics address" in bad.stderr

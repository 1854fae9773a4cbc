"""Observing a real mount: its Prometheus endpoint (`--metrics`), `jfs stats`, `jfs profile`, `jfs debug`."""

from __future__ import annotations

import json
import os
import socket
import tarfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jfs.testing.juicefs import needs_juicefs, run_juicefs
from jfs.testing.mounts import format_volume, jfs, mounted, reachable_dir


@pytest.fixture(scope="module")
def taken_port() -> Iterator[int]:
    """A port some other program listens on: the mount must move to the next free one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture(scope="module")
def mount(taken_port: int) -> Iterator[Path]:
    with reachable_dir("jfs-observe-") as base:
        url = f"sqlite3://{base}/meta.db"
        format_volume(url, str(base / "bucket"), "obs-vol")
        with mounted(url, base / "mnt", "--metrics", f"127.0.0.1:{taken_port}") as mnt:
            yield mnt


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


@pytest.fixture
def busy(mount: Path) -> Iterator[Path]:
    """Writes and reads in the mount on a thread while the test runs."""
    stop = threading.Event()
    (mount / "busy").mkdir(exist_ok=True)

    def work() -> None:
        i = 0
        while not stop.is_set():
            (mount / "busy" / f"f{i % 4}").write_bytes(os.urandom(64 << 10))
            (mount / "busy" / f"f{i % 4}").read_bytes()
            i += 1
            time.sleep(0.01)

    t = threading.Thread(target=work)
    t.start()
    try:
        yield mount
    finally:
        stop.set()
        t.join()


def test_stats_prints_one_line_of_rates_per_interval(busy: Path) -> None:
    r = jfs("stats", str(busy), "--interval", "0.5", "--count", "3", "--schema", "fmo")
    lines = r.stdout.splitlines()
    assert len(lines) == 4, r.stdout
    assert lines[0].split() == ["fuse.ops", "fuse.lat", "meta.ops", "meta.lat", "object.get", "object.get_B",
                                "object.put", "object.put_B"]
    for line in lines[1:]:
        cols = line.split()
        assert len(cols) == 8
        assert float(cols[0].rstrip("KMGT")) > 0  # operations per second while the writer runs
        assert cols[6] != "0"  # PUTs per second
    wide = jfs("stats", str(busy), "--interval", "0.3", "--count", "1", "--schema", "tfo", "-l", "1")
    head, row = (line.split() for line in wide.stdout.splitlines())
    assert head == ["time.now", "fuse.ops", "fuse.lat", "fuse.read", "fuse.write", "object.get", "object.get_B",
                    "object.put", "object.put_B", "object.del", "object.errors"]
    assert len(row) == len(head)
    bad = jfs("stats", "/proc", "--count", "1", check=False)
    assert bad.returncode == 1 and "not on a jfs mount" in bad.stderr


@pytest.fixture(scope="module")
def default_mount() -> Iterator[Path]:
    """A volume formatted with the defaults (the trash on), mounted."""
    with reachable_dir("jfs-observe-trash-") as base:
        url = f"sqlite3://{base}/meta.db"
        jfs("format", url, "obs-trash", "--bucket", str(base / "bucket"))
        with mounted(url, base / "mnt") as mnt:
            yield mnt


@needs_juicefs
@pytest.mark.parametrize("volume", ["mount", "default_mount"])
def test_juicefs_bench_reads_the_layer_rows_of_a_jfs_mount(
    volume: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JuiceFS's own ``bench`` sums its "FUSE operation / Update meta / Put object" rows from ``.stats``
    under JuiceFS's flat names: a jfs mount serves them (trash off and on), so the rows are not zero."""
    mount: Path = request.getfixturevalue(volume)
    monkeypatch.setenv("SKIP_DROP_CACHES", "true")  # the bench's cache drops are not under test
    out = run_juicefs("bench", str(mount), "--big-file-size", "8M", "--small-file-count", "10").stdout
    rows = {cells[0]: cells[1] for line in out.splitlines()
            if len(cells := [c.strip() for c in line.strip("|").split("|")]) == 3}
    for item in ("FUSE operation", "Update meta", "Put object"):
        assert int(rows[item].split()[0]) > 0, out
    assert "Time used:" in out and "Memory: 0.0 MiB" not in out
    flat = {name: float(v) for name, _, v in (line.rpartition(" ") for line in (mount / ".stats").read_text().splitlines())}
    assert flat["juicefs_fuse_written_size_bytes_sum"] >= (8 << 20) + 10 * (128 << 10)  # the bench's writes
    assert flat["juicefs_fuse_read_size_bytes_sum"] >= 8 << 20


def test_profile_aggregates_the_live_access_log_and_a_saved_one(busy: Path, tmp_path: Path) -> None:
    r = jfs("profile", str(busy), "--interval", "1", "--count", "1")
    rows = {line.split("│")[1].strip(): line for line in r.stdout.splitlines() if line.count("│") > 3}
    assert {"open", "flush"} <= set(rows), r.stdout

    saved = tmp_path / "access.log"
    saved.write_text(
        "2024.01.02 10:00:00.000001 [uid:0,gid:0,pid:11] lookup (1,a) - OK <0.001000>\n"
        "2024.01.02 10:00:00.000002 [uid:1000,gid:1000,pid:22] mkdir (1,d,755) - File exists <0.003000>\n"
        "2024.01.02 10:00:00.000003 [uid:1000,gid:1000,pid:22] lookup (1,b) - OK <0.002000>\n"
        "not a log line\n")
    r = jfs("profile", str(saved), "--group-by", "pid")
    table = {cols[0]: cols[1:] for line in r.stdout.splitlines()
             if (cols := [c.strip() for c in line.split("│")[1:-1]]) and cols[0].isdigit()}
    assert table == {"22": ["2", "0.005", "2.500", "1"], "11": ["1", "0.001", "1.000", "0"]}, r.stdout
    r = jfs("profile", str(saved), "--uid", "0")
    assert "1 operations" in r.stdout and "mkdir" not in r.stdout


def test_debug_packs_versions_settings_stats_and_access_log(busy: Path, tmp_path: Path) -> None:
    r = jfs("debug", str(busy), "--out-dir", str(tmp_path), "--stats-sec", "0.5", "--profile-sec", "1")
    archive = Path(r.stdout.strip())
    assert archive.parent == tmp_path and archive.name.startswith("jfs-debug-obs-vol-")
    with tarfile.open(archive) as tar:
        members = {Path(m.name).name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert {"environment.json", "config.json", "stats.0.txt", "stats.0.5s.txt", "accesslog.txt"} <= set(members)
    env = json.loads(members["environment.json"])
    assert env["jfs"] and env["mountpoint"] == str(busy) and "fuse.jfs" in env["mountinfo"]
    assert json.loads(members["config.json"])["Format"]["Name"] == "obs-vol"
    assert b"jfs_fuse_ops_total" in members["stats.0.txt"]
    assert b"[uid:" in members["accesslog.txt"]


def _scrape_addr(addr: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_sdk_client_serves_metrics_only_when_asked(tmp_path: Path) -> None:
    from jfs.sdk import Client
    from jfs.testing.servers import free_port

    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), "sdk-vol")
    with Client(url, cache_dir=None) as quiet:
        assert "Metrics" not in json.loads(quiet.read_bytes("/.config"))["Mount"]
    port = free_port()
    with Client(url, cache_dir=None, metrics=f"127.0.0.1:{port}") as client:
        addr = json.loads(client.read_bytes("/.config"))["Mount"]["Metrics"]
        assert addr == f"127.0.0.1:{port}"
        before = _scrape_addr(addr)
        data = os.urandom(1 << 20)
        client.write_bytes("/f", data)
        after = _scrape_addr(addr)
        assert any(n == "juicefs_uptime" and ("vol_name", "sdk-vol") in ls for n, ls in after)
        assert _value(after, "juicefs_object_request_data_bytes", method="PUT") - \
            _value(before, "juicefs_object_request_data_bytes", method="PUT") >= len(data)
    with pytest.raises(OSError):  # closed with the client
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_webdav_server_serves_metrics(tmp_path: Path) -> None:
    from jfs.testing.servers import free_port
    from jfs.testing.webdav import curl, webdav_server

    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), "dav-vol")
    port = free_port()
    with webdav_server(url, tmp_path / "dav", "--metrics", f"127.0.0.1:{port}") as dav:
        assert curl("PUT", f"{dav.url}/hello.txt", data=b"x" * 5000).status == 201
        samples = _scrape_addr(f"127.0.0.1:{port}")
        labels = {("vol_name", "dav-vol"), ("mp", f"webdav:127.0.0.1:{dav.port}")}
        assert any(n == "juicefs_uptime" and labels <= ls for n, ls in samples)
        assert _value(samples, "juicefs_used_inodes") >= 1
        assert _value(samples, "process_resident_memory_bytes") > 0


def test_gateway_serves_metrics(tmp_path: Path) -> None:
    from jfs.testing.gateways import gateway
    from jfs.testing.servers import free_port

    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), "gw-vol")
    port = free_port()
    with gateway(url, tmp_path / "gw", "--metrics", f"127.0.0.1:{port}") as gw:
        s3: Any = gw.client()
        s3.put_object(Bucket="gw-vol", Key="k", Body=b"y" * 70000)
        samples = _scrape_addr(f"127.0.0.1:{port}")
        labels = {("vol_name", "gw-vol"), ("mp", f"s3gateway:127.0.0.1:{gw.port}")}
        assert any(n == "juicefs_uptime" and labels <= ls for n, ls in samples)
        assert _value(samples, "juicefs_used_inodes") >= 1
        assert _value(samples, "juicefs_object_request_data_bytes", method="PUT") >= 70000
    with pytest.raises(OSError):  # stopped with the gateway
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

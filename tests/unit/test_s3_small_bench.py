"""`bench/s3_small_ab.py`'s reading of either mount's ``.stats`` (jfs's labelled names, JuiceFS's flat ones)
and the FLUSH − PUT figure; `bench/s3_request_log.py`'s proxy counting requests and bytes each way."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import s3_request_log, s3_small_ab  # noqa: E402


def test_juicefs_flat_stats_read_under_the_jfs_keys(tmp_path: Path) -> None:
    (tmp_path / ".stats").write_text(
        "juicefs_object_request_errors 0\n"
        "juicefs_object_request_durations_histogram_seconds_PUT_total 58\n"
        "juicefs_object_request_durations_histogram_seconds_PUT_sum 0.58\n"
        "juicefs_object_request_durations_histogram_seconds_DELETE_total 3\n"
        "juicefs_transaction_durations_histogram_seconds_total 267\n"
        "juicefs_transaction_durations_histogram_seconds_sum 0.267\n"
        "juicefs_fuse_ops_total_flush 58\n"
        "juicefs_fuse_ops_durations_seconds_flush 0.87\n"
    )
    c = s3_small_ab._jfs_counters(tmp_path)
    assert (c["PUT"], c["PUT_s"], c["DELETE"], c["txn"], c["txn_s"]) == (58, 0.58, 3, 267, 0.267)
    assert (c["flush"], c["flush_s"]) == (58, 0.87)
    assert s3_small_ab._mean_ms({"PUT": 8, "PUT_s": 0.5}, c, "PUT") == pytest.approx(1.6)  # 0.08 s / 50 PUTs


def test_jfs_stats_and_the_flush_minus_put_gap(tmp_path: Path) -> None:
    (tmp_path / ".stats").write_text(
        'jfs_object_request_durations_histogram_seconds_count{method="PUT"} 10\n'
        'jfs_object_request_durations_histogram_seconds_sum{method="PUT"} 0.1\n'
        'jfs_fuse_ops_total{method="flush"} 10\n'
        'jfs_fuse_ops_durations_seconds_sum{method="flush"} 0.13\n'
    )
    c = s3_small_ab._jfs_counters(tmp_path)
    assert (c["PUT"], c["flush"], c["flush_s"]) == (10, 10, 0.13)
    assert s3_small_ab._mean_ms({}, c, "txn") != s3_small_ab._mean_ms({}, c, "txn")  # none: NaN
    rounds = [{"ops": {"flush": 13_000.0}, "put_ms": 10.0}, {"ops": {"flush": 15_000.0}, "put_ms": 11.0}]
    assert s3_small_ab._gap(rounds) == "3.5 (3.0–4.0)"


def test_logging_proxy_counts_requests_and_bytes(tmp_path: Path) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            got = b""
            while got.count(b"\r\n\r\n") < 2 or not got.endswith(b"xyz"):
                got += conn.recv(65536)
            conn.sendall(answer * 2)

    threading.Thread(target=serve, daemon=True).start()
    proxy = s3_request_log.LoggingProxy(srv.getsockname()[1], tmp_path / "log")
    try:
        with socket.create_connection(("127.0.0.1", proxy.port)) as c:
            c.sendall(b"PUT /b/chunks/0/0/1_0_3 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
            time.sleep(0.2)  # the second request in a segment of its own, as a client's next request
            c.sendall(b"PUT /b/chunks/0/0/2_0_3 HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz")
            received = b""
            while len(received) < 2 * len(answer):
                received += c.recv(65536)
        time.sleep(0.1)
        snap = proxy.snapshot()
    finally:
        proxy.stop()
        srv.close()
    assert snap["PUT"] == 2
    assert snap["bytes down"] == 2 * len(answer)
    assert snap["bytes up"] == 2 * len(b"PUT /b/chunks/0/0/1_0_3 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")

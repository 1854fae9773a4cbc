"""Sizes with units on the command line (`jfs.cli.units`), as JuiceFS takes them."""

from __future__ import annotations

import pytest

from jfs.cli.units import format_size, parse_duration, parse_size

GiB = 1 << 30
MiB = 1 << 20


@pytest.mark.parametrize(("text", "expected"), [
    ("10G", 10 * GiB), ("10g", 10 * GiB), ("10GiB", 10 * GiB), ("10GB", 10 * GiB), ("300M", 300 * MiB),
    ("1.5T", 3 << 39), ("512K", 512 << 10), ("4096B", 4096), ("0", 0), (" 2M ", 2 * MiB),
    ("10240", 10240 * MiB),  # a plain number keeps the option's unit (MiB, as JuiceFS's --cache-size)
    ("1E", 1 << 60), ("1P", 1 << 50),
])
def test_sizes_parse_with_binary_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_a_plain_number_takes_the_default_unit() -> None:
    assert parse_size("7", default_unit="K") == 7 << 10
    assert parse_size("7", default_unit="B") == 7
    assert parse_size("7G", default_unit="K") == 7 * GiB


@pytest.mark.parametrize("text", ["", "G", "-1G", "10X", "ten", "1..2M", "10 G B", "1G2"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


def test_sizes_remember_how_they_were_written_and_format_back() -> None:
    assert parse_size("10G").text == "10G"
    assert format_size(100 * GiB) == "100G" and format_size(300 * MiB) == "300M" and format_size(123) == "123B"
    assert parse_size(format_size(1536 * MiB)) == 1536 * MiB


def test_mount_help_and_options_take_units() -> None:
    from typer.testing import CliRunner

    from jfs.cli.main import app

    runner = CliRunner()
    bad = runner.invoke(app, ["mount", "sqlite3:///nonexistent.db", "/tmp/x", "--cache-size", "10Q"])
    assert bad.exit_code == 2 and "is not a size" in bad.output


@pytest.mark.parametrize(("text", "seconds"), [
    ("12s", 12.0), ("12", 12.0), ("1h", 3600.0), ("1h30m", 5400.0), ("500ms", 0.5), ("0", 0.0), ("2.5m", 150.0),
    ("1d", 86400.0), ("1H", 3600.0),
])
def test_durations_parse_as_go_writes_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "-1s", "1h 2m", "1.2.3s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_stats_rows_match_their_header_at_every_verbosity() -> None:
    from jfs.cli.observe_cmd import SECTIONS, columns, stats_row

    prev = {'jfs_fuse_ops_total{method="read"}': 10, 'jfs_fuse_ops_total{method="write"}': 0,
            "jfs_transaction_durations_histogram_seconds_count": 4, "jfs_transaction_durations_histogram_seconds_sum": 0.004,
            'jfs_object_request_durations_histogram_seconds_count{method="DELETE"}': 1, "jfs_blockcache_write_bytes": 0}
    cur = {'jfs_fuse_ops_total{method="read"}': 30, 'jfs_fuse_ops_total{method="write"}': 5,
           "jfs_transaction_durations_histogram_seconds_count": 14, "jfs_transaction_durations_histogram_seconds_sum": 0.024,
           'jfs_object_request_durations_histogram_seconds_count{method="DELETE"}': 3, "jfs_blockcache_write_bytes": 2048}
    schema = "".join(SECTIONS)
    for verbosity in (0, 1):
        head = columns(schema, verbosity)
        row = stats_row(prev, cur, 2.0, schema, verbosity)
        assert len(row) == len(head)
    row = dict(zip(columns(schema, 1), stats_row(prev, cur, 2.0, schema, 1), strict=True))
    assert row["fuse.read"] == "10" and row["fuse.write"] == "2"  # 20 and 5 in 2 s (rounded)
    assert row["meta.txn"] == "5" and row["meta.txn_lat"] == "2.00"
    assert row["object.del"] == "1" and row["blockcache.write_B"] == "1.0K"
    assert len(row["time.now"]) == 8

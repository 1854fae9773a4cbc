"""`bench/bigdir_ab.py`'s bookkeeping: the FUSE request counts and handler seconds it reads from a jfs
mount's ``.stats`` (and nothing from a JuiceFS mount), and the work split that must cover every item once."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import bigdir_ab  # noqa: E402


def test_fuse_ops_reads_counts_and_handler_seconds(tmp_path: Path) -> None:
    (tmp_path / ".stats").write_text(
        'jfs_fuse_ops_total{method="lookup"} 12\n'
        'jfs_fuse_ops_durations_seconds_sum{method="lookup"} 0.003000\n'
        'jfs_fuse_ops_errors_total{method="lookup"} 5\n'
        'jfs_fuse_ops_total{method="create"} 7\n'
        'jfs_fuse_ops_durations_seconds_sum{method="create"} 0.002100\n'
        'jfs_meta_ops_total 99\n'
    )
    assert bigdir_ab._fuse_ops(tmp_path) == {"lookup": 12.0, "lookup s": 0.003, "create": 7.0, "create s": 0.0021}


def test_fuse_ops_is_empty_without_stats(tmp_path: Path) -> None:
    assert bigdir_ab._fuse_ops(tmp_path / "juicefs-mount") == {}


def test_split_covers_every_item_once_in_order() -> None:
    items = list(range(10_001))
    parts = bigdir_ab._split(items, 4)
    assert [x for p in parts for x in p] == items
    assert len(parts) <= 16 and all(parts)
    assert bigdir_ab._split([1], 4) == [[1]]

"""`bench/compare.py --rounds`: how rounds combine into a row, the table and header they print, the round order
and directories, and the command-line checks -- all without mounts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from comparison.backends import round_order, round_root  # noqa: E402  (bench/ is not a package on the path)
from comparison.cli import has_errors, parse_args, with_notes  # noqa: E402
from comparison.harness import CPU_SECONDS, CPU_WORK, QUICK, Item, items_of  # noqa: E402
from comparison.report import NOTES_MARKER, _fmt, backend_table, rounds_note  # noqa: E402
from comparison.rounds import combine, per_round_ratios  # noqa: E402

STAT = Item("bench.stat", "juicefs bench: stat (files/s)")
RSS = Item("rss.peak", "peak RSS over all workloads (MiB)", higher_is_better=False, kind="max", long=True)
CPU = Item("ls.cpu_list", "CPU s per 10k entries", higher_is_better=False, kind="cpu")


def rounds_of(key: str, pairs: list[tuple[object, object]]) -> list[dict[str, dict[str, object]]]:
    return [{"jfs": {key: a}, "JuiceFS": {key: b}} for a, b in pairs]


def test_median_row_takes_each_systems_median_and_the_median_of_paired_ratios() -> None:
    # the figures of the issue: the stat row swinging between quiet runs
    rounds = rounds_of("bench.stat", [(5160.0, 9808.0), (7700.0, 10000.0), (11200.0, 10000.0)])
    row = combine(rounds, STAT)
    assert row.values == {"jfs": 7700.0, "JuiceFS": 10000.0}
    assert row.ratio == pytest.approx(0.77)  # median of 0.526, 0.77, 1.12
    assert row.spread == (pytest.approx(5160 / 9808), pytest.approx(1.12))
    assert row.pairs == 3


def test_median_of_ratios_differs_from_ratio_of_medians_and_is_the_one_reported() -> None:
    # a slow round slows both: pairing cancels it, the medians of each column do not
    rounds = rounds_of("bench.stat", [(100.0, 50.0), (20.0, 10.0), (300.0, 400.0)])
    row = combine(rounds, STAT)
    assert row.values == {"jfs": 100.0, "JuiceFS": 50.0}  # 100/50 = 2.0
    assert row.ratio == pytest.approx(2.0)  # median of 2.0, 2.0, 0.75
    rounds[1] = {"jfs": {"bench.stat": 20.0}, "JuiceFS": {"bench.stat": 40.0}}
    assert combine(rounds, STAT).ratio == pytest.approx(0.75)  # median of 2.0, 0.5, 0.75; columns: 100 / 50


def test_even_rounds_median_averages_the_middle_two() -> None:
    row = combine(rounds_of("bench.stat", [(1.0, 1.0), (3.0, 1.0)]), STAT)
    assert row.values["jfs"] == pytest.approx(2.0)
    assert row.ratio == pytest.approx(2.0)


def test_rss_row_is_the_maximum_and_its_ratio_that_of_the_maxima() -> None:
    row = combine(rounds_of("rss.peak", [(400.0, 500.0), (450.0, 480.0)]), RSS)
    assert row.values == {"jfs": 450.0, "JuiceFS": 500.0}
    assert row.ratio == pytest.approx(0.9)
    assert row.spread == (pytest.approx(0.8), pytest.approx(450 / 480))


def test_cpu_row_sums_the_counters_not_the_rounded_per_work_values() -> None:
    def rnd(jfs_s: float, juicefs_s: float) -> dict[str, dict[str, object]]:
        return {system: {"ls.cpu_list": s / 2, "ls.cpu_list" + CPU_SECONDS: s, "ls.cpu_list" + CPU_WORK: 2.0}
                for system, s in (("jfs", jfs_s), ("JuiceFS", juicefs_s))}

    # 9 vs 7 ticks, then 8 vs 8, then 10 vs 6: per 10k entries (2 per round) over 6
    row = combine([rnd(0.09, 0.07), rnd(0.08, 0.08), rnd(0.10, 0.06)], CPU)
    assert row.values["jfs"] == pytest.approx(0.27 / 6)
    assert row.values["JuiceFS"] == pytest.approx(0.21 / 6)
    assert row.ratio == pytest.approx(0.27 / 0.21)
    assert row.spread == (pytest.approx(1.0), pytest.approx(0.10 / 0.06))


def test_cpu_row_without_counters_weights_each_round_alike() -> None:
    row = combine(rounds_of("ls.cpu_list", [(0.04, 0.02), (0.06, 0.04)]), CPU)
    assert row.values["jfs"] == pytest.approx(0.05)
    assert row.ratio == pytest.approx(0.05 / 0.03)


def test_a_failed_round_is_left_out_and_listed_with_its_round() -> None:
    rounds = rounds_of("bench.stat", [(10.0, 20.0), ("error: boom", 20.0), (30.0, 20.0)])
    row = combine(rounds, STAT)
    assert row.values["jfs"] == pytest.approx(20.0)
    assert row.ratio == pytest.approx(1.0)  # median of 0.5, 1.5
    assert row.pairs == 2
    assert row.errors == {"jfs": {"error: boom": [2]}}


def test_all_rounds_failed_shows_the_error_and_no_ratio() -> None:
    row = combine(rounds_of("bench.stat", [("error: a", 1.0), ("error: b", 2.0)]), STAT)
    assert row.values["jfs"] == "error: a"
    assert row.ratio is None and row.spread is None


def test_a_row_not_run_in_a_round_counts_only_the_rounds_that_ran_it() -> None:
    rounds = rounds_of("rss.peak", [(400.0, 500.0)]) + [{"jfs": {}, "JuiceFS": {}}]
    row = combine(rounds, RSS)
    assert row.pairs == 1 and row.errors == {}
    assert combine([{"jfs": {}, "JuiceFS": {}}], RSS).values == {"jfs": "not run", "JuiceFS": "not run"}


def test_ratios_skip_a_zero_or_missing_juicefs_value() -> None:
    assert per_round_ratios(rounds_of("k", [(1.0, 0.0), (1.0, "error: x"), (3.0, 2.0)]), "k") == [1.5]


def test_small_values_keep_three_significant_digits() -> None:
    # the redis-file `ls -l` CPU row printed 0.04 | 0.04 | 1.29
    assert _fmt(0.0414) == "0.0414" and _fmt(0.0321) == "0.0321"
    assert _fmt(0.17) == "0.170"
    assert _fmt(0.0) == "0.00"
    assert (_fmt(1.294), _fmt(12.94), _fmt(129.4), _fmt(1294.0)) == ("1.29", "12.9", "129", "1,294")
    assert _fmt("error: x") == "error: x"


def test_one_round_prints_the_four_columns_of_today() -> None:
    lines = backend_table(rounds_of("bench.stat", [(5160.0, 9808.0)]), [STAT])
    assert lines == ["| item | jfs | JuiceFS | jfs/JuiceFS |", "|---|--:|--:|--:|",
                     "| juicefs bench: stat (files/s) ↑ | 5,160 | 9,808 | 0.53 |"]


def test_rounds_add_a_spread_column_and_mark_rows_with_fewer_pairs() -> None:
    rounds = [{"jfs": {"bench.stat": 5160.0, "rss.peak": 400.0, "rss.other": 1.0},
               "JuiceFS": {"bench.stat": 9808.0, "rss.peak": 500.0, "rss.other": 78.0}},
              {"jfs": {"bench.stat": "error: boom"}, "JuiceFS": {"bench.stat": 10000.0, "rss.other": 80.0}},
              {"jfs": {"bench.stat": 11200.0}, "JuiceFS": {"bench.stat": 10000.0}}]
    lines = backend_table(rounds, [STAT, RSS])
    assert lines[0].endswith("| per round: lowest–highest jfs/JuiceFS |")
    assert lines[1] == "|---|--:|--:|--:|--:|"
    assert lines[2] == "| juicefs bench: stat (files/s) ↑ | 8,180 | 10,000 | 0.82 | 0.53–1.12 (2 of 3) |"
    assert lines[3] == "| peak RSS over all workloads (MiB) ↓ | 400 | 500 | 0.80 | 0.80–0.80 (1 of 3) |"
    assert "- jfs: error: boom (juicefs bench: stat (files/s) in round 2)" in lines
    assert any("RSS of 80 MiB" in line for line in lines)  # the largest over rounds


def test_header_line_says_how_rounds_were_run() -> None:
    assert rounds_note(1, 1) == ""
    note = rounds_note(3, 2)
    assert note.startswith("- Rounds: 3 per backend")
    assert "first 2 rounds only" in note and "alternating (round 1: jfs)" in note
    assert "first" not in rounds_note(3, 3).split("alternating")[1]
    assert NOTES_MARKER.startswith("<!-- hand-written notes below")  # the splice marker callers rely on


def test_rounds_alternate_which_system_runs_first() -> None:
    assert [round_order(n)[0] for n in (1, 2, 3, 4)] == ["jfs", "JuiceFS", "jfs", "JuiceFS"]
    assert sorted(round_order(2)) == sorted(round_order(1))


def test_each_round_has_its_own_directory_round_one_as_before(tmp_path: Path) -> None:
    assert round_root(tmp_path, "jfs", 1) == tmp_path / "jfs"
    assert round_root(tmp_path, "JuiceFS", 2) == tmp_path / "juicefs-r2"


def test_long_rows_are_the_big_file_fio_sequential_and_peak_rss_rows() -> None:
    long = {i.key for i in items_of(QUICK) if i.long}
    assert long == {"bench.big_write", "bench.big_read", "bench.cpu_big", "fio.seq_write_1", "fio.seq_read_1",
                    "fio.seq_write_4", "fio.seq_read_4", "fio.cpu_seq", "rss.bench", "rss.peak"}
    kinds = {i.key: i.kind for i in items_of(QUICK)}
    assert {k for k, v in kinds.items() if v == "max"} == {"rss.idle", "rss.bench", "rss.peak"}
    assert all(v == "cpu" for k, v in kinds.items() if ".cpu" in k)


def test_command_line_rounds() -> None:
    args = parse_args(["--backends", "sqlite-file"])
    assert (args.rounds, args.rounds_long) == (1, 1)
    args = parse_args(["--rounds", "3"])
    assert (args.rounds, args.rounds_long) == (3, 3)
    assert parse_args(["--rounds", "3", "--rounds-long", "2"]).rounds_long == 2
    for bad in (["--rounds", "0"], ["--rounds", "2", "--rounds-long", "3"], ["--rounds-long", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_has_errors_looks_into_every_round() -> None:
    assert not has_errors({"sqlite-file": rounds_of("k", [(1.0, 2.0), (1.0, 2.0)])})
    assert has_errors({"sqlite-file": rounds_of("k", [(1.0, 2.0), (1.0, "error: x")])})


def test_a_later_round_on_redis_starts_from_an_empty_database_and_leaves_the_others() -> None:
    import redis
    from comparison.backends import flush_redis_db

    from jfs.testing.servers import RedisServerError, start_redis_server

    try:
        server = start_redis_server()
    except RedisServerError as exc:
        pytest.skip(f"no redis-server: {exc}")
    try:
        first, other = redis.Redis.from_url(f"{server.url}/1"), redis.Redis.from_url(f"{server.url}/3")
        first.set("setting", "previous round's volume")
        other.set("setting", "someone else's")
        flush_redis_db(f"{server.url}/1")
        assert first.dbsize() == 0 and other.get("setting") == b"someone else's"
        first.close()
        other.close()
    finally:
        server.stop()


def test_a_new_report_keeps_the_hand_written_notes_of_the_old_one() -> None:
    old = "# old tables\n| a | 1 |\n\n" + NOTES_MARKER + "\n\n## notes\nkept\n"
    new = with_notes("# new tables\n", old)
    assert new == "# new tables\n\n" + NOTES_MARKER + "\n\n## notes\nkept\n"
    assert with_notes("# new\n", "# no marker\n") == "# new\n"


def test_run_backend_alternates_runs_long_parts_first_and_frees_each_rounds_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import comparison.backends as backends

    calls: list[tuple[str, str, bool]] = []

    def fake_run_system(mount: object, params: object, juicefs: str, label: str, items: object,
                        results: dict[str, object], *, full: bool) -> None:
        root = mount.root  # type: ignore[attr-defined]
        (root / "bucket").mkdir()
        (root / "meta.db").write_text("volume")
        (root / "juicefs.log").write_text("log")
        calls.append((label, root.name, full))
        results["bench.stat"] = 1.0 if mount.system == "jfs" else 2.0  # type: ignore[attr-defined]

    monkeypatch.setattr(backends, "run_system", fake_run_system)
    binaries = {"jfs": "jfs", "JuiceFS": "juicefs"}
    rounds: list[dict[str, dict[str, object]]] = []
    backends.run_backend("sqlite-file", tmp_path, QUICK, binaries, {"jfs": [], "JuiceFS": []}, items_of(QUICK),
                         rounds, count=3, count_long=2)  # type: ignore[arg-type]
    assert calls == [("sqlite-file/jfs/round 1", "jfs", True), ("sqlite-file/JuiceFS/round 1", "juicefs", True),
                     ("sqlite-file/JuiceFS/round 2", "juicefs-r2", True), ("sqlite-file/jfs/round 2", "jfs-r2", True),
                     ("sqlite-file/jfs/round 3", "jfs-r3", False),
                     ("sqlite-file/JuiceFS/round 3", "juicefs-r3", False)]
    assert rounds == [{"jfs": {"bench.stat": 1.0}, "JuiceFS": {"bench.stat": 2.0}}] * 3
    for root in (tmp_path / "sqlite-file").iterdir():
        assert sorted(p.name for p in root.iterdir()) == ["juicefs.log"]  # volume data gone, logs kept

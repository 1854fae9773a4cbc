"""Small-file phases as ``juicefs bench`` runs them, with the CPU seconds the mount spent per 10k files.

    .venv/bin/python bench/small_file_phases.py --files 500 --rounds 3 LABEL=MOUNTPOINT=PID [...]

Each target is a mounted file system (jfs, JuiceFS, another tree's jfs) and the pid of its serving process
(JuiceFS: the child ``juicefs mount`` process). Every round runs each target in turn (alternating on a
shared machine) through: write FILES files of 128 KiB in a fresh directory; drop the kernel's caches;
read each once (open, read to the end, close: the first read after the write, as ``juicefs bench``'s
"Read small file"); drop caches; read them all again (a later read: whatever the mount kept); drop caches;
stat each ("Stat file": one LOOKUP each). Printed: files/s and the mount's CPU seconds per 10k files of
each phase (user + system from ``/proc/PID/stat``, 10 ms ticks: use a few hundred files at least).
Root only (drop_caches).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

SIZE = 128 << 10


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as f:
        f.write("3")


def _read_all(paths: list[str]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            while os.read(fd, 1 << 20):
                pass
        finally:
            os.close(fd)


def _write_all(paths: list[str]) -> None:
    data = os.urandom(SIZE)
    for path in paths:
        with open(path, "wb") as f:
            f.write(data)


def _stat_all(paths: list[str]) -> None:
    for path in paths:
        os.stat(path)


def run_round(mnt: str, pid: int, files: int, tag: str) -> dict[str, tuple[float, float]]:
    """The phases on `mnt`: {phase: (files/s, mount CPU seconds per 10k files)}."""
    d = os.path.join(mnt, f"small-phases-{tag}")
    os.makedirs(d)
    paths = [os.path.join(d, f"f{i}") for i in range(files)]
    phases: list[tuple[str, Callable[[list[str]], None], bool]] = [
        ("write", _write_all, False), ("first read", _read_all, True), ("later read", _read_all, True),
        ("stat", _stat_all, True),
    ]
    out = {}
    for name, phase, drop in phases:
        if drop:
            _drop_caches()
        cpu, start = _cpu(pid), time.perf_counter()
        phase(paths)
        elapsed = time.perf_counter() - start
        out[name] = (files / elapsed, (_cpu(pid) - cpu) * 10_000 / files)
    for path in paths:
        os.unlink(path)
    os.rmdir(d)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="+", help="LABEL=MOUNTPOINT=PID")
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("root only (drop_caches)")
    targets = [(label, mnt, int(pid)) for label, mnt, pid in (t.split("=", 2) for t in args.targets)]
    results: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in range(args.rounds):
        for label, mnt, pid in targets:
            got = run_round(mnt, pid, args.files, f"{os.getpid()}-{r}")
            print(label, {k: (round(a), round(b, 2)) for k, (a, b) in got.items()}, file=sys.stderr, flush=True)
            for phase, value in got.items():
                results.setdefault(phase, {}).setdefault(label, []).append(value)
    labels = [t[0] for t in targets]
    print("| phase | " + " | ".join(f"{x} files/s | {x} CPU s/10k" for x in labels) + " |")
    print("|---|" + "---:|" * (2 * len(labels)))
    for phase, per in results.items():
        cells = []
        for x in labels:
            rates, cpus = [v[0] for v in per[x]], [v[1] for v in per[x]]
            cells.append(f"{statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f})")
            cells.append(f"{statistics.median(cpus):.2f} ({min(cpus):.2f}–{max(cpus):.2f})")
        print(f"| {phase} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""Time to a ready mount and to a clean unmount (ADR 0069): ``format``, ``mount -d`` (until a ``stat`` of
the mount point answers) and ``umount`` of a fresh SQLite + local-directory volume, on jfs trees side by side
and optionally JuiceFS, alternating (the order rotates every round), median of `--rounds` rounds.

Usage:  .venv/bin/python bench/mount_cycle.py [--rounds 7] [--workdir DIR] [--juicefs .venv/bin/juicefs]
        LABEL=TREE [LABEL=TREE ...]

A tree is a directory holding a ``jfs`` package (``git archive <commit> jfs | tar -x -C DIR``; compile it
with ``python -m compileall -q DIR/jfs``). Each command is a fresh ``python`` (this one) with TREE on
``PYTHONPATH`` and a ``sitecustomize`` written into TREE that drops the editable install's finder, so the
background mount's child (``python -m jfs.cli.main``) runs the same tree. Per operation: wall time, and CPU
(user + system) of the command itself (`os.wait4`); for ``mount -d`` also the serving process's CPU when
the mount answered (``/proc/PID/stat`` of every process whose command line names the mount point), and for
``umount`` how many serving processes were still alive when it returned ("left"). Each round writes one
1 MiB file through the mount before unmounting it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

SITECUSTOMIZE = "import sys\nsys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]\n"
RUNNER = "import sys; sys.argv[0] = 'jfs'; from jfs.cli import run; run()"
TICK = os.sysconf("SC_CLK_TCK")


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall s, CPU s) of one command; a failure stops the bench."""
    start = time.perf_counter()
    # cwd "/": ``python -c`` puts the working directory first on sys.path (a checkout's jfs would win)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd="/")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read() if proc.stderr else b""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed: {err.decode(errors='replace')[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def servers(mountpoint: str) -> list[int]:
    """Processes (other than this one) whose command line names `mountpoint`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                args = f.read().replace(b"\0", b" ").split()  # JuiceFS's daemon: one space-separated string
        except OSError:
            continue
        if mountpoint.encode() in args:
            found.append(int(name))
    return found


def cpu_of(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def one_round(label: str, cmd: list[str], env: dict[str, str] | None, root: Path, juicefs: bool) -> dict[str, float]:
    """format, mount -d + stat, write 1 MiB, umount: the figures of one round (the volume is removed after)."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    meta, mnt = f"sqlite3://{root}/meta.db", str(root / "mnt")
    name = "cycle-" + label.lower().replace("_", "-")
    out: dict[str, float] = {}
    out["format"], out["format_cpu"] = timed([*cmd, "format", meta, name, "--storage", "file", "--bucket",
                                              f"{root}/bucket/", "--trash-days", "0"], env)
    extra = ["--no-usage-report"] if juicefs else []
    start = time.perf_counter()
    _, out["mount_cpu"] = timed([*cmd, "mount", meta, mnt, "-d", "--cache-dir", f"{root}/cache", "--log",
                                 f"{root}/log", "--metrics", "127.0.0.1:0" if juicefs else "off", *extra], env)
    os.stat(mnt)  # the mount answers (INIT done)
    out["mount"] = time.perf_counter() - start
    out["server_cpu"] = sum(cpu_of(p) for p in servers(mnt))
    with open(os.path.join(mnt, "f"), "wb") as f:
        f.write(os.urandom(1 << 20))
    out["umount"], out["umount_cpu"] = timed([*cmd, "umount", mnt], env)
    out["left"] = float(len(servers(mnt)))
    for _ in range(300):  # the next round starts with no server of this one left
        if not servers(mnt):
            break
        time.sleep(0.1)
    shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--workdir", default="/tmp/mount-cycle")
    ap.add_argument("--juicefs", default="", help="a juicefs binary to run side by side")
    ap.add_argument("targets", nargs="+", metavar="LABEL=TREE")
    args = ap.parse_args()
    work = Path(args.workdir)
    targets: list[tuple[str, list[str], dict[str, str] | None, bool]] = []
    for spec in args.targets:
        label, tree = spec.split("=", 1)
        tree = str(Path(tree).resolve())
        Path(tree, "sitecustomize.py").write_text(SITECUSTOMIZE)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPATH"] = tree
        targets.append((label, [sys.executable, "-c", RUNNER], env, False))
    if args.juicefs:
        targets.append(("juicefs", [os.path.abspath(args.juicefs)], None, True))
    results: dict[str, list[dict[str, float]]] = {t[0]: [] for t in targets}
    for r in range(args.rounds):
        order = targets[r % len(targets):] + targets[:r % len(targets)]
        for label, cmd, env, jfs_is_juicefs in order:
            results[label].append(one_round(label, cmd, env, work / label, jfs_is_juicefs))
        print(f"round {r + 1}/{args.rounds} done (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    keys = ["format", "format_cpu", "mount", "mount_cpu", "server_cpu", "umount", "umount_cpu", "left"]
    print(f"median of {args.rounds} (min-max); seconds; load {os.getloadavg()[0]:.1f}")
    print("| target | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for label, rows in results.items():
        cells = []
        for k in keys:
            vals = [row[k] for row in rows]
            cells.append(f"{statistics.median(vals):.2f} ({min(vals):.2f}-{max(vals):.2f})")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

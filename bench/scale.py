"""Does the cost of an operation grow with the volume? jfs and JuiceFS 1.4.2 side by side at 10k, 100k and
1M files (issue 17, "Scale"), one backend per run, each system on its own engine and local bucket.

Usage:  .venv/bin/python bench/scale.py [--backend sqlite-file|redis-file] [--files 1000000]
        [--per-dir 1000] [--processes 4] [--stat 100000] [--big-dir 100000] [--rename 10000]
        [--remove 100000] [--systems jfs,juicefs] [--workdir DIR] [--juicefs PATH] [--json FILE]

Per system: format (trash off), mount, then
1. create ``--files`` empty files, ``--per-dir`` per directory, with ``--processes`` processes; the rate is
   reported per segment ending at each checkpoint (10k, 100k, 1M — those ≤ ``--files``);
2. at every checkpoint: stat ``--stat`` random existing paths (at most the files so far) after dropping the
   kernel's caches (cold), in ``--processes`` processes;
3. at the end: ``ls -l`` of one directory of ``--big-dir`` entries cold and warm; ``du -s`` of the whole tree;
   rename ``--rename`` files (within their directories); ``rm -rf`` of ``--remove`` files;
4. unmounted: ``dump`` of the volume to a file and ``load`` of it into a fresh engine (entries/s and the
   command's peak RSS, from wait4), ``gc`` and ``fsck`` (seconds and peak RSS).
Prints a markdown table per phase (rates, ratio jfs / JuiceFS, and rate at the last checkpoint / first) and
writes the numbers as JSON with ``--json``. Needs root (FUSE mounts, drop_caches). Nothing is left mounted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jfs.adapters.fuse.mounting import is_mounted

CHECKPOINTS = (10_000, 100_000, 1_000_000)
"""File counts at which rates are reported (those above ``--files`` are skipped; ``--checkpoints`` overrides)."""


def say(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def drop_caches() -> None:
    os.sync()
    with contextlib.suppress(OSError):
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed_child(argv: list[str], *, stdout: Any = subprocess.DEVNULL, timeout: float = 7200) -> tuple[float, float]:
    """Run `argv`; (wall seconds, peak RSS in MiB of the command itself, from wait4). Raises on failure."""
    started = time.perf_counter()
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, stdout=stdout, stderr=err, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{argv[:3]} timed out")
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err.seek(0)
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({proc.returncode}): {err.read().decode()[-800:]}")
    return seconds, usage.ru_maxrss / 1024


@dataclass
class System:
    name: str
    binary: list[str]
    root: Path
    meta_url: str
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def mnt(self) -> Path:
        return self.root / "mnt"

    @property
    def is_jfs(self) -> bool:
        return self.name == "jfs"

    def run(self, *args: str, timeout: float = 600) -> str:
        out = subprocess.run([*self.binary, *args], capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{self.name} {args[0]} failed: {(out.stderr or out.stdout)[-800:]}")
        return out.stdout

    def format(self) -> None:
        bucket = ["--storage", "file", "--bucket", f"{self.root / 'bucket'}/"]
        if self.is_jfs:
            self.run("format", self.meta_url, "scale-jfs", "--trash-days", "0", *bucket)
        else:
            self.run("format", "--trash-days", "0", self.meta_url, "scale-juicefs", *bucket)

    def mount(self) -> None:
        self.mnt.mkdir(parents=True, exist_ok=True)
        cache = ["--cache-dir", str(self.root / "cache")]
        if self.is_jfs:
            self.run("mount", self.meta_url, str(self.mnt), "-d", *cache, "--metrics", "off")
        else:
            self.run("mount", "-d", "--no-usage-report", self.meta_url, str(self.mnt), *cache,
                     "--log", str(self.root / "juicefs.log"), "--metrics", "127.0.0.1:0")
        if not is_mounted(self.mnt):
            raise RuntimeError(f"{self.name}: {self.mnt} is not mounted")

    def unmount(self) -> None:
        if is_mounted(self.mnt):
            subprocess.run([*self.binary, "umount", str(self.mnt)], capture_output=True, timeout=300)
        if is_mounted(self.mnt):
            subprocess.run(["umount", "-l", str(self.mnt)], capture_output=True, timeout=60)


# ---------------------------------------------------------------------------------------------- workers


def _create(job: tuple[str, int, int, int]) -> None:
    top, d, start, stop = job
    base = f"{top}/d{d:05d}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(base)
    for i in range(start, stop):
        os.close(os.open(f"{base}/f{i:05d}", os.O_CREAT | os.O_WRONLY, 0o644))


def _stat_many(paths: list[str]) -> None:
    for p in paths:
        os.stat(p)


def _rename_many(pairs: list[tuple[str, str]]) -> None:
    for a, b in pairs:
        os.rename(a, b)


def _pool_run(pool: Any, fn: Callable[[Any], None], jobs: list[Any]) -> float:
    started = time.perf_counter()
    for _ in pool.imap_unordered(fn, jobs, chunksize=1):
        pass
    return time.perf_counter() - started


def _chunks(items: list[Any], n: int) -> list[list[Any]]:
    size = max(1, -(-len(items) // (n * 8)))
    return [items[i:i + size] for i in range(0, len(items), size)]


# ---------------------------------------------------------------------------------------------- phases


def checkpoints(args: argparse.Namespace) -> list[int]:
    marks = [int(c) for c in args.checkpoints.split(",")] if args.checkpoints else list(CHECKPOINTS)
    return [c for c in marks if c < args.files] + [args.files]


def create_phase(sys_: System, pool: Any, args: argparse.Namespace) -> None:
    top = str(sys_.mnt / "tree")
    os.makedirs(top, exist_ok=True)
    marks = checkpoints(args)
    done = 0
    rng = random.Random(7)
    for mark in marks:
        jobs = []
        n = done
        while n < mark:
            d, i = divmod(n, args.per_dir)
            stop = min((d + 1) * args.per_dir, mark)
            jobs.append((top, d, i, stop - d * args.per_dir))
            n = stop
        seconds = _pool_run(pool, _create, jobs)
        sys_.results[f"create@{mark}"] = (mark - done) / seconds
        say(f"{sys_.name}: created {mark:,} files ({(mark - done) / seconds:,.0f}/s)")
        done = mark
        count = min(args.stat, mark)
        picks = [rng.randrange(mark) for _ in range(count)]
        paths = [f"{top}/d{p // args.per_dir:05d}/f{p % args.per_dir:05d}" for p in picks]
        drop_caches()
        seconds = _pool_run(pool, _stat_many, _chunks(paths, args.processes))
        sys_.results[f"stat@{mark}"] = count / seconds
        say(f"{sys_.name}: stat of {count:,} random paths cold at {mark:,} ({count / seconds:,.0f}/s)")


def big_dir_phase(sys_: System, pool: Any, args: argparse.Namespace) -> None:
    top = str(sys_.mnt / "big")
    os.makedirs(top, exist_ok=True)
    per = -(-args.big_dir // (args.processes * 4))
    jobs = [(top, 0, i, min(i + per, args.big_dir)) for i in range(0, args.big_dir, per)]
    _pool_run(pool, _create, jobs)
    for label in ("cold", "warm"):
        if label == "cold":
            drop_caches()
        started = time.perf_counter()
        subprocess.run(["ls", "-l", f"{top}/d00000"], stdout=subprocess.DEVNULL, check=True, timeout=3600)
        seconds = time.perf_counter() - started
        sys_.results[f"ls-l {label} s"] = seconds
        say(f"{sys_.name}: ls -l of {args.big_dir:,} entries {label}: {seconds:.2f} s")


def tree_phases(sys_: System, pool: Any, args: argparse.Namespace) -> None:
    drop_caches()
    started = time.perf_counter()
    subprocess.run(["du", "-s", str(sys_.mnt / "tree")], stdout=subprocess.DEVNULL, check=True, timeout=7200)
    sys_.results["du -s s"] = time.perf_counter() - started
    say(f"{sys_.name}: du -s of the tree: {sys_.results['du -s s']:.1f} s")
    top = sys_.mnt / "tree"
    count = min(args.rename, args.files)
    pairs = []
    for n in range(count):
        d, i = divmod(n, args.per_dir)
        src = f"{top}/d{d:05d}/f{i:05d}"
        pairs.append((src, src + ".r"))
    seconds = _pool_run(pool, _rename_many, _chunks(pairs, args.processes))
    sys_.results["rename/s"] = count / seconds
    say(f"{sys_.name}: rename {count:,}: {count / seconds:,.0f}/s")
    dirs = min(-(-args.remove // args.per_dir), -(-args.files // args.per_dir))
    victims = [str(top / f"d{d:05d}") for d in range(dirs)]
    removed = min(args.remove, dirs * args.per_dir, args.files)
    started = time.perf_counter()
    subprocess.run(["rm", "-rf", *victims], check=True, timeout=7200)
    seconds = time.perf_counter() - started
    sys_.results["rm -rf/s"] = removed / seconds
    say(f"{sys_.name}: rm -rf of {removed:,} files: {removed / seconds:,.0f}/s")


def offline_phases(sys_: System, args: argparse.Namespace, entries: int) -> None:
    dump = sys_.root / "dump.json"
    seconds, rss = timed_child([*sys_.binary, "dump", sys_.meta_url, str(dump)])
    sys_.results.update({"dump entries/s": entries / seconds, "dump RSS MiB": rss})
    say(f"{sys_.name}: dump {entries / seconds:,.0f} entries/s, peak {rss:.0f} MiB")
    target = f"sqlite3://{sys_.root / 'loaded.db'}"
    seconds, rss = timed_child([*sys_.binary, "load", target, str(dump)])
    sys_.results.update({"load entries/s": entries / seconds, "load RSS MiB": rss})
    say(f"{sys_.name}: load {entries / seconds:,.0f} entries/s, peak {rss:.0f} MiB")
    for op in ("gc", "fsck"):
        seconds, rss = timed_child([*sys_.binary, op, sys_.meta_url])
        sys_.results.update({f"{op} s": seconds, f"{op} RSS MiB": rss})
        say(f"{sys_.name}: {op} {seconds:.1f} s, peak {rss:.0f} MiB")


# ---------------------------------------------------------------------------------------------- driver


@contextlib.contextmanager
def engines(backend: str, workdir: Path, names: list[str]) -> Iterator[dict[str, str]]:
    if backend == "sqlite-file":
        yield {n: f"sqlite3://{workdir / n / 'meta.db'}" for n in names}
    elif backend == "redis-file":
        from jfs.testing.servers import redis_server

        with redis_server() as server:
            yield {n: f"{server.url}/{i}" for i, n in enumerate(names, start=1)}
    else:
        raise SystemExit(f"unknown backend {backend}")


def report(systems: list[System], args: argparse.Namespace) -> str:
    keys = list(dict.fromkeys(k for s in systems for k in s.results))
    lower_better = (" s", " MiB")
    lines = [f"### Scale, {args.backend}, {args.files:,} files ({time.strftime('%Y-%m-%d')})", "",
             "| phase | " + " | ".join(s.name for s in systems) + " | jfs / JuiceFS |",
             "|---|" + "---:|" * (len(systems) + 1)]
    for k in keys:
        vals = [s.results.get(k) for s in systems]
        cells = [f"{v:,.1f}" if isinstance(v, float) else "–" for v in vals]
        ratio = "–"
        if len(vals) == 2 and all(isinstance(v, float) and v > 0 for v in vals):
            a, b = vals
            better = b / a if k.endswith(lower_better) else a / b
            ratio = f"{better:.2f}x"
        lines.append(f"| {k} | " + " | ".join(cells) + f" | {ratio} |")
    lines.append("")
    lines.append("Ratios: > 1.0 = jfs better (rates: jfs/JuiceFS; seconds and MiB: JuiceFS/jfs).")
    for s in systems:
        marks = checkpoints(args)
        for what in ("create", "stat"):
            if len(marks) > 1 and f"{what}@{marks[0]}" in s.results:
                kept = s.results[f"{what}@{marks[-1]}"] / s.results[f"{what}@{marks[0]}"]
                lines.append(f"- {s.name}: {what} rate at {marks[-1]:,} files = {kept:.2f}× its rate at {marks[0]:,}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="sqlite-file", choices=["sqlite-file", "redis-file"])
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--per-dir", type=int, default=1000)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--stat", type=int, default=100_000)
    ap.add_argument("--big-dir", type=int, default=100_000)
    ap.add_argument("--rename", type=int, default=10_000)
    ap.add_argument("--remove", type=int, default=100_000)
    ap.add_argument("--systems", default="jfs,juicefs")
    ap.add_argument("--workdir")
    ap.add_argument("--juicefs", default=shutil.which("juicefs") or str(Path(sys.executable).parent / "juicefs"))
    ap.add_argument("--checkpoints", help="comma-separated file counts (default 10000,100000,1000000)")
    ap.add_argument("--json")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> tuple[str, dict[str, dict[str, Any]]]:
    """Every phase for every system of `args`; (the markdown report, the raw results by system).

    Nothing is left mounted and the servers it started are stopped, also when a phase fails (which raises)."""
    if os.geteuid() != 0:
        raise SystemExit("bench/scale.py needs root (FUSE mounts, drop_caches)")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="jfs-scale-"))
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    jfs_bin = [sys.executable, "-m", "jfs.cli.main"]
    systems: list[System] = []
    try:
        with engines(args.backend, workdir, names) as urls:
            for name in names:
                root = workdir / name
                root.mkdir(parents=True, exist_ok=True)
                s = System(name, jfs_bin if name == "jfs" else [args.juicefs], root, urls[name])
                systems.append(s)
                s.format()
                s.mount()
                try:
                    with mp.get_context("fork").Pool(args.processes) as pool:
                        create_phase(s, pool, args)
                        big_dir_phase(s, pool, args)
                        tree_phases(s, pool, args)
                finally:
                    s.unmount()
                entries = args.files + args.big_dir - min(args.remove, args.files)
                offline_phases(s, args, entries)
    finally:
        for s in systems:
            s.unmount()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return report(systems, args), {s.name: s.results for s in systems}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    text, results = run(args)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A/B of the 4 KiB random read of `bench/compare.py` (fio, psync, buffered) on two jfs trees, mounted side
by side on SQLite + a local-directory bucket: mount CPU per 10k READs and IOPS, alternating A/B.

Usage:  .venv/bin/python bench/rand_read_ab.py [--pairs 3] [--runtime 8] [--size-mib 512] [--cold]
        [--warmup] [--compare-order [--rand-mib 256]] [--stats] [--profile DIR] [--workdir DIR]
        [--s3] LABEL=PYTHON:TREE LABEL=PYTHON:TREE

A target is the Python to run (its venv) and the tree whose ``jfs`` it imports (``PYTHONPATH``), e.g.
``base=/tmp/base-rd/.venv/bin/python:/tmp/base-rd new=.venv/bin/python:.``, or a JuiceFS binary with the
tree ``juicefs`` (``juicefs=.venv/bin/juicefs:juicefs``). Each target gets a fresh
volume (``--trash-days 0``) with a disk cache, mounted once; fio writes the 512 MiB file sequentially
(1 MiB, as compare.py's sequential phase), then the pairs run ``fio --rw=randread --bs=4k`` for
`--runtime` seconds on each mount in turn. fio drops the file's pages of the mount (``invalidate=1``) so
every 4 KiB read reaches the mount. `--cold` also drops the page cache of that volume's bucket and disk
cache files before each run (what compare.py's ``drop_caches`` does, without touching the rest of the
machine): the run then includes the disk-cache fills. `--warmup` fills the disk cache before the pairs instead
(`jfs warmup`), so that every run measures the steady state of compare.py's run. Mount CPU is utime+stime of the mount process from
``/proc/PID/stat`` around each run; ``CPU ms/10k`` = that / READs x 10,000. Needs root and /dev/fuse.
`--compare-order` replays what compare.py runs before its random read (sequential 1 and 4 jobs with the
pages dropped before each read, then `--runtime` s of 4 KiB random writes into a `--rand-mib` file) and
drops the volume's pages before every run; `--stats` prints the jfs mount's ``.stats`` counters that moved
during each run (block-cache fills show there as ``jfs_blockcache_writes``); `--profile DIR` records each
jfs run with py-spy (it stops the process to sample: its runs' IOPS and CPU are not comparable, ADR 0063).
`--s3` puts every target's blocks in a bucket of its own on one SeaweedFS S3 server started for the run
(``jfs.testing.seaweed``, in `--workdir`) instead of a local directory: the reads are then served by the
disk cache (ADR 0074); `--cold` drops the disk cache's pages only. A disk cache stops caching and evicts
its entries while its file system is below ``--free-space-ratio`` free (default 0.1 on both systems): on a
shared machine whose disk others fill, pass `--free-space-ratio 0`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
JUICEFS = "juicefs"
"""The tree of a JuiceFS target (``LABEL=/path/to/juicefs:juicefs``): PYTHON is then the juicefs binary."""


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return any(line.split()[4] == path for line in f)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process `pid` and its descendants, all threads (a JuiceFS mount in
    the foreground serves from a child of the process started)."""
    stats: dict[int, tuple[int, float, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = (int(fields[1]), int(fields[11]) / TICK, int(fields[12]) / TICK)
    user = system = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        _, u, s = stats.get(p, (0, 0.0, 0.0))
        user += u
        system += s
        todo += [c for c, (parent, _, _) in stats.items() if parent == p]
    return user, system


def evict(root: Path) -> None:
    """Drop the page cache of every file under `root` (POSIX_FADV_DONTNEED)."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


class Target:
    def __init__(self, label: str, python: str, tree: str, workdir: str) -> None:
        self.label = label
        self.python = python
        self.tree = tree if tree == JUICEFS else os.path.abspath(tree)
        self.root = Path(tempfile.mkdtemp(prefix=f"rr-{label}-", dir=workdir))
        self.mnt = str(self.root / "mnt")
        os.makedirs(self.mnt)
        self.env = {**os.environ, "PYTHONPATH": self.tree}
        self.proc: subprocess.Popen[bytes] | None = None
        self.mount_extra: list[str] = []
        """More mount options (`--free-space-ratio`)."""
        self.storage: list[str] = []
        """Format options of the bucket (`--s3`); empty: a local directory under the target's root."""

    @property
    def cli(self) -> list[str]:
        return [self.python] if self.tree == JUICEFS else [self.python, "-m", "jfs.cli.main"]

    def start(self) -> None:
        meta = f"sqlite3://{self.root}/meta.db"
        cache = ["--cache-dir", f"{self.root}/cache", *self.mount_extra]
        if self.tree == JUICEFS:
            bucket = self.storage or ["--bucket", f"{self.root}/bucket/"]
            fmt = [*self.cli, "format", meta, "rrvol", *bucket, "--trash-days", "0"]
            mount = [*self.cli, "mount", "--no-usage-report", meta, self.mnt, *cache]
        else:
            bucket = self.storage or ["--bucket", f"{self.root}/bucket"]
            fmt = [*self.cli, "format", meta, "rrvol", *bucket, "--trash-days", "0"]
            mount = [*self.cli, "mount", meta, self.mnt, "--foreground", *cache]
        subprocess.run(fmt, check=True, capture_output=True, env=self.env, cwd=self.root)
        log = open(self.root / "mount.log", "wb")  # noqa: SIM115 - kept open by the mount process
        self.proc = subprocess.Popen(mount, stdout=log, stderr=log, env=self.env, cwd=self.root)
        deadline = time.monotonic() + 60
        while not _mounted(self.mnt):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.label}: mount did not come up, see {self.root}/mount.log")
            time.sleep(0.05)

    def fio(self, rw: str, bs: str, size_mib: int, runtime: int | None = None, *, name: str = "seq1",
            jobs: int = 1) -> dict[str, float]:
        out = self.root / f"fio-{name}-{rw}.json"
        cmd = ["fio", f"--name={name}", f"--directory={self.mnt}", "--filename_format=$jobname.$jobnum",
               f"--rw={rw}", f"--bs={bs}", f"--size={size_mib}M", f"--numjobs={jobs}", "--direct=0", "--ioengine=psync",
               "--fallocate=none", "--group_reporting", "--output-format=json", f"--output={out}"]
        if "write" in rw:
            cmd.append("--end_fsync=1")
        if runtime:
            cmd += ["--time_based", f"--runtime={runtime}"]
        if jobs > 1:
            cmd.append("--group_reporting")
        subprocess.run(cmd, check=True, capture_output=True)
        text = out.read_text()
        job = json.loads(text[text.index("{"):])["jobs"][0]["read" if "read" in rw else "write"]
        return {"iops": float(job["iops"]), "ios": float(job["total_ios"])}

    def compare_order(self, size_mib: int, rand_mib: int, runtime: int) -> None:
        """What `bench/compare.py`'s fio workload runs before its random read: sequential write and read
        (1 job of `size_mib`, 4 jobs of a quarter each; the pages of the volume's files dropped before each
        read, as compare.py's ``drop_caches``), then `runtime` s of 4 KiB random writes into a `rand_mib` file."""
        self.fio("write", "1M", size_mib)
        self.drop()
        self.fio("read", "1M", size_mib)
        self.fio("write", "1M", size_mib // 4, name="seq4", jobs=4)
        self.drop()
        self.fio("read", "1M", size_mib // 4, name="seq4", jobs=4)
        self.fio("randwrite", "4k", rand_mib, runtime, name="rand")

    def drop(self) -> None:
        """Drop the page cache of this volume's bucket, disk cache and mounted files (what compare.py's
        machine-wide ``drop_caches`` does to them, without touching the rest of the machine)."""
        evict(self.root / "bucket")
        evict(self.root / "cache")

    def warmup(self) -> None:
        """Fill the disk cache with the whole file (`jfs warmup`), as the random reads do by themselves."""
        subprocess.run([*self.cli, "warmup", f"{self.mnt}/seq1.0"], check=True,
                       capture_output=True, env=self.env, cwd=self.root)

    def stop(self) -> None:
        subprocess.run(["umount", self.mnt], capture_output=True)
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if _mounted(self.mnt):
            subprocess.run(["umount", "-l", self.mnt], capture_output=True)
        if not os.environ.get("RR_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)


def _stats(t: Target) -> dict[str, float]:
    """The numeric counters of a jfs mount's ``.stats`` (empty for JuiceFS, whose file is ``.stats`` too
    but is left alone here)."""
    if t.tree == JUICEFS:
        return {}
    out: dict[str, float] = {}
    try:
        text = Path(t.mnt, ".stats").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="+", help="LABEL=PYTHON:TREE")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--runtime", type=int, default=8)
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--cold", action="store_true", help="drop the volume's bucket and cache pages before each run")
    ap.add_argument("--warmup", action="store_true",
                    help="fill the disk cache first (`jfs warmup`): the runs then measure cache hits only")
    ap.add_argument("--compare-order", action="store_true",
                    help="before the pairs, run what compare.py runs before its random read (sequential 1 and "
                    "4 jobs, random write); each run then starts by dropping the volume's pages (--cold)")
    ap.add_argument("--rand-mib", type=int, default=256, help="the random-write file of --compare-order")
    ap.add_argument("--stats", action="store_true", help="print the jfs mount's .stats counters that moved in each run")
    ap.add_argument("--profile", default="", help="py-spy (on PATH) records each jfs run into DIR/LABEL-N.txt "
                    "(collapsed stacks, all threads, idle ones included)")
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--free-space-ratio", default="",
                    help="both mounts' --free-space-ratio (0: the cache keeps its entries on a shared, nearly full disk)")
    ap.add_argument("--s3", action="store_true", help="blocks in SeaweedFS S3 (one server, a bucket per target)")
    args = ap.parse_args()
    targets = []
    for spec in args.targets:
        label, rest = spec.split("=", 1)
        python, tree = rest.split(":", 1)
        targets.append(Target(label, python, tree, args.workdir))
        if args.free_space_ratio:
            targets[-1].mount_extra = ["--free-space-ratio", args.free_space_ratio]
    with contextlib.ExitStack() as stack:
        if args.s3:
            os.environ["TMPDIR"] = args.workdir  # the server's data directory
            from jfs.testing.seaweed import seaweed_s3

            s3 = stack.enter_context(seaweed_s3(bucket="rr-probe"))
            client = s3.client()
            for t in targets:
                name = f"rrt-{t.label.lower()}"
                client.create_bucket(Bucket=name)
                t.storage = ["--storage", "s3", "--bucket", f"{s3.endpoint}/{name}",
                             "--access-key", s3.access_key, "--secret-key", s3.secret_key]
        run(args, targets)


def run(args: argparse.Namespace, targets: list[Target]) -> None:
    results: dict[str, list[tuple[float, float]]] = {t.label: [] for t in targets}
    try:
        for t in targets:
            t.start()
            if args.compare_order:
                t.compare_order(args.size_mib, args.rand_mib, args.runtime)
            else:
                t.fio("write", "1M", args.size_mib)
            if args.warmup:
                t.warmup()
        for i in range(args.pairs):
            for t in targets if i % 2 == 0 else reversed(targets):
                assert t.proc is not None
                if args.cold or args.compare_order:
                    t.drop()
                before = _stats(t) if args.stats else {}
                spy = None
                if args.profile and t.tree != JUICEFS:
                    os.makedirs(args.profile, exist_ok=True)
                    spy = subprocess.Popen(["py-spy", "record", "--pid", str(t.proc.pid), "--rate", "250",
                                            "--duration", str(args.runtime), "--idle", "--threads", "--format", "raw",
                                            "-o", f"{args.profile}/{t.label}-{i + 1}.txt"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                user0, sys0 = cpu_seconds(t.proc.pid)
                r = t.fio("randread", "4k", args.size_mib, args.runtime)
                user1, sys1 = cpu_seconds(t.proc.pid)
                if spy is not None:
                    spy.wait(30)
                if args.stats and before:
                    after = _stats(t)
                    moved = {k: round(after[k] - before.get(k, 0), 3) for k in after if after[k] != before.get(k, 0)}
                    print(f"  {t.label} .stats moved: {moved}", flush=True)
                cpu = user1 - user0 + sys1 - sys0
                per10k = cpu / r["ios"] * 10_000 * 1000
                results[t.label].append((per10k, r["iops"]))
                print(f"pair {i + 1} {t.label:>7}: {r['iops']:8.0f} IOPS  {per10k:7.1f} CPU ms/10k READs "
                      f"(user {(user1 - user0) / r['ios'] * 1e7:.0f} + sys {(sys1 - sys0) / r['ios'] * 1e7:.0f}; "
                      f"{r['ios']:.0f} reads)", flush=True)
    finally:
        for t in targets:
            t.stop()
    print("median:")
    for label, rows in results.items():
        print(f"  {label:>7}: {statistics.median(r[1] for r in rows):8.0f} IOPS  "
              f"{statistics.median(r[0] for r in rows):7.1f} CPU ms/10k READs")


if __name__ == "__main__":
    main()

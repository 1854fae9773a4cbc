"""mdtest-like phases on Redis + local directory mounts, A/B alternating, with Redis commands and CPU per op.

    cd /tmp && /path/to/.venv/bin/python /path/to/bench/redis_md_ab.py --pairs 4 --procs 4 --items 1000 \
        [--base-jfs /tmp/base-rd/.venv/bin/jfs] [--no-juicefs] [--monitor 50]

One redis-server; a jfs volume (db 1, mounted by this tree's ``jfs`` and, with `--base-jfs`, a second time
by another tree's) and a JuiceFS 1.4.2 volume (db 2). Each round runs the six phases (mkdir, create, stat
after drop_caches, rename, unlink, rmdir; `--procs` processes x `--items` each in their own directories) on
every mount, in an order rotated by one per round. Per phase and mount: ops/s, the mount process's CPU
(/proc/PID/stat utime+stime) per op, Redis commands per op issued by the client (`INFO commandstats`
counts the commands a Lua script runs too: script-run ones are subtracted using a MONITOR sample of
`--monitor` ops per phase, taken once before the rounds), the read events redis-server processed per op
(``total_reads_processed``: the client's round trips, fewer when the client pipelines several ops into one
write) and redis-server's CPU per op. Median (min-max) over the rounds. Root only (drop_caches).
"""

from __future__ import annotations

import argparse
import atexit
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ab_bench import tree_cpu  # noqa: E402
from bench.comparison.backends import redis_server  # noqa: E402
from bench.comparison.harness import JfsMount, JuiceFSMount, Mount, drop_caches, progress, unmount_all  # noqa: E402
from bench.comparison.workloads import _md_phase as _phase  # noqa: E402

PHASES = ("mkdir", "create", "stat", "rename", "unlink", "rmdir")




def _redis_info(cli: list[str]) -> dict[str, float]:
    out = subprocess.run([*cli, "INFO", "all"], capture_output=True, text=True, check=True).stdout
    info: dict[str, float] = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line.split(":", 1)
            info[name] = float(rest.split(",")[0].split("=")[1])
        elif line.startswith(("total_reads_processed:", "used_cpu_sys:", "used_cpu_user:")):
            k, v = line.split(":")
            info[k] = float(v)
    return info


def _delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: b[k] - a.get(k, 0.0) for k in b if b[k] - a.get(k, 0.0)}


def _monitor(cli: list[str], run: callable, n_ops: int) -> tuple[dict[str, float], dict[str, float]]:
    """(client commands per op, script-run commands per op) while `run()` runs, from MONITOR."""
    proc = subprocess.Popen([*cli, "MONITOR"], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    time.sleep(0.5)
    run()
    time.sleep(0.5)
    proc.terminate()
    reader.join(5)
    client: dict[str, float] = {}
    lua: dict[str, float] = {}
    for line in lines:
        try:
            where, cmd = line.split("] ", 1)
        except ValueError:
            continue
        name = cmd.split(" ", 1)[0].strip('"').lower()
        if name in ("info",):
            continue
        into = lua if "lua" in where else client
        into[name] = into.get(name, 0) + 1 / n_ops
    return client, lua


def _fmt(v: list[float]) -> str:
    if not v:
        return "-"
    m = statistics.median(v)
    if m >= 100:
        return f"{m:,.0f} ({min(v):,.0f}-{max(v):,.0f})"
    return f"{m:.2f} ({min(v):.2f}-{max(v):.2f})"



def open_mounts(url: str, work: Path, here: Path, base_jfs: str, juicefs: bool) -> dict[str, Mount]:
    """Format and mount, on the Redis at `url`: jfs (db 1), `base_jfs`'s tree on the same volume if given,
    and JuiceFS (db 2) if `juicefs`; keyed "jfs", "jfs-base", "JuiceFS"."""
    mounts: dict[str, Mount] = {
        "jfs": JfsMount("jfs", str(here / "jfs"), f"{url}/1", ["--bucket", str(work / "jfs-bucket")], work / "jfs")
    }
    if base_jfs:
        mounts["jfs-base"] = JfsMount("jfs", base_jfs, f"{url}/1", [], work / "jfs-base")
    if juicefs:
        mounts["JuiceFS"] = JuiceFSMount("JuiceFS", str(here / "juicefs"), f"{url}/2",
                                         ["--bucket", str(work / "juice-bucket")], work / "juicefs")
    mounts["jfs"].format()
    if "JuiceFS" in mounts:
        mounts["JuiceFS"].format()
    for m in mounts.values():
        m.root.mkdir(parents=True, exist_ok=True)
        m.mount()
    progress("mounted: " + ", ".join(f"{k} pid {m.pid}" for k, m in mounts.items()))
    return mounts

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--monitor", type=int, default=50, help="ops per phase in the MONITOR sample (0 = none)")
    ap.add_argument("--base-jfs", default="")
    ap.add_argument("--no-juicefs", action="store_true")
    ap.add_argument("--workdir", default="/tmp/jfs-redis-md-ab")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("root only (drop_caches)")
    work = Path(args.workdir)
    subprocess.run(["rm", "-rf", str(work)], check=False)
    work.mkdir(parents=True)
    atexit.register(unmount_all)
    here = Path(sys.executable).parent
    with redis_server() as url:
        host, port = url.split("//")[1].split(":")
        cli = ["redis-cli", "-h", host, "-p", port]
        mounts = open_mounts(url, work, here, args.base_jfs, not args.no_juicefs)
        names = list(mounts)
        res: dict[str, dict[str, list[float]]] = {k: {} for k in names}
        mon: dict[str, dict[str, tuple[dict[str, float], dict[str, float]]]] = {k: {} for k in names}
        lua_per_op: dict[tuple[str, str], float] = {}
        with ProcessPoolExecutor(args.procs) as pool:
            if args.monitor:
                for name, m in mounts.items():
                    d = m.mnt / f"mon-{name}"
                    d.mkdir()
                    for phase in PHASES:
                        client, lua = _monitor(cli, lambda d=d, phase=phase: _phase((str(d), phase, args.monitor)),
                                               args.monitor)
                        mon[name][phase] = (client, lua)
                        lua_per_op[name, phase] = sum(lua.values())
            for rnd in range(args.pairs):
                order = names[rnd % len(names):] + names[:rnd % len(names)]
                progress(f"round {rnd + 1}/{args.pairs}: {order}")
                for name in order:
                    m = mounts[name]
                    base = m.mnt / f"r{rnd}-{name}"
                    dirs = [base / f"p{i}" for i in range(args.procs)]
                    for d in dirs:
                        d.mkdir(parents=True)
                    n = args.procs * args.items
                    for phase in PHASES:
                        if phase == "stat":
                            drop_caches()
                        i0, c0, t0 = _redis_info(cli), tree_cpu(m.pid or 0), time.perf_counter()
                        list(pool.map(_phase, [(str(d), phase, args.items) for d in dirs]))
                        t1, c1, i1 = time.perf_counter(), tree_cpu(m.pid or 0), _redis_info(cli)
                        d = _delta(i0, i1)
                        cmds = sum(v for k, v in d.items() if k.startswith("cmdstat_") and k != "cmdstat_info") / n
                        r = res[name]
                        r.setdefault(f"{phase} ops/s", []).append(n / (t1 - t0))
                        r.setdefault(f"{phase} mount CPU ms/op", []).append((c1 - c0) / n * 1e3)
                        r.setdefault(f"{phase} client cmds/op", []).append(cmds - lua_per_op.get((name, phase), 0))
                        r.setdefault(f"{phase} redis read events/op", []).append(
                            (d.get("total_reads_processed", 0) - 2) / n)
                        r.setdefault(f"{phase} redis CPU ms/op", []).append(
                            (d.get("used_cpu_sys", 0) + d.get("used_cpu_user", 0)) / n * 1e3)
        items: list[str] = []
        for per in res.values():
            items += [i for i in per if i not in items]
        print("| item | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        for item in items:
            print(f"| {item} | " + " | ".join(_fmt(res[s].get(item, [])) for s in names) + " |")
        if args.monitor:
            print(f"\nMONITOR sample, 1 process x {args.monitor} ops per phase: commands per op (client / in scripts)")
            for name in names:
                for phase in PHASES:
                    client, lua = mon[name][phase]
                    c = ", ".join(f"{k} {v:.2f}" for k, v in sorted(client.items()))
                    s = ", ".join(f"{k} {v:.2f}" for k, v in sorted(lua.items()))
                    print(f"- {name} {phase}: client [{c}] lua [{s}]")
        for m in mounts.values():
            m.unmount()


if __name__ == "__main__":
    main()

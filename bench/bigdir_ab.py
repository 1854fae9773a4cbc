"""bench/scale.py's small phases on Redis + local directory mounts, A/B alternating (ADR 0086).

    cd /tmp && /path/to/.venv/bin/python /path/to/bench/bigdir_ab.py --rounds 3 --files 10000 \
        [--base-jfs /tmp/x/jfs-base] [--no-juicefs] [--procs 4] [--per-dir 1000]

One redis-server; a jfs volume (db 1, mounted by this tree's ``jfs`` and, with ``--base-jfs``, a second
time by another tree's) and a JuiceFS 1.4.2 volume (db 2). Each mount first gets its own tree of
``--files`` empty files, ``--per-dir`` per directory (not timed). Each round, per mount, in an order
rotated by one per round, as bench/scale.py does them:

- ``bigcreate``: ``--files`` files created in ONE new directory by ``--procs`` processes;
- ``stat``: after drop_caches, stat of every tree file in a random order (cold: LOOKUP per component);
- ``rename``: every tree file renamed within its directory (``f.N`` -> ``f.N+1``).

Per phase and mount: ops/s, the mount's CPU (user + system of the serving process and its children, from
/proc) per op, Redis commands per op (``INFO commandstats``, scripts' inner commands included) and
redis-server read events per op (round trips); for jfs mounts also FUSE requests per op and their mean
handler time by method (``.stats``). Median (min-max) over the rounds. Root only.
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ab_bench import tree_cpu  # noqa: E402
from bench.comparison.backends import redis_server  # noqa: E402
from bench.comparison.harness import drop_caches, progress, unmount_all  # noqa: E402
from bench.redis_md_ab import _delta, _fmt, _redis_info, open_mounts  # noqa: E402

PHASES = ("bigcreate", "stat", "rename")


def _create(job: tuple[str, list[str]]) -> None:
    directory, names = job
    os.makedirs(directory, exist_ok=True)
    for n in names:
        os.close(os.open(f"{directory}/{n}", os.O_CREAT | os.O_WRONLY, 0o644))


def _stat(paths: list[str]) -> None:
    for p in paths:
        os.stat(p)


def _rename(pairs: list[tuple[str, str]]) -> None:
    for a, b in pairs:
        os.rename(a, b)


def _fuse_ops(mnt: Path) -> dict[str, float]:
    """{method: requests, method + " s": handler seconds} from a jfs mount's ``.stats`` ({} for JuiceFS)."""
    out: dict[str, float] = {}
    try:
        text = (mnt / ".stats").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        for prefix, suffix in (("jfs_fuse_ops_total{", ""), ("jfs_fuse_ops_durations_seconds_sum{", " s")):
            if line.startswith(prefix):
                k, v = line.split()
                out[k.split('"')[1] + suffix] = float(v)
    return out


def _split(items: list, n: int) -> list[list]:
    size = max(1, -(-len(items) // (n * 4)))
    return [items[i:i + size] for i in range(0, len(items), size)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--per-dir", type=int, default=1000)
    ap.add_argument("--base-jfs", default="")
    ap.add_argument("--no-juicefs", action="store_true")
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--workdir", default="/tmp/jfs-bigdir-ab")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("root only (drop_caches)")
    phases = args.phases.split(",")
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
        files = [(i // args.per_dir, i % args.per_dir) for i in range(args.files)]
        with ProcessPoolExecutor(args.procs) as pool:
            for name, m in mounts.items():
                if phases == ["bigcreate"]:
                    break
                jobs = [(str(m.mnt / f"tree-{name}" / f"d{d:05d}"), [f"f{i:05d}.0" for i in range(args.per_dir)
                                                                    if d * args.per_dir + i < args.files])
                        for d in range(-(-args.files // args.per_dir))]
                list(pool.map(_create, jobs))
            progress(f"trees of {args.files:,} files created")
            for rnd in range(args.rounds):
                order = names[rnd % len(names):] + names[:rnd % len(names)]
                progress(f"round {rnd + 1}/{args.rounds}: {order}")
                for name in order:
                    m = mounts[name]
                    tree = m.mnt / f"tree-{name}"
                    paths = [f"{tree}/d{d:05d}/f{i:05d}.{rnd}" for d, i in files]
                    for phase in phases:
                        n = args.files
                        if phase == "bigcreate":
                            big = str(m.mnt / f"big-{name}-{rnd}")
                            fnames = [f"f{i:06d}" for i in range(n)]
                            per = -(-n // (args.procs * 4))
                            run, jobs = _create, [(big, fnames[i:i + per]) for i in range(0, n, per)]
                            os.mkdir(big)
                        elif phase == "stat":
                            shuffled = paths[:]
                            random.Random(rnd).shuffle(shuffled)
                            run, jobs = _stat, _split(shuffled, args.procs)
                            drop_caches()
                        else:
                            run, jobs = _rename, _split([(p, p[: p.rindex(".")] + f".{rnd + 1}") for p in paths],
                                                        args.procs)
                        f0 = _fuse_ops(m.mnt)
                        i0, c0, t0 = _redis_info(cli), tree_cpu(m.pid or 0), time.perf_counter()
                        list(pool.map(run, jobs))
                        t1, c1, i1 = time.perf_counter(), tree_cpu(m.pid or 0), _redis_info(cli)
                        f1 = _fuse_ops(m.mnt)
                        d = _delta(i0, i1)
                        cmds = sum(v for k, v in d.items() if k.startswith("cmdstat_") and k != "cmdstat_info") / n
                        r = res[name]
                        r.setdefault(f"{phase} ops/s", []).append(n / (t1 - t0))
                        r.setdefault(f"{phase} mount CPU µs/op", []).append((c1 - c0) / n * 1e6)
                        r.setdefault(f"{phase} redis cmds/op", []).append(cmds)
                        r.setdefault(f"{phase} redis read events/op", []).append(
                            (d.get("total_reads_processed", 0) - 2) / n)
                        for k in sorted(f1):
                            if not k.endswith(" s") and f1[k] - f0.get(k, 0) >= n / 20:
                                r.setdefault(f"{phase} FUSE {k}/op", []).append((f1[k] - f0.get(k, 0)) / n)
                                r.setdefault(f"{phase} FUSE {k} handler µs", []).append(
                                    (f1[k + " s"] - f0.get(k + " s", 0)) / (f1[k] - f0.get(k, 0)) * 1e6)
                    if "rename" not in phases and phases != ["bigcreate"]:
                        for p in paths:
                            os.rename(p, p[: p.rindex(".")] + f".{rnd + 1}")
        items: list[str] = []
        for per in res.values():
            items += [i for i in per if i not in items]
        print(f"\n{args.files:,} files, {args.procs} processes, {args.rounds} rounds; median (min-max)\n")
        print("| item | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        for item in items:
            print(f"| {item} | " + " | ".join(_fmt(res[s].get(item, [])) for s in names) + " |")
        for m in mounts.values():
            m.unmount()


if __name__ == "__main__":
    main()

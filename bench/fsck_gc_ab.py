"""`jfs fsck` and `jfs gc` on Redis, base vs new, next to JuiceFS 1.4.2 (issue 17, "Scale"; ADR 0077).

Usage:  .venv/bin/python bench/fsck_gc_ab.py --base /tmp/X/base [--files 200000] [--per-dir 1000]
        [--rounds 3] [--ops fsck,gc] [--redis redis://127.0.0.1:PORT] [--juicefs PATH]

Writes the synthetic dump of `bench/scale_offline.py` (``--files`` empty files in directories of
``--per-dir``, every 100th with an xattr: the shape of `bench/scale.py`'s tree) and loads it into db 1 (jfs,
with this checkout's ``jfs load``) and db 3 (``juicefs load``) of a throwaway redis-server (or of
``--redis``, whose dbs 1 and 3 are flushed first). Then ``--rounds`` times, in alternating order: base
(``--base``: a directory holding another checkout's ``jfs`` package, from ``git archive``, run with
PYTHONPATH from ``/``), new (this checkout) and ``juicefs``, each running ``fsck`` and ``gc`` of its db as
its own process: wall seconds, user + system CPU (wait4) and peak RSS (GNU time) of the command, and the
CPU redis-server spent meanwhile (from /proc, only for a server this script started). Prints one line per
run and a median table with the spread.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import timed_child  # noqa: E402
from scale_offline import write_dump  # noqa: E402

from jfs.testing.servers import redis_server  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int | None) -> float:
    """user + system seconds of `pid` so far (0 without one)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run(args: argparse.Namespace, url: str, rpid: int | None, tmp: Path) -> dict[tuple[str, str], list]:
    py = sys.executable
    jfs_cli = [py, "-c", "from jfs.cli import run; run()"]
    systems = {
        "base": ["env", f"PYTHONPATH={args.base}", *jfs_cli],
        "new": ["env", f"PYTHONPATH={Path(__file__).resolve().parent.parent}", *jfs_cli],
        "juicefs": [args.juicefs],
    }
    if not args.base:
        del systems["base"]
    src = tmp / "src.json"
    entries = write_dump(src, args.files, args.per_dir, str(tmp / "bucket"))
    print(f"synthetic dump: {entries} entries", flush=True)
    jurl, kurl = f"{url}/1", f"{url}/3"
    for db in (jurl, kurl):
        subprocess.run(["redis-cli", "-u", db, "FLUSHDB"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*systems["new"], "load", jurl, str(src)], check=True, stdout=subprocess.DEVNULL, cwd="/")
    subprocess.run([args.juicefs, "load", kurl, str(src)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    results: dict[tuple[str, str], list] = {}
    names = list(systems)
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            for op in args.ops.split(","):
                db = kurl if name == "juicefs" else jurl
                r0 = proc_cpu(rpid)
                os.chdir("/")
                sec, rss, cpu = timed_child([*systems[name], op, db])
                rcpu = proc_cpu(rpid) - r0
                results.setdefault((op, name), []).append((sec, cpu, rss, rcpu))
                print(f"round {r} {name:7} {op:4}: {sec:6.2f} s  CPU {cpu:5.2f} s  RSS {rss:6.1f} MiB  "
                      f"redis CPU {rcpu:5.2f} s", flush=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200_000)
    ap.add_argument("--per-dir", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--base", default="", help="directory holding the base checkout's jfs package")
    ap.add_argument("--juicefs", default=str(Path(sys.executable).parent / "juicefs"))
    ap.add_argument("--ops", default="fsck,gc")
    ap.add_argument("--redis", default="", help="an existing server (its dbs 1 and 3 are flushed)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fsck-gc-ab-"))
    (tmp / "bucket").mkdir()
    try:
        if args.redis:
            results = run(args, args.redis.rstrip("/"), None, tmp)
        else:
            with redis_server() as server:
                results = run(args, server.url, server.process.pid, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmedians of {args.rounds} rounds ({args.files:,} files): op | system | wall s | CPU s | peak RSS MiB"
          " | redis CPU s  (spread: CPU per round)")
    for (op, name), runs in sorted(results.items()):
        med = [statistics.median(r[i] for r in runs) for i in range(4)]
        spread = ", ".join(f"{r[1]:.2f}" for r in runs)
        print(f"| {op} | {name} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.0f} | {med[3]:.2f} |  ({spread})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
